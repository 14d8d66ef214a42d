//! Configuration shared by every service: flags, each with an environment variable.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// Where the services are. Secrets never appear in `Debug` output.
#[derive(Clone, Args)]
pub struct CommonArgs {
    /// RabbitMQ URL.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: String,
    /// S3 endpoint; empty for AWS itself.
    #[arg(long, env = "S3_ENDPOINT", default_value = "http://127.0.0.1:8333")]
    pub s3_endpoint: String,
    /// Bucket for images, records and indexes.
    #[arg(long, env = "S3_BUCKET", default_value = "sightline")]
    pub s3_bucket: String,
    /// S3 region.
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// S3 access key; unset uses the SDK's credential chain.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key: Option<String>,
    /// S3 secret key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
}

/// `scheme://user:<redacted>@host...` for logging.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("<redacted>"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".to_owned(),
    }
}

impl fmt::Debug for CommonArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommonArgs")
            .field("amqp_url", &redact_url(&self.amqp_url))
            .field("redis_url", &redact_url(&self.redis_url))
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key", &self.s3_access_key)
            .field("s3_secret_key", &self.s3_secret_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How a worker runs its stage.
#[derive(Debug, Clone, Args)]
pub struct RunnerSettings {
    /// Admin server address (`/livez`, `/readyz`, `/metrics`).
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9100")]
    pub admin_addr: SocketAddr,
    /// Unacknowledged messages held at once; also the handler concurrency.
    #[arg(long, env = "PREFETCH", default_value_t = 8)]
    pub prefetch: u16,
    /// A handler running longer than this fails (transiently).
    #[arg(long, env = "HANDLER_TIMEOUT_SECS", default_value_t = 120)]
    pub handler_timeout_secs: u64,
    /// On SIGTERM, in-flight work gets this long to finish before the worker exits.
    #[arg(long, env = "DRAIN_DEADLINE_SECS", default_value_t = 25)]
    pub drain_deadline_secs: u64,
    /// Attempts before a transiently failing message is dead-lettered.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt, with full jitter.
    #[arg(long, env = "RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// Longest retry delay in milliseconds.
    #[arg(long, env = "RETRY_MAX_MS", default_value_t = 60_000)]
    pub retry_max_ms: u64,
    /// Fault injection for tests: sleep this long before every handler (keeps messages
    /// unacknowledged long enough to kill or stop a busy worker). Never set in production.
    #[arg(long, env = "SIGHTLINE_CHAOS_DELAY_MS", default_value_t = 0, hide = true)]
    pub chaos_delay_ms: u64,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            prefetch: 8,
            handler_timeout_secs: 120,
            drain_deadline_secs: 25,
            max_attempts: 5,
            retry_base_ms: 1000,
            retry_max_ms: 60_000,
            chaos_delay_ms: 0,
        }
    }
}

impl RunnerSettings {
    /// The handler timeout.
    pub fn handler_timeout(&self) -> Duration {
        Duration::from_secs(self.handler_timeout_secs)
    }

    /// The drain deadline.
    pub fn drain_deadline(&self) -> Duration {
        Duration::from_secs(self.drain_deadline_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let args = CommonArgs {
            amqp_url: "amqp://guest:hunter2@rabbit:5672/%2f".into(),
            redis_url: "redis://:pw@redis:6379/".into(),
            s3_endpoint: "http://s3".into(),
            s3_bucket: "b".into(),
            s3_region: "r".into(),
            s3_access_key: Some("AKIA".into()),
            s3_secret_key: Some("topsecret".into()),
        };
        let shown = format!("{args:?}");
        for secret in ["hunter2", "topsecret", ":pw@"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("guest:%3Credacted%3E@rabbit") || shown.contains("<redacted>"), "{shown}");
    }
}
