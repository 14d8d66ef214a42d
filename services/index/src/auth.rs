//! API keys of the search API.
//!
//! A key is a bearer token (`Authorization: Bearer slk_...`). The server holds only SHA-256
//! digests of the tokens, in a TOML file (`SEARCH_API_KEYS`; in Kubernetes a Secret mounted as
//! that file), so reading the file or the Secret does not reveal a usable token. A presented
//! token is hashed and its digest compared with every key's in constant time. Each key names the
//! catalogues it may use (`*` for all), whether it may only read them (search, stats) or also
//! add items, and its rate limit (a token bucket of `per_minute` requests).
//!
//! ```toml
//! [[key]]
//! name = "shop-frontend"
//! sha256 = "<64 hex digits: sha256 of the token>"
//! catalogs = ["shop"]
//! read_only = true
//! per_minute = 600
//! ```
//!
//! `sightline-index --new-api-key NAME` prints a fresh token and its entry.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A key file that cannot be used.
#[derive(Debug, Error)]
pub enum KeysError {
    /// The file could not be read.
    #[error("read API keys {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid key file.
    #[error("API keys {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The default rate limit of a key, requests per minute.
pub const DEFAULT_PER_MINUTE: u32 = 600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default, rename = "key")]
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    sha256: String,
    #[serde(default = "every_catalog")]
    catalogs: Vec<String>,
    #[serde(default)]
    read_only: bool,
    #[serde(default = "default_per_minute")]
    per_minute: u32,
}

fn every_catalog() -> Vec<String> {
    vec!["*".to_owned()]
}

fn default_per_minute() -> u32 {
    DEFAULT_PER_MINUTE
}

/// One key: who it is and what it may do.
#[derive(Debug)]
pub struct Key {
    /// Its name (logged with each request; never the token).
    pub name: String,
    digest: [u8; 32],
    catalogs: Vec<String>,
    read_only: bool,
    per_minute: u32,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Why a request is refused: 401, 403 or 429, with a message (and, for 429, when to retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The status.
    pub status: StatusCode,
    /// What to tell the client.
    pub message: String,
    /// For 429: seconds until a request would be allowed.
    pub retry_after: Option<u64>,
}

impl Denied {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), retry_after: None }
    }
}

/// What a request may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Search a catalogue or read its statistics.
    Read,
    /// Add items to a catalogue.
    Write,
}

impl Key {
    /// Whether this key may do `access` on `catalog`: 403 otherwise.
    pub fn allows(&self, catalog: &str, access: Access) -> Result<(), Denied> {
        if !self.catalogs.iter().any(|c| c == "*" || c == catalog) {
            return Err(Denied::new(
                StatusCode::FORBIDDEN,
                format!("API key {:?} may not use catalogue {catalog:?}", self.name),
            ));
        }
        if access == Access::Write && self.read_only {
            return Err(Denied::new(
                StatusCode::FORBIDDEN,
                format!("API key {:?} may only read catalogue {catalog:?}", self.name),
            ));
        }
        Ok(())
    }

    /// Takes one request from the key's bucket: 429 when it is empty.
    fn take(&self) -> Result<(), Denied> {
        let rate = f64::from(self.per_minute) / 60.0;
        let capacity = f64::from(self.per_minute);
        let mut b = self.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - b.tokens) / rate);
        Err(Denied {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("API key {:?} is over its limit of {} requests per minute", self.name, self.per_minute),
            retry_after: Some(wait.as_secs().max(1)),
        })
    }
}

/// The keys the API accepts.
#[derive(Debug)]
pub struct Keys {
    keys: Vec<Arc<Key>>,
}

impl Keys {
    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, KeysError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read { path: shown.clone(), source })?;
        Self::parse(&text).map_err(|reason| KeysError::Invalid { path: shown, reason })
    }

    /// Parses the TOML of a key file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: KeyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.keys.is_empty() {
            return Err("no [[key]] in the file".to_owned());
        }
        let mut keys: Vec<Arc<Key>> = Vec::with_capacity(file.keys.len());
        for e in file.keys {
            if keys.iter().any(|k| k.name == e.name) {
                return Err(format!("key {:?} is listed twice", e.name));
            }
            let digest: [u8; 32] = hex::decode(e.sha256.trim())
                .ok()
                .and_then(|d| d.try_into().ok())
                .ok_or_else(|| format!("key {:?}: sha256 must be 64 hex digits (the token's SHA-256)", e.name))?;
            if e.per_minute == 0 {
                return Err(format!("key {:?}: per_minute must be at least 1", e.name));
            }
            if e.catalogs.is_empty() {
                return Err(format!("key {:?}: catalogs is empty (use [\"*\"] for every catalogue)", e.name));
            }
            keys.push(Arc::new(Key {
                name: e.name,
                digest,
                catalogs: e.catalogs,
                read_only: e.read_only,
                per_minute: e.per_minute,
                bucket: Mutex::new(Bucket { tokens: f64::from(e.per_minute), at: Instant::now() }),
            }));
        }
        Ok(Self { keys })
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key presenting `authorization` (the header's value), within its rate limit: 401
    /// without a valid bearer token, 429 over the limit.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Arc<Key>, Denied> {
        let unauthorized = |m: &str| Denied::new(StatusCode::UNAUTHORIZED, m);
        let header = authorization.ok_or_else(|| unauthorized("missing API key: send Authorization: Bearer <key>"))?;
        let token = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "))
            .ok_or_else(|| unauthorized("the Authorization header must be: Bearer <key>"))?;
        let digest: [u8; 32] = Sha256::digest(token.trim_ascii()).into();
        // Every key is compared, in constant time each, whichever matches.
        let mut found = None;
        for key in &self.keys {
            if constant_time_eq(&digest, &key.digest) {
                found = Some(key);
            }
        }
        let key = found.ok_or_else(|| unauthorized("invalid API key"))?;
        key.take()?;
        Ok(key.clone())
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A fresh token (`slk_` and 32 random bytes in hex) and the SHA-256 digest to store for it.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("slk_{}", hex::encode(bytes));
    let digest = hash_token(&token);
    (token, digest)
}

/// The hex SHA-256 digest stored for `token`.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(extra: &str) -> (Keys, String, String) {
        let (reader, reader_hash) = new_token();
        let (writer, writer_hash) = new_token();
        let text = format!(
            "[[key]]\nname = \"front\"\nsha256 = \"{reader_hash}\"\ncatalogs = [\"shop\"]\nread_only = true\n{extra}\n\
             [[key]]\nname = \"admin\"\nsha256 = \"{writer_hash}\"\n"
        );
        (Keys::parse(&text).expect("keys"), reader, writer)
    }

    fn bearer(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    #[test]
    fn tokens_are_checked_against_their_digests() {
        let (keys, reader, writer) = keys("");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.authenticate(Some(&bearer(&reader))).expect("reader").name, "front");
        assert_eq!(keys.authenticate(Some(&bearer(&writer))).expect("writer").name, "admin");
        for bad in [None, Some(b"Basic abc".to_vec()), Some(bearer("slk_nope")), Some(bearer(&reader[..20]))] {
            let denied = keys.authenticate(bad.as_deref()).expect_err("refused");
            assert_eq!(denied.status, StatusCode::UNAUTHORIZED, "{bad:?}: {denied:?}");
        }
        // The digest is what the file holds, never the token.
        assert_eq!(hash_token(&reader).len(), 64);
        assert_ne!(hash_token(&reader), reader);
    }

    #[test]
    fn catalogues_and_read_only_keys_are_enforced() {
        let (keys, reader, writer) = keys("");
        let front = keys.authenticate(Some(&bearer(&reader))).expect("reader");
        assert!(front.allows("shop", Access::Read).is_ok());
        assert_eq!(front.allows("shop", Access::Write).expect_err("read only").status, StatusCode::FORBIDDEN);
        assert_eq!(front.allows("other", Access::Read).expect_err("not its catalogue").status, StatusCode::FORBIDDEN);
        let admin = keys.authenticate(Some(&bearer(&writer))).expect("writer");
        assert!(admin.allows("anything", Access::Write).is_ok());
    }

    #[test]
    fn a_key_over_its_rate_is_told_when_to_retry() {
        let (keys, reader, _) = keys("per_minute = 3");
        for _ in 0..3 {
            keys.authenticate(Some(&bearer(&reader))).expect("within the limit");
        }
        let denied = keys.authenticate(Some(&bearer(&reader))).expect_err("over the limit");
        assert_eq!(denied.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(denied.retry_after.is_some_and(|s| (1..=20).contains(&s)), "{denied:?}");
    }

    #[test]
    fn bad_key_files_are_refused_with_the_reason() {
        for (text, needle) in [
            ("", "no [[key]]"),
            ("[[key]]\nname = \"a\"\nsha256 = \"abc\"\n", "64 hex digits"),
            ("[[key]]\nname = \"a\"\nsha256 = \"abc\"\ntoken = \"x\"\n", "unknown field"),
            (
                &format!(
                    "[[key]]\nname = \"a\"\nsha256 = \"{0}\"\n[[key]]\nname = \"a\"\nsha256 = \"{0}\"\n",
                    "0".repeat(64)
                ),
                "twice",
            ),
            (&format!("[[key]]\nname = \"a\"\nsha256 = \"{}\"\nper_minute = 0\n", "0".repeat(64)), "at least 1"),
        ] {
            let err = Keys::parse(text).expect_err("refused");
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
