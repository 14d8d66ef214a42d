//! The embed stage: an EfficientNet-Lite0 embedding (1280-d, L2-normalised) of each image's
//! main subject (the crop detect found, else the whole image), stored as a blob
//! `embeddings/efficientnet-lite0/<sha256>-<crop tag>.f32` (little-endian f32) and referenced
//! in `annotations.embed`. Concurrent handlers share model calls through a [`batch::Batcher`].

pub mod batch;
pub mod head;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use image::RgbImage;
use ndarray::{Array3, Axis};
use sha2::{Digest, Sha256};
use sightline_imaging::Limits;
use sightline_inference::preprocess::{self, ChannelOrder, Filter, Layout, Normalize};
use sightline_inference::{InferenceError, ModelStore, Models, PoolConfig, Runtime};
use sightline_messages::ImageTask;
use sightline_messages::annotations::{self, DetectOut, EmbedOut, EmbedRegion};
use sightline_messages::options::{JobOptions, LogoMode, logo_mode};
use sightline_runtime::{Ctx, Effect, ImageStage, StageError};
use tracing::debug;

use crate::batch::{BatchConfig, Batcher, RunBatch};

/// The stage name.
pub const NAME: &str = "embed";
/// The manifest name of the model.
pub const MODEL: &str = "embed";
/// The model's name in keys and annotations.
pub const MODEL_ID: &str = "efficientnet-lite0";
/// Embedding dimension.
pub const DIM: usize = 1280;
/// The model's input side.
pub const INPUT: u32 = 224;
/// The manifest names of the models embed needs.
pub const MODELS: [&str; 1] = [MODEL];

/// How the (cropped) image is fitted to the 224×224 input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fit {
    /// Shorter side to 224, then the centred 224×224 (the manifest's default).
    Centre,
    /// Longer side to 224, padded with grey (127) to a square.
    Letterbox,
}

impl Fit {
    /// Its name in annotations.
    pub fn as_str(self) -> &'static str {
        match self {
            Fit::Centre => "centre-crop",
            Fit::Letterbox => "letterbox",
        }
    }
}

/// Embed options (flags with environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct EmbedArgs {
    /// ONNX Runtime sessions (batches run at once).
    #[arg(long, env = "EMBED_SESSIONS", default_value_t = 1)]
    pub embed_sessions: usize,
    /// Intra-op threads per session.
    #[arg(long, env = "EMBED_THREADS", default_value_t = 1)]
    pub embed_threads: usize,
    /// Largest batch.
    #[arg(long, env = "EMBED_BATCH_MAX", default_value_t = 16)]
    pub embed_batch_max: usize,
    /// How long a request waits for others to share its batch, in milliseconds.
    #[arg(long, env = "EMBED_BATCH_WINDOW_MS", default_value_t = 5)]
    pub embed_batch_window_ms: u64,
    /// How the crop is fitted to the model's 224×224 input.
    #[arg(long, env = "EMBED_FIT", value_enum, default_value_t = Fit::Centre)]
    pub embed_fit: Fit,
    /// Embed the whole image even when detect found a main subject.
    #[arg(long, env = "EMBED_IGNORE_CROP", default_value_t = false)]
    pub embed_ignore_crop: bool,
}

impl Default for EmbedArgs {
    fn default() -> Self {
        Self {
            embed_sessions: 1,
            embed_threads: 1,
            embed_batch_max: 16,
            embed_batch_window_ms: 5,
            embed_fit: Fit::Centre,
            embed_ignore_crop: false,
        }
    }
}

/// Embed settings.
#[derive(Debug, Clone, Copy)]
pub struct EmbedConfig {
    /// Sessions and threads.
    pub pool: PoolConfig,
    /// Batching.
    pub batch: BatchConfig,
    /// Fitting to the input.
    pub fit: Fit,
    /// Use detect's crop.
    pub use_crop: bool,
    /// Decoding limits.
    pub limits: Limits,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedArgs::default().into()
    }
}

impl From<EmbedArgs> for EmbedConfig {
    fn from(a: EmbedArgs) -> Self {
        let sessions = a.embed_sessions.max(1);
        Self {
            pool: PoolConfig { sessions, intra_threads: a.embed_threads.max(1), ..Default::default() },
            batch: BatchConfig {
                max_batch: a.embed_batch_max.clamp(1, 256),
                window: Duration::from_millis(a.embed_batch_window_ms),
                concurrency: sessions,
            },
            fit: a.embed_fit,
            use_crop: !a.embed_ignore_crop,
            limits: Limits::default(),
        }
    }
}

/// What detect found about `task`, if it ran; a malformed annotation counts as none (the
/// image is embedded whole, as when detect is not on the route).
fn detection(task: &ImageTask) -> Option<DetectOut> {
    task.annotation::<DetectOut>().unwrap_or_else(|e| {
        tracing::warn!(item = task.item, error = %e, "ignoring the detect annotation");
        None
    })
}

/// The main-subject box detect recorded (`annotations.detect.crop`, `[x, y, w, h]`), when it
/// is a real crop that fits a `width`×`height` image; `None` means the whole image.
pub fn crop_of(task: &ImageTask) -> Option<[u32; 4]> {
    let detect = detection(task)?;
    if detect.crop_full {
        return None;
    }
    let [x, y, w, h] = detect.crop;
    let fits = w > 0 && h > 0 && x.checked_add(w)? <= task.width && y.checked_add(h)? <= task.height;
    let whole = x == 0 && y == 0 && w == task.width && h == task.height;
    (fits && !whole).then_some([x, y, w, h])
}

/// The tag of a crop in keys: `full`, or the first 16 hex digits of SHA-256 of `x,y,w,h`.
pub fn crop_tag(crop: Option<[u32; 4]>) -> String {
    match crop {
        None => "full".to_owned(),
        Some([x, y, w, h]) => hex::encode(&Sha256::digest(format!("{x},{y},{w},{h}"))[..8]),
    }
}

/// The region `pct` percent inside `crop` (the whole `width` × `height` image when `None`) on
/// each side: the zoomed-in view of a query.
pub fn zoom_crop(crop: Option<[u32; 4]>, width: u32, height: u32, pct: u32) -> [u32; 4] {
    let [x, y, w, h] = crop.unwrap_or([0, 0, width, height]);
    let (dx, dy) = (w * pct / 100, h * pct / 100);
    [x + dx, y + dy, w.saturating_sub(2 * dx).max(1), h.saturating_sub(2 * dy).max(1)]
}

/// The zoom a task's job asks for (`embed.zoom`, 1-49 percent), if any.
pub fn zoom_of(task: &ImageTask) -> Option<u32> {
    JobOptions::of(task).embed_zoom()
}

/// The regions detect proposed for logo search (`annotations.detect.regions`), each inside
/// the image.
pub fn detect_regions(task: &ImageTask) -> Vec<annotations::Region> {
    let regions = detection(task).and_then(|d| d.regions).unwrap_or_default();
    regions
        .into_iter()
        .filter(|r| {
            let [x, y, w, h] = r.bbox;
            let inside = |o: u32, l: u32, side: u32| o.checked_add(l).is_some_and(|end| end <= side);
            w > 0 && h > 0 && inside(x, w, task.width) && inside(y, h, task.height)
        })
        .collect()
}

/// Where the embedding of image `sha256` (crop `crop`, centre-crop fit) is stored.
pub fn embedding_key(sha256: &str, crop: Option<[u32; 4]>) -> String {
    embedding_key_fit(sha256, crop, Fit::Centre)
}

/// Where the embedding of image `sha256` (crop `crop`, fitted by `fit`) is stored: the
/// centre-crop fit keeps [`embedding_key`]'s form, letterbox adds `-letterbox`.
pub fn embedding_key_fit(sha256: &str, crop: Option<[u32; 4]>, fit: Fit) -> String {
    match fit {
        Fit::Centre => format!("embeddings/{MODEL_ID}/{sha256}-{}.f32", crop_tag(crop)),
        Fit::Letterbox => format!("embeddings/{MODEL_ID}/{sha256}-{}-letterbox.f32", crop_tag(crop)),
    }
}

/// The model input (224×224) of `img`, cropped to `crop` (clamped to the image) and fitted.
pub fn prepare(img: &RgbImage, crop: Option<[u32; 4]>, fit: Fit) -> Result<RgbImage, InferenceError> {
    let region = match crop {
        Some([x, y, w, h]) if x < img.width() && y < img.height() => {
            let (w, h) = (w.min(img.width() - x).max(1), h.min(img.height() - y).max(1));
            image::imageops::crop_imm(img, x, y, w, h).to_image()
        }
        _ => img.clone(),
    };
    match fit {
        Fit::Centre => {
            let (w, h) = (region.width(), region.height());
            let scale = f64::from(INPUT) / f64::from(w.min(h).max(1));
            let nw = ((f64::from(w) * scale).round() as u32).max(INPUT);
            let nh = ((f64::from(h) * scale).round() as u32).max(INPUT);
            let resized = preprocess::resize_rgb(&region, nw, nh, Filter::Bilinear)?;
            Ok(preprocess::centre_crop(&resized, INPUT, INPUT))
        }
        Fit::Letterbox => Ok(preprocess::letterbox(&region, INPUT, INPUT, [127; 3], Filter::Bilinear)?.0),
    }
}

/// The `[3, 224, 224]` tensor of a prepared image: RGB, (x − 127) / 128.
pub fn input_tensor(img: &RgbImage) -> Array3<f32> {
    preprocess::to_tensor(img, Layout::Nchw, ChannelOrder::Rgb, &Normalize::MINUS_127_DIV_128)
        .index_axis_move(Axis(0), 0)
}

/// Scales `v` to unit length; `false` (and unchanged) when its norm is 0 or not finite.
pub fn l2_normalise(v: &mut [f32]) -> bool {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
    true
}

pub use sightline_messages::vector::{decode as from_le_bytes, encode as to_le_bytes};

/// The loaded model behind its batcher.
#[derive(Debug)]
pub struct Embedder {
    batcher: Batcher,
}

impl Embedder {
    /// Verifies and loads the model and starts the batcher on `runtime_handle` (blocking).
    pub fn load(
        store: &ModelStore,
        config: &EmbedConfig,
        runtime_handle: &tokio::runtime::Handle,
    ) -> Result<Self, InferenceError> {
        store.verify(&MODELS)?;
        let runtime = Runtime::init_from_env(store.root())?;
        let pool = store.pool(runtime, MODEL, config.pool)?;
        let run: RunBatch = Arc::new(move |x| pool.run_blocking(vec![("input".to_owned(), x.into_dyn())]));
        let _entered = runtime_handle.enter();
        Ok(Self { batcher: Batcher::start(run, "features", config.batch) })
    }

    /// The batcher (and its counters).
    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// The L2-normalised embedding of a prepared image.
    pub async fn embed(&self, input: Array3<f32>) -> Result<Vec<f32>, String> {
        let mut v = self.batcher.embed(input).await?;
        if v.len() != DIM {
            return Err(format!("model gave {} features, expected {DIM}", v.len()));
        }
        if !l2_normalise(&mut v) {
            return Err("the model gave an all-zero or non-finite embedding".to_owned());
        }
        Ok(v)
    }
}

/// The embed stage. The model loads on the first readiness check (or message); until it
/// does, `ready()` says why (the missing or corrupt file and `models/fetch.sh`).
pub struct Embed {
    config: EmbedConfig,
    embedder: Models<Embedder>,
}

impl Embed {
    /// The stage over `store` (shared with the other model stages of the process).
    pub fn new(config: EmbedConfig, store: Arc<ModelStore>) -> Self {
        let embedder = Models::new("embed model", move || {
            // The load runs on the blocking pool, inside the runtime the batcher joins.
            let e = Embedder::load(&store, &config, &tokio::runtime::Handle::current())?;
            tracing::info!(stage = NAME, model = MODEL, batch = ?config.batch, "model loaded");
            Ok::<_, InferenceError>(e)
        });
        Self { config, embedder }
    }

    /// The embedder, loading the model if needed. The load runs to completion on the blocking
    /// pool even if the caller gives up waiting.
    pub async fn embedder(&self) -> Result<Arc<Embedder>, String> {
        self.embedder.load().await
    }
}

/// One region of a task's image to embed: its box (`None`: the whole image), how it is fitted,
/// and where its vector goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// `[x, y, w, h]` in source pixels, or `None` for the whole image.
    pub crop: Option<[u32; 4]>,
    /// How it is fitted to the model input.
    pub fit: Fit,
    /// Its embedding's key ([`embedding_key_fit`]).
    pub key: String,
}

impl Region {
    /// `crop` fitted by `fit`, stored content-addressed for image `sha256`.
    pub fn new(sha256: &str, crop: Option<[u32; 4]>, fit: Fit) -> Self {
        Self { crop, fit, key: embedding_key_fit(sha256, crop, fit) }
    }
}

impl Embed {
    /// Embeds each of `regions` of the task's image and stores it at its key, unless it is stored
    /// already (content-addressed: the same image, region and fit always give the same vector).
    /// The image is read and decoded once for all of them.
    async fn embed_regions(
        &self,
        ctx: &Ctx,
        task: &ImageTask,
        embedder: &Embedder,
        regions: &[Region],
    ) -> Result<(), StageError> {
        let mut todo = Vec::new();
        for r in regions {
            if ctx.blob.head(&r.key).await?.is_some_and(|m| m.size == (DIM * 4) as u64) {
                debug!(item = task.item, key = %r.key, "embedding already stored");
            } else if !todo.contains(r) {
                todo.push(r.clone());
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let bytes = ctx.blob.get(&task.key).await?;
        let (name, limits) = (task.name.clone(), self.config.limits);
        let boxes: Vec<(Option<[u32; 4]>, Fit)> = todo.iter().map(|r| (r.crop, r.fit)).collect();
        let tensors = ctx
            .blocking(move || -> Result<Vec<Array3<f32>>, String> {
                let (_, img) = sightline_imaging::decode(&bytes, Some(&name), &limits).map_err(|e| e.to_string())?;
                let rgb = img.to_rgb8();
                boxes
                    .iter()
                    .map(|(crop, fit)| prepare(&rgb, *crop, *fit).map(|p| input_tensor(&p)).map_err(|e| e.to_string()))
                    .collect()
            })
            .await?
            .map_err(|e| StageError::permanent(format!("prepare image: {e}")))?;
        for (r, tensor) in todo.iter().zip(tensors) {
            let embedding = embedder.embed(tensor).await.map_err(StageError::transient)?;
            ctx.blob.put(&r.key, Bytes::from(to_le_bytes(&embedding))).await?;
            debug!(item = task.item, key = %r.key, "embedded");
        }
        Ok(())
    }
}

#[async_trait]
impl ImageStage for Embed {
    const NAME: &'static str = NAME;

    async fn handle_image(&self, ctx: &Ctx, mut task: ImageTask) -> Result<Vec<Effect>, StageError> {
        let embedder = self.embedder().await.map_err(StageError::transient)?;
        let logo = logo_mode(&task);
        // A logo catalogue's item is a logo image: embedded whole, letterboxed (a centre crop
        // cuts the ends off a wordmark; docs/logos.md).
        let (crop, fit) = match logo {
            Some(LogoMode::Item) => (None, Fit::Letterbox),
            _ if self.config.use_crop => (crop_of(&task), self.config.fit),
            _ => (None, self.config.fit),
        };
        let main = Region::new(&task.sha256, crop, fit);
        // A search-by-photo query also gets its zoomed-in view (docs/search.md).
        let zoom = zoom_of(&task).map(|pct| {
            let inner = zoom_crop(crop, task.width, task.height, pct);
            Region::new(&task.sha256, Some(inner), fit)
        });
        // A logo query gets one embedding per region detect proposed (docs/logos.md).
        let logo_regions: Vec<(annotations::Region, Region)> = match logo {
            Some(LogoMode::Query) => detect_regions(&task)
                .into_iter()
                .map(|r| (r, Region::new(&task.sha256, Some(r.bbox), Fit::Letterbox)))
                .collect(),
            _ => Vec::new(),
        };
        let all: Vec<Region> = std::iter::once(main.clone())
            .chain(zoom.clone())
            .chain(logo_regions.iter().map(|(_, r)| r.clone()))
            .collect();
        self.embed_regions(ctx, &task, &embedder, &all).await?;
        let regions = (logo == Some(LogoMode::Query)).then(|| {
            logo_regions
                .into_iter()
                .map(|(r, region)| EmbedRegion { bbox: r.bbox, kind: r.kind, key: region.key })
                .collect()
        });
        let out = EmbedOut {
            key: main.key,
            dim: DIM,
            model: MODEL_ID.to_owned(),
            crop,
            fit: fit.as_str().to_owned(),
            zoom_key: zoom.map(|z| z.key),
            regions,
        };
        task.set_annotation(&out).map_err(|e| StageError::permanent(e.to_string()))?;
        Ok(vec![Effect::forward(task, NAME)])
    }

    async fn readiness(&self) -> Result<(), String> {
        self.embedder.ready().await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sightline_messages::annotations::RegionKind;
    use sightline_messages::options::{EMBED_ZOOM, SEARCH_CATALOG, SEARCH_MODE};

    use super::*;

    fn with_options(mut t: ImageTask, options: &[(&str, &str)]) -> ImageTask {
        let map = options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        t.set_annotation(&JobOptions(map)).expect("options");
        t
    }

    #[test]
    fn the_zoom_is_asked_by_the_job_and_stays_inside_the_crop() {
        let t = task(200, 100, None);
        assert_eq!(zoom_of(&t), None);
        assert_eq!(zoom_of(&with_options(t.clone(), &[(EMBED_ZOOM, "25")])), Some(25));
        assert_eq!(zoom_of(&with_options(t, &[(EMBED_ZOOM, "60")])), None, "half or more would leave nothing");
        assert_eq!(zoom_crop(None, 200, 100, 25), [50, 25, 100, 50]);
        assert_eq!(zoom_crop(Some([10, 20, 40, 80]), 200, 100, 25), [20, 40, 20, 40]);
        assert_eq!(zoom_crop(Some([0, 0, 1, 1]), 200, 100, 25), [0, 0, 1, 1]);
    }

    #[test]
    fn logo_jobs_embed_items_whole_and_queries_by_detects_regions() {
        let t = task(200, 100, None);
        assert_eq!(logo_mode(&t), None);
        assert_eq!(logo_mode(&with_options(t.clone(), &[(SEARCH_MODE, "logo")])), Some(LogoMode::Item));
        let query = with_options(t.clone(), &[(SEARCH_MODE, "logo"), (SEARCH_CATALOG, "brands")]);
        assert_eq!(logo_mode(&query), Some(LogoMode::Query));
        assert_eq!(logo_mode(&with_options(t, &[(SEARCH_MODE, "photo"), (SEARCH_CATALOG, "brands")])), None);

        let detect = json!({ "regions": [
            { "box": [0, 0, 200, 100], "kind": "whole" },
            { "box": [10, 10, 50, 20], "kind": "text" },
            { "box": [190, 90, 20, 20], "kind": "text" },
            { "box": [5, 5, 0, 20], "kind": "text" }
        ] });
        let t = task(200, 100, Some(detect));
        let found: Vec<_> = detect_regions(&t).iter().map(|r| (r.bbox, r.kind)).collect();
        assert_eq!(
            found,
            [([0, 0, 200, 100], RegionKind::Whole), ([10, 10, 50, 20], RegionKind::Text)],
            "regions outside the image or empty are dropped"
        );
        assert_eq!(detect_regions(&task(200, 100, None)), []);
        let malformed = json!({ "regions": [{ "box": [1, 2, 3] }, { "kind": "text" }] });
        assert_eq!(detect_regions(&task(200, 100, Some(malformed))), [], "a malformed annotation proposes nothing");
        let (centre, letterbox) = (
            embedding_key_fit("ab", Some([1, 2, 3, 4]), Fit::Centre),
            embedding_key_fit("ab", Some([1, 2, 3, 4]), Fit::Letterbox),
        );
        assert_eq!(centre, embedding_key("ab", Some([1, 2, 3, 4])));
        assert_ne!(centre, letterbox, "the fit is part of the content address");
    }

    fn task(width: u32, height: u32, detect: Option<serde_json::Value>) -> ImageTask {
        let mut annotations = std::collections::BTreeMap::new();
        if let Some(d) = detect {
            annotations.insert("detect".to_owned(), d);
        }
        ImageTask {
            job_id: uuid::Uuid::nil(),
            item: 0,
            collection: "c".into(),
            name: "a.jpg".into(),
            key: "images/sha256/ab".into(),
            sha256: "ab".into(),
            format: "jpeg".into(),
            width,
            height,
            size: 1,
            route: vec!["ingest".into(), "detect".into(), "embed".into()],
            hop: 2,
            annotations,
        }
    }

    #[test]
    fn crops_are_read_from_detect_and_checked() {
        assert_eq!(crop_of(&task(100, 80, None)), None, "no detect: whole image");
        let t = task(100, 80, Some(json!({"crop": [10, 20, 50, 40], "crop_full": false})));
        assert_eq!(crop_of(&t), Some([10, 20, 50, 40]));
        let full = task(100, 80, Some(json!({"crop": [0, 0, 100, 80], "crop_full": true})));
        assert_eq!(crop_of(&full), None);
        let whole = task(100, 80, Some(json!({"crop": [0, 0, 100, 80]})));
        assert_eq!(crop_of(&whole), None, "a crop that is the whole image is no crop");
        for bad in [
            json!({"crop": [90, 0, 20, 10]}),
            json!({"crop": [0, 0, 0, 10]}),
            json!({"crop": "x"}),
            json!({"crop": [1, 2, 3]}),
        ] {
            assert_eq!(crop_of(&task(100, 80, Some(bad.clone()))), None, "{bad}");
        }
    }

    #[test]
    fn keys_name_the_image_and_the_crop() {
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(embedding_key(sha, None), format!("embeddings/efficientnet-lite0/{sha}-full.f32"));
        let k = embedding_key(sha, Some([1, 2, 3, 4]));
        assert!(k.starts_with(&format!("embeddings/efficientnet-lite0/{sha}-")) && k.ends_with(".f32"), "{k}");
        assert_eq!(crop_tag(Some([1, 2, 3, 4])).len(), 16);
        assert_ne!(crop_tag(Some([1, 2, 3, 4])), crop_tag(Some([1, 2, 3, 5])));
        assert_eq!(crop_tag(Some([1, 2, 3, 4])), crop_tag(Some([1, 2, 3, 4])), "deterministic");
    }

    #[test]
    fn preparing_crops_then_fits() {
        // 400×200: left half red, right half green.
        let img =
            RgbImage::from_fn(400, 200, |x, _| if x < 200 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 255, 0]) });
        let centre = prepare(&img, None, Fit::Centre).expect("prepare");
        assert_eq!((centre.width(), centre.height()), (224, 224));
        // Shorter side 200 → 224, width 448; the centred 224 spans both halves.
        assert_eq!(centre.get_pixel(10, 112).0, [255, 0, 0]);
        assert_eq!(centre.get_pixel(213, 112).0, [0, 255, 0]);
        let cropped = prepare(&img, Some([0, 0, 200, 200]), Fit::Centre).expect("prepare");
        assert!(cropped.pixels().all(|p| p.0 == [255, 0, 0]), "the crop keeps only the left half");
        let boxed = prepare(&img, None, Fit::Letterbox).expect("prepare");
        assert_eq!(boxed.get_pixel(112, 5).0, [127, 127, 127], "letterbox pads with grey");
        // A crop sticking out of the image is clamped.
        let clamped = prepare(&img, Some([300, 100, 500, 500]), Fit::Centre).expect("prepare");
        assert!(clamped.pixels().all(|p| p.0 == [0, 255, 0]));
        let t = input_tensor(&cropped);
        assert_eq!(t.shape(), &[3, 224, 224]);
        assert_eq!(t[[0, 0, 0]], 1.0);
        assert_eq!(t[[1, 0, 0]], -127.0 / 128.0);
    }

    #[test]
    fn normalisation_and_encoding() {
        let mut v = vec![3.0, 4.0];
        assert!(l2_normalise(&mut v));
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0; 3];
        assert!(!l2_normalise(&mut zero));
        let bytes = to_le_bytes(&[1.0, -2.5]);
        assert_eq!(bytes, vec![0, 0, 128, 63, 0, 0, 32, 192]);
        assert_eq!(from_le_bytes(&bytes), Some(vec![1.0, -2.5]));
        assert_eq!(from_le_bytes(&[1, 2, 3]), None);
    }
}
