//! The IRC bridge (docs/irc.md).
//!
//! Every signed-in MSN user gets an IRC connection of their own (a
//! "puppet") on each configured network, with a nick from the network's
//! template. IRC nicks and channels are MSN contacts with handles of the
//! form `nick@<network>.irc` and `chan.c@<network>.irc` ([`handle`]).
//!
//! * MSN → IRC: a switchboard message to an IRC contact is split into IRC
//!   lines and queued in the database ([`db`]); the user's connection sends
//!   the queue paced by a token bucket and deletes lines only once the
//!   server confirmed them ([`puppet`]). Nothing sent while the connection
//!   is down is lost.
//! * IRC → MSN: a PRIVMSG to a puppet (or in a channel it is in) opens a
//!   switchboard conversation with the MSN user ([`chat`]); messages for a
//!   user who cannot be reached wait in the database until they sign in.
//! * Presence: ISON polling (MONITOR where offered), USERHOST away flags,
//!   away-notify, JOIN/QUIT/NICK seen in shared channels.

pub mod chat;
pub mod conn;
pub mod db;
pub mod handle;
pub mod puppet;
pub mod text;

use crate::config::{IrcConfig, IrcNetworkConfig};
use crate::core::conversation::{Conversation, EndpointOutbox, ParticipantInfo, Receipts};
use crate::core::hub::{Hub, Unreachable};
use crate::core::outbox::Outbox;
use crate::core::presence::{Presence, Status};
use crate::core::remote::{BoxFuture, Network};
use crate::core::roster::List;
use crate::metrics::Metrics;
use chat::{Attached, BRIDGED_CAPS, Chat, ChatHandle, ChatInput};
use handle::{Remote, irc_lower};
use parking_lot::Mutex;
use puppet::{Cmd, PuppetHandle, PuppetState};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};

/// Timings and limits; the defaults suit public networks, tests shorten them.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// How often watched nicks are polled (ISON/USERHOST).
    pub presence_interval: Duration,
    /// First reconnect delay; doubles per failure up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Registrations in progress at once, over all users and networks.
    pub max_concurrent_connects: usize,
    /// Token bucket: lines sent at once, then one per `line_interval`.
    pub burst: u32,
    pub line_interval: Duration,
    /// Connect + register must finish within this.
    pub register_timeout: Duration,
    /// Silence after which we ping the server (twice this: reconnect).
    pub keepalive: Duration,
    /// Lines for a nick that is not on IRC wait this long for it.
    pub hold_absent: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            presence_interval: Duration::from_secs(30),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            max_concurrent_connects: 4,
            burst: 5,
            line_interval: Duration::from_millis(2000),
            register_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(120),
            hold_absent: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

/// What every network of the bridge shares.
pub struct Shared {
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub db: db::Db,
    pub tuning: Tuning,
    pub shutdown: watch::Receiver<bool>,
    pub connect_limit: Arc<Semaphore>,
    /// Queued lines not yet confirmed by IRC servers (this bridge only).
    depth: AtomicI64,
}

/// The running bridge.
pub struct IrcBridge {
    shared: Arc<Shared>,
    networks: Vec<Arc<IrcNetwork>>,
    started: AtomicBool,
}

impl IrcBridge {
    /// Started and not shutting down. IRC servers being unreachable does not
    /// make msngate unready: MSN keeps working and lines wait in the queue.
    pub fn is_ready(&self) -> bool {
        self.started.load(Ordering::Acquire) && !*self.shared.shutdown.borrow()
    }

    /// Waits until every queued line was confirmed by its IRC server, or
    /// `within` passed; returns whether the queue is empty.
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.shared.depth.load(Ordering::Acquire) <= 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn networks(&self) -> &[Arc<IrcNetwork>] {
        &self.networks
    }
}

/// Starts the bridge with the default [`Tuning`].
pub async fn start(
    config: &IrcConfig,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<IrcBridge> {
    start_with(config, Tuning::default(), hub, metrics, shutdown).await
}

pub async fn start_with(
    config: &IrcConfig,
    tuning: Tuning,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<IrcBridge> {
    let db = db::Db::open(hub.store().pool().clone()).await?;
    let queued = db.count_out().await?;
    metrics
        .bridge_queue_depth
        .fetch_add(queued, Ordering::Relaxed);
    let shared = Arc::new(Shared {
        hub: hub.clone(),
        metrics,
        db,
        connect_limit: Arc::new(Semaphore::new(tuning.max_concurrent_connects.max(1))),
        tuning,
        shutdown,
        depth: AtomicI64::new(queued),
    });
    let mut networks = Vec::new();
    for (i, cfg) in config.networks.iter().enumerate() {
        let tls = if cfg.tls {
            let key = format!("irc.networks[{i}].tls_ca_file");
            Some(crate::tls::client_config(cfg.tls_ca_file.as_deref(), &key)?)
        } else {
            None
        };
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let net = Arc::new_cyclic(|me| IrcNetwork {
            label: format!("irc:{}", cfg.name),
            domain: handle::domain(&cfg.name),
            config: cfg.clone(),
            tls: tls.clone(),
            shared: shared.clone(),
            me: me.clone(),
            state: Mutex::new(NetState::default()),
            control: control_tx,
        });
        hub.register_network(net.clone());
        tokio::spawn(net.clone().control_loop(control_rx));
        if cfg.stay_connected {
            for local in shared.db.puppets(&cfg.name).await? {
                net.ensure_puppet(&local);
                net.set_away(&local, Some("Signed out of MSN".into()));
            }
        }
        networks.push(net);
    }
    // Users signed in before the bridge started.
    for session in hub.sessions() {
        let presence = session.presence();
        if presence.status != Status::Offline {
            for net in &networks {
                net.local_presence(presence.clone());
            }
        }
    }
    tracing::info!(networks = networks.len(), queued, "IRC bridge started");
    Ok(IrcBridge {
        shared,
        networks,
        started: AtomicBool::new(true),
    })
}

#[derive(Debug, Clone)]
struct RemoteState {
    nick: String,
    online: bool,
    away: bool,
}

#[derive(Default)]
struct NetState {
    puppets: HashMap<String, Arc<PuppetHandle>>,
    chats: HashMap<(String, String), ChatHandle>,
    /// Contact handle → signed-in MSN users with it on their forward list.
    watchers: HashMap<String, HashSet<String>>,
    /// Presence last reported for tracked nick contacts.
    remotes: HashMap<String, RemoteState>,
    /// Contact handle → the nick it goes by now (after NICK changes).
    aliases: HashMap<String, String>,
    /// irc_lower(current nick) → contact handle, for renamed contacts.
    alias_of: HashMap<String, String>,
    /// How nicks are written (case), by contact handle; bounded.
    display: HashMap<String, String>,
    signed_in: HashMap<String, Status>,
    /// (MSN user, irc_lower(nick)) already told the user is offline.
    told_offline: HashSet<(String, String)>,
    /// Some puppet of this network is registered.
    up: bool,
    /// Channel topics (IRC formatting stripped), by irc_lower(channel).
    topics: HashMap<String, String>,
}

enum Control {
    Presence(Arc<Presence>),
    Watch {
        local: String,
        remote: String,
        watching: bool,
    },
}

/// One configured IRC network, as the hub sees it.
pub struct IrcNetwork {
    pub config: IrcNetworkConfig,
    /// The TLS client settings when the network uses TLS.
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    label: String,
    domain: String,
    pub shared: Arc<Shared>,
    me: Weak<IrcNetwork>,
    state: Mutex<NetState>,
    control: mpsc::UnboundedSender<Control>,
}

fn away_text(status: Status) -> Option<String> {
    Some(
        match status {
            Status::Online => return None,
            Status::Busy => "Busy",
            Status::Idle => "Idle",
            Status::BeRightBack => "Be right back",
            Status::Away | Status::Hidden => "Away",
            Status::OnThePhone => "On the phone",
            Status::OutToLunch => "Out to lunch",
            Status::Offline => "Signed out of MSN",
        }
        .into(),
    )
}

impl IrcNetwork {
    /// Whether a handle belongs to this network.
    pub fn owns_handle(&self, handle: &str) -> bool {
        handle.len() > self.domain.len() + 1
            && handle
                .to_ascii_lowercase()
                .ends_with(&format!("@{}", self.domain))
    }

    fn parse(&self, handle: &str) -> Option<Remote> {
        handle::parse(handle, &self.config.name)
    }

    fn contact_of(&self, remote: &Remote) -> Option<String> {
        handle::handle_of(remote, &self.config.name)
    }

    /// The nick or channel to address for `remote` now.
    pub fn target_for(&self, remote: &Remote) -> String {
        match remote {
            Remote::Channel(c) => c.clone(),
            Remote::Nick(n) => {
                let state = self.state.lock();
                self.contact_of(remote)
                    .and_then(|c| {
                        state
                            .aliases
                            .get(&c)
                            .or_else(|| state.display.get(&c))
                            .cloned()
                    })
                    .unwrap_or_else(|| n.clone())
            }
        }
    }

    /// The contact handle an IRC nick stands for (following renames).
    fn contact_for_nick(&self, nick: &str) -> Option<String> {
        let state = self.state.lock();
        if let Some(c) = state.alias_of.get(&irc_lower(nick)) {
            return Some(c.clone());
        }
        drop(state);
        handle::nick_handle(nick, &self.config.name)
    }

    /// How the contact appears in a conversation.
    pub fn participant(&self, contact: &str) -> Arc<ParticipantInfo> {
        let name = match self.parse(contact) {
            Some(r @ Remote::Nick(_)) => self.target_for(&r),
            Some(Remote::Channel(c)) => c,
            None => contact.to_string(),
        };
        Arc::new(ParticipantInfo {
            handle: contact.into(),
            friendly_name: name.into(),
            capabilities: BRIDGED_CAPS,
        })
    }

    fn presence_of(&self, contact: &str, remote: &Remote) -> Presence {
        let state = self.state.lock();
        match remote {
            Remote::Channel(c) => {
                let mut p = puppet::remote_presence(contact, c, state.up, false);
                // The topic is what MSN 7 shows under the channel's name.
                p.personal_message = match state.topics.get(c) {
                    Some(topic) if !topic.is_empty() => topic.as_str().into(),
                    _ => "IRC channel".into(),
                };
                p
            }
            Remote::Nick(n) => match state.remotes.get(contact) {
                Some(r) => puppet::remote_presence(contact, &r.nick, r.online, r.away),
                None => puppet::remote_presence(
                    contact,
                    state.display.get(contact).unwrap_or(n),
                    false,
                    false,
                ),
            },
        }
    }

    /// A channel's topic was seen (on joining, or changed): watchers of
    /// the channel contact see it as its personal message.
    pub fn channel_topic(&self, channel: &str, topic: &str) {
        let chan = irc_lower(channel);
        let topic = text::strip_formatting(topic);
        {
            let mut state = self.state.lock();
            if state.topics.get(&chan) == Some(&topic) {
                return;
            }
            state.topics.insert(chan.clone(), topic);
        }
        let remote = Remote::Channel(chan);
        if let Some(contact) = self.contact_of(&remote) {
            self.shared
                .hub
                .remote_presence(Arc::new(self.presence_of(&contact, &remote)));
        }
    }

    fn tracked(state: &NetState, contact: &str) -> bool {
        state.watchers.contains_key(contact) || state.chats.keys().any(|(_, c)| c == contact)
    }

    /// Something tells us about `nick`: online or not, away or not.
    pub fn observe(&self, nick: &str, online: Option<bool>, away: Option<bool>) {
        let Some(contact) = self.contact_for_nick(nick) else {
            return;
        };
        let report = {
            let mut state = self.state.lock();
            if state.display.len() > 10_000 {
                state.display.clear();
            }
            state.display.insert(contact.clone(), nick.to_string());
            if !Self::tracked(&state, &contact) {
                return;
            }
            let before = state.remotes.get(&contact).cloned();
            let mut now = before.clone().unwrap_or(RemoteState {
                nick: nick.to_string(),
                online: false,
                away: false,
            });
            now.nick = nick.to_string();
            if let Some(o) = online {
                now.online = o;
            }
            if let Some(a) = away {
                now.away = a;
            }
            if !now.online {
                now.away = false;
                // A renamed contact that left is known by its own nick again.
                if let Some(alias) = state.aliases.remove(&contact) {
                    state.alias_of.remove(&irc_lower(&alias));
                }
            }
            state.remotes.insert(contact.clone(), now.clone());
            let changed = match &before {
                None => now.online,
                Some(b) => {
                    b.online != now.online
                        || b.away != now.away
                        || (now.online && b.nick != now.nick)
                }
            };
            changed.then(|| puppet::remote_presence(&contact, &now.nick, now.online, now.away))
        };
        if let Some(p) = report {
            self.shared.hub.remote_presence(Arc::new(p));
        }
    }

    /// `old` is now known as `new`: the contact follows the person.
    pub fn nick_changed(&self, old: &str, new: &str) {
        let Some(contact) = self.contact_for_nick(old) else {
            return;
        };
        {
            let mut state = self.state.lock();
            if Self::tracked(&state, &contact) {
                state.alias_of.remove(&irc_lower(old));
                if handle::nick_handle(new, &self.config.name).as_deref() == Some(contact.as_str())
                {
                    state.aliases.remove(&contact);
                } else {
                    state.aliases.insert(contact.clone(), new.to_string());
                    state.alias_of.insert(irc_lower(new), contact.clone());
                }
            }
        }
        self.observe(new, Some(true), None);
        // Someone watching the new nick as a contact of its own sees it appear.
        if let Some(direct) = handle::nick_handle(new, &self.config.name)
            && direct != contact
        {
            let tracked = Self::tracked(&self.state.lock(), &direct);
            if tracked {
                self.observe_contact_direct(&direct, new);
            }
        }
    }

    fn observe_contact_direct(&self, contact: &str, nick: &str) {
        let report = {
            let mut state = self.state.lock();
            let before = state.remotes.get(contact).cloned();
            let now = RemoteState {
                nick: nick.to_string(),
                online: true,
                away: before.as_ref().is_some_and(|b| b.away),
            };
            state.remotes.insert(contact.to_string(), now.clone());
            (!before.is_some_and(|b| b.online))
                .then(|| puppet::remote_presence(contact, nick, true, now.away))
        };
        if let Some(p) = report {
            self.shared.hub.remote_presence(Arc::new(p));
        }
    }

    /// Nicks to poll for `local`: their watched nick contacts, as they are called now.
    pub fn watched_nicks(&self, local: &str) -> Vec<String> {
        let contacts: Vec<String> = {
            let state = self.state.lock();
            state
                .watchers
                .iter()
                .filter(|(_, w)| w.contains(local))
                .map(|(c, _)| c.clone())
                .collect()
        };
        contacts
            .iter()
            .filter_map(|c| match self.parse(c) {
                Some(r @ Remote::Nick(_)) => Some(self.target_for(&r)),
                _ => None,
            })
            .collect()
    }

    pub fn is_watched_nick(&self, nick: &str) -> bool {
        let Some(contact) = self.contact_for_nick(nick) else {
            return false;
        };
        self.state.lock().watchers.contains_key(&contact)
    }

    pub fn has_chat(&self, local: &str, channel: &str) -> bool {
        let Some(contact) = handle::channel_handle(channel, &self.config.name) else {
            return false;
        };
        self.state
            .lock()
            .chats
            .contains_key(&(local.to_string(), contact))
    }

    /// Hands an input to the chat of (`local`, `contact`), starting its task
    /// if needed. Sent under the state lock, so a chat that ends for being
    /// idle (also under the lock) never drops an input.
    fn to_chat(&self, local: &str, contact: &str, input: ChatInput) {
        let Some(me) = self.me.upgrade() else { return };
        let mut state = self.state.lock();
        let key = (local.to_string(), contact.to_string());
        let mut input = Some(input);
        if let Some(chat) = state.chats.get(&key) {
            match chat
                .tx
                .send(input.take().unwrap_or(ChatInput::System(String::new())))
            {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => input = Some(back),
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(input) = input {
            let _ = tx.send(input);
        }
        state.chats.insert(key, ChatHandle { tx });
        tokio::spawn(Chat::new(me, local.to_string(), contact.to_string(), rx).run());
    }

    /// Called by an idle chat task: ends it unless an input is waiting.
    pub fn end_chat_if_idle(
        &self,
        local: &str,
        contact: &str,
        rx: &mut mpsc::UnboundedReceiver<ChatInput>,
    ) -> bool {
        let mut state = self.state.lock();
        if !rx.is_empty() {
            return false;
        }
        rx.close();
        state
            .chats
            .remove(&(local.to_string(), contact.to_string()));
        true
    }

    /// A message from IRC for MSN user `local`, in the chat with `remote`.
    pub fn incoming(&self, local: &str, remote: &Remote, text: String) {
        let Some(contact) = self.contact_of(remote) else {
            tracing::warn!(
                ?remote,
                "IRC name too long for an MSN handle; message not bridged"
            );
            return;
        };
        self.to_chat(
            local,
            &contact,
            ChatInput::Irc {
                text,
                reply_to: None,
            },
        );
    }

    /// A private message from `nick`.
    pub fn incoming_from_nick(&self, local: &str, nick: &str, text: String, can_reply: bool) {
        let Some(contact) = self.contact_for_nick(nick) else {
            if can_reply {
                self.send_notice(
                    local,
                    nick,
                    "Your nick is too long to be shown on MSN; message not delivered.",
                );
            }
            return;
        };
        self.state
            .lock()
            .display
            .insert(contact.clone(), nick.to_string());
        self.observe(nick, Some(true), None);
        self.to_chat(
            local,
            &contact,
            ChatInput::Irc {
                text,
                reply_to: can_reply.then(|| nick.to_string()),
            },
        );
    }

    /// A bridge notice for MSN user `local` in the chat with `remote`.
    pub fn notify_local(&self, local: &str, remote: &Remote, text: String) {
        if let Some(contact) = self.contact_of(remote) {
            self.to_chat(local, &contact, ChatInput::System(text));
        }
    }

    fn send_notice(&self, local: &str, nick: &str, text: &str) {
        let puppet = self.state.lock().puppets.get(local).cloned();
        if let Some(p) = puppet {
            p.send(Cmd::Notice {
                target: nick.to_string(),
                text: text.to_string(),
            });
        }
    }

    /// Tells `nick` once that `local` is not on MSN now.
    pub fn tell_offline(&self, local: &str, nick: &str) {
        if self
            .state
            .lock()
            .told_offline
            .insert((local.to_string(), irc_lower(nick)))
        {
            let who = local.split('@').next().unwrap_or(local);
            self.send_notice(local, nick, &format!("{who} is not on MSN right now; your messages will be delivered when they sign in."));
        }
    }

    pub fn tell_undelivered(&self, local: &str, nick: &str) {
        self.send_notice(local, nick, "Your message could not be delivered to MSN.");
    }

    /// An MSN participant (`sender`) wrote to `contact`: queue it for their
    /// IRC connection. Returns a notice for the sender when something
    /// could not be sent.
    pub async fn outgoing(&self, sender: &str, contact: &str, payload: &[u8]) -> Option<String> {
        let remote = self.parse(contact)?;
        let (kind, body, style) = match text::from_msn(payload) {
            text::FromMsn::Text { kind, text, style } => (kind, text, style),
            text::FromMsn::Unsupported(what) => {
                return Some(format!("Cannot send {what} to IRC; only text is bridged."));
            }
            text::FromMsn::Ignore => return None,
        };
        let target = self.target_for(&remote);
        let nick_len = {
            let state = self.state.lock();
            state
                .puppets
                .get(sender)
                .and_then(|p| p.state.lock().nick.as_ref().map(String::len))
        }
        .unwrap_or_else(|| puppet::nick_for(&self.config.nick_template, sender).len())
            + 3;
        // Conservative: the final split happens at send time with what the
        // connection knows; a margin for renames keeps re-splitting rare.
        let overhead = 2
            + (1 + nick_len + 1 + 10 + 1 + 63 + 1)
            + ("PRIVMSG ".len() + target.len() + 8 + 2)
            + kind.overhead()
            + style.len();
        let budget = 512usize.saturating_sub(overhead).max(64);
        let lines: Vec<String> = text::split(&body, budget)
            .into_iter()
            .map(|l| format!("{style}{l}"))
            .collect();
        if lines.is_empty() {
            return None;
        }
        match self
            .shared
            .db
            .enqueue(sender, &self.config.name, contact, kind, &lines)
            .await
        {
            Ok(rows) => {
                let n = rows.len() as i64;
                self.shared.depth.fetch_add(n, Ordering::AcqRel);
                self.shared
                    .metrics
                    .bridge_queue_depth
                    .fetch_add(n, Ordering::Relaxed);
                let puppet = self.ensure_puppet(sender);
                if let Remote::Channel(chan) = &remote {
                    puppet.state.lock().channels.insert(chan.clone());
                }
                puppet.send(Cmd::QueueChanged);
                None
            }
            Err(e) => {
                tracing::error!(error = %e, user = %sender, "cannot queue a message for IRC");
                Metrics::inc(&self.shared.metrics.bridge_delivery_failures);
                Some("Your message could not be queued for IRC and was not sent.".into())
            }
        }
    }

    pub fn queue_settled(&self, n: usize) {
        let n = n as i64;
        self.shared.depth.fetch_sub(n, Ordering::AcqRel);
        self.shared
            .metrics
            .bridge_queue_depth
            .fetch_sub(n, Ordering::Relaxed);
    }

    /// The user's connection, started if not running.
    fn ensure_puppet(&self, local: &str) -> Arc<PuppetHandle> {
        let mut state = self.state.lock();
        if let Some(p) = state.puppets.get(local) {
            return p.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = Arc::new(PuppetHandle {
            local: local.to_string(),
            cmd: tx,
            state: Mutex::new(PuppetState::default()),
        });
        state.puppets.insert(local.to_string(), handle.clone());
        drop(state);
        if let Some(me) = self.me.upgrade() {
            let h = handle.clone();
            let local = local.to_string();
            let remember = self.config.stay_connected;
            tokio::spawn(async move {
                if remember {
                    let nick = puppet::nick_for(&me.config.nick_template, &local);
                    if let Err(e) = me
                        .shared
                        .db
                        .set_puppet(&local, &me.config.name, Some(&nick))
                        .await
                    {
                        tracing::warn!(error = %e, "cannot record the IRC connection to keep");
                    }
                }
                puppet::supervise(me.clone(), h.clone(), rx).await;
                let mut state = me.state.lock();
                if state
                    .puppets
                    .get(&local)
                    .is_some_and(|p| Arc::ptr_eq(p, &h))
                {
                    state.puppets.remove(&local);
                }
            });
        }
        handle
    }

    fn set_away(&self, local: &str, away: Option<String>) {
        let puppet = self.state.lock().puppets.get(local).cloned();
        if let Some(p) = puppet {
            p.state.lock().away = away;
            p.send(Cmd::Away);
        }
    }

    /// A puppet registered or lost its connection: channel contacts show
    /// online while the network is reachable.
    pub fn puppet_connection_changed(&self) {
        let (changed, up, channels) = {
            let mut state = self.state.lock();
            let up = state.puppets.values().any(|p| p.connected());
            let changed = up != state.up;
            state.up = up;
            let channels: Vec<String> = state
                .watchers
                .keys()
                .filter(|c| matches!(self.parse(c), Some(Remote::Channel(_))))
                .cloned()
                .collect();
            (changed, up, channels)
        };
        if changed && !up {
            // No connection to the network: nobody there can be seen.
            let gone: Vec<String> = {
                let mut state = self.state.lock();
                let gone: Vec<String> = state
                    .remotes
                    .iter()
                    .filter(|(_, r)| r.online)
                    .map(|(c, _)| c.clone())
                    .collect();
                for c in &gone {
                    if let Some(r) = state.remotes.get_mut(c) {
                        r.online = false;
                        r.away = false;
                    }
                }
                gone
            };
            for contact in gone {
                let nick = self.participant(&contact).friendly_name.to_string();
                self.shared
                    .hub
                    .remote_presence(Arc::new(puppet::remote_presence(
                        &contact, &nick, false, false,
                    )));
            }
        }
        if changed {
            for contact in channels {
                if let Some(r @ Remote::Channel(_)) = self.parse(&contact) {
                    let mut p = self.presence_of(&contact, &r);
                    if !up {
                        p.status = Status::Offline;
                    }
                    self.shared.hub.remote_presence(Arc::new(p));
                }
            }
        }
    }

    /// Signs in, signs out and list changes, one at a time in order.
    async fn control_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Control>) {
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            tokio::select! {
                c = rx.recv() => match c {
                    Some(Control::Presence(p)) => self.on_local_presence(p).await,
                    Some(Control::Watch { local, remote, watching }) => self.on_watch(&local, &remote, watching),
                    None => return,
                },
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
            }
        }
    }

    async fn on_local_presence(&self, p: Arc<Presence>) {
        let local = p.handle.to_string();
        if p.status == Status::Offline {
            let puppet = {
                let mut state = self.state.lock();
                state.signed_in.remove(&local);
                for w in state.watchers.values_mut() {
                    w.remove(&local);
                }
                state.watchers.retain(|_, w| !w.is_empty());
                state.told_offline.retain(|(l, _)| *l != local);
                if self.config.stay_connected {
                    None
                } else {
                    state.puppets.remove(&local)
                }
            };
            // Chats ringing the user now would wait for an answer that cannot come.
            let chats: Vec<ChatHandle> = self
                .state
                .lock()
                .chats
                .iter()
                .filter(|((l, _), _)| *l == local)
                .map(|(_, c)| c.clone())
                .collect();
            for chat in chats {
                let _ = chat.tx.send(ChatInput::SignedOut);
            }
            if self.config.stay_connected {
                self.set_away(&local, away_text(Status::Offline));
            } else if let Some(puppet) = puppet {
                puppet.send(Cmd::Stop { drain: true });
            }
            return;
        }
        let previous = self.state.lock().signed_in.insert(local.clone(), p.status);
        let puppet = self.ensure_puppet(&local);
        puppet.state.lock().away = away_text(p.status);
        puppet.send(Cmd::Away);
        if previous.is_none() {
            self.signed_in(&local, &puppet).await;
        }
        if p.status.is_visible() && !previous.is_some_and(|s| s.is_visible()) {
            self.deliver_inbox(&local).await;
        }
    }

    /// First status after sign-in: watch the user's IRC contacts, join
    /// their channels, offer the configured channels once.
    async fn signed_in(&self, local: &str, puppet: &Arc<PuppetHandle>) {
        let hub = &self.shared.hub;
        let Some(session) = hub.session(local) else {
            return;
        };
        let contacts: Vec<String> = hub
            .with_roster(&session, |r| {
                r.list_members(List::Forward)
                    .map(|c| c.handle.clone())
                    .filter(|h| self.owns_handle(h))
                    .collect()
            })
            .await
            .unwrap_or_default();
        for contact in &contacts {
            self.on_watch(local, contact, true);
        }
        puppet.send(Cmd::Channels);
        puppet.send(Cmd::Poll);
        for chan in &self.config.channels {
            let chan = irc_lower(chan);
            let Some(contact) = handle::channel_handle(&chan, &self.config.name) else {
                continue;
            };
            if contacts.contains(&contact) {
                continue;
            }
            match self
                .shared
                .db
                .mark_offered(local, &self.config.name, &chan)
                .await
            {
                Ok(true) => {
                    if let Err(e) = hub.remote_added_local(&contact, &chan, local).await {
                        tracing::warn!(error = %e, %chan, "cannot offer an IRC channel");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot record an offered IRC channel"),
            }
        }
    }

    async fn deliver_inbox(&self, local: &str) {
        match self.shared.db.inbox(local, &self.config.name).await {
            Ok(rows) => {
                for row in rows {
                    self.state
                        .lock()
                        .display
                        .entry(row.contact.clone())
                        .or_insert(row.contact_name.clone());
                    self.to_chat(
                        local,
                        &row.contact,
                        ChatInput::Inbox {
                            text: row.body,
                            id: row.id,
                        },
                    );
                }
            }
            Err(e) => {
                tracing::error!(error = %e, user = %local, "cannot read waiting IRC messages")
            }
        }
    }

    fn on_watch(&self, local: &str, contact: &str, watching: bool) {
        let Some(remote) = self.parse(contact) else {
            return;
        };
        let puppet = {
            let mut state = self.state.lock();
            if watching {
                state
                    .watchers
                    .entry(contact.to_string())
                    .or_default()
                    .insert(local.to_string());
            } else if let Some(w) = state.watchers.get_mut(contact) {
                w.remove(local);
                if w.is_empty() {
                    state.watchers.remove(contact);
                }
            }
            state.puppets.get(local).cloned()
        };
        if watching && matches!(remote, Remote::Channel(_)) {
            // The network may have come up between the hub's resolve and this
            // watch, when no channel was watched yet; repeats are ignored.
            self.shared
                .hub
                .remote_presence(Arc::new(self.presence_of(contact, &remote)));
        }
        let Some(puppet) = puppet else { return };
        match remote {
            Remote::Channel(chan) => {
                {
                    let mut s = puppet.state.lock();
                    if watching {
                        s.channels.insert(chan);
                    } else {
                        s.channels.remove(&chan);
                    }
                }
                puppet.send(Cmd::Channels);
            }
            Remote::Nick(_) => {
                if watching {
                    puppet.send(Cmd::Poll);
                }
            }
        }
    }
}

impl Network for IrcNetwork {
    fn name(&self) -> &str {
        &self.label
    }

    fn owns(&self, handle: &str) -> bool {
        self.owns_handle(handle)
    }

    fn resolve<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Option<Arc<Presence>>> {
        Box::pin(async move {
            let remote = self.parse(handle)?;
            Some(Arc::new(self.presence_of(handle, &remote)))
        })
    }

    fn watch(&self, local: &str, remote: &str, watching: bool) {
        let _ = self.control.send(Control::Watch {
            local: local.into(),
            remote: remote.into(),
            watching,
        });
    }

    fn invite<'a>(
        &'a self,
        conversation: Arc<Conversation>,
        inviter: Arc<ParticipantInfo>,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<(), Unreachable>> {
        Box::pin(async move {
            let parsed = self.parse(remote).ok_or(Unreachable)?;
            let contact = self.contact_of(&parsed).ok_or(Unreachable)?;
            let me = self.participant(&contact);
            let hub = &self.shared.hub;
            let endpoint = hub.conversations.new_endpoint_id();
            let outbox: EndpointOutbox = Arc::new(Outbox::new(hub.settings().max_queued_events));
            conversation
                .join(
                    endpoint,
                    me.clone(),
                    outbox.clone(),
                    Receipts::Custodian,
                    true,
                )
                .map_err(|_| Unreachable)?;
            let local = inviter.handle.to_string();
            if let Remote::Channel(chan) = &parsed {
                let puppet = self.ensure_puppet(&local);
                puppet.state.lock().channels.insert(chan.clone());
                puppet.send(Cmd::Channels);
            }
            self.to_chat(
                &local,
                &contact,
                ChatInput::Attach(Attached {
                    conversation,
                    endpoint,
                    outbox,
                    me,
                    owner_joined: true,
                }),
            );
            Ok(())
        })
    }

    fn local_presence(&self, presence: Arc<Presence>) {
        let _ = self.control.send(Control::Presence(presence));
    }
}
