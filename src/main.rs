//! The `custody` binary: parse arguments, run the command, print its report, exit with the
//! documented code (0 ok, 1 verification failed, 2 usage or input error, 3 environment error).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use custody::cli::Cli;
use custody::cmd::{self, Ctx};
use custody::error::{self, Exit};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Scripts asked for JSON get a JSON error document for a bad command line too.
            if e.use_stderr() && std::env::args_os().any(|a| a == "--json") {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
                let doc = serde_json::json!({"schema_version": 1, "error": first, "exit_code": Exit::Input.code()});
                println!("{}", serde_json::to_string_pretty(&doc).expect("errors serialize"));
            }
            return ExitCode::from(if e.use_stderr() { Exit::Input.code() } else { 0 });
        }
    };
    let ctx = match Ctx::new(&cli.global) {
        Ok(ctx) => ctx,
        Err(err) => {
            let exit = error::exit_for(&err);
            if cli.global.json {
                let doc =
                    serde_json::json!({"schema_version": 1, "error": format!("{err:#}"), "exit_code": exit.code()});
                println!("{}", serde_json::to_string_pretty(&doc).expect("errors serialize"));
            }
            eprintln!("custody: error: {err:#}");
            return ExitCode::from(exit.code());
        }
    };
    match cmd::run(cli.command, &ctx) {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            let written = if ctx.json {
                if report.json.is_null() {
                    Ok(())
                } else {
                    writeln!(out, "{}", serde_json::to_string_pretty(&report.json).expect("reports serialize"))
                }
            } else if let Some(raw) = &report.raw {
                out.write_all(raw)
            } else if report.text.is_empty() {
                Ok(())
            } else {
                writeln!(out, "{}", report.text.trim_end())
            };
            match written.and_then(|_| out.flush()) {
                // A closed pipe (`custody log | head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("custody: cannot write output: {e}");
                    ExitCode::from(Exit::Environment.code())
                }
                _ => ExitCode::from(report.exit.code()),
            }
        }
        Err(err) => {
            let exit = error::exit_for(&err);
            if ctx.json {
                let doc =
                    serde_json::json!({"schema_version": 1, "error": format!("{err:#}"), "exit_code": exit.code()});
                println!("{}", serde_json::to_string_pretty(&doc).expect("errors serialize"));
            }
            eprintln!("custody: error: {err:#}");
            ExitCode::from(exit.code())
        }
    }
}
