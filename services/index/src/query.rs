//! Query mode: a task whose job options name a catalogue (`search.catalog`, `search.k`) is
//! answered from that catalogue instead of being indexed. The pipeline (detect, embed, OCR)
//! already turned the query photo into an embedding blob and OCR lines, so this stage embeds
//! nothing (only the model stages link ONNX Runtime): it searches the catalogue as this replica
//! serves it ([`crate::catalog`]: the stored snapshot plus the entries indexed since), re-ranks
//! with the OCR text, and puts `annotations.search` on the task, which the job's record keeps.

use sightline_messages::ImageTask;
use sightline_messages::annotations::{Annotation, EmbedOut, EmbedRegion, SearchMatch, SearchOut};
use sightline_messages::options::{JobOptions, LogoMode, logo_mode};
use sightline_runtime::{Ctx, StageError};

use crate::catalog::{CatalogError, Catalogs};
use crate::logo;
use crate::search::SearchOptions;
use crate::{decode_vector, ocr_text};

/// The annotation a query's answer is stored under.
pub const ANNOTATION: &str = SearchOut::KEY;

/// What a query task asks for, from its job options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRequest {
    /// The catalogue.
    pub catalog: String,
    /// Matches wanted.
    pub k: usize,
}

impl QueryRequest {
    /// The query in `task`'s job options (`annotations.options`), or `None` for a task to index.
    pub fn from_task(task: &ImageTask) -> Option<Self> {
        let options = JobOptions::of(task);
        let catalog = options.search_catalog()?.to_owned();
        Some(Self { catalog, k: options.search_k() })
    }
}

impl From<CatalogError> for StageError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Blob(e) => e.into(),
            CatalogError::Coord(e) => e.into(),
            corrupt @ CatalogError::Corrupt { .. } => StageError::permanent(corrupt.to_string()),
        }
    }
}

/// The unit vector along `a + b` (`a` when the lengths differ or the sum is zero).
fn mean_direction(a: &[f32], b: &[f32]) -> Vec<f32> {
    if a.len() != b.len() {
        return a.to_vec();
    }
    let sum: Vec<f32> = a.iter().zip(b).map(|(x, y)| x + y).collect();
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 { sum.iter().map(|x| x / norm).collect() } else { a.to_vec() }
}

/// The embed stage's annotation of `task`, which a query needs.
fn embedding(task: &ImageTask) -> Result<EmbedOut, StageError> {
    task.annotation::<EmbedOut>().map_err(|e| StageError::permanent(format!("{}: {e}", task.name)))?.ok_or_else(|| {
        StageError::permanent(format!("{}: no embedding to search with (is embed on the route?)", task.name))
    })
}

/// Answers `request` for `task`: its embedding (`annotations.embed.key`) and OCR text against
/// the catalogue; the value stored as `annotations.search`.
pub async fn answer(
    ctx: &Ctx,
    catalogs: &Catalogs,
    task: &ImageTask,
    request: &QueryRequest,
) -> Result<SearchOut, StageError> {
    let embed = embedding(task)?;
    let mut vector = load_vector(ctx, &embed.key).await?;
    // The zoomed-in view the embed stage adds for queries (`embed.zoom`): search with the
    // normalised mean of the two (docs/search.md, "Query zoom").
    if let Some(zoom_key) = &embed.zoom_key {
        let zoom = load_vector(ctx, zoom_key).await?;
        vector = mean_direction(&vector, &zoom);
    }
    if logo_mode(task) == Some(LogoMode::Query) {
        return answer_logo(ctx, catalogs, task, request, embed.regions.unwrap_or_default()).await;
    }
    let index = catalogs.view(ctx.blob.as_ref(), ctx.coord.as_ref(), &request.catalog).await?;
    if index.is_empty() {
        return Err(StageError::permanent(format!("catalogue {:?} has no items", request.catalog)));
    }
    if index.dim() != vector.len() {
        return Err(StageError::permanent(format!(
            "query embedding has dimension {}, catalogue {:?} has {}",
            vector.len(),
            request.catalog,
            index.dim()
        )));
    }
    let text = ocr_text(task).unwrap_or_default();
    let opts = SearchOptions { k: request.k, ..SearchOptions::default() };
    let matches: Vec<SearchMatch> = index
        .search(&vector, &text, &opts)
        .into_iter()
        .map(|f| SearchMatch {
            item: f.item.name.clone(),
            brand: None,
            score: f.score.score,
            visual: f.score.visual,
            text: f.score.text,
            bbox: None,
            region: None,
        })
        .collect();
    Ok(SearchOut { catalog: request.catalog.clone(), mode: None, text, matches })
}

async fn load_vector(ctx: &Ctx, key: &str) -> Result<Vec<f32>, StageError> {
    let raw = ctx.blob.get(key).await?;
    decode_vector(&raw).ok_or_else(|| StageError::permanent(format!("{key}: not an embedding ({} bytes)", raw.len())))
}

/// Answers a logo search (job option `search.mode=logo`): the embeddings of the regions detect
/// proposed (`annotations.embed.regions`) against the logo catalogue, one match per brand, with
/// the query's OCR text naming brands ([`logo::brands`], docs/logos.md).
async fn answer_logo(
    ctx: &Ctx,
    catalogs: &Catalogs,
    task: &ImageTask,
    request: &QueryRequest,
    regions: Vec<EmbedRegion>,
) -> Result<SearchOut, StageError> {
    if regions.is_empty() {
        return Err(StageError::permanent(format!(
            "{}: no region embeddings to search logos with (is detect on the route?)",
            task.name
        )));
    }
    let mut vectors = Vec::with_capacity(regions.len());
    for r in &regions {
        vectors.push(load_vector(ctx, &r.key).await?);
    }
    let view = catalogs.view(ctx.blob.as_ref(), ctx.coord.as_ref(), &request.catalog).await?;
    if view.is_empty() {
        return Err(StageError::permanent(format!("catalogue {:?} has no items", request.catalog)));
    }
    let text = ocr_text(task).unwrap_or_default();
    let parts = [view.snapshot.as_ref(), view.delta.as_ref()];
    let matches: Vec<SearchMatch> = logo::brands(&parts, &vectors, &text, logo::DEFAULT_TEXT_WEIGHT, request.k)
        .into_iter()
        .map(|b| {
            let region = &regions[b.region];
            SearchMatch {
                item: parts[b.part].items()[b.index].name.clone(),
                brand: Some(b.brand),
                score: b.score,
                visual: b.visual,
                text: b.text,
                bbox: Some(region.bbox),
                region: Some(region.kind),
            }
        })
        .collect();
    Ok(SearchOut { catalog: request.catalog.clone(), mode: Some("logo".to_owned()), text, matches })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use bytes::Bytes;
    use sightline_blob::BlobStore;
    use sightline_messages::annotations::{OcrOut, TextLine};
    use sightline_messages::{Body, Envelope, ItemOutcome};
    use sightline_runtime::{Effect, Input, Stage};
    use uuid::Uuid;

    use super::*;
    use sightline_messages::options::{DEFAULT_K, MAX_K, SEARCH_CATALOG, SEARCH_K};

    #[test]
    fn the_query_and_its_zoom_are_averaged_to_a_unit_vector() {
        let v = mean_direction(&[1.0, 0.0], &[0.0, 1.0]);
        assert!((v[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6 && (v[0] - v[1]).abs() < 1e-6, "{v:?}");
        assert_eq!(mean_direction(&[1.0, 0.0], &[1.0]), vec![1.0, 0.0], "a mismatched view is ignored");
        assert_eq!(mean_direction(&[1.0, 0.0], &[-1.0, 0.0]), vec![1.0, 0.0]);
    }
    use crate::{IndexStage, entries_prefix};

    pub(crate) fn task(job: u128, item: u64, collection: &str, emb_key: &str, text: &str) -> ImageTask {
        let mut t = ImageTask {
            job_id: Uuid::from_u128(job),
            item,
            collection: collection.into(),
            name: format!("{collection}/{item}.jpg"),
            key: format!("images/sha256/{item}"),
            sha256: String::new(),
            format: "jpeg".into(),
            width: 1,
            height: 1,
            size: 1,
            route: vec!["ingest".into(), "embed".into(), "ocr".into(), "index".into()],
            hop: 3,
            annotations: BTreeMap::new(),
        };
        t.set_annotation(&EmbedOut { key: emb_key.to_owned(), dim: 2, ..EmbedOut::default() }).expect("embed");
        if !text.is_empty() {
            let line = TextLine { text: text.to_owned(), score: 0.9, bbox: Default::default() };
            t.set_annotation(&OcrOut { lines: vec![line], ..OcrOut::default() }).expect("ocr");
        }
        t
    }

    /// `task` with job options `options`.
    pub(crate) fn with_options(mut task: ImageTask, options: &[(&str, &str)]) -> ImageTask {
        let map = options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        task.set_annotation(&JobOptions(map)).expect("options");
        task
    }

    pub(crate) async fn run_on(
        stage: &IndexStage,
        ctx: &Ctx,
        task: ImageTask,
    ) -> Result<sightline_messages::ItemRecord, StageError> {
        let body = Body::Image(task);
        let env = Envelope::new(&body, Uuid::new_v4(), Uuid::from_u128(1)).expect("envelope");
        let effects = stage.handle(ctx, Input { envelope: env, body }).await?;
        match effects.into_iter().next() {
            Some(Effect::Finish(record)) => Ok(*record),
            _ => panic!("the route ends at index"),
        }
    }

    pub(crate) async fn put_vector(blob: &dyn BlobStore, key: &str, v: [f32; 2]) {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        blob.put(key, Bytes::from(bytes)).await.expect("put vector");
    }

    pub(crate) fn names(record: &sightline_messages::ItemRecord) -> Vec<String> {
        let answer: SearchOut = record.annotation().expect("well formed").expect("an answer");
        answer.matches.into_iter().map(|m| m.item).collect()
    }

    #[test]
    fn options_make_a_query() {
        let t = task(1, 0, "q", "e", "");
        assert_eq!(QueryRequest::from_task(&t), None, "no options: index it");
        let query =
            |k: &str| QueryRequest::from_task(&with_options(t.clone(), &[(SEARCH_CATALOG, "shop"), (SEARCH_K, k)]));
        assert_eq!(query("3"), Some(QueryRequest { catalog: "shop".into(), k: 3 }));
        assert_eq!(query("x").map(|q| q.k), Some(DEFAULT_K));
        assert_eq!(query("100000").map(|q| q.k), Some(MAX_K));
    }

    #[tokio::test]
    async fn a_query_is_answered_from_the_catalogue_with_text_and_indexes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blob: Arc<dyn BlobStore> = Arc::new(sightline_blob::LocalStore::new(dir.path()).expect("store"));
        let ctx = Ctx { blob: blob.clone(), coord: Arc::new(sightline_coord::MemoryCoord::new()) };
        let stage = IndexStage::default();
        // A catalogue of three items indexed by the stage; two look alike, the text tells them apart.
        let items = [([1.0, 0.0], "ALPRO soya"), ([0.995, 0.0998], "Tropicana apple"), ([0.0, 1.0], "")];
        for (i, (v, text)) in items.iter().enumerate() {
            let key = format!("embeddings/cat/{i}.f32");
            put_vector(blob.as_ref(), &key, *v).await;
            let record = run_on(&stage, &ctx, task(1, i as u64, "shop", &key, text)).await.expect("index");
            assert_eq!(record.outcome, ItemOutcome::Ok);
        }
        let entries = blob.list(&entries_prefix("shop")).await.expect("list");
        assert_eq!(entries.len(), 3);
        let stored: crate::Entry = serde_json::from_slice(&blob.get(&entries[0]).await.expect("get")).expect("entry");
        assert_eq!(stored.text.as_deref(), Some("ALPRO soya"));

        put_vector(blob.as_ref(), "embeddings/q/0.f32", [0.999, 0.0447]).await;
        let query = task(2, 0, "query", "embeddings/q/0.f32", "tropicana APPLE");
        let query = with_options(query, &[(SEARCH_CATALOG, "shop"), (SEARCH_K, "2")]);
        let record = run_on(&stage, &ctx, query.clone()).await.expect("query");
        assert_eq!(record.outcome, ItemOutcome::Ok);
        assert_eq!(record.annotations[ANNOTATION]["catalog"], "shop", "the answer's wire shape");
        assert_eq!(names(&record), ["1.jpg", "0.jpg"], "the text re-ranks tropicana above alpro");
        assert_eq!(blob.list(&entries_prefix("query")).await.expect("list").len(), 0, "a query is not indexed");

        // Without text the visually nearest wins.
        let mut plain = task(2, 1, "query", "embeddings/q/0.f32", "");
        plain.annotations = query.annotations.clone();
        plain.annotations.remove(OcrOut::KEY);
        assert_eq!(names(&run_on(&stage, &ctx, plain).await.expect("query"))[0], "0.jpg");

        // An item added later is found by the next query (the cached catalogue is refreshed).
        put_vector(blob.as_ref(), "embeddings/cat/3.f32", [0.999, 0.0447]).await;
        run_on(&stage, &ctx, task(1, 3, "shop", "embeddings/cat/3.f32", "")).await.expect("index");
        let view = stage.catalogs().view(blob.as_ref(), ctx.coord.as_ref(), "shop").await.expect("catalogue");
        assert_eq!((view.len(), view.delta.len(), view.generation), (4, 4, 0), "no snapshot yet: all in the delta");

        // An unknown catalogue fails the query permanently, with a reason.
        let unknown = with_options(query.clone(), &[(SEARCH_CATALOG, "nothing")]);
        let err = run_on(&stage, &ctx, unknown).await.expect_err("unknown catalogue");
        assert!(matches!(&err, StageError::Permanent(r) if r.contains("no items")), "{err}");
    }
}
