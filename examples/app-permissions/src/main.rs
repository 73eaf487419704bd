//! Calling Foundry APIs from a compute module, as the module's application ("Application's
//! permissions": OAuth2 client credentials from `CLIENT_ID`/`CLIENT_SECRET`) and as the user who
//! invoked the function (the job's `authHeader`).
//!
//! Run it locally: the embedded local mode starts a local Foundry next to the local runtime and
//! sets `CLIENT_ID`, `CLIENT_SECRET`, `FOUNDRY_URL`, `FOUNDRY_SERVICE_DISCOVERY_V2` and
//! `DEFAULT_CA_PATH` for it:
//!
//! ```text
//! CMOD_LOCAL=1 cargo run -p app-permissions -- --invoke whoami '{}'
//! ```
//!
//! In Foundry, enable application permissions in the module's configuration (and a source that
//! allows egress to the stack); the same code then calls the real stack.

use cmod_runtime::foundry::{FoundryClient, FoundryError};
use cmod_runtime::{Context, compute_function};

/// A Foundry user, as `GET /v2/admin/users/getCurrent` returns it.
#[derive(Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct User {
    /// The user id.
    pub id: String,
    /// The user name.
    pub username: String,
}

/// A dataset, as `GET /v2/datasets/{rid}` returns it.
#[derive(Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    /// The dataset RID.
    pub rid: String,
    /// The dataset name.
    pub name: String,
}

/// Who the module is in Foundry: its application's service user. The token is fetched once,
/// cached and refreshed before it expires.
#[compute_function]
async fn whoami() -> Result<User, FoundryError> {
    FoundryClient::from_env()?
        .get_json("/v2/admin/users/getCurrent")
        .await
}

/// Who invoked this function, calling Foundry with the job's own user token.
#[compute_function]
async fn whoami_as_user(ctx: Context) -> Result<User, FoundryError> {
    ctx.foundry_as_user()?
        .get_json("/v2/admin/users/getCurrent")
        .await
}

/// A dataset's metadata, read with an application token scoped to `api:datasets-read`.
#[compute_function]
async fn dataset(rid: String) -> Result<Dataset, FoundryError> {
    FoundryClient::from_env()?
        .with_scopes(["api:datasets-read"])
        .get_json(format!("/v2/datasets/{rid}"))
        .await
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_local::foundry::{LocalFoundry, LocalFoundryOptions, TokenGrant};

    /// The functions against a local Foundry over TLS, with the variables local mode sets.
    #[tokio::test]
    async fn calls_foundry_as_the_application_and_as_the_user() {
        let foundry = LocalFoundry::start(LocalFoundryOptions::default())
            .await
            .unwrap();
        assert!(cmod_runtime::testing::install_env_overlay(foundry.env()));

        let me = tokio::time::timeout(std::time::Duration::from_secs(30), whoami())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(me.id, "cmod-local-app");
        whoami().await.unwrap();
        assert_eq!(foundry.stats().token_requests, 1);

        let token = foundry.issue_token(TokenGrant::user("alice"));
        let ctx = Context::builder("job-1")
            .auth_header(format!("Bearer {token}"))
            .build();
        assert_eq!(whoami_as_user(ctx).await.unwrap().id, "alice");

        let err = whoami_as_user(Context::for_test("job-2"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no user token for job `job-2`"), "{err}");
    }
}
