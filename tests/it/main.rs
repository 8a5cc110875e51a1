//! The one integration-test binary: drives the real `custody` binary on real media.

mod batch;
mod bundle;
mod camera;
mod clip;
mod damaged;
mod docs;
mod exact;
mod faults;
mod fixtures;
mod formats;
mod fuzz;
mod hash;
mod ingest;
mod json;
mod ledger;
mod out;
mod readonly;
mod redact;
mod smart;
mod still;
mod store;
mod support;
mod verified;
mod verify;
mod wallclock;
