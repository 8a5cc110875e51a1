//! `custody completions SHELL` and `custody man`: generated from the same clap definitions as
//! the commands, so they cannot drift from them.

use anyhow::Result;
use clap::CommandFactory;
use serde_json::json;

use super::Report;
use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::error;

pub fn completions(args: CompletionsArgs) -> Result<Report> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "custody", &mut out);
    let json = json!({"schema_version": 1, "command": "completions", "shell": args.shell.to_string(),
        "script": String::from_utf8_lossy(&out)});
    Ok(Report { raw: Some(out), ..Report::ok(String::new(), json) })
}

pub fn man(args: ManArgs) -> Result<Report> {
    let cmd = Cli::command();
    match &args.out {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| error::environment(format!("cannot render: {e}")))?;
            let json = json!({"schema_version": 1, "command": "man", "page": String::from_utf8_lossy(&out)});
            Ok(Report { raw: Some(out), ..Report::ok(String::new(), json) })
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| error::environment(format!("cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, dir)
                .map_err(|e| error::environment(format!("cannot write the pages into {}: {e}", dir.display())))?;
            let mut pages: Vec<String> = std::fs::read_dir(dir)
                .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            pages.retain(|p| p.starts_with("custody") && p.ends_with(".1"));
            pages.sort();
            let text = format!("Wrote {} manual pages into {}", pages.len(), dir.display());
            Ok(Report::ok(
                text,
                json!({"schema_version": 1, "command": "man", "out": crate::fsutil::path_text(dir), "pages": pages}),
            ))
        }
    }
}
