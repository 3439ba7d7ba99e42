//! A per-connection event queue that never drops silently.
//!
//! Producers (presence fan-out, switchboard relays) push without waiting.
//! The queue grows only while its consumer is not reading, and is bounded
//! twice: in events and in bytes (what the events will take on the wire,
//! counted until the consumer reports them written, so a batch being
//! written to a slow socket still counts). Past half of either bound the
//! outbox is *crowded*: a producer that can wait (a switchboard sender)
//! stops reading its own client until there is room again
//! ([`Outbox::wait_for_room`]), so a slow reader slows the sender down
//! instead of being dropped. Past the bound itself the push fails, the
//! outbox is marked overflowed and the consumer closes its connection — so
//! the producer learns at once (a switchboard sender gets NAK) and the
//! stuck client is disconnected loudly, instead of notifications vanishing
//! or memory growing without end. An idle outbox holds no heap memory.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// What an event costs besides the bytes it renders to: its slot in the
/// queue and the head of the line it becomes.
pub const EVENT_OVERHEAD: usize = 64;

/// How many bytes an event holds while it waits to be written.
pub trait QueuedSize {
    fn queued_size(&self) -> usize;
}

pub struct Outbox<T> {
    queue: Mutex<Queue<T>>,
    notify: Notify,
    /// Woken when queued bytes are written or the outbox closes.
    room: Notify,
    limit: usize,
    byte_limit: usize,
    closed: AtomicBool,
    overflowed: AtomicBool,
    /// An item that ends the consumer's connection was pushed.
    ending: AtomicBool,
}

struct Queue<T> {
    items: VecDeque<T>,
    /// Bytes of the queued items plus those drained but not yet written.
    bytes: usize,
}

impl<T> std::fmt::Debug for Outbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.queue.lock();
        f.debug_struct("Outbox")
            .field("queued", &queue.items.len())
            .field("unwritten_bytes", &queue.bytes)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("the receiving connection is closed")]
    Closed,
    #[error("the receiving connection is not reading; it is being disconnected")]
    Overflow,
}

impl<T: QueuedSize> Outbox<T> {
    /// An outbox bounded in events only.
    pub fn new(limit: usize) -> Outbox<T> {
        Outbox::with_byte_limit(limit, usize::MAX)
    }

    /// An outbox bounded in events and in bytes not yet written.
    pub fn with_byte_limit(limit: usize, byte_limit: usize) -> Outbox<T> {
        Outbox {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
            }),
            notify: Notify::new(),
            room: Notify::new(),
            limit,
            byte_limit,
            closed: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            ending: AtomicBool::new(false),
        }
    }

    pub fn push(&self, item: T) -> Result<(), PushError> {
        self.push_and_check_room(item).map(|_crowded| ())
    }

    /// [`Outbox::push`], telling whether the outbox is crowded afterwards
    /// (see [`Outbox::is_crowded`]), without taking its lock twice.
    pub fn push_and_check_room(&self, item: T) -> Result<bool, PushError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PushError::Closed);
        }
        let size = item.queued_size();
        let crowded = {
            let mut queue = self.queue.lock();
            if queue.items.len() >= self.limit || queue.bytes.saturating_add(size) > self.byte_limit
            {
                self.overflowed.store(true, Ordering::Release);
                drop(queue);
                self.notify.notify_one();
                return Err(PushError::Overflow);
            }
            queue.bytes += size;
            queue.items.push_back(item);
            self.crowded(&queue)
        };
        self.notify.notify_one();
        Ok(crowded)
    }

    fn crowded(&self, queue: &Queue<T>) -> bool {
        queue.bytes >= self.byte_limit / 2 || queue.items.len() >= self.limit / 2
    }

    /// Queues the last item the consumer will get (e.g. "signed in
    /// elsewhere"): accepted even when the outbox is full, and nothing is
    /// accepted after it. A consumer stuck writing to a client that does
    /// not read sees [`Outbox::is_ending`] and closes without waiting.
    pub fn push_last(&self, item: T) -> Result<(), PushError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Err(PushError::Closed);
        }
        {
            let mut queue = self.queue.lock();
            queue.bytes = queue.bytes.saturating_add(item.queued_size());
            queue.items.push_back(item);
        }
        self.ending.store(true, Ordering::Release);
        self.notify.notify_one();
        Ok(())
    }

    /// Moves every queued event into `into`; their bytes are released at
    /// once (for consumers that do not write to a socket). Shrinks the
    /// queue's allocation afterwards so an idle connection holds none.
    pub fn drain_into(&self, into: &mut Vec<T>) {
        let held = self.drain_unwritten(into);
        self.written(held);
    }

    /// Moves every queued event into `into`; their bytes keep counting
    /// against the limit until [`Outbox::written`] is called with the
    /// returned amount.
    pub fn drain_unwritten(&self, into: &mut Vec<T>) -> usize {
        let mut queue = self.queue.lock();
        let mut held = 0;
        into.extend(
            queue
                .items
                .drain(..)
                .inspect(|item| held += item.queued_size()),
        );
        if queue.items.capacity() > 64 {
            queue.items = VecDeque::new();
        }
        held
    }

    /// Releases `bytes` drained with [`Outbox::drain_unwritten`] once they
    /// are written.
    pub fn written(&self, bytes: usize) {
        {
            let mut queue = self.queue.lock();
            queue.bytes = queue.bytes.saturating_sub(bytes);
        }
        self.room.notify_waiters();
    }

    /// Whether half of either bound is taken: producers that can wait
    /// should, until [`Outbox::wait_for_room`] returns.
    pub fn is_crowded(&self) -> bool {
        self.crowded(&self.queue.lock())
    }

    /// Resolves once the outbox is no longer crowded, or is closed.
    pub async fn wait_for_room(&self) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.is_closed() || !self.is_crowded() {
                return;
            }
            room.await;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.lock().items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.lock().items.len()
    }

    /// Bytes queued or drained but not yet written.
    pub fn unwritten_bytes(&self) -> usize {
        self.queue.lock().bytes
    }

    /// Resolves when something was pushed (or the outbox overflowed).
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    pub fn has_overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Whether an item pushed with [`Outbox::push_last`] is waiting.
    pub fn is_ending(&self) -> bool {
        self.ending.load(Ordering::Acquire)
    }

    /// Refuses further pushes; queued events stay readable.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
        self.room.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl QueuedSize for u32 {
        fn queued_size(&self) -> usize {
            *self as usize
        }
    }

    impl QueuedSize for &'static str {
        fn queued_size(&self) -> usize {
            self.len()
        }
    }

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

    #[test]
    fn bytes_count_until_written() {
        let outbox = Outbox::with_byte_limit(100, 10);
        assert_eq!(outbox.push(6), Ok(()));
        let mut got = Vec::new();
        let held = outbox.drain_unwritten(&mut got);
        assert_eq!((held, outbox.unwritten_bytes()), (6, 6));
        // Drained but not written: still counted.
        assert!(outbox.is_crowded());
        assert_eq!(outbox.push(4), Ok(()));
        assert_eq!(outbox.push(1), Err(PushError::Overflow));
        outbox.written(held);
        assert_eq!(outbox.unwritten_bytes(), 4);
        // The last item gets in even past the bound, and closes the outbox.
        assert_eq!(outbox.push_last(50), Ok(()));
        assert!(outbox.is_ending());
        assert_eq!(outbox.push(1), Err(PushError::Closed));
        outbox.drain_into(&mut got);
        assert_eq!(got, [6, 4, 50]);
        assert_eq!(outbox.unwritten_bytes(), 0);
    }

    #[tokio::test]
    async fn a_producer_waits_until_the_bytes_are_written() {
        let outbox = std::sync::Arc::new(Outbox::with_byte_limit(100, 10));
        outbox.push(6u32).unwrap();
        let mut got = Vec::new();
        let held = outbox.drain_unwritten(&mut got);
        let o = outbox.clone();
        let waiter = tokio::spawn(async move { o.wait_for_room().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        outbox.written(held);
        waiter.await.unwrap();
        outbox.push(6).unwrap();
        outbox.close();
        // A closed outbox never makes anyone wait.
        outbox.wait_for_room().await;
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
