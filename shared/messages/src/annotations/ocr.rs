//! The OCR stage's output: `annotations.ocr`.

use serde::{Deserialize, Serialize};

use super::Annotation;

/// What OCR finds on one image: the value of `annotations.ocr` (and the CLI's JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OcrOut {
    /// Lines in reading order.
    pub lines: Vec<TextLine>,
    /// Prices (price-tag fields), in reading order.
    pub prices: Vec<Price>,
    /// Product-name candidate.
    pub product: Option<String>,
}

impl Annotation for OcrOut {
    const KEY: &'static str = "ocr";
}

impl OcrOut {
    /// The lines' text joined by spaces, blank lines left out; `None` when nothing was read.
    pub fn text(&self) -> Option<String> {
        let text = self.lines.iter().map(|l| l.text.as_str()).filter(|t| !t.trim().is_empty()).collect::<Vec<_>>();
        let text = text.join(" ");
        (!text.is_empty()).then_some(text)
    }
}

/// One recognised line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextLine {
    /// The text.
    pub text: String,
    /// Recognition confidence (mean probability of the characters), 0..1.
    pub score: f64,
    /// Corners in image pixels: top-left, top-right, bottom-right, bottom-left.
    #[serde(rename = "box", default)]
    pub bbox: [[f32; 2]; 4],
}

/// One price found on the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// The amount (decimal comma read as a point where the context says so).
    pub amount: f64,
    /// The digits as printed.
    pub text: String,
    /// ISO 4217 code when the mark is unambiguous in a price-tag context (`¥`/`元` → CNY,
    /// `$` → USD, `€` → EUR, `£` → GBP, `円` → JPY); `kr` gives `null` (SEK, NOK, DKK or ISK).
    pub currency: Option<String>,
    /// The currency mark as printed.
    pub symbol: Option<String>,
    /// The price label (日常价, 券后价, 原价, 会员价, price...), from the line or a neighbour.
    pub label: Option<String>,
    /// "From" price (`起`, `from`).
    pub from: bool,
    /// Per-unit part (`斤`, `kg`, `500g`...), when the price is per unit.
    pub unit: Option<String>,
    /// Index of the line holding the amount (in `lines`).
    pub line: usize,
    /// Box of that line.
    #[serde(rename = "box")]
    pub bbox: [[f32; 2]; 4],
}
