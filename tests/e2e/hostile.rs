//! Hostile inputs through the workers on the real services: a generated corpus
//! (`sightline_tests::hostile`, reproducible from a seed) submitted as one job beside the 48
//! sample images, through an ingest and a dedup worker (both decode). No worker may crash or
//! hang, every input must end as a failed record with a reason (and one dead letter) or succeed
//! when it is a valid image, the good images must be unaffected, and each worker's peak memory
//! must stay under the bound stated in docs/reliability.md.
//!
//! `SIGHTLINE_HOSTILE_N` inputs (200 in the test command; the documented full run uses 1,200),
//! seed `SIGHTLINE_HOSTILE_SEED` (18).

use std::collections::BTreeMap;

use sightline_tests::hostile::{Expect, corpus};
use sightline_tests::{Services, Worker, copy_sample_collections, fixture_path};

/// The peak resident memory a worker may reach on this corpus (docs/reliability.md).
const RSS_BOUND: u64 = 1 << 30;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn hostile_inputs_fail_cleanly_and_spare_the_good_images() {
    let n = env_or("SIGHTLINE_HOSTILE_N", 200) as usize;
    let seed = env_or("SIGHTLINE_HOSTILE_SEED", 18);
    let services = Services::start();
    let dir = services.scratch.path().join("input");
    copy_sample_collections(&dir);
    let seeds: Vec<(String, Vec<u8>)> = ["ukbench09380.jpeg", "ukbench09380.png", "ukbench09380.webp", "giphy.gif"]
        .iter()
        .map(|f| ((*f).to_owned(), std::fs::read(fixture_path("bad").join(f)).expect("seed fixture")))
        .collect();
    let cases = corpus(seed, n, &seeds);
    let hostile = dir.join("hostile");
    std::fs::create_dir_all(&hostile).expect("mkdir");
    for c in &cases {
        std::fs::write(hostile.join(&c.name), &c.bytes).expect("write case");
    }
    let total = 48 + n;

    let mut ingest = Worker::start(&services, "ingest", &[("PREFETCH", "8")]);
    let mut dedup = Worker::start(&services, "dedup", &[("PREFETCH", "8")]);
    let (job, _) = services.submit_and_wait(&["dedup", dir.to_str().expect("utf8")], 900);
    let status = services.status(&job).expect("status");
    assert_eq!(status["finished"].as_u64(), Some(total as u64), "{status}");
    assert!(ingest.is_running() && dedup.is_running(), "no worker died:\n{}\n{}", ingest.log_text(), dedup.log_text());

    let records = services.records(&job);
    assert_eq!(records.len(), total, "one record per input");
    let by_name: BTreeMap<String, &serde_json::Value> =
        records.iter().map(|r| (r["name"].as_str().expect("name").to_owned(), r)).collect();
    assert_eq!(by_name.len(), total, "names unique");
    for (name, r) in &by_name {
        if !name.starts_with("hostile/") {
            assert_ne!(r["outcome"], "failed", "a good image was hurt: {r}");
        }
        if r["outcome"] == "failed" {
            assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "a failure without a reason: {r}");
        }
    }
    let mut families: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in &cases {
        let r = by_name.get(&format!("hostile/{}", c.name)).unwrap_or_else(|| panic!("no record for {:?}", c.name));
        let failed = r["outcome"] == "failed";
        match c.expect {
            Expect::Valid => assert!(!failed, "{} ({}) is valid but failed: {r}", c.name, c.family),
            Expect::Invalid => assert!(failed, "{} ({}) is invalid but passed: {r}", c.name, c.family),
            Expect::Either => {}
        }
        let e = families.entry(c.family).or_default();
        if failed { e.1 += 1 } else { e.0 += 1 }
    }

    // Every failure is one dead letter of kind `permanent`, none spent retries.
    let failed = records.iter().filter(|r| r["outcome"] == "failed").count();
    let mut letters = 0;
    for stage in ["ingest", "dedup"] {
        let dlq = services.sightline_json(&["dlq", "list", stage, "--json", "--limit", "100000"]);
        let dlq = dlq.as_array().expect("array");
        assert!(dlq.iter().all(|l| l["failure_kind"] == "permanent"), "{stage}: {dlq:?}");
        letters += dlq.len();
    }
    assert_eq!(letters, failed, "one dead letter per failed input");

    let peaks = [("ingest", ingest.peak_rss()), ("dedup", dedup.peak_rss())];
    eprintln!(
        "hostile corpus: {n} inputs (seed {seed}), {failed} failed cleanly; by family (ok, failed): {families:?}"
    );
    for (stage, peak) in peaks {
        let peak = peak.expect("peak RSS readable");
        eprintln!("  {stage}: peak RSS {:.0} MiB", peak as f64 / (1 << 20) as f64);
        assert!(peak < RSS_BOUND, "{stage} peaked at {peak} bytes, over the bound {RSS_BOUND}");
    }
}

/// Messages nobody should send, published raw to the ingest queue: each is dead-lettered as
/// `undecodable` with its reason, and the worker goes on to handle a good job.
#[test]
fn hostile_messages_are_dead_lettered_with_a_reason_and_the_worker_goes_on() {
    use sightline_bus::{AmqpBus, AmqpConfig, Bus, Outgoing};
    use sightline_messages::{Envelope, KIND_JOB, Meta};

    let services = Services::start();
    let worker = Worker::start(&services, "ingest", &[]);
    let url = services.env("AMQP_URL").expect("AMQP_URL").to_owned();
    // A map {"job_id": 5}: MessagePack of the wrong shape and types for a job.
    let wrong_types = [&[0x81u8, 0xA6][..], b"job_id", &[0x05]].concat();
    let valid_job = {
        let spec = sightline_messages::JobSpec {
            job_id: uuid::Uuid::new_v4(),
            kind: "ingest".into(),
            route: vec!["ingest".into()],
            source: sightline_messages::Source::Urls { urls: vec![], collection: "c".into() },
            options: Default::default(),
            submitted_at_ms: 0,
        };
        sightline_messages::to_msgpack(&spec).expect("encode")
    };
    let cases: Vec<(&str, &str, u16, Vec<u8>)> = vec![
        ("malformed msgpack", KIND_JOB, 1, vec![0xC1, 0xFF, 0x00, 0x13, 0x37]),
        ("wrong types", KIND_JOB, 1, wrong_types),
        ("unknown kind", "job.delete-everything", 1, valid_job.clone()),
        ("newer schema", KIND_JOB, 999, valid_job),
        ("empty kind", "", 1, Vec::new()),
        ("8 MiB of garbage", KIND_JOB, 1, vec![0xD9; 8 << 20]),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let bus = AmqpBus::new(AmqpConfig::new(url, "e2e-hostile-messages"));
        bus.declare(&sightline_messages::STAGES).await.expect("declare");
        let batch: Vec<Outgoing> = cases
            .iter()
            .map(|(_, kind, version, body)| Outgoing {
                stage: "ingest".into(),
                envelope: Envelope {
                    meta: Meta::new(uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), kind, *version),
                    body: body.clone(),
                },
            })
            .collect();
        bus.publish(&batch).await.expect("publish");
    });

    // The worker goes on: a good job after them completes.
    let dir = services.scratch.path().join("good");
    sightline_tests::copy_fixtures("sample/Honeydew-Melon", &["img000.jpg", "img003.jpg"], &dir.join("melon"));
    let (_, out) = services.submit_and_wait(&[dir.to_str().expect("utf8")], 120);
    assert_eq!(out["status"]["outcomes"]["ok"].as_u64(), Some(2), "{out}");
    assert!(worker.log_text().contains("dead-lettered"), "{}", worker.log_text());

    let letters = services.sightline_json(&["dlq", "list", "ingest", "--json"]);
    let letters = letters.as_array().expect("array");
    assert_eq!(letters.len(), cases.len(), "one dead letter per hostile message: {letters:?}");
    for l in letters {
        assert_eq!(l["failure_kind"], "undecodable", "{l}");
        assert!(l["reason"].as_str().is_some_and(|r| !r.is_empty()), "{l}");
    }
    let reasons: Vec<&str> = letters.iter().filter_map(|l| l["reason"].as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("unknown message kind")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("999")), "the newer schema is named: {reasons:?}");
    let mut worker = worker;
    assert!(worker.is_running());
}
