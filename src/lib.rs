//! custody: chain-of-custody toolkit for digital video and audio evidence.
//!
//! The binary (`src/main.rs`) is a thin shell over this library; see `../shared/DESIGN.md`
//! for the map of how the modules fit together.

pub mod bundle;
pub mod cli;
pub mod cmd;
pub mod derive;
pub mod detect;
pub mod digest;
pub mod error;
pub mod fonts;
pub mod fsutil;
pub mod fuzz;
pub mod interrupt;
pub mod item;
pub mod job;
pub mod ledger;
pub mod mapped;
pub mod media;
pub mod objects;
pub mod outboard;
pub mod store;
