//! The one integration-test binary: drives the real `custody` binary on real media.

mod fixtures;
mod store;
mod support;
mod ingest;
mod hash;
