//! Coordination over Redis. Multi-key updates are Lua scripts, so they are atomic.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::near;
use crate::{Coord, CoordError, FINAL_SCOPE, JOB_TTL, JobStatus, NearKey, NearMatch, Tally};

/// Coordination in Redis. Cheap to clone: the connection manager reconnects by itself.
#[derive(Clone)]
pub struct RedisCoord {
    conn: ConnectionManager,
    prefix: String,
}

/// Fail fast while Redis is away: a command waits through two quick reconnect attempts (not
/// the default six, about 6 s), a connection attempt at most 3 s and an answer at most 10 s.
/// Waiting out an outage is the runner's job (`sightline_runtime::outage`), which pauses and
/// probes instead of holding every call.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1))
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(10)))
}

fn unavailable(e: redis::RedisError) -> CoordError {
    CoordError::Unavailable(e.to_string())
}

const JOB_START: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'started_ms', ARGV[2], 'total', ARGV[3])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], 'ct:' .. ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"#;

// KEYS: job hash, scope hash, scope items hash. ARGV: item, collection, outcome, ttl.
const TALLY: &str = r#"
local prev = redis.call('HGET', KEYS[3], ARGV[1])
local first = 0
if not prev then
  first = 1
  redis.call('HINCRBY', KEYS[2], 'finished', 1)
  redis.call('HINCRBY', KEYS[2], 'cf:' .. ARGV[2], 1)
  redis.call('HINCRBY', KEYS[2], 'o:' .. ARGV[3], 1)
else
  local sep = string.find(prev, '\31', 1, true)
  local old = string.sub(prev, sep + 1)
  if old ~= ARGV[3] then
    redis.call('HINCRBY', KEYS[2], 'o:' .. old, -1)
    redis.call('HINCRBY', KEYS[2], 'o:' .. ARGV[3], 1)
  end
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2] .. '\31' .. ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[4])
local finished = tonumber(redis.call('HGET', KEYS[2], 'finished') or '0')
local cfinished = tonumber(redis.call('HGET', KEYS[2], 'cf:' .. ARGV[2]) or '0')
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
local ctotal = tonumber(redis.call('HGET', KEYS[1], 'ct:' .. ARGV[2]) or '0')
return {first, finished, total, cfinished, ctotal}
"#;

const LEASE_ACQUIRE: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

const LEASE_RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

// The near-duplicate index, atomic because a script runs alone: the lookup and the insert
// cannot interleave with another caller's, so two racing near-identical hashes never both
// get in. Bucket members are "<16 hex digits of the hash>:<insertion number>".
// KEYS: [1] entries (number -> value), [2] ids (id -> number), [3] insertion counter,
//       [4..7] the hash's own four band buckets, [8..] other buckets to probe (the hash's
//       neighbours, the alternate hash's buckets and neighbours).
// ARGV: [1] hash as 16 hex digits, [2] id, [3] value, [4] max distance, [5] ttl ms,
//       [6] the alternate hash as 16 hex digits, or empty.
const CLAIM_NEAR: &str = r#"
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return {0} end
local function bands(h)
  local q = {}
  for b = 0, 3 do q[b + 1] = tonumber(string.sub(h, 4 * b + 1, 4 * b + 4), 16) end
  return q
end
local function dist(q, m)
  local d = 0
  for b = 0, 3 do
    local x = bit.bxor(q[b + 1], tonumber(string.sub(m, 4 * b + 1, 4 * b + 4), 16))
    while x ~= 0 do
      x = bit.band(x, x - 1)
      d = d + 1
    end
  end
  return d
end
local h = ARGV[1]
local q = bands(h)
local qa = nil
if ARGV[6] ~= '' then qa = bands(ARGV[6]) end
local max = tonumber(ARGV[4])
local best, best_n, best_hash, best_alt = nil, nil, nil, 0
local seen = {}
for k = 4, #KEYS do
  for _, m in ipairs(redis.call('SMEMBERS', KEYS[k])) do
    if not seen[m] then
      seen[m] = true
      local d, alt = dist(q, m), 0
      if qa then
        local da = dist(qa, m)
        if da < d then d, alt = da, 1 end
      end
      if d <= max then
        local n = tonumber(string.sub(m, 18))
        if best == nil or d < best or (d == best and n < best_n) then
          best, best_n, best_hash, best_alt = d, n, string.sub(m, 1, 16), alt
        end
      end
    end
  end
end
if best then
  return {1, redis.call('HGET', KEYS[1], tostring(best_n)) or '', best_hash, best, best_alt}
end
local n = redis.call('INCR', KEYS[3])
local member = h .. ':' .. n
for k = 4, 7 do
  redis.call('SADD', KEYS[k], member)
  redis.call('PEXPIRE', KEYS[k], ARGV[5])
end
redis.call('HSET', KEYS[1], tostring(n), ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], tostring(n))
for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], ARGV[5]) end
return {0}
"#;

impl RedisCoord {
    /// Connects to `url` (`redis://host:port/db`). Keys are prefixed with `sl:`.
    pub async fn connect(url: &str) -> Result<Self, CoordError> {
        Self::connect_with_prefix(url, "sl").await
    }

    /// Connects with a custom key prefix (tests use one per run).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self, CoordError> {
        let client = redis::Client::open(url).map_err(|e| CoordError::Unavailable(format!("bad redis url: {e}")))?;
        let conn = ConnectionManager::new_with_config(client, manager_config()).await.map_err(unavailable)?;
        Ok(Self { conn, prefix: prefix.to_owned() })
    }

    fn job_key(&self, job: &str) -> String {
        format!("{}:job:{{{job}}}", self.prefix)
    }

    fn scope_key(&self, job: &str, scope: &str) -> String {
        format!("{}:job:{{{job}}}:s:{scope}", self.prefix)
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Coord for RedisCoord {
    async fn is_done(&self, id: &str) -> Result<bool, CoordError> {
        let mut c = self.conn.clone();
        c.exists(format!("{}:done:{id}", self.prefix)).await.map_err(unavailable)
    }

    async fn mark_done(&self, id: &str, ttl: Duration) -> Result<(), CoordError> {
        let mut c = self.conn.clone();
        c.pset_ex::<_, _, ()>(format!("{}:done:{id}", self.prefix), 1, ms(ttl)).await.map_err(unavailable)
    }

    async fn job_start(
        &self,
        job: &str,
        kind: &str,
        totals: &BTreeMap<String, u64>,
        now_ms: u64,
    ) -> Result<bool, CoordError> {
        let mut c = self.conn.clone();
        let script = redis::Script::new(JOB_START);
        let mut inv = script.key(self.job_key(job));
        inv.arg(kind).arg(now_ms).arg(totals.values().sum::<u64>()).arg(JOB_TTL.as_secs());
        for (collection, n) in totals {
            inv.arg(collection).arg(*n);
        }
        let created: i64 = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        Ok(created == 1)
    }

    async fn tally(
        &self,
        job: &str,
        scope: &str,
        item: u64,
        collection: &str,
        outcome: &str,
    ) -> Result<Tally, CoordError> {
        let mut c = self.conn.clone();
        let scope_key = self.scope_key(job, scope);
        let (first, finished, total, cf, ct): (i64, u64, u64, u64, u64) = redis::Script::new(TALLY)
            .key(self.job_key(job))
            .key(&scope_key)
            .key(format!("{scope_key}:items"))
            .arg(item)
            .arg(collection)
            .arg(outcome)
            .arg(JOB_TTL.as_secs())
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(Tally { first: first == 1, finished, total, collection_finished: cf, collection_total: ct })
    }

    async fn job_status(&self, job: &str) -> Result<Option<JobStatus>, CoordError> {
        let mut c = self.conn.clone();
        let head: BTreeMap<String, String> = c.hgetall(self.job_key(job)).await.map_err(unavailable)?;
        if head.is_empty() {
            return Ok(None);
        }
        let scope: BTreeMap<String, String> = c.hgetall(self.scope_key(job, FINAL_SCOPE)).await.map_err(unavailable)?;
        let num = |m: &BTreeMap<String, String>, k: &str| -> Result<u64, CoordError> {
            m.get(k).map_or(Ok(0), |v| v.parse().map_err(|_| CoordError::Corrupt(format!("{k}={v}"))))
        };
        let mut collections = BTreeMap::new();
        let mut outcomes = BTreeMap::new();
        for (k, v) in &head {
            if let Some(coll) = k.strip_prefix("ct:") {
                let total = v.parse().map_err(|_| CoordError::Corrupt(format!("{k}={v}")))?;
                collections.insert(coll.to_owned(), (num(&scope, &format!("cf:{coll}"))?, total));
            }
        }
        for (k, v) in &scope {
            if let Some(o) = k.strip_prefix("o:") {
                let n: i64 = v.parse().map_err(|_| CoordError::Corrupt(format!("{k}={v}")))?;
                if n > 0 {
                    outcomes.insert(o.to_owned(), n as u64);
                }
            }
        }
        Ok(Some(JobStatus {
            job_id: job.to_owned(),
            kind: head.get("kind").cloned().unwrap_or_default(),
            total: num(&head, "total")?,
            finished: num(&scope, "finished")?,
            outcomes,
            collections,
            started_ms: num(&head, "started_ms")?,
        }))
    }

    async fn counter_add(&self, key: &str, delta: i64) -> Result<i64, CoordError> {
        let mut c = self.conn.clone();
        c.incr(format!("{}:ctr:{key}", self.prefix), delta).await.map_err(unavailable)
    }

    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Option<String>, CoordError> {
        let mut c = self.conn.clone();
        // SET NX GET: returns the old value when the key exists (and sets nothing), nil when set.
        redis::cmd("SET")
            .arg(format!("{}:claim:{key}", self.prefix))
            .arg(value)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(ms(ttl))
            .query_async(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn claimed(&self, key: &str) -> Result<Option<String>, CoordError> {
        let mut c = self.conn.clone();
        c.get(format!("{}:claim:{key}", self.prefix)).await.map_err(unavailable)
    }

    async fn claim_near(
        &self,
        index: &str,
        key: NearKey,
        id: &str,
        value: &str,
        max_distance: u32,
        ttl: Duration,
    ) -> Result<Option<NearMatch>, CoordError> {
        let mut c = self.conn.clone();
        let max_distance = near::clamp(max_distance);
        // One hash tag per index: every key of it lives in one cluster slot, as a script needs.
        let base = format!("{}:near:{{{index}}}", self.prefix);
        let script = redis::Script::new(CLAIM_NEAR);
        let mut inv = script.key(format!("{base}:e"));
        inv.key(format!("{base}:i")).key(format!("{base}:n"));
        // `probes` lists the hash's own buckets first, as the script expects.
        let hash = key.hash;
        let alternate = key.alternate.map(|a| near::probes(a, max_distance)).unwrap_or_default();
        for (b, v) in near::probes(hash, max_distance).into_iter().chain(alternate) {
            inv.key(format!("{base}:b{b}:{v:04x}"));
        }
        let alternate = key.alternate.map(|a| format!("{a:016x}")).unwrap_or_default();
        inv.arg(format!("{hash:016x}")).arg(id).arg(value).arg(max_distance).arg(ms(ttl)).arg(alternate);
        let reply: Vec<redis::Value> = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        let corrupt = || CoordError::Corrupt(format!("near index {index}: unexpected reply {reply:?}"));
        let int = |v: &redis::Value| match v {
            redis::Value::Int(i) => Some(*i),
            _ => None,
        };
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            redis::Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        };
        match reply.first().and_then(int) {
            Some(0) => Ok(None),
            Some(1) if reply.len() == 5 => {
                let value = text(&reply[1]).ok_or_else(corrupt)?;
                let hash = text(&reply[2]).and_then(|h| u64::from_str_radix(&h, 16).ok()).ok_or_else(corrupt)?;
                let distance = reply.get(3).and_then(int).and_then(|d| u32::try_from(d).ok()).ok_or_else(corrupt)?;
                let alternate = reply.get(4).and_then(int).ok_or_else(corrupt)? == 1;
                Ok(Some(NearMatch { value, hash, distance, alternate }))
            }
            _ => Err(corrupt()),
        }
    }

    async fn lease_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, CoordError> {
        let mut c = self.conn.clone();
        let got: i64 = redis::Script::new(LEASE_ACQUIRE)
            .key(format!("{}:lease:{name}", self.prefix))
            .arg(owner)
            .arg(ms(ttl))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(got == 1)
    }

    async fn lease_release(&self, name: &str, owner: &str) -> Result<bool, CoordError> {
        let mut c = self.conn.clone();
        let n: i64 = redis::Script::new(LEASE_RELEASE)
            .key(format!("{}:lease:{name}", self.prefix))
            .arg(owner)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    async fn health(&self) -> Result<(), CoordError> {
        let mut c = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut c).await.map(|_| ()).map_err(unavailable)
    }
}
