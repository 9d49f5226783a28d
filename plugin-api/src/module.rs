//! The root module every plugin library exports, the open handshake, and
//! the opened backend.

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RStr, RString, RVec},
};

use crate::{
    PluginError,
    blob::BlobStoreBox,
    ext::Extensions,
    interface::InterfaceBox,
    manifest::ManifestRef,
    sql::{PluginFuture, SqlConnectionBox},
    vector::VectorStoreBox,
};

/// The root module: the only symbol the host looks up in a plugin library.
///
/// A prefix type, frozen for 1.x: abi_stable refuses a library whose
/// prefix type has fewer fields than the host's, so a field appended here
/// would lock out every plugin built before it. New entry points are
/// interfaces found by name ([`crate::interface`]), new descriptions go into
/// the manifest's `ext` and new open arguments into [`OpenArgs::ext`]. The
/// host checks the plugin-api version (same major) and the layout of every
/// type reachable from here when it loads the library.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
pub struct PluginMod {
    /// Describes the plugin: name, version, contracts, capabilities, config
    /// schema. Must not unwind; returns the same manifest every time.
    pub manifest: extern "C" fn() -> ManifestRef,
    /// Opens a backend. Must not unwind: the work happens in the future.
    #[sabi(last_prefix_field)]
    pub open: extern "C" fn(args: OpenArgs) -> PluginFuture<BackendBox>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "strata_plugin";
    const NAME: &'static str = "strata_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// What the host hands a plugin's `open`: the handshake's host side (the
/// manifest is the plugin's side).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct OpenArgs {
    /// The backend's config as JSON text, already validated against the
    /// manifest's schema (`${VAR}`s interpolated).
    pub config_json: RString,
    /// The backend's name in the host's config (`local`, `pg`, …).
    pub backend: RString,
    /// The directory relative paths in the config resolve against (the
    /// directory of `plugins.toml`); empty when the host has none.
    pub base_dir: RString,
    /// The host's version (`strata-host` crate version).
    pub host_version: RString,
    /// Feature names the host supports beyond plugin-api 1.0 (for a plugin
    /// to know which documented extension keys the host understands).
    pub features: RVec<RString>,
    /// Further arguments of later 1.x releases.
    pub ext: Extensions,
}

/// An opened backend: hands out the contract handles it implements.
///
/// The accessors are synchronous and cheap. They return a result so that a
/// failure (a panic caught inside the plugin, a handle that cannot be made)
/// is reported as itself, not as a missing contract.
#[sabi_trait]
pub trait Backend: Send + Sync {
    /// The SQL handle, when the plugin implements the SQL contract.
    fn sql(&self) -> RResult<ROption<SqlConnectionBox>, PluginError>;
    /// The vector store, when the plugin implements the vector contract.
    fn vectors(&self) -> RResult<ROption<VectorStoreBox>, PluginError>;
    /// The blob store, when the plugin implements the blob contract.
    fn blobs(&self) -> RResult<ROption<BlobStoreBox>, PluginError>;
    /// This opened backend's capability flags (they may depend on the
    /// config or on what the server supports): a subset of the manifest's.
    fn capabilities(&self) -> RResult<RVec<RString>, PluginError>;
    /// The interface `name` (see [`crate::interface`]), when this backend
    /// implements it: how entry points added after 1.0 are found.
    fn interface(&self, name: RStr<'_>) -> RResult<ROption<InterfaceBox>, PluginError>;
    /// A cheap liveness check; the text describes what was checked.
    fn health(&self) -> PluginFuture<RString>;
    /// Closes every handle of this backend.
    #[sabi(last_prefix_field)]
    fn close(&self) -> PluginFuture<()>;
}

/// An opened backend as a boxed trait object.
pub type BackendBox = Backend_TO<'static, RBox<()>>;
