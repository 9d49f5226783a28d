//! The blob contract's wrappers and conversions.

use std::sync::Arc;

use abi_stable::{sabi_trait::TD_Opaque, std_types::RString};
use strata_plugin_api::{
    Extensions,
    blob::{
        self as abi, BlobStore_TO, BlobStoreBox, BlobUploads_TO, BlobUploadsBox, BlobWriter_TO,
        BlobWriterBox,
    },
    sql::PluginFuture,
};

use super::call;
use crate::{
    blob::{
        BlobBackend, BlobCall, BlobWriter, ByteRange, GetRequest, GetResponse, ListPage,
        ListRequest, MultipartRequest, ObjectMeta, PutRequest,
    },
    guard::Guarded,
};

fn meta_out(m: ObjectMeta) -> abi::ObjectMeta {
    abi::ObjectMeta {
        key: m.key.into(),
        size: m.size,
        last_modified_ms: m.last_modified_ms.into(),
        etag: m.etag.map(RString::from).into(),
        ext: Extensions::new(),
    }
}

/// A backend as the ABI's blob store.
pub(crate) fn store<B: BlobBackend>(backend: Arc<B>) -> BlobStoreBox {
    BlobStore_TO::from_value(Store(Guarded::new(backend)), TD_Opaque)
}

struct Store<B>(Guarded<Arc<B>>);

impl<B: BlobBackend> abi::BlobStore for Store<B> {
    fn put(&self, req: abi::PutRequest) -> PluginFuture<abi::ObjectMeta> {
        let b = self.0.get().clone();
        call(move || {
            let req = PutRequest {
                key: req.key.into_string(),
                data: req.data.into_vec(),
                content_type: req.content_type.into_string(),
            };
            (b.runs(BlobCall::Put(&req)), async move {
                b.put(req).await.map(meta_out)
            })
        })
    }

    fn get(&self, req: abi::GetRequest) -> PluginFuture<abi::GetResponse> {
        let b = self.0.get().clone();
        call(move || {
            let req = GetRequest {
                key: req.key.into_string(),
                range: req.range.into_option().map(|r| ByteRange {
                    start: r.start,
                    end: r.end,
                }),
            };
            (b.runs(BlobCall::Get(&req)), async move {
                let GetResponse { meta, data } = b.get(req).await?;
                Ok(abi::GetResponse {
                    meta: meta_out(meta),
                    data: data.into(),
                    ext: Extensions::new(),
                })
            })
        })
    }

    fn head(&self, key: RString) -> PluginFuture<abi::ObjectMeta> {
        let b = self.0.get().clone();
        call(move || {
            let key = key.into_string();
            (b.runs(BlobCall::Head(&key)), async move {
                b.head(key).await.map(meta_out)
            })
        })
    }

    fn list(&self, req: abi::ListRequest) -> PluginFuture<abi::ListPage> {
        let b = self.0.get().clone();
        call(move || {
            let req = ListRequest {
                prefix: req.prefix.into_string(),
                cursor: req.cursor.into_option().map(RString::into_string),
                limit: req.limit,
            };
            (b.runs(BlobCall::List(&req)), async move {
                let ListPage {
                    objects,
                    next_cursor,
                } = b.list(req).await?;
                Ok(abi::ListPage {
                    objects: objects.into_iter().map(meta_out).collect(),
                    next_cursor: next_cursor.map(RString::from).into(),
                    ext: Extensions::new(),
                })
            })
        })
    }

    fn delete(&self, key: RString) -> PluginFuture<()> {
        let b = self.0.get().clone();
        call(move || {
            let key = key.into_string();
            (b.runs(BlobCall::Delete(&key)), async move {
                b.delete(key).await
            })
        })
    }

    fn put_multipart(&self, req: abi::MultipartRequest) -> PluginFuture<BlobWriterBox> {
        let b = self.0.get().clone();
        call(move || {
            let req = MultipartRequest {
                key: req.key.into_string(),
                content_type: req.content_type.into_string(),
            };
            (b.runs(BlobCall::PutMultipart(&req)), async move {
                let w = b.put_multipart(req).await?;
                Ok(BlobWriter_TO::from_value(
                    Writer(Guarded::new(Arc::new(w))),
                    TD_Opaque,
                ))
            })
        })
    }
}

struct Writer<W>(Guarded<Arc<W>>);

impl<W: BlobWriter> abi::BlobWriter for Writer<W> {
    fn write_part(&self, data: abi_stable::std_types::RVec<u8>) -> PluginFuture<()> {
        let w = self.0.get().clone();
        call(move || {
            let data = data.into_vec();
            (w.runs(BlobCall::WritePart(&data)), async move {
                w.write_part(data).await
            })
        })
    }

    fn complete(&self) -> PluginFuture<abi::ObjectMeta> {
        let w = self.0.get().clone();
        call(move || {
            (w.runs(BlobCall::Complete), async move {
                w.complete().await.map(meta_out)
            })
        })
    }

    fn abort(&self) -> PluginFuture<()> {
        let w = self.0.get().clone();
        call(move || (w.runs(BlobCall::Abort), async move { w.abort().await }))
    }
}

/// A backend as the ABI's `strata.blob.uploads.v1` interface.
pub(crate) fn uploads<B: BlobBackend>(backend: Arc<B>) -> BlobUploadsBox {
    BlobUploads_TO::from_value(Uploads(Guarded::new(backend)), TD_Opaque)
}

struct Uploads<B>(Guarded<Arc<B>>);

impl<B: BlobBackend> abi::BlobUploads for Uploads<B> {
    fn list_uploads(
        &self,
        prefix: RString,
    ) -> PluginFuture<abi_stable::std_types::RVec<abi::PendingUpload>> {
        let b = self.0.get().clone();
        call(move || {
            let prefix = prefix.into_string();
            (b.runs(BlobCall::ListUploads(&prefix)), async move {
                Ok(b.list_uploads(prefix)
                    .await?
                    .into_iter()
                    .map(|u| abi::PendingUpload {
                        key: u.key.into(),
                        upload_id: u.upload_id.into(),
                        initiated_ms: u.initiated_ms.into(),
                        ext: Extensions::new(),
                    })
                    .collect())
            })
        })
    }

    fn abort_upload(&self, key: RString, upload_id: RString) -> PluginFuture<()> {
        let b = self.0.get().clone();
        call(move || {
            let (key, upload_id) = (key.into_string(), upload_id.into_string());
            (b.runs(BlobCall::AbortUpload(&key)), async move {
                b.abort_upload(key, upload_id).await
            })
        })
    }
}
