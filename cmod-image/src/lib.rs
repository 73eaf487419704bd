//! Daemonless container images for cmod compute modules.
//!
//! Foundry runs a compute module as a `linux/amd64` container with a numeric, non-root user,
//! captures its logs through `/bin/sh` + `set` + `tee`, and reserves ports 8945 and 8946 for its
//! sidecars (docs/protocol.md §8.1, §9). This crate turns a cargo-built binary into a standard
//! [OCI image layout](https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
//! that meets those requirements, with no Docker daemon and no registry access, and checks any
//! OCI image (ours or one built from a Dockerfile) against them.
//!
//! - [`mod@build`]: `cargo build --release`, then one deterministic layer holding the binary, every
//!   shared library it links plus the dynamic loader, CA certificates, `/etc/passwd` with the
//!   runtime user, `/tmp`, and a shell with `tee` and `echo` for log capture and exec probes.
//! - [`mod@check`]: validates a layout directory or archive: digests and sizes, platform, user,
//!   ports, tag, shell, `tee`, and the entrypoint (and its dynamic loader) in the layers.
//! - [`layout`]: the OCI types (index, manifest, config, descriptors) and reading/writing of
//!   layouts and archives; [`rootfs`] and [`elf`] are the building blocks; [`requirements`]
//!   holds the constants both sides share (`check` does not depend on `build`).
//!
//! The `cmod-image` binary is a thin CLI over these modules; install it with
//! `cargo install cmod-image` (or `cargo install --path cmod-image` from a checkout):
//!
//! ```text
//! cmod-image build --manifest-path my-module/Cargo.toml --archive my-module.tar
//! cmod-image check my-module.tar
//! ```
//!
//! `build` compiles without the crate's default features and refuses a binary that links
//! `cmod-runtime`'s embedded local runtime ([`local_runtime`]) unless asked to keep it.

pub mod build;
pub mod check;
pub mod elf;
pub mod layout;
pub mod local_runtime;
pub mod requirements;
pub mod rootfs;

pub use build::{BuildError, BuildOptions, BuildReport, build};
pub use check::{CheckError, CheckReport, Violation, check};
pub use layout::{Image, Layout, LayoutError};
