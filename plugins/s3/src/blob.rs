//! The blob contract on object_store's `AmazonS3`.
//!
//! Every call runs as a task on the plugin's runtime ([`Runs::Task`], the
//! answer of both `runs` methods): an upload keeps streaming while the host
//! is busy elsewhere, and a call the host stops awaiting still finishes (a
//! multipart upload is completed or aborted, never left half-done). Since
//! an abandoned put still lands, writes to one key wait for the earlier
//! ones (`order.rs`), so it cannot land after a newer write. Keys
//! get the configured prefix in front
//! and lose it again in listings. A key must survive object_store's path
//! rules unchanged (no empty segments, no leading or trailing `/`, no
//! characters it would percent-encode); anything else is an `invalid_input`
//! error rather than a silently different key.

use std::sync::Arc;

use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _,
    PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
    aws::AmazonS3,
    list::{PaginatedListOptions, PaginatedListStore},
    path::Path,
};
use strata_plugin::{
    BlobBackend, BlobWriter, PluginError, PluginResult, Runs,
    blob::{
        BlobCall, GetRequest, GetResponse, ListPage, ListRequest, MultipartRequest, ObjectMeta,
        PendingUpload, PutRequest,
    },
    runs::detach,
};
use tokio::sync::Mutex;

use crate::{config::S3Config, error::S3Error, order::KeyOrder};

/// Longest key S3 accepts, in bytes (the configured prefix counts).
const MAX_KEY_BYTES: usize = 1024;

/// One opened S3 backend's store; cheap to clone.
#[derive(Clone)]
pub(crate) struct S3Blobs {
    store: Arc<AmazonS3>,
    uploads: Arc<crate::uploads::Uploads>,
    /// Writes to one key go out one after another (see `order.rs`).
    order: Arc<KeyOrder>,
    bucket: String,
    prefix: String,
    part_size: usize,
    concurrency: usize,
}

impl S3Blobs {
    /// The store `cfg` describes (no request is made).
    pub(crate) fn open(cfg: S3Config) -> Result<S3Blobs, S3Error> {
        let store = cfg.client()?;
        Ok(S3Blobs {
            store: Arc::new(store),
            uploads: Arc::new(crate::uploads::Uploads::new(&cfg)?),
            order: Arc::default(),
            part_size: cfg.part_size_mib as usize * 1024 * 1024,
            concurrency: cfg.upload_concurrency.max(1) as usize,
            bucket: cfg.bucket,
            prefix: cfg.prefix,
        })
    }

    fn path(&self, key: &str) -> Result<Path, S3Error> {
        let bad = |reason: &str| S3Error::Key {
            key: key.to_string(),
            reason: reason.to_string(),
        };
        if key.is_empty() {
            return Err(bad("keys must not be empty"));
        }
        let full = format!("{}{key}", self.prefix);
        if full.len() > MAX_KEY_BYTES {
            return Err(bad("longer than 1024 bytes with the prefix"));
        }
        let path = Path::parse(&full).map_err(|e| bad(&e.to_string()))?;
        if path.as_ref() != full {
            return Err(bad(
                "not a plain object key (empty segment, leading or trailing `/`, or a character that would be escaped)",
            ));
        }
        Ok(path)
    }

    fn store_err(&self, op: &'static str, key: &str, source: object_store::Error) -> S3Error {
        S3Error::Store {
            op,
            key: key.to_string(),
            bucket: self.bucket.clone(),
            source: Box::new(source),
        }
    }

    fn meta(&self, m: &object_store::ObjectMeta) -> ObjectMeta {
        let full = m.location.as_ref();
        ObjectMeta {
            key: full.strip_prefix(&self.prefix).unwrap_or(full).into(),
            size: m.size,
            last_modified_ms: Some(m.last_modified.timestamp_millis()),
            etag: m.e_tag.clone(),
        }
    }

    fn attributes(content_type: &str) -> Attributes {
        let mut attributes = Attributes::new();
        if !content_type.is_empty() {
            attributes.insert(Attribute::ContentType, content_type.to_string().into());
        }
        attributes
    }

    /// The health check: one list request of at most one key.
    pub(crate) async fn health(&self) -> Result<String, S3Error> {
        let opts = PaginatedListOptions {
            max_keys: Some(1),
            ..Default::default()
        };
        let prefix = (!self.prefix.is_empty()).then_some(self.prefix.as_str());
        self.store
            .list_paginated(prefix, opts)
            .await
            .map_err(|e| self.store_err("list", &self.prefix, e))?;
        Ok(format!(
            "bucket {} reachable, prefix {:?} listable",
            self.bucket, self.prefix
        ))
    }
}

impl BlobBackend for S3Blobs {
    type Writer = S3Writer;

    async fn put(&self, req: PutRequest) -> PluginResult<ObjectMeta> {
        let path = self.path(&req.key)?;
        let size = req.data.len() as u64;
        let opts = PutOptions {
            attributes: S3Blobs::attributes(&req.content_type),
            ..Default::default()
        };
        let _turn = self.order.turn(path.as_ref()).await;
        let r = self
            .store
            .put_opts(&path, PutPayload::from(req.data), opts)
            .await
            .map_err(|e| self.store_err("put", &req.key, e))?;
        Ok(ObjectMeta {
            key: req.key,
            size,
            last_modified_ms: None,
            etag: r.e_tag,
        })
    }

    async fn get(&self, req: GetRequest) -> PluginResult<GetResponse> {
        let path = self.path(&req.key)?;
        let opts = GetOptions {
            range: req
                .range
                .map(|r| GetRange::Bounded(r.start..r.end.max(r.start))),
            ..Default::default()
        };
        let r = self
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| self.store_err("get", &req.key, e))?;
        let meta = self.meta(&r.meta);
        let data = r
            .bytes()
            .await
            .map_err(|e| self.store_err("get", &req.key, e))?;
        Ok(GetResponse {
            meta,
            data: Vec::from(data),
        })
    }

    async fn head(&self, key: String) -> PluginResult<ObjectMeta> {
        let path = self.path(&key)?;
        let m = self
            .store
            .head(&path)
            .await
            .map_err(|e| self.store_err("head", &key, e))?;
        Ok(self.meta(&m))
    }

    async fn list(&self, req: ListRequest) -> PluginResult<ListPage> {
        let full = format!("{}{}", self.prefix, req.prefix);
        let opts = PaginatedListOptions {
            max_keys: (req.limit > 0).then_some(req.limit.min(1000) as usize),
            page_token: req.cursor,
            ..Default::default()
        };
        let page = self
            .store
            .list_paginated((!full.is_empty()).then_some(full.as_str()), opts)
            .await
            .map_err(|e| self.store_err("list", &req.prefix, e))?;
        let mut objects: Vec<ObjectMeta> =
            page.result.objects.iter().map(|m| self.meta(m)).collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(ListPage {
            objects,
            next_cursor: page.page_token,
        })
    }

    async fn delete(&self, key: String) -> PluginResult<()> {
        let path = self.path(&key)?;
        let _turn = self.order.turn(path.as_ref()).await;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_err("delete", &key, e).into()),
        }
    }

    async fn put_multipart(&self, req: MultipartRequest) -> PluginResult<S3Writer> {
        let path = self.path(&req.key)?;
        let opts = PutMultipartOptions {
            attributes: S3Blobs::attributes(&req.content_type),
            ..Default::default()
        };
        let upload = self
            .store
            .put_multipart_opts(&path, opts)
            .await
            .map_err(|e| self.store_err("start multipart upload of", &req.key, e))?;
        Ok(S3Writer {
            state: Arc::new(Mutex::new(WriterState {
                upload: Some(WriteMultipart::new_with_chunk_size(upload, self.part_size)),
                written: 0,
            })),
            blobs: self.clone(),
            key: req.key,
        })
    }

    const LISTS_UPLOADS: bool = true;

    async fn list_uploads(&self, prefix: String) -> PluginResult<Vec<PendingUpload>> {
        let full = format!("{}{prefix}", self.prefix);
        let mut found = self.uploads.list(&self.store, &full).await?;
        for u in &mut found {
            if let Some(k) = u.key.strip_prefix(&self.prefix) {
                u.key = k.to_string();
            }
        }
        Ok(found)
    }

    async fn abort_upload(&self, key: String, upload_id: String) -> PluginResult<()> {
        if key.is_empty() || upload_id.is_empty() {
            return Err(S3Error::Key {
                key,
                reason: "aborting an upload needs its key and upload id".into(),
            }
            .into());
        }
        let full = format!("{}{key}", self.prefix);
        Ok(self.uploads.abort(&self.store, &full, &upload_id).await?)
    }

    /// Every call is a task on the plugin's runtime (see the module docs).
    fn runs(&self, _call: BlobCall<'_>) -> Runs {
        Runs::Task
    }
}

struct WriterState {
    upload: Option<WriteMultipart>,
    written: u64,
}

/// A multipart upload in progress. object_store's `WriteMultipart` cuts the
/// stream into `part_size` parts and keeps up to `concurrency` part uploads
/// in flight; `write_part` returns once its bytes are buffered or handed to
/// an upload, so the host can read the next chunk meanwhile.
pub(crate) struct S3Writer {
    blobs: S3Blobs,
    key: String,
    state: Arc<Mutex<WriterState>>,
}

impl BlobWriter for S3Writer {
    async fn write_part(&self, data: Vec<u8>) -> PluginResult<()> {
        let mut state = self.state.lock().await;
        let state = &mut *state;
        let upload = state
            .upload
            .as_mut()
            .ok_or_else(|| S3Error::WriterClosed(self.key.clone()))?;
        upload
            .wait_for_capacity(self.blobs.concurrency)
            .await
            .map_err(|e| self.blobs.store_err("upload part of", &self.key, e))?;
        state.written += data.len() as u64;
        upload.write(&data);
        Ok(())
    }

    async fn complete(&self) -> PluginResult<ObjectMeta> {
        let mut state = self.state.lock().await;
        let upload = state
            .upload
            .take()
            .ok_or_else(|| S3Error::WriterClosed(self.key.clone()))?;
        // The full path: the same string `put` and `delete` order on.
        let path = self.blobs.path(&self.key)?;
        let _turn = self.blobs.order.turn(path.as_ref()).await;
        let r = upload.finish().await.map_err(|e| {
            self.blobs
                .store_err("complete multipart upload of", &self.key, e)
        })?;
        Ok(ObjectMeta {
            key: self.key.clone(),
            size: state.written,
            last_modified_ms: None,
            etag: r.e_tag,
        })
    }

    async fn abort(&self) -> PluginResult<()> {
        let upload = self.state.lock().await.upload.take();
        match upload {
            Some(u) => u.abort().await.map_err(|e| {
                PluginError::from(
                    self.blobs
                        .store_err("abort multipart upload of", &self.key, e),
                )
            }),
            None => Ok(()),
        }
    }

    /// Every call is a task on the plugin's runtime: `complete` and `abort`
    /// finish even when the host stops awaiting them.
    fn runs(&self, _call: BlobCall<'_>) -> Runs {
        Runs::Task
    }
}

impl Drop for S3Writer {
    /// A writer dropped without `complete` or `abort` aborts its upload, so
    /// no half-written parts linger in the bucket. (The kit drops it once
    /// the host has dropped its handle and no call of it is still running.)
    fn drop(&mut self) {
        let state = self.state.clone();
        detach(async move {
            if let Some(u) = state.lock().await.upload.take() {
                let _ = u.abort().await;
            }
        });
    }
}
