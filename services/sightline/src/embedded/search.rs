//! `sightline search --catalog DIR --queries DIR`: search by photo in this process. Each folder
//! is one job through the real stages in the embedded mode ([`Photos`]: ingest → detect → embed
//! → ocr, the route of the search API's catalogue and query jobs; detect's main-subject crop
//! unless `--no-crop`, OCR unless `--no-ocr`); the catalogue goes into a [`SearchIndex`] (exact
//! below `--ann-min` items, HNSW above), and each query gets its best catalogue items. A query
//! is searched with the mean of two views: its crop and a zoomed-in view of it (`--query-zoom`
//! percent off each side, the job option `embed.zoom`; docs/search.md).
//!
//! With `--logo`, logo search: the catalogue is logo images, and each query is searched with
//! the embeddings of its candidate regions from the detect stage ([`sightline_index::logo`],
//! docs/logos.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use futures::StreamExt;
use indicatif::ProgressBar;
use serde::Serialize;
use sightline_embed::{EmbedConfig, Embedder, Fit};
use sightline_imaging::Limits;
use sightline_index::search::{
    AnnParams, CatalogItem, DEFAULT_ANN_MIN, DEFAULT_CANDIDATES, DEFAULT_TEXT_WEIGHT, SearchIndex, SearchOptions,
};
use sightline_inference::ModelStore;
use sightline_messages::annotations::{EmbedOut, OcrOut};
use sightline_messages::options::{EMBED_ZOOM, JOB_CATALOG, JOB_SEARCH, kind_options};
use sightline_messages::{ItemOutcome, ItemRecord};
use sightline_ocr::{OcrArgs, OcrEngine};
use sightline_runtime::{Backends, Stage};
use uuid::Uuid;

use crate::jobs::{run_embedded_job, upload_files, upload_prefix};
use crate::walk::{Walk, has_extension};

/// Which candidate regions of a query logo search embeds (`--logo-regions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogoRegionSet {
    /// The whole photo.
    Whole,
    /// detect's main-subject box.
    Crop,
    /// detect's text lines (grown by `--logo-margin`) and groups of stacked lines.
    Text,
}

/// `sightline search` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// Folder of catalogue images (one per product; searched recursively).
    #[arg(long)]
    pub catalog: PathBuf,
    /// Folder of query images (searched recursively).
    #[arg(long)]
    pub queries: PathBuf,
    /// Matches per query.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Print a JSON array: [{"query", "matches": [{"item", "score"}]}], best first.
    #[arg(long)]
    pub json: bool,
    /// Skip OCR (visual similarity only; much faster).
    #[arg(long)]
    pub no_ocr: bool,
    /// Embed the whole image instead of detect's main-subject crop (the crop is what the
    /// pipeline route ingest → detect → embed stores, and measured slightly better).
    #[arg(long, env = "SEARCH_NO_CROP")]
    pub no_crop: bool,
    /// Weight of OCR text similarity in the score (cosine + weight × bigram Jaccard).
    #[arg(long, env = "SEARCH_TEXT_WEIGHT", default_value_t = DEFAULT_TEXT_WEIGHT)]
    pub text_weight: f32,
    /// Query zoom: the query is searched with the mean of its crop's embedding and that of the
    /// crop with this percentage cut off each side (shop photos frame the product more loosely
    /// than catalogue shots); 0 searches with the crop alone.
    #[arg(long, env = "SEARCH_QUERY_ZOOM", default_value_t = DEFAULT_QUERY_ZOOM, value_parser = clap::value_parser!(u32).range(0..50))]
    pub query_zoom: u32,
    /// Visual candidates re-ranked with text.
    #[arg(long, env = "SEARCH_CANDIDATES", default_value_t = DEFAULT_CANDIDATES)]
    pub candidates: usize,
    /// Catalogues with at least this many items are searched through the HNSW graph.
    #[arg(long, env = "SEARCH_ANN_MIN", default_value_t = DEFAULT_ANN_MIN)]
    pub ann_min: usize,
    /// A trained retrieval head (`sightline train --out MODEL_DIR`): every catalogue and query
    /// vector goes through it before the search; the JSON output names its version (not with
    /// `--logo`).
    #[arg(long, value_name = "MODEL_DIR")]
    pub model: Option<PathBuf>,
    /// Logo search: `--catalog` holds logo images, one brand per sub-folder (or per file: the
    /// brand is then the file name without extension). Each query is cut into candidate regions
    /// from the detect stage (the whole photo, its main-subject box, its text lines grown by
    /// `--logo-margin`, groups of stacked lines), every region is embedded, and a brand scores
    /// its logos' best cosine over the regions, plus `--logo-text-weight` × how well the
    /// query's OCR text names it. Matches are brands, best first, each with the logo file, the
    /// score (`visual` + weight × `text`) and the query region that matched (`box`, `region`).
    #[arg(long)]
    pub logo: bool,
    /// Logo search: the regions of a query to embed.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [LogoRegionSet::Whole, LogoRegionSet::Crop, LogoRegionSet::Text])]
    pub logo_regions: Vec<LogoRegionSet>,
    /// Logo search: each text line's region grows by this many line heights on every side.
    #[arg(long, env = "LOGO_MARGIN", default_value_t = sightline_detect::regions::DEFAULT_MARGIN)]
    pub logo_margin: f32,
    /// Logo search: weight of the brand's name read in the query (OCR) in a brand's score:
    /// best cosine + weight × name score (1 when the name is in the text; `--no-ocr` or 0: the
    /// logo's look alone).
    #[arg(long, env = "LOGO_TEXT_WEIGHT", default_value_t = sightline_index::logo::DEFAULT_TEXT_WEIGHT)]
    pub logo_text_weight: f32,
    /// Logo search: how logos and query regions are fitted to the model's 224×224 input (wide
    /// wordmarks lose their ends to a centre crop).
    #[arg(long, env = "LOGO_FIT", value_enum, default_value_t = DEFAULT_LOGO_FIT)]
    pub logo_fit: Fit,
    /// The embed stage's options (the same flags and environment variables).
    #[command(flatten)]
    pub embed: sightline_embed::EmbedArgs,
}

/// How logo search fits logos and regions to the model input (docs/logos.md).
pub const DEFAULT_LOGO_FIT: Fit = Fit::Letterbox;

/// Percentage cut off each side of a query's crop for its zoomed-in view (measured on
/// `../shared/data/search`, docs/search.md).
pub const DEFAULT_QUERY_ZOOM: u32 = 25;

/// One query's answer: catalogue items ([`Item`]) for search by photo, brands ([`LogoItem`])
/// for logo search.
#[derive(Debug, Serialize)]
pub struct QueryResult<M = Item> {
    /// The query's file name (relative to the queries folder).
    pub query: String,
    /// Best first.
    pub matches: Vec<M>,
    /// Why the query could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One match.
#[derive(Debug, Serialize)]
pub struct Item {
    /// The catalogue file name (relative to the catalogue folder).
    pub item: String,
    /// The fused score (cosine, plus the weighted text similarity when both have text).
    pub score: f32,
}

/// What one image gave.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Features {
    /// Name relative to its folder.
    pub name: String,
    /// The L2-normalised embedding (empty on error).
    pub vector: Vec<f32>,
    /// The L2-normalised embedding of the zoomed-in view (queries only; empty when not computed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zoom: Vec<f32>,
    /// OCR lines joined by spaces (empty: none, or OCR off).
    pub text: String,
    /// Why the image could not be read.
    pub error: Option<String>,
}

impl Features {
    /// An image that could not be read: no vectors, the reason.
    pub fn failed(name: String, e: &anyhow::Error) -> Self {
        Self { name, vector: Vec::new(), zoom: Vec::new(), text: String::new(), error: Some(format!("{e:#}")) }
    }

    /// The same features with every vector through `head` (the crop's and the zoomed view's
    /// separately, as the backbone's are).
    pub fn through(mut self, head: &sightline_embed::head::Head) -> Self {
        if !self.vector.is_empty() {
            self.vector = head.apply(&self.vector);
        }
        if !self.zoom.is_empty() {
            self.zoom = head.apply(&self.zoom);
        }
        self
    }

    /// The vector a query is searched with: the normalised mean of its crop's and its zoomed-in
    /// view's embeddings when `zoom` and the view was computed, else the crop's.
    pub fn query_vector(&self, zoom: bool) -> Vec<f32> {
        if !zoom || self.zoom.len() != self.vector.len() {
            return self.vector.clone();
        }
        let mut v: Vec<f32> = self.vector.iter().zip(&self.zoom).map(|(a, b)| a + b).collect();
        sightline_embed::l2_normalise(&mut v);
        v
    }
}

/// The image files under `dir`, sorted, as (path, name relative to `dir`).
pub fn image_files(dir: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    const EXT: [&str; 8] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];
    let out: Vec<(PathBuf, String)> = Walk { hidden: false, follow_links: true }
        .files(dir)?
        .into_iter()
        .filter(|f| has_extension(&f.path, &EXT))
        .map(|f| (f.path, f.name))
        .collect();
    if out.is_empty() {
        bail!("no images under {}", dir.display());
    }
    Ok(out)
}

/// Search-by-photo features through the real stages: each folder is one job in this process
/// (embedded mode) routed ingest → detect (main-subject crop; unless `crop` is off) → embed →
/// ocr (unless `ocr` is off), exactly as the search API's catalogue and query jobs are, and
/// each image's features are read from its record: the embedding(s) the embed stage stored
/// and the OCR stage's lines.
pub struct Photos {
    route: Vec<String>,
    /// Built once: both folders' jobs share the stages, so each model loads once.
    stages: Vec<Arc<dyn Stage>>,
}

impl Photos {
    /// Checks that the models these stages need are there (`models/fetch.sh`) and builds the
    /// stages (their models load with the first image).
    pub fn new(ocr: bool, crop: bool, config: EmbedConfig) -> anyhow::Result<Self> {
        let wanted = |s: &str| (s != "detect" || crop) && (s != "ocr" || ocr);
        let route: Vec<String> =
            ["ingest", "detect", "embed", "ocr"].into_iter().filter(|s| wanted(s)).map(str::to_owned).collect();
        let stages = route
            .iter()
            .map(|name| match name.as_str() {
                "embed" => {
                    let store = super::model_store(&sightline_embed::MODELS)?;
                    Ok(Arc::new(sightline_embed::Embed::new(config, store)) as Arc<dyn Stage>)
                }
                other => super::stage_for(other),
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { route, stages })
    }

    /// The features of every image under `dir`, in name order, with a progress bar on stderr:
    /// one job of kind `catalog` (`zoom` 0) or `search` (a query's zoomed-in view, `zoom`
    /// percent off each side, through the job option `embed.zoom`).
    pub async fn folder(&self, dir: &Path, zoom: u32) -> anyhow::Result<Vec<Features>> {
        let files = image_files(dir)?;
        let storage = tempfile::tempdir().context("create temporary storage")?;
        let backends = Backends::embedded(storage.path()).context("open temporary storage")?;
        let job = Uuid::new_v4();
        // One collection for the whole folder: record names are `FOLDER/` + the path in `dir`.
        let collection = format!("{FOLDER}/");
        let uploads = files.iter().map(|(path, name)| (path.clone(), format!("{collection}{name}"))).collect();
        upload_files(backends.blob.clone(), uploads, &upload_prefix(job), false).await?;
        let kind = if zoom > 0 { JOB_SEARCH } else { JOB_CATALOG };
        let mut options = kind_options(kind);
        if zoom > 0 {
            options.insert(EMBED_ZOOM.to_owned(), zoom.to_string());
        }
        let run = run_embedded_job(&backends, job, kind, self.route.clone(), options, self.stages.clone()).await?;
        let mut by_name: BTreeMap<String, Features> = BTreeMap::new();
        for record in &run.records {
            let name = record.name.strip_prefix(&collection).unwrap_or(&record.name).to_owned();
            let features = match record_features(backends.blob.as_ref(), record).await {
                Ok((vector, zoom, text)) => Features { name: name.clone(), vector, zoom, text, error: None },
                Err(e) => Features::failed(name.clone(), &e),
            };
            by_name.insert(name, features);
        }
        Ok(files
            .into_iter()
            .map(|(_, name)| {
                by_name.remove(&name).unwrap_or_else(|| Features::failed(name, &anyhow::anyhow!("no record")))
            })
            .collect())
    }
}

/// The collection every image of a search job is stored under.
const FOLDER: &str = "images";

/// An image's features from its record: the embed stage's vector (and zoomed-in view's), the
/// OCR stage's lines joined by spaces; the record's reason when the image left the route early.
async fn record_features(
    blob: &dyn sightline_blob::BlobStore,
    record: &ItemRecord,
) -> anyhow::Result<(Vec<f32>, Vec<f32>, String)> {
    if record.outcome != ItemOutcome::Ok {
        bail!("{}: {}", record.outcome.as_str(), record.reason.as_deref().unwrap_or("no reason given"));
    }
    let embed = record.annotation::<EmbedOut>()?.context("no embedding recorded")?;
    let read = |key: String| async move {
        let bytes = blob.get(&key).await.with_context(|| format!("read embedding {key}"))?;
        sightline_embed::from_le_bytes(&bytes).with_context(|| format!("embedding {key} is not f32s"))
    };
    let vector = read(embed.key).await?;
    let zoom = match embed.zoom_key {
        Some(key) => read(key).await?,
        None => Vec::new(),
    };
    let text = match record.annotation::<OcrOut>()? {
        Some(ocr) => ocr.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(" "),
        None => String::new(),
    };
    Ok((vector, zoom, text))
}

/// Logo search's models, loaded once per process: the embedding model (regions are embedded
/// as the embed stage embeds an image), detect's analysis (the regions) and, unless OCR is
/// off, the OCR engine (the brand's name).
pub struct Extractor {
    embedder: Arc<Embedder>,
    ocr: Option<Arc<OcrEngine>>,
    detect: Option<Arc<sightline_detect::Analyzer>>,
    limits: Limits,
}

impl Extractor {
    /// Loads the models (`models/fetch.sh` puts them where `SIGHTLINE_MODELS` says).
    pub async fn load(ocr: bool, crop: bool, config: EmbedConfig) -> anyhow::Result<Self> {
        let handle = tokio::runtime::Handle::current();
        let (embedder, ocr, detect) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let store = ModelStore::from_env().context("read the model manifest")?;
            let embedder = Embedder::load(&store, &config, &handle)
                .context("load the embedding model (run models/fetch.sh and export what it prints)")?;
            let detect = if crop {
                store.verify(&sightline_detect::MODELS).context("detect models missing (run models/fetch.sh)")?;
                Some(Arc::new(
                    sightline_detect::Analyzer::load(&store, Default::default()).context("load the detect models")?,
                ))
            } else {
                None
            };
            let ocr = if ocr {
                let args = OcrArgs::default();
                Some(Arc::new(
                    OcrEngine::from_env(&args.engine_options(), args.config())
                        .context("load the OCR models (run models/fetch.sh and export what it prints)")?,
                ))
            } else {
                None
            };
            Ok((Arc::new(embedder), ocr, detect))
        })
        .await
        .context("load models")??;
        Ok(Self { embedder, ocr, detect, limits: config.limits })
    }

    /// Decodes one image and runs the detect stage's analysis on it: the image and the value
    /// detect stores as `annotations.detect` (needs the extractor loaded with `crop`).
    pub async fn detect(&self, path: &Path, name: &str) -> anyhow::Result<(Arc<image::RgbImage>, serde_json::Value)> {
        let detect = self.detect.clone().context("detect models not loaded")?;
        let bytes = tokio::fs::read(path).await.with_context(|| format!("read {}", path.display()))?;
        let (n, limits) = (name.to_owned(), self.limits);
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let (_, img) = sightline_imaging::decode(&bytes, Some(&n), &limits).context("decode image")?;
            let rgb = img.to_rgb8();
            let (found, _) = detect.analyse(&rgb).context("detect")?;
            Ok((Arc::new(rgb), serde_json::to_value(&found).context("encode detection")?))
        })
        .await
        .context("detect task")?
    }

    /// The OCR stage's text of one image, lines joined by spaces (empty when OCR is off).
    pub async fn read_text(&self, path: &Path, name: &str) -> anyhow::Result<String> {
        let Some(engine) = self.ocr.clone() else { return Ok(String::new()) };
        let bytes = tokio::fs::read(path).await.with_context(|| format!("read {}", path.display()))?;
        let (n, limits) = (name.to_owned(), self.limits);
        let read = tokio::task::spawn_blocking(move || engine.read_bytes(&bytes, Some(&n), &limits))
            .await
            .context("ocr task")?
            .context("read text")?;
        Ok(read.0.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(" "))
    }

    /// Decodes one image (for [`embed_boxes`](Self::embed_boxes) without detect).
    pub async fn decode(&self, path: &Path, name: &str) -> anyhow::Result<Arc<image::RgbImage>> {
        let bytes = tokio::fs::read(path).await.with_context(|| format!("read {}", path.display()))?;
        let (n, limits) = (name.to_owned(), self.limits);
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let (_, img) = sightline_imaging::decode(&bytes, Some(&n), &limits).context("decode image")?;
            Ok(Arc::new(img.to_rgb8()))
        })
        .await
        .context("decode task")?
    }

    /// The embeddings of `boxes` of `img` (`None`: the whole image), in order, fitted with `fit`
    /// and otherwise preprocessed as the embed stage does; the requests share batches.
    pub async fn embed_boxes(
        &self,
        img: Arc<image::RgbImage>,
        boxes: Vec<Option<[u32; 4]>>,
        fit: Fit,
    ) -> anyhow::Result<Vec<Vec<f32>>> {
        let tensors = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<_>> {
            boxes
                .into_iter()
                .map(|b| {
                    Ok(sightline_embed::input_tensor(
                        &sightline_embed::prepare(&img, b, fit).context("prepare region")?,
                    ))
                })
                .collect()
        })
        .await
        .context("prepare task")??;
        futures::future::try_join_all(tensors.into_iter().map(|t| self.embedder.embed(t)))
            .await
            .map_err(anyhow::Error::msg)
            .context("embed regions")
    }
}

/// The catalogue's index over `features` (images that failed are skipped with a warning), of
/// the dimension of its vectors (the backbone's, or a head's).
pub fn build_index(features: &[Features], ann_min: usize) -> anyhow::Result<SearchIndex> {
    let dim = features.iter().find(|f| f.error.is_none()).map_or(sightline_embed::DIM, |f| f.vector.len());
    let mut index = SearchIndex::new(dim);
    for f in features {
        if let Some(e) = &f.error {
            eprintln!("warning: catalogue image {} skipped: {e}", f.name);
            continue;
        }
        index.add(CatalogItem { name: f.name.clone(), text: f.text.clone() }, &f.vector)?;
    }
    if index.is_empty() {
        bail!("no catalogue image could be read");
    }
    index.build(AnnParams::default(), ann_min)?;
    Ok(index)
}

/// Answers every query (with its zoomed-in view too when `zoom` and it was computed).
pub fn answer(index: &SearchIndex, queries: &[Features], opts: &SearchOptions, zoom: bool) -> Vec<QueryResult> {
    queries
        .iter()
        .map(|q| QueryResult {
            query: q.name.clone(),
            matches: if q.error.is_some() {
                Vec::new()
            } else {
                index
                    .search(&q.query_vector(zoom), &q.text, opts)
                    .into_iter()
                    .map(|m| Item { item: index.items()[m.index].name.clone(), score: m.score })
                    .collect()
            },
            error: q.error.clone(),
        })
        .collect()
}

/// One logo-search match: a brand.
#[derive(Debug, Serialize)]
pub struct LogoItem {
    /// The brand's best logo file (relative to the catalogue folder).
    pub item: String,
    /// The brand (the logo's sub-folder, or its file name without extension).
    pub brand: String,
    /// The fused score: `visual` + the text weight × `text`.
    pub score: f32,
    /// The logo's best cosine over the query's regions.
    pub visual: f32,
    /// How well the query's OCR text names the brand (0..1; 0 without OCR).
    pub text: f32,
    /// The query region that matched, `[x, y, w, h]` in source pixels.
    #[serde(rename = "box")]
    pub bbox: [u32; 4],
    /// Where that region came from (`whole`, `crop`, `text`, `text-group`).
    pub region: sightline_detect::regions::RegionKind,
}

/// One query's logo-search answer (brands, best first).
pub type LogoResult = QueryResult<LogoItem>;

/// The region proposal settings of logo search.
pub fn logo_params(regions: &[LogoRegionSet], margin: f32) -> sightline_detect::regions::RegionParams {
    sightline_detect::regions::RegionParams {
        whole: regions.contains(&LogoRegionSet::Whole),
        crop: regions.contains(&LogoRegionSet::Crop),
        text: regions.contains(&LogoRegionSet::Text),
        margin: margin.max(0.0),
        ..Default::default()
    }
}

/// Embeds every logo under `dir` (the whole image, fitted with `fit`): the catalogue's features.
pub async fn logo_catalog(extractor: &Extractor, dir: &Path, fit: Fit) -> anyhow::Result<Vec<Features>> {
    let mut out = Vec::new();
    for (path, name) in image_files(dir)? {
        let v = async {
            let img = extractor.decode(&path, &name).await?;
            extractor.embed_boxes(img, vec![None], fit).await
        }
        .await;
        out.push(match v {
            Ok(mut v) => Features {
                name,
                vector: v.pop().unwrap_or_default(),
                zoom: Vec::new(),
                text: String::new(),
                error: None,
            },
            Err(e) => Features::failed(name, &e),
        });
    }
    Ok(out)
}

/// One query's logo answer: its regions from detect, embedded, ranked against `index`, one
/// match per brand, each brand's best cosine plus `text_weight` × how well the query's OCR
/// text names it (no OCR when 0).
#[allow(clippy::too_many_arguments)] // one query's settings
pub async fn logo_query(
    extractor: &Extractor,
    index: &SearchIndex,
    path: PathBuf,
    name: String,
    params: &sightline_detect::regions::RegionParams,
    fit: Fit,
    text_weight: f32,
    k: usize,
) -> LogoResult {
    let answer = async {
        let text = if text_weight > 0.0 { extractor.read_text(&path, &name).await? } else { String::new() };
        let (img, detect) = extractor.detect(&path, &name).await?;
        let regions = sightline_detect::regions::regions_from_detect(&detect, img.width(), img.height(), params);
        if regions.is_empty() {
            bail!("no region to search (--logo-regions)");
        }
        let vectors = extractor.embed_boxes(img, regions.iter().map(|r| Some(r.bbox)).collect(), fit).await?;
        let items = index.items();
        let out: Vec<LogoItem> = sightline_index::logo::brands(&[index], &vectors, &text, text_weight, k)
            .into_iter()
            .map(|b| LogoItem {
                item: items[b.index].name.clone(),
                score: b.score,
                visual: b.visual,
                text: b.text,
                brand: b.brand,
                bbox: regions[b.region].bbox,
                region: regions[b.region].kind,
            })
            .collect();
        Ok(out)
    }
    .await;
    match answer {
        Ok(matches) => LogoResult { query: name, matches, error: None },
        Err(e) => LogoResult { query: name, matches: Vec::new(), error: Some(format!("{e:#}")) },
    }
}

/// `sightline search --logo`.
async fn run_logo(args: SearchArgs) -> anyhow::Result<i32> {
    let params = logo_params(&args.logo_regions, args.logo_margin);
    let text_weight = if args.no_ocr { 0.0 } else { args.logo_text_weight.max(0.0) };
    let extractor = Extractor::load(text_weight > 0.0, true, args.embed.clone().into()).await?;
    let catalog = logo_catalog(&extractor, &args.catalog, args.logo_fit).await?;
    let mut failed = catalog.iter().any(|f| f.error.is_some());
    let index = build_index(&catalog, args.ann_min)?;
    let files = image_files(&args.queries)?;
    let bar = ProgressBar::new(files.len() as u64);
    let (index, extractor, fit, k) = (&index, &extractor, args.logo_fit, args.k);
    let results: Vec<LogoResult> = futures::stream::iter(files)
        .map(|(path, name)| {
            let bar = bar.clone();
            async move {
                let r = logo_query(extractor, index, path, name, &params, fit, text_weight, k).await;
                bar.inc(1);
                r
            }
        })
        .buffered(2)
        .collect()
        .await;
    bar.finish_and_clear();
    failed |= results.iter().any(|r| r.error.is_some());
    print_results(&results, args.json, |m| {
        let [x, y, w, h] = m.bbox;
        format!("{:.4}  {}  ({}, {:?} {x},{y} {w}x{h})", m.score, m.brand, m.item, m.region)
    })?;
    Ok(i32::from(failed))
}

/// Prints the answers: a JSON array with `json`, else each query and its matches, one line each.
fn print_results<M: Serialize>(
    results: &[QueryResult<M>],
    json: bool,
    line: impl Fn(&M) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(results)?);
        return Ok(());
    }
    for r in results {
        println!("{}", r.query);
        if let Some(e) = &r.error {
            println!("  error: {e}");
        }
        for m in &r.matches {
            println!("  {}", line(m));
        }
    }
    Ok(())
}

/// Runs the command. Exit code 1 when an image could not be read (its query carries `error`;
/// a catalogue image is skipped with a warning); the rest is still answered.
pub async fn run(args: SearchArgs) -> anyhow::Result<i32> {
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    if args.logo {
        image_files(&args.catalog)?;
        image_files(&args.queries)?;
        return run_logo(args).await;
    }
    // Fail on an empty or missing folder before spending seconds loading models.
    image_files(&args.catalog)?;
    image_files(&args.queries)?;
    let head = match &args.model {
        Some(dir) => Some(
            sightline_embed::head::Head::load(dir).with_context(|| format!("load the head in {}", dir.display()))?,
        ),
        None => None,
    };
    let photos = Photos::new(!args.no_ocr, !args.no_crop, args.embed.clone().into())?;
    let mut catalog = photos.folder(&args.catalog, 0).await?;
    let mut queries = photos.folder(&args.queries, args.query_zoom).await?;
    if let Some((head, _)) = &head {
        catalog = catalog.into_iter().map(|f| f.through(head)).collect();
        queries = queries.into_iter().map(|f| f.through(head)).collect();
    }
    let failed = catalog.iter().chain(&queries).any(|f| f.error.is_some());
    let ann_min = args.ann_min;
    let index = tokio::task::spawn_blocking(move || build_index(&catalog, ann_min)).await.context("index task")??;
    let opts = SearchOptions {
        k: args.k,
        candidates: args.candidates.max(args.k),
        text_weight: if args.no_ocr { 0.0 } else { args.text_weight.max(0.0) },
    };
    let results = answer(&index, &queries, &opts, true);
    match &head {
        // With a head, the JSON names the version that answered.
        Some((_, manifest)) if args.json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": { "name": manifest.name, "version": manifest.version, "backbone": manifest.backbone },
                "results": results,
            }))?
        ),
        _ => print_results(&results, args.json, |m| format!("{:.4}  {}", m.score, m.item))?,
    }
    Ok(i32::from(failed))
}
