//! The local compute-module runtime (functions mode).
