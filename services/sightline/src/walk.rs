//! The one folder walker: every command and evaluation that reads a folder of images lists it
//! here, so that they agree on order, names and what is skipped.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Which entries a walk takes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Walk {
    /// Take entries whose name starts with `.` (skipped by default: `.DS_Store`, `.git`).
    pub hidden: bool,
    /// Follow symbolic links to folders and files (by default a link is skipped).
    pub follow_links: bool,
}

/// One file found by a walk.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    /// Its name relative to the walked folder, `/`-separated (the sort key).
    pub name: String,
    /// Its path (the walked folder joined with `name`).
    pub path: PathBuf,
}

/// Extensions of the image files taken from folders by `sightline face` and `sightline ocr`
/// (files named explicitly are always read).
pub const IMAGE_EXTENSIONS: [&str; 11] =
    ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "pnm", "ppm", "pgm"];

impl Walk {
    /// Every file under `dir`, recursively, sorted by name.
    pub fn files(self, dir: &Path) -> anyhow::Result<Vec<Found>> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).with_context(|| format!("read folder {}", d.display()))? {
                let entry = entry.with_context(|| format!("read folder {}", d.display()))?;
                let path = entry.path();
                if !self.hidden && entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let (is_dir, is_file) = if self.follow_links {
                    // A link that leads nowhere is still listed: reading it says why it fails.
                    let dir = path.is_dir();
                    (dir, !dir)
                } else {
                    let kind = entry.file_type().with_context(|| format!("read {}", path.display()))?;
                    (kind.is_dir(), kind.is_file())
                };
                if is_dir {
                    stack.push(path);
                } else if is_file {
                    let rel = path.strip_prefix(dir).unwrap_or(&path);
                    let name: Vec<String> =
                        rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                    out.push(Found { name: name.join("/"), path });
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Whether `path` ends in one of `extensions` (lower case), in any case.
pub fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e.to_ascii_lowercase().as_str()))
}

/// The files of a command that takes FILE... : folders expanded (recursively, sorted, image
/// extensions only), files kept as given. An error when nothing is left.
pub fn image_inputs(paths: Vec<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(
                Walk::default()
                    .files(&p)?
                    .into_iter()
                    .map(|f| f.path)
                    .filter(|path| has_extension(path, &IMAGE_EXTENSIONS)),
            );
        } else {
            out.push(p);
        }
    }
    if out.is_empty() {
        bail!("no image files given");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, b"x").expect("write");
    }

    #[test]
    fn files_are_sorted_by_slash_separated_name_and_hidden_ones_are_optional() {
        let dir = tempfile::tempdir().expect("tmp");
        for f in ["b/2.jpg", "a.txt", "b/1.PNG", ".hidden/x.jpg", "c/.DS_Store"] {
            touch(&dir.path().join(f));
        }
        let names =
            |w: Walk| -> Vec<String> { w.files(dir.path()).expect("walk").into_iter().map(|f| f.name).collect() };
        assert_eq!(names(Walk::default()), ["a.txt", "b/1.PNG", "b/2.jpg"]);
        assert_eq!(
            names(Walk { hidden: true, ..Walk::default() }),
            [".hidden/x.jpg", "a.txt", "b/1.PNG", "b/2.jpg", "c/.DS_Store"]
        );
        let found = Walk::default().files(dir.path()).expect("walk");
        assert_eq!(found[1].path, dir.path().join("b").join("1.PNG"));
    }

    #[test]
    fn image_inputs_keep_named_files_and_take_images_from_folders() {
        let dir = tempfile::tempdir().expect("tmp");
        for f in ["imgs/a.jpg", "imgs/notes.txt", "imgs/sub/b.Tiff"] {
            touch(&dir.path().join(f));
        }
        let named = dir.path().join("imgs/notes.txt");
        let got = image_inputs(vec![dir.path().join("imgs"), named.clone()]).expect("inputs");
        assert_eq!(got, [dir.path().join("imgs/a.jpg"), dir.path().join("imgs/sub/b.Tiff"), named]);
        let empty = tempfile::tempdir().expect("tmp");
        assert!(image_inputs(vec![empty.path().to_path_buf()]).is_err());
    }
}
