//! A per-connection event queue that never drops silently.
//!
//! Producers (presence fan-out, switchboard relays) push without waiting.
//! The queue grows only while its consumer is not reading; past `limit`
//! events the push fails, the outbox is marked overflowed and the consumer
//! closes its connection — so the producer learns at once (a switchboard
//! sender gets NAK) and the stuck client is disconnected loudly, instead of
//! notifications vanishing. An idle outbox holds no heap memory.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

pub struct Outbox<T> {
    queue: Mutex<VecDeque<T>>,
    notify: Notify,
    limit: usize,
    closed: AtomicBool,
    overflowed: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("the receiving connection is closed")]
    Closed,
    #[error("the receiving connection is not reading; it is being disconnected")]
    Overflow,
}

impl<T> Outbox<T> {
    pub fn new(limit: usize) -> Outbox<T> {
        Outbox {
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            limit,
            closed: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
        }
    }

    pub fn push(&self, item: T) -> Result<(), PushError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PushError::Closed);
        }
        {
            let mut queue = self.queue.lock();
            if queue.len() >= self.limit {
                self.overflowed.store(true, Ordering::Release);
                drop(queue);
                self.notify.notify_one();
                return Err(PushError::Overflow);
            }
            queue.push_back(item);
        }
        self.notify.notify_one();
        Ok(())
    }

    /// Moves every queued event into `into`. Shrinks the queue's allocation
    /// afterwards so an idle connection holds none.
    pub fn drain_into(&self, into: &mut Vec<T>) {
        let mut queue = self.queue.lock();
        into.extend(queue.drain(..));
        if queue.capacity() > 64 {
            *queue = VecDeque::new();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.lock().is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Resolves when something was pushed (or the outbox overflowed).
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    pub fn has_overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Refuses further pushes; queued events stay readable.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_reported_not_dropped() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.push(1), Ok(()));
        assert_eq!(outbox.push(2), Ok(()));
        assert_eq!(outbox.push(3), Err(PushError::Overflow));
        assert!(outbox.has_overflowed());
        let mut got = Vec::new();
        outbox.drain_into(&mut got);
        assert_eq!(got, [1, 2]);
        outbox.close();
        assert_eq!(outbox.push(4), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn push_wakes_the_consumer() {
        let outbox = std::sync::Arc::new(Outbox::new(10));
        let o = outbox.clone();
        let waiter = tokio::spawn(async move {
            o.notified().await;
            let mut got = Vec::new();
            o.drain_into(&mut got);
            got
        });
        tokio::task::yield_now().await;
        outbox.push("x").unwrap();
        assert_eq!(waiter.await.unwrap(), ["x"]);
    }
}
