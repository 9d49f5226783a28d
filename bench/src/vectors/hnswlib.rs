//! hnswlib (C++, through its Python binding) as a third method of
//! `strata-bench vectors`: `benchmarks/hnswlib_reference.py` runs as a child
//! process per size, builds its index once, then answers one query pass per
//! request, so its passes alternate with the plugin's and hnsw_rs's.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::Duration,
};

use serde_json::Value as Json;

use super::PassOut;

/// The driver script, written next to the data for each run (so the bench
/// binary works from any directory).
const SCRIPT: &str = include_str!("../../../benchmarks/hnswlib_reference.py");

/// A running hnswlib child with its index built.
pub(super) struct Hnswlib {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub(super) build: Duration,
    pub(super) version: String,
}

fn write_f32(path: &Path, rows: impl Iterator<Item = f32>) -> Result<(), String> {
    let bytes: Vec<u8> = rows.flat_map(f32::to_le_bytes).collect();
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The parameters hnswlib gets, the same as the other methods'.
pub(super) struct Params {
    pub(super) dim: usize,
    pub(super) m: usize,
    pub(super) ef_construction: usize,
    /// Results per query.
    pub(super) k: usize,
}

impl Hnswlib {
    /// Writes the data and queries for `python`, starts the script and
    /// waits for its index build.
    pub(super) fn start(
        python: &Path,
        dir: &Path,
        data: &[f32],
        queries: &[Vec<f32>],
        p: &Params,
    ) -> Result<Hnswlib, String> {
        let script = dir.join("hnswlib_reference.py");
        std::fs::write(&script, SCRIPT).map_err(|e| format!("writing the script: {e}"))?;
        let (d, q) = (
            dir.join("hnswlib-data.f32"),
            dir.join("hnswlib-queries.f32"),
        );
        write_f32(&d, data.iter().copied())?;
        write_f32(&q, queries.iter().flatten().copied())?;
        let mut child = Command::new(python)
            .arg(&script)
            .arg(&d)
            .arg(&q)
            .args([p.dim, p.m, p.ef_construction, p.k].map(|x| x.to_string()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", python.display()))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut h = Hnswlib {
            child,
            stdin,
            stdout,
            build: Duration::ZERO,
            version: String::new(),
        };
        let built = h.line()?;
        h.build = Duration::from_secs_f64(built["build_s"].as_f64().unwrap_or(0.0));
        h.version = built["version"].as_str().unwrap_or("?").to_string();
        let _ = std::fs::remove_file(&d);
        Ok(h)
    }

    fn line(&mut self) -> Result<Json, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err(format!(
                "hnswlib_reference.py ended ({:?}); see its error above",
                self.child.wait().ok()
            )),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("hnswlib answer: {e}")),
            Err(e) => Err(format!("reading hnswlib's answer: {e}")),
        }
    }

    /// Warm-up, then one measured pass of every query at `ef`.
    pub(super) fn pass(&mut self, ef: usize, warmup: usize) -> Result<PassOut, String> {
        writeln!(self.stdin, "{ef} {warmup}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("asking hnswlib for a pass: {e}"))?;
        let answer = self.line()?;
        let ids = answer["ids"]
            .as_array()
            .ok_or("hnswlib answer without ids")?
            .iter()
            .map(|r| {
                r.as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|x| x.as_u64())
                            .map(|x| x as usize)
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let lat = answer["lat_ns"]
            .as_array()
            .ok_or("hnswlib answer without latencies")?
            .iter()
            .map(|x| Duration::from_nanos(x.as_u64().unwrap_or(0)))
            .collect();
        let total = Duration::from_nanos(answer["total_ns"].as_u64().unwrap_or(0));
        Ok((ids, lat, total))
    }
}

impl Drop for Hnswlib {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
