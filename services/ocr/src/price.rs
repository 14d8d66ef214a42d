//! Price-tag understanding (价签): prices and a product-name candidate from recognised lines.
//!
//! A number is a price when something says so: a currency mark next to it (`¥ ￥ $ € £` before,
//! `元 kr :- ,-` after), a price word (`价`, `售价`, `原价`, `price`...), a "from" mark (`起`),
//! a per-unit part (`/斤`, `/kg`, `每500g`), or, for a line that is nothing but a decimal
//! number, a nearby line carrying one of those (price tags print the label and the currency
//! small, next to a big number). Numbers followed by a measure (`℃ % g ml` without `/`) or with
//! more than seven integer digits are not prices. The product name is only a candidate: the
//! tallest line that is neither a price, a price label nor a promotional phrase.

use serde::{Deserialize, Serialize};

use crate::engine::TextLine;
use sightline_vision::geometry::FPoint;

pub use sightline_messages::annotations::Price;

/// What a price tag says, beside its raw lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceTag {
    /// Prices in reading order.
    pub prices: Vec<Price>,
    /// Product-name candidate (heuristic).
    pub product: Option<String>,
}

/// Price words, longest first (so that `券后价` wins over `价`).
const LABELS: [&str; 24] = [
    "会员价",
    "券后价",
    "日常价",
    "促销价",
    "活动价",
    "零售价",
    "到手价",
    "秒杀价",
    "折后价",
    "特价",
    "原价",
    "现价",
    "售价",
    "单价",
    "价格",
    "标价",
    "会员",
    "price",
    "sale",
    "pris",
    "preis",
    "prix",
    "now",
    "was",
];
const PROMO: [&str; 30] = [
    "促销", "特价", "优惠", "划算", "包邮", "折", "满", "减", "限时", "秒杀", "惊喜", "福利", "错过", "发货", "赔",
    "正品", "直击", "底价", "活动", "抢购", "热卖", "新品", "爆款", "推荐", "标准", "券", "价", "元", "起", "sale",
];
const MEASURES: [&str; 16] =
    ["℃", "°", "%", "g", "kg", "ml", "l", "cm", "mm", "m", "克", "毫升", "升", "斤", "个", "件"];

/// Full-width ASCII to ASCII (digits, letters, punctuation), `￥` to `¥`, ideographic space to space.
fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{FFE5}' => '¥',
            '\u{3000}' => ' ',
            other => other,
        })
        .collect()
}

fn currency_of(symbol: &str) -> Option<&'static str> {
    match symbol {
        "¥" | "元" | "RMB" | "CNY" | "rmb" => Some("CNY"),
        "$" | "USD" => Some("USD"),
        "€" | "EUR" => Some("EUR"),
        "£" | "GBP" => Some("GBP"),
        "円" => Some("JPY"),
        _ => None,
    }
}

/// A number in a line: char range and the digits.
#[derive(Debug, Clone)]
struct NumberToken {
    start: usize,
    end: usize,
    text: String,
}

fn numbers(chars: &[char]) -> Vec<NumberToken> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || ((chars[i] == '.' || chars[i] == ',') && i + 1 < chars.len() && chars[i + 1].is_ascii_digit()))
            {
                i += 1;
            }
            out.push(NumberToken { start, end: i, text: chars[start..i].iter().collect() });
        } else {
            i += 1;
        }
    }
    out
}

/// Parses `digits` (with `.`/`,` separators); `comma_decimal` reads a lone `,dd` as decimals.
fn parse_amount(digits: &str, comma_decimal: bool) -> Option<f64> {
    let has_dot = digits.contains('.');
    let commas = digits.matches(',').count();
    let cleaned = if has_dot {
        digits.replace(',', "")
    } else if commas == 1 {
        let (int, frac) = digits.split_once(',')?;
        if frac.len() == 3 && !comma_decimal { format!("{int}{frac}") } else { format!("{int}.{frac}") }
    } else {
        digits.replace(',', "")
    };
    let int_digits = cleaned.split('.').next().map_or(0, str::len);
    if int_digits > 7 || cleaned.matches('.').count() > 1 {
        return None;
    }
    cleaned.parse().ok()
}

/// Evidence about a number from its own line.
#[derive(Debug, Default, Clone)]
struct Evidence {
    symbol: Option<String>,
    label: Option<String>,
    from: bool,
    unit: Option<String>,
    measure: bool,
    comma_decimal: bool,
}

fn find_label(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    LABELS.iter().find(|l| lower.contains(*l)).map(|l| (*l).to_owned())
}

fn find_symbol(text: &str) -> Option<String> {
    for s in ["¥", "$", "€", "£", "元", "円", "RMB", "CNY"] {
        if text.contains(s) {
            return Some(s.to_owned());
        }
    }
    let lower = text.to_lowercase();
    (lower.contains("kr") || lower.contains(":-")).then(|| "kr".to_owned())
}

fn line_evidence(chars: &[char], tok: &NumberToken) -> Evidence {
    let before: String = chars[..tok.start].iter().collect();
    let after: String = chars[tok.end..].iter().collect();
    let before_t = before.trim_end();
    let after_t = after.trim_start();
    let mut ev = Evidence::default();
    if before_t.to_uppercase().ends_with("RMB") {
        ev.symbol = Some("RMB".into());
    } else if let Some(s) = ["¥", "$", "€", "£"].iter().find(|s| before_t.ends_with(**s)) {
        ev.symbol = Some((*s).into());
    } else if before_t.to_lowercase().ends_with("kr") {
        ev.symbol = Some("kr".into());
        ev.comma_decimal = true;
    }
    let mut rest = after_t;
    for (mark, symbol) in
        [("元", "元"), ("円", "円"), ("kr", "kr"), ("Kr", "kr"), ("KR", "kr"), (":-", "kr"), (",-", "kr"), (".-", "kr")]
    {
        if let Some(r) = after_t.strip_prefix(mark) {
            ev.comma_decimal = symbol == "kr";
            ev.symbol = Some(symbol.into());
            rest = r;
            break;
        }
    }
    let rest = rest.trim_start();
    if let Some(unit) = rest.strip_prefix('/').or_else(|| rest.strip_prefix('每')) {
        let unit: String =
            unit.trim_start().chars().take_while(|c| c.is_alphanumeric() && *c != '起').take(5).collect();
        if !unit.is_empty() {
            ev.unit = Some(unit);
        }
    }
    let rest_l = rest.to_lowercase();
    if ev.unit.is_none() && ev.symbol.is_none() && MEASURES.iter().any(|m| rest_l.starts_with(m)) {
        ev.measure = true;
    }
    ev.from = rest.starts_with('起')
        || (rest.contains('起') && rest.chars().count() <= 3)
        || before_t.to_lowercase().ends_with("from");
    ev.label = find_label(&before);
    ev
}

/// Axis-aligned extent of a box: (x0, y0, x1, y1).
fn extent(b: &[FPoint; 4]) -> (f32, f32, f32, f32) {
    let xs = b.iter().map(|p| p[0]);
    let ys = b.iter().map(|p| p[1]);
    (
        xs.clone().fold(f32::INFINITY, f32::min),
        ys.clone().fold(f32::INFINITY, f32::min),
        xs.fold(f32::NEG_INFINITY, f32::max),
        ys.fold(f32::NEG_INFINITY, f32::max),
    )
}

/// Gap between two extents (0 when they overlap), in pixels.
fn gap(a: (f32, f32, f32, f32), b: (f32, f32, f32, f32)) -> f32 {
    let dx = (b.0 - a.2).max(a.0 - b.2).max(0.0);
    let dy = (b.1 - a.3).max(a.1 - b.3).max(0.0);
    (dx * dx + dy * dy).sqrt()
}

/// Extracts prices and a product-name candidate from `lines` (reading order).
pub fn extract(lines: &[TextLine]) -> PriceTag {
    let norm: Vec<Vec<char>> = lines.iter().map(|l| normalize(&l.text).chars().collect()).collect();
    let exts: Vec<(f32, f32, f32, f32)> = lines.iter().map(|l| extent(&l.bbox)).collect();
    // Context lines: a price word, a currency mark or 起, and no digits.
    let is_context: Vec<bool> = norm
        .iter()
        .map(|c| {
            let s: String = c.iter().collect();
            !c.iter().any(char::is_ascii_digit)
                && (find_label(&s).is_some() || find_symbol(&s).is_some() || s.trim() == "起")
                && c.len() <= 8
        })
        .collect();
    let mut candidates: Vec<(usize, NumberToken, Evidence, bool)> = Vec::new();
    for (li, chars) in norm.iter().enumerate() {
        let text: String = chars.iter().collect();
        let toks = numbers(chars);
        let bare = toks.len() == 1 && text.trim().chars().count() == toks[0].end - toks[0].start;
        for tok in toks {
            let mut ev = line_evidence(chars, &tok);
            if ev.label.is_none() {
                ev.label = find_label(&text);
            }
            candidates.push((li, tok, ev, bare));
        }
    }
    // Assign each context line to the nearest number line within 1.5 of its height.
    let mut context_of: Vec<Vec<usize>> = vec![Vec::new(); lines.len()];
    for (ci, _) in is_context.iter().enumerate().filter(|(_, c)| **c) {
        let best = candidates
            .iter()
            .filter(|(_, _, ev, _)| !ev.measure)
            .map(|(li, ..)| *li)
            .filter(|li| *li != ci)
            .map(|li| {
                let h = (exts[li].3 - exts[li].1).max(1.0);
                (li, gap(exts[ci], exts[li]) / h)
            })
            .filter(|(_, g)| *g <= 1.5)
            .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
        if let Some((li, _)) = best
            && !context_of[li].contains(&ci)
        {
            context_of[li].push(ci);
        }
    }
    let mut prices = Vec::new();
    let mut price_lines = vec![false; lines.len()];
    for (li, tok, mut ev, bare) in candidates {
        for &ci in &context_of[li] {
            let s: String = norm[ci].iter().collect();
            if ev.symbol.is_none() {
                ev.symbol = find_symbol(&s);
            }
            if ev.label.is_none() {
                ev.label = find_label(&s);
            }
            if s.trim() == "起" || (s.contains('起') && exts[ci].0 >= exts[li].0) {
                ev.from = true;
            }
        }
        let evidence = ev.symbol.is_some() || ev.label.is_some() || ev.from || ev.unit.is_some();
        let decimal = tok.text.contains('.') || tok.text.contains(',');
        let is_price = !ev.measure && (evidence || (bare && decimal && !context_of[li].is_empty()));
        if !is_price {
            continue;
        }
        let Some(amount) = parse_amount(&tok.text, ev.comma_decimal) else {
            continue;
        };
        price_lines[li] = true;
        prices.push(Price {
            amount,
            text: tok.text,
            currency: ev.symbol.as_deref().and_then(currency_of).map(str::to_owned),
            symbol: ev.symbol,
            label: ev.label,
            from: ev.from,
            unit: ev.unit,
            line: li,
            bbox: lines[li].bbox,
        });
    }
    let product = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            let t = normalize(&l.text).to_lowercase();
            !price_lines[*i]
                && !is_context[*i]
                && !PROMO.iter().any(|p| t.contains(p))
                && t.chars().filter(|c| c.is_alphabetic()).count() >= 2
        })
        .max_by(|a, b| {
            let ha = exts[a.0].3 - exts[a.0].1;
            let hb = exts[b.0].3 - exts[b.0].1;
            ha.partial_cmp(&hb).unwrap_or(std::cmp::Ordering::Equal).then(b.0.cmp(&a.0))
        })
        .map(|(_, l)| l.text.clone());
    PriceTag { prices, product }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, x0: f32, y0: f32, x1: f32, y1: f32) -> TextLine {
        TextLine { text: text.into(), score: 1.0, bbox: [[x0, y0], [x1, y0], [x1, y1], [x0, y1]] }
    }

    /// The lines RapidOCR reads on ocr/unlabeled/ch_en_num.jpg (a detergent price poster).
    fn poster() -> Vec<TextLine> {
        vec![
            line("正品促销", 0.0, 0.0, 322.0, 108.0),
            line("大桶装更划算", 67.0, 93.0, 256.0, 128.0),
            line("强力去污符合国标", 64.0, 140.0, 259.0, 167.0),
            line("-40℃深度防冻不结冰", 104.0, 167.0, 219.0, 183.0),
            line("10.0起", 32.0, 232.0, 82.0, 255.0),
            line("日常价￥", 33.0, 225.0, 63.0, 236.0),
            line("直击", 136.0, 220.0, 190.0, 251.0),
            line("10.0起", 254.0, 232.0, 304.0, 254.0),
            line("日常价¥", 258.0, 225.0, 288.0, 236.0),
            line("底价", 136.0, 242.0, 190.0, 273.0),
            line("5.8", 124.0, 285.0, 210.0, 340.0),
            line("券后价¥", 97.0, 318.0, 130.0, 330.0),
            line("起", 203.0, 314.0, 225.0, 335.0),
            line("惊喜福利不容错过", 111.0, 340.0, 212.0, 356.0),
        ]
    }

    /// (amount, currency, label, from, line)
    type Summary<'a> = (f64, Option<&'a str>, Option<&'a str>, bool, usize);

    #[test]
    fn the_poster_yields_its_three_prices() {
        let tag = extract(&poster());
        let got: Vec<Summary> =
            tag.prices.iter().map(|p| (p.amount, p.currency.as_deref(), p.label.as_deref(), p.from, p.line)).collect();
        assert_eq!(
            got,
            vec![
                (10.0, Some("CNY"), Some("日常价"), true, 4),
                (10.0, Some("CNY"), Some("日常价"), true, 7),
                (5.8, Some("CNY"), Some("券后价"), true, 10),
            ]
        );
        assert_eq!(tag.product.as_deref(), Some("强力去污符合国标"));
    }

    #[test]
    fn currency_marks_units_and_measures() {
        let one = |t: &str| extract(&[line(t, 0.0, 0.0, 100.0, 20.0)]).prices;
        let p = one("苹果 ￥12.80/斤");
        assert_eq!((p[0].amount, p[0].unit.as_deref(), p[0].currency.as_deref()), (12.8, Some("斤"), Some("CNY")));
        let p = one("Kaffe 24,90 kr");
        assert_eq!((p[0].amount, p[0].symbol.as_deref(), p[0].currency.as_deref()), (24.9, Some("kr"), None));
        let p = one("$1,299.00");
        assert_eq!((p[0].amount, p[0].currency.as_deref()), (1299.0, Some("USD")));
        let p = one("售价 39元起");
        assert_eq!((p[0].amount, p[0].label.as_deref(), p[0].from), (39.0, Some("售价"), true));
        assert!(one("-40℃深度防冻").is_empty());
        assert!(one("净含量 500g").is_empty());
        assert!(one("电话 13800138000").is_empty());
        assert!(one("第3代").is_empty());
    }
}
