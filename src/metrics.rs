//! Operational counters, exposed as Prometheus text on `/metrics`.
//!
//! Plain atomics: nothing on a hot path takes a lock to count.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// One past the highest dialect number tracked per connection (MSNP2–MSNP18).
const DIALECTS: usize = 19;

#[derive(Default)]
pub struct Metrics {
    pub dispatch_connections: AtomicI64,
    pub notification_connections: AtomicI64,
    pub switchboard_connections: AtomicI64,
    /// Signed-in notification sessions per dialect number.
    sessions_by_dialect: [AtomicI64; DIALECTS],
    pub signins_md5: AtomicU64,
    pub signins_passport: AtomicU64,
    pub refusals_bad_credentials: AtomicU64,
    pub refusals_protocol: AtomicU64,
    pub passport_logins: AtomicU64,
    pub passport_refusals: AtomicU64,
    pub messages_relayed: AtomicU64,
    pub messages_undelivered: AtomicU64,
    pub bridge_queue_depth: AtomicI64,
    pub bridge_delivery_failures: AtomicU64,
    pub bridge_reconnects: AtomicU64,
    /// Tasks that panicked: a connection (closed) or a background loop
    /// (started again by `supervise`).
    pub task_panics: AtomicU64,
}

/// Keeps a gauge raised while alive.
pub struct GaugeGuard<'a>(&'a AtomicI64);

impl<'a> GaugeGuard<'a> {
    pub fn new(gauge: &'a AtomicI64) -> GaugeGuard<'a> {
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn session_gauge(&self, dialect: u8) -> Option<&AtomicI64> {
        self.sessions_by_dialect.get(usize::from(dialect))
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, online_users: usize, conversations: usize) -> String {
        let mut out = String::with_capacity(2048);
        let g = |v: &AtomicI64| v.load(Ordering::Relaxed);
        let c = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP msngate_connections Open client connections by server role."
        );
        let _ = writeln!(out, "# TYPE msngate_connections gauge");
        let _ = writeln!(
            out,
            "msngate_connections{{role=\"dispatch\"}} {}",
            g(&self.dispatch_connections)
        );
        let _ = writeln!(
            out,
            "msngate_connections{{role=\"notification\"}} {}",
            g(&self.notification_connections)
        );
        let _ = writeln!(
            out,
            "msngate_connections{{role=\"switchboard\"}} {}",
            g(&self.switchboard_connections)
        );
        let _ = writeln!(
            out,
            "# HELP msngate_sessions Signed-in notification sessions by dialect."
        );
        let _ = writeln!(out, "# TYPE msngate_sessions gauge");
        for (n, v) in self.sessions_by_dialect.iter().enumerate().skip(2) {
            let _ = writeln!(out, "msngate_sessions{{dialect=\"MSNP{n}\"}} {}", g(v));
        }
        let _ = writeln!(out, "# HELP msngate_online_users Users signed in.");
        let _ = writeln!(out, "# TYPE msngate_online_users gauge");
        let _ = writeln!(out, "msngate_online_users {online_users}");
        let _ = writeln!(
            out,
            "# HELP msngate_conversations Open switchboard conversations."
        );
        let _ = writeln!(out, "# TYPE msngate_conversations gauge");
        let _ = writeln!(out, "msngate_conversations {conversations}");
        let _ = writeln!(
            out,
            "# HELP msngate_signins_total Successful sign-ins by method."
        );
        let _ = writeln!(out, "# TYPE msngate_signins_total counter");
        let _ = writeln!(
            out,
            "msngate_signins_total{{method=\"md5\"}} {}",
            c(&self.signins_md5)
        );
        let _ = writeln!(
            out,
            "msngate_signins_total{{method=\"passport\"}} {}",
            c(&self.signins_passport)
        );
        let _ = writeln!(
            out,
            "# HELP msngate_signin_refusals_total Refused sign-ins by reason."
        );
        let _ = writeln!(out, "# TYPE msngate_signin_refusals_total counter");
        let _ = writeln!(
            out,
            "msngate_signin_refusals_total{{reason=\"credentials\"}} {}",
            c(&self.refusals_bad_credentials)
        );
        let _ = writeln!(
            out,
            "msngate_signin_refusals_total{{reason=\"protocol\"}} {}",
            c(&self.refusals_protocol)
        );
        let _ = writeln!(
            out,
            "# HELP msngate_passport_logins_total Passport HTTP logins by result."
        );
        let _ = writeln!(out, "# TYPE msngate_passport_logins_total counter");
        let _ = writeln!(
            out,
            "msngate_passport_logins_total{{result=\"success\"}} {}",
            c(&self.passport_logins)
        );
        let _ = writeln!(
            out,
            "msngate_passport_logins_total{{result=\"refused\"}} {}",
            c(&self.passport_refusals)
        );
        let _ = writeln!(
            out,
            "# HELP msngate_messages_relayed_total Switchboard messages delivered to every other participant."
        );
        let _ = writeln!(out, "# TYPE msngate_messages_relayed_total counter");
        let _ = writeln!(
            out,
            "msngate_messages_relayed_total {}",
            c(&self.messages_relayed)
        );
        let _ = writeln!(
            out,
            "# HELP msngate_messages_undelivered_total Switchboard messages at least one participant could not receive (sender got NAK)."
        );
        let _ = writeln!(out, "# TYPE msngate_messages_undelivered_total counter");
        let _ = writeln!(
            out,
            "msngate_messages_undelivered_total {}",
            c(&self.messages_undelivered)
        );
        let _ = writeln!(
            out,
            "# HELP msngate_bridge_queue_depth Outgoing bridge deliveries waiting."
        );
        let _ = writeln!(out, "# TYPE msngate_bridge_queue_depth gauge");
        let _ = writeln!(
            out,
            "msngate_bridge_queue_depth {}",
            g(&self.bridge_queue_depth)
        );
        let _ = writeln!(
            out,
            "# HELP msngate_bridge_delivery_failures_total Bridge deliveries that failed and were reported to the sender."
        );
        let _ = writeln!(out, "# TYPE msngate_bridge_delivery_failures_total counter");
        let _ = writeln!(
            out,
            "msngate_bridge_delivery_failures_total {}",
            c(&self.bridge_delivery_failures)
        );
        let _ = writeln!(
            out,
            "# HELP msngate_bridge_reconnects_total Bridge reconnections."
        );
        let _ = writeln!(out, "# TYPE msngate_bridge_reconnects_total counter");
        let _ = writeln!(
            out,
            "msngate_bridge_reconnects_total {}",
            c(&self.bridge_reconnects)
        );
        let _ = writeln!(
            out,
            "# HELP msngate_task_panics_total Tasks that panicked (a connection closed, or a background loop started again)."
        );
        let _ = writeln!(out, "# TYPE msngate_task_panics_total counter");
        let _ = writeln!(out, "msngate_task_panics_total {}", c(&self.task_panics));
        out
    }
}

// ---- sign-in limits (src/core/throttle.rs) ----

/// Appends the sign-in limit counters to a `/metrics` text.
pub fn render_signin_limits(out: &mut String, stats: &crate::core::throttle::ThrottleStats) {
    let c = |v: &AtomicU64| v.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP msngate_signin_failures_total Wrong passwords (MD5 and Passport).\n\
         # TYPE msngate_signin_failures_total counter\n\
         msngate_signin_failures_total {}",
        c(&stats.failures)
    );
    let _ = writeln!(
        out,
        "# HELP msngate_signin_delayed_total Sign-in attempts made to wait after earlier wrong passwords.\n\
         # TYPE msngate_signin_delayed_total counter\n\
         msngate_signin_delayed_total{{by=\"account\"}} {}\n\
         msngate_signin_delayed_total{{by=\"source\"}} {}",
        c(&stats.delayed_by_account),
        c(&stats.delayed_by_source)
    );
    let _ = writeln!(
        out,
        "# HELP msngate_signin_connections_closed_total Connections closed after repeated wrong passwords.\n\
         # TYPE msngate_signin_connections_closed_total counter\n\
         msngate_signin_connections_closed_total {}",
        c(&stats.connections_closed)
    );
}
