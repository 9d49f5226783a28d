//! [`Blobs`]: the front end of the blob contract (S3 and friends).
//!
//! The ABI ([`strata_plugin_api::blob`]) is deliberately small — whole
//! puts, ranged gets, paginated lists, a multipart writer. The friendly
//! calls live here: [`Blobs::list`] follows cursors to the end,
//! [`Blobs::upload`] streams any [`Read`] through a multipart
//! writer, and [`Blobs::download`] fetches an object in ranges with several
//! requests in flight, handing the bytes in order to a sink — so neither
//! direction ever holds a whole large object in memory.

use std::{io::Read, ops::Range};

use abi_stable::std_types::{ROption, RString, RVec};
use futures_util::{StreamExt as _, stream};
use strata_plugin_api::blob::{
    BlobStoreBox, BlobWriterBox, ByteRange, GetRequest, ListRequest, MultipartRequest, ObjectMeta,
    PutRequest,
};

use crate::{
    boundary::call,
    error::{Error, Result},
};

/// Bytes per multipart part handed to the plugin, and per ranged read.
pub const DEFAULT_CHUNK: usize = 8 * 1024 * 1024;
/// Ranged reads in flight during a [`Blobs::download`].
pub const DEFAULT_READ_CONCURRENCY: usize = 4;

/// An object's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification (ms since the Unix epoch), when the store reports it.
    pub last_modified_ms: Option<i64>,
    /// The store's entity tag, when it reports one.
    pub etag: Option<String>,
}

impl From<ObjectMeta> for BlobMeta {
    fn from(m: ObjectMeta) -> BlobMeta {
        BlobMeta {
            key: m.key.into_string(),
            size: m.size,
            last_modified_ms: m.last_modified_ms.into_option(),
            etag: m.etag.into_option().map(RString::into_string),
        }
    }
}

/// The blob store of one backend; cheap to share by reference.
pub struct Blobs {
    inner: BlobStoreBox,
    backend: String,
    /// Interface `strata.blob.uploads.v1`, when the plugin offers it.
    uploads: Option<strata_plugin_api::blob::BlobUploadsBox>,
}

/// A multipart upload begun and neither completed nor aborted
/// ([`Blobs::pending_uploads`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingUpload {
    /// The key being written.
    pub key: String,
    /// The store's id of the upload.
    pub upload_id: String,
    /// When it began, Unix milliseconds, if the store says.
    pub initiated_ms: Option<i64>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Blobs {
    pub(crate) fn new(
        inner: BlobStoreBox,
        backend: String,
        uploads: Option<strata_plugin_api::blob::BlobUploadsBox>,
    ) -> Blobs {
        Blobs {
            inner,
            backend,
            uploads,
        }
    }

    /// The multipart uploads left open under `prefix` (by a process killed
    /// mid-upload), in key order; `None` when the plugin cannot list them
    /// (it does not offer the interface `strata.blob.uploads.v1`).
    pub async fn pending_uploads(&self, prefix: &str) -> Result<Option<Vec<PendingUpload>>> {
        let Some(u) = &self.uploads else {
            return Ok(None);
        };
        let found = call(u.list_uploads(prefix.into())).await?;
        Ok(Some(
            found
                .into_iter()
                .map(|p| PendingUpload {
                    key: p.key.into_string(),
                    upload_id: p.upload_id.into_string(),
                    initiated_ms: p.initiated_ms.into_option(),
                })
                .collect(),
        ))
    }

    /// Aborts an open multipart upload (its parts are discarded; the key
    /// keeps its content). `Unsupported` when the plugin cannot.
    pub async fn abort_upload(&self, upload: &PendingUpload) -> Result<()> {
        let Some(u) = &self.uploads else {
            return Err(crate::Error::Plugin(strata_plugin_api::PluginError::new(
                strata_plugin_api::ErrorKind::Unsupported,
                format!(
                    "backend `{}` cannot abort multipart uploads (no interface {})",
                    self.backend,
                    strata_plugin_api::blob::BLOB_UPLOADS_V1
                ),
            )));
        };
        call(u.abort_upload(upload.key.as_str().into(), upload.upload_id.as_str().into())).await
    }

    /// The backend's name.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// Writes a whole object (replacing any object under `key`).
    pub async fn put(&self, key: &str, data: impl Into<Vec<u8>>) -> Result<BlobMeta> {
        let req = PutRequest {
            key: key.into(),
            data: RVec::from(data.into()),
            content_type: RString::new(),
            ext: Default::default(),
        };
        call(self.inner.put(req)).await.map(BlobMeta::from)
    }

    /// Reads a whole object; a missing key is a `not_found` error.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let req = GetRequest {
            key: key.into(),
            range: ROption::RNone,
            ext: Default::default(),
        };
        call(self.inner.get(req)).await.map(|r| r.data.into_vec())
    }

    /// Reads bytes `range` of an object, with the whole object's metadata.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<(BlobMeta, Vec<u8>)> {
        let req = GetRequest {
            key: key.into(),
            range: ROption::RSome(ByteRange {
                start: range.start,
                end: range.end,
            }),
            ext: Default::default(),
        };
        call(self.inner.get(req))
            .await
            .map(|r| (r.meta.into(), r.data.into_vec()))
    }

    /// An object's metadata; a missing key is a `not_found` error.
    pub async fn head(&self, key: &str) -> Result<BlobMeta> {
        call(self.inner.head(key.into())).await.map(BlobMeta::from)
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == strata_plugin_api::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One page of the objects under `prefix` (`limit` 0 = the store's default).
    pub async fn list_page(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<(Vec<BlobMeta>, Option<String>)> {
        let req = ListRequest {
            prefix: prefix.into(),
            cursor: cursor.map(RString::from).into(),
            limit,
            ext: Default::default(),
        };
        let page = call(self.inner.list(req)).await?;
        Ok((
            page.objects.into_iter().map(BlobMeta::from).collect(),
            page.next_cursor.into_option().map(RString::into_string),
        ))
    }

    /// Every object under `prefix`, in key order (follows the cursors).
    pub async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let (objects, next) = self.list_page(prefix, cursor, 0).await?;
            all.extend(objects);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(all)
    }

    /// Deletes an object (a missing key is not an error).
    pub async fn delete(&self, key: &str) -> Result<()> {
        call(self.inner.delete(key.into())).await
    }

    /// Opens a multipart writer for `key`.
    pub async fn writer(&self, key: &str) -> Result<BlobWriter> {
        let req = MultipartRequest {
            key: key.into(),
            content_type: RString::new(),
            ext: Default::default(),
        };
        let inner = call(self.inner.put_multipart(req)).await?;
        Ok(BlobWriter {
            inner: Some(inner),
            key: key.to_string(),
        })
    }

    /// Streams `reader` into `key` through a multipart writer, in chunks of
    /// [`DEFAULT_CHUNK`] bytes, calling `progress` with each chunk's size.
    /// On any error the upload is aborted and the key keeps its old content.
    pub async fn upload(
        &self,
        key: &str,
        mut reader: impl Read,
        mut progress: impl FnMut(u64),
    ) -> Result<BlobMeta> {
        let mut writer = self.writer(key).await?;
        let result = async {
            loop {
                let mut buf = vec![0u8; DEFAULT_CHUNK];
                let n = read_full(&mut reader, &mut buf).map_err(|e| Error::Io {
                    context: format!("reading the data for {key}"),
                    source: e,
                })?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                writer.write(buf).await?;
                progress(n as u64);
            }
            Ok::<_, Error>(())
        }
        .await;
        match result {
            Ok(()) => writer.complete().await,
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Reads `key` in ranges of [`DEFAULT_CHUNK`] bytes with
    /// [`DEFAULT_READ_CONCURRENCY`] requests in flight, handing each chunk in
    /// order to `sink`. Returns the object's metadata (from a `head` first,
    /// so the ranges are known; the size is checked against what arrived).
    pub async fn download(
        &self,
        key: &str,
        mut sink: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<BlobMeta> {
        let meta = self.head(key).await?;
        let chunk = DEFAULT_CHUNK as u64;
        let ranges: Vec<Range<u64>> = (0..meta.size.div_ceil(chunk))
            .map(|i| i * chunk..((i + 1) * chunk).min(meta.size))
            .collect();
        let mut parts = stream::iter(ranges)
            .map(|r| async move {
                let want = r.end - r.start;
                let (m, data) = self.get_range(key, r).await?;
                Ok::<_, Error>((m, data, want))
            })
            .buffered(DEFAULT_READ_CONCURRENCY);
        let mut received = 0u64;
        while let Some(part) = parts.next().await {
            let (m, data, want) = part?;
            if m.size != meta.size || data.len() as u64 != want {
                return Err(Error::Plugin(strata_plugin_api::PluginError::new(
                    strata_plugin_api::ErrorKind::Busy,
                    format!(
                        "{key} changed while it was read (size {} then {}, range of {want} bytes returned {})",
                        meta.size,
                        m.size,
                        data.len()
                    ),
                )));
            }
            received += want;
            sink(&data)?;
        }
        debug_assert_eq!(received, meta.size);
        Ok(meta)
    }
}

/// Fills `buf` from `reader` as far as it goes; returns the bytes read
/// (less than `buf.len()` only at the end of the input).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A multipart upload in progress. Dropping it without [`complete`](Self::complete)
/// aborts the upload (the plugin does so when its handle is dropped).
pub struct BlobWriter {
    inner: Option<BlobWriterBox>,
    key: String,
}

impl BlobWriter {
    fn handle(&self) -> Result<&BlobWriterBox> {
        self.inner.as_ref().ok_or_else(|| {
            Error::Plugin(strata_plugin_api::PluginError::closed(&format!(
                "the multipart upload of {}",
                self.key
            )))
        })
    }

    /// Appends bytes.
    pub async fn write(&mut self, data: Vec<u8>) -> Result<()> {
        call(self.handle()?.write_part(RVec::from(data))).await
    }

    /// Finishes the upload; the object becomes visible.
    pub async fn complete(mut self) -> Result<BlobMeta> {
        let meta = call(self.handle()?.complete()).await?;
        self.inner = None;
        Ok(meta.into())
    }

    /// Discards the upload.
    pub async fn abort(mut self) -> Result<()> {
        let r = call(self.handle()?.abort()).await;
        self.inner = None;
        r
    }
}
