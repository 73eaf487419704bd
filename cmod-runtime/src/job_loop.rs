//! The functions-mode job loop.
