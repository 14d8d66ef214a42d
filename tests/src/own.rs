//! Services of a test's own, on free loopback ports with their own data folders, which the test
//! may stop, kill and restart (the fault drills): never the shared instances on the standard
//! ports, which other tests and tools use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, repo, run_ok};

/// A free loopback port P whose P + 10000 (where SeaweedFS puts a server's gRPC port) is free too.
fn free_port_with_grpc() -> u16 {
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    let seed = std::process::id() as u16;
    (0..20_000u16)
        .map(|i| 20_000 + (seed.wrapping_add(i.wrapping_mul(7919))) % 25_000)
        .find(|&p| free(p) && free(p + 10_000))
        .expect("a free port pair")
}

/// A `redis-server` on a free port, persisting with AOF (`appendfsync everysec`, the production
/// setting in `deploy/`), so a restart keeps its data.
pub struct OwnRedis {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one with its data in `dir`.
    pub fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("redis dir");
        let mut redis = Self { port: free_port(), dir: dir.to_owned(), child: None };
        redis.up();
        redis
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it again (after [`OwnRedis::stop`]) over the same data.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "redis already running");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--dir", self.dir.to_str().expect("utf8 dir")])
            .args(["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let start = Instant::now();
        while !self.answers() {
            assert!(start.elapsed() < Duration::from_secs(20), "redis on {} did not start", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it as an operator would (`SHUTDOWN`, which writes the AOF out).
    pub fn stop(&mut self) {
        let _ = Command::new("redis-cli").args(["-p", &self.port.to_string(), "shutdown"]).output();
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    fn answers(&self) -> bool {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "ping"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A SeaweedFS S3 server of its own, started as `deploy/local/services.sh start-s3` starts it,
/// with its own state folder and S3 port.
pub struct OwnS3 {
    /// Its S3 port.
    pub port: u16,
    state: PathBuf,
}

impl OwnS3 {
    /// Starts one with its state in `state`.
    pub fn start(state: &Path) -> Self {
        let s3 = Self { port: free_port_with_grpc(), state: state.to_owned() };
        s3.up();
        s3
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn script(&self, verb: &str) -> Command {
        let mut cmd = Command::new(repo().join("deploy/local/services.sh"));
        cmd.arg(verb).env("SIGHTLINE_STATE", &self.state).env("SIGHTLINE_S3_PORT", self.port.to_string());
        cmd
    }

    /// Starts it (again, over the same data).
    pub fn up(&self) {
        run_ok(&mut self.script("start-s3"));
    }

    /// Stops it.
    pub fn stop(&self) {
        run_ok(&mut self.script("stop"));
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        let _ = self.script("stop").output();
    }
}

/// A RabbitMQ node of its own (Debian's `rabbitmq-server`) with its own node name, ports, config
/// and data folder, run in the foreground as a child so the test can stop and restart it.
pub struct OwnRabbit {
    /// Its AMQP port.
    pub port: u16,
    node: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRabbit {
    /// Starts one with its files in `dir`.
    pub fn start(dir: &Path) -> Self {
        let port = free_port_with_grpc();
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).expect("rabbitmq dir");
        }
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        std::fs::write(dir.join("rabbitmq.conf"), format!("listeners.tcp.local = 127.0.0.1:{port}\n")).expect("config");
        // Run as root, rabbitmq-server drops to the `rabbitmq` user: the files must be its own.
        if Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n")) {
            run_ok(Command::new("chown").args(["-R", "rabbitmq:rabbitmq"]).arg(dir));
        }
        let mut rabbit = Self { port, node: format!("sl-drill-{port}@localhost"), dir: dir.to_owned(), child: None };
        rabbit.up();
        rabbit
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts it (again, over the same data) and waits until it accepts AMQP connections.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "rabbitmq already running");
        let d = |f: &str| self.dir.join(f);
        let child = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_DIST_PORT", (self.port + 10_000).to_string())
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_PID_FILE", d("pid"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d("feature_flags"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rabbitmq-server");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(90), "rabbitmq node {} did not start", self.node);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the node (`rabbitmqctl stop`) and waits for it to exit.
    pub fn stop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["-n", &self.node, "-q", "stop"]).output();
        if let Some(mut child) = self.child.take() {
            let start = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRabbit {
    fn drop(&mut self) {
        self.stop();
    }
}
