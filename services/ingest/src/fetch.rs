//! Fetching images by URL, refusing loopback, private and link-local addresses unless allowed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

/// Why a URL could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is malformed or not http(s).
    #[error("bad url: {0}")]
    BadUrl(String),
    /// The host resolves to an address we refuse.
    #[error("refused url: {0}")]
    Refused(String),
    /// Network trouble or a 5xx/429 answer; may work later.
    #[error("fetch failed: {0}")]
    Transient(String),
    /// A 4xx answer, too large, too many redirects.
    #[error("fetch failed: {0}")]
    Permanent(String),
}

impl FetchError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Transient(_))
    }
}

/// Whether `ip` is an address a crawler must not reach by default.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xC0) == 64 // 100.64/10 carrier-grade NAT
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local
                || (seg0 & 0xffc0) == 0xfe80 // link local
        }
    }
}

/// Fetches images over HTTP(S).
pub struct UrlFetcher {
    timeout: Duration,
    max_bytes: u64,
    allow_private: bool,
}

const MAX_REDIRECTS: usize = 5;

impl UrlFetcher {
    /// A fetcher with the given limits.
    pub fn new(timeout: Duration, max_bytes: u64, allow_private: bool) -> Result<Self, FetchError> {
        Ok(Self { timeout, max_bytes, allow_private })
    }

    async fn resolve(&self, url: &url::Url) -> Result<SocketAddr, FetchError> {
        let host = url.host_str().ok_or_else(|| FetchError::BadUrl(format!("{url} has no host")))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| FetchError::Transient(format!("resolve {host}: {e}")))?
            .collect();
        let first = *addrs.first().ok_or_else(|| FetchError::Permanent(format!("{host} has no address")))?;
        if !self.allow_private
            && let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip()))
        {
            {
                return Err(FetchError::Refused(format!(
                    "{host} resolves to {} (loopback, private or link-local); set INGEST_ALLOW_PRIVATE_URLS=true to allow",
                    bad.ip()
                )));
            }
        }
        Ok(first)
    }

    /// Fetches `url`, following up to five redirects (each target checked again), reading at
    /// most the byte limit.
    pub async fn fetch(&self, url: &str) -> Result<Bytes, FetchError> {
        let mut url = url::Url::parse(url).map_err(|e| FetchError::BadUrl(format!("{url}: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(FetchError::BadUrl(format!("scheme {:?} not allowed", url.scheme())));
            }
            let addr = self.resolve(&url).await?;
            let host = url.host_str().unwrap_or_default().to_owned();
            // Pin the checked address so a second DNS answer cannot point elsewhere.
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(self.timeout)
                .resolve(&host, addr)
                .user_agent("sightline-ingest/0.1")
                .build()
                .map_err(|e| FetchError::Transient(format!("http client: {e}")))?;
            let resp =
                client.get(url.clone()).send().await.map_err(|e| FetchError::Transient(format!("{url}: {e}")))?;
            let status = resp.status();
            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| FetchError::Permanent(format!("{url}: redirect without location")))?;
                url = url.join(location).map_err(|e| FetchError::BadUrl(format!("redirect to {location}: {e}")))?;
                continue;
            }
            if status.as_u16() == 429 || status.is_server_error() {
                return Err(FetchError::Transient(format!("{url}: HTTP {status}")));
            }
            if !status.is_success() {
                return Err(FetchError::Permanent(format!("{url}: HTTP {status}")));
            }
            if resp.content_length().is_some_and(|n| n > self.max_bytes) {
                return Err(FetchError::Permanent(format!(
                    "file too large: {} bytes, limit {}",
                    resp.content_length().unwrap_or(0),
                    self.max_bytes
                )));
            }
            let mut body = BytesMut::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| FetchError::Transient(format!("{url}: {e}")))?;
                if (body.len() + chunk.len()) as u64 > self.max_bytes {
                    return Err(FetchError::Permanent(format!("file too large: over {} bytes", self.max_bytes)));
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(body.freeze());
        }
        Err(FetchError::Permanent(format!("more than {MAX_REDIRECTS} redirects")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(is_forbidden(ip.parse().expect("ip")), "{ip} allowed");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_forbidden(ip.parse().expect("ip")), "{ip} forbidden");
        }
    }

    #[tokio::test]
    async fn loopback_urls_are_refused_by_default() {
        let f = UrlFetcher::new(Duration::from_secs(2), 1000, false).expect("fetcher");
        let err = f.fetch("http://127.0.0.1:9/x.jpg").await.expect_err("refused");
        assert!(matches!(err, FetchError::Refused(_)), "{err}");
        assert!(err.to_string().contains("INGEST_ALLOW_PRIVATE_URLS"));
        let err = f.fetch("file:///etc/passwd").await.expect_err("scheme");
        assert!(matches!(err, FetchError::BadUrl(_)), "{err}");
    }
}
