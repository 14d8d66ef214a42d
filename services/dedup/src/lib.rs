//! dedup stage
