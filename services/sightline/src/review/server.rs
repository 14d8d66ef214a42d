//! The review web page and its JSON API (axum), over a [`ReviewService`]:
//!
//! - `GET /`: the page (plain HTML and a little JavaScript, no build step; `page.html`);
//! - `GET /api/collections`: every collection's [`Progress`];
//! - `GET /api/queue?collection=C&reviewer=R&n=12`: the next images for R (held for R);
//! - `POST /api/review` `{"collection", "file", "label": "product"|"noise", "reviewer"}`: stores
//!   the label, returns the collection's progress;
//! - `GET /api/thumb?collection=C&index=I`: a JPEG thumbnail;
//! - `GET /labels.csv`: the labels with the review applied.
//!
//! Errors are JSON `{"error": "..."}` with 400 (bad request), 404 or 500, never a stack trace.

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::service::ReviewService;

/// The page.
pub const PAGE: &str = include_str!("page.html");

/// An error answer.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

fn internal(e: anyhow::Error) -> ApiError {
    tracing::warn!(error = format!("{e:#}"), "review request failed");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
}

type Shared = Arc<ReviewService>;

/// The routes.
pub fn router(service: Shared) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/collections", get(collections))
        .route("/api/queue", get(queue))
        .route("/api/review", post(review))
        .route("/api/thumb", get(thumb))
        .route("/labels.csv", get(labels))
        .with_state(service)
}

/// Serves `service` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(service)).with_graceful_shutdown(shutdown).await
}

/// Binds `addr` (loopback unless the operator names another).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("bind {addr}"))
}

async fn collections(State(s): State<Shared>) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    for name in s.collections().keys() {
        out.push(s.progress(name).await.map_err(internal)?);
    }
    Ok(Json(serde_json::json!({ "job": s.job(), "collections": out })).into_response())
}

#[derive(Deserialize)]
struct QueueQuery {
    collection: String,
    reviewer: String,
    n: Option<usize>,
}

fn known(s: &ReviewService, collection: &str) -> Result<(), ApiError> {
    if s.collections().contains_key(collection) {
        Ok(())
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, format!("no collection {collection:?}")))
    }
}

fn reviewer_ok(r: &str) -> Result<(), ApiError> {
    if r.is_empty() || r.len() > 64 || r.chars().any(|c| c.is_control()) {
        return Err(bad("reviewer: 1 to 64 printable characters"));
    }
    Ok(())
}

async fn queue(State(s): State<Shared>, Query(q): Query<QueueQuery>) -> Result<Response, ApiError> {
    known(&s, &q.collection)?;
    reviewer_ok(&q.reviewer)?;
    let n = q.n.unwrap_or(12).clamp(1, 100);
    let items = s.queue(&q.collection, &q.reviewer, n).await.map_err(internal)?;
    let progress = s.progress(&q.collection).await.map_err(internal)?;
    Ok(Json(serde_json::json!({ "items": items, "progress": progress })).into_response())
}

#[derive(Deserialize)]
struct ReviewBody {
    collection: String,
    file: String,
    label: String,
    reviewer: String,
}

async fn review(State(s): State<Shared>, Json(b): Json<ReviewBody>) -> Result<Response, ApiError> {
    known(&s, &b.collection)?;
    reviewer_ok(&b.reviewer)?;
    let product = match b.label.as_str() {
        "product" => true,
        "noise" => false,
        other => return Err(bad(format!("label {other:?}: product or noise"))),
    };
    if s.collections()[&b.collection].index_of(&b.file).is_none() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no image {:?} under review", b.file)));
    }
    let progress = s.correct(&b.collection, &b.file, product, &b.reviewer).await.map_err(internal)?;
    Ok(Json(serde_json::json!({ "progress": progress })).into_response())
}

#[derive(Deserialize)]
struct ThumbQuery {
    collection: String,
    index: usize,
}

async fn thumb(State(s): State<Shared>, Query(q): Query<ThumbQuery>) -> Result<Response, ApiError> {
    known(&s, &q.collection)?;
    let key = s
        .image_key(&q.collection, q.index)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "no stored image".into()))?
        .to_owned();
    let bytes = s.blob().get(&key).await.map_err(|e| internal(e.into()))?;
    let jpeg = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let (_, img) = sightline_imaging::decode(&bytes, None, &sightline_imaging::Limits::default())?;
        let mut buf = Vec::new();
        image::DynamicImage::ImageRgb8(img.thumbnail(240, 240).to_rgb8())
            .write_to(&mut Cursor::new(&mut buf), image::ImageFormat::Jpeg)?;
        Ok(buf)
    })
    .await
    .map_err(|e| internal(e.into()))?
    .map_err(internal)?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "max-age=3600")], jpeg).into_response())
}

async fn labels(State(s): State<Shared>) -> Result<Response, ApiError> {
    let csv = s.export_csv().await.map_err(internal)?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}
