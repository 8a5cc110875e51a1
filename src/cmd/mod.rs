//! One file per subcommand. Each orchestrates store, ledger and media through the library;
//! none holds SQL or FFmpeg calls of its own.

pub mod batch;
pub mod clip;
pub mod detect;
pub mod enhance;
pub mod export;
pub mod hash;
pub mod ingest;
pub mod init;
pub mod log;
pub mod manual;
pub mod media;
pub mod package;
pub mod push;
pub mod redact;
pub mod redo;
pub mod review;
pub mod rewrap;
pub mod show;
pub mod still;
pub mod transfer;
pub mod verify;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::cli::{Command, Global};
use crate::error::Exit;
use crate::ledger::{Actor, Head};
use crate::store::Store;

/// What every command is handed: the resolved global options.
pub struct Ctx {
    pub store: Option<PathBuf>,
    pub examiner: Option<String>,
    pub json: bool,
    pub lock_timeout: Duration,
    /// Set while a batch job runs a step: recorded with the step's event.
    pub job: Option<serde_json::Value>,
    /// The agency `init` records when `--agency` is not given (from the config file).
    pub agency: Option<String>,
    /// `custody redo` runs a command: it records nothing and hands its outputs back.
    pub rehearse: bool,
}

/// The config file: `$CUSTODY_CONFIG`, else `$XDG_CONFIG_HOME/custody/config.yaml`, else
/// `~/.config/custody/config.yaml`. Every key is optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub examiner: Option<String>,
    pub agency: Option<String>,
    pub store: Option<PathBuf>,
    /// This workstation's login to the agency ledger (as `CUSTODY_LEDGER`, which wins).
    pub ledger: Option<String>,
    /// This workstation's bucket and prefix of an agency store (as `CUSTODY_OBJECTS`, which wins).
    pub objects: Option<String>,
}

impl Config {
    pub fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("CUSTODY_CONFIG") {
            return Some(PathBuf::from(p));
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("custody").join("config.yaml"))
    }

    pub fn load() -> Result<Config> {
        let Some(path) = Config::path() else { return Ok(Config::default()) };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(crate::error::input(format!("cannot read the config file {}: {e}", path.display()))),
        };
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_yaml_ng::from_str(&text).map_err(|e| {
            let at = e.location().map(|l| format!(" at line {} column {}", l.line(), l.column())).unwrap_or_default();
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            crate::error::input(format!(
                "config file {}{at}: {msg} (keys: examiner, agency, store, ledger, objects)",
                path.display()
            ))
        })
    }
}

impl Ctx {
    /// The global options, completed from the config file where neither the command line nor
    /// the environment gave them (command line > environment > file).
    pub fn new(global: &Global) -> Result<Ctx> {
        let config = Config::load()?;
        // What the store layer reads as CUSTODY_LEDGER and CUSTODY_OBJECTS when the
        // environment does not set them.
        crate::store::set_workstation_defaults(config.ledger.clone(), config.objects.clone());
        Ok(Ctx {
            store: global.store.clone().or(config.store),
            examiner: global.examiner.clone().filter(|s| !s.trim().is_empty()).or(config.examiner),
            json: global.json,
            lock_timeout: Duration::from_secs(global.lock_timeout),
            job: None,
            agency: config.agency,
            rehearse: false,
        })
    }

    pub fn store(&self) -> Result<Store> {
        let store = Store::locate(self.store.as_deref(), self.lock_timeout)?;
        Ok(if self.rehearse { store.rehearsing() } else { store })
    }

    /// Who is acting, where, with which tools.
    pub fn actor(&self) -> Actor {
        let os_user = crate::fsutil::os_user();
        let mut tools = crate::media::library_versions();
        tools.insert("custody".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
        tools.insert("sqlite".to_owned(), rusqlite::version().to_owned());
        Actor {
            examiner: self.examiner.clone().unwrap_or_else(|| os_user.clone()),
            os_user,
            host: host_name(),
            tools,
            job: self.job.clone(),
        }
    }
}

/// What a command hands back to `main` to print.
pub struct Report {
    pub text: String,
    pub json: Value,
    pub exit: Exit,
    /// Output that must be written byte for byte (checksum lines with non-UTF-8 names).
    pub raw: Option<Vec<u8>>,
}

impl Report {
    pub fn ok(text: String, json: Value) -> Report {
        Report { text, json, exit: Exit::Success, raw: None }
    }
}

/// Run the chosen command.
pub fn run(command: Command, ctx: &Ctx) -> Result<Report> {
    let outcome = dispatch(command, ctx);
    // What FFmpeg said while reading, whatever the outcome: never raw, never lost.
    for line in crate::media::log::take() {
        eprintln!("warning: {line}");
    }
    outcome
}

fn dispatch(command: Command, ctx: &Ctx) -> Result<Report> {
    check_outputs(&command)?;
    match command {
        Command::Init(args) => init::run(args, ctx),
        Command::Ingest(args) => ingest::run(args, ctx),
        Command::Hash(args) => hash::run(args, ctx),
        Command::Verify(args) => verify::run(args, ctx),
        Command::Log(args) => log::run(args, ctx),
        Command::Show(args) => show::run(args, ctx),
        Command::Transfer(args) => transfer::run(args, ctx),
        Command::Push(args) => push::run(args, ctx),
        Command::Export(args) => export::run(args, ctx),
        Command::Still(args) => still::run(args, ctx),
        Command::Clip(args) => clip::run(args, ctx),
        Command::Rewrap(args) => rewrap::run(args, ctx),
        Command::Redact(args) => redact::run(args, ctx),
        Command::Enhance(args) => enhance::run(args, ctx),
        Command::Redo(args) => redo::run(args, ctx),
        Command::Detect(args) => detect::run(args, ctx),
        Command::Review(args) => review::run(args, ctx),
        Command::Package(args) => package::run(args, ctx),
        Command::Media(args) => media::run(args, ctx),
        Command::Batch(args) => batch::run(args, ctx),
        Command::Completions(args) => manual::completions(args),
        Command::Man(args) => manual::man(args),
    }
}

/// Check every `--out` (and `hash --sums`) before the command does any work or records
/// anything: a copy that cannot be made after the event is recorded would leave the user a
/// recorded item and an error, and a retry would record it twice.
fn check_outputs(command: &Command) -> Result<()> {
    let dir = |d: &Option<PathBuf>, flag: &str| d.as_deref().map_or(Ok(()), |d| usable_dir(d, flag));
    match command {
        Command::Still(a) => dir(&a.out, "--out"),
        Command::Clip(a) => dir(&a.out, "--out"),
        Command::Rewrap(a) => dir(&a.out, "--out"),
        Command::Redact(a) => dir(&a.out, "--out"),
        Command::Enhance(a) => dir(&a.out, "--out"),
        Command::Redo(a) => dir(&a.out, "--out"),
        Command::Detect(a) => dir(&a.out, "--out"),
        Command::Review(a) => dir(&a.out, "--out"),
        Command::Man(a) => dir(&a.out, "--out"),
        Command::Hash(a) => dir(&a.sums, "--sums"),
        Command::Package(a) => usable_file(&a.out),
        Command::Export(a) => a.out.as_deref().map_or(Ok(()), usable_file),
        _ => Ok(()),
    }
}

/// A directory the outputs can be copied into: one this process may write, or one it can
/// create (its nearest existing ancestor is a writable directory). Nothing is created here,
/// so a command that fails later leaves nothing behind.
fn usable_dir(dir: &Path, flag: &str) -> Result<()> {
    let mut at = dir;
    loop {
        match std::fs::metadata(at) {
            Ok(m) if m.is_dir() => break,
            Ok(_) if at == dir => {
                return Err(crate::error::input(format!(
                    "{flag} {} is a file, not a directory; give a directory for the copies. Nothing was done",
                    dir.display()
                )));
            }
            Ok(_) => {
                return Err(crate::error::input(format!(
                    "{flag} {} cannot be created: {} is a file, not a directory. Nothing was done",
                    dir.display(),
                    at.display()
                )));
            }
            Err(_) => match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p,
                _ => {
                    at = Path::new(".");
                    break;
                }
            },
        }
    }
    crate::fsutil::writable(at).map_err(|e| {
        let why = if e.raw_os_error() == Some(libc::EROFS) {
            "its filesystem is read-only".to_owned()
        } else {
            e.to_string()
        };
        if at == dir {
            crate::error::environment(format!("cannot write into {flag} {}: {why}. Nothing was done", dir.display()))
        } else {
            crate::error::environment(format!(
                "{flag} {} cannot be created: cannot write into {} ({why}). Nothing was done",
                dir.display(),
                at.display()
            ))
        }
    })
}

/// A file to write: not a directory, in an existing directory this process may write.
fn usable_file(file: &Path) -> Result<()> {
    if file.is_dir() {
        return Err(crate::error::input(format!(
            "--out {} is a directory; give the name of the file to write. Nothing was done",
            file.display()
        )));
    }
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(crate::error::environment(format!(
            "--out {}: the directory {} does not exist; create it first. Nothing was done",
            file.display(),
            parent.display()
        )));
    }
    crate::fsutil::writable(parent).map_err(|e| {
        let why = if e.raw_os_error() == Some(libc::EROFS) {
            "its filesystem is read-only".to_owned()
        } else {
            e.to_string()
        };
        crate::error::environment(format!(
            "--out {}: cannot write into {} ({why}). Nothing was done",
            file.display(),
            parent.display()
        ))
    })
}

/// A byte progress bar on stderr, drawn only when stderr is a terminal.
pub fn byte_progress(total: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    bar.set_style(
        ProgressStyle::with_template("{msg:12} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_owned());
    bar
}

/// A frame progress bar on stderr with an ETA, drawn only when stderr is a terminal.
pub fn frame_progress(total: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    bar.set_style(
        ProgressStyle::with_template("{msg:12} [{bar:32}] {pos}/{len} frames, eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_owned());
    bar
}

/// The line every changing command ends with: the new head, short (`ledger head 14:6779aed9…`).
/// `custody log` ends with it in full, and `--json` gives it whole.
pub fn head_line(head: &Head) -> String {
    format!("ledger head {}:{}…", head.seq, head.hash.get(..8).unwrap_or(&head.hash))
}

/// The head in full with the advice to write it down, where that matters: after `init` (the
/// store's first head) and `package` (the head a recipient can check the bundle against).
pub fn head_to_keep(head: &Head) -> String {
    format!(
        "ledger head: {head}\n  keep this head outside the store: `custody verify --against` it detects a ledger cut \
         short or rewritten later"
    )
}

/// Sizes as people read them.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Copy a recorded object out of the store into `dir`, named after its item's file name.
/// With `--out DIR`: copy the output there and return the report line saying so (indented by
/// `indent`); without it, an empty line.
pub fn copy_out_line(
    store: &crate::store::Store,
    out: &crate::ledger::FileRef,
    dir: Option<&std::path::Path>,
    indent: &str,
) -> Result<String> {
    Ok(match dir {
        Some(dir) => format!("{indent}copied to {}\n", copy_out(store, out, dir)?.display()),
        None => String::new(),
    })
}

/// The copy is made after the event is recorded ([`check_outputs`] checked the directory
/// before): when it fails all the same, the error says the item is recorded and how to copy
/// it from the store, so nobody runs the command again and records it twice.
pub fn copy_out(store: &crate::store::Store, out: &crate::ledger::FileRef, dir: &std::path::Path) -> Result<PathBuf> {
    let name = out.name.as_deref().unwrap_or("output").rsplit('/').next().unwrap_or("output");
    let file = dir.join(name);
    let object = store.object_path(&out.sha256);
    let copied = std::fs::create_dir_all(dir).and_then(|_| match store.bucket() {
        None => std::fs::copy(&object, &file),
        Some(_) => {
            let mut from = store.open_object(&out.sha256).map_err(|e| std::io::Error::other(format!("{e:#}")))?;
            let mut to = std::fs::File::create(&file)?;
            let n = std::io::copy(&mut from, &mut to)?;
            to.sync_all()?;
            Ok(n)
        }
    });
    copied.map_err(|e| {
        let why = if crate::error::is_disk_full(&e) { "the disk is full".to_owned() } else { e.to_string() };
        // How to get it by hand: from the store's directory, or from its bucket with any S3 client.
        let from = match store.bucket() {
            Some(b) => format!("aws s3 cp {} {}", b.shown(&b.object_key(&out.sha256)), shell_word(&file)),
            None => format!("cp {} {}", shell_word(&object), shell_word(&file)),
        };
        crate::error::environment(format!(
            "{} ({}) WAS recorded, but it could not be copied to {}: {why}. Do not run the command again (that \
             would record it a second time); copy it from the store: {from}",
            out.item.as_deref().unwrap_or("the output"),
            out.name.as_deref().unwrap_or(name),
            file.display(),
        ))
    })?;
    Ok(file)
}

/// A path as one word a shell reads back as the same path (quoted when it needs to be).
fn shell_word(path: &Path) -> String {
    let text = crate::fsutil::path_text(path);
    if text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:,@%".contains(&b)) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
