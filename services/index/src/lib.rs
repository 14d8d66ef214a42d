//! index stage
