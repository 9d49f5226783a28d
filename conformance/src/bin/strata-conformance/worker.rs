//! The child process: loads the plugin step by step, announcing each entry
//! point before calling it, then runs the cases it is given and reports
//! each one. If the plugin kills this process, the parent knows from the
//! last message which step or case did it.
//!
//! Invoked as `strata-conformance --worker PLUGIN CONFIG TIMEOUT_SECS`, the
//! case ids on stdin (one per line).

use std::{
    io::{BufRead, Write},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use strata_conformance::{ConformanceConfig, Event, Expectations, RunError, Target, runner::run};
use strata_host::{Backend, Plugin};
use strata_plugin_api::{PluginModRef, abi_stable::library::lib_header_from_path, contracts};

use crate::protocol::{Loaded, Message};

/// The hidden first argument that makes this program the worker.
pub(crate) const FLAG: &str = "--worker";

fn send(m: Message) {
    let mut out = std::io::stdout().lock();
    // The parent reads to the end; a broken pipe means it is gone.
    let _ = writeln!(out, "{}", m.line());
    let _ = out.flush();
}

fn step(name: &str) {
    send(Message::Step(name.to_string()));
}

fn stop(step: &str, message: impl std::fmt::Display) -> ! {
    send(Message::error(RunError {
        step: step.to_string(),
        message: message.to_string(),
    }));
    std::process::exit(0);
}

/// The worker's `main`.
pub(crate) fn main(args: Vec<std::ffi::OsString>) -> ! {
    let [plugin, config, timeout] = <[_; 3]>::try_from(args).unwrap_or_else(|a| {
        eprintln!("strata-conformance --worker: expected PLUGIN CONFIG TIMEOUT_SECS, got {a:?}");
        std::process::exit(2)
    });
    let timeout = timeout
        .to_str()
        .and_then(|t| t.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(120));
    let ids: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.is_empty())
        .collect();
    // One line per panic: cases panic on purpose (a transaction rolled back
    // by unwinding), and a backtrace per panic buries the report.
    std::panic::set_hook(Box::new(|info| {
        let msg = strata_plugin_api::error::panic_message(info.payload());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("panic: {msg}{at}");
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| stop("start", format!("cannot start a tokio runtime: {e}")));
    runtime.block_on(work(
        PathBuf::from(plugin),
        PathBuf::from(config),
        timeout,
        ids,
    ));
    send(Message::Finished);
    // Not waiting for the runtime to wind down: a call a case abandoned
    // may still run on a plugin's thread, and the run is over.
    std::process::exit(0)
}

async fn work(plugin: PathBuf, config_file: PathBuf, timeout: Duration, ids: Vec<String>) {
    step("config");
    let config = ConformanceConfig::read(&config_file).unwrap_or_else(|e| stop("config", e));
    let plugin = load(&plugin);
    let info = plugin.info().clone();
    send(Message::Loaded(Loaded {
        name: info.name.clone(),
        version: info.version.clone(),
        api_version: info.api_version.clone(),
        contracts: info
            .contract_names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }));
    step("config schema");
    if let Err(e) = plugin.validate_config(&config_file, "conformance", &config.plugin) {
        stop("config schema", e);
    }
    let target = Arc::new(Target::new(plugin, config.plugin, &config_file));
    probe(&target).await;
    let cases: Vec<_> = ids
        .iter()
        .map(|id| {
            strata_conformance::find(id)
                .unwrap_or_else(|| stop("cases", format!("no case `{id}` in this build")))
        })
        .collect();
    // Verdicts are the parent's business: it knows the expectations.
    let report = run(
        target,
        &cases,
        &Expectations::none(),
        timeout,
        |e| match e {
            Event::Started(c) => send(Message::Start(c.id())),
            Event::Finished(o) => send(Message::done(&o.id, &o.outcome, o.duration)),
        },
    )
    .await;
    if let Some(e) = report.error {
        send(Message::error(e));
    }
}

/// Loads the library, calling its root module and manifest as steps of
/// their own, then through the host's loader (which reports a refused
/// library with the host's own explanation).
fn load(path: &Path) -> Arc<Plugin> {
    step("load");
    let loaded = lib_header_from_path(path)
        .ok()
        .and_then(|h| h.init_root_module::<PluginModRef>().ok());
    if let Some(module) = loaded {
        step("manifest");
        let _ = (module.manifest())();
    }
    // The library is loaded once (abi_stable keeps it): this checks it
    // again and reads the manifest for the host.
    Plugin::load(path).unwrap_or_else(|e| stop("load", e))
}

/// Opens a backend, asks for each handle its contracts promise, checks its
/// health, closes and drops it: every entry point a raw plugin could abort
/// in, one step each.
async fn probe(target: &Target) {
    step("open");
    let backend: Backend = target.open().await.unwrap_or_else(|e| stop("open", e));
    step("capabilities()");
    if let Err(e) = backend.capabilities() {
        stop("capabilities()", e);
    }
    let contracts = target.plugin().info().contracts;
    if contracts & contracts::SQL != 0 {
        step("sql()");
        if let Err(e) = backend.sql() {
            stop("sql()", e);
        }
    }
    if contracts & contracts::VECTOR != 0 {
        step("vectors()");
        if let Err(e) = backend.vectors() {
            stop("vectors()", e);
        }
    }
    if contracts & contracts::BLOB != 0 {
        step("blobs()");
        if let Err(e) = backend.blobs() {
            stop("blobs()", e);
        }
    }
    step("health");
    match backend.health().await {
        Ok(text) => send(Message::Health(text)),
        Err(e) => send(Message::Health(format!("failed: {e}"))),
    }
    step("close");
    if let Err(e) = backend.close().await {
        stop("close", e);
    }
    step("drop");
    drop(backend);
    step("cases");
}
