//! One MSN user's connection to one IRC network: registration (CAP, SASL
//! PLAIN, nick collisions), the paced sender of the persistent queue, what
//! the server tells us, and the reconnect supervisor around it all.
//!
//! Delivery is confirmed, not assumed: after a batch of lines the sender
//! writes `PING :msngate-ack-N`; the server answers in order, so its `PONG`
//! means every line before it was processed. Only then are the rows
//! deleted. Error replies seen before the `PONG` name the lines that
//! failed: a nick that is not on IRC holds that nick's lines until it is
//! back (ISON says so), a refusal (banned, moderated channel…) is reported
//! to the MSN sender. Lines written to a connection that dies are sent again
//! after reconnecting (at least once).

use super::conn::{IrcConn, Line};
use super::db::{Credentials, OutRow};
use super::handle::{Remote, irc_lower};
use super::text::{self, LineKind};
use super::{IrcNetwork, chat::BRIDGED_CAPS};
use base64::Engine as _;
use irc_proto::Response;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Requests to a running connection. Each is a nudge: the state it refers
/// to lives in [`PuppetState`] or the database, so one lost while
/// reconnecting costs nothing.
#[derive(Debug)]
pub enum Cmd {
    /// New rows in the user's queue.
    QueueChanged,
    /// The wanted away message changed.
    Away,
    /// The wanted channels changed.
    Channels,
    /// Poll presence now (a contact was added).
    Poll,
    /// Send a notice (bridge information for an IRC user).
    Notice { target: String, text: String },
    /// Close the connection; with `drain`, send what is queued first.
    Stop { drain: bool },
}

#[derive(Debug, Default)]
pub struct PuppetState {
    /// The nick while registered.
    pub nick: Option<String>,
    /// `AWAY` message to set (None: present).
    pub away: Option<String>,
    /// Channels the user should be in (lower case).
    pub channels: HashSet<String>,
    /// Channels joined now (lower case).
    pub joined: HashSet<String>,
}

pub struct PuppetHandle {
    pub local: String,
    pub cmd: mpsc::UnboundedSender<Cmd>,
    pub state: Mutex<PuppetState>,
}

impl PuppetHandle {
    pub fn send(&self, cmd: Cmd) {
        // A closed channel means the supervisor ended; the state stays for the next one.
        let _ = self.cmd.send(cmd);
    }

    pub fn connected(&self) -> bool {
        self.state.lock().nick.is_some()
    }
}

enum End {
    Stopped,
    Lost(String),
}

/// Runs the user's connection until it is stopped, reconnecting with
/// exponential backoff and jitter; at most `max_concurrent_connects`
/// registrations run at once across the bridge.
pub async fn supervise(
    net: Arc<IrcNetwork>,
    handle: Arc<PuppetHandle>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
) {
    let tuning = net.shared.tuning.clone();
    let mut shutdown = net.shared.shutdown.clone();
    let mut failures: u32 = 0;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let registered = {
            let limit = net.shared.connect_limit.clone();
            let attempt = async {
                let _permit = limit
                    .acquire_owned()
                    .await
                    .map_err(|_| "closing".to_string())?;
                register(&net, &handle).await
            };
            tokio::select! {
                r = attempt => Some(r),
                // Stopped before registering: the queue stays in the database.
                _ = wait_for_stop(&mut rx) => None,
                _ = shutdown.changed() => None,
            }
        };
        let Some(registered) = registered else { break };
        match registered {
            Ok(reg) => {
                let started = Instant::now();
                tracing::info!(user = %handle.local, network = %net.config.name, nick = %reg.nick, "IRC connection registered");
                let mut session = Session::new(net.clone(), handle.clone(), reg);
                let end = session.run(&mut rx, &mut shutdown).await;
                handle.state.lock().nick = None;
                handle.state.lock().joined.clear();
                net.puppet_connection_changed();
                match end {
                    End::Stopped => return,
                    End::Lost(reason) => {
                        tracing::warn!(user = %handle.local, network = %net.config.name, %reason, "IRC connection lost");
                        if started.elapsed() > Duration::from_secs(30) {
                            failures = 0;
                        }
                    }
                }
            }
            Err(reason) => {
                tracing::warn!(user = %handle.local, network = %net.config.name, %reason, "IRC connection failed")
            }
        }
        failures = failures.saturating_add(1);
        crate::metrics::Metrics::inc(&net.shared.metrics.bridge_reconnects);
        let delay = backoff(tuning.backoff_base, tuning.backoff_max, failures);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = wait_for_stop(&mut rx) => break,
            _ = shutdown.changed() => break,
        }
    }
}

/// Exponential backoff with "equal jitter": half fixed, half random, so
/// many connections cut at once do not come back in lockstep.
pub fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(max);
    let half = exp / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// Consumes commands until `Stop` (returns its `drain`) or the channel closes.
async fn wait_for_stop(rx: &mut mpsc::UnboundedReceiver<Cmd>) -> bool {
    loop {
        match rx.recv().await {
            Some(Cmd::Stop { drain }) => return drain,
            Some(_) => {}
            None => return false,
        }
    }
}

pub struct Registered {
    conn: IrcConn,
    nick: String,
    nickserv: Option<(String, String)>,
}

/// A valid nick from the template and the MSN handle.
pub fn nick_for(template: &str, local_handle: &str) -> String {
    let local = local_handle.split('@').next().unwrap_or(local_handle);
    let raw = template.replace("{local}", local);
    let mut nick: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "[]\\`^{}|_-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if nick
        .chars()
        .next()
        .is_none_or(|c| c.is_ascii_digit() || c == '-')
    {
        nick.insert(0, 'm');
    }
    nick.truncate(30);
    nick
}

/// Connects and registers: `CAP LS 302`, SASL PLAIN when the user has SASL
/// credentials and the server offers it, `NICK`/`USER`, a suffix on 433.
async fn register(net: &Arc<IrcNetwork>, handle: &PuppetHandle) -> Result<Registered, String> {
    let tuning = &net.shared.tuning;
    let cfg = &net.config;
    let credentials = match net.shared.db.credentials(&handle.local, &cfg.name).await {
        Ok(c) => c,
        Err(e) => return Err(format!("cannot read credentials: {e}")),
    };
    let mut conn = IrcConn::connect(
        &cfg.server,
        cfg.port,
        net.tls.as_ref(),
        tuning.register_timeout,
    )
    .await
    .map_err(|e| format!("connect to {}:{}: {e}", cfg.server, cfg.port))?;
    let base = nick_for(&cfg.nick_template, &handle.local);
    let mut nick = base.clone();
    let mut collisions = 0u32;
    let realname = net
        .shared
        .hub
        .session(&handle.local)
        .map(|s| s.presence().friendly_name.to_string())
        .unwrap_or_else(|| handle.local.clone());
    let user: String = handle
        .local
        .split('@')
        .next()
        .unwrap_or("msn")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(10)
        .collect();
    let user = if user.is_empty() {
        "msn".to_string()
    } else {
        user
    };
    conn.queue("CAP LS 302");
    conn.queue(&format!("NICK {nick}"));
    conn.queue(&format!("USER {user} 0 * :{}", text::line_safe(&realname)));
    conn.flush().await.map_err(|e| e.to_string())?;

    let sasl = match &credentials {
        Some(Credentials::Sasl { account, password }) => Some((account.clone(), password.clone())),
        _ => None,
    };
    let nickserv = match &credentials {
        Some(Credentials::NickServ { account, password }) => {
            Some((account.clone(), password.clone()))
        }
        _ => None,
    };
    let mut offered: Vec<String> = Vec::new();
    let mut cap_open = false;
    let deadline = Instant::now() + tuning.register_timeout;
    loop {
        let raw = conn.line_until(deadline).await.map_err(|e| e.to_string())?;
        let Some(line) = Line::parse(&raw) else {
            continue;
        };
        match (line.command.as_str(), line.numeric()) {
            ("PING", _) => conn.queue(&format!("PONG :{}", line.last())),
            ("ERROR", _) => return Err(format!("server refused: {}", line.last())),
            ("CAP", _) => {
                cap_open = true;
                let sub = line.param(1).to_ascii_uppercase();
                match sub.as_str() {
                    "LS" => {
                        offered.extend(
                            line.last()
                                .split_whitespace()
                                .map(|c| c.split('=').next().unwrap_or(c).to_ascii_lowercase()),
                        );
                        // `CAP * LS * :…` continues on the next line.
                        if line.params.len() >= 4 && line.param(2) == "*" {
                            continue;
                        }
                        let mut want = Vec::new();
                        if sasl.is_some() && offered.iter().any(|c| c == "sasl") {
                            want.push("sasl");
                        }
                        if offered.iter().any(|c| c == "away-notify") {
                            want.push("away-notify");
                        }
                        if want.is_empty() {
                            if sasl.is_some() {
                                tracing::warn!(user = %handle.local, network = %cfg.name, "server offers no SASL; connecting without authentication");
                            }
                            conn.queue("CAP END");
                            cap_open = false;
                        } else {
                            conn.queue(&format!("CAP REQ :{}", want.join(" ")));
                        }
                    }
                    "ACK" => {
                        let acked: Vec<String> = line
                            .last()
                            .split_whitespace()
                            .map(|c| c.to_ascii_lowercase())
                            .collect();
                        if sasl.is_some() && acked.iter().any(|c| c == "sasl") {
                            conn.queue("AUTHENTICATE PLAIN");
                        } else {
                            conn.queue("CAP END");
                            cap_open = false;
                        }
                    }
                    "NAK" => {
                        conn.queue("CAP END");
                        cap_open = false;
                    }
                    _ => {}
                }
            }
            ("AUTHENTICATE", _) if line.param(0) == "+" => {
                if let Some((account, password)) = &sasl {
                    for chunk in sasl_plain_chunks(account, password) {
                        conn.queue(&format!("AUTHENTICATE {chunk}"));
                    }
                }
            }
            (_, Some(Response::RPL_SASLSUCCESS)) => {
                tracing::info!(user = %handle.local, network = %cfg.name, "SASL authentication succeeded");
                conn.queue("CAP END");
                cap_open = false;
            }
            (
                _,
                Some(
                    Response::ERR_SASLFAIL
                    | Response::ERR_SASLTOOLONG
                    | Response::ERR_SASLABORT
                    | Response::ERR_NICKLOCKED,
                ),
            ) => {
                tracing::warn!(user = %handle.local, network = %cfg.name, reply = %line.last(), "SASL authentication failed; connecting without it");
                if cap_open {
                    conn.queue("CAP END");
                    cap_open = false;
                }
            }
            (_, Some(Response::RPL_WELCOME)) => {
                if cap_open {
                    conn.queue("CAP END");
                }
                nick = line.param(0).to_string();
                conn.flush().await.map_err(|e| e.to_string())?;
                // ISUPPORT and the like follow at once; the session reads them.
                return Ok(Registered {
                    conn,
                    nick,
                    nickserv,
                });
            }
            (
                _,
                Some(
                    Response::ERR_NICKNAMEINUSE
                    | Response::ERR_NICKCOLLISION
                    | Response::ERR_UNAVAILRESOURCE,
                ),
            ) => {
                collisions += 1;
                if collisions > 50 {
                    return Err("no free nick".into());
                }
                nick = with_suffix(&base, collisions);
                conn.queue(&format!("NICK {nick}"));
            }
            (_, Some(Response::ERR_ERRONEOUSNICKNAME)) => {
                collisions += 1;
                // Too long or refused characters: a short, plain form.
                let short: String = base
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .take(6)
                    .collect();
                nick = format!(
                    "{}{}",
                    if short.is_empty() {
                        "msn".into()
                    } else {
                        short
                    },
                    collisions
                );
                conn.queue(&format!("NICK {nick}"));
            }
            _ => {}
        }
        conn.flush().await.map_err(|e| e.to_string())?;
    }
}

fn with_suffix(base: &str, n: u32) -> String {
    let suffix = n.to_string();
    let keep = base.len().min(30usize.saturating_sub(suffix.len()));
    format!("{}{suffix}", &base[..keep])
}

/// The `AUTHENTICATE` arguments for SASL PLAIN (authzid = authcid =
/// account): base64 in 400-byte pieces, and `+` after a last piece of
/// exactly 400 bytes (or for an empty payload).
pub fn sasl_plain_chunks(account: &str, password: &str) -> Vec<String> {
    let payload = base64::engine::general_purpose::STANDARD
        .encode(format!("{account}\0{account}\0{password}"));
    let mut chunks: Vec<String> = payload
        .as_bytes()
        .chunks(400)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    if payload.len() % 400 == 0 {
        chunks.push("+".into());
    }
    chunks
}

/// Joins names into arguments of at most ~400 bytes.
fn batches(names: &[String], sep: char) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for name in names {
        if !current.is_empty() && current.len() + name.len() + 1 > 400 {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(sep);
        }
        current.push_str(name);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Why a batch's lines to one target failed.
#[derive(Debug, Clone)]
enum Failure {
    /// The nick is not on IRC: hold the lines until it is.
    Absent,
    /// Refused for good, with the server's reason.
    Refused(String),
}

struct Inflight {
    row: OutRow,
    target: String,
    ack: u64,
}

struct Session {
    net: Arc<IrcNetwork>,
    handle: Arc<PuppetHandle>,
    conn: IrcConn,
    nick: String,
    /// `user@host` as others see us, once known (for the line budget).
    mask_len: Option<usize>,
    tokens: f64,
    refilled: Instant,
    /// Rows read from the database and not yet written.
    pending: VecDeque<OutRow>,
    /// Highest id read from the database.
    cursor: i64,
    /// More rows may be waiting in the database.
    db_dirty: bool,
    inflight: Vec<Inflight>,
    next_ack: u64,
    ack_outstanding: bool,
    /// Failures seen since the last acknowledgement, by target (lower case).
    failures: HashMap<String, Failure>,
    /// Lines for nicks that are not on IRC, by nick (lower case).
    held: BTreeMap<String, Vec<OutRow>>,
    /// Nicks we told the MSN user about (once per connection).
    told_absent: HashSet<String>,
    join_requested: HashSet<String>,
    /// ISON requests awaiting replies, in order: the nicks asked.
    ison: VecDeque<Vec<String>>,
    monitor: bool,
    /// Nicks on the server's MONITOR list (lower case).
    monitored: HashSet<String>,
    last_rx: Instant,
    keepalive_sent: bool,
    next_poll: Instant,
    away_sent: Option<Option<String>>,
    stopping: Option<Instant>,
    nickserv: Option<(String, String)>,
}

impl Session {
    fn new(net: Arc<IrcNetwork>, handle: Arc<PuppetHandle>, reg: Registered) -> Session {
        let now = Instant::now();
        let burst = f64::from(net.shared.tuning.burst);
        let s = Session {
            net,
            handle,
            conn: reg.conn,
            nick: reg.nick,
            mask_len: None,
            tokens: burst,
            refilled: now,
            pending: VecDeque::new(),
            cursor: 0,
            db_dirty: true,
            inflight: Vec::new(),
            next_ack: 1,
            ack_outstanding: false,
            failures: HashMap::new(),
            held: BTreeMap::new(),
            told_absent: HashSet::new(),
            join_requested: HashSet::new(),
            ison: VecDeque::new(),
            monitor: false,
            monitored: HashSet::new(),
            last_rx: now,
            keepalive_sent: false,
            next_poll: now,
            away_sent: Some(None),
            stopping: None,
            nickserv: reg.nickserv,
        };
        s.handle.state.lock().nick = Some(s.nick.clone());
        s
    }

    async fn run(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Cmd>,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> End {
        self.net.puppet_connection_changed();
        if let Some((account, password)) = self.nickserv.take() {
            self.conn
                .queue(&format!("PRIVMSG NickServ :IDENTIFY {account} {password}"));
        }
        self.sync_channels();
        let keepalive = self.net.shared.tuning.keepalive;
        loop {
            if let Err(e) = self.pump().await {
                return End::Lost(e);
            }
            if let Some(since) = self.stopping
                && (self.pending.is_empty() && self.inflight.is_empty()
                    || since.elapsed() > Duration::from_secs(5))
            {
                self.quit("Signed out of MSN").await;
                return End::Stopped;
            }
            let wake = self.next_wake(keepalive);
            tokio::select! {
                read = self.conn.read_more() => match read {
                    Ok(true) => {
                        self.last_rx = Instant::now();
                        self.keepalive_sent = false;
                        loop {
                            match self.conn.next_line() {
                                Ok(Some(raw)) => {
                                    if let Some(line) = Line::parse(&raw)
                                        && let Some(end) = self.on_line(line).await
                                    {
                                        return end;
                                    }
                                }
                                Ok(None) => break,
                                Err(e) => return End::Lost(e.to_string()),
                            }
                        }
                    }
                    Ok(false) => return End::Lost("server closed the connection".into()),
                    Err(e) => return End::Lost(e.to_string()),
                },
                cmd = rx.recv() => match cmd {
                    None => {
                        self.quit("Bridge stopped").await;
                        return End::Stopped;
                    }
                    Some(Cmd::Stop { drain }) => {
                        if drain {
                            self.stopping = Some(Instant::now());
                        } else {
                            self.quit("Signed out of MSN").await;
                            return End::Stopped;
                        }
                    }
                    Some(Cmd::QueueChanged) => self.db_dirty = true,
                    Some(Cmd::Away) => {}
                    Some(Cmd::Channels) => self.sync_channels(),
                    Some(Cmd::Poll) => self.next_poll = Instant::now(),
                    Some(Cmd::Notice { target, text }) => {
                        self.tokens -= 1.0;
                        self.conn.queue(&format!("NOTICE {target} :{text}"));
                    }
                },
                _ = tokio::time::sleep_until(wake) => {
                    if self.last_rx.elapsed() > keepalive * 2 {
                        return End::Lost("no reply from the server".into());
                    }
                    if self.last_rx.elapsed() > keepalive && !self.keepalive_sent {
                        self.keepalive_sent = true;
                        self.conn.queue("PING :msngate-keepalive");
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.quit("msngate is shutting down").await;
                        return End::Stopped;
                    }
                }
            }
        }
    }

    async fn quit(&mut self, reason: &str) {
        self.conn.queue(&format!("QUIT :{reason}"));
        let _ = self.conn.flush().await;
        self.conn.shutdown().await;
    }

    fn next_wake(&self, keepalive: Duration) -> Instant {
        let mut wake = if self.keepalive_sent {
            self.last_rx + keepalive * 2
        } else {
            self.last_rx + keepalive
        };
        wake = wake.min(self.next_poll);
        if !self.pending.is_empty() && self.tokens < 1.0 {
            let interval = self.net.shared.tuning.line_interval;
            wake = wake.min(self.refilled + interval.mul_f64((1.0 - self.tokens).max(0.0)));
        }
        if self.stopping.is_some() {
            wake = wake.min(Instant::now() + Duration::from_millis(200));
        }
        wake
    }

    fn refill(&mut self) {
        let tuning = &self.net.shared.tuning;
        let now = Instant::now();
        let gained = now.duration_since(self.refilled).as_secs_f64()
            / tuning.line_interval.as_secs_f64().max(0.001);
        self.tokens = (self.tokens + gained).min(f64::from(tuning.burst));
        self.refilled = now;
    }

    /// Writes what the token bucket allows, the acknowledgement ping, the
    /// away state and presence polls; then flushes.
    async fn pump(&mut self) -> Result<(), String> {
        self.refill();
        let away = self.handle.state.lock().away.clone();
        if self.away_sent.as_ref() != Some(&away) {
            match &away {
                Some(text) => self.conn.queue(&format!("AWAY :{text}")),
                None => self.conn.queue("AWAY"),
            }
            self.away_sent = Some(away);
        }
        if Instant::now() >= self.next_poll {
            self.poll_presence();
            self.expire_held().await;
            self.next_poll = Instant::now() + self.net.shared.tuning.presence_interval;
        }
        if self.pending.is_empty() && self.db_dirty {
            self.db_dirty = false;
            match self
                .net
                .shared
                .db
                .pending(&self.handle.local, &self.net.config.name, self.cursor, 200)
                .await
            {
                Ok(rows) => {
                    if rows.len() == 200 {
                        self.db_dirty = true;
                    }
                    if let Some(last) = rows.last() {
                        self.cursor = last.id;
                    }
                    self.pending.extend(rows);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the IRC queue");
                    self.db_dirty = true;
                }
            }
        }
        while self.tokens >= 1.0 {
            let Some(row) = self.pending.pop_front() else {
                break;
            };
            let Some(remote) = super::handle::parse(&row.contact, &self.net.config.name) else {
                // Cannot happen for rows we wrote; drop loudly.
                tracing::error!(contact = %row.contact, "queued IRC line for an invalid contact; discarding");
                self.finish_rows(vec![row.clone()], Vec::new()).await;
                continue;
            };
            let target = self.net.target_for(&remote);
            let key = irc_lower(&target);
            if let Some(held) = self.held.get_mut(&key) {
                held.push(row);
                continue;
            }
            if let Remote::Channel(chan) = &remote
                && !self.handle.state.lock().joined.contains(chan)
                && self.join_requested.insert(chan.clone())
            {
                self.conn.queue(&format!("JOIN {chan}"));
                self.tokens -= 1.0;
            }
            for piece in text::split(&row.body, self.budget(&target, row.kind)) {
                let line = match row.kind {
                    LineKind::Privmsg => format!("PRIVMSG {target} :{piece}"),
                    LineKind::Action => format!("PRIVMSG {target} :\x01ACTION {piece}\x01"),
                };
                self.conn.queue(&line);
                self.tokens -= 1.0;
            }
            self.inflight.push(Inflight {
                row,
                target: key,
                ack: self.next_ack,
            });
        }
        if !self.ack_outstanding && self.inflight.last().is_some_and(|i| i.ack == self.next_ack) {
            self.conn
                .queue(&format!("PING :msngate-ack-{}", self.next_ack));
            self.ack_outstanding = true;
            self.next_ack += 1;
        }
        self.conn.flush().await.map_err(|e| e.to_string())
    }

    /// Bytes of text one PRIVMSG line to `target` may carry, leaving room
    /// for the `:nick!user@host ` prefix the server adds when relaying.
    fn budget(&self, target: &str, kind: LineKind) -> usize {
        let mask = self.mask_len.unwrap_or(10 + 1 + 63);
        let prefix = 1 + self.nick.len() + 1 + mask + 1;
        let command = "PRIVMSG ".len() + target.len() + 2;
        512usize
            .saturating_sub(2 + prefix + command + kind.overhead())
            .max(32)
    }

    /// ISON for the watched nicks and held targets; USERHOST (away flags)
    /// for those known online. MONITOR servers report on their own.
    fn poll_presence(&mut self) {
        let watched = self.net.watched_nicks(&self.handle.local);
        let mut ison: Vec<String> = self.held.keys().cloned().collect();
        if self.monitor {
            // The server reports changes itself (730/731); keep its list in
            // step with the watched nicks. USERHOST still gives away flags.
            let want: HashSet<String> = watched.iter().map(|n| irc_lower(n)).collect();
            let add: Vec<String> = want.difference(&self.monitored).cloned().collect();
            let remove: Vec<String> = self.monitored.difference(&want).cloned().collect();
            for batch in batches(&remove, ',') {
                self.conn.queue(&format!("MONITOR - {batch}"));
            }
            for batch in batches(&add, ',') {
                self.conn.queue(&format!("MONITOR + {batch}"));
            }
            self.monitored = want;
            for group in watched.chunks(5) {
                self.conn.queue(&format!("USERHOST {}", group.join(" ")));
            }
        } else {
            ison.extend(watched);
        }
        ison.sort();
        ison.dedup();
        for batch in batches(&ison, ' ') {
            self.conn.queue(&format!("ISON {batch}"));
            self.ison
                .push_back(batch.split(' ').map(str::to_string).collect());
        }
        self.tokens -= 0.5;
    }

    async fn on_line(&mut self, line: Line) -> Option<End> {
        let me = irc_lower(&self.nick);
        let from = line.source_nick().map(str::to_string);
        let from_me = from.as_deref().is_some_and(|n| irc_lower(n) == me);
        match (line.command.as_str(), line.numeric()) {
            ("PING", _) => self.conn.queue(&format!("PONG :{}", line.last())),
            ("PONG", _) => {
                if let Some(n) = line
                    .last()
                    .strip_prefix("msngate-ack-")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    self.acknowledged(n).await;
                }
            }
            ("ERROR", _) => return Some(End::Lost(format!("server: {}", line.last()))),
            ("PRIVMSG" | "NOTICE", _) if !from_me => {
                if let Some(nick) = from {
                    self.on_message(&line, &nick);
                }
            }
            ("JOIN", _) => {
                let chan = irc_lower(line.param(0));
                if from_me {
                    if let Some(irc_proto::Prefix::Nickname(_, user, host)) = &line.prefix {
                        self.mask_len = Some(user.len() + 1 + host.len());
                    }
                    self.join_requested.remove(&chan);
                    self.handle.state.lock().joined.insert(chan);
                } else if let Some(nick) = from {
                    self.net.observe(&nick, Some(true), None);
                }
            }
            ("TOPIC", _) => self.net.channel_topic(line.param(0), line.last()),
            (_, Some(Response::RPL_TOPIC)) => self.net.channel_topic(line.param(1), line.last()),
            ("PART", _) if from_me => {
                self.handle
                    .state
                    .lock()
                    .joined
                    .remove(&irc_lower(line.param(0)));
            }
            ("KICK", _) if irc_lower(line.param(1)) == me => {
                let chan = line.param(0).to_string();
                self.handle.state.lock().joined.remove(&irc_lower(&chan));
                let by = from.unwrap_or_default();
                self.net.notify_local(
                    &self.handle.local,
                    &Remote::Channel(irc_lower(&chan)),
                    format!("{by} removed you from {chan}: {}", line.param(2)),
                );
            }
            ("QUIT", _) => {
                if let Some(nick) = from {
                    self.net.observe(&nick, Some(false), Some(false));
                }
            }
            ("NICK", _) => {
                let new = line.param(0).to_string();
                if from_me {
                    self.nick = new.clone();
                    self.handle.state.lock().nick = Some(new);
                } else if let Some(old) = from {
                    self.net.nick_changed(&old, &new);
                    self.release_held(&irc_lower(&new));
                }
            }
            ("AWAY", _) => {
                if let Some(nick) = from {
                    self.net.observe(
                        &nick,
                        Some(true),
                        Some(!line.params.is_empty() && !line.last().is_empty()),
                    );
                }
            }
            (_, Some(Response::RPL_ISUPPORT)) => {
                // `005 <me> TOKEN… :are supported`: neither end is a token.
                let tokens = line
                    .params
                    .get(1..line.params.len().saturating_sub(1))
                    .unwrap_or_default();
                for token in tokens {
                    if token.starts_with("MONITOR") && !self.monitor {
                        self.monitor = true;
                        self.next_poll = Instant::now();
                    }
                }
            }
            (_, Some(Response::RPL_ISON)) => {
                let asked = self.ison.pop_front().unwrap_or_default();
                let online: HashSet<String> =
                    line.last().split_whitespace().map(irc_lower).collect();
                let mut here = Vec::new();
                for nick in &asked {
                    let is_on = online.contains(&irc_lower(nick));
                    if self.net.is_watched_nick(nick) {
                        self.net
                            .observe(nick, Some(is_on), if is_on { None } else { Some(false) });
                    }
                    if is_on {
                        here.push(nick.clone());
                        self.release_held(&irc_lower(nick));
                    }
                }
                // Away flags for those online (USERHOST takes five nicks).
                let here: Vec<String> = here
                    .into_iter()
                    .filter(|n| self.net.is_watched_nick(n))
                    .collect();
                for group in here.chunks(5) {
                    self.conn.queue(&format!("USERHOST {}", group.join(" ")));
                }
            }
            (_, Some(Response::RPL_USERHOST)) => {
                // `nick[*]=+user@host`: `-` instead of `+` means away.
                for entry in line.last().split_whitespace() {
                    if let Some((nick, rest)) = entry.split_once('=') {
                        self.net.observe(
                            nick.trim_end_matches('*'),
                            Some(true),
                            Some(rest.starts_with('-')),
                        );
                    }
                }
            }
            (_, Some(Response::RPL_AWAY)) => {
                self.net.observe(line.param(1), Some(true), Some(true))
            }
            (_, Some(Response::RPL_MONONLINE | Response::RPL_MONOFFLINE)) => {
                let online = line.numeric() == Some(Response::RPL_MONONLINE);
                for entry in line.last().split(',') {
                    let nick = entry.split('!').next().unwrap_or(entry);
                    self.net
                        .observe(nick, Some(online), if online { None } else { Some(false) });
                    if online {
                        self.release_held(&irc_lower(nick));
                    }
                }
            }
            (_, Some(Response::ERR_NOSUCHNICK)) => {
                let target = line.param(1).to_string();
                let failure = if target.starts_with(['#', '&', '!', '+']) {
                    Failure::Refused(line.last().to_string())
                } else {
                    Failure::Absent
                };
                self.failures.insert(irc_lower(&target), failure);
            }
            (
                _,
                Some(
                    Response::ERR_CANNOTSENDTOCHAN
                    | Response::ERR_NOSUCHCHANNEL
                    | Response::ERR_NOTONCHANNEL,
                ),
            ) => {
                self.failures.insert(
                    irc_lower(line.param(1)),
                    Failure::Refused(line.last().to_string()),
                );
            }
            (
                _,
                Some(
                    Response::ERR_BANNEDFROMCHAN
                    | Response::ERR_INVITEONLYCHAN
                    | Response::ERR_BADCHANNELKEY
                    | Response::ERR_CHANNELISFULL
                    | Response::ERR_TOOMANYCHANNELS,
                ),
            ) => {
                let chan = irc_lower(line.param(1));
                self.join_requested.remove(&chan);
                self.failures
                    .insert(chan, Failure::Refused(line.last().to_string()));
            }
            _ => {}
        }
        None
    }

    /// A PRIVMSG or NOTICE from `nick` to us or a channel.
    fn on_message(&mut self, line: &Line, nick: &str) {
        let target = line.param(0);
        let body = line.last();
        let notice = line.command == "NOTICE";
        let channel = target.starts_with(['#', '&', '!', '+']);
        let mut action = false;
        let mut content = body.to_string();
        if let Some((command, args)) = text::ctcp(body) {
            if notice {
                return; // CTCP replies
            }
            match command.as_str() {
                "ACTION" => {
                    action = true;
                    content = args.to_string();
                }
                "VERSION" => {
                    self.ctcp_reply(
                        nick,
                        &format!(
                            "VERSION msngate {} (MSN Messenger gateway)",
                            env!("CARGO_PKG_VERSION")
                        ),
                    );
                    return;
                }
                "PING" => {
                    self.ctcp_reply(nick, &format!("PING {args}"));
                    return;
                }
                "CLIENTINFO" => {
                    self.ctcp_reply(nick, "CLIENTINFO ACTION CLIENTINFO PING VERSION");
                    return;
                }
                _ => {
                    tracing::debug!(%nick, %command, "unanswered CTCP");
                    return;
                }
            }
        }
        let content = text::strip_formatting(&content);
        let shown = match (channel, action) {
            (true, false) => format!("{nick}: {content}"),
            (_, true) => format!("* {nick} {content}"),
            (false, false) => content,
        };
        if channel {
            self.net.incoming(
                &self.handle.local,
                &Remote::Channel(irc_lower(target)),
                shown,
            );
        } else {
            self.net
                .incoming_from_nick(&self.handle.local, nick, shown, !notice);
        }
    }

    /// CTCP replies are rate limited: a flood of requests must not get the
    /// connection killed for flooding.
    fn ctcp_reply(&mut self, nick: &str, body: &str) {
        self.refill();
        if self.tokens < 1.0 {
            tracing::debug!(%nick, "CTCP request not answered: rate limit");
            return;
        }
        self.tokens -= 1.0;
        self.conn.queue(&format!("NOTICE {nick} :\x01{body}\x01"));
    }

    /// Lines that waited too long for their nick are reported undelivered.
    async fn expire_held(&mut self) {
        let hold = self.net.shared.tuning.hold_absent;
        let oldest =
            crate::store::now_millis() - i64::try_from(hold.as_millis()).unwrap_or(i64::MAX);
        let mut expired = Vec::new();
        self.held.retain(|_, rows| {
            let (old, keep): (Vec<OutRow>, Vec<OutRow>) = std::mem::take(rows)
                .into_iter()
                .partition(|r| r.created_at <= oldest);
            expired.extend(old);
            *rows = keep;
            !rows.is_empty()
        });
        if expired.is_empty() {
            return;
        }
        let reason = format!(
            "they did not come back to IRC within {}",
            text::duration_words(hold)
        );
        let refused = expired.into_iter().map(|r| (r, reason.clone())).collect();
        self.finish_rows(Vec::new(), refused).await;
    }

    fn release_held(&mut self, nick_lower: &str) {
        if let Some(rows) = self.held.remove(nick_lower) {
            for row in rows.into_iter().rev() {
                self.pending.push_front(row);
            }
            self.told_absent.remove(nick_lower);
        }
    }

    /// The server processed everything up to ack `n`: settle those rows.
    async fn acknowledged(&mut self, n: u64) {
        self.ack_outstanding = false;
        let (done, rest): (Vec<Inflight>, Vec<Inflight>) = std::mem::take(&mut self.inflight)
            .into_iter()
            .partition(|i| i.ack <= n);
        self.inflight = rest;
        let failures = std::mem::take(&mut self.failures);
        let mut delivered = Vec::new();
        let mut refused = Vec::new();
        let mut absent = Vec::new();
        for i in done {
            match failures.get(&i.target) {
                None => delivered.push(i.row),
                Some(Failure::Absent) => absent.push((i.target, i.row)),
                Some(Failure::Refused(reason)) => refused.push((i.row, reason.clone())),
            }
        }
        for (target, row) in absent {
            if self.told_absent.insert(target.clone())
                && let Some(remote) = super::handle::parse(&row.contact, &self.net.config.name)
            {
                self.net.notify_local(
                    &self.handle.local,
                    &remote,
                    format!("{} is not on IRC right now; your messages will be delivered when they are back.", self.net.target_for(&remote)),
                );
            }
            self.held.entry(target).or_default().push(row);
        }
        self.finish_rows(delivered, refused).await;
    }

    /// Deletes settled rows; tells the MSN user about refused ones.
    async fn finish_rows(&mut self, delivered: Vec<OutRow>, refused: Vec<(OutRow, String)>) {
        let mut ids: Vec<i64> = delivered.iter().map(|r| r.id).collect();
        let mut told = HashSet::new();
        for (row, reason) in &refused {
            ids.push(row.id);
            crate::metrics::Metrics::inc(&self.net.shared.metrics.bridge_delivery_failures);
            if told.insert(row.contact.clone())
                && let Some(remote) = super::handle::parse(&row.contact, &self.net.config.name)
            {
                self.net.notify_local(
                    &self.handle.local,
                    &remote,
                    format!(
                        "Not delivered to {}: {reason}. Undelivered text: {}",
                        self.net.target_for(&remote),
                        row.body
                    ),
                );
            }
        }
        if ids.is_empty() {
            return;
        }
        match self.net.shared.db.delete_out(&ids).await {
            Ok(()) => self.net.queue_settled(ids.len()),
            Err(e) => {
                tracing::error!(error = %e, "cannot delete delivered IRC lines; they may be sent again")
            }
        }
    }

    /// Joins the wanted channels not yet joined, parts the unwanted ones.
    fn sync_channels(&mut self) {
        let (want, joined) = {
            let s = self.handle.state.lock();
            (s.channels.clone(), s.joined.clone())
        };
        for chan in want.difference(&joined) {
            if self.join_requested.insert(chan.clone()) {
                self.conn.queue(&format!("JOIN {chan}"));
            }
        }
        for chan in joined.difference(&want) {
            if !self.net.has_chat(&self.handle.local, chan) {
                self.conn
                    .queue(&format!("PART {chan} :Removed from the MSN contact list"));
            }
        }
    }
}

/// The presence an IRC user shows to MSN.
pub fn remote_presence(
    handle: &str,
    nick: &str,
    online: bool,
    away: bool,
) -> crate::core::presence::Presence {
    use crate::core::presence::{Presence, Status};
    Presence {
        handle: handle.into(),
        status: match (online, away) {
            (false, _) => Status::Offline,
            (true, true) => Status::Away,
            (true, false) => Status::Online,
        },
        friendly_name: nick.into(),
        capabilities: BRIDGED_CAPS,
        avatar: None,
        personal_message: "".into(),
        now_playing: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_chunks() {
        let c = sasl_plain_chunks("alice", "pw");
        assert_eq!(
            c,
            [base64::engine::general_purpose::STANDARD.encode("alice\0alice\0pw")]
        );
        // 300 raw bytes → 400 base64 bytes exactly → a trailing "+".
        let account = "a".repeat(148);
        let c = sasl_plain_chunks(&account, "pw");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].len(), 400);
        assert_eq!(c[1], "+");
        let c = sasl_plain_chunks(&"b".repeat(300), "p");
        assert_eq!((c.len(), c[0].len(), c[1].len()), (3, 400, 400));
        assert!(c[2].len() < 400 && c[2] != "+");
    }

    #[test]
    fn nicks_and_backoff() {
        assert_eq!(nick_for("{local}|msn", "alice@example.com"), "alice|msn");
        assert_eq!(
            nick_for("{local}|msn", "j.doe+x@example.com"),
            "j_doe_x|msn"
        );
        assert_eq!(nick_for("{local}", "42@example.com"), "m42");
        assert_eq!(with_suffix("alice|msn", 2), "alice|msn2");
        for n in 1..20 {
            let d = backoff(Duration::from_millis(100), Duration::from_secs(5), n);
            assert!(d <= Duration::from_secs(5));
            assert!(d >= Duration::from_millis(50));
        }
    }
}
