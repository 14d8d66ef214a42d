//! detect stage
