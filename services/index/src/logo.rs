//! Logo search, the model-free ranking (docs/logos.md).
//!
//! A query photo is cut into candidate regions by the detect stage
//! (`sightline_detect::regions`, from its crop and text lines) and each region is embedded
//! like any image; a logo catalogue (one or a few logo images per brand, no training) is an
//! ordinary [`SearchIndex`] of their embeddings. A logo's score for the query is its best cosine
//! over the query's regions, a brand's is its best logo's, plus a weight times how well the
//! query's OCR text names the brand ([`name_score`]).

use serde::Serialize;

use crate::search::{SearchIndex, SearchOptions, bigrams};

/// Default weight of the brand name read in the query (OCR) in a brand's score: score = best
/// cosine + weight × [`name_score`] (docs/logos.md).
pub const DEFAULT_TEXT_WEIGHT: f32 = 0.5;

/// A logo catalogue item ranked for a query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LogoMatch {
    /// Position in [`SearchIndex::items`].
    pub index: usize,
    /// Its best cosine over the query's regions.
    pub score: f32,
    /// The region that gave it (position in the query's region list).
    pub region: usize,
}

/// The `k` best logos for a query whose regions embed to `regions` (L2-normalised, one per
/// region, in the order of [`regions_from_detect`]), best first: each logo scores its best
/// cosine over the regions. Each region fetches its `max(4k, 50)` visually nearest logos (exact
/// below the index's ANN threshold), so on small catalogues every logo is scored. Text is not
/// used (a logo image has no OCR text worth matching).
pub fn rank(index: &SearchIndex, regions: &[Vec<f32>], k: usize) -> Vec<LogoMatch> {
    let opts = SearchOptions { k: (4 * k).max(50), candidates: (4 * k).max(50), text_weight: 0.0 };
    let mut best: Vec<Option<LogoMatch>> = vec![None; index.len()];
    for (r, v) in regions.iter().enumerate() {
        if v.len() != index.dim() {
            continue;
        }
        for m in index.search(v, "", &opts) {
            let slot = &mut best[m.index];
            if slot.is_none_or(|b| m.visual > b.score) {
                *slot = Some(LogoMatch { index: m.index, score: m.visual, region: r });
            }
        }
    }
    let mut out: Vec<LogoMatch> = best.into_iter().flatten().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    out.truncate(k);
    out
}

/// The brand of a logo catalogue item: its first folder (`Arla/front.png`), else its file name
/// without extension and without a trailing `-<digits>` (`Arla-2.png`: a second Arla logo).
pub fn brand_of(item: &str) -> String {
    if let Some((dir, _)) = item.split_once('/') {
        return dir.to_owned();
    }
    let stem = item.rsplit_once('.').map_or(item, |(stem, _)| stem);
    match stem.rsplit_once('-') {
        Some((brand, n)) if !brand.is_empty() && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            brand.to_owned()
        }
        _ => stem.to_owned(),
    }
}

/// A brand found in a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrandMatch {
    /// The brand ([`brand_of`] its best logo).
    pub brand: String,
    /// Which of the searched catalogues (parts) the best logo is in.
    #[serde(skip)]
    pub part: usize,
    /// The best logo's position in that part.
    #[serde(skip)]
    pub index: usize,
    /// `visual` + text weight × `text`.
    pub score: f32,
    /// The best logo's best cosine over the regions.
    pub visual: f32,
    /// How well the query's OCR text names the brand ([`name_score`]).
    pub text: f32,
    /// The region that matched best (position in the query's region list).
    #[serde(skip)]
    pub region: usize,
}

/// The `k` brands best found in a query whose regions embed to `regions`, over one catalogue
/// served as `parts` (a snapshot and a delta, or one index): each brand's best logo's best
/// cosine, plus `text_weight` × how well the query's OCR `text` names the brand; best first.
pub fn brands(parts: &[&SearchIndex], regions: &[Vec<f32>], text: &str, text_weight: f32, k: usize) -> Vec<BrandMatch> {
    let mut best: Vec<BrandMatch> = Vec::new();
    for (p, part) in parts.iter().enumerate() {
        for m in rank(part, regions, part.len()) {
            let brand = brand_of(&part.items()[m.index].name);
            let found = BrandMatch {
                brand,
                part: p,
                index: m.index,
                score: m.score,
                visual: m.score,
                text: 0.0,
                region: m.region,
            };
            match best.iter_mut().find(|b| b.brand == found.brand) {
                Some(b) if b.visual >= found.visual => {}
                Some(b) => *b = found,
                None => best.push(found),
            }
        }
    }
    for b in &mut best {
        b.text = if text_weight > 0.0 { name_score(&b.brand, text) } else { 0.0 };
        b.score = b.visual + text_weight * b.text;
    }
    best.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.brand.cmp(&b.brand)));
    best.truncate(k);
    best
}

/// How well a query's OCR text names `brand`: 1 when the brand's letters and digits (lower
/// case, "God-Morgon" → "godmorgon") occur in the text's, else the share of the brand's
/// character bigrams the text has (OCR drops and misreads letters); 0 without text. Wordmark
/// logos are names, and the OCR stage reads them far more reliably than an ImageNet embedding
/// tells them apart (docs/logos.md).
pub fn name_score(brand: &str, text: &str) -> f32 {
    let squash = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>();
    let (b, t) = (squash(brand), squash(text));
    if b.is_empty() || t.is_empty() {
        return 0.0;
    }
    if t.contains(&b) {
        return 1.0;
    }
    let (bb, tb) = (bigrams(&b), bigrams(&t));
    bb.iter().filter(|g| tb.contains(g)).count() as f32 / bb.len().max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{AnnParams, CatalogItem};

    #[test]
    fn a_brand_is_named_when_its_letters_are_in_the_text() {
        assert_eq!(name_score("God-Morgon", "GOD MOR GON orange 100%"), 1.0);
        assert_eq!(name_score("Tropicana", "PURE PREMIUM Tropicana"), 1.0);
        // "alpr0" keeps three of alpro's four bigrams (al, lp, pr; not ro).
        assert_eq!(name_score("Alpro", "alpr0 SOYA"), 0.75);
        assert_eq!(name_score("Arla", ""), 0.0);
        assert_eq!(name_score("Oatly", "Valio vanilj"), 0.0);
    }

    fn unit(dim: usize, hot: &[(usize, f32)]) -> Vec<f32> {
        let mut v = vec![0.0; dim];
        for &(i, x) in hot {
            v[i] = x;
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn a_logo_scores_its_best_region_and_a_brand_its_best_logo() {
        let mut index = SearchIndex::new(4);
        for (name, v) in [
            ("alpro/a.png", unit(4, &[(0, 1.0)])),
            ("alpro/b.png", unit(4, &[(0, 1.0), (1, 0.2)])),
            ("arla/a.png", unit(4, &[(1, 1.0)])),
            ("oatly/a.png", unit(4, &[(2, 1.0)])),
        ] {
            index.add(CatalogItem { name: name.into(), text: String::new() }, &v).expect("add");
        }
        index.build(AnnParams::default(), usize::MAX).expect("build");
        // Region 0 (the whole image) looks like nothing much; region 1 (a text line) is Alpro's.
        let regions = vec![unit(4, &[(3, 1.0), (1, 0.3)]), unit(4, &[(0, 1.0), (3, 0.1)]), vec![1.0]];
        let m = rank(&index, &regions, 3);
        assert_eq!(m.iter().map(|m| m.index).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(m[0].region, 1);
        assert!((m[0].score - 0.995).abs() < 1e-3, "{m:?}");
        assert!(m.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(m[2].region, 0, "Arla's best is the whole image");
        let brand = |i: usize| index.items()[i].name.split('/').next().unwrap_or_default().to_owned();
        let by_brand = brands(&[&index], &regions, "", 0.0, 5);
        assert_eq!(by_brand.iter().map(|m| m.index).collect::<Vec<_>>(), vec![0, 2, 3]);
        assert!(by_brand.iter().all(|b| b.brand == brand(b.index)));
        assert!(rank(&index, &[], 3).is_empty());

        // Brands over two parts (a snapshot and a delta), with the OCR name.
        let mut delta = SearchIndex::new(4);
        delta.add(CatalogItem { name: "oatly/b.png".into(), text: String::new() }, &unit(4, &[(3, 1.0)])).expect("add");
        let found = brands(&[&index, &delta], &regions, "", 0.5, 3);
        let names: Vec<&str> = found.iter().map(|b| b.brand.as_str()).collect();
        assert_eq!(names, ["alpro", "oatly", "arla"], "oatly's best logo is in the delta");
        assert_eq!((found[1].part, found[1].index, found[1].region), (1, 0, 0));
        let named = brands(&[&index, &delta], &regions, "ARLA mellanmjölk", 1.0, 3);
        assert_eq!(named[0].brand, "arla", "the name read in the photo lifts its brand");
        assert!((named[0].score - (named[0].visual + 1.0)).abs() < 1e-6);
        assert_eq!((named[1].brand.as_str(), named[1].text), ("alpro", 0.0));
    }

    #[test]
    fn a_logo_files_brand_is_its_folder_or_its_name() {
        assert_eq!(brand_of("Arla/front.png"), "Arla");
        assert_eq!(brand_of("God-Morgon.png"), "God-Morgon");
        assert_eq!(brand_of("Arla-2.png"), "Arla");
        assert_eq!(brand_of("7-Eleven.jpg"), "7-Eleven");
        assert_eq!(brand_of("-1.png"), "-1");
        assert_eq!(brand_of("Valio"), "Valio");
    }
}
