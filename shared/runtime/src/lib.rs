//! Runtime
