//! Point sets: a dense row-major `n × dim` matrix of `f32`, and the CSV format the
//! `sightline cluster` command and the evaluations read.

use std::fmt::Write as _;

use crate::dpc::DpcError;

/// A dense set of `n` points of `dim` features each, stored row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Points {
    data: Vec<f32>,
    dim: usize,
}

impl Points {
    /// Wraps `data` (row-major, `data.len() / dim` rows). Refuses a zero dimension, a length that is
    /// not a multiple of `dim`, and non-finite values (they would poison every distance).
    pub fn new(data: Vec<f32>, dim: usize) -> Result<Self, DpcError> {
        if dim == 0 {
            return Err(DpcError::Input("points need at least one feature".into()));
        }
        if !data.len().is_multiple_of(dim) {
            return Err(DpcError::Input(format!("{} values do not make rows of {dim}", data.len())));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(DpcError::Input(format!("row {} feature {} is not finite", i / dim, i % dim)));
        }
        Ok(Self { data, dim })
    }

    /// Builds points from rows of equal length.
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R]) -> Result<Self, DpcError> {
        let dim = rows.first().map_or(0, |r| r.as_ref().len());
        let mut data = Vec::with_capacity(rows.len() * dim);
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != dim {
                return Err(DpcError::Input(format!("row {i} has {} features, row 0 has {dim}", r.len())));
            }
            data.extend_from_slice(r);
        }
        Self::new(data, dim)
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// True when there are no points.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Number of features per point.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Point `i`'s features.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Gives the row-major values back.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// The points at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Points {
        let mut data = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            data.extend_from_slice(self.row(i));
        }
        Points { data, dim: self.dim }
    }
}

/// A point set read from CSV, with the optional ground-truth labels of its `label` column.
#[derive(Debug, Clone)]
pub struct LabelledPoints {
    /// The feature columns.
    pub points: Points,
    /// Names of the feature columns (from the header, or `x0..` without one).
    pub columns: Vec<String>,
    /// The final `label` column's values, when the file has one.
    pub labels: Option<Vec<String>>,
}

/// Parses CSV text: one row per point, comma-separated numeric feature columns, optionally a header
/// line and an optional final column named `label` (any value, kept as text, never a feature).
///
/// A first line whose fields are not all numbers is the header. Blank lines are skipped. Errors
/// name the 1-based line and column.
pub fn parse_csv(text: &str) -> Result<LabelledPoints, DpcError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).peekable();
    let mut columns: Option<Vec<String>> = None;
    if let Some((_, first)) = lines.peek() {
        let fields: Vec<&str> = first.split(',').map(str::trim).collect();
        if fields.iter().any(|f| f.parse::<f64>().is_err()) {
            columns = Some(fields.iter().map(|f| f.trim_matches('"').to_owned()).collect());
            lines.next();
        }
    }
    let has_label = columns.as_ref().is_some_and(|c| c.last().is_some_and(|l| l.eq_ignore_ascii_case("label")));
    let mut data = Vec::new();
    let mut labels = Vec::new();
    let mut width: Option<usize> = columns.as_ref().map(Vec::len);
    for (no, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let w = *width.get_or_insert(fields.len());
        if fields.len() != w {
            return Err(DpcError::Input(format!("line {}: {} fields, expected {w}", no + 1, fields.len())));
        }
        let features = if has_label { &fields[..w - 1] } else { &fields[..] };
        for (c, f) in features.iter().enumerate() {
            let v: f32 = f
                .parse()
                .map_err(|_| DpcError::Input(format!("line {}, column {}: {f:?} is not a number", no + 1, c + 1)))?;
            data.push(v);
        }
        if has_label {
            labels.push(fields[w - 1].trim_matches('"').to_owned());
        }
    }
    let w = width.unwrap_or(0);
    let dim = if has_label { w.saturating_sub(1) } else { w };
    if dim == 0 {
        return Err(DpcError::Input("no feature columns".into()));
    }
    let mut names = columns.unwrap_or_else(|| (0..dim).map(|i| format!("x{i}")).collect());
    names.truncate(dim);
    Ok(LabelledPoints { points: Points::new(data, dim)?, columns: names, labels: has_label.then_some(labels) })
}

/// Writes points (and labels when given) as CSV with a header `x0,..,x{d-1}[,label]`.
pub fn to_csv(points: &Points, labels: Option<&[String]>) -> String {
    let mut out = String::new();
    let header: Vec<String> = (0..points.dim()).map(|i| format!("x{i}")).collect();
    out.push_str(&header.join(","));
    if labels.is_some() {
        out.push_str(",label");
    }
    out.push('\n');
    for i in 0..points.len() {
        for (j, v) in points.row(i).iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "{v}");
        }
        if let Some(l) = labels {
            let _ = write!(out, ",{}", l[i]);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_features_and_label() {
        let p = parse_csv("x0,x1,label\n1,2,a\n3.5,-4,noise\n\n").unwrap();
        assert_eq!(p.points.len(), 2);
        assert_eq!(p.points.dim(), 2);
        assert_eq!(p.points.row(1), &[3.5, -4.0]);
        assert_eq!(p.labels.unwrap(), vec!["a", "noise"]);
        assert_eq!(p.columns, vec!["x0", "x1"]);
    }

    #[test]
    fn parses_headerless_numbers() {
        let p = parse_csv("1,2,3\n4,5,6\n").unwrap();
        assert_eq!(p.points.dim(), 3);
        assert!(p.labels.is_none());
        assert_eq!(p.columns, vec!["x0", "x1", "x2"]);
    }

    #[test]
    fn names_the_bad_cell() {
        let e = parse_csv("a,b\n1,2\n1,x\n").unwrap_err().to_string();
        assert!(e.contains("line 3, column 2"), "{e}");
        let e = parse_csv("a,b\n1,2\n1\n").unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
        assert!(parse_csv("a,b\n1,nan\n").is_err());
        assert!(parse_csv("label\na\n").is_err());
    }

    #[test]
    fn csv_round_trip() {
        let p = Points::from_rows(&[[1.0f32, 2.5], [-3.0, 0.125]]).unwrap();
        let labels = vec!["1".to_owned(), "2".to_owned()];
        let back = parse_csv(&to_csv(&p, Some(&labels))).unwrap();
        assert_eq!(back.points, p);
        assert_eq!(back.labels.unwrap(), labels);
    }

    #[test]
    fn refuses_ragged_rows_and_zero_dim() {
        assert!(Points::from_rows(&[vec![1.0f32, 2.0], vec![1.0]]).is_err());
        assert!(Points::new(vec![1.0, 2.0, 3.0], 2).is_err());
        assert!(Points::new(vec![], 0).is_err());
        assert!(Points::new(vec![], 3).unwrap().is_empty());
    }
}
