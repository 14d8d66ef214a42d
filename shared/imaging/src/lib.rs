//! Image validation and decoding with limits: format sniffed from the bytes (never the file
//! name), size and pixel-count limits checked from the header before any pixel is decoded
//! (decompression bombs), and corrupt or truncated files rejected with a readable reason.

pub mod phash;

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader};
use thiserror::Error;

/// Limits applied to every image.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
    /// Largest pixel count (width × height) accepted.
    pub max_pixels: u64,
    /// Largest width or height accepted.
    pub max_side: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bytes: 50 * 1024 * 1024, max_pixels: 64_000_000, max_side: 32_768 }
    }
}

/// Why an image was rejected. Every variant is permanent: the same bytes fail the same way.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// Zero bytes.
    #[error("empty file")]
    Empty,
    /// Over the byte limit.
    #[error("file too large: {size} bytes, limit {limit}")]
    TooLarge {
        /// Size of the file.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not an image format we know.
    #[error("not an image: {0}")]
    NotAnImage(String),
    /// A known image format this build does not decode.
    #[error("unsupported image format {0}")]
    Unsupported(String),
    /// Width × height over the limits (decompression bomb guard).
    #[error("too many pixels: {width}x{height} ({megapixels} megapixels), limit {limit_megapixels} megapixels")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// width × height / 10^6.
        megapixels: u64,
        /// The limit / 10^6.
        limit_megapixels: u64,
    },
    /// The file ends before the image does.
    #[error("truncated {format} file: {detail}")]
    Truncated {
        /// Format.
        format: String,
        /// What is missing.
        detail: String,
    },
    /// The bytes claim a format but do not decode.
    #[error("corrupt {format} file: {detail}")]
    Corrupt {
        /// Format.
        format: String,
        /// The decoder's complaint.
        detail: String,
    },
}

/// What the header of a valid image says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Lowercase format name (`jpeg`, `png`, `webp`, `gif`, `bmp`, `tiff`, `pnm`).
    pub format: String,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
}

fn format_name(f: ImageFormat) -> String {
    match f {
        ImageFormat::Jpeg => "jpeg".to_owned(),
        ImageFormat::Pnm => "pnm".to_owned(),
        other => {
            other.extensions_str().first().map_or_else(|| format!("{other:?}").to_lowercase(), |e| (*e).to_owned())
        }
    }
}

fn sniff(bytes: &[u8], name_hint: Option<&str>) -> Result<ImageFormat, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    match image::guess_format(bytes) {
        Ok(f) => Ok(f),
        Err(_) => {
            let claimed = name_hint
                .and_then(|n| n.rsplit_once('.'))
                .and_then(|(_, ext)| ImageFormat::from_extension(ext))
                .map(format_name);
            let head = &bytes[..bytes.len().min(512)];
            let texty = head.iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
                || std::str::from_utf8(head).is_ok();
            Err(match (claimed, texty) {
                (Some(c), true) => ImageError::NotAnImage(format!("the file is text, although its name says {c}")),
                (None, true) => ImageError::NotAnImage("the file is text".to_owned()),
                (Some(c), false) => ImageError::Corrupt {
                    format: c,
                    detail: "the name says so but the bytes carry no known image signature (corrupt or not an image)"
                        .to_owned(),
                },
                (None, false) => ImageError::NotAnImage(format!(
                    "unsupported or unrecognised format (first bytes {})",
                    head.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
                )),
            })
        }
    }
}

fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), ImageError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels || width > limits.max_side || height > limits.max_side {
        return Err(ImageError::TooManyPixels {
            width,
            height,
            megapixels: pixels / 1_000_000,
            limit_megapixels: limits.max_pixels / 1_000_000,
        });
    }
    if pixels == 0 {
        return Err(ImageError::Corrupt { format: "image".into(), detail: "zero width or height".into() });
    }
    Ok(())
}

/// Reads format and dimensions from the header only, applying the byte and pixel limits.
pub fn probe(bytes: &[u8], name_hint: Option<&str>, limits: &Limits) -> Result<Probe, ImageError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ImageError::TooLarge { size: bytes.len() as u64, limit: limits.max_bytes });
    }
    let format = sniff(bytes, name_hint)?;
    let name = format_name(format);
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    let (width, height) = reader.into_dimensions().map_err(|e| classify(&name, e))?;
    check_pixels(width, height, limits)?;
    Ok(Probe { format: name, width, height })
}

fn classify(format: &str, e: image::ImageError) -> ImageError {
    use image::ImageError as E;
    match e {
        E::Unsupported(u) => ImageError::Unsupported(format!("{format}: {u}")),
        E::Limits(l) => ImageError::TooManyPixels { width: 0, height: 0, megapixels: 0, limit_megapixels: 0 }
            .with_detail(format, &l.to_string()),
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageError::Truncated { format: format.to_owned(), detail: io.to_string() }
        }
        other => {
            let detail = other.to_string();
            let lower = detail.to_lowercase();
            if lower.contains("eof")
                || lower.contains("end of file")
                || lower.contains("truncat")
                || lower.contains("unexpected end")
            {
                ImageError::Truncated { format: format.to_owned(), detail }
            } else {
                ImageError::Corrupt { format: format.to_owned(), detail }
            }
        }
    }
}

impl ImageError {
    fn with_detail(self, format: &str, detail: &str) -> Self {
        match self {
            ImageError::TooManyPixels { .. } => ImageError::Corrupt {
                format: format.to_owned(),
                detail: format!("decoder limits exceeded (too many pixels or too much memory): {detail}"),
            },
            other => other,
        }
    }
}

/// A JPEG must end with its end-of-image marker (allowing a little trailing padding); the
/// decoder alone fills a cut-off file with grey and calls it fine.
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), ImageError> {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    if tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        Ok(())
    } else {
        Err(ImageError::Truncated {
            format: "jpeg".into(),
            detail: "no end-of-image marker (FFD9) at the end of the file".into(),
        })
    }
}

/// Validates and decodes an image: limits from the header first, then a full decode under
/// memory limits, then a completeness check.
pub fn decode(bytes: &[u8], name_hint: Option<&str>, limits: &Limits) -> Result<(Probe, DynamicImage), ImageError> {
    let probe = probe(bytes, name_hint, limits)?;
    let format = ImageFormat::from_extension(&probe.format).or_else(|| image::guess_format(bytes).ok());
    let mut reader = ImageReader::new(Cursor::new(bytes));
    if let Some(f) = format {
        reader.set_format(f);
    }
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(16));
    reader.limits(decoder_limits);
    let image = reader.decode().map_err(|e| classify(&probe.format, e))?;
    if probe.format == "jpeg" {
        check_jpeg_complete(bytes)?;
    }
    Ok((probe, image))
}

/// Validates an image fully (as [`decode`]) and returns what its header says.
pub fn validate(bytes: &[u8], name_hint: Option<&str>, limits: &Limits) -> Result<Probe, ImageError> {
    decode(bytes, name_hint, limits).map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_text_are_named() {
        let l = Limits::default();
        assert_eq!(probe(b"", None, &l), Err(ImageError::Empty));
        let e = probe(b"hello world, not a picture", Some("notes.jpg"), &l).unwrap_err();
        assert!(e.to_string().starts_with("not an image: the file is text"), "{e}");
    }

    #[test]
    fn size_limit_is_checked_before_anything() {
        let l = Limits { max_bytes: 10, ..Limits::default() };
        assert!(matches!(probe(&[0u8; 11], None, &l), Err(ImageError::TooLarge { size: 11, limit: 10 })));
    }

    #[test]
    fn a_small_png_round_trips() {
        let img = image::RgbImage::from_pixel(3, 2, image::Rgb([10, 20, 30]));
        let mut buf = Vec::new();
        image::DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut buf), ImageFormat::Png).expect("encode");
        let (p, decoded) = decode(&buf, Some("x.jpg"), &Limits::default()).expect("decode");
        assert_eq!(p, Probe { format: "png".into(), width: 3, height: 2 }, "format comes from the bytes, not the name");
        assert_eq!(decoded.to_rgb8().get_pixel(2, 1).0, [10, 20, 30]);
    }
}
