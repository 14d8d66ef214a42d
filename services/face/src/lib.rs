//! face stage
