//! Writes a module's ontology metadata file (`ontology_metadata_config.json`): the ids of the
//! object types, properties and links its functions edit, loaded from the stack's
//! ontology-metadata service. Run it once (again when the ontology changes) and commit the file;
//! `#[compute_function(edits = [...])]` reads it at compile time.
//!
//! ```text
//! FOUNDRY_TOKEN=… cargo run -p ontology-edits --bin ontology-metadata -- \
//!     --foundry-url https://<stack>.palantirfoundry.com \
//!     --object-type-rid ri.ontology.main.object-type.… [--object-type-rid …] \
//!     [--link-type-rid ri.ontology.main.relation.…] [--out ontology_metadata_config.json]
//! ```
//!
//! The token comes from `FOUNDRY_TOKEN` or from the file named by `--token-file` (never from
//! the command line, where other users and shell histories would see it); it is sent only to
//! `--foundry-url`'s origin. Extra CA certificates: `DEFAULT_CA_PATH`, as for modules.

use std::path::PathBuf;
use std::process::ExitCode;

use cmod_runtime::auth::Credentials;
use cmod_runtime::{FoundryClient, OntologyMetadata, Secret};

const USAGE: &str = "usage: ontology-metadata --foundry-url URL --object-type-rid RID... \
                     [--link-type-rid RID...] [--token-file PATH] [--out FILE]\n\
                     The token is read from FOUNDRY_TOKEN, or from --token-file.";

struct Args {
    foundry_url: String,
    object_type_rids: Vec<String>,
    link_type_rids: Vec<String>,
    token_file: Option<PathBuf>,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut foundry_url = None;
    let mut object_type_rids = Vec::new();
    let mut link_type_rids = Vec::new();
    let mut token_file = None;
    let mut out = PathBuf::from("ontology_metadata_config.json");
    let mut args = std::env::args_os().skip(1);
    while let Some(flag) = args.next() {
        let flag = flag
            .into_string()
            .map_err(|_| "arguments must be UTF-8".to_owned())?;
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let mut value = || {
            args.next()
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| format!("`{flag}` needs a value"))
        };
        match flag.as_str() {
            "--foundry-url" => foundry_url = Some(value()?),
            "--object-type-rid" => object_type_rids.push(value()?),
            "--link-type-rid" => link_type_rids.push(value()?),
            "--token-file" => token_file = Some(PathBuf::from(value()?)),
            "--out" => out = PathBuf::from(value()?),
            "--token" | "-t" => {
                return Err(
                    "the token is not taken on the command line: set FOUNDRY_TOKEN or pass \
                     --token-file"
                        .to_owned(),
                );
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let foundry_url = foundry_url.ok_or("`--foundry-url` is required")?;
    if object_type_rids.is_empty() {
        return Err("give at least one `--object-type-rid`".to_owned());
    }
    Ok(Args {
        foundry_url,
        object_type_rids,
        link_type_rids,
        token_file,
        out,
    })
}

fn token(args: &Args) -> Result<Secret, String> {
    let text = match &args.token_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file `{}`: {e}", path.display()))?,
        None => std::env::var("FOUNDRY_TOKEN")
            .map_err(|_| "set FOUNDRY_TOKEN (or pass --token-file)".to_owned())?,
    };
    let text = text.trim();
    if text.is_empty() {
        return Err("the token is empty".to_owned());
    }
    Ok(Secret::new(text))
}

async fn generate(args: &Args) -> Result<OntologyMetadata, String> {
    let client = FoundryClient::builder()
        .foundry_url(args.foundry_url.clone())
        .credentials(Credentials::Bearer(token(args)?))
        .build()
        .map_err(|e| e.to_string())?;
    OntologyMetadata::fetch(&client, &args.object_type_rids, &args.link_type_rids)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("ontology-metadata: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let metadata = match generate(&args).await {
        Ok(metadata) => metadata,
        Err(message) => {
            eprintln!("ontology-metadata: {message}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(&args.out, metadata.to_json()) {
        eprintln!(
            "ontology-metadata: cannot write `{}`: {e}",
            args.out.display()
        );
        return ExitCode::FAILURE;
    }
    println!(
        "wrote {} ({} object types: {})",
        args.out.display(),
        metadata.object_types.len(),
        metadata.object_type_names().join(", ")
    );
    ExitCode::SUCCESS
}
