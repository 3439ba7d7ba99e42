//! Growing delays after wrong passwords, per account and per source address.
//!
//! Only failures count: a correct password resets its account's count, so
//! users (and benchmarks) signing in correctly never wait. Past the free
//! failures each attempt on an account or from an address waits
//! `first_delay · 2^(failures − free)` (at most `max_delay`), and attempts
//! queue behind each other: each one books the next slot, so sixteen
//! connections guessing one account get no more tries than one.
//!
//! The wait happens before any hashing is queued, so a waiting attempt
//! holds no hashing thread.

use crate::config::SigninLimitsConfig;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters for `/metrics` (rendered by `crate::metrics::render_signin_limits`).
#[derive(Default)]
pub struct ThrottleStats {
    pub failures: AtomicU64,
    pub delayed_by_account: AtomicU64,
    pub delayed_by_source: AtomicU64,
    pub connections_closed: AtomicU64,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last_failure: Instant,
    /// The earliest time the next attempt may be checked.
    next_slot: Instant,
}

struct Tracker<K> {
    free: u32,
    entries: HashMap<K, Failures>,
}

impl<K: Hash + Eq + Clone> Tracker<K> {
    fn new(free: u32) -> Tracker<K> {
        Tracker {
            free,
            entries: HashMap::new(),
        }
    }

    /// Books the next slot for `key` and returns how long to wait for it.
    fn book(&mut self, key: &K, now: Instant, limits: &Limits) -> Duration {
        let Some(entry) = self.entries.get_mut(key) else {
            return Duration::ZERO;
        };
        if now.duration_since(entry.last_failure) > limits.forget_after {
            self.entries.remove(key);
            return Duration::ZERO;
        }
        let delay = limits.delay(entry.count, self.free);
        if delay.is_zero() {
            return Duration::ZERO;
        }
        let slot = entry.next_slot.max(now);
        entry.next_slot = slot + delay;
        slot + delay - now
    }

    fn fail(&mut self, key: K, now: Instant, limits: &Limits) {
        if self.entries.len() >= limits.max_tracked && !self.entries.contains_key(&key) {
            self.forget_oldest(now, limits);
        }
        let entry = self.entries.entry(key).or_insert(Failures {
            count: 0,
            last_failure: now,
            next_slot: now,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last_failure = now;
    }

    /// Drops expired entries, or when none are, the oldest half.
    fn forget_oldest(&mut self, now: Instant, limits: &Limits) {
        self.entries
            .retain(|_, f| now.duration_since(f.last_failure) <= limits.forget_after);
        if self.entries.len() >= limits.max_tracked {
            let mut ages: Vec<Instant> = self.entries.values().map(|f| f.last_failure).collect();
            ages.sort_unstable();
            if let Some(&cutoff) = ages.get(ages.len() / 2) {
                self.entries.retain(|_, f| f.last_failure > cutoff);
            }
        }
    }
}

struct Limits {
    first_delay: Duration,
    max_delay: Duration,
    forget_after: Duration,
    max_tracked: usize,
}

impl Limits {
    /// No delay while `failures` is below `free`, then doubling from `first_delay`.
    fn delay(&self, failures: u32, free: u32) -> Duration {
        if failures < free {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - free).min(20);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

pub struct SigninThrottle {
    limits: Limits,
    accounts: Mutex<Tracker<String>>,
    sources: Mutex<Tracker<IpAddr>>,
    pub failures_per_connection: u32,
    pub stats: ThrottleStats,
}

impl SigninThrottle {
    pub fn new(config: &SigninLimitsConfig) -> SigninThrottle {
        SigninThrottle {
            limits: Limits {
                first_delay: Duration::from_millis(config.first_delay_ms),
                max_delay: Duration::from_secs(config.max_delay_secs),
                forget_after: Duration::from_secs(config.forget_after_secs),
                max_tracked: config.max_tracked.max(1),
            },
            accounts: Mutex::new(Tracker::new(config.account_free_failures)),
            sources: Mutex::new(Tracker::new(config.source_free_failures)),
            failures_per_connection: config.failures_per_connection.max(1),
            stats: ThrottleStats::default(),
        }
    }

    /// Waits for this attempt's turn (no wait without earlier failures).
    /// `account` is the canonical handle, known or not.
    pub async fn wait_turn(&self, account: &str, source: IpAddr) {
        let now = Instant::now();
        let by_account = self
            .accounts
            .lock()
            .book(&account.to_string(), now, &self.limits);
        let by_source = self.sources.lock().book(&source, now, &self.limits);
        if !by_account.is_zero() {
            self.stats
                .delayed_by_account
                .fetch_add(1, Ordering::Relaxed);
        }
        if !by_source.is_zero() {
            self.stats.delayed_by_source.fetch_add(1, Ordering::Relaxed);
        }
        let wait = by_account.max(by_source);
        if !wait.is_zero() {
            tracing::info!(user = %account, %source, wait_ms = wait.as_millis() as u64,
                "sign-in attempt delayed after earlier wrong passwords");
            tokio::time::sleep(wait).await;
        }
    }

    pub fn failed(&self, account: &str, source: IpAddr) {
        let now = Instant::now();
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        self.accounts
            .lock()
            .fail(account.to_string(), now, &self.limits);
        self.sources.lock().fail(source, now, &self.limits);
    }

    /// A correct password: the account's count starts again. The source's
    /// count stays (one right password must not let an address guess on).
    pub fn succeeded(&self, account: &str) {
        self.accounts.lock().entries.remove(account);
    }
}

impl Default for SigninThrottle {
    fn default() -> SigninThrottle {
        SigninThrottle::new(&SigninLimitsConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_after_the_free_failures_and_reset_on_success() {
        let config = SigninLimitsConfig {
            account_free_failures: 2,
            source_free_failures: 100,
            first_delay_ms: 100,
            max_delay_secs: 1,
            ..Default::default()
        };
        let throttle = SigninThrottle::new(&config);
        let limits = &throttle.limits;
        let mut accounts = Tracker::new(config.account_free_failures);
        let key = "a@b.c".to_string();
        let now = Instant::now();
        assert_eq!(accounts.book(&key, now, limits), Duration::ZERO);
        accounts.fail(key.clone(), now, limits);
        assert_eq!(accounts.book(&key, now, limits), Duration::ZERO);
        accounts.fail(key.clone(), now, limits);
        // Concurrent attempts queue: each books the slot after the previous.
        assert_eq!(accounts.book(&key, now, limits), Duration::from_millis(100));
        assert_eq!(accounts.book(&key, now, limits), Duration::from_millis(200));
        accounts.fail(key.clone(), now, limits);
        let later = now + Duration::from_secs(2);
        assert_eq!(
            accounts.book(&key, later, limits),
            Duration::from_millis(200)
        );
        assert_eq!(limits.delay(30, 2), Duration::from_secs(1));
        // Forgotten after forget_after without a failure.
        let much_later = now + Duration::from_secs(config.forget_after_secs + 1);
        assert_eq!(accounts.book(&key, much_later, limits), Duration::ZERO);
        // A success resets the count.
        let ip: IpAddr = [192, 0, 2, 1].into();
        throttle.failed("a@b.c", ip);
        throttle.failed("a@b.c", ip);
        throttle.succeeded("a@b.c");
        assert_eq!(
            throttle.accounts.lock().book(&key, Instant::now(), limits),
            Duration::ZERO
        );
    }

    #[test]
    fn the_tracked_set_is_bounded() {
        let throttle = SigninThrottle::new(&SigninLimitsConfig {
            max_tracked: 10,
            ..Default::default()
        });
        for n in 0..100u8 {
            throttle.failed(&format!("u{n}@b.c"), [192, 0, 2, n].into());
        }
        assert!(throttle.accounts.lock().entries.len() <= 10);
        assert!(throttle.sources.lock().entries.len() <= 10);
    }
}
