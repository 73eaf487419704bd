//! [`MediaSetInput`] and [`MediaSetOutput`]: media items through the public v2 media-sets API
//! (docs/protocol.md §5.5, preview endpoints).

use std::fmt;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::api::{Api, encode_segment};
use super::error::{PipelineError, ResourceKind, ResourceRef};
use super::reader::FileReader;
use super::{Closed, Finalize, InputHandle, OutputHandle, PipelineContext};
use crate::foundry::{Method, Service};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaSet {
    #[serde(default)]
    transaction_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemRid {
    media_item_rid: String,
}

fn media_path(resource: &ResourceRef, rest: &str) -> String {
    let base = format!("v2/mediasets/{}", encode_segment(&resource.rid));
    if rest.is_empty() {
        base
    } else {
        format!("{base}/{rest}")
    }
}

async fn get_media_set(api: &Api, resource: &ResourceRef) -> Result<MediaSet, PipelineError> {
    let req = api
        .request(Method::GET, Service::ApiGateway, media_path(resource, ""))
        .query("preview", "true");
    api.json(resource, || "opening the media set".to_owned(), req)
        .await
}

/// A media-set input: find items by path and read them.
pub struct MediaSetInput {
    resource: ResourceRef,
    api: Api,
}

impl fmt::Debug for MediaSetInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaSetInput")
            .field("resource", &self.resource)
            .finish()
    }
}

impl InputHandle for MediaSetInput {
    const KIND: ResourceKind = ResourceKind::MediaSet;

    async fn open(ctx: &PipelineContext, alias: &'static str) -> Result<Self, PipelineError> {
        let resource = ctx.resource(alias, Self::KIND)?;
        let api = ctx.api().clone();
        get_media_set(&api, &resource).await?;
        Ok(MediaSetInput { resource, api })
    }
}

impl MediaSetInput {
    /// The alias this handle is bound to.
    pub fn alias(&self) -> &str {
        &self.resource.alias
    }

    /// The media-set RID.
    pub fn rid(&self) -> &str {
        &self.resource.rid
    }

    /// The item at `path` on the alias's branch, if there is one.
    pub async fn item_rid(&self, path: &str) -> Result<Option<String>, PipelineError> {
        let req = self
            .api
            .request(
                Method::GET,
                Service::ApiGateway,
                media_path(&self.resource, "items/getRidByPath"),
            )
            .query("mediaItemPath", path)
            .query("branchName", &self.resource.branch)
            .query("preview", "true");
        match self
            .api
            .json::<ItemRid>(&self.resource, || format!("looking up item `{path}`"), req)
            .await
        {
            Ok(r) => Ok(Some(r.media_item_rid)),
            Err(e) if e.status() == Some(404) && e.error_name() == Some("MediaItemNotFound") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens an item's content for streamed reading.
    pub async fn open_item(&self, item_rid: &str) -> Result<FileReader, PipelineError> {
        let req = self
            .api
            .request(
                Method::GET,
                Service::ApiGateway,
                media_path(
                    &self.resource,
                    &format!("items/{}/content", encode_segment(item_rid)),
                ),
            )
            .query("preview", "true");
        let stream = self
            .api
            .download(&self.resource, || format!("reading item {item_rid}"), req)
            .await?;
        Ok(FileReader::new(item_rid, stream))
    }

    /// Reads an item's content whole.
    pub async fn read_item(&self, item_rid: &str) -> Result<Bytes, PipelineError> {
        self.open_item(item_rid).await?.read_to_end().await
    }

    /// Reads the item at `path` whole; `None` when there is no such item.
    pub async fn read_path(&self, path: &str) -> Result<Option<Bytes>, PipelineError> {
        match self.item_rid(path).await? {
            Some(rid) => self.read_item(&rid).await.map(Some),
            None => Ok(None),
        }
    }
}

/// A media-set output: upload items.
///
/// When the media set is transactional, the handle opens a media-set transaction on its branch
/// and commits it when the pipeline succeeds (aborts it otherwise); for a media set without
/// transactions, uploads are visible at once and cannot be taken back.
pub struct MediaSetOutput {
    state: std::sync::Arc<MediaState>,
}

struct MediaState {
    resource: ResourceRef,
    api: Api,
    transaction_id: Option<String>,
    closed: tokio::sync::Mutex<bool>,
}

impl fmt::Debug for MediaSetOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaSetOutput")
            .field("resource", &self.state.resource)
            .field("transaction_id", &self.state.transaction_id)
            .finish()
    }
}

impl MediaState {
    /// Commits (`commit`) or aborts the media-set transaction, once.
    async fn close(&self, commit: bool) -> Result<Closed, PipelineError> {
        let mut closed = self.closed.lock().await;
        let Some(id) = &self.transaction_id else {
            return Ok(Closed::NoTransaction);
        };
        if *closed {
            return Ok(Closed::AlreadyDone);
        }
        let (action, doing) = if commit {
            ("commit", "committing")
        } else {
            ("abort", "aborting")
        };
        let req = self
            .api
            .request(
                Method::POST,
                Service::ApiGateway,
                media_path(
                    &self.resource,
                    &format!("transactions/{}/{action}", encode_segment(id)),
                ),
            )
            .query("preview", "true");
        self.api
            .send(
                &self.resource,
                || format!("{doing} media-set transaction {id}"),
                req,
            )
            .await?;
        *closed = true;
        Ok(Closed::Done)
    }
}

impl Finalize for MediaState {
    fn resource(&self) -> &ResourceRef {
        &self.resource
    }

    fn commit(&self) -> BoxFuture<'_, Result<Closed, PipelineError>> {
        Box::pin(self.close(true))
    }

    fn abort(&self) -> BoxFuture<'_, Result<Closed, PipelineError>> {
        Box::pin(self.close(false))
    }
}

impl OutputHandle for MediaSetOutput {
    const KIND: ResourceKind = ResourceKind::MediaSet;

    async fn open(ctx: &PipelineContext, alias: &'static str) -> Result<Self, PipelineError> {
        let resource = ctx.resource(alias, Self::KIND)?;
        let api = ctx.api().clone();
        let set = get_media_set(&api, &resource).await?;
        let transaction_id = if set.transaction_policy.as_deref() == Some("TRANSACTIONAL") {
            let req = api
                .request(
                    Method::POST,
                    Service::ApiGateway,
                    media_path(&resource, "transactions"),
                )
                .query("branchName", &resource.branch)
                .query("preview", "true");
            let id: String = api
                .json(
                    &resource,
                    || "opening a media-set transaction".to_owned(),
                    req,
                )
                .await?;
            Some(id)
        } else {
            None
        };
        let state = std::sync::Arc::new(MediaState {
            resource,
            api,
            transaction_id,
            closed: tokio::sync::Mutex::new(false),
        });
        ctx.register_output(state.clone());
        Ok(MediaSetOutput { state })
    }
}

impl MediaSetOutput {
    /// The alias this handle is bound to.
    pub fn alias(&self) -> &str {
        &self.state.resource.alias
    }

    /// The media-set RID.
    pub fn rid(&self) -> &str {
        &self.state.resource.rid
    }

    /// The media-set transaction uploads go into, when the media set is transactional.
    pub fn transaction_id(&self) -> Option<&str> {
        self.state.transaction_id.as_deref()
    }

    fn query(&self, path: &str) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("mediaItemPath", path.to_owned()),
            ("branchName", self.state.resource.branch.clone()),
            ("preview", "true".to_owned()),
        ];
        if let Some(id) = &self.state.transaction_id {
            q.push(("transactionId", id.clone()));
        }
        q
    }

    /// Uploads an item from bytes in memory (retried on transient failures); returns its RID.
    pub async fn upload(
        &self,
        path: &str,
        data: impl Into<Bytes>,
    ) -> Result<String, PipelineError> {
        let s = &self.state;
        let mut req = s
            .api
            .request(
                Method::POST,
                Service::ApiGateway,
                media_path(&s.resource, "items"),
            )
            .body(data.into(), "application/octet-stream");
        for (k, v) in self.query(path) {
            req = req.query(k, v);
        }
        let item: ItemRid = s
            .api
            .json(&s.resource, || format!("uploading item `{path}`"), req)
            .await?;
        Ok(item.media_item_rid)
    }

    /// Uploads an item from a stream of chunks (not retried); returns its RID.
    pub async fn upload_stream<S, E>(&self, path: &str, chunks: S) -> Result<String, PipelineError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let s = &self.state;
        let query = self.query(path);
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let op = format!("uploading item `{path}`");
        let response = s
            .api
            .upload(
                &s.resource,
                op.clone(),
                Service::ApiGateway,
                &media_path(&s.resource, "items"),
                &query,
                reqwest::Body::wrap_stream(chunks),
            )
            .await?;
        let body = response.bytes().await.unwrap_or_default();
        serde_json::from_slice::<ItemRid>(&body)
            .map(|i| i.media_item_rid)
            .map_err(|e| PipelineError::Protocol {
                resource: Box::new(s.resource.clone()),
                operation: op,
                message: format!("expected {{\"mediaItemRid\": …}}: {e}"),
            })
    }
}
