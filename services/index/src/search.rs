//! Search by photo: a catalogue's embeddings behind an approximate nearest-neighbour index
//! (HNSW, [`AnnIndex`]) with exact search as the fallback and the reference, re-ranked with OCR
//! text similarity when both the query and an item have text ([`SearchIndex`]).
//!
//! A catalogue serialises to one blob ([`SearchIndex::to_bytes`]); the index service stores it
//! per catalogue and generation ([`crate::catalog`]), so every replica serving that catalogue
//! loads the same index instead of rebuilding it. Vectors are L2-normalised embeddings; visual scores are cosine similarities.
//! The weights and the measurements behind them are in `docs/search.md`.

use std::collections::HashSet;

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};

use crate::{Entry, Hit};

/// Why an index could not be built, searched or (de)serialised.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A vector's length is not the index's dimension.
    #[error("vector of dimension {got} given to an index of dimension {want}")]
    Dimension {
        /// The index's dimension.
        want: usize,
        /// The vector's.
        got: usize,
    },
    /// The bytes are not a serialised index of this version.
    #[error("corrupt search index: {0}")]
    Corrupt(String),
    /// The temporary files the HNSW crate dumps to and loads from failed.
    #[error("{op}: {detail}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The cause.
        detail: String,
    },
}

/// The dot product of two equal-length slices, in eight independent lanes so that the compiler
/// vectorises it (a plain fold is a serial chain of dependent float additions).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The HNSW distance between L2-normalised vectors: 1 − cosine (0 for the same direction).
#[derive(Debug, Default, Clone, Copy)]
pub struct CosineDistance;

impl Distance<f32> for CosineDistance {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

/// The `k` rows of `vectors` (row-major, `dim` wide) most similar to `query`, best first, by
/// scanning them all: exact, the reference the ANN index is measured against.
pub fn exact_search(vectors: &[f32], dim: usize, query: &[f32], k: usize) -> Vec<Hit> {
    if dim == 0 || query.len() != dim || k == 0 {
        return Vec::new();
    }
    let mut hits: Vec<Hit> =
        vectors.chunks_exact(dim).enumerate().map(|(index, v)| Hit { index, score: dot(v, query) }).collect();
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, |a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    hits
}

/// HNSW parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnParams {
    /// Links per node (HNSW's M; at most 256).
    pub max_connections: usize,
    /// Candidate list size while building (higher: better graph, slower build).
    pub ef_construction: usize,
    /// Candidate list size while searching (raised to k when smaller).
    pub ef_search: usize,
}

impl Default for AnnParams {
    /// M = 16, ef_construction = 100, ef_search = 64: recall@10 ≥ 0.99 against exact search on
    /// clustered 1280-d vectors at 10^5 (docs/search.md).
    fn default() -> Self {
        Self { max_connections: 16, ef_construction: 100, ef_search: 64 }
    }
}

const ANN_MAGIC: &[u8; 8] = b"SLANN001";
const DUMP_NAME: &str = "ann";

/// An HNSW graph over a fixed set of vectors (`hnsw_rs`); hit indexes are row numbers.
pub struct AnnIndex {
    hnsw: Hnsw<'static, f32, CosineDistance>,
    dim: usize,
    len: usize,
    params: AnnParams,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex")
            .field("dim", &self.dim)
            .field("len", &self.len)
            .field("params", &self.params)
            .finish()
    }
}

fn io_err(op: &'static str) -> impl Fn(std::io::Error) -> SearchError {
    move |e| SearchError::Io { op, detail: e.to_string() }
}

fn take<'a>(bytes: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], SearchError> {
    if bytes.len() < n {
        return Err(SearchError::Corrupt(format!("truncated {what}")));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn take_u64(bytes: &mut &[u8], what: &str) -> Result<u64, SearchError> {
    let b = take(bytes, 8, what)?;
    Ok(u64::from_le_bytes(b.try_into().map_err(|_| SearchError::Corrupt(what.to_owned()))?))
}

fn take_len(bytes: &mut &[u8], what: &str) -> Result<usize, SearchError> {
    usize::try_from(take_u64(bytes, what)?).map_err(|_| SearchError::Corrupt(format!("{what} too large")))
}

fn put_u64(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u64).to_le_bytes());
}

/// Reads the 8-byte `magic` that opens a dump of `what` ("not `what` of version 1" otherwise).
fn take_magic(bytes: &mut &[u8], magic: &[u8; 8], what: &str) -> Result<(), SearchError> {
    if take(bytes, 8, "magic")? != magic {
        return Err(SearchError::Corrupt(format!("not {what} of version 1")));
    }
    Ok(())
}

/// Writes `bytes` after their length, to be read back with [`take_section`].
fn put_section(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Reads a section written by [`put_section`]; `what` names it in errors ("`what` length").
fn take_section<'a>(bytes: &mut &'a [u8], what: &str) -> Result<&'a [u8], SearchError> {
    let n = take_len(bytes, &format!("{what} length"))?;
    take(bytes, n, what)
}

impl AnnIndex {
    /// Builds the graph over `vectors` (row-major, `dim` wide, L2-normalised) on the rayon pool
    /// (blocking; minutes at 10^5 × 1280 on two cores).
    pub fn build(vectors: &[f32], dim: usize, params: AnnParams) -> Result<Self, SearchError> {
        if dim == 0 || !vectors.len().is_multiple_of(dim) {
            return Err(SearchError::Dimension { want: dim, got: vectors.len() % dim.max(1) });
        }
        let len = vectors.len() / dim;
        let m = params.max_connections.clamp(2, 256);
        let hnsw = Hnsw::new(m, len.max(1), 16, params.ef_construction.max(m), CosineDistance);
        let rows: Vec<(&[f32], usize)> = vectors.chunks_exact(dim).enumerate().map(|(i, v)| (v, i)).collect();
        hnsw.parallel_insert_slice(&rows);
        let mut hnsw = hnsw;
        hnsw.set_searching_mode(true);
        Ok(Self { hnsw, dim, len, params })
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The parameters it was built with.
    pub fn params(&self) -> AnnParams {
        self.params
    }

    /// The (approximately) `k` most similar rows to `query`, best first, scores as cosine.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Hit> {
        if query.len() != self.dim || k == 0 || self.len == 0 {
            return Vec::new();
        }
        let mut hits: Vec<Hit> = self
            .hnsw
            .search(query, k, self.params.ef_search.max(k))
            .into_iter()
            .map(|n| Hit { index: n.d_id, score: 1.0 - n.distance })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        hits.truncate(k);
        hits
    }

    /// The index as bytes: a header, then the crate's own graph and data dumps (which it writes
    /// only to files, hence the temporary folder).
    pub fn to_bytes(&self) -> Result<Vec<u8>, SearchError> {
        let dir = tempfile::tempdir().map_err(io_err("create a temporary folder"))?;
        let name = self
            .hnsw
            .file_dump(dir.path(), DUMP_NAME)
            .map_err(|e| SearchError::Io { op: "dump the HNSW graph", detail: e.to_string() })?;
        let graph =
            std::fs::read(dir.path().join(format!("{name}.hnsw.graph"))).map_err(io_err("read the graph dump"))?;
        let data = std::fs::read(dir.path().join(format!("{name}.hnsw.data"))).map_err(io_err("read the data dump"))?;
        let mut out = Vec::with_capacity(64 + graph.len() + data.len());
        out.extend_from_slice(ANN_MAGIC);
        for v in [self.params.max_connections, self.params.ef_construction, self.params.ef_search, self.dim, self.len] {
            put_u64(&mut out, v);
        }
        put_section(&mut out, &graph);
        put_section(&mut out, &data);
        Ok(out)
    }

    /// Loads an index written by [`AnnIndex::to_bytes`].
    pub fn from_bytes(mut bytes: &[u8]) -> Result<Self, SearchError> {
        let b = &mut bytes;
        take_magic(b, ANN_MAGIC, "an ANN index")?;
        let params = AnnParams {
            max_connections: take_len(b, "header")?,
            ef_construction: take_len(b, "header")?,
            ef_search: take_len(b, "header")?,
        };
        let (dim, len) = (take_len(b, "header")?, take_len(b, "header")?);
        let graph = take_section(b, "graph")?;
        let data = take_section(b, "data")?;
        let dir = tempfile::tempdir().map_err(io_err("create a temporary folder"))?;
        std::fs::write(dir.path().join(format!("{DUMP_NAME}.hnsw.graph")), graph).map_err(io_err("write the graph"))?;
        std::fs::write(dir.path().join(format!("{DUMP_NAME}.hnsw.data")), data).map_err(io_err("write the data"))?;
        // hnsw_rs ties a reloaded graph's lifetime to its loader. Without memory mapping (the
        // default) the graph owns all its data, so the loader (a path, a name and options, no
        // vectors) is leaked: a few hundred bytes per load buys an owned `Hnsw<'static>`.
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir.path(), DUMP_NAME)));
        let mut hnsw: Hnsw<'static, f32, CosineDistance> =
            io.load_hnsw().map_err(|e| SearchError::Corrupt(format!("reload the HNSW graph: {e}")))?;
        if hnsw.get_nb_point() != len {
            return Err(SearchError::Corrupt(format!("{} points reloaded, header says {len}", hnsw.get_nb_point())));
        }
        hnsw.set_searching_mode(true);
        Ok(Self { hnsw, dim, len, params })
    }
}

/// The character bigrams of a text after normalisation: lower case, letters and digits only
/// (CJK characters are letters), so "Coca-Cola" and "coca cola" are the same; a one-character
/// text is its single character.
pub fn bigrams(text: &str) -> HashSet<(char, char)> {
    let chars: Vec<char> = text.chars().flat_map(char::to_lowercase).filter(|c| c.is_alphanumeric()).collect();
    match chars.len() {
        0 => HashSet::new(),
        1 => HashSet::from([(chars[0], '\0')]),
        _ => chars.windows(2).map(|w| (w[0], w[1])).collect(),
    }
}

/// Jaccard similarity of two bigram sets (0 when either is empty).
pub fn jaccard(a: &HashSet<(char, char)>, b: &HashSet<(char, char)>) -> f32 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let inter = a.intersection(b).count();
    inter as f32 / (a.len() + b.len() - inter) as f32
}

/// Text similarity of two OCR texts: Jaccard of their normalised character bigrams, in 0..=1.
pub fn text_similarity(a: &str, b: &str) -> f32 {
    jaccard(&bigrams(a), &bigrams(b))
}

/// One catalogue item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogItem {
    /// Its name (the catalogue file name in the CLI).
    pub name: String,
    /// Its OCR text, lines joined by spaces (empty: none read).
    #[serde(default)]
    pub text: String,
}

impl CatalogItem {
    /// The item an index stage's entry describes, with its OCR text, named by file name within
    /// its collection (ingest names images `<collection>/<file>`).
    pub fn from_entry(entry: &Entry) -> Self {
        let name = entry.name.strip_prefix(&format!("{}/", entry.collection)).unwrap_or(&entry.name).to_owned();
        Self { name, text: entry.text.clone().unwrap_or_default() }
    }
}

/// Default weight of the text similarity in the fused score (chosen on `../shared/data/search`,
/// docs/search.md).
pub const DEFAULT_TEXT_WEIGHT: f32 = 0.5;
/// Default number of visual candidates re-ranked.
pub const DEFAULT_CANDIDATES: usize = 50;
/// Catalogues smaller than this are searched exactly: a scan of a few thousand vectors is as
/// fast as the graph and never misses.
pub const DEFAULT_ANN_MIN: usize = 4096;

/// How a query is answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchOptions {
    /// Matches returned.
    pub k: usize,
    /// Visual candidates fetched and re-ranked (at least `k`).
    pub candidates: usize,
    /// Weight of text similarity: score = cosine + weight × Jaccard when both sides have text;
    /// 0 turns re-ranking off.
    pub text_weight: f32,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self { k: 5, candidates: DEFAULT_CANDIDATES, text_weight: DEFAULT_TEXT_WEIGHT }
    }
}

/// A ranked catalogue item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// Position in [`SearchIndex::items`].
    pub index: usize,
    /// The fused score (the visual score when the text was not used).
    pub score: f32,
    /// Cosine similarity of the embeddings.
    pub visual: f32,
    /// Text similarity (0 when either side has no text).
    pub text: f32,
}

/// A catalogue: items, their embeddings, and an ANN graph once it is large enough.
#[derive(Debug)]
pub struct SearchIndex {
    items: Vec<CatalogItem>,
    /// The index stage's entry key of each item (empty outside the service): what a stored
    /// snapshot covers ([`crate::catalog`]).
    entries: Vec<String>,
    grams: Vec<HashSet<(char, char)>>,
    vectors: Vec<f32>,
    dim: usize,
    ann: Option<AnnIndex>,
}

const INDEX_MAGIC: &[u8; 8] = b"SLSRCH01";

#[derive(Serialize, Deserialize)]
struct Header {
    dim: usize,
    items: Vec<CatalogItem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    entries: Vec<String>,
}

impl SearchIndex {
    /// An empty catalogue of `dim`-dimensional vectors.
    pub fn new(dim: usize) -> Self {
        Self { items: Vec::new(), entries: Vec::new(), grams: Vec::new(), vectors: Vec::new(), dim, ann: None }
    }

    /// Adds an item (drops the ANN graph: call [`SearchIndex::build`] again).
    pub fn add(&mut self, item: CatalogItem, vector: &[f32]) -> Result<(), SearchError> {
        self.add_entry(item, vector, String::new())
    }

    /// Adds an item that the index stage's entry `entry` describes.
    pub fn add_entry(&mut self, item: CatalogItem, vector: &[f32], entry: String) -> Result<(), SearchError> {
        if vector.len() != self.dim {
            return Err(SearchError::Dimension { want: self.dim, got: vector.len() });
        }
        self.entries.push(entry);
        self.grams.push(bigrams(&item.text));
        self.items.push(item);
        self.vectors.extend_from_slice(vector);
        self.ann = None;
        Ok(())
    }

    /// Appends every item of `other` (drops the ANN graph: call [`SearchIndex::build`] again).
    pub fn extend_from(&mut self, other: &SearchIndex) -> Result<(), SearchError> {
        for (i, item) in other.items.iter().enumerate() {
            self.add_entry(item.clone(), other.vector(i), other.entries[i].clone())?;
        }
        Ok(())
    }

    /// The vector of item `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Builds the ANN graph when there are at least `ann_min` items; smaller catalogues stay
    /// exact (blocking).
    pub fn build(&mut self, params: AnnParams, ann_min: usize) -> Result<(), SearchError> {
        self.ann = if self.items.len() >= ann_min.max(1) {
            Some(AnnIndex::build(&self.vectors, self.dim, params)?)
        } else {
            None
        };
        Ok(())
    }

    /// The items, in insertion order.
    pub fn items(&self) -> &[CatalogItem] {
        &self.items
    }

    /// The entry key of each item, in insertion order (empty strings outside the service).
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether searches go through the ANN graph.
    pub fn uses_ann(&self) -> bool {
        self.ann.is_some()
    }

    /// The `opts.k` best items for a query embedding and its OCR text (`""` when none), best
    /// first: the `opts.candidates` visually nearest (ANN, or exact for small catalogues), then
    /// re-ranked by cosine + weight × text similarity where both sides have text.
    pub fn search(&self, vector: &[f32], text: &str, opts: &SearchOptions) -> Vec<Match> {
        let n = opts.candidates.max(opts.k);
        let hits = match &self.ann {
            Some(ann) => ann.search(vector, n),
            None => exact_search(&self.vectors, self.dim, vector, n),
        };
        let query = if opts.text_weight > 0.0 { bigrams(text) } else { HashSet::new() };
        let mut out: Vec<Match> = hits
            .into_iter()
            .map(|h| {
                let t = jaccard(&query, &self.grams[h.index]);
                Match { index: h.index, score: h.score + opts.text_weight * t, visual: h.score, text: t }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        out.truncate(opts.k);
        out
    }

    /// The index as one blob: magic, a JSON header (dimension, items), the vectors (LE f32), and
    /// the ANN graph when there is one.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SearchError> {
        let entries = if self.entries.iter().all(String::is_empty) { Vec::new() } else { self.entries.clone() };
        let header = serde_json::to_vec(&Header { dim: self.dim, items: self.items.clone(), entries })
            .map_err(|e| SearchError::Corrupt(format!("encode header: {e}")))?;
        let ann = self.ann.as_ref().map(AnnIndex::to_bytes).transpose()?.unwrap_or_default();
        let mut out = Vec::with_capacity(32 + header.len() + self.vectors.len() * 4 + ann.len());
        out.extend_from_slice(INDEX_MAGIC);
        put_section(&mut out, &header);
        put_u64(&mut out, self.vectors.len());
        out.extend(self.vectors.iter().flat_map(|x| x.to_le_bytes()));
        put_section(&mut out, &ann);
        Ok(out)
    }

    /// Loads an index written by [`SearchIndex::to_bytes`].
    pub fn from_bytes(mut bytes: &[u8]) -> Result<Self, SearchError> {
        let b = &mut bytes;
        take_magic(b, INDEX_MAGIC, "a search index")?;
        let header: Header = serde_json::from_slice(take_section(b, "header")?)
            .map_err(|e| SearchError::Corrupt(format!("decode header: {e}")))?;
        let n = take_len(b, "vector count")?;
        let raw = take(b, n.checked_mul(4).ok_or_else(|| SearchError::Corrupt("vector count".into()))?, "vectors")?;
        let vectors: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if header.dim == 0 || vectors.len() != header.dim * header.items.len() {
            return Err(SearchError::Corrupt(format!(
                "{} floats for {} items of dimension {}",
                vectors.len(),
                header.items.len(),
                header.dim
            )));
        }
        let graph = take_section(b, "graph")?;
        let ann = if graph.is_empty() { None } else { Some(AnnIndex::from_bytes(graph)?) };
        if ann.as_ref().is_some_and(|a| a.len() != header.items.len() || a.dim != header.dim) {
            return Err(SearchError::Corrupt("graph does not match the items".to_owned()));
        }
        let entries = match header.entries.len() {
            0 => vec![String::new(); header.items.len()],
            n if n == header.items.len() => header.entries,
            n => return Err(SearchError::Corrupt(format!("{n} entry keys for {} items", header.items.len()))),
        };
        let grams = header.items.iter().map(|i| bigrams(&i.text)).collect();
        Ok(Self { items: header.items, entries, grams, vectors, dim: header.dim, ann })
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn normalise(v: &mut [f32]) {
        let n = dot(v, v).sqrt();
        v.iter_mut().for_each(|x| *x /= n);
    }

    /// `clusters` random centres of dimension `dim`.
    fn centres(clusters: usize, dim: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..clusters * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// `n` unit vectors around `centres`: structured like real embeddings (on isotropic noise,
    /// or for queries far from every point, nearest neighbours are near ties and meaningless).
    fn clustered(n: usize, centres: &[f32], dim: usize, rng: &mut StdRng) -> Vec<f32> {
        let clusters = centres.len() / dim;
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let c = rng.random_range(0..clusters);
            let mut v: Vec<f32> =
                centres[c * dim..(c + 1) * dim].iter().map(|x| x + rng.random_range(-0.5f32..0.5)).collect();
            normalise(&mut v);
            out.extend(v);
        }
        out
    }

    #[test]
    fn dot_matches_a_plain_sum() {
        let a: Vec<f32> = (0..1283).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..1283).map(|i| (i as f32 * 0.11).cos()).collect();
        let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        assert!((f64::from(dot(&a, &b)) - plain).abs() < 1e-3, "{} vs {plain}", dot(&a, &b));
    }

    #[test]
    fn exact_search_returns_the_best_first() {
        let vectors = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8, -1.0, 0.0];
        let hits = exact_search(&vectors, 2, &[0.8, 0.6], 3);
        assert_eq!(hits.iter().map(|h| h.index).collect::<Vec<_>>(), [2, 0, 1]);
        assert!((hits[0].score - 0.96).abs() < 1e-6);
        assert!(exact_search(&vectors, 2, &[1.0], 3).is_empty(), "wrong dimension");
    }

    #[test]
    fn ann_recall_at_10_against_exact_search_is_high() {
        let mut rng = StdRng::seed_from_u64(7);
        let (dim, n) = (64, 4000);
        let c = centres(40, dim, &mut rng);
        let vectors = clustered(n, &c, dim, &mut rng);
        let queries = clustered(100, &c, dim, &mut rng);
        let ann = AnnIndex::build(&vectors, dim, AnnParams::default()).expect("build");
        assert_eq!(ann.len(), n);
        let (mut found, mut total) = (0, 0);
        for q in queries.chunks_exact(dim) {
            let truth: HashSet<usize> = exact_search(&vectors, dim, q, 10).iter().map(|h| h.index).collect();
            let got = ann.search(q, 10);
            assert_eq!(got.len(), 10);
            assert!(got.windows(2).all(|w| w[0].score >= w[1].score), "best first");
            found += got.iter().filter(|h| truth.contains(&h.index)).count();
            total += truth.len();
        }
        let recall = found as f64 / total as f64;
        assert!(recall >= 0.98, "recall@10 {recall}");
    }

    #[test]
    fn an_ann_index_survives_serialisation() {
        let mut rng = StdRng::seed_from_u64(11);
        let dim = 32;
        let vectors = clustered(1500, &centres(10, dim, &mut rng), dim, &mut rng);
        let ann = AnnIndex::build(&vectors, dim, AnnParams::default()).expect("build");
        let bytes = ann.to_bytes().expect("to bytes");
        let back = AnnIndex::from_bytes(&bytes).expect("from bytes");
        assert_eq!((back.len(), back.params()), (ann.len(), ann.params()));
        for q in vectors.chunks_exact(dim).take(20) {
            assert_eq!(back.search(q, 5), ann.search(q, 5));
        }
        assert!(matches!(AnnIndex::from_bytes(&bytes[..bytes.len() / 2]), Err(SearchError::Corrupt(_))));
        assert!(matches!(AnnIndex::from_bytes(b"garbage!"), Err(SearchError::Corrupt(_))));
    }

    #[test]
    fn text_similarity_ignores_case_spacing_and_punctuation() {
        assert_eq!(text_similarity("Coca-Cola", "coca cola"), 1.0);
        assert_eq!(text_similarity("Tropicana", "Melon"), 0.0);
        assert_eq!(text_similarity("", "Alpro"), 0.0);
        assert_eq!(text_similarity("农夫山泉", "农夫山泉 550ml"), 3.0 / 8.0);
        let partial = text_similarity("Alpro soya", "ALPRO Soya drink");
        assert!(partial > 0.4 && partial < 1.0, "{partial}");
    }

    fn catalogue() -> SearchIndex {
        let mut index = SearchIndex::new(2);
        let items = [("alpro.jpg", "ALPRO soya"), ("tropicana.jpg", "Tropicana apple"), ("melon.jpg", "")];
        let vectors = [[1.0, 0.0], [0.995, 0.0998], [0.0, 1.0]];
        for ((name, text), v) in items.iter().zip(vectors) {
            index.add(CatalogItem { name: (*name).into(), text: (*text).into() }, &v).expect("add");
        }
        index
    }

    #[test]
    fn text_reranks_visually_close_items_only_when_both_have_text() {
        let index = catalogue();
        let opts = SearchOptions { k: 3, ..SearchOptions::default() };
        let q = [0.999, 0.0447];
        let names = |m: &[Match]| m.iter().map(|m| index.items()[m.index].name.clone()).collect::<Vec<_>>();
        // Visually alpro is nearest; the query's text names tropicana.
        assert_eq!(names(&index.search(&q, "", &opts))[0], "alpro.jpg");
        let fused = index.search(&q, "tropicana APPLE", &opts);
        assert_eq!(names(&fused), ["tropicana.jpg", "alpro.jpg", "melon.jpg"]);
        assert!(fused[0].text > 0.9 && fused[0].score > fused[0].visual);
        let off = index.search(&q, "tropicana apple", &SearchOptions { text_weight: 0.0, ..opts });
        assert_eq!(names(&off)[0], "alpro.jpg", "weight 0 is visual only");
        // An item without text is neither boosted nor penalised.
        assert_eq!(fused[2].score, fused[2].visual);
        assert_eq!(index.search(&q, "x", &SearchOptions { k: 1, ..opts }).len(), 1);
    }

    #[test]
    fn a_catalogue_can_be_made_from_the_index_stages_collection() {
        let entry = |item: u64| crate::Entry {
            job_id: uuid::Uuid::from_u128(1),
            item,
            collection: "c".into(),
            name: format!("c/{item}.jpg"),
            image_key: String::new(),
            embedding_key: String::new(),
            label: "product".into(),
            cluster: None,
            text: (item == 1).then(|| "Alpro soya".to_owned()),
        };
        let mut index = SearchIndex::new(2);
        for (i, v) in [[1.0, 0.0], [0.0, 1.0]].iter().enumerate() {
            index.add(CatalogItem::from_entry(&entry(i as u64)), v).expect("add");
        }
        assert_eq!(index.items().iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["0.jpg", "1.jpg"]);
        assert_eq!(index.items()[1].text, "Alpro soya", "entries carry their OCR text into the catalogue");
        let best = index.search(&[0.0, 1.0], "", &SearchOptions { k: 1, ..Default::default() });
        assert_eq!((best[0].index, best[0].score), (1, 1.0));
    }

    #[test]
    fn a_catalogue_round_trips_through_bytes_with_and_without_a_graph() {
        let mut rng = StdRng::seed_from_u64(3);
        let dim = 16;
        let vectors = clustered(300, &centres(6, dim, &mut rng), dim, &mut rng);
        let mut index = SearchIndex::new(dim);
        for (i, v) in vectors.chunks_exact(dim).enumerate() {
            index.add(CatalogItem { name: format!("{i}.jpg"), text: format!("item {}", i % 7) }, v).expect("add");
        }
        let wrong = index.add(CatalogItem { name: "x".into(), text: String::new() }, &[1.0]);
        assert!(matches!(wrong, Err(SearchError::Dimension { want: 16, got: 1 })));
        let q = &vectors[..dim];
        let opts = SearchOptions { k: 5, ..Default::default() };
        for ann_min in [usize::MAX, 100] {
            index.build(AnnParams::default(), ann_min).expect("build");
            assert_eq!(index.uses_ann(), ann_min == 100);
            let back = SearchIndex::from_bytes(&index.to_bytes().expect("bytes")).expect("load");
            assert_eq!(back.items(), index.items());
            assert_eq!(back.uses_ann(), index.uses_ann());
            assert_eq!(back.search(q, "item 0", &opts), index.search(q, "item 0", &opts));
            assert_eq!(index.items()[index.search(q, "", &opts)[0].index].name, "0.jpg", "itself first");
        }
    }
}
