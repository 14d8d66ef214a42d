//! Coordination
