//! Outputs of an annotation job: `labels.csv` (one row per input file) and `report.html`
//! (per collection: the decision graph, cluster galleries, the noise with reasons, duplicates
//! beside their originals).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;

use anyhow::Context;
use sightline_blob::BlobStore;
use sightline_messages::annotations::{ClusterOut, DedupOut};
use sightline_messages::{ItemOutcome, ItemRecord};
use uuid::Uuid;

use super::csv_field;

/// The label of one input file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LabelRow {
    /// Collection.
    pub collection: String,
    /// File name within the collection.
    pub file: String,
    /// `product`, `noise` or `duplicate`.
    pub label: String,
    /// Cluster id, when clustered.
    pub cluster: Option<u64>,
    /// The original, for duplicates (file name within the collection).
    pub duplicate_of: Option<String>,
    /// Why, for noise.
    pub reason: Option<String>,
}

/// The record's file name within its collection.
pub(crate) fn file_in_collection(record: &ItemRecord) -> String {
    record.name.strip_prefix(&format!("{}/", record.collection)).unwrap_or(&record.name).to_owned()
}

/// The label of each record.
pub fn label_rows(records: &[ItemRecord]) -> Vec<LabelRow> {
    records
        .iter()
        .map(|r| {
            let cluster = r.annotation::<ClusterOut>().ok().flatten().map(|c| u64::from(c.cluster));
            let dedup = r.annotation::<DedupOut>().ok().flatten();
            let (label, duplicate_of) = match r.outcome {
                ItemOutcome::Ok => ("product", None),
                ItemOutcome::Duplicate => {
                    let of = dedup
                        .as_ref()
                        .and_then(DedupOut::original)
                        .map(|o| o.strip_prefix(&format!("{}/", r.collection)).unwrap_or(o).to_owned());
                    ("duplicate", of)
                }
                ItemOutcome::Filtered | ItemOutcome::Failed => ("noise", None),
            };
            LabelRow {
                collection: r.collection.clone(),
                file: file_in_collection(r),
                label: label.to_owned(),
                cluster,
                duplicate_of,
                reason: r.reason.clone(),
            }
        })
        .collect()
}

/// Writes `labels.csv`.
pub fn write_labels(out: &Path, rows: &[LabelRow]) -> anyhow::Result<()> {
    let mut csv = String::from("collection,file,label,cluster,duplicate_of\n");
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{}",
            csv_field(&r.collection),
            csv_field(&r.file),
            r.label,
            r.cluster.map(|c| c.to_string()).unwrap_or_default(),
            csv_field(r.duplicate_of.as_deref().unwrap_or("")),
        );
    }
    std::fs::write(out.join("labels.csv"), csv).context("write labels.csv")
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A small JPEG thumbnail as a data URL, or `None` if the image cannot be read.
async fn thumbnail(blob: &dyn BlobStore, key: &str) -> Option<String> {
    let bytes = blob.get(key).await.ok()?;
    tokio::task::spawn_blocking(move || {
        let (_, img) = sightline_imaging::decode(&bytes, None, &sightline_imaging::Limits::default()).ok()?;
        let thumb = img.thumbnail(120, 120).to_rgb8();
        let mut buf = Vec::new();
        image::DynamicImage::ImageRgb8(thumb).write_to(&mut Cursor::new(&mut buf), image::ImageFormat::Jpeg).ok()?;
        Some(format!("data:image/jpeg;base64,{}", base64(&buf)))
    })
    .await
    .ok()
    .flatten()
}

/// Escapes text for HTML and SVG (quotes included).
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[derive(serde::Deserialize)]
struct Decision {
    names: Vec<String>,
    rho: Vec<f32>,
    delta: Vec<f32>,
    centres: Vec<usize>,
}

/// The decision graph (ρ against δ, centres marked) as inline SVG.
fn decision_svg(d: &Decision) -> String {
    let (w, h, pad) = (360.0f32, 240.0f32, 30.0f32);
    if d.rho.is_empty() {
        return "<p class=muted>too few images for a decision graph</p>".to_owned();
    }
    let rmax = d.rho.iter().copied().fold(f32::MIN, f32::max).max(1e-9);
    let dmax = d.delta.iter().copied().fold(f32::MIN, f32::max).max(1e-9);
    let mut svg = format!(
        "<svg width='{w}' height='{h}' viewBox='0 0 {w} {h}' xmlns='http://www.w3.org/2000/svg'>\
         <rect width='100%' height='100%' fill='#fff' stroke='#ccc'/>\
         <text x='{}' y='{}' font-size='11' text-anchor='middle'>ρ (local density)</text>\
         <text x='10' y='{}' font-size='11' transform='rotate(-90 10 {})' text-anchor='middle'>δ</text>",
        w / 2.0,
        h - 6.0,
        h / 2.0,
        h / 2.0
    );
    for (i, (r, dl)) in d.rho.iter().zip(&d.delta).enumerate() {
        let x = pad + (w - 2.0 * pad) * r / rmax;
        let y = h - pad - (h - 2.0 * pad) * dl / dmax;
        let centre = d.centres.contains(&i);
        let (fill, radius) = if centre { ("#d62728", 5.5) } else { ("#1f77b4", 3.0) };
        let name = d.names.get(i).map(String::as_str).unwrap_or("");
        let _ = write!(
            svg,
            "<circle cx='{x:.1}' cy='{y:.1}' r='{radius}' fill='{fill}' opacity='0.8'><title>{}</title></circle>",
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Writes `report.html`.
pub async fn write_report(out: &Path, blob: &dyn BlobStore, job: Uuid, records: &[ItemRecord]) -> anyhow::Result<()> {
    let rows = label_rows(records);
    let mut by_collection: BTreeMap<&str, Vec<(&ItemRecord, &LabelRow)>> = BTreeMap::new();
    for (r, row) in records.iter().zip(&rows) {
        by_collection.entry(&r.collection).or_default().push((r, row));
    }
    let mut html = String::from(
        "<!doctype html><html><head><meta charset='utf-8'><title>Sightline annotation report</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em;color:#222}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}\
         .grid{display:flex;flex-wrap:wrap;gap:8px}.card{width:124px;font-size:11px;word-break:break-all}\
         .card img{width:120px;height:120px;object-fit:contain;background:#f4f4f4;border:2px solid #ccc}\
         .product img{border-color:#2ca02c}.noise img{border-color:#d62728}.duplicate img{border-color:#999}\
         .muted{color:#777}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #eee}\
         </style></head><body><h1>Annotation report</h1>",
    );
    let _ = write!(html, "<p class=muted>job {job}</p>");
    let mut thumbs: BTreeMap<u64, String> = BTreeMap::new();
    for r in records {
        if let Some(key) = &r.key
            && let Some(t) = thumbnail(blob, key).await
        {
            thumbs.insert(r.item, t);
        }
    }
    let card = |r: &ItemRecord, row: &LabelRow, note: &str| -> String {
        let img = thumbs
            .get(&r.item)
            .map(|t| format!("<img src='{t}'>"))
            .unwrap_or_else(|| "<img alt='unreadable'>".to_owned());
        format!(
            "<div class='card {}'>{img}<br>{}<br><span class=muted>{}</span></div>",
            row.label,
            esc(&row.file),
            esc(note)
        )
    };
    for (collection, items) in &by_collection {
        let count = |l: &str| items.iter().filter(|(_, row)| row.label == l).count();
        let _ = write!(
            html,
            "<h2>{}</h2><p>{} images: {} product, {} noise, {} duplicate</p>",
            esc(collection),
            items.len(),
            count("product"),
            count("noise"),
            count("duplicate")
        );
        let decision_key = sightline_cluster::stage::decision_key(job, collection);
        if let Ok(bytes) = blob.get(&decision_key).await
            && let Ok(d) = serde_json::from_slice::<Decision>(&bytes)
        {
            let _ = write!(html, "<h3>Decision graph</h3>{}<p class=muted>red: cluster centres</p>", decision_svg(&d));
        }
        let mut clusters: BTreeMap<Option<u64>, Vec<String>> = BTreeMap::new();
        for (r, row) in items.iter().filter(|(_, row)| row.label == "product") {
            clusters.entry(row.cluster).or_default().push(card(r, row, ""));
        }
        for (cluster, cards) in &clusters {
            let title = cluster.map(|c| format!("cluster {c}")).unwrap_or_else(|| "unclustered".to_owned());
            let _ = write!(
                html,
                "<h3>Product: {title} ({} images)</h3><div class=grid>{}</div>",
                cards.len(),
                cards.join("")
            );
        }
        let noise: Vec<String> = items
            .iter()
            .filter(|(_, row)| row.label == "noise")
            .map(|(r, row)| card(r, row, row.reason.as_deref().unwrap_or("")))
            .collect();
        if !noise.is_empty() {
            let _ = write!(html, "<h3>Noise ({})</h3><div class=grid>{}</div>", noise.len(), noise.join(""));
        }
        let dups: Vec<String> = items
            .iter()
            .filter(|(_, row)| row.label == "duplicate")
            .map(|(r, row)| {
                let original = items.iter().find(|(_, o)| Some(&o.file) == row.duplicate_of.as_ref());
                let orig_card = original.map(|(or, orow)| card(or, orow, "original")).unwrap_or_default();
                format!(
                    "<div class=grid>{}{orig_card}</div>",
                    card(r, row, &format!("duplicate of {}", row.duplicate_of.as_deref().unwrap_or("?")))
                )
            })
            .collect();
        if !dups.is_empty() {
            let _ = write!(html, "<h3>Duplicates ({})</h3>{}", dups.len(), dups.join(""));
        }
    }
    html.push_str("</body></html>");
    std::fs::write(out.join("report.html"), html).context("write report.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (input, expected) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn records_become_labels() {
        let mut ok = record(0, ItemOutcome::Ok);
        let cluster = ClusterOut { cluster: 2, halo: false, label: "product".into(), reason: None };
        ok.set_annotation(&cluster).expect("cluster");
        let mut dup = record(1, ItemOutcome::Duplicate);
        let of = DedupOut::Duplicate {
            of: "milk/img0.jpg".into(),
            of_item: 0,
            of_job: None,
            kind: sightline_messages::annotations::DuplicateKind::Exact,
            distance: 0,
            evidence: sightline_messages::annotations::Evidence::Bytes,
            phash: "00".into(),
        };
        dup.set_annotation(&of).expect("dedup");
        let rows = label_rows(&[ok, dup, record(2, ItemOutcome::Filtered)]);
        assert_eq!((rows[0].label.as_str(), rows[0].cluster), ("product", Some(2)));
        assert_eq!((rows[1].label.as_str(), rows[1].duplicate_of.as_deref()), ("duplicate", Some("img0.jpg")));
        assert_eq!(rows[2].label, "noise");
        assert_eq!(rows[0].file, "img0.jpg");
    }

    fn record(item: u64, outcome: ItemOutcome) -> ItemRecord {
        ItemRecord {
            job_id: Uuid::nil(),
            item,
            collection: "milk".into(),
            name: format!("milk/img{item}.jpg"),
            outcome,
            stage: "x".into(),
            key: None,
            format: None,
            width: None,
            height: None,
            reason: None,
            annotations: Default::default(),
        }
    }
}
