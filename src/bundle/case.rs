//! CASE/UCO JSON-LD export of the custody graph (being written).
