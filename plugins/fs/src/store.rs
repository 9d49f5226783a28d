//! The blob contract on a directory (see the crate docs).

use std::{
    collections::HashSet,
    fs::{self, File},
    io::{self, Read as _, Seek as _, SeekFrom, Write as _},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use strata_plugin::{
    BlobBackend, BlobWriter, ErrorKind, PluginError, PluginResult,
    blob::{
        GetRequest, GetResponse, ListPage, ListRequest, MultipartRequest, ObjectMeta,
        PendingUpload, PutRequest,
    },
};

use crate::keys::{self, Entry, path_of};

/// Objects per listing page when the caller asks for `0`, and the most a
/// page holds (S3's numbers).
const PAGE: usize = 1000;
/// A temporary file older than this at `open` is a leftover of a killed
/// process (a running put's own is seconds old).
const STALE_TMP: Duration = Duration::from_secs(3600);

/// An opened fs store; clones share everything.
#[derive(Clone)]
pub(crate) struct FsStore {
    root: PathBuf,
    /// `root/.strata/tmp`: whole-object puts in progress.
    tmp: PathBuf,
    /// `root/.strata/uploads`: multipart uploads in progress
    /// (`ID` holds the bytes, `ID.key` the key).
    uploads: PathBuf,
    sync: bool,
    closed: Arc<AtomicBool>,
    order: Arc<KeyOrder>,
}

fn closed_err() -> PluginError {
    PluginError::closed("fs store")
}

/// An I/O error about `key` at `path`: `not_found` when the file is
/// missing, `internal` otherwise, naming the operation, key and path.
fn io_err(op: &str, key: &str, path: &Path, e: &io::Error) -> PluginError {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::Internal,
    };
    PluginError::new(kind, format!("fs: {op} {key:?} ({}): {e}", path.display()))
}

/// A name no other put or upload of any process uses.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn millis(t: io::Result<SystemTime>) -> Option<i64> {
    let d = t.ok()?.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

fn meta_of(key: String, m: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: m.len(),
        last_modified_ms: millis(m.modified()),
        // A new file (every write makes one) has a new inode or mtime.
        etag: Some(format!(
            "\"{:x}-{:x}.{:x}-{:x}\"",
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.len()
        )),
    }
}

impl FsStore {
    /// Opens (creating when missing) the store at `root`.
    pub(crate) fn open(root: PathBuf, sync: bool) -> PluginResult<FsStore> {
        let work = root.join(".strata");
        let (tmp, uploads) = (work.join("tmp"), work.join("uploads"));
        for dir in [&tmp, &uploads] {
            fs::create_dir_all(dir).map_err(|e| {
                PluginError::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "fs: `root` = {}: cannot create {}: {e}",
                        root.display(),
                        dir.display()
                    ),
                )
            })?;
        }
        // Temporary files a killed put left behind.
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_TMP);
                if old {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(FsStore {
            root,
            tmp,
            uploads,
            sync,
            closed: Arc::default(),
            order: Arc::default(),
        })
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn check_open(&self) -> PluginResult<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(closed_err())
        } else {
            Ok(())
        }
    }

    /// The health check: the root is a directory this process can write.
    pub(crate) fn health(&self) -> PluginResult<String> {
        self.check_open()?;
        let probe = self.tmp.join(format!("health-{}", unique_name()));
        let root = self.root.display();
        File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|e| {
                PluginError::new(
                    ErrorKind::Connection,
                    format!("fs: {root} is not writable: {e}"),
                )
            })?;
        Ok(format!("directory {root} writable"))
    }

    /// `fsync`s directory `dir` (what makes a rename or removal in it durable).
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.sync {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Moves the finished file `from` to `to` (the object's path), making
    /// the directories on the way and, with `sync`, durable. A directory
    /// removed by a concurrent delete between the two steps is made again.
    fn land(&self, from: &Path, to: &Path) -> io::Result<()> {
        let parent = to.parent().unwrap_or(&self.root);
        let mut attempts = 0;
        loop {
            // The first ancestor that exists: every directory below it is
            // new and must be made durable in its parent too.
            let mut existing = parent;
            while existing != self.root && !existing.is_dir() {
                existing = existing.parent().unwrap_or(&self.root);
            }
            fs::create_dir_all(parent)?;
            match fs::rename(from, to) {
                Ok(()) => {
                    let mut dir = parent;
                    loop {
                        self.sync_dir(dir)?;
                        if dir == existing {
                            break;
                        }
                        dir = dir.parent().unwrap_or(&self.root);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 && from.exists() => {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes the directories above `path` that are now empty, up to the
    /// root (a concurrent put re-creates what it needs, see [`land`](Self::land)).
    fn prune_dirs(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || !d.starts_with(&self.root) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    /// Every stored key starting with `prefix` and after `cursor`, sorted,
    /// with its path.
    fn keys_after(&self, prefix: &str, cursor: Option<&str>) -> io::Result<Vec<(String, PathBuf)>> {
        let (dir, covered) = keys::listing_start(&self.root, prefix);
        let mut out = Vec::new();
        // (directory, the key text it stands for, whether its entries
        // start a segment: not so below a piece of a long one).
        let mut stack = vec![(dir, covered, true)];
        while let Some((dir, at, whole)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                // A prefix nothing was stored under, or a directory a
                // concurrent delete just removed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let Some((piece, kind)) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| keys::entry_piece(n, whole))
                else {
                    continue;
                };
                let key = format!("{at}{piece}");
                // Descend only where keys under `prefix` can be.
                let may_hold = |below: &str| below.starts_with(prefix) || prefix.starts_with(below);
                match kind {
                    Entry::Directory => {
                        let below = key + "/";
                        if may_hold(&below) {
                            stack.push((entry.path(), below, true));
                        }
                    }
                    Entry::Continued => {
                        if may_hold(&key) {
                            stack.push((entry.path(), key, false));
                        }
                    }
                    Entry::Object => {
                        if key.starts_with(prefix) && cursor.is_none_or(|c| key.as_str() > c) {
                            out.push((key, entry.path()));
                        }
                    }
                }
            }
        }
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn upload_paths(&self, id: &str) -> (PathBuf, PathBuf) {
        (
            self.uploads.join(id),
            self.uploads.join(format!("{id}.key")),
        )
    }
}

impl BlobBackend for FsStore {
    type Writer = FsWriter;

    async fn put(&self, req: PutRequest) -> PluginResult<ObjectMeta> {
        self.check_open()?;
        let path = path_of(&self.root, &req.key)?;
        let _turn = self.order.turn(&req.key);
        let tmp = self.tmp.join(unique_name());
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&req.data)?;
            if self.sync {
                f.sync_all()?;
            }
            self.land(&tmp, &path)?;
            fs::metadata(&path)
        })();
        match written {
            Ok(m) => Ok(meta_of(req.key, &m)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(io_err("put", &req.key, &path, &e))
            }
        }
    }

    async fn get(&self, req: GetRequest) -> PluginResult<GetResponse> {
        self.check_open()?;
        let path = path_of(&self.root, &req.key)?;
        let err = |e: io::Error| io_err("get", &req.key, &path, &e);
        let mut f = File::open(&path).map_err(err)?;
        // The open file is one version: a put renaming a new file over the
        // path meanwhile does not change what this handle reads.
        let m = f.metadata().map_err(err)?;
        let size = m.len();
        let (start, end) = match req.range {
            None => (0, size),
            Some(r) if r.start > r.end => {
                return Err(PluginError::invalid_input(format!(
                    "fs: get {:?}: range start {} is after its end {}",
                    req.key, r.start, r.end
                )));
            }
            Some(r) => (r.start.min(size), r.end.min(size)),
        };
        let mut data = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start)).map_err(err)?;
        f.read_exact(&mut data).map_err(err)?;
        Ok(GetResponse {
            meta: meta_of(req.key.clone(), &m),
            data,
        })
    }

    async fn head(&self, key: String) -> PluginResult<ObjectMeta> {
        self.check_open()?;
        let path = path_of(&self.root, &key)?;
        let m = fs::metadata(&path).map_err(|e| io_err("head", &key, &path, &e))?;
        Ok(meta_of(key, &m))
    }

    async fn list(&self, req: ListRequest) -> PluginResult<ListPage> {
        self.check_open()?;
        let limit = match req.limit as usize {
            0 => PAGE,
            n => n.min(PAGE),
        };
        let keys = self
            .keys_after(&req.prefix, req.cursor.as_deref())
            .map_err(|e| io_err("list", &req.prefix, &self.root, &e))?;
        let more = keys.len() > limit;
        let mut objects = Vec::with_capacity(limit.min(keys.len()));
        for (key, path) in keys.into_iter().take(limit) {
            // Deleted since the directory was read: not listed.
            if let Ok(m) = fs::metadata(&path) {
                objects.push(meta_of(key, &m));
            }
        }
        let next_cursor = more
            .then(|| objects.last().map(|o| o.key.clone()))
            .flatten();
        Ok(ListPage {
            objects,
            next_cursor,
        })
    }

    async fn delete(&self, key: String) -> PluginResult<()> {
        self.check_open()?;
        let path = path_of(&self.root, &key)?;
        let _turn = self.order.turn(&key);
        match fs::remove_file(&path) {
            Ok(()) => {
                let parent = path.parent().unwrap_or(&self.root);
                self.sync_dir(parent)
                    .map_err(|e| io_err("delete", &key, &path, &e))?;
                self.prune_dirs(&path);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete", &key, &path, &e)),
        }
    }

    async fn put_multipart(&self, req: MultipartRequest) -> PluginResult<FsWriter> {
        self.check_open()?;
        let path = path_of(&self.root, &req.key)?;
        let id = unique_name();
        let (data, key_file) = self.upload_paths(&id);
        let err = |e: io::Error| io_err("start an upload of", &req.key, &data, &e);
        fs::write(&key_file, req.key.as_bytes()).map_err(err)?;
        let file = File::create(&data).map_err(|e| {
            let _ = fs::remove_file(&key_file);
            err(e)
        })?;
        Ok(FsWriter {
            store: self.clone(),
            key: req.key,
            path,
            id,
            file: Mutex::new(Some(file)),
        })
    }

    const LISTS_UPLOADS: bool = true;

    async fn list_uploads(&self, prefix: String) -> PluginResult<Vec<PendingUpload>> {
        self.check_open()?;
        let err = |e: io::Error| io_err("list the uploads under", &prefix, &self.uploads, &e);
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.uploads).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".key")) else {
                continue;
            };
            // Finished or aborted since the directory was read: skipped.
            let Ok(key) = fs::read_to_string(entry.path()) else {
                continue;
            };
            if key.starts_with(&prefix) {
                let initiated_ms = entry.metadata().ok().and_then(|m| millis(m.modified()));
                out.push(PendingUpload {
                    key,
                    upload_id: id.to_string(),
                    initiated_ms,
                });
            }
        }
        out.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        Ok(out)
    }

    async fn abort_upload(&self, key: String, upload_id: String) -> PluginResult<()> {
        self.check_open()?;
        let plain = !upload_id.is_empty()
            && upload_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !plain {
            return Err(PluginError::invalid_input(format!(
                "fs: {upload_id:?} is not an upload id of this store"
            )));
        }
        let (data, key_file) = self.upload_paths(&upload_id);
        match fs::read_to_string(&key_file) {
            // Another key's upload is not this one: nothing to abort.
            Ok(k) if k != key => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("abort the upload of", &key, &key_file, &e)),
        }
        for f in [&data, &key_file] {
            match fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("abort the upload of", &key, f, &e)),
            }
        }
        Ok(())
    }
}

/// A multipart upload: the bytes go to `root/.strata/uploads/ID` as they
/// come, and `complete` renames the file over the object's path.
pub(crate) struct FsWriter {
    store: FsStore,
    key: String,
    path: PathBuf,
    id: String,
    /// `None` once completed or aborted.
    file: Mutex<Option<File>>,
}

impl FsWriter {
    fn finished(&self) -> PluginError {
        PluginError::invalid_input(format!(
            "fs: the upload of {:?} is already completed or aborted",
            self.key
        ))
    }

    /// Removes the upload's files (an abort, or a writer dropped unfinished).
    fn discard(&self) -> io::Result<()> {
        let (data, key_file) = self.store.upload_paths(&self.id);
        for f in [data, key_file] {
            match fs::remove_file(f) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<File>> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BlobWriter for FsWriter {
    async fn write_part(&self, data: Vec<u8>) -> PluginResult<()> {
        self.store.check_open()?;
        let mut file = self.lock();
        let f = file.as_mut().ok_or_else(|| self.finished())?;
        f.write_all(&data).map_err(|e| {
            io_err(
                "write a part of",
                &self.key,
                &self.store.upload_paths(&self.id).0,
                &e,
            )
        })
    }

    async fn complete(&self) -> PluginResult<ObjectMeta> {
        self.store.check_open()?;
        let file = self.lock().take().ok_or_else(|| self.finished())?;
        let (data, key_file) = self.store.upload_paths(&self.id);
        let _turn = self.store.order.turn(&self.key);
        let landed = (|| {
            if self.store.sync {
                file.sync_all()?;
            }
            drop(file);
            self.store.land(&data, &self.path)?;
            fs::metadata(&self.path)
        })();
        let _ = fs::remove_file(&key_file);
        match landed {
            Ok(m) => Ok(meta_of(self.key.clone(), &m)),
            Err(e) => {
                let _ = fs::remove_file(&data);
                Err(io_err("complete the upload of", &self.key, &self.path, &e))
            }
        }
    }

    async fn abort(&self) -> PluginResult<()> {
        if self.lock().take().is_some() {
            self.discard()
                .map_err(|e| io_err("abort the upload of", &self.key, &self.path, &e))?;
        }
        Ok(())
    }
}

impl Drop for FsWriter {
    /// A writer dropped without `complete` or `abort` aborts its upload.
    fn drop(&mut self) {
        if self.lock().take().is_some() {
            let _ = self.discard();
        }
    }
}

/// Writes to one key in the order they started: each holds the key from
/// before its first byte until its rename is done, and a later write to
/// the key waits. Calls run on the blocking pool, so a plain mutex and
/// condition variable are the right tools; writes to other keys never wait.
#[derive(Default)]
struct KeyOrder {
    busy: Mutex<HashSet<String>>,
    freed: Condvar,
}

/// The right to write one key; released on drop.
struct KeyTurn<'a> {
    order: &'a KeyOrder,
    key: String,
}

impl KeyOrder {
    fn turn(&self, key: &str) -> KeyTurn<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while busy.contains(key) {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(key.to_string());
        KeyTurn {
            order: self,
            key: key.to_string(),
        }
    }
}

impl Drop for KeyTurn<'_> {
    fn drop(&mut self) {
        let mut busy = self.order.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.key);
        self.order.freed.notify_all();
    }
}
