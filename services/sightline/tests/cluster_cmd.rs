//! `sightline cluster` end to end on a committed benchmark set (tests/fixtures/clustering):
//! the binary reads the CSV, ignores its label column, and writes assignments, the decision
//! graph and the summary; the clusters match the set's ground truth.

use std::path::PathBuf;
use std::process::Command;

use sightline_clustering::ari::adjusted_rand_index;
use sightline_clustering::points::parse_csv;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/clustering/aggregation.csv")
}

fn sightline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sightline")).args(args).output().expect("run sightline")
}

#[test]
fn clusters_a_csv_and_writes_every_output() {
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().to_str().unwrap();
    let input = fixture();
    let result = sightline(&["cluster", input.to_str().unwrap(), "--out", out_s, "--json"]);
    assert!(result.status.success(), "stderr: {}", String::from_utf8_lossy(&result.stderr));

    let summary: serde_json::Value = serde_json::from_slice(&result.stdout).expect("--json prints the summary");
    assert_eq!(summary["points"], 788);
    assert_eq!(summary["dim"], 2, "the label column is not a feature");
    assert_eq!(summary["method"], "exact");
    assert_eq!(summary["clusters"], 7);

    let assignments = std::fs::read_to_string(out.path().join("assignments.csv")).unwrap();
    let mut lines = assignments.lines();
    assert_eq!(lines.next(), Some("row,cluster,halo"));
    let rows: Vec<(usize, u32, u8)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 788);
    assert!(rows.iter().enumerate().all(|(i, r)| r.0 == i), "rows are 0-based data-row indices in order");
    assert!(rows.iter().all(|r| r.2 <= 1));

    let truth = parse_csv(&std::fs::read_to_string(&input).unwrap()).unwrap().labels.unwrap();
    let labels: Vec<u32> = rows.iter().map(|r| r.1).collect();
    let ari = adjusted_rand_index(&truth, &labels);
    assert!(ari >= 0.95, "ARI {ari}");

    let graph = std::fs::read_to_string(out.path().join("decision_graph.csv")).unwrap();
    assert!(graph.starts_with("row,rho,delta,gamma,z,nearest_denser,cluster,centre,halo\n"));
    let centres = graph.lines().skip(1).filter(|l| l.split(',').nth(7) == Some("1")).count();
    assert_eq!(centres, 7);
    let svg = std::fs::read_to_string(out.path().join("decision_graph.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("stroke=\"black\" stroke-width=\"1.2\"").count(), 7, "one marked centre per cluster");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(saved, summary);
}

#[test]
fn manual_centres_scaled_method_and_bad_input() {
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().to_str().unwrap();
    let input = fixture();
    let input_s = input.to_str().unwrap();
    let r = sightline(&["cluster", input_s, "--out", out_s, "--json", "--method", "scaled", "--centres", "3"]);
    assert!(r.status.success(), "stderr: {}", String::from_utf8_lossy(&r.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(summary["method"], "scaled");
    assert_eq!(summary["clusters"], 3);
    assert_eq!(summary["decision"]["rule"], "count");

    let r = sightline(&["cluster", input_s, "--out", out_s, "--json", "--kernel", "cutoff", "--percent", "2"]);
    assert!(r.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(summary["kernel"], "cutoff");
    assert!(summary["dc"].as_f64().unwrap() > 0.0);

    let bad = out.path().join("bad.csv");
    std::fs::write(&bad, "x0,x1\n1,2\n3,oops\n").unwrap();
    let r = sightline(&["cluster", bad.to_str().unwrap(), "--out", out_s]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("line 3, column 2"), "{err}");

    let r = sightline(&["cluster", input_s, "--out", out_s, "--kernel", "nope"]);
    assert!(!r.status.success());
}
