//! The blob contract on object_store's `AmazonS3`.
//!
//! Every call is spawned on the plugin's own runtime ([`crate::spawn`]);
//! the host awaits the join handle. Keys get the configured prefix in front
//! and lose it again in listings. A key must survive object_store's path
//! rules unchanged (no empty segments, no leading or trailing `/`, no
//! characters it would percent-encode); anything else is an `invalid_input`
//! error rather than a silently different key.

use std::sync::Arc;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RString, RVec},
};
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _,
    PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
    aws::AmazonS3,
    list::{PaginatedListOptions, PaginatedListStore},
    path::Path,
};
use strata_plugin_api::{
    PluginError,
    blob::{
        BlobStore, BlobWriter, BlobWriter_TO, BlobWriterBox, GetRequest, GetResponse, ListPage,
        ListRequest, MultipartRequest, ObjectMeta, PutRequest,
    },
    sql::PluginFuture,
};
use tokio::sync::Mutex;

use crate::{error::S3Error, runtime_spawn, spawn};

/// Longest key S3 accepts, in bytes (the configured prefix counts).
const MAX_KEY_BYTES: usize = 1024;

/// One opened S3 backend's store; cheap to clone.
#[derive(Clone)]
pub(crate) struct S3Blobs {
    pub(crate) store: Arc<AmazonS3>,
    pub(crate) bucket: String,
    pub(crate) prefix: String,
    pub(crate) part_size: usize,
    pub(crate) concurrency: usize,
}

impl S3Blobs {
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
            last_modified_ms: ROption::RSome(m.last_modified.timestamp_millis()),
            etag: m.e_tag.clone().map(RString::from).into(),
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

impl BlobStore for S3Blobs {
    fn put(&self, req: PutRequest) -> PluginFuture<ObjectMeta> {
        let this = self.clone();
        spawn(async move {
            let path = this.path(&req.key)?;
            let size = req.data.len() as u64;
            let opts = PutOptions {
                attributes: S3Blobs::attributes(&req.content_type),
                ..Default::default()
            };
            let r = this
                .store
                .put_opts(&path, PutPayload::from(req.data.into_vec()), opts)
                .await
                .map_err(|e| this.store_err("put", &req.key, e))?;
            Ok(ObjectMeta {
                key: req.key,
                size,
                last_modified_ms: ROption::RNone,
                etag: r.e_tag.map(RString::from).into(),
            })
        })
    }

    fn get(&self, req: GetRequest) -> PluginFuture<GetResponse> {
        let this = self.clone();
        spawn(async move {
            let path = this.path(&req.key)?;
            let opts = GetOptions {
                range: req
                    .range
                    .into_option()
                    .map(|r| GetRange::Bounded(r.start..r.end.max(r.start))),
                ..Default::default()
            };
            let r = this
                .store
                .get_opts(&path, opts)
                .await
                .map_err(|e| this.store_err("get", &req.key, e))?;
            let meta = this.meta(&r.meta);
            let data = r
                .bytes()
                .await
                .map_err(|e| this.store_err("get", &req.key, e))?;
            Ok(GetResponse {
                meta,
                data: RVec::from(Vec::from(data)),
            })
        })
    }

    fn head(&self, key: RString) -> PluginFuture<ObjectMeta> {
        let this = self.clone();
        spawn(async move {
            let path = this.path(&key)?;
            let m = this
                .store
                .head(&path)
                .await
                .map_err(|e| this.store_err("head", &key, e))?;
            Ok(this.meta(&m))
        })
    }

    fn list(&self, req: ListRequest) -> PluginFuture<ListPage> {
        let this = self.clone();
        spawn(async move {
            let full = format!("{}{}", this.prefix, req.prefix);
            let opts = PaginatedListOptions {
                max_keys: (req.limit > 0).then_some(req.limit.min(1000) as usize),
                page_token: req.cursor.into_option().map(String::from),
                ..Default::default()
            };
            let page = this
                .store
                .list_paginated((!full.is_empty()).then_some(full.as_str()), opts)
                .await
                .map_err(|e| this.store_err("list", &req.prefix, e))?;
            let mut objects: Vec<ObjectMeta> =
                page.result.objects.iter().map(|m| this.meta(m)).collect();
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(ListPage {
                objects: objects.into(),
                next_cursor: page.page_token.map(RString::from).into(),
            })
        })
    }

    fn delete(&self, key: RString) -> PluginFuture<()> {
        let this = self.clone();
        spawn(async move {
            let path = this.path(&key)?;
            match this.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(this.store_err("delete", &key, e).into()),
            }
        })
    }

    fn put_multipart(&self, req: MultipartRequest) -> PluginFuture<BlobWriterBox> {
        let this = self.clone();
        spawn(async move {
            let path = this.path(&req.key)?;
            let opts = PutMultipartOptions {
                attributes: S3Blobs::attributes(&req.content_type),
                ..Default::default()
            };
            let upload = this
                .store
                .put_multipart_opts(&path, opts)
                .await
                .map_err(|e| this.store_err("start multipart upload of", &req.key, e))?;
            let writer = S3Writer {
                state: Arc::new(Mutex::new(WriterState {
                    upload: Some(WriteMultipart::new_with_chunk_size(upload, this.part_size)),
                    written: 0,
                })),
                blobs: this,
                key: req.key.to_string(),
            };
            Ok(BlobWriter_TO::from_value(writer, TD_Opaque))
        })
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
struct S3Writer {
    blobs: S3Blobs,
    key: String,
    state: Arc<Mutex<WriterState>>,
}

impl BlobWriter for S3Writer {
    fn write_part(&self, data: RVec<u8>) -> PluginFuture<()> {
        let (state, key, blobs) = (self.state.clone(), self.key.clone(), self.blobs.clone());
        spawn(async move {
            let mut state = state.lock().await;
            let state = &mut *state;
            let upload = state
                .upload
                .as_mut()
                .ok_or_else(|| S3Error::WriterClosed(key.clone()))?;
            upload
                .wait_for_capacity(blobs.concurrency)
                .await
                .map_err(|e| blobs.store_err("upload part of", &key, e))?;
            state.written += data.len() as u64;
            upload.write(&data);
            Ok(())
        })
    }

    fn complete(&self) -> PluginFuture<ObjectMeta> {
        let (state, key, blobs) = (self.state.clone(), self.key.clone(), self.blobs.clone());
        spawn(async move {
            let mut state = state.lock().await;
            let upload = state
                .upload
                .take()
                .ok_or_else(|| S3Error::WriterClosed(key.clone()))?;
            let r = upload
                .finish()
                .await
                .map_err(|e| blobs.store_err("complete multipart upload of", &key, e))?;
            Ok(ObjectMeta {
                key: key.into(),
                size: state.written,
                last_modified_ms: ROption::RNone,
                etag: r.e_tag.map(RString::from).into(),
            })
        })
    }

    fn abort(&self) -> PluginFuture<()> {
        let (state, key, blobs) = (self.state.clone(), self.key.clone(), self.blobs.clone());
        spawn(async move {
            let upload = state.lock().await.upload.take();
            match upload {
                Some(u) => u.abort().await.map_err(|e| {
                    PluginError::from(blobs.store_err("abort multipart upload of", &key, e))
                }),
                None => Ok(()),
            }
        })
    }
}

impl Drop for S3Writer {
    /// A writer dropped without `complete` or `abort` aborts its upload, so
    /// no half-written parts linger in the bucket.
    fn drop(&mut self) {
        let state = self.state.clone();
        runtime_spawn(async move {
            if let Some(u) = state.lock().await.upload.take() {
                let _ = u.abort().await;
            }
        });
    }
}
