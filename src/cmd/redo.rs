//! `custody redo`: re-run a recorded derivation and compare.

use anyhow::Result;

use super::{Ctx, Report};
use crate::cli::RedoArgs;

pub fn run(_args: RedoArgs, _ctx: &Ctx) -> Result<Report> {
    Err(crate::error::input("redo: not yet"))
}
