//! Writes to one key, in the order the host issued them.
//!
//! Every call runs as a task that finishes even when the host stops
//! awaiting it (see `blob.rs`), so a put abandoned by a caller's timeout is
//! still on its way to the server when the caller writes the key again. S3
//! itself orders two racing PUTs by when each *arrived*, but S3-compatible
//! servers differ (moto keeps whichever it finishes last), and nothing
//! orders them on the client: the abandoned put could land after the newer
//! one and undo it. CI caught exactly that: a 12 MiB put abandoned after
//! 2 ms, then `put(key, "again")`, and the key read back held the old
//! bytes.
//!
//! So each call that changes a key (put, delete, completing a multipart
//! upload) holds that key's lock for as long as its request is in flight:
//! a later write to the key waits for the abandoned one to land (or fail),
//! then goes. Writes to different keys never wait for each other, and a
//! key's entry is removed when nobody holds or waits for it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// One lock per key with a write in flight.
#[derive(Default)]
pub(crate) struct KeyOrder {
    keys: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// The right to write one key; released on drop.
pub(crate) struct KeyTurn<'a> {
    order: &'a KeyOrder,
    key: String,
    // An `Option` so `Drop` can release it before tidying the map.
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyOrder {
    /// Waits until every earlier write to `key` from this process is done.
    pub(crate) async fn turn(&self, key: &str) -> KeyTurn<'_> {
        let lock = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.entry(key.to_string()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        KeyTurn {
            order: self,
            key: key.to_string(),
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
}

impl Drop for KeyTurn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut keys = self.order.keys.lock().unwrap_or_else(|p| p.into_inner());
        // New holders clone the entry under this same lock, so a count of
        // one (the map's own) means nobody holds or awaits it.
        if keys
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            keys.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::KeyOrder;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_later_write_waits_for_an_earlier_one_to_the_same_key() {
        let order = Arc::new(KeyOrder::default());
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let first = order.turn("k").await;
        let (o, l) = (order.clone(), log.clone());
        let second = tokio::spawn(async move {
            let _t = o.turn("k").await;
            l.lock().unwrap().push("second");
        });
        // Another key is not held up by "k".
        drop(order.turn("other").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
        log.lock().unwrap().push("first");
        drop(first);
        second.await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["first", "second"]);
        assert_eq!(order.len(), 0, "entries are removed once free");
    }
}
