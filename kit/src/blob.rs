//! The blob-store contract (backups): [`BlobBackend`] and its [`BlobWriter`].
//!
//! Keys are relative to whatever prefix the plugin is configured with. A
//! missing key is `not_found` for `get` and `head`; `delete` of a missing
//! key succeeds (S3 semantics, which make deletes idempotent). Large objects
//! are read range by range, and written with a multipart [`BlobWriter`].

use std::future::Future;

use crate::{PluginResult, Runs};

/// What the store knows about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key (relative to the plugin's configured prefix).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, milliseconds since the Unix epoch, when the store reports it.
    pub last_modified_ms: Option<i64>,
    /// The store's entity tag, when it reports one.
    pub etag: Option<String>,
}

/// A whole-object write.
#[derive(Clone, Debug, PartialEq)]
pub struct PutRequest {
    /// The key to write (an existing object is replaced).
    pub key: String,
    /// The object's bytes.
    pub data: Vec<u8>,
    /// `Content-Type`, `""` for the store's default.
    pub content_type: String,
}

/// A byte range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte (clamped to the object's size by the store).
    pub end: u64,
}

/// A read.
#[derive(Clone, Debug, PartialEq)]
pub struct GetRequest {
    /// The key to read.
    pub key: String,
    /// Only these bytes (`None` = the whole object).
    pub range: Option<ByteRange>,
}

/// What a read returns.
#[derive(Clone, Debug, PartialEq)]
pub struct GetResponse {
    /// The whole object's metadata (its `size` is the full size, not the range's).
    pub meta: ObjectMeta,
    /// The bytes read.
    pub data: Vec<u8>,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct ListRequest {
    /// Only keys starting with this text (`""` = all; not a "directory").
    pub prefix: String,
    /// The cursor of the previous page (`None` for the first).
    pub cursor: Option<String>,
    /// At most this many objects per page (`0` = the store's default).
    pub limit: u32,
}

/// A page of objects, in key order, and the cursor of the next page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListPage {
    /// Objects of this page.
    pub objects: Vec<ObjectMeta>,
    /// `None` after the last page.
    pub next_cursor: Option<String>,
}

/// Starts a multipart write.
#[derive(Clone, Debug, PartialEq)]
pub struct MultipartRequest {
    /// The key to write (replaced on `complete`).
    pub key: String,
    /// `Content-Type`, `""` for the store's default.
    pub content_type: String,
}

/// A multipart upload begun and neither completed nor aborted
/// ([`BlobBackend::list_uploads`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    /// The key being written.
    pub key: String,
    /// The store's id of the upload.
    pub upload_id: String,
    /// When it began, Unix milliseconds, if the store says.
    pub initiated_ms: Option<i64>,
}

/// Which blob call the kit is about to run, for the `runs` methods.
#[non_exhaustive]
#[derive(Clone, Copy, Debug)]
pub enum BlobCall<'a> {
    /// `put`.
    Put(&'a PutRequest),
    /// `get`.
    Get(&'a GetRequest),
    /// `head`, with the key.
    Head(&'a str),
    /// `list`.
    List(&'a ListRequest),
    /// `delete`, with the key.
    Delete(&'a str),
    /// `put_multipart`.
    PutMultipart(&'a MultipartRequest),
    /// A writer's `write_part`, with the bytes.
    WritePart(&'a [u8]),
    /// A writer's `complete`.
    Complete,
    /// A writer's `abort`.
    Abort,
    /// `list_uploads`, with the prefix.
    ListUploads(&'a str),
    /// `abort_upload`, with the key.
    AbortUpload(&'a str),
}

/// The blob-store contract. Every method is required; `runs` puts every
/// call on the blocking pool unless overridden.
pub trait BlobBackend: Send + Sync + 'static {
    /// An open multipart write.
    type Writer: BlobWriter;

    /// Writes a whole object.
    fn put(&self, req: PutRequest) -> impl Future<Output = PluginResult<ObjectMeta>> + Send;
    /// Reads an object or a range of it; `not_found` when the key is missing.
    fn get(&self, req: GetRequest) -> impl Future<Output = PluginResult<GetResponse>> + Send;
    /// An object's metadata; `not_found` when the key is missing.
    fn head(&self, key: String) -> impl Future<Output = PluginResult<ObjectMeta>> + Send;
    /// One page of the objects whose key starts with a prefix, in key order.
    fn list(&self, req: ListRequest) -> impl Future<Output = PluginResult<ListPage>> + Send;
    /// Deletes an object; deleting a missing key succeeds.
    fn delete(&self, key: String) -> impl Future<Output = PluginResult<()>> + Send;
    /// Opens a streaming multipart write.
    fn put_multipart(
        &self,
        req: MultipartRequest,
    ) -> impl Future<Output = PluginResult<Self::Writer>> + Send;

    /// Whether this store implements [`list_uploads`](Self::list_uploads)
    /// and [`abort_upload`](Self::abort_upload): only then does the kit
    /// offer the interface `strata.blob.uploads.v1`
    /// (`strata_plugin_api::blob::BLOB_UPLOADS_V1`) that the host's backup
    /// prune uses to find uploads a killed process left open.
    const LISTS_UPLOADS: bool = false;

    /// Every multipart upload left open under `prefix`, in key order.
    fn list_uploads(
        &self,
        prefix: String,
    ) -> impl Future<Output = PluginResult<Vec<PendingUpload>>> + Send {
        let _ = prefix;
        async { Err(no_uploads()) }
    }

    /// Aborts upload `upload_id` of `key`; one that is gone succeeds.
    fn abort_upload(
        &self,
        key: String,
        upload_id: String,
    ) -> impl Future<Output = PluginResult<()>> + Send {
        let _ = (key, upload_id);
        async { Err(no_uploads()) }
    }

    /// Where `call` runs (see [`Runs`]); the blocking pool by default.
    fn runs(&self, call: BlobCall<'_>) -> Runs {
        let _ = call;
        Runs::Blocking
    }
}

fn no_uploads() -> crate::PluginError {
    crate::PluginError::new(
        crate::ErrorKind::Unsupported,
        "this blob store cannot list or abort multipart uploads",
    )
}

/// An open multipart write. Calls do not overlap: the host awaits each
/// before the next. Dropping it without `complete` should abort the upload.
pub trait BlobWriter: Send + Sync + 'static {
    /// Appends bytes (any size; the plugin re-chunks and may upload in the
    /// background, so the future may finish before the bytes are stored).
    fn write_part(&self, data: Vec<u8>) -> impl Future<Output = PluginResult<()>> + Send;
    /// Uploads what is buffered and makes the object visible.
    fn complete(&self) -> impl Future<Output = PluginResult<ObjectMeta>> + Send;
    /// Discards the upload; the key keeps its previous content.
    fn abort(&self) -> impl Future<Output = PluginResult<()>> + Send;

    /// Where `call` runs (see [`Runs`]); the blocking pool by default.
    fn runs(&self, call: BlobCall<'_>) -> Runs {
        let _ = call;
        Runs::Blocking
    }
}
