//! Job options the stages read (docs/messages.md): a job's `options` reach every task as
//! `annotations.options`, copied by ingest.

use crate::ImageTask;

/// The catalogue a search query searches; its presence makes a task a query.
pub const SEARCH_CATALOG: &str = "search.catalog";
/// `logo` makes a search (or a catalogue upload) a logo search: detect proposes regions, embed
/// embeds them (queries) or embeds the logo whole (catalogue items), index ranks brands.
pub const SEARCH_MODE: &str = "search.mode";

/// The string value of job option `key` on `task`, if set.
pub fn option<'a>(task: &'a ImageTask, key: &str) -> Option<&'a str> {
    task.annotations.get("options")?.get(key)?.as_str()
}

/// A task's role in a logo search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoMode {
    /// A logo image added to a logo catalogue.
    Item,
    /// A photo searched for logos.
    Query,
}

/// The logo-search role of `task`: `search.mode=logo` with `search.catalog` is a query, without
/// it a catalogue item; `None` for any other task.
pub fn logo_mode(task: &ImageTask) -> Option<LogoMode> {
    if option(task, SEARCH_MODE)? != "logo" {
        return None;
    }
    Some(if option(task, SEARCH_CATALOG).is_some() { LogoMode::Query } else { LogoMode::Item })
}
