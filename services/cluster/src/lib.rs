//! cluster stage
