//! A small PDF writer for the custody report (being written).
