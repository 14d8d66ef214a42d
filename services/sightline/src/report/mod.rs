//! Reports and output: the human-readable lines of job status and records, the CSV quoting
//! every written CSV shares, the annotation job's `labels.csv` and `report.html`
//! ([`annotate`]) and the scoring of `labels.csv` against a truth file ([`score`]).

pub mod annotate;
pub mod score;

use sightline_coord::JobStatus;
use sightline_messages::ItemRecord;

/// Quotes a CSV field when it needs it (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// `ok 45, failed 3`.
pub fn outcomes_line(s: &JobStatus) -> String {
    if s.outcomes.is_empty() {
        return "nothing finished yet".to_owned();
    }
    s.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// `job <id> (kind): 48/50 finished (ok 45, failed 3), complete`.
pub fn status_line(s: &JobStatus) -> String {
    format!(
        "job {} ({}): {}/{} finished ({}), {}",
        s.job_id,
        s.kind,
        s.finished,
        s.total,
        outcomes_line(s),
        if s.is_complete() { "complete" } else { "running" }
    )
}

/// One line per record.
pub fn print_records(records: &[ItemRecord]) {
    for r in records {
        let dims = match (r.width, r.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "-".to_owned(),
        };
        let extra = r.reason.clone().unwrap_or_else(|| r.key.clone().unwrap_or_default());
        println!(
            "{:<9} {:<48} {:<5} {:>11}  {}",
            r.outcome.as_str(),
            r.name,
            r.format.as_deref().unwrap_or("-"),
            dims,
            extra
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a.jpg"), "a.jpg");
        assert_eq!(csv_field("a,b.jpg"), "\"a,b.jpg\"");
        assert_eq!(csv_field("say \"hi\".jpg"), "\"say \"\"hi\"\".jpg\"");
    }
}
