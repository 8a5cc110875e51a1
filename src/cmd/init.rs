//! `custody init`: create a store and record its first event.

use anyhow::Result;
use serde_json::{Map, json};

use super::{Ctx, Report, head_to_keep};
use crate::cli::InitArgs;
use crate::ledger::Draft;
use crate::store::Store;

pub fn run(mut args: InitArgs, ctx: &Ctx) -> Result<Report> {
    if args.agency.is_none() {
        args.agency = ctx.agency.clone();
    }
    let dir = args.dir.clone().unwrap_or_else(|| ".".into());
    let actor = ctx.actor();
    // `--join` alone: the workstation's login from CUSTODY_LEDGER or the config file.
    let join = match args.join.as_deref() {
        Some("") => Some(crate::store::workstation_setting("CUSTODY_LEDGER").ok_or_else(|| {
            crate::error::input(
                "--join needs the agency ledger's URL (postgres://ROLE@HOST/DB): give it, or set CUSTODY_LEDGER or \
                 `ledger:` in the config file",
            )
        })?),
        other => other.map(str::to_owned),
    };
    let args = crate::cli::InitArgs { join, ..args };
    let url = args.ledger.as_deref().or(args.join.as_deref());
    let (store, mut ledger) = match (&args.join, url) {
        (Some(join), _) => Store::join(&dir, join, ctx.lock_timeout)?,
        (None, Some(url)) => Store::create_agency(&dir, url, args.objects.as_deref(), ctx.lock_timeout)?,
        (None, None) => Store::create(&dir, ctx.lock_timeout)?,
    };
    let mut params = Map::new();
    params.insert("agency".into(), json!(args.agency));
    if let Some(paper) = args.paper {
        params.insert("paper".into(), json!(paper.name()));
    }
    params.insert("store".into(), json!(store.root().display().to_string()));
    let shown = url.map(crate::ledger::pg::shown);
    if let Some(shown) = &shown {
        params.insert("ledger".into(), json!(shown));
    }
    if let Some(bucket) = store.bucket() {
        params.insert("objects".into(), json!(bucket.url()));
    }
    let action = if args.join.is_some() { "join" } else { "init" };
    let staging = store.stage()?;
    let committed =
        store.commit(&mut ledger, &actor, staging, |_| Ok(Draft { action: action.into(), params, ..Draft::default() }));
    let (head, _) = committed.inspect_err(|_| {
        // A failed init leaves nothing behind: the agency store's descriptor goes too.
        let _ = std::fs::remove_file(store.root().join(crate::store::DESCRIPTOR));
    })?;
    let what = match (&shown, store.bucket(), args.join.is_some()) {
        (Some(s), Some(b), true) => format!("Joined the agency store (ledger {s}, objects in {}) with", b.url()),
        (Some(s), None, true) => format!("Joined the agency store (ledger {s}) with"),
        (Some(s), Some(b), false) => format!("Created the agency ledger {s}, objects in {}, and store", b.url()),
        (Some(s), None, false) => format!("Created the agency ledger {s} and store"),
        (None, _, _) => "Created custody store".to_owned(),
    };
    let text = format!(
        "{what} {}{}\n{}\nUse it with `--store {}` or `export CUSTODY_STORE={}`.",
        store.root().display(),
        args.agency.as_deref().map(|a| format!(" for {a}")).unwrap_or_default(),
        head_to_keep(&head),
        store.root().display(),
        store.root().display()
    );
    let json = json!({"schema_version": 1, "command": "init", "store": crate::fsutil::path_text(store.root()),
        "agency": args.agency, "ledger": shown, "objects": store.bucket().map(|b| b.url()), "head": head});
    Ok(Report::ok(text, json))
}
