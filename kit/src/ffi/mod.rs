//! The generated side of the boundary: a wrapper per ABI trait object that
//! calls the plugin's ordinary traits (DataFusion's "foreign wrapper"
//! pattern, plugin side), the root module, the manifest and `open`.
//!
//! Every method here follows one shape ([`call`]): convert the ABI request
//! into the kit's types, ask the backend where the call runs, build the
//! backend's future, all under a panic guard; then place the future
//! ([`crate::runs`]) behind a guard that also contains panics in its drop.
//! Results are converted back inside the future, on the plugin's side.

pub(crate) mod blob;
pub(crate) mod sql;
pub(crate) mod vector;

use std::{
    future::Future,
    sync::{Arc, OnceLock},
};

use abi_stable::{
    library::{__call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult},
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec},
};
use strata_plugin_api::{
    Backend, Backend_TO, BackendBox, InterfaceBox, Manifest, ManifestRef, OpenArgs, PluginError,
    PluginMod, PluginModRef, PluginResult, blob::BlobStoreBox, sql::PluginFuture,
    sql::SqlConnectionBox, vector::VectorStoreBox,
};

use crate::{
    OpenContext, Plugin, Runs,
    guard::{Guarded, catch, ready},
    plugin::{config_schema, parse_config},
    runs::place,
};

/// Builds a call's future under a panic guard, then places it where `build`
/// says it runs. A panic while building comes back as an `internal` error.
pub(crate) fn call<T, Fut>(build: impl FnOnce() -> (Runs, Fut)) -> PluginFuture<T>
where
    T: Send + 'static,
    Fut: Future<Output = PluginResult<T>> + Send + 'static,
{
    match catch(|| Ok(build())) {
        Ok((runs, fut)) => place(runs, fut),
        Err(e) => ready(Err(e)),
    }
}

/// The library header `export_plugin!` exports for plugin `P`.
pub const fn lib_header<P: Plugin>() -> LibHeader {
    // SAFETY: the constructor returns the root module of type
    // `PluginModRef`, the module type the header is declared for.
    unsafe { LibHeader::from_constructor::<PluginModRef>(erased::<P>, CheckTypeLayout::Yes) }
}

extern "C" fn erased<P: Plugin>() -> RootModuleResult {
    // abi_stable's loader catches a panic here and fails the load with it.
    __call_root_module_loader(root::<P>)
}

fn root<P: Plugin>() -> PluginModRef {
    let thread_name: &'static str = Box::leak(format!("strata-{}", P::NAME).into_boxed_str());
    crate::runs::configure(thread_name, P::WORKER_THREADS);
    P::init();
    PluginMod {
        manifest: manifest::<P>,
        open: open::<P>,
    }
    .leak_into_prefix()
}

extern "C" fn manifest<P: Plugin>() -> ManifestRef {
    // Built once and leaked: the library, and so its manifest, lives as
    // long as the process (the host never unloads a plugin).
    static MANIFEST: OnceLock<ManifestRef> = OnceLock::new();
    *MANIFEST.get_or_init(|| {
        // Generating the schema runs the config type's `JsonSchema` impl;
        // should it panic, an empty schema still leaves the kit's parser
        // refusing bad keys.
        let schema = catch(|| Ok(config_schema::<P::Config>())).unwrap_or_else(|_| "{}".into());
        let leak = |s: String| RStr::from_str(Box::leak(s.into_boxed_str()));
        let capabilities: Vec<RStr<'static>> =
            P::CAPABILITIES.iter().map(|c| RStr::from_str(c)).collect();
        Manifest {
            name: RStr::from_str(P::NAME),
            version: RStr::from_str(P::VERSION),
            description: RStr::from_str(P::DESCRIPTION),
            contracts: P::CONTRACTS.bits(),
            capabilities: RSlice::from_slice(Box::leak(capabilities.into_boxed_slice())),
            dialect: RStr::from_str(P::DIALECT.unwrap_or("")),
            config_schema: leak(schema),
            ext: RSlice::from_slice(&[]),
        }
        .leak_into_prefix()
    })
}

extern "C" fn open<P: Plugin>(args: OpenArgs) -> PluginFuture<BackendBox> {
    call(move || {
        (P::RUNS, async move {
            let OpenArgs {
                config_json,
                backend,
                base_dir,
                host_version,
                features,
                ..
            } = args;
            let config: P::Config = parse_config(P::NAME, &config_json)?;
            let non_empty = |s: RString| Some(s.into_string()).filter(|s| !s.is_empty());
            let ctx = OpenContext {
                backend: non_empty(backend),
                base_dir: non_empty(base_dir).map(Into::into),
                host_version: non_empty(host_version),
                features: features.into_iter().map(RString::into_string).collect(),
            };
            let backend = P::open(config, ctx).await?;
            Ok(Backend_TO::from_value(
                BackendAdapter(Guarded::new(Arc::new(backend))),
                TD_Opaque,
            ))
        })
    })
}

/// An opened backend as the host sees it.
struct BackendAdapter<P>(Guarded<Arc<P>>);

impl<P: Plugin> Backend for BackendAdapter<P> {
    fn sql(&self) -> RResult<ROption<SqlConnectionBox>, PluginError> {
        catch(|| Ok(self.0.get().sql().map(|h| h.conn).into())).into()
    }

    fn vectors(&self) -> RResult<ROption<VectorStoreBox>, PluginError> {
        catch(|| Ok(self.0.get().vectors().map(|h| h.0).into())).into()
    }

    fn blobs(&self) -> RResult<ROption<BlobStoreBox>, PluginError> {
        catch(|| Ok(self.0.get().blobs().map(|h| h.store).into())).into()
    }

    fn capabilities(&self) -> RResult<RVec<RString>, PluginError> {
        catch(|| {
            Ok(self
                .0
                .get()
                .capabilities()
                .into_iter()
                .map(RString::from)
                .collect())
        })
        .into()
    }

    fn interface(&self, name: RStr<'_>) -> RResult<ROption<InterfaceBox>, PluginError> {
        // The interfaces added since 1.0 that the plugin's traits implement.
        catch(|| {
            Ok(match name.as_str() {
                strata_plugin_api::blob::BLOB_UPLOADS_V1 => self
                    .0
                    .get()
                    .blobs()
                    .and_then(|h| h.uploads)
                    .map(|make| make())
                    .into(),
                strata_plugin_api::sql::SQL_TRANSACTION_BULK_V1 => self
                    .0
                    .get()
                    .sql()
                    .and_then(|h| h.transaction_bulk)
                    .map(|make| make())
                    .into(),
                _ => ROption::RNone,
            })
        })
        .into()
    }

    fn health(&self) -> PluginFuture<RString> {
        let backend = self.0.get().clone();
        call(move || {
            (
                P::RUNS,
                async move { backend.health().await.map(RString::from) },
            )
        })
    }

    fn close(&self) -> PluginFuture<()> {
        let backend = self.0.get().clone();
        call(move || (P::RUNS, async move { backend.close().await }))
    }
}
