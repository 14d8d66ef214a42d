//! The search HTTP API the `sightline-index` binary serves beside its worker.
//!
//! Services never call each other: a request becomes a job on the bus, routed
//! ingest → detect → embed → ocr → index like any other, and the answer is read back from the
//! job's record. Catalogue images are indexed by the index stage; a search photo is embedded and
//! read by the model stages and answered by the index stage's query mode ([`crate::query`]).
//! This process never embeds an image itself (only the model stages link ONNX Runtime).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use sightline_messages::annotations::SearchOut;
use sightline_messages::options::{self, EMBED_ZOOM, SEARCH_MODE};
use sightline_messages::{ItemOutcome, JobSpec, Source};
use sightline_runtime::Backends;
use sightline_runtime::embedded::wait_for_job;
use sightline_runtime::records::read_records;
use sightline_runtime::runner::submit_job;
use tracing::{info, warn};
use uuid::Uuid;

use crate::auth::{Access, Denied, Key, Keys};
use crate::catalog::{CatalogView, Catalogs};
use sightline_messages::options::{DEFAULT_K, MAX_K, SEARCH_CATALOG, SEARCH_K};

/// The route every request's job follows.
pub const ROUTE: [&str; 5] = options::SEARCH_ROUTE;
/// The job kind of catalogue uploads.
pub const KIND_CATALOG: &str = options::JOB_CATALOG;
/// The job kind of searches.
pub const KIND_SEARCH: &str = options::JOB_SEARCH;
/// The collection a search photo is uploaded to (queries are never indexed).
/// Percent cut off each side of a query's crop for its zoomed-in view (the default of
/// `sightline search --query-zoom`, measured in docs/search.md).
const QUERY_ZOOM: u32 = 25;

const QUERY_COLLECTION: &str = "query";

/// Limits and timeouts of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How long a search waits for its job.
    pub search_timeout: Duration,
    /// How long `POST /v1/catalog/{name}/items?wait=true` waits for its job.
    pub catalog_timeout: Duration,
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// The API keys requests must present; `None`: an open API (loopback only, see
    /// [`crate::server::worker`]).
    pub keys: Option<Arc<Keys>>,
    /// How long a request retries an unavailable object store or broker before answering 503.
    pub patience: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            search_timeout: Duration::from_secs(60),
            catalog_timeout: Duration::from_secs(300),
            max_body: 20 * 1024 * 1024,
            keys: None,
            patience: Duration::from_secs(10),
        }
    }
}

#[derive(Clone)]
struct ApiState {
    backends: Backends,
    config: Arc<ApiConfig>,
    catalogs: Arc<Catalogs>,
}

/// A JSON error: `{"error": ...}` (and the job, when one was started) with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    job: Option<Uuid>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), job: None, retry_after: None }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 500: the error is logged; the client learns what failed, not the internals (addresses,
    /// keys, a dependency's messages).
    fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        warn!(error = %e, "{what}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what} failed (details in the server log)"))
    }

    /// A dependency's failure: 503 with `Retry-After` when it stayed unavailable (`transient`)
    /// through the request's retries, else 500.
    fn dependency(what: &str, dependency: &str, transient: bool, e: impl std::fmt::Display) -> Self {
        if !transient {
            return Self::internal(what, e);
        }
        warn!(error = %e, "{what}: {dependency} unavailable");
        let mut err =
            Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("{what}: the {dependency} is unavailable, retry later"));
        err.retry_after = Some(RETRY_AFTER_SECS);
        err
    }

    fn denied(denied: Denied) -> Self {
        Self { status: denied.status, message: denied.message, job: None, retry_after: denied.retry_after }
    }

    fn with_job(mut self, job: Uuid) -> Self {
        self.job = Some(job);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(job) = self.job {
            body["job"] = json!(job);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The caller of a request: the key it presented (checked, and counted against its rate
/// limit, before the handler runs), or anyone when the API is open.
struct Caller(Option<Arc<Key>>);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Some(keys) = &state.config.keys else { return Ok(Caller(None)) };
        let header = parts.headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
        let key = keys.authenticate(header).map_err(ApiError::denied)?;
        Ok(Caller(Some(key)))
    }
}

impl Caller {
    /// Whether the caller may do `access` on `catalog` (403 otherwise).
    fn allow(&self, catalog: &str, access: Access) -> Result<(), ApiError> {
        match &self.0 {
            Some(key) => key.allows(catalog, access).map_err(ApiError::denied),
            None => Ok(()),
        }
    }
}

type ApiResult = Result<Response, ApiError>;

/// The API's routes over `backends`, serving the catalogues `catalogs` (shared with this
/// process's index stage).
pub fn router(backends: Backends, config: ApiConfig, catalogs: Arc<Catalogs>) -> Router {
    let max_body = config.max_body;
    let state = ApiState { backends, config: Arc::new(config), catalogs };
    Router::new()
        .route("/v1/catalog/{name}/items", post(add_items))
        .route("/v1/catalog/{name}", get(catalog_stats))
        .route("/v1/search", post(search))
        .route("/v1/openapi.json", get(|| async { axum::Json(openapi()) }))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route (see /v1/openapi.json)") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// A catalogue name: 1 to 64 letters, digits, `.`, `_` or `-` (it becomes a storage key segment
/// and a collection name).
pub fn valid_catalog(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("catalogue name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'")))
    }
}

/// A safe file name from a client's: the last path component, odd characters replaced.
pub fn file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(100)
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean.is_empty() { "upload".to_owned() } else { clean.to_owned() }
}

/// The file parts of a multipart body, as (safe file name, bytes); other fields are ignored.
async fn files(multipart: Result<Multipart, MultipartRejection>) -> Result<Vec<(String, Bytes)>, ApiError> {
    let mut multipart = multipart.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let mut out: Vec<(String, Bytes)> = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(ApiError::new(e.status(), format!("read the upload: {}", e.body_text()))),
        };
        let Some(name) = field.file_name().map(file_name) else { continue };
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::new(e.status(), format!("read the upload: {}", e.body_text())))?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::bad_request(format!("file name {name:?} given twice")));
        }
        out.push((name, bytes));
    }
    if out.is_empty() {
        return Err(ApiError::bad_request("no file in the multipart body"));
    }
    Ok(out)
}

use sightline_messages::now_ms;

/// The `Retry-After` of a 503.
const RETRY_AFTER_SECS: u64 = 5;

/// Runs `call` again with capped backoff (250 ms doubling to 2 s) while `transient` says its
/// error may pass, for up to `patience`; then returns the last error.
async fn patiently<T, E, F, Fut>(patience: Duration, call: F, transient: fn(&E) -> bool) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    sightline_bus::retry_for(patience, Duration::from_millis(125), Duration::from_secs(2), transient, |_, _| {}, call)
        .await
}

/// Uploads `files` under `uploads/<job>/<collection>/` and publishes the job.
async fn start_job(
    backends: &Backends,
    patience: Duration,
    kind: &str,
    collection: &str,
    files: Vec<(String, Bytes)>,
    options: BTreeMap<String, String>,
) -> Result<Uuid, ApiError> {
    let job = Uuid::new_v4();
    let prefix = format!("uploads/{job}/");
    for (name, bytes) in files {
        let key = format!("{prefix}{collection}/{name}");
        patiently(patience, || backends.blob.put(&key, bytes.clone()), sightline_blob::BlobError::is_transient)
            .await
            .map_err(|e| ApiError::dependency("upload image", "object store", e.is_transient(), e))?;
    }
    // The decisions of the job's kind (catalogue items and queries are never noise).
    let mut options = options;
    for (key, value) in options::kind_options(kind) {
        options.entry(key).or_insert(value);
    }
    let spec = JobSpec {
        job_id: job,
        kind: kind.to_owned(),
        route: ROUTE.iter().map(|s| (*s).to_owned()).collect(),
        source: Source::S3Prefix { prefix },
        options,
        submitted_at_ms: now_ms(),
    };
    patiently(patience, || submit_job(backends.bus.as_ref(), &spec), sightline_bus::BusError::is_transient)
        .await
        .map_err(|e| ApiError::dependency("publish job", "broker", e.is_transient(), e))?;
    info!(job = %job, kind, collection, "job submitted");
    Ok(job)
}

#[derive(Debug, Deserialize)]
struct AddParams {
    #[serde(default)]
    wait: bool,
    mode: Option<String>,
}

/// Whether `mode` (`photo`, the default, or `logo`) asks for logo search: the job option
/// `search.mode=logo` then makes detect, embed and index treat the images as logos (catalogue
/// uploads) or as photos searched for logos (searches; docs/logos.md).
fn logo_mode(mode: Option<&str>) -> Result<bool, ApiError> {
    match mode {
        None | Some("photo") => Ok(false),
        Some("logo") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!("mode must be photo or logo, not {other:?}"))),
    }
}

async fn add_items(
    caller: Caller,
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Query(params): Query<AddParams>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult {
    valid_catalog(&name)?;
    caller.allow(&name, Access::Write)?;
    let logo = logo_mode(params.mode.as_deref())?;
    let files = files(multipart).await?;
    let count = files.len();
    // This replica compacts the catalogues it fills (crate::catalog).
    s.catalogs.track(&name);
    let mut options = BTreeMap::new();
    if logo {
        options.insert(SEARCH_MODE.to_owned(), "logo".to_owned());
    }
    let job = start_job(&s.backends, s.config.patience, KIND_CATALOG, &name, files, options).await?;
    if !params.wait {
        return Ok((StatusCode::ACCEPTED, axum::Json(json!({ "job": job, "files": count }))).into_response());
    }
    match wait_for_job(s.backends.coord.as_ref(), job, |_| {}, Some(s.config.catalog_timeout)).await {
        Ok(Some(status)) => Ok(axum::Json(json!({ "job": job, "status": status })).into_response()),
        Ok(None) => Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "the job did not finish in time").with_job(job)),
        Err(e) => Err(ApiError::internal("read job status", e).with_job(job)),
    }
}

#[derive(Debug, Deserialize)]
struct SearchParams {
    catalog: Option<String>,
    k: Option<usize>,
    /// An image already in the bucket, searched instead of an uploaded one.
    key: Option<String>,
    mode: Option<String>,
}

/// Catalogue `name` as this replica serves it; 404 when it has no items.
async fn catalog_view(s: &ApiState, name: &str) -> Result<Arc<CatalogView>, ApiError> {
    let view = s
        .catalogs
        .view(s.backends.blob.as_ref(), s.backends.coord.as_ref(), name)
        .await
        .map_err(|e| ApiError::internal("load catalogue", e))?;
    if view.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no catalogue {name:?}")));
    }
    Ok(view)
}

/// The image at storage key `key`, for a search by key: 404 when absent, 413 over the body
/// limit (the same limit as an upload).
async fn stored_image(s: &ApiState, key: &str) -> Result<(String, Bytes), ApiError> {
    if key.is_empty() || key.ends_with('/') {
        return Err(ApiError::bad_request(format!("key {key:?} does not name an object")));
    }
    let meta = s.backends.blob.head(key).await.map_err(|e| ApiError::internal("look up the key", e))?;
    let Some(meta) = meta else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no object at key {key:?}")));
    };
    if meta.size > s.config.max_body as u64 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("object {key:?} has {} bytes, over the limit of {}", meta.size, s.config.max_body),
        ));
    }
    let bytes = s.backends.blob.get(key).await.map_err(|e| ApiError::internal("read the key", e))?;
    Ok((file_name(key.rsplit('/').next().unwrap_or(key)), bytes))
}

async fn search(
    caller: Caller,
    State(s): State<ApiState>,
    Query(params): Query<SearchParams>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult {
    let catalog = params.catalog.ok_or_else(|| ApiError::bad_request("missing query parameter: catalog"))?;
    valid_catalog(&catalog)?;
    caller.allow(&catalog, Access::Read)?;
    let k = params.k.unwrap_or(DEFAULT_K).clamp(1, MAX_K);
    let logo = logo_mode(params.mode.as_deref())?;
    catalog_view(&s, &catalog).await?;
    let mut files = match &params.key {
        // The photo is already in the bucket: copied beside the job's uploads so that the job
        // reads it like any other (the source object is never modified).
        Some(key) => vec![stored_image(&s, key).await?],
        None => files(multipart).await?,
    };
    if files.len() != 1 {
        return Err(ApiError::bad_request(format!("one image per search, got {}", files.len())));
    }
    let query_name = files[0].0.clone();
    let mut options =
        BTreeMap::from([(SEARCH_CATALOG.to_owned(), catalog.clone()), (SEARCH_K.to_owned(), k.to_string())]);
    if logo {
        // detect proposes regions, embed embeds each, index ranks brands (docs/logos.md).
        options.insert(SEARCH_MODE.to_owned(), "logo".to_owned());
    } else {
        // The embed stage also embeds the query's zoomed-in view (docs/search.md, "Query zoom").
        options.insert(EMBED_ZOOM.to_owned(), QUERY_ZOOM.to_string());
    }
    let job =
        start_job(&s.backends, s.config.patience, KIND_SEARCH, QUERY_COLLECTION, std::mem::take(&mut files), options)
            .await?;
    match wait_for_job(s.backends.coord.as_ref(), job, |_| {}, Some(s.config.search_timeout)).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "the search did not finish in time").with_job(job));
        }
        Err(e) => return Err(ApiError::internal("read job status", e).with_job(job)),
    }
    let records =
        read_records(s.backends.blob.as_ref(), job).await.map_err(|e| ApiError::internal("read records", e))?;
    let Some(record) = records.first() else {
        return Err(ApiError::internal("read records", "the finished job has no record").with_job(job));
    };
    let answer =
        record.annotation::<SearchOut>().map_err(|e| ApiError::internal("read the answer", e).with_job(job))?;
    match (record.outcome, answer) {
        (ItemOutcome::Ok, Some(answer)) => Ok(axum::Json(json!({
            "query": query_name,
            "catalog": catalog,
            "mode": if logo { "logo" } else { "photo" },
            "job": job,
            "text": answer.text,
            "matches": answer.matches,
        }))
        .into_response()),
        _ => {
            let reason = record.reason.clone().unwrap_or_else(|| format!("stopped at {}", record.stage));
            Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason).with_job(job))
        }
    }
}

async fn catalog_stats(caller: Caller, State(s): State<ApiState>, Path(name): Path<String>) -> ApiResult {
    valid_catalog(&name)?;
    caller.allow(&name, Access::Read)?;
    let view = catalog_view(&s, &name).await?;
    let with_text = view.items().filter(|i| !i.text.is_empty()).count();
    Ok(axum::Json(json!({
        "name": name,
        "items": view.len(),
        "with_text": with_text,
        "dim": view.dim(),
        "snapshot": { "generation": view.generation, "items": view.snapshot.len(), "ann": view.snapshot.uses_ann() },
        "delta": view.delta.len(),
    }))
    .into_response())
}

/// The OpenAPI 3 description of the API.
pub fn openapi() -> Value {
    let error = json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let upload = |many: bool| {
        json!({
            "required": true,
            "content": { "multipart/form-data": { "schema": {
                "type": "object",
                "properties": { "file": if many {
                    json!({ "type": "array", "items": { "type": "string", "format": "binary" } })
                } else {
                    json!({ "type": "string", "format": "binary" })
                } }
            } } }
        })
    };
    let name = json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$" } });
    let mode = json!({ "name": "mode", "in": "query", "description": "logo: the catalogue holds logo images (one brand per file: BRAND.png, BRAND-2.png) and a search returns brands (docs/logos.md); use the same mode to add and to search", "schema": { "type": "string", "enum": ["photo", "logo"], "default": "photo" } });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Sightline search by photo",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Catalogue images and search photos go through the pipeline (ingest, detect, embed, ocr, index) as jobs; scores are cosine similarity plus 0.5 x OCR-text bigram Jaccard when both sides have text."
        },
        "paths": {
            "/v1/catalog/{name}/items": { "post": {
                "summary": "Add images to a catalogue",
                "parameters": [name, { "name": "wait", "in": "query", "schema": { "type": "boolean", "default": false } }, mode.clone()],
                "requestBody": upload(true),
                "responses": {
                    "200": { "description": "indexed (wait=true)", "content": { "application/json": { "schema": { "type": "object", "properties": { "job": { "type": "string", "format": "uuid" }, "status": { "type": "object" } } } } } },
                    "202": { "description": "job started", "content": { "application/json": { "schema": { "type": "object", "properties": { "job": { "type": "string", "format": "uuid" }, "files": { "type": "integer" } } } } } },
                    "400": error, "413": error, "504": error
                }
            } },
            "/v1/catalog/{name}": { "get": {
                "summary": "Catalogue statistics",
                "parameters": [name],
                "responses": {
                    "200": { "description": "the catalogue", "content": { "application/json": { "schema": { "type": "object", "properties": {
                        "name": { "type": "string" }, "items": { "type": "integer" }, "with_text": { "type": "integer" }, "dim": { "type": "integer" },
                        "snapshot": { "type": "object", "description": "the stored snapshot this replica serves", "properties": {
                            "generation": { "type": "integer" }, "items": { "type": "integer" }, "ann": { "type": "boolean" }
                        } },
                        "delta": { "type": "integer", "description": "items indexed after the snapshot, searched exactly" }
                    } } } } },
                    "404": error
                }
            } },
            "/v1/search": { "post": {
                "summary": "Search a catalogue with a photo",
                "parameters": [
                    { "name": "catalog", "in": "query", "required": true, "schema": { "type": "string" } },
                    { "name": "k", "in": "query", "schema": { "type": "integer", "default": DEFAULT_K, "minimum": 1, "maximum": MAX_K } },
                    { "name": "key", "in": "query", "description": "search with the image at this storage key instead of an upload (no body)", "schema": { "type": "string" } },
                    mode.clone()
                ],
                "requestBody": { "required": false, "content": upload(false)["content"].clone() },
                "responses": {
                    "200": { "description": "best matches first", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/SearchResult" } } } },
                    "400": error, "404": error, "413": error, "422": error, "504": error
                }
            } },
            "/v1/openapi.json": { "get": { "summary": "This description", "responses": { "200": { "description": "OpenAPI 3 JSON" } } } }
        },
        "components": { "schemas": {
            "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" }, "job": { "type": "string", "format": "uuid" } } },
            "SearchResult": { "type": "object", "properties": {
                "query": { "type": "string" },
                "catalog": { "type": "string" },
                "job": { "type": "string", "format": "uuid" },
                "text": { "type": "string", "description": "the query's OCR text" },
                "mode": { "type": "string", "enum": ["photo", "logo"] },
                "matches": { "type": "array", "items": { "type": "object", "properties": {
                    "item": { "type": "string" }, "score": { "type": "number" }, "visual": { "type": "number" }, "text": { "type": "number" },
                    "brand": { "type": "string", "description": "logo mode: one match per brand" },
                    "box": { "type": "array", "items": { "type": "integer" }, "description": "logo mode: the query region [x, y, w, h] that matched" },
                    "region": { "type": "string", "description": "logo mode: where that region came from (whole, crop, text, text-group)" }
                } } }
            } }
        } }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_file_names_cleaned() {
        assert!(valid_catalog("shop-1.v2").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert_eq!(valid_catalog(bad).map_err(|e| e.status), Err(StatusCode::BAD_REQUEST), "{bad:?}");
        }
        assert_eq!(file_name("../../etc/passwd"), "passwd");
        assert_eq!(file_name("C:\\photos\\my shot.jpg"), "my_shot.jpg");
        assert_eq!(file_name(".."), "upload");
        assert_eq!(file_name("农夫山泉.png"), "农夫山泉.png");
    }

    /// Serves the API over embedded backends (memory bus and coordination, a local folder) on
    /// a loopback port; answers raw HTTP requests.
    struct Served {
        addr: std::net::SocketAddr,
        backends: Backends,
        _dir: tempfile::TempDir,
    }

    impl Served {
        async fn start(max_body: usize) -> Self {
            Self::start_with(max_body, None).await
        }

        async fn start_with(max_body: usize, keys: Option<Keys>) -> Self {
            Self::start_on(max_body, keys, |_| {}).await
        }

        /// Served over the embedded backends as `adjust` leaves them.
        async fn start_on(max_body: usize, keys: Option<Keys>, adjust: impl FnOnce(&mut Backends)) -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut backends = Backends::embedded(dir.path()).expect("backends");
            adjust(&mut backends);
            let config = ApiConfig {
                max_body,
                search_timeout: Duration::from_millis(300),
                keys: keys.map(Arc::new),
                patience: Duration::from_millis(400),
                ..ApiConfig::default()
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let app = router(backends.clone(), config, Arc::new(Catalogs::default()));
            tokio::spawn(async move { axum::serve(listener, app).await });
            Self { addr, backends, _dir: dir }
        }

        async fn request(&self, head: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
            let (code, _, body) = self.request_with(head, "", content_type, body).await;
            (code, body)
        }

        /// A request with `extra` header lines (each ending in CRLF); (status, head, JSON body).
        async fn request_with(&self, head: &str, extra: &str, content_type: &str, body: &[u8]) -> (u16, String, Value) {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
            let req = format!(
                "{head} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(req.as_bytes()).await.expect("write");
            // The server may answer (413) before reading the whole body.
            let _ = s.write_all(body).await;
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            let text = String::from_utf8_lossy(&buf).into_owned();
            let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status line");
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            (code, head.to_owned(), serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
        }
    }

    fn multipart(name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
        let mut body =
            format!("--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n").into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n--b0--\r\n");
        ("multipart/form-data; boundary=b0".to_owned(), body)
    }

    #[tokio::test]
    async fn requests_are_refused_with_json_errors_before_any_job() {
        let api = Served::start(1024).await;
        let (ct, small) = multipart("q.jpg", b"jpeg");
        let (code, body) = api.request("POST /v1/search?catalog=shop", &ct, &small).await;
        assert_eq!((code, body["error"].as_str()), (404, Some("no catalogue \"shop\"")));
        let (code, body) = api.request("POST /v1/search", &ct, &small).await;
        assert_eq!(code, 400, "{body}");
        let (code, body) = api.request("GET /v1/catalog/shop", "text/plain", b"").await;
        assert_eq!(code, 404, "{body}");
        let (code, body) = api.request("GET /v1/catalog/a%20b", "text/plain", b"").await;
        assert_eq!(code, 400, "{body}");
        let (code, body) = api.request("POST /v1/catalog/shop/items", "text/plain", b"hello").await;
        assert_eq!(code, 400, "not multipart: {body}");
        let (ct, big) = multipart("big.jpg", &[0u8; 4096]);
        let (code, body) = api.request("POST /v1/catalog/shop/items", &ct, &big).await;
        assert_eq!(code, 413, "{body}");
        let (ct, small) = multipart("q.jpg", b"jpeg");
        let (code, body) = api.request("POST /v1/catalog/shop/items?mode=video", &ct, &small).await;
        assert_eq!((code, body["error"].as_str()), (400, Some("mode must be photo or logo, not \"video\"")));
        let (code, body) = api.request("GET /v2/nothing", "text/plain", b"").await;
        assert_eq!(code, 404, "{body}");
        assert!(body["error"].is_string());
        let (code, doc) = api.request("GET /v1/openapi.json", "text/plain", b"").await;
        assert_eq!((code, doc["openapi"].as_str()), (200, Some("3.0.3")));
    }

    #[tokio::test]
    async fn an_upload_becomes_a_job_on_the_route_and_a_search_times_out_without_workers() {
        let api = Served::start(1 << 20).await;
        let (ct, body) = multipart("../a b.jpg", b"jpeg");
        let (code, out) = api.request("POST /v1/catalog/shop/items", &ct, &body).await;
        assert_eq!(code, 202, "{out}");
        let job: Uuid = out["job"].as_str().and_then(|j| j.parse().ok()).expect("job id");
        let key = format!("uploads/{job}/shop/a_b.jpg");
        assert_eq!(api.backends.blob.get(&key).await.expect("uploaded").as_ref(), b"jpeg");

        // A catalogue with an entry, but no workers to answer: 504 naming the job.
        let entry = crate::Entry {
            job_id: job,
            item: 0,
            collection: "shop".into(),
            name: "shop/a_b.jpg".into(),
            image_key: key.clone(),
            embedding_key: "embeddings/test/0.f32".into(),
            label: "unlabelled".into(),
            cluster: None,
            text: None,
        };
        let blob = &api.backends.blob;
        let vector: Vec<u8> = [1f32, 0.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        blob.put(&entry.embedding_key, Bytes::from(vector)).await.expect("put vector");
        let json = serde_json::to_vec(&entry).expect("entry");
        blob.put(&crate::entry_key("shop", job, 0), Bytes::from(json)).await.expect("put entry");
        let (code, out) = api.request("POST /v1/search?catalog=shop", &ct, &body).await;
        assert_eq!(code, 504, "{out}");
        assert!(out["job"].is_string(), "{out}");
        let (code, stats) = api.request("GET /v1/catalog/shop", "text/plain", b"").await;
        assert_eq!((code, stats["items"].as_u64(), stats["dim"].as_u64()), (200, Some(1), Some(2)), "{stats}");
        assert_eq!((stats["snapshot"]["generation"].as_u64(), stats["delta"].as_u64()), (Some(0), Some(1)), "{stats}");

        // Search by storage key: a missing key is 404, an existing one is copied beside the
        // job's uploads (the job then times out the same way).
        let (code, out) = api.request("POST /v1/search?catalog=shop&key=photos/none.jpg", "text/plain", b"").await;
        assert_eq!((code, out["error"].as_str()), (404, Some("no object at key \"photos/none.jpg\"")));
        blob.put("photos/shelf/q1.jpg", Bytes::from_static(b"jpeg bytes")).await.expect("put photo");
        let (code, out) = api.request("POST /v1/search?catalog=shop&key=photos/shelf/q1.jpg", "text/plain", b"").await;
        assert_eq!(code, 504, "{out}");
        let job = out["job"].as_str().expect("job");
        let copied = blob.get(&format!("uploads/{job}/query/q1.jpg")).await.expect("copied");
        assert_eq!(copied.as_ref(), b"jpeg bytes");
        assert_eq!(blob.get("photos/shelf/q1.jpg").await.expect("source kept").as_ref(), b"jpeg bytes");
        blob.put("photos/huge.jpg", Bytes::from(vec![0u8; 2 << 20])).await.expect("put huge");
        let (code, out) = api.request("POST /v1/search?catalog=shop&key=photos/huge.jpg", "text/plain", b"").await;
        assert_eq!(code, 413, "{out}");
    }

    #[tokio::test]
    async fn with_keys_the_api_refuses_whoever_has_no_valid_one() {
        let (reader, reader_hash) = crate::auth::new_token();
        let (writer, writer_hash) = crate::auth::new_token();
        let keys = Keys::parse(&format!(
            "[[key]]\nname = \"front\"\nsha256 = \"{reader_hash}\"\ncatalogs = [\"shop\"]\nread_only = true\nper_minute = 5\n\
             [[key]]\nname = \"admin\"\nsha256 = \"{writer_hash}\"\n"
        ))
        .expect("keys");
        let api = Served::start_with(1 << 20, Some(keys)).await;
        let (ct, small) = multipart("q.jpg", b"jpeg");
        let auth = |t: &str| format!("Authorization: Bearer {t}\r\n");

        // No key, a wrong key, a malformed header: 401 as JSON, nothing stored, no job.
        for extra in [String::new(), auth("slk_0000"), "Authorization: Basic Zm9vOmJhcg==\r\n".to_owned()] {
            let (code, head, body) = api.request_with("POST /v1/catalog/shop/items", &extra, &ct, &small).await;
            assert_eq!(code, 401, "{extra:?}: {body}");
            assert!(body["error"].is_string() && body.get("job").is_none(), "{body}");
            assert!(head.to_lowercase().contains("www-authenticate: bearer"), "{head}");
        }
        assert!(api.backends.blob.list("uploads/").await.expect("list").is_empty(), "nothing uploaded");

        // A read-only key may not add; a key may not touch another catalogue: 403.
        let (code, _, body) = api.request_with("POST /v1/catalog/shop/items", &auth(&reader), &ct, &small).await;
        assert_eq!(code, 403, "{body}");
        assert!(body["error"].as_str().unwrap_or("").contains("only read"), "{body}");
        let (code, _, body) = api.request_with("GET /v1/catalog/other", &auth(&reader), "text/plain", b"").await;
        assert_eq!(code, 403, "{body}");
        // Within its rights it gets through (to the catalogue's own 404 here).
        let (code, _, body) = api.request_with("GET /v1/catalog/shop", &auth(&reader), "text/plain", b"").await;
        assert_eq!((code, body["error"].as_str()), (404, Some("no catalogue \"shop\"")));
        // The writer adds items.
        let (code, _, body) = api.request_with("POST /v1/catalog/shop/items", &auth(&writer), &ct, &small).await;
        assert_eq!(code, 202, "{body}");

        // Over its rate (5 a minute, 3 spent): 429 with Retry-After.
        let mut last = (0, String::new(), Value::Null);
        for _ in 0..3 {
            last = api.request_with("GET /v1/catalog/shop", &auth(&reader), "text/plain", b"").await;
        }
        let (code, head, body) = last;
        assert_eq!(code, 429, "{body}");
        assert!(head.to_lowercase().contains("retry-after:"), "{head}");
        // The description stays public.
        let (code, doc) = api.request("GET /v1/openapi.json", "text/plain", b"").await;
        assert_eq!((code, doc["openapi"].as_str()), (200, Some("3.0.3")));
    }

    #[tokio::test]
    async fn an_unavailable_object_store_is_a_503_to_retry_without_internals() {
        // The store's errors name an address and say "connection refused".
        let api = Served::start_on(1 << 20, None, |b| {
            b.blob = Arc::new(sightline_blob::Switchable::new(b.blob.clone(), false).0);
        })
        .await;
        let (ct, body) = multipart("a.jpg", b"jpeg");
        let started = std::time::Instant::now();
        let (code, head, out) = api.request_with("POST /v1/catalog/shop/items", "", &ct, &body).await;
        assert_eq!(code, 503, "{out}");
        assert!(started.elapsed() >= Duration::from_millis(400), "retried for its patience first");
        assert!(head.to_lowercase().contains("retry-after: 5"), "{head}");
        let message = out["error"].as_str().expect("error");
        assert!(message.contains("object store is unavailable"), "{message}");
        assert!(!message.contains("10.1.2.3") && !message.contains("refused"), "no internals: {message}");
    }

    #[test]
    fn the_openapi_description_names_every_route() {
        let doc = openapi();
        assert_eq!(doc["openapi"], "3.0.3");
        for path in ["/v1/catalog/{name}/items", "/v1/catalog/{name}", "/v1/search", "/v1/openapi.json"] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
    }
}
