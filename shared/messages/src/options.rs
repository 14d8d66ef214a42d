//! Jobs in one place: the job options the stages read (docs/messages.md), the default route
//! of every job kind, the route check, and which stage decisions apply to a job.
//!
//! A job's `options` reach every task as the `options` annotation ([`JobOptions`]), copied by
//! ingest; stages read them through the typed reads here, never by key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ImageTask;
use crate::annotations::Annotation;

/// The catalogue a search query searches; its presence makes a task a query.
pub const SEARCH_CATALOG: &str = "search.catalog";
/// `logo` makes a search (or a catalogue upload) a logo search: detect proposes regions, embed
/// embeds them (queries) or embeds the logo whole (catalogue items), index ranks brands.
pub const SEARCH_MODE: &str = "search.mode";
/// How many matches a search query returns ([`DEFAULT_K`] when not given, at most [`MAX_K`]).
pub const SEARCH_K: &str = "search.k";
/// A zoomed-in second embedding (percent cut off each side of the crop, 1-49), which
/// search-by-photo queries average with the crop's own (docs/search.md).
pub const EMBED_ZOOM: &str = "embed.zoom";
/// A named dedup scope: images of every job naming it are deduplicated together (within
/// their collection).
pub const DEDUP_SCOPE: &str = "dedup.scope";
/// `off` records detect's noise flags without taking flagged images off the route.
pub const DETECT_FILTER: &str = "detect.filter";

/// Matches a search returns when `search.k` is not given.
pub const DEFAULT_K: usize = 5;
/// The most matches a search may ask for.
pub const MAX_K: usize = 100;

/// A job's options as every task carries them: the value of `annotations.options`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobOptions(pub BTreeMap<String, String>);

impl Annotation for JobOptions {
    const KEY: &'static str = "options";
}

impl JobOptions {
    /// The options of `task`; none when it carries none (or malformed ones: options are
    /// hints, and a stage goes on with its defaults).
    pub fn of(task: &ImageTask) -> Self {
        task.annotation::<Self>().ok().flatten().unwrap_or_default()
    }

    /// The value of option `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The catalogue a search query searches (`search.catalog`); `None` for any other task.
    pub fn search_catalog(&self) -> Option<&str> {
        self.get(SEARCH_CATALOG)
    }

    /// How many matches a query asks for (`search.k`): [`DEFAULT_K`] when not given or not a
    /// number, clamped to 1..=[`MAX_K`].
    pub fn search_k(&self) -> usize {
        self.get(SEARCH_K).and_then(|k| k.trim().parse::<usize>().ok()).unwrap_or(DEFAULT_K).clamp(1, MAX_K)
    }

    /// The zoom a job asks for (`embed.zoom`, 1-49 percent), if any.
    pub fn embed_zoom(&self) -> Option<u32> {
        self.get(EMBED_ZOOM).and_then(|v| v.trim().parse::<u32>().ok()).filter(|p| (1..50).contains(p))
    }

    /// The segment length of a store job (`store.segment_s`, 1-600 s; default
    /// [`DEFAULT_SEGMENT_S`]).
    pub fn store_segment_s(&self) -> f64 {
        self.get(STORE_SEGMENT_S)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 1.0)
            .map_or(DEFAULT_SEGMENT_S, |s| s.min(600.0))
    }

    /// The named dedup scope (`dedup.scope`), if set and not empty.
    pub fn dedup_scope(&self) -> Option<&str> {
        self.get(DEDUP_SCOPE).filter(|s| !s.is_empty())
    }

    /// The logo-search role: `search.mode=logo` with `search.catalog` is a query, without it
    /// a catalogue item; `None` for any other task.
    pub fn logo_mode(&self) -> Option<LogoMode> {
        if self.get(SEARCH_MODE)? != "logo" {
            return None;
        }
        Some(if self.search_catalog().is_some() { LogoMode::Query } else { LogoMode::Item })
    }
}

/// The string value of job option `key` on `task`, if set.
pub fn option(task: &ImageTask, key: &str) -> Option<String> {
    JobOptions::of(task).get(key).map(str::to_owned)
}

/// A task's role in a logo search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoMode {
    /// A logo image added to a logo catalogue.
    Item,
    /// A photo searched for logos.
    Query,
}

/// The logo-search role of `task` ([`JobOptions::logo_mode`]).
pub fn logo_mode(task: &ImageTask) -> Option<LogoMode> {
    JobOptions::of(task).logo_mode()
}

/// Whether detect may take `task` off its route as noise. Never for a catalogue item or a
/// search query: what a user adds to a catalogue or searches with is what they want found,
/// even when it is mostly text (a logo, a product shot on its label). A job says so with
/// `detect.filter=off` ([`kind_options`] sets it for catalogue uploads); a query is known by
/// its `search.catalog`, a logo upload by `search.mode=logo`.
pub fn applies_noise_filter(task: &ImageTask) -> bool {
    let options = JobOptions::of(task);
    options.get(DETECT_FILTER) != Some("off") && options.search_catalog().is_none() && options.logo_mode().is_none()
}

/// Job kind: store and validate images only.
pub const JOB_INGEST: &str = "ingest";
/// Job kind: the embedded `sightline run` (a route given by the user, ingest by default).
pub const JOB_RUN: &str = "run";
/// Job kind: find duplicates.
pub const JOB_DEDUP: &str = "dedup";
/// Job kind: annotate collections (dedup, detect, embed, cluster, index).
pub const JOB_ANNOTATE: &str = "annotate";
/// Job kind: add images to a search catalogue (search API).
pub const JOB_CATALOG: &str = "catalog";
/// Job kind: a search query (search API).
pub const JOB_SEARCH: &str = "search";
/// Job kind: in-store analytics of camera videos (segments, people, faces, tracks).
pub const JOB_STORE: &str = "store";

/// Job option: the camera file (TOML text) of a store job.
pub const STORE_CAMERA: &str = "store.camera";
/// Job option: the segment length of a store job, seconds (default [`DEFAULT_SEGMENT_S`]).
pub const STORE_SEGMENT_S: &str = "store.segment_s";
/// The default segment length, seconds: a segment is one message's work.
pub const DEFAULT_SEGMENT_S: f64 = 10.0;

/// The route of catalogue uploads and search queries: the photo is analysed, embedded and
/// read, then indexed (an item) or answered (a query).
pub const SEARCH_ROUTE: [&str; 5] = ["ingest", "detect", "embed", "ocr", "index"];

/// The route a job of `kind` follows unless one is given; `None` for a kind without one.
pub fn default_route(kind: &str) -> Option<Vec<String>> {
    let stages: &[&str] = match kind {
        JOB_INGEST | JOB_RUN => &["ingest"],
        JOB_DEDUP => &["ingest", "dedup"],
        JOB_ANNOTATE => &["ingest", "dedup", "detect", "embed", "cluster", "index"],
        JOB_CATALOG | JOB_SEARCH => &SEARCH_ROUTE,
        JOB_STORE => &["ingest", "detect", "face", "track"],
        _ => return None,
    };
    Some(stages.iter().map(|s| (*s).to_owned()).collect())
}

/// The options a job of `kind` carries besides the caller's, so that the stages apply the
/// decisions of its kind ([`applies_noise_filter`]): catalogue uploads and searches are never
/// filtered as noise.
pub fn kind_options(kind: &str) -> BTreeMap<String, String> {
    match kind {
        JOB_CATALOG | JOB_SEARCH => BTreeMap::from([(DETECT_FILTER.to_owned(), "off".to_owned())]),
        _ => BTreeMap::new(),
    }
}

/// Checks a route: starts with ingest, names only known stages, no repeats.
pub fn validate_route(route: &[String]) -> Result<(), String> {
    let first = crate::STAGES[0];
    if route.first().map(String::as_str) != Some(first) {
        return Err(format!("route must start with {first:?}, got {route:?}"));
    }
    for (i, stage) in route.iter().enumerate() {
        if !crate::STAGES.contains(&stage.as_str()) {
            return Err(format!("unknown stage {stage:?} in route (known: {})", crate::STAGES.join(", ")));
        }
        if route[..i].contains(stage) {
            return Err(format!("stage {stage:?} appears twice in the route"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(options: &[(&str, &str)]) -> ImageTask {
        let mut t = ImageTask {
            job_id: uuid::Uuid::nil(),
            item: 0,
            collection: "c".into(),
            name: "a.jpg".into(),
            key: "k".into(),
            sha256: "s".into(),
            format: "jpeg".into(),
            width: 10,
            height: 10,
            size: 1,
            route: vec!["ingest".into()],
            hop: 0,
            annotations: Default::default(),
        };
        if !options.is_empty() {
            let map = options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            t.set_annotation(&JobOptions(map)).expect("options");
        }
        t
    }

    #[test]
    fn typed_reads_parse_and_bound_the_options() {
        let o = JobOptions::of(&task(&[(SEARCH_CATALOG, "shop"), (SEARCH_K, " 3 "), (EMBED_ZOOM, "25")]));
        assert_eq!((o.search_catalog(), o.search_k(), o.embed_zoom()), (Some("shop"), 3, Some(25)));
        let o = JobOptions::of(&task(&[(SEARCH_K, "x"), (EMBED_ZOOM, "60"), (DEDUP_SCOPE, "")]));
        assert_eq!((o.search_k(), o.embed_zoom(), o.dedup_scope()), (DEFAULT_K, None, None));
        assert_eq!(JobOptions::of(&task(&[(SEARCH_K, "100000")])).search_k(), MAX_K);
        assert_eq!(JobOptions::of(&task(&[(DEDUP_SCOPE, "crawl")])).dedup_scope(), Some("crawl"));
        assert_eq!(JobOptions::of(&task(&[])).store_segment_s(), DEFAULT_SEGMENT_S);
        assert_eq!(JobOptions::of(&task(&[(STORE_SEGMENT_S, "4")])).store_segment_s(), 4.0);
        assert_eq!(JobOptions::of(&task(&[(STORE_SEGMENT_S, "0.1")])).store_segment_s(), DEFAULT_SEGMENT_S);
        assert_eq!(JobOptions::of(&task(&[(STORE_SEGMENT_S, "9999")])).store_segment_s(), 600.0);
        assert_eq!(option(&task(&[(DEDUP_SCOPE, "crawl")]), DEDUP_SCOPE).as_deref(), Some("crawl"));
    }

    #[test]
    fn logo_mode_follows_mode_and_catalog() {
        assert_eq!(logo_mode(&task(&[])), None);
        assert_eq!(logo_mode(&task(&[(SEARCH_MODE, "logo")])), Some(LogoMode::Item));
        assert_eq!(logo_mode(&task(&[(SEARCH_MODE, "logo"), (SEARCH_CATALOG, "b")])), Some(LogoMode::Query));
        assert_eq!(logo_mode(&task(&[(SEARCH_MODE, "photo"), (SEARCH_CATALOG, "b")])), None);
    }

    #[test]
    fn catalogue_items_and_queries_are_never_noise() {
        assert!(applies_noise_filter(&task(&[])), "an annotation job filters noise");
        assert!(applies_noise_filter(&task(&[(DEDUP_SCOPE, "x")])));
        let catalog = kind_options(JOB_CATALOG);
        let catalog: Vec<(&str, &str)> = catalog.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert!(!applies_noise_filter(&task(&catalog)), "a catalogue item");
        assert!(!applies_noise_filter(&task(&[(SEARCH_CATALOG, "shop")])), "a search query");
        assert!(!applies_noise_filter(&task(&[(SEARCH_MODE, "logo")])), "a logo upload");
        assert!(kind_options(JOB_ANNOTATE).is_empty(), "other kinds keep their filter");
    }

    #[test]
    fn every_kind_with_a_default_route_has_a_valid_one() {
        for kind in [JOB_INGEST, JOB_RUN, JOB_DEDUP, JOB_ANNOTATE, JOB_CATALOG, JOB_SEARCH, JOB_STORE] {
            let route = default_route(kind).expect("route");
            assert_eq!(validate_route(&route), Ok(()), "{kind}");
        }
        assert_eq!(default_route("teleport"), None);
    }

    #[test]
    fn routes_are_checked() {
        let r = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(validate_route(&r(&["ingest", "dedup"])).is_ok());
        assert!(validate_route(&r(&["dedup"])).is_err_and(|e| e.contains("must start")));
        assert!(validate_route(&r(&["ingest", "teleport"])).is_err_and(|e| e.contains("unknown stage")));
        assert!(validate_route(&r(&["ingest", "dedup", "dedup"])).is_err_and(|e| e.contains("twice")));
    }
}
