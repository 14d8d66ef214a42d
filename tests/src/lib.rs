//! Harness for the end-to-end tests: the real services (via `deploy/local/services.sh`), a
//! RabbitMQ vhost of its own per test, worker binaries as processes, the `sightline` CLI.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub use sightline_test_support::{fixture_path, repo};

pub mod hostile;
pub mod own;

/// Path of a workspace binary (built by `cargo build --bins` before the tests).
pub fn bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    let path = target.join("debug").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins` first", path.display());
    path
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The running services, with a RabbitMQ vhost private to one test (deleted on drop).
pub struct Services {
    env: HashMap<String, String>,
    vhost: String,
    /// Scratch space for this test (state dir for `up.sh`, inputs).
    pub scratch: tempfile::TempDir,
}

impl Services {
    /// Starts (or finds) the services and creates a fresh vhost.
    pub fn start() -> Self {
        let out = run_ok(Command::new(repo().join("deploy/local/services.sh")).arg("start"));
        let mut env = HashMap::new();
        for line in out.lines() {
            if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                env.insert(k.to_owned(), v.trim_matches('\'').to_owned());
            }
        }
        let vhost = format!("sl-e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        run_ok(Command::new("rabbitmqctl").args(["-q", "add_vhost", &vhost]));
        run_ok(Command::new("rabbitmqctl").args(["-q", "set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]));
        env.insert("AMQP_URL".into(), format!("amqp://guest:guest@127.0.0.1:5672/{vhost}"));
        let scratch = tempfile::tempdir().expect("scratch dir");
        env.insert("SIGHTLINE_STATE".into(), scratch.path().join("state").display().to_string());
        Self { env, vhost, scratch }
    }

    /// The value of `name` in the services' environment (`AMQP_URL`, `REDIS_URL`...).
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    /// Points every command and worker started from now on at another instance of a service:
    /// `REDIS_URL`, `S3_ENDPOINT`... (the fault drills' own Redis and object store).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.insert(name.to_owned(), value.to_owned());
    }

    /// The RabbitMQ vhost of this test.
    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    /// A command with the services' environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(&self.env).env_remove("RUST_LOG").current_dir(repo());
        cmd
    }

    /// Runs the `sightline` CLI and returns its output (whatever the exit code).
    pub fn sightline(&self, args: &[&str]) -> Output {
        self.command(bin("sightline")).args(args).output().expect("run sightline")
    }

    /// Runs the `sightline` CLI, asserts success, parses stdout as JSON.
    pub fn sightline_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.sightline(args);
        assert!(out.status.success(), "sightline {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("sightline {args:?}: not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Runs `sightline submit ARGS --wait --json --timeout-secs TIMEOUT_SECS`, asserts success,
    /// and returns the job's id and the printed JSON (`job`, `status`).
    pub fn submit_and_wait(&self, args: &[&str], timeout_secs: u64) -> (String, serde_json::Value) {
        let timeout = timeout_secs.to_string();
        let mut all = vec!["submit"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--wait", "--json", "--timeout-secs", &timeout]);
        let out = self.sightline_json(&all);
        let job = out["job"].as_str().expect("job").to_owned();
        (job, out)
    }

    /// The records of `job` (`sightline results JOB --json`).
    pub fn records(&self, job: &str) -> Vec<serde_json::Value> {
        self.sightline_json(&["results", job, "--json"]).as_array().expect("records array").clone()
    }

    /// The status of `job` as JSON (`status` object), or `None` while unknown.
    pub fn status(&self, job: &str) -> Option<serde_json::Value> {
        let out = self.sightline(&["status", job, "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok())
            .flatten()
            .map(|v| v["status"].clone())
    }

    /// Waits until `job` has at least `n` finished items; returns the status.
    pub fn wait_finished(&self, job: &str, n: u64, timeout: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            if let Some(s) = self.status(job)
                && s["finished"].as_u64().unwrap_or(0) >= n
            {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "job {job} did not reach {n} finished items in {timeout:?}: {:?}",
                self.status(job)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["-q", "delete_vhost", &self.vhost]).output();
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A plain HTTP GET on loopback; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// A plain HTTP POST of a JSON body on loopback; returns (status, body).
pub fn http_post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Option<(u16, String)> {
    let payload = body.to_string();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// A worker process started by a test.
pub struct Worker {
    child: Child,
    /// Its admin address.
    pub admin: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
}

impl Worker {
    /// Starts `sightline-<stage>` with the services' environment plus `extra`, and waits
    /// until `/readyz` answers 200.
    pub fn start(services: &Services, stage: &str, extra: &[(&str, &str)]) -> Self {
        let mut worker = Self::spawn(services, stage, extra);
        worker.wait_ready(Duration::from_secs(60));
        worker
    }

    /// Starts `sightline-<stage>` like [`Worker::start`] without waiting for it to be ready.
    pub fn spawn(services: &Services, stage: &str, extra: &[(&str, &str)]) -> Self {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = services.scratch.path().join(format!("{stage}-{}.log", admin.port()));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = services.command(bin(&format!("sightline-{stage}")));
        cmd.env("ADMIN_ADDR", admin.to_string()).env("RUST_LOG", "info").stdout(Stdio::null()).stderr(file);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn worker");
        Self { child, admin, log }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its peak resident memory so far (`VmHWM`), in bytes, while it runs (Linux).
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Some((200, _)) = http_get(self.admin, "/readyz") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("worker exited early ({status}):\n{}", self.log_text());
            }
            assert!(start.elapsed() < timeout, "worker not ready in {timeout:?}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The worker's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its `/metrics` text.
    pub fn metrics(&self) -> String {
        http_get(self.admin, "/metrics").map(|(_, b)| b).unwrap_or_default()
    }

    /// Sends a signal (`TERM`, `KILL`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies every file of `from` (recursively) into `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

/// Copies the sample's collections (the folders of `tests/fixtures/sample`) into `dest`.
pub fn copy_sample_collections(dest: &Path) {
    for entry in std::fs::read_dir(fixture_path("sample")).expect("sample") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            let to = dest.join(entry.file_name());
            std::fs::create_dir_all(&to).expect("mkdir");
            copy_tree(&entry.path(), &to);
        }
    }
}

/// Copies `files` of `tests/fixtures/<folder>` into `dest` (created).
pub fn copy_fixtures(folder: &str, files: &[&str], dest: &Path) {
    std::fs::create_dir_all(dest).expect("mkdir");
    for f in files {
        std::fs::copy(fixture_path(folder).join(f), dest.join(f)).expect("copy fixture");
    }
}

/// The `stage` annotation of the record named `name` in `records`, after checking that `stage`
/// was the last to handle it.
pub fn annotation_of(records: &[serde_json::Value], name: &str, stage: &str) -> serde_json::Value {
    let r = records.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no record for {name}"));
    assert_eq!(r["stage"], stage, "{r}");
    r["annotations"][stage].clone()
}

/// A plain HTTP POST of a `multipart/form-data` body with one `file` part per (file name, bytes)
/// on loopback; waits up to `timeout` for the answer; returns (status, body).
pub fn http_post_multipart(
    addr: SocketAddr,
    path: &str,
    files: &[(&str, &[u8])],
    timeout: Duration,
) -> Option<(u16, String)> {
    const BOUNDARY: &str = "sightline-e2e-7d1f3a";
    let mut body = Vec::new();
    for (name, bytes) in files {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .ok()?;
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{BOUNDARY}--\r\n").ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .ok()?;
    s.write_all(&body).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let buf = String::from_utf8_lossy(&buf);
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}
