//! The annotation route end to end: an `annotate` job over two sample collections through
//! worker processes on the real services (ingest, dedup, detect, two replicas of embed, cluster,
//! index) writes the same `labels.csv` as the embedded mode (`sightline annotate`) on the same
//! input. The workers need the models (`models/fetch.sh`; `tests/run.sh` fetches them).
//!
//! "The same" allows one thing: within a duplicate group (an original and its copies), which
//! file is kept as the original is decided by whichever arrives at dedup first, a race between
//! replicas and prefetched messages. Rows outside duplicate groups must match exactly (label and
//! cluster); each group must have the same members, one original with the same label, the
//! others `duplicate` of it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use sightline_tests::{Services, Worker, bin, copy_tree, repo};

const COLLECTIONS: [&str; 2] = ["Alpro-Shelf-Soy-Milk", "Tropicana-Apple-Juice"];

/// `labels.csv` rows by (collection, file): (label, cluster, duplicate_of). The sample's names
/// need no CSV quoting.
type Rows = BTreeMap<(String, String), (String, String, String)>;

fn read_labels(path: &Path) -> Rows {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("collection,file,label,cluster,duplicate_of"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 5, "row {l:?}");
            ((f[0].to_owned(), f[1].to_owned()), (f[2].to_owned(), f[3].to_owned(), f[4].to_owned()))
        })
        .collect()
}

/// The duplicate groups: each file named as an original, with its duplicates, by collection.
fn groups(rows: &Rows) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for ((c, f), (label, _, of)) in rows {
        if label == "duplicate" {
            let members = out.entry((c.clone(), of.clone())).or_insert_with(|| vec![of.clone()]);
            members.push(f.clone());
            members.sort();
        }
    }
    out
}

/// Asserts that two labellings agree up to the choice of original in each duplicate group.
fn assert_same_labels(distributed: &Rows, embedded: &Rows) {
    assert_eq!(
        distributed.keys().collect::<Vec<_>>(),
        embedded.keys().collect::<Vec<_>>(),
        "the same files are labelled"
    );
    let (gd, ge) = (groups(distributed), groups(embedded));
    let members = |g: &BTreeMap<(String, String), Vec<String>>| {
        let mut m: Vec<(String, Vec<String>)> = g.iter().map(|((c, _), v)| (c.clone(), v.clone())).collect();
        m.sort();
        m
    };
    assert_eq!(members(&gd), members(&ge), "the same duplicate groups");
    let in_group = |c: &str, f: &str| ge.iter().any(|((gc, _), v)| gc == c && v.iter().any(|m| m == f));
    for ((c, f), d) in distributed {
        if in_group(c, f) {
            continue;
        }
        assert_eq!(Some(d), embedded.get(&(c.clone(), f.clone())), "{c}/{f}: distributed vs embedded");
    }
    for ((c, original), group) in &gd {
        let (_, e_original) =
            ge.iter().find(|((ec, _), v)| ec == c && *v == group).map(|(k, _)| k).expect("matching group");
        let label = |rows: &Rows, f: &str| rows[&(c.clone(), f.to_owned())].0.clone();
        assert_eq!(
            label(distributed, original),
            label(embedded, e_original),
            "{c}: the original of group {group:?} is labelled alike"
        );
    }
}

fn ok_messages(worker: &Worker, stage: &str) -> u64 {
    let metrics = worker.metrics();
    let prefix = format!("sightline_messages_total{{stage=\"{stage}\",outcome=\"ok\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn an_annotate_job_through_the_workers_labels_like_the_embedded_mode() {
    let services = Services::start();
    let dir = services.scratch.path().join("annotate-input");
    let sample = repo().join("tests/fixtures/sample");
    let mut images = 0;
    for c in COLLECTIONS {
        let dest = dir.join(c);
        std::fs::create_dir_all(&dest).expect("mkdir");
        copy_tree(&sample.join(c), &dest);
        images += std::fs::read_dir(&dest).expect("read").count();
    }
    assert_eq!(images, 32);

    let _ingest = Worker::start(&services, "ingest", &[]);
    let _dedup = Worker::start(&services, "dedup", &[]);
    let _detect = Worker::start(&services, "detect", &[]);
    // Small prefetch so that both replicas get work.
    let embed_a = Worker::start(&services, "embed", &[("PREFETCH", "2")]);
    let embed_b = Worker::start(&services, "embed", &[("PREFETCH", "2")]);
    let _cluster = Worker::start(&services, "cluster", &[]);
    let _index = Worker::start(&services, "index", &[]);

    let distributed_out = services.scratch.path().join("distributed-out");
    let started = Instant::now();
    let out = services.sightline_json(&[
        "submit",
        "annotate",
        "--collections",
        dir.to_str().expect("utf8"),
        "--wait",
        "--out",
        distributed_out.to_str().expect("utf8"),
        "--json",
        "--timeout-secs",
        "600",
    ]);
    let distributed_s = started.elapsed().as_secs_f64();
    eprintln!(
        "annotate, {images} images, distributed (upload to results): {distributed_s:.1} s = {:.1} images/s",
        images as f64 / distributed_s
    );
    assert_eq!(out["status"]["finished"].as_u64(), Some(images as u64), "{out}");
    assert!(out["status"]["outcomes"].get("failed").is_none(), "no image failed: {out}");

    let embedded_out = services.scratch.path().join("embedded-out");
    let started = Instant::now();
    let run = services
        .command(bin("sightline"))
        .args(["annotate", "--collections", dir.to_str().expect("utf8"), "--out", embedded_out.to_str().expect("utf8")])
        .output()
        .expect("run sightline annotate");
    let embedded_s = started.elapsed().as_secs_f64();
    assert!(run.status.success(), "sightline annotate failed:\n{}", String::from_utf8_lossy(&run.stderr));
    eprintln!("annotate, {images} images, embedded: {embedded_s:.1} s = {:.1} images/s", images as f64 / embedded_s);

    let distributed = read_labels(&distributed_out.join("labels.csv"));
    let embedded = read_labels(&embedded_out.join("labels.csv"));
    assert_eq!(distributed.len(), images, "one row per input file");
    assert!(distributed.values().any(|r| r.0 == "product"), "some products: {distributed:?}");
    assert!(distributed.values().any(|r| r.0 == "noise"), "some noise: {distributed:?}");
    assert_eq!(distributed.values().filter(|r| r.0 == "duplicate").count(), 4, "two copies per collection");
    assert_same_labels(&distributed, &embedded);
    let differ: Vec<String> = distributed
        .iter()
        .filter(|(k, v)| embedded.get(*k) != Some(*v))
        .map(|((c, f), v)| format!("{c}/{f}: {v:?} vs {:?}", embedded.get(&(c.clone(), f.clone()))))
        .collect();
    eprintln!("rows that differ (duplicate groups only, by the assertion above): {differ:?}");
    assert!(distributed_out.join("report.html").exists());

    // Both embed replicas took part.
    let (a, b) = (ok_messages(&embed_a, "embed"), ok_messages(&embed_b, "embed"));
    assert!(a > 0 && b > 0, "embed replicas handled {a} and {b} messages");
    // Nothing was dead-lettered anywhere on the route.
    for stage in ["ingest", "dedup", "detect", "embed", "cluster", "index"] {
        let dlq = services.sightline_json(&["dlq", "list", stage, "--json"]);
        assert_eq!(dlq.as_array().map(Vec::len), Some(0), "{stage}: {dlq}");
    }

    review_with_two_reviewers_on_two_replicas(&services, out["job"].as_str().expect("job id"));
}

/// A `sightline review --job` replica (the review service against S3 and Redis): the child and
/// the address it serves.
fn review_replica(services: &Services, job: &str, out: &Path) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead;
    let mut child = services
        .command(bin("sightline"))
        .args(["review", "--job", job, "--addr", "127.0.0.1:0", "--out", out.to_str().expect("utf8")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start sightline review --job");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("URL line");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no URL: {line:?}"));
    (child, url.trim_start_matches("http://").trim_end_matches('/').parse().expect("address"))
}

/// Two reviewers, each through their own review replica of the finished job, are shown disjoint
/// images; both corrections land, and the labels either replica serves include both.
fn review_with_two_reviewers_on_two_replicas(services: &Services, job: &str) {
    use sightline_tests::{http_get, http_post_json};
    let (mut a, addr_a) = review_replica(services, job, &services.scratch.path().join("review-a"));
    let (mut b, addr_b) = review_replica(services, job, &services.scratch.path().join("review-b"));
    let collection = COLLECTIONS[0];
    let queue = |addr, reviewer: &str| -> Vec<serde_json::Value> {
        let (status, body) =
            http_get(addr, &format!("/api/queue?collection={collection}&reviewer={reviewer}&n=4")).expect("queue");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("queue JSON");
        v["items"].as_array().expect("items").clone()
    };
    let (qa, qb) = (queue(addr_a, "alice"), queue(addr_b, "bob"));
    let files = |q: &[serde_json::Value]| -> Vec<String> {
        q.iter().map(|i| i["file"].as_str().expect("file").to_owned()).collect()
    };
    let (fa, fb) = (files(&qa), files(&qb));
    assert_eq!((fa.len(), fb.len()), (4, 4), "{fa:?} {fb:?}");
    assert!(fa.iter().all(|f| !fb.contains(f)), "disjoint queues: {fa:?} / {fb:?}");
    let flip = |item: &serde_json::Value| if item["label"] == "product" { "noise" } else { "product" };
    for (addr, reviewer, item) in [(addr_a, "alice", &qa[0]), (addr_b, "bob", &qb[0])] {
        let body = serde_json::json!({"collection": collection, "file": item["file"], "label": flip(item), "reviewer": reviewer});
        let (status, text) = http_post_json(addr, "/api/review", &body).expect("review");
        assert_eq!(status, 200, "{text}");
    }
    for addr in [addr_a, addr_b] {
        let (status, csv) = http_get(addr, "/labels.csv").expect("labels.csv");
        assert_eq!(status, 200);
        for (reviewer, item) in [("alice", &qa[0]), ("bob", &qb[0])] {
            let prefix = format!("{collection},{},{},", item["file"].as_str().expect("file"), flip(item));
            let row = csv.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{prefix} in\n{csv}"));
            assert!(row.contains(",review,review,") && row.ends_with(reviewer), "{row}");
        }
    }
    for child in [&mut a, &mut b] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
