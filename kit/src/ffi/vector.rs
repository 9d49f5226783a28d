//! The vector contract's wrapper and conversions.

use std::sync::Arc;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RString, RVec},
};
use strata_plugin_api::{
    Extensions, PluginResult,
    sql::PluginFuture,
    vector::{self as abi, VectorStore_TO, VectorStoreBox},
};

use super::call;
use crate::request::scope;
use crate::{
    guard::{Guarded, ready},
    vector::{
        CollectionInfo, CollectionSpec, DeleteRequest, HybridRequest, Match, Metric, QueryRequest,
        ScanPage, ScanRequest, VectorBackend, VectorCall, VectorRecord,
    },
};

fn spec_in(s: abi::CollectionSpec) -> PluginResult<CollectionSpec> {
    Ok(CollectionSpec {
        name: s.name.into_string(),
        dimension: s.dimension,
        metric: Metric::from_code(s.metric)?,
        options_json: s.options_json.into_string(),
    })
}

fn info_out(i: CollectionInfo) -> abi::CollectionInfo {
    abi::CollectionInfo {
        name: i.name.into(),
        dimension: i.dimension,
        metric: i.metric.code(),
        count: i.count,
        details_json: i.details_json.into(),
        ext: Extensions::new(),
    }
}

fn record_in(r: abi::VectorRecord) -> VectorRecord {
    VectorRecord {
        id: r.id.into_string(),
        vector: r.vector.into_vec(),
        metadata_json: r.metadata_json.into_string(),
        text: r.text.into_option().map(RString::into_string),
    }
}

fn query_in(q: abi::QueryRequest) -> QueryRequest {
    QueryRequest {
        collection: q.collection.into_string(),
        vector: q.vector.into_vec(),
        top_k: q.top_k,
        filter_json: q.filter_json.into_string(),
        include: q.include,
        min_score: q.min_score.into_option(),
        options_json: q.options_json.into_string(),
    }
}

fn hybrid_in(q: abi::HybridRequest) -> HybridRequest {
    HybridRequest {
        collection: q.collection.into_string(),
        vector: q.vector.into_vec(),
        text: q.text.into_string(),
        top_k: q.top_k,
        filter_json: q.filter_json.into_string(),
        include: q.include,
        rrf_k: q.rrf_k,
        dense_weight: q.dense_weight,
        lexical_weight: q.lexical_weight,
        candidates: q.candidates,
    }
}

fn match_out(m: Match) -> abi::Match {
    abi::Match {
        id: m.id.into(),
        score: m.score,
        vector: m.vector.map(RVec::from).into(),
        metadata_json: m.metadata_json.map(RString::from).into(),
        text: m.text.map(RString::from).into(),
        ext: Extensions::new(),
    }
}

fn matches_out(m: Vec<Match>) -> RVec<abi::Match> {
    m.into_iter().map(match_out).collect()
}

fn strings_in(v: RVec<RString>) -> Vec<String> {
    v.into_iter().map(RString::into_string).collect()
}

fn delete_in(d: abi::DeleteRequest) -> DeleteRequest {
    DeleteRequest {
        collection: d.collection.into_string(),
        ids: strings_in(d.ids),
        filter_json: d.filter_json.into_string(),
        all: d.all,
    }
}

fn scan_in(s: abi::ScanRequest) -> ScanRequest {
    ScanRequest {
        collection: s.collection.into_string(),
        cursor: s.cursor.into_option().map(RString::into_string),
        limit: s.limit,
        filter_json: s.filter_json.into_string(),
        include: s.include,
    }
}

fn page_out(p: ScanPage) -> abi::ScanPage {
    abi::ScanPage {
        records: matches_out(p.records),
        next_cursor: p.next_cursor.map(RString::from).into(),
        ext: Extensions::new(),
    }
}

/// A backend as the ABI's vector store.
pub(crate) fn store<B: VectorBackend>(backend: Arc<B>) -> VectorStoreBox {
    VectorStore_TO::from_value(Store(Guarded::new(backend)), TD_Opaque)
}

struct Store<B>(Guarded<Arc<B>>);

impl<B: VectorBackend> abi::VectorStore for Store<B> {
    fn create_collection(&self, spec: abi::CollectionSpec) -> PluginFuture<()> {
        let b = self.0.get().clone();
        let spec = match spec_in(spec) {
            Ok(spec) => spec,
            Err(e) => return ready(Err(e)),
        };
        call(move || {
            (b.runs(VectorCall::CreateCollection(&spec)), async move {
                b.create_collection(spec).await
            })
        })
    }

    fn drop_collection(&self, name: RString) -> PluginFuture<bool> {
        let b = self.0.get().clone();
        call(move || {
            let name = name.into_string();
            (b.runs(VectorCall::DropCollection(&name)), async move {
                b.drop_collection(name).await
            })
        })
    }

    fn list_collections(&self) -> PluginFuture<RVec<abi::CollectionInfo>> {
        let b = self.0.get().clone();
        call(move || {
            (b.runs(VectorCall::ListCollections), async move {
                let list = b.list_collections().await?;
                Ok(list.into_iter().map(info_out).collect())
            })
        })
    }

    fn collection_info(&self, name: RString) -> PluginFuture<ROption<abi::CollectionInfo>> {
        let b = self.0.get().clone();
        call(move || {
            let name = name.into_string();
            (b.runs(VectorCall::CollectionInfo(&name)), async move {
                Ok(b.collection_info(name).await?.map(info_out).into())
            })
        })
    }

    fn upsert(&self, request: abi::UpsertRequest) -> PluginFuture<u64> {
        let b = self.0.get().clone();
        call(move || {
            let collection = request.collection.into_string();
            let records: Vec<VectorRecord> = request.records.into_iter().map(record_in).collect();
            (
                b.runs(VectorCall::Upsert(&collection, &records)),
                scope(
                    request.ext,
                    async move { b.upsert(collection, records).await },
                ),
            )
        })
    }

    fn query(&self, request: abi::QueryRequest) -> PluginFuture<RVec<abi::Match>> {
        let b = self.0.get().clone();
        call(move || {
            let ext = request.ext.clone();
            let request = query_in(request);
            (
                b.runs(VectorCall::Query(&request)),
                scope(ext, async move { b.query(request).await.map(matches_out) }),
            )
        })
    }

    fn hybrid_query(&self, request: abi::HybridRequest) -> PluginFuture<RVec<abi::Match>> {
        let b = self.0.get().clone();
        call(move || {
            let ext = request.ext.clone();
            let request = hybrid_in(request);
            (
                b.runs(VectorCall::HybridQuery(&request)),
                scope(ext, async move {
                    b.hybrid_query(request).await.map(matches_out)
                }),
            )
        })
    }

    fn fetch(&self, request: abi::FetchRequest) -> PluginFuture<RVec<abi::Match>> {
        let b = self.0.get().clone();
        call(move || {
            let collection = request.collection.into_string();
            let ids = strings_in(request.ids);
            let include = request.include;
            (
                b.runs(VectorCall::Fetch(&collection, &ids)),
                scope(request.ext, async move {
                    b.fetch(collection, ids, include).await.map(matches_out)
                }),
            )
        })
    }

    fn delete(&self, request: abi::DeleteRequest) -> PluginFuture<u64> {
        let b = self.0.get().clone();
        call(move || {
            let ext = request.ext.clone();
            let request = delete_in(request);
            (
                b.runs(VectorCall::Delete(&request)),
                scope(ext, async move { b.delete(request).await }),
            )
        })
    }

    fn count(&self, request: abi::CountRequest) -> PluginFuture<u64> {
        let b = self.0.get().clone();
        call(move || {
            let collection = request.collection.into_string();
            let filter_json = request.filter_json.into_string();
            (
                b.runs(VectorCall::Count(&collection, &filter_json)),
                scope(request.ext, async move {
                    b.count(collection, filter_json).await
                }),
            )
        })
    }

    fn scan(&self, request: abi::ScanRequest) -> PluginFuture<abi::ScanPage> {
        let b = self.0.get().clone();
        call(move || {
            let ext = request.ext.clone();
            let request = scan_in(request);
            (
                b.runs(VectorCall::Scan(&request)),
                scope(ext, async move { b.scan(request).await.map(page_out) }),
            )
        })
    }
}
