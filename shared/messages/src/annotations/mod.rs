//! The typed contract between stages: one struct per stage output, stored on the task under
//! the stage's name (its [`Annotation::KEY`]).
//!
//! On the wire the annotations stay a map from name to JSON value
//! ([`ImageTask::annotations`](crate::ImageTask::annotations)), so a newer stage can add a
//! field or an annotation an older one does not know. Every reader and writer goes through
//! [`ImageTask::annotation`](crate::ImageTask::annotation) and
//! [`ImageTask::set_annotation`](crate::ImageTask::set_annotation) with these types: unknown
//! fields are ignored on read, and golden fixtures (`tests/golden/annotations/`) pin the JSON
//! each type writes, so a change to one stage's output shows up as a diff before it breaks the
//! next stage.

mod dedup;
mod detect;
mod embed;
mod face;
mod ocr;
mod search;
mod store;

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

pub use dedup::{DedupOut, DuplicateKind, Evidence};
pub use detect::{ClassScore, DetectOut, FaceBox, FaceSummary, Flag, Region, RegionKind, SaliencyStats, TextLines};
pub use embed::{EmbedOut, EmbedRegion};
pub use face::{FaceJson, FaceOut, Gender};
pub use ocr::{OcrOut, Price, TextLine};
pub use search::{ClusterOut, IndexOut, SearchMatch, SearchOut};
pub use store::{PeopleOut, SegmentIn, StoreOut};

/// The annotations of one image on the wire: stage name → JSON value.
pub type Annotations = BTreeMap<String, serde_json::Value>;

/// A stage's output as stored in the annotations under [`Annotation::KEY`].
pub trait Annotation: Serialize + DeserializeOwned {
    /// The name the value is stored under (the stage name, or `options`).
    const KEY: &'static str;
}

/// Why an annotation could not be read or written.
#[derive(Debug, Error)]
pub enum AnnotationError {
    /// The annotation is there but does not have the shape of its type.
    #[error("malformed {key:?} annotation: {source}")]
    Malformed {
        /// The annotation's name.
        key: &'static str,
        /// What did not fit.
        #[source]
        source: serde_json::Error,
    },
    /// The value could not be turned into JSON (a map with non-string keys, a failing
    /// `Serialize` implementation).
    #[error("encode {key:?} annotation: {source}")]
    Encode {
        /// The annotation's name.
        key: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Reads annotation `A` from `annotations`: `Ok(None)` when it is absent.
pub fn read<A: Annotation>(annotations: &Annotations) -> Result<Option<A>, AnnotationError> {
    let Some(value) = annotations.get(A::KEY) else { return Ok(None) };
    A::deserialize(value).map(Some).map_err(|source| AnnotationError::Malformed { key: A::KEY, source })
}

/// Stores `value` in `annotations` under `A::KEY`, replacing what was there.
pub fn write<A: Annotation>(annotations: &mut Annotations, value: &A) -> Result<(), AnnotationError> {
    let json = serde_json::to_value(value).map_err(|source| AnnotationError::Encode { key: A::KEY, source })?;
    annotations.insert(A::KEY.to_owned(), json);
    Ok(())
}

impl crate::ImageTask {
    /// This image's annotation `A`: `Ok(None)` when no stage wrote it, an error when it is
    /// there but malformed.
    pub fn annotation<A: Annotation>(&self) -> Result<Option<A>, AnnotationError> {
        read(&self.annotations)
    }

    /// Stores `value` as this image's annotation `A::KEY`.
    pub fn set_annotation<A: Annotation>(&mut self, value: &A) -> Result<(), AnnotationError> {
        write(&mut self.annotations, value)
    }
}

impl crate::ItemRecord {
    /// This record's annotation `A`: `Ok(None)` when no stage wrote it, an error when it is
    /// there but malformed.
    pub fn annotation<A: Annotation>(&self) -> Result<Option<A>, AnnotationError> {
        read(&self.annotations)
    }

    /// Stores `value` as this record's annotation `A::KEY`.
    pub fn set_annotation<A: Annotation>(&mut self, value: &A) -> Result<(), AnnotationError> {
        write(&mut self.annotations, value)
    }
}
