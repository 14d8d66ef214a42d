//! `sightline review` on the sample collections (`tests/fixtures/sample`), with the real models:
//!
//! - the simulated reviewer (`--simulate truth.csv --json`): the curve's shape, and the labels
//!   it writes carry the reviews;
//! - the review page in a real headless browser (Debian's Chromium driven through ChromeDriver's
//!   WebDriver protocol): load, flip one label with the keyboard, confirm the next, then check
//!   the stored corrections and the exported `labels.csv`.
//!
//! The browser test needs `chromium` and `chromedriver` (Debian: `apt-get install chromium
//! chromium-driver`; `tests/run.sh` installs them and sets `SIGHTLINE_BROWSER_TESTS=1`, which
//! makes their absence a failure instead of a skip).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{models_available, repo};
use serde_json::{Value, json};
use sightline::report::score;

const COLLECTIONS: [&str; 3] = ["Alpro-Shelf-Soy-Milk", "Honeydew-Melon", "Tropicana-Apple-Juice"];

fn sample_input(dir: &Path) -> PathBuf {
    let sample = repo().join("tests/fixtures/sample");
    let input = dir.join("collections");
    for c in COLLECTIONS {
        std::fs::create_dir_all(input.join(c)).expect("mkdir");
        for entry in std::fs::read_dir(sample.join(c)).expect("read sample") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), input.join(c).join(entry.file_name())).expect("copy");
        }
    }
    input
}

#[test]
fn simulated_review_measures_a_curve_and_writes_reviewed_labels() {
    if !models_available("simulated_review_measures_a_curve_and_writes_reviewed_labels") {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let input = sample_input(scratch.path());
    let out = scratch.path().join("out");
    let truth = repo().join("tests/fixtures/sample/truth.csv");
    let run = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["review", "--collections"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .arg("--simulate")
        .arg(&truth)
        .args(["--budget", "10", "--json"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run sightline review --simulate");
    assert!(run.status.success(), "review --simulate failed:\n{}", String::from_utf8_lossy(&run.stderr));
    let curve: Value = serde_json::from_slice(&run.stdout).expect("JSON on stdout");
    assert_eq!(curve["strategy"], "uncertainty");
    assert_eq!(curve["budget"], json!([0, 5, 10]));
    let series = |k: &str| -> Vec<f64> {
        curve[k]
            .as_array()
            .unwrap_or_else(|| panic!("{k}: {curve}"))
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect()
    };
    for k in ["precision", "recall", "f1", "f1_unreviewed"] {
        let s = series(k);
        assert_eq!(s.len(), 3, "{k}");
        assert!(s.iter().all(|v| (0.0..=1.0).contains(v)), "{k}: {s:?}");
    }
    let truth_rows = score::parse_truth(&std::fs::read_to_string(&truth).expect("truth")).expect("truth parses");
    let written =
        score::parse_labels(&std::fs::read_to_string(out.join("labels.csv")).expect("labels")).expect("labels parse");
    let f1 = series("f1");
    // labels.csv holds the labels after the last budget step: it scores as the curve's last
    // point; and ten reviews per collection (most of the sample's 14 groups) do not lower F1.
    let reviewed = score::score(&truth_rows, &written).overall.f1();
    assert!((reviewed - f1[2]).abs() < 1e-9, "labels.csv scores as the curve's last point: {reviewed} vs {f1:?}");
    assert!(f1[2] >= f1[0], "ten reviews per collection do not lower F1: {f1:?}");

    let labels = std::fs::read_to_string(out.join("labels.csv")).expect("labels.csv");
    assert!(labels.starts_with("collection,file,label,cluster,duplicate_of,source,lineage,confidence,reviewer\n"));
    let reviews = labels.lines().filter(|l| l.contains(",review,review,")).count();
    assert_eq!(reviews, 30, "ten reviewed images in each of three collections:\n{labels}");
    for f in ["curve.csv", "curve.svg", "calibration.csv", "calibration.svg"] {
        assert!(out.join(f).metadata().is_ok_and(|m| m.len() > 100), "{f} written");
    }
    let svg = std::fs::read_to_string(out.join("curve.svg")).expect("svg");
    assert!(svg.contains("<polyline") && svg.contains("uncertainty F1") && svg.contains("random F1"));
}

/// A plain HTTP/1.1 request on loopback; returns (status, body). Reads exactly the response
/// (by `Content-Length` or chunks): ChromeDriver keeps connections open.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    let payload = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .expect("write request");
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut out = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("chunk size in hex");
            let mut chunk = vec![0u8; n + 2];
            reader.read_exact(&mut chunk).expect("chunk");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        out.resize(n, 0);
        reader.read_exact(&mut out).expect("body");
    } else {
        reader.read_to_end(&mut out).expect("body");
    }
    (status, String::from_utf8_lossy(&out).into_owned())
}

/// A WebDriver session on a local ChromeDriver.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium, "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}}}});
        let (status, body) = http(addr, "POST", "/session", Some(&caps));
        assert_eq!(status, 200, "new session: {body}");
        let v: Value = serde_json::from_str(&body).expect("session JSON");
        let session = v["value"]["sessionId"].as_str().expect("session id").to_owned();
        Self { driver, addr, session }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = http(self.addr, method, &format!("/session/{}{path}", self.session), body.as_ref());
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str::<Value>(&text).expect("WebDriver JSON")["value"].clone()
    }

    fn elements(&self, css: &str) -> Vec<String> {
        let v = self.call("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        v.as_array()
            .expect("elements")
            .iter()
            .map(|e| {
                e.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("element id").to_owned()
            })
            .collect()
    }

    fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.call("GET", &format!("/element/{element}/attribute/{name}"), None).as_str().map(str::to_owned)
    }

    fn text(&self, css: &str) -> String {
        let e = self.elements(css).into_iter().next().unwrap_or_else(|| panic!("no {css}"));
        self.call("GET", &format!("/element/{e}/text"), None).as_str().unwrap_or_default().to_owned()
    }

    /// Presses `key` on whatever has the focus.
    fn press(&self, key: &str) {
        self.call(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]})),
        );
    }

    fn wait_for(&self, what: &str, f: impl Fn(&Self) -> bool) {
        let started = Instant::now();
        while !f(self) {
            assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(self.addr, "DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|d| names.iter().map(move |n| d.join(n))).find(|p| p.is_file())
}

/// Files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_review_page_works_in_a_real_browser() {
    if !models_available("the_review_page_works_in_a_real_browser") {
        return;
    }
    let (Some(chromium), Some(chromedriver)) = (which(&["chromium", "chromium-browser"]), which(&["chromedriver"]))
    else {
        assert!(
            std::env::var_os("SIGHTLINE_BROWSER_TESTS").is_none(),
            "SIGHTLINE_BROWSER_TESTS is set but chromium or chromedriver is missing"
        );
        eprintln!(
            "SKIPPED the_review_page_works_in_a_real_browser: no chromium/chromedriver (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let scratch = tempfile::tempdir().expect("temp dir");
    let input = sample_input(scratch.path());
    let out = scratch.path().join("out");
    let mut server = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["review", "--addr", "127.0.0.1:0", "--collections"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sightline review");
    let mut stdout = BufReader::new(server.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read the URL line");
    let url =
        line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no URL in {line:?}"));
    let addr: SocketAddr = url.trim_start_matches("http://").trim_end_matches('/').parse().expect("address");

    let browser = Browser::start(&chromium, &chromedriver);
    browser.call("POST", "/url", Some(json!({"url": format!("{url}?reviewer=alice")})));
    browser.wait_for("the first page of the queue", |b| !b.elements(".card").is_empty());
    let cards = browser.elements(".card");
    let first = browser.attribute(&cards[0], "data-file").expect("data-file");
    let second = browser.attribute(&cards[1], "data-file").expect("data-file");
    let collection = browser.text("nav button[aria-current='true'] span");
    let first_label = browser.text(".card .label");
    assert!(first_label == "product" || first_label == "noise", "{first_label:?}");
    let flipped = if first_label == "product" { "noise" } else { "product" };

    // The keyboard alone: the first card has the focus; f flips it, Enter confirms the next.
    browser.press("f");
    browser.wait_for("the flip to be stored", |b| b.attribute(&cards[0], "data-reviewed").is_some());
    assert_eq!(browser.attribute(&cards[0], "data-reviewed").as_deref(), Some(flipped));
    browser.press("\u{E007}");
    browser.wait_for("the confirmation to be stored", |b| b.attribute(&cards[1], "data-reviewed").is_some());
    let progress = browser.text("#progress-text");
    assert!(progress.contains("reviewed 2 of"), "{progress}");

    // Stored under the job with who and when, and in the export.
    let stored: Vec<Value> = files_under(&out.join("storage/jobs"))
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "review"))
        .map(|p| serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("correction JSON"))
        .collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.iter().all(|c| c["reviewer"] == "alice" && c["collection"] == collection.as_str()));
    assert!(stored.iter().any(|c| c["file"] == first.as_str() && c["label"] == flipped), "{stored:?}");
    let (status, csv) = http(addr, "GET", "/labels.csv", None);
    assert_eq!(status, 200);
    let row = |file: &str| {
        csv.lines()
            .find(|l| l.starts_with(&format!("{collection},{file},")))
            .unwrap_or_else(|| panic!("{file} in {csv}"))
            .to_owned()
    };
    assert!(row(&first).starts_with(&format!("{collection},{first},{flipped},")), "{}", row(&first));
    assert!(row(&first).contains(",review,review,") && row(&first).ends_with(",alice"), "{}", row(&first));
    assert!(row(&second).contains(",review,review,"), "{}", row(&second));
    // Bad requests are refused with a JSON reason.
    let (status, body) = http(
        addr,
        "POST",
        "/api/review",
        Some(&json!({"collection": collection, "file": first, "label": "maybe", "reviewer": "alice"})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("product or noise"), "{body}");
    drop(browser);

    // Ctrl-C writes the labels to OUT.
    let _ = Command::new("kill").args(["-INT", &server.id().to_string()]).status();
    let started = Instant::now();
    while server.try_wait().expect("wait").is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "review server did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    }
    let written = std::fs::read_to_string(out.join("labels.csv")).expect("labels.csv");
    assert_eq!(written.lines().filter(|l| l.contains(",review,review,")).count(), 2, "{written}");
}
