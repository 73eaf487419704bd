//! Nothing here: the compile-time tests of the macros are `tests/ui.rs` and the cases under
//! `ui/` (see `tests/ui.rs`).
