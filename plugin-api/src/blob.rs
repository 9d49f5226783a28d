//! The blob-store contract (objects in S3 and S3-compatible stores; backups).
//!
//! Keys are UTF-8 strings up to 1,024 bytes, `/`-separated by convention
//! (a plugin may add its own configured prefix in front; every key crossing
//! this ABI is relative to it). Values are opaque bytes.
//!
//! # Shape of the ABI
//!
//! Kept small and append-only, like the other contracts: each method takes
//! one request struct (a later minor version can append a field to the
//! *trait* by adding a method, never by changing a signature).
//!
//! - [`BlobStore::put`] writes a whole object from one buffer — for small
//!   objects (manifests, a few MB).
//! - [`BlobStore::put_multipart`] opens a [`BlobWriter`]: the caller hands
//!   over parts of any size with [`BlobWriter::write_part`] (the plugin
//!   re-chunks them to what its store needs, e.g. S3's 5 MiB minimum part,
//!   and may upload several parts at once), then
//!   [`complete`](BlobWriter::complete)s or [`abort`](BlobWriter::abort)s.
//!   Nothing is visible under the key before `complete`; dropping a writer
//!   without completing aborts the upload. This is how large objects stream
//!   without the host ever holding the whole object.
//! - [`BlobStore::get`] reads an object, or a byte range of it: large
//!   objects are read range by range (several ranges may be in flight), so
//!   no streaming handle is needed across the boundary.
//! - [`BlobStore::list`] is paginated by an opaque cursor, with a plain
//!   string prefix (not a "directory": prefix `a/b` matches `a/bc`).
//! - A missing key is [`ErrorKind::NotFound`](crate::ErrorKind::NotFound)
//!   for `get` and `head`; `delete` of a missing key succeeds (S3 semantics,
//!   which make deletes idempotent).

use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RBox, ROption, RString, RVec},
};

use crate::{ext::Extensions, sql::PluginFuture};

/// What the store knows about one object.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ObjectMeta {
    /// The key (relative to the plugin's configured prefix).
    pub key: RString,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, milliseconds since the Unix epoch, when the store reports it.
    pub last_modified_ms: ROption<i64>,
    /// The store's entity tag, when it reports one.
    pub etag: ROption<RString>,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// A whole-object write.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PutRequest {
    /// The key to write (an existing object is replaced).
    pub key: RString,
    /// The object's bytes.
    pub data: RVec<u8>,
    /// `Content-Type`, `""` for the store's default.
    pub content_type: RString,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// A byte range `[start, end)`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte (clamped to the object's size by the store).
    pub end: u64,
}

/// A read.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct GetRequest {
    /// The key to read.
    pub key: RString,
    /// Only these bytes (`RNone` = the whole object).
    pub range: ROption<ByteRange>,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// What a read returns.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct GetResponse {
    /// The whole object's metadata (its `size` is the full size, not the range's).
    pub meta: ObjectMeta,
    /// The bytes read.
    pub data: RVec<u8>,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// One page of a listing.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ListRequest {
    /// Only keys starting with this text (`""` = all).
    pub prefix: RString,
    /// The cursor of the previous page (`RNone` for the first).
    pub cursor: ROption<RString>,
    /// At most this many objects per page (`0` = the store's default, ≤ 1,000 on S3).
    pub limit: u32,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// A page of objects, in key order, and the cursor of the next page.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ListPage {
    /// Objects of this page.
    pub objects: RVec<ObjectMeta>,
    /// `RNone` after the last page.
    pub next_cursor: ROption<RString>,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// Starts a multipart write.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct MultipartRequest {
    /// The key to write (replaced on `complete`).
    pub key: RString,
    /// `Content-Type`, `""` for the store's default.
    pub content_type: RString,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// The blob-store contract.
#[sabi_trait]
pub trait BlobStore: Send + Sync {
    /// Writes a whole object.
    fn put(&self, req: PutRequest) -> PluginFuture<ObjectMeta>;
    /// Reads an object or a range of it; `NotFound` when the key is missing.
    fn get(&self, req: GetRequest) -> PluginFuture<GetResponse>;
    /// An object's metadata; `NotFound` when the key is missing.
    fn head(&self, key: RString) -> PluginFuture<ObjectMeta>;
    /// One page of the objects whose key starts with a prefix, in key order.
    fn list(&self, req: ListRequest) -> PluginFuture<ListPage>;
    /// Deletes an object; deleting a missing key succeeds.
    fn delete(&self, key: RString) -> PluginFuture<()>;
    /// Opens a streaming multipart write.
    #[sabi(last_prefix_field)]
    fn put_multipart(&self, req: MultipartRequest) -> PluginFuture<BlobWriterBox>;
}

/// A blob store as a boxed trait object.
pub type BlobStoreBox = BlobStore_TO<'static, RBox<()>>;

/// An open multipart write. Calls must not overlap: await each before the next.
#[sabi_trait]
pub trait BlobWriter: Send + Sync {
    /// Appends bytes (any size; the plugin re-chunks and may upload in the
    /// background, so the future may finish before the bytes are stored).
    fn write_part(&self, data: RVec<u8>) -> PluginFuture<()>;
    /// Uploads what is buffered and makes the object visible.
    fn complete(&self) -> PluginFuture<ObjectMeta>;
    /// Discards the upload; the key keeps its previous content.
    #[sabi(last_prefix_field)]
    fn abort(&self) -> PluginFuture<()>;
}

/// An open multipart write as a boxed trait object.
pub type BlobWriterBox = BlobWriter_TO<'static, RBox<()>>;

/// The name of the [`BlobUploads`] interface (1.1), found with
/// [`Backend::interface`](crate::Backend::interface). A plugin built before
/// it, or one whose store cannot list multipart uploads, answers "none".
pub const BLOB_UPLOADS_V1: &str = "strata.blob.uploads.v1";

/// A multipart upload begun and neither completed nor aborted: what a
/// process killed mid-upload leaves behind (S3 keeps its parts, and bills
/// them, until the upload is aborted).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PendingUpload {
    /// The key being written (relative to the plugin's prefix).
    pub key: RString,
    /// The store's id of the upload, for [`BlobUploads::abort_upload`].
    pub upload_id: RString,
    /// When it began, Unix milliseconds, if the store says.
    pub initiated_ms: ROption<i64>,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// Interface [`BLOB_UPLOADS_V1`]: the multipart uploads left open in a blob
/// store, and aborting them. Neither is in [`BlobStore`] (1.0), which
/// cannot grow within 1.x.
#[sabi_trait]
pub trait BlobUploads: Send + Sync {
    /// Every open multipart upload whose key starts with `prefix`, in key
    /// order (a store that pages its answer is read to the end).
    fn list_uploads(&self, prefix: RString) -> PluginFuture<RVec<PendingUpload>>;
    /// Aborts upload `upload_id` of `key`: its parts are discarded and the
    /// key keeps its previous content. Aborting one that is gone succeeds.
    #[sabi(last_prefix_field)]
    fn abort_upload(&self, key: RString, upload_id: RString) -> PluginFuture<()>;
}

/// The [`BlobUploads`] interface as a boxed trait object.
pub type BlobUploadsBox = BlobUploads_TO<'static, RBox<()>>;
