//! Conversations: the chat rooms behind switchboard sessions (and, for the
//! bridges, behind Matrix rooms and IRC queries).

use crate::core::outbox::{Outbox, PushError};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub handle: Arc<str>,
    pub friendly_name: Arc<str>,
    pub capabilities: u32,
}

#[derive(Debug, Clone)]
pub enum ConversationEvent {
    Joined(Arc<ParticipantInfo>),
    Left {
        handle: Arc<str>,
        removed_by_server: bool,
    },
    /// A message in MIME form, relayed byte for byte between MSN endpoints.
    Message {
        from: Arc<ParticipantInfo>,
        payload: Bytes,
        /// Set when the sender waits for an acknowledgement: answered once
        /// the copy is written (MSN clients) or stored (bridges).
        custody: Option<Custody>,
    },
}

/// How a participant confirms the messages it is given (when the sender
/// waits for an acknowledgement, each copy carries a [`Custody`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipts {
    /// An MSN client: its connection confirms a message once the copy is
    /// written to the client's socket (a copy still queued when the
    /// connection ends is refused), so an `ACK` survives a crash of the
    /// server. Bounded by the connection's write deadline.
    Written,
    /// A bridge: it confirms each message once it has stored it for delivery
    /// on its network, so that the sender's `ACK` means the message is safe.
    Custodian,
}

/// A recipient's answer for one message: [`Custody::accept`] once stored,
/// [`Custody::refuse`] when it cannot be delivered. Dropping every copy
/// unanswered counts as a refusal, so no path can leave the sender with an
/// `ACK` for a message that went nowhere.
#[derive(Debug, Clone)]
pub struct Custody(Arc<CustodyCell>);

#[derive(Debug)]
struct CustodyCell(Mutex<Vec<tokio::sync::oneshot::Sender<bool>>>);

impl Custody {
    fn new() -> (Custody, tokio::sync::oneshot::Receiver<bool>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Custody(Arc::new(CustodyCell(Mutex::new(vec![tx])))), rx)
    }

    pub fn accept(&self) {
        self.answer(true);
    }

    pub fn refuse(&self) {
        self.answer(false);
    }

    /// Takes over `other`'s answer: a bridge that stores one copy for
    /// several of its endpoints answers for all of them at once.
    pub fn absorb(&self, other: &Custody) {
        let taken = std::mem::take(&mut *other.0.0.lock());
        self.0.0.lock().extend(taken);
    }

    fn answer(&self, stored: bool) {
        for tx in std::mem::take(&mut *self.0.0.lock()) {
            let _ = tx.send(stored);
        }
    }
}

impl Drop for CustodyCell {
    fn drop(&mut self) {
        for tx in self.0.get_mut().drain(..) {
            let _ = tx.send(false);
        }
    }
}

impl crate::core::outbox::QueuedSize for ConversationEvent {
    fn queued_size(&self) -> usize {
        crate::core::outbox::EVENT_OVERHEAD
            + match self {
                ConversationEvent::Joined(p) => p.handle.len() + p.friendly_name.len(),
                ConversationEvent::Left { handle, .. } => handle.len(),
                ConversationEvent::Message { from, payload, .. } => {
                    from.handle.len() + from.friendly_name.len() + payload.len()
                }
            }
    }
}

pub type EndpointOutbox = Arc<Outbox<ConversationEvent>>;

struct Participant {
    endpoint: u64,
    info: Arc<ParticipantInfo>,
    outbox: EndpointOutbox,
    receipts: Receipts,
}

#[derive(Default)]
struct State {
    participants: Vec<Participant>,
    invited: HashMap<Arc<str>, Instant>,
    closed: bool,
}

pub struct Conversation {
    pub id: u32,
    state: Mutex<State>,
    max_participants: usize,
    invitation_lifetime: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    #[error("already in the conversation or already invited")]
    AlreadyThere,
    #[error("the conversation is full")]
    Full,
    #[error("the conversation has ended")]
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the conversation has ended")]
    Closed,
    #[error("the conversation is full")]
    Full,
}

/// What happened to one relayed message.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Queued for this many participants (custodians among them still have
    /// to confirm).
    pub delivered: usize,
    pub failed: usize,
    /// The recipients' answers still to come.
    pending: Vec<tokio::sync::oneshot::Receiver<bool>>,
    /// Whether a bridge is among those who must answer.
    custodians: bool,
    /// Recipients whose queue is crowded after this message: a sender that
    /// can wait should, before it sends more.
    pub crowded: Vec<EndpointOutbox>,
}

impl Delivery {
    /// Queued for every other participant, and there was at least one.
    pub fn queued_everywhere(&self) -> bool {
        self.failed == 0 && self.delivered > 0
    }

    /// Whether some recipient has yet to confirm.
    pub fn is_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether a bridge has yet to confirm (MSN recipients answer within
    /// their write deadline; bridges within a limit of their own).
    pub fn awaits_custodians(&self) -> bool {
        self.custodians
    }

    /// Waits (at most `limit`) for the recipients; true when every other
    /// participant has the message. A recipient that does not answer in
    /// time counts as a failure.
    pub async fn settle(self, limit: Duration) -> bool {
        self.settling(limit).outcome().await
    }

    /// The answers to wait for, at most `limit` from now, in a form that
    /// can be awaited in place (no task per message).
    pub fn settling(self, limit: Duration) -> Settling {
        Settling {
            queued_everywhere: self.queued_everywhere(),
            answers: self.pending.into(),
            deadline: tokio::time::Instant::now() + limit,
        }
    }
}

/// A [`Delivery`] waiting for its recipients' answers.
#[derive(Debug)]
pub struct Settling {
    queued_everywhere: bool,
    /// Answers not received yet; received ones are removed as they come.
    answers: std::collections::VecDeque<tokio::sync::oneshot::Receiver<bool>>,
    deadline: tokio::time::Instant,
}

impl Settling {
    /// The outcome, if it is known without waiting.
    pub fn outcome_now(&mut self) -> Option<bool> {
        use tokio::sync::oneshot::error::TryRecvError;
        if !self.queued_everywhere {
            return Some(false);
        }
        while let Some(answer) = self.answers.front_mut() {
            match answer.try_recv() {
                Ok(true) => {
                    self.answers.pop_front();
                }
                Ok(false) | Err(TryRecvError::Closed) => return Some(false),
                Err(TryRecvError::Empty) => {
                    return (tokio::time::Instant::now() >= self.deadline).then_some(false);
                }
            }
        }
        Some(true)
    }

    /// Waits for the outcome: true when every recipient confirmed in time.
    /// Cancel-safe: answers already received are kept.
    pub async fn outcome(&mut self) -> bool {
        if !self.queued_everywhere {
            return false;
        }
        let answers = &mut self.answers;
        let all_confirmed = async {
            while let Some(answer) = answers.front_mut() {
                if answer.await != Ok(true) {
                    return false;
                }
                answers.pop_front();
            }
            true
        };
        tokio::time::timeout_at(self.deadline, all_confirmed)
            .await
            .unwrap_or(false)
    }
}

impl Conversation {
    /// Adds a participant; returns the others (for the roster the newcomer is
    /// shown) and tells each of them that the newcomer joined.
    pub fn join(
        &self,
        endpoint: u64,
        info: Arc<ParticipantInfo>,
        outbox: EndpointOutbox,
        receipts: Receipts,
        require_existing: bool,
    ) -> Result<Vec<Arc<ParticipantInfo>>, JoinError> {
        let mut state = self.state.lock();
        if state.closed || (require_existing && state.participants.is_empty()) {
            return Err(JoinError::Closed);
        }
        if state.participants.len() >= self.max_participants {
            return Err(JoinError::Full);
        }
        state.invited.remove(&info.handle);
        let others: Vec<Arc<ParticipantInfo>> =
            state.participants.iter().map(|p| p.info.clone()).collect();
        for p in &state.participants {
            // A full outbox closes that participant's connection, which then leaves.
            let _ = p.outbox.push(ConversationEvent::Joined(info.clone()));
        }
        state.participants.push(Participant {
            endpoint,
            info,
            outbox,
            receipts,
        });
        Ok(others)
    }

    /// Removes a participant; returns true when nobody is left (the
    /// conversation is then closed for good).
    pub fn leave(&self, endpoint: u64, removed_by_server: bool) -> bool {
        let mut state = self.state.lock();
        let Some(index) = state
            .participants
            .iter()
            .position(|p| p.endpoint == endpoint)
        else {
            return state.participants.is_empty();
        };
        let gone = state.participants.remove(index);
        for p in &state.participants {
            let _ = p.outbox.push(ConversationEvent::Left {
                handle: gone.info.handle.clone(),
                removed_by_server,
            });
        }
        if state.participants.is_empty() {
            state.closed = true;
            state.invited.clear();
        }
        state.closed
    }

    /// Records an invitation of `handle`, refusing duplicates.
    pub fn invite(&self, handle: &Arc<str>) -> Result<(), InviteError> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(InviteError::Closed);
        }
        let now = Instant::now();
        let lifetime = self.invitation_lifetime;
        state
            .invited
            .retain(|_, at| now.duration_since(*at) < lifetime);
        if state.participants.iter().any(|p| p.info.handle == *handle)
            || state.invited.contains_key(handle)
        {
            return Err(InviteError::AlreadyThere);
        }
        if state.participants.len() + state.invited.len() >= self.max_participants {
            return Err(InviteError::Full);
        }
        state.invited.insert(handle.clone(), now);
        Ok(())
    }

    /// Whether `handle` is a participant or has a pending (unexpired) invitation.
    pub fn is_member_or_invited(&self, handle: &str) -> bool {
        let state = self.state.lock();
        state.participants.iter().any(|p| &*p.info.handle == handle)
            || state
                .invited
                .get(handle)
                .is_some_and(|at| at.elapsed() < self.invitation_lifetime)
    }

    /// Queues a message for every participant but the sender (or, with
    /// `only_to`, for that participant alone). Nobody confirms it.
    pub fn relay(
        &self,
        from_endpoint: u64,
        from: &Arc<ParticipantInfo>,
        payload: &Bytes,
        only_to: Option<&str>,
    ) -> Delivery {
        self.relay_with(from_endpoint, from, payload, only_to, false)
    }

    /// Like [`Conversation::relay`], and every recipient is asked to
    /// confirm (see [`Receipts`]): for a sender that is owed an `ACK` or `NAK`.
    pub fn relay_confirmed(
        &self,
        from_endpoint: u64,
        from: &Arc<ParticipantInfo>,
        payload: &Bytes,
        only_to: Option<&str>,
    ) -> Delivery {
        self.relay_with(from_endpoint, from, payload, only_to, true)
    }

    fn relay_with(
        &self,
        from_endpoint: u64,
        from: &Arc<ParticipantInfo>,
        payload: &Bytes,
        only_to: Option<&str>,
        confirmed: bool,
    ) -> Delivery {
        let state = self.state.lock();
        let mut delivery = Delivery::default();
        for p in state
            .participants
            .iter()
            .filter(|p| p.endpoint != from_endpoint)
        {
            if only_to.is_some_and(|h| !p.info.handle.eq_ignore_ascii_case(h)) {
                continue;
            }
            let custody = confirmed.then(|| {
                let (custody, rx) = Custody::new();
                delivery.pending.push(rx);
                delivery.custodians |= p.receipts == Receipts::Custodian;
                custody
            });
            match p.outbox.push_and_check_room(ConversationEvent::Message {
                from: from.clone(),
                payload: payload.clone(),
                custody,
            }) {
                Ok(crowded) => {
                    delivery.delivered += 1;
                    if crowded {
                        delivery.crowded.push(p.outbox.clone());
                    }
                }
                Err(PushError::Closed | PushError::Overflow) => delivery.failed += 1,
            }
        }
        delivery
    }

    pub fn participants(&self) -> Vec<Arc<ParticipantInfo>> {
        self.state
            .lock()
            .participants
            .iter()
            .map(|p| p.info.clone())
            .collect()
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

/// What a switchboard cookie admits its holder to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookiePurpose {
    /// Start a new conversation (`XFR SB`, then `USR`).
    Create,
    /// Join an existing one after an invitation (`RNG`, then `ANS`).
    Join { conversation_id: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    #[error("unknown or already used cookie")]
    Unknown,
    #[error("cookie expired")]
    Expired,
    #[error("cookie issued to another user")]
    WrongUser,
}

struct Grant {
    handle: Arc<str>,
    purpose: CookiePurpose,
    /// Front-end data handed back on redemption (the MSN server keeps the
    /// client's dialect here, since switchboards have no `VER`).
    context: u32,
    expires: Instant,
}

/// A redeemed cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub purpose: CookiePurpose,
    pub context: u32,
}

/// Outstanding cookies. Expired ones are swept when the jar has doubled
/// since the last sweep, so issuing stays O(1) amortised.
struct CookieJar {
    grants: HashMap<String, Grant>,
    sweep_at: usize,
}

const MIN_SWEEP: usize = 4096;

/// Every live conversation and every outstanding cookie.
pub struct Conversations {
    rooms: RwLock<HashMap<u32, Arc<Conversation>>>,
    cookies: Mutex<CookieJar>,
    next_id: AtomicU32,
    next_endpoint: AtomicU64,
    cookie_lifetime: Duration,
    max_participants: usize,
}

impl Conversations {
    pub fn new(cookie_lifetime: Duration, max_participants: usize) -> Conversations {
        Conversations {
            rooms: RwLock::new(HashMap::new()),
            cookies: Mutex::new(CookieJar {
                grants: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
            next_id: AtomicU32::new(rand::random::<u32>() % 1_000_000_000 + 10_000_000),
            next_endpoint: AtomicU64::new(1),
            cookie_lifetime,
            max_participants,
        }
    }

    pub fn new_endpoint_id(&self) -> u64 {
        self.next_endpoint.fetch_add(1, Ordering::Relaxed)
    }

    /// Issues an unguessable (128-bit), single-use, expiring cookie for `handle`.
    pub fn issue_cookie(&self, handle: Arc<str>, purpose: CookiePurpose, context: u32) -> String {
        let cookie = format!("{}.{}", rand::random::<u64>(), rand::random::<u64>());
        let now = Instant::now();
        let mut jar = self.cookies.lock();
        if jar.grants.len() >= jar.sweep_at {
            jar.grants.retain(|_, g| g.expires > now);
            jar.sweep_at = (jar.grants.len() * 2).max(MIN_SWEEP);
        }
        jar.grants.insert(
            cookie.clone(),
            Grant {
                handle,
                purpose,
                context,
                expires: now + self.cookie_lifetime,
            },
        );
        cookie
    }

    /// Consumes a cookie presented by `handle`.
    pub fn redeem_cookie(&self, cookie: &str, handle: &str) -> Result<Admission, CookieError> {
        let cookies = &mut self.cookies.lock().grants;
        let grant = cookies.get(cookie).ok_or(CookieError::Unknown)?;
        if grant.expires <= Instant::now() {
            cookies.remove(cookie);
            return Err(CookieError::Expired);
        }
        if !grant.handle.eq_ignore_ascii_case(handle) {
            return Err(CookieError::WrongUser);
        }
        let admission = Admission {
            purpose: grant.purpose,
            context: grant.context,
        };
        cookies.remove(cookie);
        Ok(admission)
    }

    pub fn create(&self) -> Arc<Conversation> {
        let mut rooms = self.rooms.write();
        let mut id = self.next_id.fetch_add(1, Ordering::Relaxed);
        while rooms.contains_key(&id) {
            id = self.next_id.fetch_add(1, Ordering::Relaxed);
        }
        let room = Arc::new(Conversation {
            id,
            state: Mutex::new(State::default()),
            max_participants: self.max_participants,
            invitation_lifetime: self.cookie_lifetime,
        });
        rooms.insert(id, room.clone());
        room
    }

    pub fn get(&self, id: u32) -> Option<Arc<Conversation>> {
        self.rooms.read().get(&id).cloned()
    }

    /// Forgets a conversation once it has closed.
    pub fn forget_if_closed(&self, id: u32) {
        let mut rooms = self.rooms.write();
        if rooms.get(&id).is_some_and(|r| r.is_closed()) {
            rooms.remove(&id);
        }
    }

    pub fn len(&self) -> usize {
        self.rooms.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(h: &str) -> Arc<ParticipantInfo> {
        Arc::new(ParticipantInfo {
            handle: h.into(),
            friendly_name: h.into(),
            capabilities: 0,
        })
    }

    #[test]
    fn cookies_are_single_use_and_bound() {
        let c = Conversations::new(Duration::from_secs(60), 4);
        let cookie = c.issue_cookie("alice@x.com".into(), CookiePurpose::Create, 9);
        assert_eq!(
            c.redeem_cookie(&cookie, "bob@x.com"),
            Err(CookieError::WrongUser)
        );
        assert_eq!(
            c.redeem_cookie(&cookie, "ALICE@x.com"),
            Ok(Admission {
                purpose: CookiePurpose::Create,
                context: 9
            })
        );
        assert_eq!(
            c.redeem_cookie(&cookie, "alice@x.com"),
            Err(CookieError::Unknown)
        );
        let short = Conversations::new(Duration::from_millis(0), 4);
        let cookie = short.issue_cookie("alice@x.com".into(), CookiePurpose::Create, 0);
        assert_eq!(
            short.redeem_cookie(&cookie, "alice@x.com"),
            Err(CookieError::Expired)
        );
    }

    #[test]
    fn relay_reaches_others_and_reports_failures() {
        let c = Conversations::new(Duration::from_secs(60), 4);
        let room = c.create();
        let (a, b, d) = (
            Arc::new(Outbox::new(100)),
            Arc::new(Outbox::new(100)),
            Arc::new(Outbox::new(100)),
        );
        room.join(1, info("a@x.com"), a.clone(), Receipts::Written, false)
            .unwrap();
        assert_eq!(
            room.join(2, info("b@x.com"), b.clone(), Receipts::Written, true)
                .unwrap()
                .len(),
            1
        );
        room.join(3, info("d@x.com"), d.clone(), Receipts::Written, true)
            .unwrap();
        let payload = Bytes::from_static(b"hi");
        let delivery = room.relay(1, &info("a@x.com"), &payload, None);
        assert_eq!((delivery.delivered, delivery.failed), (2, 0));
        assert!(delivery.queued_everywhere() && !delivery.is_pending());
        d.close();
        let delivery = room.relay(1, &info("a@x.com"), &payload, None);
        assert_eq!((delivery.delivered, delivery.failed), (1, 1));
        assert!(!delivery.queued_everywhere());
        assert_eq!(
            room.invite(&"b@x.com".into()),
            Err(InviteError::AlreadyThere)
        );
        assert!(!room.leave(2, false));
        assert!(!room.leave(3, false));
        assert!(room.leave(1, false));
        assert!(room.is_closed());
        assert_eq!(
            room.join(
                4,
                info("e@x.com"),
                Arc::new(Outbox::new(1)),
                Receipts::Written,
                true
            ),
            Err(JoinError::Closed)
        );
    }

    #[test]
    fn pending_invitations_count_until_they_expire() {
        let c = Conversations::new(Duration::from_millis(50), 4);
        let room = c.create();
        room.join(
            1,
            info("a@x.com"),
            Arc::new(Outbox::new(10)),
            Receipts::Written,
            false,
        )
        .unwrap();
        assert!(room.is_member_or_invited("a@x.com"));
        assert!(!room.is_member_or_invited("b@x.com"));
        room.invite(&"b@x.com".into()).unwrap();
        assert!(room.is_member_or_invited("b@x.com"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!room.is_member_or_invited("b@x.com"));
        assert_eq!(room.invite(&"b@x.com".into()), Ok(()));
    }

    #[test]
    fn expired_cookies_are_swept_without_touching_live_ones() {
        let c = Conversations::new(Duration::from_millis(20), 4);
        for i in 0..MIN_SWEEP {
            c.issue_cookie(format!("u{i}@x.com").into(), CookiePurpose::Create, 0);
        }
        std::thread::sleep(Duration::from_millis(30));
        let live = c.issue_cookie("late@x.com".into(), CookiePurpose::Create, 0);
        assert_eq!(
            c.cookies.lock().grants.len(),
            1,
            "the expired ones were swept"
        );
        assert!(c.redeem_cookie(&live, "late@x.com").is_ok());
    }

    #[tokio::test]
    async fn custodians_decide_the_acknowledgement() {
        let c = Conversations::new(Duration::from_secs(60), 4);
        let room = c.create();
        let (msn, bridge) = (Arc::new(Outbox::new(10)), Arc::new(Outbox::new(10)));
        room.join(1, info("a@x.com"), msn.clone(), Receipts::Written, false)
            .unwrap();
        room.join(
            2,
            info("b@x.com"),
            bridge.clone(),
            Receipts::Custodian,
            true,
        )
        .unwrap();
        let payload = Bytes::from_static(b"hi");
        let custody_of = |outbox: &EndpointOutbox| {
            let mut events = Vec::new();
            outbox.drain_into(&mut events);
            match events.pop() {
                Some(ConversationEvent::Message { custody, .. }) => custody,
                other => panic!("expected a message, got {other:?}"),
            }
        };
        let limit = Duration::from_secs(5);

        // Stored: ACK.
        let delivery = room.relay_confirmed(1, &info("a@x.com"), &payload, None);
        assert!(delivery.is_pending());
        custody_of(&bridge).expect("custody asked for").accept();
        assert!(delivery.settle(limit).await);

        // One answer for several copies.
        let delivery = room.relay_confirmed(1, &info("a@x.com"), &payload, None);
        let (extra, extra_rx) = Custody::new();
        let kept = custody_of(&bridge).expect("custody asked for");
        kept.absorb(&extra);
        drop(extra);
        kept.accept();
        assert!(delivery.settle(limit).await);
        assert_eq!(extra_rx.await, Ok(true));

        // Refused, or dropped unanswered: NAK.
        let delivery = room.relay_confirmed(1, &info("a@x.com"), &payload, None);
        custody_of(&bridge).expect("custody asked for").refuse();
        assert!(!delivery.settle(limit).await);
        let delivery = room.relay_confirmed(1, &info("a@x.com"), &payload, None);
        drop(custody_of(&bridge));
        assert!(!delivery.settle(limit).await);

        // Never answered: NAK after the limit.
        let delivery = room.relay_confirmed(1, &info("a@x.com"), &payload, None);
        let kept = custody_of(&bridge);
        assert!(!delivery.settle(Duration::from_millis(20)).await);
        drop(kept);

        // Plain relays never wait.
        let delivery = room.relay(1, &info("a@x.com"), &payload, None);
        assert!(!delivery.is_pending());
        assert!(custody_of(&bridge).is_none());
        // An MSN recipient confirms too (once its copy is written), and
        // its connection dropping the copy unwritten is a refusal.
        let delivery = room.relay_confirmed(2, &info("b@x.com"), &payload, None);
        assert!(delivery.is_pending() && !delivery.awaits_custodians());
        custody_of(&msn).expect("custody asked for").accept();
        assert!(delivery.settle(limit).await);
        let delivery = room.relay_confirmed(2, &info("b@x.com"), &payload, None);
        drop(custody_of(&msn));
        assert!(!delivery.settle(limit).await);
    }
}
