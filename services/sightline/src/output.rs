//! Human-readable output.

use sightline_coord::JobStatus;
use sightline_messages::ItemRecord;

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
