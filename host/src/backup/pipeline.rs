//! The streams between a snapshot file and the blob store: compress, hash
//! and upload in chunks; download, decompress, hash and check against the
//! manifest. A thread does the (de)compression while the async side talks to
//! the blob store, and nothing holds a whole object in memory.

use std::{
    io::{Read, Write},
    path::Path,
    sync::{Arc, mpsc},
};

use sha2::{Digest, Sha256};
use strata_plugin_api::PluginError;

use crate::{
    blob::{self, Blobs},
    config::Compression,
    error::{Error, Result},
    progress::{NoProgress, Progress, Step, StepGuard},
};

use super::{
    error::{BackupError, io},
    manifest::Manifest,
};

const CHUNK: usize = blob::DEFAULT_CHUNK;
const ZSTD_LEVEL: i32 = 3;

/// Sizes and hashes of an upload.
pub(super) struct UploadSummary {
    pub(super) snapshot_size: u64,
    pub(super) snapshot_sha256: String,
    pub(super) object_size: u64,
    pub(super) object_sha256: String,
}

/// Collects compressed output into chunks for the uploader, hashing it.
struct ChunkSink {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    hash: Sha256,
    size: u64,
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.hash.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 64 * 1024));
            self.tx
                .blocking_send(full)
                .map_err(|_| std::io::Error::other("the upload stopped"))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ChunkSink {
    fn finish(mut self) -> std::io::Result<(u64, String)> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.tx
                .blocking_send(rest)
                .map_err(|_| std::io::Error::other("the upload stopped"))?;
        }
        Ok((self.size, hex::encode(self.hash.finalize())))
    }
}

/// Streams `file` through `compression` into a multipart upload of `key`.
/// Used by backups and by the benchmark's baseline (same code path, so the
/// baseline differs only in how the file was made).
pub async fn upload_file_compressed(
    blobs: &Blobs,
    key: &str,
    file: &Path,
    compression: Compression,
) -> Result<(u64, u64)> {
    let s = upload_compressed(blobs, key, file, compression, Arc::new(NoProgress)).await?;
    Ok((s.snapshot_size, s.object_size))
}

/// Streams `file` through `compression` into a multipart upload of `key`,
/// reporting [`Step::Upload`] in bytes of the file.
pub(super) async fn upload_compressed(
    blobs: &Blobs,
    key: &str,
    file: &Path,
    compression: Compression,
    progress: Arc<dyn Progress>,
) -> Result<UploadSummary> {
    let total = std::fs::metadata(file).map(|m| m.len()).ok();
    let _step = StepGuard::start(&*progress, Step::Upload, total);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(3);
    let path = file.to_path_buf();
    // Two threads: one reads the snapshot and hashes it, the other
    // compresses and hashes what comes out, so hashing the snapshot costs
    // no compression time (zstd is the bound, on one core).
    let (raw_tx, raw_rx) = mpsc::sync_channel::<Vec<u8>>(4);
    let reader = {
        let path = path.clone();
        let progress = progress.clone();
        std::thread::spawn(move || read_and_hash(&path, raw_tx, &*progress))
    };
    let compressor = std::thread::spawn(move || -> Result<(u64, String)> {
        let sink = ChunkSink {
            buf: Vec::with_capacity(CHUNK + 64 * 1024),
            tx,
            hash: Sha256::new(),
            size: 0,
        };
        let compress_err = || io(format!("compressing {}", path.display()));
        let sink = match compression {
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL)
                    .map_err(io("starting zstd"))?;
                // One zstd worker: the compression runs on zstd's own
                // thread in jobs of several MiB with the previous job's
                // tail as a contiguous prefix, while this thread feeds it.
                // In-line streaming compression takes the slower
                // "extDict" match finder once its window wraps
                // (`ZSTD_compressBlock_doubleFast_extDict_generic`, a
                // fifth of a backup's profile); this is the path the
                // `zstd` CLI takes. Same format, same level.
                enc.multithread(1).map_err(io("starting zstd's worker"))?;
                for chunk in raw_rx {
                    enc.write_all(&chunk).map_err(compress_err())?;
                }
                enc.finish().map_err(compress_err())?
            }
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(sink, flate2::Compression::new(6));
                for chunk in raw_rx {
                    enc.write_all(&chunk).map_err(compress_err())?;
                }
                enc.finish().map_err(compress_err())?
            }
        };
        sink.finish().map_err(io("finishing the upload"))
    });
    let worker = std::thread::spawn(move || -> Result<UploadSummary> {
        // The compressor ends when the reader does, also when the reader
        // failed: the reader's error is the one to report, and an object
        // made of a truncated read is never completed.
        let compressed = compressor.join();
        let read = reader.join();
        let panicked = || Error::Plugin(PluginError::internal("a compression thread panicked"));
        let (snapshot_size, snapshot_sha256) = read.map_err(|_| panicked())??;
        let (object_size, object_sha256) = compressed.map_err(|_| panicked())??;
        Ok(UploadSummary {
            snapshot_size,
            snapshot_sha256,
            object_size,
            object_sha256,
        })
    });
    let mut writer = blobs.writer(key).await?;
    let mut failed = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = writer.write(chunk).await {
            failed = Some(e);
            break;
        }
    }
    drop(rx);
    let summary = worker.join().unwrap_or_else(|_| {
        Err(Error::Plugin(PluginError::internal(
            "the compression thread panicked",
        )))
    });
    match (failed, summary) {
        (None, Ok(s)) => {
            writer.complete().await?;
            Ok(s)
        }
        (Some(e), _) | (None, Err(e)) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// Reads `path` in 1 MiB chunks, hashing them, and sends them on, until
/// the end or until the receiver is gone; returns the size and SHA-256.
fn read_and_hash(
    path: &Path,
    out: mpsc::SyncSender<Vec<u8>>,
    progress: &dyn Progress,
) -> Result<(u64, String)> {
    let mut input = std::fs::File::open(path).map_err(io(format!("opening {}", path.display())))?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    loop {
        let mut buf = vec![0u8; 1 << 20];
        let n = input.read(&mut buf).map_err(io("reading the snapshot"))?;
        if n == 0 {
            return Ok((size, hex::encode(hash.finalize())));
        }
        buf.truncate(n);
        hash.update(&buf);
        size += n as u64;
        progress.advance(Step::Upload, n as u64);
        if out.send(buf).is_err() {
            // The compressor stopped; its error is the one reported.
            return Ok((size, hex::encode(hash.finalize())));
        }
    }
}

/// Where the decompressor writes: counts the bytes and hands them on in
/// 1 MiB buffers to the thread that hashes and writes them
/// ([`hash_and_write`]), so hashing costs no decompression time.
struct Relay {
    tx: mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
    size: u64,
    /// Bytes it may take: a stream that decompresses to more than its
    /// manifest says stops here, before it can fill the disk.
    limit: u64,
}

const RELAY_CHUNK: usize = 1 << 20;

impl Relay {
    fn send(&mut self) -> std::io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(RELAY_CHUNK));
        self.tx
            .send(full)
            .map_err(|_| std::io::Error::other("the file writer stopped"))
    }
}

impl Write for Relay {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.size.saturating_add(data.len() as u64) > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "it decompresses to more than the {} bytes expected",
                    self.limit
                ),
            ));
        }
        self.buf.extend_from_slice(data);
        self.size += data.len() as u64;
        if self.buf.len() >= RELAY_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    /// Hands on what is buffered (the end of the stream).
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}

/// Writes what comes from `rx` to `file`, hashing it: `(size, sha256)`.
fn hash_and_write(
    rx: mpsc::Receiver<Vec<u8>>,
    file: std::fs::File,
) -> std::io::Result<(u64, String)> {
    let mut file = file;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    for buf in rx {
        hash.update(&buf);
        file.write_all(&buf)?;
        size += buf.len() as u64;
    }
    file.flush()?;
    Ok((size, hex::encode(hash.finalize())))
}

/// Downloads `key`, decompressing into `file`; returns
/// `(object_size, object_sha256, raw_size, raw_sha256)`. Used by restores
/// and by the benchmark's baseline.
pub async fn download_file_decompressed(
    blobs: &Blobs,
    key: &str,
    compression: Compression,
    file: std::fs::File,
) -> Result<(u64, String, u64, String)> {
    download_raw(blobs, key, compression, file, &NoProgress, None).await
}

async fn download_raw(
    blobs: &Blobs,
    key: &str,
    compression: Compression,
    file: std::fs::File,
    progress: &dyn Progress,
    limit: Option<u64>,
) -> Result<(u64, String, u64, String)> {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
    let (raw_tx, raw_rx) = mpsc::sync_channel::<Vec<u8>>(4);
    let writer = std::thread::spawn(move || hash_and_write(raw_rx, file));
    let decompressor = std::thread::spawn(move || -> std::io::Result<(u64, String)> {
        let out = Relay {
            tx: raw_tx,
            buf: Vec::with_capacity(RELAY_CHUNK),
            size: 0,
            limit: limit.unwrap_or(u64::MAX),
        };
        let mut comp_hash = Sha256::new();
        let mut comp_size = 0u64;
        let mut out = match compression {
            Compression::Zstd => {
                let mut dec = zstd::stream::write::Decoder::new(out)?;
                for chunk in rx {
                    comp_hash.update(&chunk);
                    comp_size += chunk.len() as u64;
                    dec.write_all(&chunk)?;
                }
                dec.flush()?;
                dec.into_inner()
            }
            Compression::Gzip => {
                let mut dec = flate2::write::GzDecoder::new(out);
                for chunk in rx {
                    comp_hash.update(&chunk);
                    comp_size += chunk.len() as u64;
                    dec.write_all(&chunk)?;
                }
                dec.finish()?
            }
        };
        out.flush()?;
        Ok((comp_size, hex::encode(comp_hash.finalize())))
    });
    let worker = std::thread::spawn(move || -> std::io::Result<(u64, String, u64, String)> {
        // The writer's error (a full disk) is the cause when both fail:
        // the decompressor then only saw its channel close.
        let decompressed = decompressor.join();
        let written = writer.join();
        let panicked = || std::io::Error::other("a decompression thread panicked");
        let (size, hash) = written.map_err(|_| panicked())??;
        let (comp_size, comp_hash) = decompressed.map_err(|_| panicked())??;
        Ok((comp_size, comp_hash, size, hash))
    });
    let downloaded = blobs
        .download(key, |chunk| {
            progress.advance(Step::Download, chunk.len() as u64);
            tx.send(chunk.to_vec()).map_err(|_| {
                Error::Plugin(PluginError::internal("the decompression thread stopped"))
            })
        })
        .await;
    drop(tx);
    // A decompression error stops the download too (its channel closes):
    // report the cause, not the symptom.
    match worker.join() {
        Ok(Ok(r)) => downloaded.map(|_| r),
        Ok(Err(e)) => Err(Error::Io {
            context: format!("decompressing {key}"),
            source: e,
        }),
        Err(_) => Err(Error::Plugin(PluginError::internal(
            "the decompression thread panicked",
        ))),
    }
}

/// Downloads `m`'s object into `file`, decompressed, checking both sizes
/// and SHA-256s against the manifest; reports [`Step::Download`] in bytes
/// of the object.
pub(super) async fn download_decompressed(
    blobs: &Blobs,
    m: &Manifest,
    compression: Compression,
    file: std::fs::File,
    progress: &dyn Progress,
) -> Result<(), BackupError> {
    let corrupt = |what: String| BackupError::Corrupt {
        timestamp: m.timestamp.clone(),
        what,
    };
    let _step = StepGuard::start(progress, Step::Download, Some(m.object_size));
    let (comp_size, comp_sha, raw_size, raw_sha) = match download_raw(
        blobs,
        &m.object_key,
        compression,
        file,
        progress,
        Some(m.snapshot_size),
    )
    .await
    {
        Ok(r) => r,
        // A damaged stream usually fails to decompress before its hash can be compared.
        Err(Error::Io { source, .. }) => {
            return Err(corrupt(format!("the object does not decompress: {source}")));
        }
        Err(e) => return Err(e.into()),
    };
    if comp_size != m.object_size {
        return Err(corrupt(format!(
            "object size {comp_size} differs from the manifest's {}",
            m.object_size
        )));
    }
    if comp_sha != m.object_sha256 {
        return Err(corrupt(format!(
            "object sha256 {comp_sha} differs from the manifest's {}",
            m.object_sha256
        )));
    }
    if raw_size != m.snapshot_size || raw_sha != m.snapshot_sha256 {
        return Err(corrupt(format!(
            "the decompressed snapshot ({raw_size} bytes, sha256 {raw_sha}) differs from the manifest's ({} bytes, {})",
            m.snapshot_size, m.snapshot_sha256
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_that_decompresses_past_its_size_stops_there() {
        // 64 MiB of zeros compress to a few KiB: a small object can fill a
        // disk. The writer refuses past the manifest's size.
        let zeros = vec![0u8; 64 << 20];
        let packed = zstd::encode_all(&zeros[..], 3).unwrap();
        assert!(packed.len() < 64 << 10);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let (tx, rx) = mpsc::sync_channel(4);
        let file = std::fs::File::create(&path).unwrap();
        let writer = std::thread::spawn(move || hash_and_write(rx, file));
        let out = Relay {
            tx,
            buf: Vec::new(),
            size: 0,
            limit: 1 << 20,
        };
        let mut dec = zstd::stream::write::Decoder::new(out).unwrap();
        let e = dec
            .write_all(&packed)
            .and_then(|()| dec.flush())
            .unwrap_err();
        assert!(e.to_string().contains("more than the 1048576 bytes"), "{e}");
        drop(dec);
        let (written, _) = writer.join().unwrap().unwrap();
        assert!(written <= 1 << 20, "{written}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), written);
    }
}
