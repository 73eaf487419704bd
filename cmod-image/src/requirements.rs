//! Foundry's container requirements that both [`mod@crate::build`] and [`mod@crate::check`] use
//! (docs/protocol.md §8.1, §9). Kept apart so that checking an image never depends on building one.

/// The default runtime user and group id (the value Foundry's examples use).
pub const DEFAULT_USER: u32 = 5000;
/// Where the CA bundle lives on Debian-family hosts and in the image.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// `PATH` inside the image (also what `check` assumes when an image sets none).
pub const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Directory of the entrypoint binary inside the image (also the working directory).
pub const APP_DIR: &str = "/app";
/// Ports reserved by Foundry's sidecars (docs/protocol.md §1, §9).
pub const RESERVED_PORTS: [u16; 2] = [8945, 8946];
/// The image label carrying the OpenAPI document of a module run in Foundry's server mode
/// (docs/protocol.md §4.9).
pub const SERVER_OPENAPI_LABEL: &str = "server.openapi";
/// The variable choosing cmod's server mode (`CMOD_MODE=server`) and its port.
pub const SERVER_MODE_ENV: (&str, &str) = ("CMOD_MODE", "server");
/// The variable holding the port a cmod module serves on in server mode.
pub const SERVER_PORT_VAR: &str = "CMOD_SERVER_PORT";
