//! One async lock per key (a room, a user), created on first use and gone
//! once nobody holds or waits for it.
//!
//! A single global lock held across network I/O lets one slow room or one
//! slow registration stall everybody; a lock per key serialises only the
//! work that must not interleave. Memory is bounded by the keys in use at
//! the moment, not by every key ever seen.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held while the work for one key runs.
pub struct KeyTurn<'a> {
    owner: &'a KeyedLocks,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits until no one else holds `key`'s lock, then holds it.
    pub async fn lock(&self, key: &str) -> KeyTurn<'_> {
        let lock = self
            .locks
            .lock()
            .entry(key.to_string())
            .or_default()
            .clone();
        let guard = lock.lock_owned().await;
        KeyTurn {
            owner: self,
            key: key.to_string(),
            guard: Some(guard),
        }
    }

    /// Keys with a lock held or awaited.
    pub fn len(&self) -> usize {
        self.locks.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyTurn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.owner.locks.lock();
        // Only the map still refers to it: no holder, no waiter.
        if locks
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_held_key_does_not_stall_another_and_is_forgotten_after() {
        let locks = KeyedLocks::default();
        let slow = locks.lock("!slow:room").await;
        // Another key is free at once although the first is held.
        let other = tokio::time::timeout(Duration::from_secs(5), locks.lock("!other:room"))
            .await
            .expect("another key is not blocked");
        drop(other);
        // The same key waits for the holder.
        let same = locks.lock("!slow:room");
        tokio::pin!(same);
        assert!(
            futures_poll_once(same.as_mut()).await.is_none(),
            "the same key is exclusive"
        );
        drop(slow);
        let again = tokio::time::timeout(Duration::from_secs(5), same)
            .await
            .expect("released to the waiter");
        drop(again);
        assert!(locks.is_empty(), "no lock kept once nobody uses it");
    }

    /// Polls a future once: `Some` if it completed.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
