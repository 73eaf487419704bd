//! Pipeline mode: `#[pipeline]`, the alias map, dataset/stream/media-set handles.
