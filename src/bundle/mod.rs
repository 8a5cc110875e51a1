//! Court bundles: the BagIt zip, its report, and the standalone verifier.

pub mod case;
pub mod pdf;
