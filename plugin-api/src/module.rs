//! The root module every plugin library exports, and the opened backend.

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RString, RVec},
};

use crate::{
    blob::BlobStoreBox,
    manifest::Manifest,
    sql::{PluginFuture, SqlConnectionBox},
    vector::VectorStoreBox,
};

/// The root module: the only symbol the host looks up in a plugin library.
///
/// It is an abi_stable *prefix type*: fields may be appended after the last
/// prefix field in later minor versions, never removed or reordered. The
/// host checks the plugin-api version (semver) and the layout of every type
/// reachable from here when it loads the library.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Describes the plugin: name, versions, contracts, capabilities, config schema.
    pub manifest: extern "C" fn() -> Manifest,
    /// Opens a backend from its config, given as JSON text that the host has
    /// already validated against the manifest's schema.
    #[sabi(last_prefix_field)]
    pub open: extern "C" fn(config_json: RString) -> PluginFuture<BackendBox>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "strata_plugin";
    const NAME: &'static str = "strata_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// An opened backend: hands out the contract handles it implements.
#[sabi_trait]
pub trait Backend: Send + Sync {
    /// The SQL handle, when the plugin implements the SQL contract.
    fn sql(&self) -> ROption<SqlConnectionBox>;
    /// The vector store, when the plugin implements the vector contract.
    fn vectors(&self) -> ROption<VectorStoreBox>;
    /// A cheap liveness check; the text describes what was checked.
    fn health(&self) -> PluginFuture<RString>;
    /// Closes every handle of this backend.
    #[sabi(last_prefix_field)]
    fn close(&self) -> PluginFuture<()>;
    /// The blob store, when the plugin implements the blob contract.
    ///
    /// Appended after the last prefix field (plugin-api 0.1 minor
    /// evolution): a plugin built before it has no such vtable entry, so
    /// the host calls it only when the manifest lists
    /// [`contracts::BLOB`](crate::contracts::BLOB).
    fn blobs(&self) -> ROption<BlobStoreBox> {
        ROption::RNone
    }

    /// This opened backend's capability flags, when they differ from the
    /// manifest's (they may depend on the config or on what the server
    /// supports). Appended after `blobs`: a plugin built before it answers
    /// `RNone` through this default, and the host uses the manifest's list.
    fn capabilities(&self) -> ROption<RVec<RString>> {
        ROption::RNone
    }
}

/// An opened backend as a boxed trait object.
pub type BackendBox = Backend_TO<'static, RBox<()>>;
