//! sqlite store (being written).
