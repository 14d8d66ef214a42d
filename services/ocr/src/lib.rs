//! ocr stage
