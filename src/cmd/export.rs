//! `custody export`: the ledger as JSON Lines, for checking without custody.
//!
//! Each line is `{"event":BODY,"hash":HASH}` where BODY is the stored canonical bytes, copied
//! verbatim (never re-encoded), and HASH its event hash. docs/ledger.md says how to check it.

use std::io::Write;

use anyhow::Result;
use serde_json::json;

use super::{Ctx, Report};
use crate::cli::{ExportArgs, ExportFormat};
use crate::ledger::Ledger;
use crate::store::env_io;

/// Write the export `format` of the ledger.
fn write_format(ledger: &Ledger, format: ExportFormat, out: &mut dyn Write) -> Result<u64> {
    match format {
        ExportFormat::Jsonl => write_jsonl(ledger, out),
        ExportFormat::Case => {
            let mut events = Vec::new();
            ledger.for_each_row(|row| {
                events.push((crate::ledger::parse_body(&row)?, row.hash.clone()));
                Ok(())
            })?;
            // The agency comes from the store's first event.
            let graph = crate::bundle::case::case_graph(&events, None);
            writeln!(out, "{}", serde_json::to_string_pretty(&graph)?)?;
            Ok(events.len() as u64)
        }
        ExportFormat::Hashdeep | ExportFormat::Sha256sum => {
            let items = ledger.items()?;
            if format == ExportFormat::Hashdeep {
                writeln!(out, "%%%% HASHDEEP-1.0\n%%%% size,sha256,filename\n## custody export --format hashdeep\n##")?;
            }
            for row in &items {
                let (_, file) = ledger.item_origin(row)?;
                // Names as CASE/ITEM/NAME, one per line: control characters would break the list.
                let name: String = format!("{}/{}/{}", row.case, row.exhibit, row.name)
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                match format {
                    ExportFormat::Hashdeep => {
                        writeln!(out, "{},{},{}", file.size, file.sha256, name.replace(',', "%2C"))?
                    }
                    _ => writeln!(out, "{}  {name}", file.sha256)?,
                }
            }
            Ok(items.len() as u64)
        }
    }
}

/// Write the whole ledger as JSON Lines.
pub fn write_jsonl(ledger: &Ledger, out: &mut dyn Write) -> Result<u64> {
    let mut n = 0;
    ledger.for_each_row(|row| {
        writeln!(out, "{{\"event\":{},\"hash\":\"{}\"}}", row.body, row.hash)?;
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

pub fn run(args: ExportArgs, ctx: &Ctx) -> Result<Report> {
    let store = ctx.store()?;
    let ledger = store.read_ledger()?;
    let head = ledger.head()?;
    match &args.out {
        Some(path) => {
            let tmp = tempfile::NamedTempFile::new_in(
                path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new(".")),
            )
            .map_err(|e| env_io(e, path, "cannot write"))?;
            let partial = tmp.path().to_owned();
            crate::interrupt::remove_on_interrupt(&partial);
            let mut w = std::io::BufWriter::new(tmp);
            let written = write_format(&ledger, args.format, &mut w).and_then(|n| {
                let tmp = w.into_inner().map_err(|e| env_io(e.into_error(), path, "cannot write"))?;
                tmp.as_file().sync_all().map_err(|e| env_io(e, path, "cannot write"))?;
                tmp.persist(path).map_err(|e| env_io(e.error, path, "cannot write"))?;
                Ok(n)
            });
            crate::interrupt::keep(&partial);
            let n = written?;
            let text = format!(
                "Exported {n} {} to {}{}",
                if matches!(args.format, ExportFormat::Jsonl | ExportFormat::Case) { "events" } else { "items" },
                path.display(),
                head.as_ref().map(|h| format!("\nledger head: {h}")).unwrap_or_default()
            );
            Ok(Report::ok(
                text,
                json!({"schema_version": 1, "command": "export", "events": n, "out": crate::fsutil::path_text(path), "head": head}),
            ))
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            write_format(&ledger, args.format, &mut lock)?;
            Ok(Report::ok(String::new(), json!(null)))
        }
    }
}
