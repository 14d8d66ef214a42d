//! Blob
