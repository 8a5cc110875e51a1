//! Court bundles: the BagIt zip, its report, and the standalone verifier.

pub mod case;
pub mod check;
pub mod iso;
pub mod medium;
pub mod package;
pub mod pdf;
pub mod report;
pub mod zip;
