//! The `custody` binary: parse arguments, run the command, print its report, exit with the
//! documented code (0 ok, 1 verification failed, 2 usage or input error, 3 environment error).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use custody::cli::Cli;
use custody::cmd::{self, Ctx};
use custody::error::{self, Exit};

fn main() -> ExitCode {
    // First, before any thread exists: Ctrl-C removes the staging and says nothing was recorded.
    custody::interrupt::install();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Scripts asked for JSON get a JSON error document for a bad command line too.
            if e.use_stderr() && std::env::args_os().any(|a| a == "--json") {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
                let doc = serde_json::json!({"schema_version": 1, "error": first, "exit_code": Exit::Input.code()});
                print_doc(&doc);
            }
            return ExitCode::from(if e.use_stderr() { Exit::Input.code() } else { 0 });
        }
    };
    custody::interrupt::set_json(cli.global.json);
    let ctx = match Ctx::new(&cli.global) {
        Ok(ctx) => ctx,
        Err(err) => return failed(&err, cli.global.json),
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
        Err(err) => failed(&err, ctx.json),
    }
}

/// Report a failed command: the error document on stdout with `--json`, the message on stderr,
/// the exit code its error decides. A closed stdout (`custody export | head`) is no failure:
/// the reader has what it wanted, so it ends quietly with 0, as `cat` and ripgrep do.
fn failed(err: &anyhow::Error, json: bool) -> ExitCode {
    let closed_pipe = err
        .chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe));
    if closed_pipe {
        return ExitCode::SUCCESS;
    }
    let exit = error::exit_for(err);
    if json {
        print_doc(&serde_json::json!({"schema_version": 1, "error": format!("{err:#}"), "exit_code": exit.code()}));
    }
    eprintln!("custody: error: {err:#}");
    ExitCode::from(exit.code())
}

/// Print a JSON document on stdout; a closed stdout is not worth a panic.
fn print_doc(doc: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string_pretty(doc).expect("errors serialize")).and_then(|_| out.flush());
}
