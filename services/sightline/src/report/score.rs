//! Scoring `labels.csv` against `truth.csv`: precision and recall of the `product` label per
//! collection and overall, each duplicate group counted once, and how many re-posted copies
//! were reported as duplicates.
//!
//! Definitions (shared by the evaluation example and the component test):
//! - a **group** is a truth row without `duplicate_of` plus every row whose `duplicate_of`
//!   names it (an original and its re-posted copies); its true label is the original's;
//! - a group is **predicted product** when any of its files is labelled `product` (so a copy
//!   labelled `duplicate` beside a `product` original costs nothing, and a pipeline that kept
//!   the copy instead of the original is not punished either);
//! - a truth file missing from `labels.csv` counts as not predicted product, and is listed;
//! - precision = TP / (TP + FP), recall = TP / (TP + FN) over groups; overall figures sum the
//!   counts of every collection (micro average);
//! - a copy is **found** when it or its original is labelled `duplicate` with `duplicate_of`
//!   naming another file of the same group; a **false duplicate** is a file labelled
//!   `duplicate` whose `duplicate_of` is not in its group.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// Splits CSV text into rows of fields (RFC 4180 quoting; CRLF or LF line ends).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows.retain(|r| !(r.len() == 1 && r[0].is_empty()));
    rows
}

/// CSV rows as maps from the header's column names, with the header checked for `columns`.
fn records(text: &str, columns: &[&str], what: &str) -> Result<Vec<BTreeMap<String, String>>, String> {
    let mut rows = parse_csv(text).into_iter();
    let header = rows.next().ok_or_else(|| format!("{what}: empty"))?;
    for c in columns {
        if !header.iter().any(|h| h == c) {
            return Err(format!("{what}: no column {c:?} in header {header:?}"));
        }
    }
    Ok(rows
        .map(|r| header.iter().cloned().zip(r.into_iter().chain(std::iter::repeat(String::new()))).collect())
        .collect())
}

/// One row of `truth.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthRow {
    /// Collection.
    pub collection: String,
    /// File within the collection.
    pub file: String,
    /// True for `product`.
    pub product: bool,
    /// The original, for a re-posted copy.
    pub duplicate_of: Option<String>,
}

/// Reads `truth.csv` (`collection,file,label,duplicate_of`).
pub fn parse_truth(text: &str) -> Result<Vec<TruthRow>, String> {
    records(text, &["collection", "file", "label", "duplicate_of"], "truth.csv")?
        .into_iter()
        .map(|r| {
            let product = match r["label"].as_str() {
                "product" => true,
                "noise" => false,
                other => return Err(format!("truth.csv: unknown label {other:?}")),
            };
            Ok(TruthRow {
                collection: r["collection"].clone(),
                file: r["file"].clone(),
                product,
                duplicate_of: Some(r["duplicate_of"].clone()).filter(|d| !d.is_empty()),
            })
        })
        .collect()
}

/// One row of `labels.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    /// `product`, `noise` or `duplicate`.
    pub label: String,
    /// Cluster id, when clustered.
    pub cluster: Option<u64>,
    /// The original, for duplicates.
    pub duplicate_of: Option<String>,
}

/// Labels by (collection, file).
pub type Labels = BTreeMap<(String, String), LabelRow>;

/// Reads `labels.csv` (`collection,file,label,cluster,duplicate_of`).
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    let mut out = Labels::new();
    for r in records(text, &["collection", "file", "label", "cluster", "duplicate_of"], "labels.csv")? {
        let label = r["label"].clone();
        if !["product", "noise", "duplicate"].contains(&label.as_str()) {
            return Err(format!("labels.csv: unknown label {label:?} for {}/{}", r["collection"], r["file"]));
        }
        let row = LabelRow {
            label,
            cluster: r["cluster"].parse().ok(),
            duplicate_of: Some(r["duplicate_of"].clone()).filter(|d| !d.is_empty()),
        };
        if out.insert((r["collection"].clone(), r["file"].clone()), row).is_some() {
            return Err(format!("labels.csv: two rows for {}/{}", r["collection"], r["file"]));
        }
    }
    Ok(out)
}

/// Confusion counts of the `product` label over duplicate groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Product groups predicted product.
    pub tp: usize,
    /// Noise groups predicted product.
    pub fp: usize,
    /// Product groups not predicted product.
    pub fn_: usize,
    /// Noise groups not predicted product.
    pub tn: usize,
}

impl Counts {
    /// TP / (TP + FP); `None` when nothing was predicted product.
    pub fn precision(&self) -> Option<f64> {
        (self.tp + self.fp > 0).then(|| self.tp as f64 / (self.tp + self.fp) as f64)
    }

    /// TP / (TP + FN); `None` when there is no product.
    pub fn recall(&self) -> Option<f64> {
        (self.tp + self.fn_ > 0).then(|| self.tp as f64 / (self.tp + self.fn_) as f64)
    }

    /// Harmonic mean of precision and recall (0 when either is 0 or undefined).
    pub fn f1(&self) -> f64 {
        match (self.precision(), self.recall()) {
            (Some(p), Some(r)) if p + r > 0.0 => 2.0 * p * r / (p + r),
            _ => 0.0,
        }
    }

    fn add(&mut self, other: &Counts) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
    }
}

/// How the re-posted copies were reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DupCounts {
    /// Copies in the truth.
    pub copies: usize,
    /// Copies reported as duplicates of their group.
    pub found: usize,
    /// Files labelled `duplicate` of a file outside their group.
    pub false_duplicates: usize,
}

/// The scores of one labelling.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    /// Per collection.
    pub collections: BTreeMap<String, Counts>,
    /// Sum over collections.
    pub overall: Counts,
    /// Duplicate reporting.
    pub duplicates: DupCounts,
    /// Truth files with no row in the labels (`collection/file`).
    pub missing: Vec<String>,
    /// Labelled files that are not in the truth (`collection/file`).
    pub unknown: Vec<String>,
    /// Misclassified groups, by their original (`collection/file`): noise called product.
    pub false_positives: Vec<String>,
    /// Product groups not called product.
    pub false_negatives: Vec<String>,
}

/// The truth's duplicate group (its original's file name) of every file, by collection.
pub fn groups(truth: &[TruthRow]) -> BTreeMap<(String, String), String> {
    truth
        .iter()
        .map(|t| ((t.collection.clone(), t.file.clone()), t.duplicate_of.clone().unwrap_or_else(|| t.file.clone())))
        .collect()
}

/// Scores `labels` against `truth` (see the module documentation for the definitions).
pub fn score(truth: &[TruthRow], labels: &Labels) -> Score {
    let group_of = groups(truth);
    let mut out = Score::default();
    // (collection, original) -> (true product, predicted product)
    let mut verdicts: BTreeMap<(String, String), (bool, bool)> = BTreeMap::new();
    for t in truth.iter().filter(|t| t.duplicate_of.is_none()) {
        verdicts.insert((t.collection.clone(), t.file.clone()), (t.product, false));
    }
    for t in truth {
        let key = (t.collection.clone(), t.file.clone());
        let group = (t.collection.clone(), group_of[&key].clone());
        if t.duplicate_of.is_some() {
            out.duplicates.copies += 1;
        }
        let Some(label) = labels.get(&key) else {
            out.missing.push(format!("{}/{}", t.collection, t.file));
            continue;
        };
        if let Some(v) = verdicts.get_mut(&group) {
            v.1 |= label.label == "product";
        }
        if t.duplicate_of.is_some() {
            let named_in_group = |row: Option<&LabelRow>| {
                row.filter(|r| r.label == "duplicate")
                    .and_then(|r| r.duplicate_of.as_ref())
                    .is_some_and(|of| group_of.get(&(t.collection.clone(), of.clone())) == Some(&group.1))
            };
            let original = labels.get(&group);
            if named_in_group(Some(label)) || named_in_group(original) {
                out.duplicates.found += 1;
            }
        }
    }
    for ((collection, file), label) in labels {
        let key = (collection.clone(), file.clone());
        let Some(group) = group_of.get(&key) else {
            out.unknown.push(format!("{collection}/{file}"));
            continue;
        };
        if label.label == "duplicate" {
            let of_group = label.duplicate_of.as_ref().and_then(|of| group_of.get(&(collection.clone(), of.clone())));
            if of_group != Some(group) {
                out.duplicates.false_duplicates += 1;
            }
        }
    }
    for ((collection, file), (truth, predicted)) in verdicts {
        let c = out.collections.entry(collection.clone()).or_default();
        match (truth, predicted) {
            (true, true) => c.tp += 1,
            (false, true) => {
                c.fp += 1;
                out.false_positives.push(format!("{collection}/{file}"));
            }
            (true, false) => {
                c.fn_ += 1;
                out.false_negatives.push(format!("{collection}/{file}"));
            }
            (false, false) => c.tn += 1,
        }
    }
    let mut overall = Counts::default();
    for c in out.collections.values() {
        overall.add(c);
    }
    out.overall = overall;
    out
}

/// `0.973` as `97.3%`, `None` as `-`.
pub fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}%", 100.0 * v)).unwrap_or_else(|| "-".to_owned())
}

/// Every collection named in `truth`, sorted.
pub fn collections(truth: &[TruthRow]) -> BTreeSet<String> {
    truth.iter().map(|t| t.collection.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUTH: &str = "collection,file,label,duplicate_of\r\n\
        a,p1.jpg,product,\r\na,p2.jpg,product,\r\na,n1.jpg,noise,\r\na,dup0.jpg,product,p1.jpg\r\n\
        b,p1.jpg,product,\r\nb,n1.jpg,noise,\r\n";

    fn labels(rows: &[(&str, &str, &str, &str)]) -> Labels {
        let mut text = String::from("collection,file,label,cluster,duplicate_of\n");
        for (c, f, l, d) in rows {
            text.push_str(&format!("{c},{f},{l},,{d}\n"));
        }
        parse_labels(&text).unwrap()
    }

    #[test]
    fn csv_quoting_and_crlf() {
        let rows = parse_csv("a,\"b,c\",\"say \"\"hi\"\"\"\r\nd,,\n");
        assert_eq!(rows, vec![vec!["a", "b,c", "say \"hi\""], vec!["d", "", ""]]);
    }

    #[test]
    fn duplicate_groups_count_once() {
        let truth = parse_truth(TRUTH).unwrap();
        let l = labels(&[
            ("a", "p1.jpg", "duplicate", "dup0.jpg"),
            ("a", "dup0.jpg", "product", ""),
            ("a", "p2.jpg", "noise", ""),
            ("a", "n1.jpg", "product", ""),
            ("b", "p1.jpg", "product", ""),
            ("b", "n1.jpg", "noise", ""),
        ]);
        let s = score(&truth, &l);
        // a: group p1 product (via its copy), p2 missed, n1 false positive.
        assert_eq!(s.collections["a"], Counts { tp: 1, fp: 1, fn_: 1, tn: 0 });
        assert_eq!(s.collections["b"], Counts { tp: 1, fp: 0, fn_: 0, tn: 1 });
        assert_eq!(s.overall, Counts { tp: 2, fp: 1, fn_: 1, tn: 1 });
        assert_eq!(s.duplicates, DupCounts { copies: 1, found: 1, false_duplicates: 0 });
        assert_eq!(s.false_positives, vec!["a/n1.jpg"]);
        assert_eq!(s.false_negatives, vec!["a/p2.jpg"]);
        assert!((s.overall.precision().unwrap() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn missing_files_and_false_duplicates_are_reported() {
        let truth = parse_truth(TRUTH).unwrap();
        let l = labels(&[
            ("a", "p1.jpg", "product", ""),
            ("a", "p2.jpg", "duplicate", "p1.jpg"),
            ("a", "n1.jpg", "noise", ""),
            ("b", "p1.jpg", "product", ""),
            ("b", "zzz.jpg", "noise", ""),
        ]);
        let s = score(&truth, &l);
        assert_eq!(s.missing, vec!["a/dup0.jpg", "b/n1.jpg"]);
        assert_eq!(s.unknown, vec!["b/zzz.jpg"]);
        assert_eq!(s.duplicates, DupCounts { copies: 1, found: 0, false_duplicates: 1 });
        assert_eq!(s.collections["a"], Counts { tp: 1, fp: 0, fn_: 1, tn: 1 });
    }
}
