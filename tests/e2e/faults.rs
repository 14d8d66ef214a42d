//! Fault drills, reduced for the test command: an outage of a dependency is nobody's message's
//! fault, so it must cost no dead letter, no retry budget and no operator action. Each drill
//! runs its own RabbitMQ node, Redis or object store on free ports (never the shared ones),
//! stops it in the middle of a job and starts it again over the same data.

use std::process::Stdio;
use std::time::{Duration, Instant};

use sightline_tests::own::{OwnRabbit, OwnRedis, OwnS3};
use sightline_tests::{Services, Worker, bin, http_get};

use crate::{assert_each_item_once, services_with_job_input, submit};

/// How long each dependency stays down.
const OUTAGE: Duration = Duration::from_secs(10);

/// One ingest worker, slowed so the job is still running when the dependency goes away.
fn slow_ingest(services: &Services) -> Worker {
    Worker::start(services, "ingest", &[("SIGHTLINE_CHAOS_DELAY_MS", "300"), ("PREFETCH", "2")])
}

/// Waits (at most 15 s) until the worker's `/readyz` says it is paused on `dependency`.
fn wait_paused(worker: &Worker, dependency: &str) {
    let start = Instant::now();
    loop {
        if let Some((503, body)) = http_get(worker.admin, "/readyz")
            && body.contains(&format!("paused: {dependency} down"))
        {
            assert!(body.contains("\"ready\":false"), "{body}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "/readyz never said paused on {dependency}: {:?}\n{}",
            http_get(worker.admin, "/readyz"),
            worker.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Once `job` has 8 finished items, switches `dependency` off for [`OUTAGE`], then on again. A
/// worker that meets an unreachable store or Redis must say on `/readyz` that it is paused (a
/// broker outage shows as a lost connection instead); where the progress is readable during
/// the outage (not with Redis down), the job must still be unfinished at its end.
fn outage_mid_job(
    services: &Services,
    worker: &Worker,
    job: &str,
    total: usize,
    dependency: &str,
    mut switch: impl FnMut(bool),
) {
    services.wait_finished(job, 8, Duration::from_secs(60));
    let stopped = Instant::now();
    switch(false);
    if dependency != "broker" {
        wait_paused(worker, dependency);
    }
    std::thread::sleep(OUTAGE.saturating_sub(stopped.elapsed()));
    if dependency != "redis" {
        let mid = services.status(job).expect("status during the outage");
        assert!(mid["finished"].as_u64().unwrap_or(0) < total as u64, "the outage was mid-job: {mid}");
    }
    switch(true);
}

/// After the drill: the job completed by itself, every image once, the bad files dead-lettered
/// as bad input and nothing else, and the worker counted the outage.
fn assert_recovered(services: &Services, worker: &Worker, job: &str, valid: usize, bad: usize, dependency: &str) {
    let total = valid + bad;
    let back = Instant::now();
    let done = services.wait_finished(job, total as u64, Duration::from_secs(180));
    let paused = worker
        .metrics()
        .lines()
        .find(|l| l.starts_with("sightline_outage_seconds_total"))
        .map(str::to_owned)
        .unwrap_or_default();
    eprintln!("{dependency} drill: job done {:.1}s after the restart; {paused}", back.elapsed().as_secs_f64());
    assert_eq!(done["outcomes"]["ok"].as_u64(), Some(valid as u64), "{done}");
    assert_eq!(done["outcomes"]["failed"].as_u64(), Some(bad as u64), "{done}");
    assert_each_item_once(&services.records(job), total);
    let letters = services.sightline_json(&["dlq", "list", "ingest", "--json"]);
    let letters = letters.as_array().expect("array");
    assert_eq!(letters.len(), bad, "only the bad files are dead letters: {letters:?}");
    assert!(letters.iter().all(|l| l["failure_kind"] == "permanent"), "{letters:?}");
    let metrics = worker.metrics();
    // A broker outage shows as a lost connection first; an outage is declared only if a handler
    // was publishing when it went.
    assert!(
        dependency == "broker"
            || metrics.contains(&format!("sightline_outages_total{{stage=\"ingest\",dependency=\"{dependency}\"}}")),
        "{metrics}"
    );
    assert!(!metrics.contains("kind=\"exhausted\""), "no retry budget spent on the outage:\n{metrics}");
    if dependency != "broker" {
        assert!(worker.log_text().contains("dependency back"), "{}", worker.log_text());
    }
}

#[test]
fn an_object_store_outage_costs_no_dead_letter_nor_operator_action() {
    let (mut services, dir, valid, bad) = services_with_job_input();
    let s3 = OwnS3::start(&services.scratch.path().join("own-s3"));
    services.set_env("S3_ENDPOINT", &s3.endpoint());
    let worker = slow_ingest(&services);

    // The producer: the store is down when `submit` starts uploading; it waits, says so, and
    // submits once the store is back.
    s3.stop();
    let submitting = services
        .command(bin("sightline"))
        .args(["submit", dir.to_str().expect("utf8"), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn submit");
    std::thread::sleep(Duration::from_secs(4));
    s3.up();
    let out = submitting.wait_with_output().expect("submit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "submit failed:\n{stderr}");
    assert!(stderr.contains("object store unavailable, waiting"), "submit said what it waited for:\n{stderr}");
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("submit JSON");
    let job = job["job"].as_str().expect("job id").to_owned();

    // The worker: the store goes away in the middle of the job.
    outage_mid_job(&services, &worker, &job, valid + bad, "storage", |on| if on { s3.up() } else { s3.stop() });
    assert_recovered(&services, &worker, &job, valid, bad, "storage");
}

#[test]
fn a_redis_outage_costs_no_dead_letter_nor_operator_action() {
    let (mut services, dir, valid, bad) = services_with_job_input();
    let mut redis = OwnRedis::start(&services.scratch.path().join("own-redis"));
    services.set_env("REDIS_URL", &redis.url());
    let worker = slow_ingest(&services);
    let job = submit(&services, &dir, &[]);
    outage_mid_job(&services, &worker, &job, valid + bad, "redis", |on| if on { redis.up() } else { redis.stop() });
    assert_recovered(&services, &worker, &job, valid, bad, "redis");
}

#[test]
fn a_broker_restart_costs_no_dead_letter_nor_operator_action() {
    let (mut services, dir, valid, bad) = services_with_job_input();
    let mut rabbit = OwnRabbit::start(&services.scratch.path().join("own-rabbitmq"));
    services.set_env("AMQP_URL", &rabbit.url());
    let worker = slow_ingest(&services);
    let job = submit(&services, &dir, &[]);
    outage_mid_job(&services, &worker, &job, valid + bad, "broker", |on| if on { rabbit.up() } else { rabbit.stop() });
    assert_recovered(&services, &worker, &job, valid, bad, "broker");
    assert!(worker.log_text().contains("reconnecting"), "{}", worker.log_text());
}
