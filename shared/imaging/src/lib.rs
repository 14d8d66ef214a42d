//! Imaging
