//! End-to-end tests through real RabbitMQ, Redis and S3 with worker processes.
//! Run with `cargo test -p sightline-tests --features integration` after
//! `cargo build --workspace --bins` (the `.ci/run` script does both).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sightline_tests::{Services, Worker, copy_sample_collections, fixture_path, repo};

mod annotate;
mod annotate_stages;
mod dedup;
mod face;
mod faults;
mod hostile;
mod ocr;
mod search;
mod store;

/// Files from `tests/fixtures/bad` that go into the job: (file, keyword its reason must contain).
const BAD: [(&str, &str); 5] = [
    ("ukbench09268_corrupt.jpg", "corrupt"),
    ("truncated.jpg", "truncated"),
    ("notes.jpg", "not an image"),
    ("bomb.png", "pixels"),
    ("empty.jpg", "empty"),
];
/// Valid images with the wrong extension (JPEG bytes named .png and .svg).
const WRONG_EXTENSION: [&str; 2] = ["ukbench09380.png", "ukbench09380.svg"];

/// The job input: the 48 sample images in three collections, plus a `mixed` collection with
/// five bad files and two valid files with the wrong extension.
fn job_input(dir: &Path) -> (usize, usize) {
    copy_sample_collections(dir);
    let mixed = dir.join("mixed");
    std::fs::create_dir_all(&mixed).expect("mkdir");
    for f in BAD.iter().map(|(f, _)| *f).chain(WRONG_EXTENSION) {
        std::fs::copy(fixture_path("bad").join(f), mixed.join(f)).expect("copy bad");
    }
    (48 + WRONG_EXTENSION.len(), BAD.len())
}

/// The services, and the job input (see [`job_input`]) in their scratch folder: (services,
/// input folder, valid files, bad files).
fn services_with_job_input() -> (Services, PathBuf, usize, usize) {
    let services = Services::start();
    let dir = services.scratch.path().join("input");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (valid, bad) = job_input(&dir);
    (services, dir, valid, bad)
}

fn submit(services: &Services, dir: &Path, extra: &[&str]) -> String {
    let mut args = vec!["submit", dir.to_str().expect("utf8 path"), "--json"];
    args.extend_from_slice(extra);
    let v = services.sightline_json(&args);
    v["job"].as_str().expect("job id").to_owned()
}

/// Every item exactly once, with the expected outcomes.
fn assert_each_item_once(records: &[serde_json::Value], total: usize) {
    let items: BTreeSet<u64> = records.iter().map(|r| r["item"].as_u64().expect("item")).collect();
    assert_eq!(records.len(), total, "one record per image");
    assert_eq!(items, (0..total as u64).collect(), "every item index present once");
}

#[test]
fn a_job_flows_through_up_sh_workers_and_bad_images_are_dead_lettered() {
    let (services, dir, valid, bad) = services_with_job_input();
    let up = services
        .command(repo().join("deploy/local/up.sh"))
        .env("STAGES", "ingest")
        .env("REPLICAS_INGEST", "2")
        .output()
        .expect("up.sh");
    assert!(up.status.success(), "up.sh failed:\n{}", String::from_utf8_lossy(&up.stderr));

    let result = std::panic::catch_unwind(|| {
        let (job, out) = services.submit_and_wait(&[dir.to_str().expect("utf8")], 180);
        assert_eq!(out["status"]["total"].as_u64(), Some((valid + bad) as u64));

        // `sightline status` shows the job complete with the right counts.
        let status = services.sightline_json(&["status", &job, "--json"]);
        assert_eq!(status["complete"], true, "{status}");
        assert_eq!(status["status"]["finished"].as_u64(), Some((valid + bad) as u64));
        assert_eq!(status["status"]["outcomes"]["ok"].as_u64(), Some(valid as u64), "{status}");
        assert_eq!(status["status"]["outcomes"]["failed"].as_u64(), Some(bad as u64), "{status}");
        let human = services.sightline(&["status", &job]);
        assert!(String::from_utf8_lossy(&human.stdout).contains("complete"));

        // Every valid image reached the end of its route, stored once under its content hash.
        let recs = services.records(&job);
        assert_each_item_once(&recs, valid + bad);
        let mut keys_by_name = BTreeMap::new();
        for r in recs.iter().filter(|r| r["outcome"] == "ok") {
            let key = r["key"].as_str().expect("key");
            assert!(key.starts_with("images/sha256/"), "{key}");
            keys_by_name.insert(r["name"].as_str().expect("name").to_owned(), key.to_owned());
        }
        assert_eq!(keys_by_name.len(), valid);
        for f in WRONG_EXTENSION {
            assert!(keys_by_name.contains_key(&format!("mixed/{f}")), "{f} (valid bytes, wrong extension) accepted");
        }
        // Byte-identical files share one object: the content address.
        for coll in ["Tropicana-Apple-Juice", "Honeydew-Melon", "Alpro-Shelf-Soy-Milk"] {
            let dup = &keys_by_name[&format!("{coll}/dup0.jpg")];
            let originals = keys_by_name.iter().filter(|(n, k)| *k == dup && !n.ends_with("dup0.jpg")).count();
            assert_eq!(originals, 1, "{coll}/dup0.jpg shares its object with its original");
        }

        // Each bad file is in the ingest dead-letter queue with a readable reason.
        let dlq = services.sightline_json(&["dlq", "list", "ingest", "--json"]);
        let letters = dlq.as_array().expect("array");
        assert_eq!(letters.len(), bad, "{dlq}");
        for (file, keyword) in BAD {
            let letter = letters
                .iter()
                .find(|l| l["source"] == format!("mixed/{file}"))
                .unwrap_or_else(|| panic!("{file} not dead-lettered: {dlq}"));
            let reason = letter["reason"].as_str().expect("reason").to_lowercase();
            assert!(reason.contains(keyword), "{file}: {reason}");
            assert_eq!(letter["failure_kind"], "permanent");
        }
        let text = services.sightline(&["dlq", "list", "ingest"]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert_eq!(text.lines().count(), bad, "one line per dead letter:\n{text}");
        assert!(text.contains("mixed/truncated.jpg") && text.contains("truncated jpeg file"), "{text}");
    });

    let down = services.command(repo().join("deploy/local/down.sh")).output().expect("down.sh");
    assert!(down.status.success(), "down.sh failed:\n{}", String::from_utf8_lossy(&down.stderr));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn a_killed_worker_loses_nothing_and_does_nothing_twice() {
    let (services, dir, valid, bad) = services_with_job_input();
    let total = valid + bad;
    // Slow handlers keep eight messages unacknowledged at any time.
    let mut first = Worker::start(&services, "ingest", &[("SIGHTLINE_CHAOS_DELAY_MS", "400"), ("PREFETCH", "8")]);
    let job = submit(&services, &dir, &[]);
    services.wait_finished(&job, 10, Duration::from_secs(60));
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10)).expect("killed worker exits");
    let at_kill = services.status(&job).expect("status");
    let finished_at_kill = at_kill["finished"].as_u64().unwrap_or(0);
    assert!(finished_at_kill < total as u64, "the kill happened mid-job: {at_kill}");

    let second = Worker::start(&services, "ingest", &[]);
    let done = services.wait_finished(&job, total as u64, Duration::from_secs(120));
    assert_eq!(done["finished"].as_u64(), Some(total as u64), "{done}");
    assert_eq!(done["outcomes"]["ok"].as_u64(), Some(valid as u64), "no image counted twice or lost: {done}");
    assert_eq!(done["outcomes"]["failed"].as_u64(), Some(bad as u64), "{done}");
    assert_each_item_once(&services.records(&job), total);
    let letters = services.sightline_json(&["dlq", "list", "ingest", "--json"]);
    let sources: BTreeSet<&str> =
        letters.as_array().expect("array").iter().filter_map(|l| l["source"].as_str()).collect();
    assert_eq!(sources.len(), bad, "each bad file dead-lettered once in effect: {letters}");
    // The second worker picked up the messages the first held when it died.
    let metrics = second.metrics();
    assert!(metrics.contains("sightline_messages_total{stage=\"ingest\",outcome=\"ok\"}"), "{metrics}");
}

#[test]
fn sigterm_drains_a_busy_worker_and_exits_zero() {
    let (services, dir, valid, bad) = services_with_job_input();
    let total = (valid + bad) as u64;
    let mut worker = Worker::start(
        &services,
        "ingest",
        &[("SIGHTLINE_CHAOS_DELAY_MS", "1500"), ("PREFETCH", "4"), ("DRAIN_DEADLINE_SECS", "10")],
    );
    let job = submit(&services, &dir, &[]);
    // Wait until the job is expanded and four items are in flight.
    services.wait_finished(&job, 1, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    let before = services.status(&job).expect("status")["finished"].as_u64().unwrap_or(0);
    let sent = Instant::now();
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(15)).expect("exits after SIGTERM");
    let took = sent.elapsed();
    assert!(status.success(), "exit status {status}:\n{}", worker.log_text());
    assert!(took < Duration::from_secs(10), "drained within the 10 s deadline, took {took:?}");
    let log = worker.log_text();
    assert!(log.contains("draining") && log.contains("drained"), "{log}");
    let after = services.status(&job).expect("status")["finished"].as_u64().unwrap_or(0);
    assert!(after > before, "in-flight messages were finished during the drain ({before} -> {after})");
    assert!(after < total, "it stopped taking new work");

    // Nothing was lost: a fresh worker finishes the job.
    let _fresh = Worker::start(&services, "ingest", &[]);
    let done = services.wait_finished(&job, total, Duration::from_secs(120));
    assert_eq!(done["outcomes"]["ok"].as_u64(), Some(valid as u64), "{done}");
}

/// A tiny HTTP server on loopback that answers 404 until `serving` is set, then serves a JPEG.
fn flaky_server(jpeg: Vec<u8>) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let serving = Arc::new(AtomicBool::new(false));
    let flag = serving.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let _ = if flag.load(Ordering::SeqCst) {
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    jpeg.len()
                )
                .and_then(|()| stream.write_all(&jpeg))
            } else {
                write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            };
        }
    });
    (addr, serving)
}

#[test]
fn dead_letters_replayed_with_the_cli_complete() {
    let services = Services::start();
    let jpeg = std::fs::read(fixture_path("sample/Honeydew-Melon/img000.jpg")).expect("fixture");
    let (addr, serving) = flaky_server(jpeg);
    let _worker = Worker::start(&services, "ingest", &[("INGEST_ALLOW_PRIVATE_URLS", "true")]);
    let urls = services.scratch.path().join("urls.txt");
    std::fs::write(&urls, (0..3).map(|i| format!("http://{addr}/img{i}.jpg\n")).collect::<String>()).expect("url list");
    let (job, out) = services.submit_and_wait(&["--urls", urls.to_str().expect("utf8"), "--collection", "web"], 60);
    assert_eq!(out["status"]["outcomes"]["failed"].as_u64(), Some(3), "{out}");

    let letters = services.sightline_json(&["dlq", "list", "ingest", "--json"]);
    let letters = letters.as_array().expect("array");
    assert_eq!(letters.len(), 3);
    assert!(letters.iter().all(|l| l["reason"].as_str().unwrap_or("").contains("404")), "{letters:?}");
    let id = letters[0]["id"].as_str().expect("id").to_owned();
    let shown = services.sightline_json(&["dlq", "show", "ingest", &id]);
    assert_eq!(shown["summary"]["id"], id.as_str());
    assert!(shown["body"]["location"]["url"].as_str().unwrap_or("").starts_with("http://127.0.0.1"), "{shown}");

    serving.store(true, std::sync::atomic::Ordering::SeqCst);
    let replay = services.sightline_json(&["dlq", "replay", "ingest", "--json"]);
    assert_eq!(replay["replayed"].as_u64(), Some(3));
    let start = Instant::now();
    loop {
        let s = services.status(&job).expect("status");
        if s["outcomes"]["ok"].as_u64() == Some(3) {
            assert!(s["outcomes"].get("failed").is_none(), "failures turned into successes: {s}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "replayed letters did not complete: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let recs = services.records(&job);
    assert!(recs.iter().all(|r| r["outcome"] == "ok" && r["key"].as_str().is_some()), "{recs:?}");
    assert!(services.sightline_json(&["dlq", "list", "ingest", "--json"]).as_array().expect("array").is_empty());
}

/// Closes every AMQP connection of the test's vhost from the broker side, as a broker restart
/// or a network cut does.
fn drop_broker_connections(services: &Services) -> usize {
    let vhost = services.vhost().to_owned();
    let out = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "vhost"])
        .output()
        .expect("rabbitmqctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut closed = 0;
    for line in text.lines() {
        let mut cols = line.split('\t');
        let (Some(pid), Some(vh)) = (cols.next(), cols.next()) else { continue };
        if vh == vhost {
            let ok = std::process::Command::new("rabbitmqctl")
                .args(["-q", "close_connection", pid, "e2e: simulated broker restart"])
                .status()
                .expect("close_connection")
                .success();
            closed += usize::from(ok);
        }
    }
    closed
}

#[test]
fn workers_reconnect_after_the_broker_drops_their_connection() {
    let (services, dir, valid, bad) = services_with_job_input();
    let total = (valid + bad) as u64;
    let worker = Worker::start(&services, "ingest", &[]);
    let first = submit(&services, &dir, &[]);
    services.wait_finished(&first, total, Duration::from_secs(120));

    assert!(drop_broker_connections(&services) >= 1, "the worker's connection was closed");
    let second = submit(&services, &dir, &[]);
    let done = services.wait_finished(&second, total, Duration::from_secs(120));
    assert_eq!(done["outcomes"]["ok"].as_u64(), Some(valid as u64), "{done}");
    let log = worker.log_text();
    assert!(log.contains("reconnecting") && log.matches("consuming").count() >= 2, "{log}");
}
