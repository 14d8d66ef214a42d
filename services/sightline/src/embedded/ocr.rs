//! `sightline ocr FILE...`: the text lines and price-tag fields of local images (the OCR
//! stage's engine, in this process).

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use sightline_ocr::{OcrArgs, OcrEngine, OcrOutput};

/// One file's result.
#[derive(Serialize)]
struct FileText {
    file: String,
    #[serde(flatten)]
    output: OcrOutput,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs the command: one entry per file, in the order given (folders expanded, sorted). Exit
/// code 1 when a file could not be read or decoded (its entry carries `error`); the other files
/// are still reported. An image without text has no lines.
pub async fn run(paths: Vec<PathBuf>, args: OcrArgs, json: bool) -> anyhow::Result<i32> {
    let files = crate::walk::image_inputs(paths)?;
    let results: Vec<FileText> = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<FileText>> {
        let engine = OcrEngine::from_env(&args.engine_options(), args.config())
            .context("load the OCR models (run models/fetch.sh and export what it prints)")?;
        let limits = args.limits();
        Ok(files
            .into_iter()
            .map(|path| {
                let name = path.display().to_string();
                let read = std::fs::read(&path).map_err(|e| format!("read: {e}")).and_then(|bytes| {
                    engine
                        .read_bytes(&bytes, path.file_name().and_then(|n| n.to_str()), &limits)
                        .map(|(out, _)| out)
                        .map_err(|e| e.to_string())
                });
                match read {
                    Ok(output) => FileText { file: name, output, error: None },
                    Err(e) => FileText {
                        file: name,
                        output: OcrOutput { lines: Vec::new(), prices: Vec::new(), product: None },
                        error: Some(e),
                    },
                }
            })
            .collect())
    })
    .await
    .context("ocr task")??;
    let failed = results.iter().any(|r| r.error.is_some());
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in &results {
            println!("{}", r.file);
            if let Some(e) = &r.error {
                println!("  error: {e}");
                continue;
            }
            if r.output.lines.is_empty() {
                println!("  (no text)");
            }
            for l in &r.output.lines {
                println!("  {:.3}  {}", l.score, l.text);
            }
            for p in &r.output.prices {
                let extra = [p.label.as_deref(), p.unit.as_deref().map(|_| "per unit"), p.from.then_some("from")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ");
                println!("  price: {} {} {}", p.symbol.as_deref().unwrap_or(""), p.text, extra);
            }
            if let Some(name) = &r.output.product {
                println!("  product: {name}");
            }
        }
    }
    Ok(i32::from(failed))
}
