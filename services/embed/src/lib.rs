//! embed stage
