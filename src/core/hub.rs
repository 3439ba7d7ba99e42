//! The hub: who is signed in, their contact lists, presence fan-out, and
//! list edits with their effects on other users.
//!
//! Locking: each account has one [`UserCell`] whose async mutex guards its
//! roster. An edit that touches two accounts (a forward-list change also
//! changes the other user's reverse list) locks both cells in account-id
//! order, so two users adding each other at once cannot deadlock. Presence
//! fan-out reads only the changing user's own roster.

mod networks;
pub use networks::CallError;

use crate::core::accounts::Accounts;
use crate::core::conversation::Conversations;
use crate::core::events::{DisconnectReason, Invitation, SessionEvent};
use crate::core::outbox::Outbox;
use crate::core::presence::{NowPlaying, Presence, Status};
use crate::core::roster::{
    Contact, FORWARD, Group, List, ListError, Privacy, REVERSE, Roster, SHARED_PHONE_KEYS,
    allowed_by, new_guid,
};
use crate::core::tickets::TicketIssuer;
use crate::store::{AccountRow, Change, Store, StoreError};
use parking_lot::{Mutex, RwLock};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct HubSettings {
    pub max_queued_events: usize,
    /// Bytes not yet written that one session's queue may hold.
    pub max_queued_bytes: usize,
    pub max_contacts: usize,
    pub ticket_lifetime: Duration,
    pub cookie_lifetime: Duration,
    pub max_participants: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    List(#[from] ListError),
}

/// One account's mutable state, shared by its session and by edits from others.
pub struct UserCell {
    pub account_id: i64,
    pub handle: String,
    roster: tokio::sync::Mutex<Option<Roster>>,
    /// The roster's list version, readable without its lock (for notices
    /// that MSNP5–9 number with the receiver's version).
    list_version: std::sync::atomic::AtomicI64,
}

impl UserCell {
    /// Applies committed changes to this user's roster.
    fn apply(&self, roster: &mut Roster, changes: &[Change]) {
        roster.apply(changes);
        self.list_version.store(roster.version, Ordering::Relaxed);
    }

    pub fn list_version(&self) -> i64 {
        self.list_version.load(Ordering::Relaxed)
    }
}

/// A signed-in user (one notification-server connection).
pub struct Session {
    pub id: u64,
    pub handle: Arc<str>,
    pub account_id: i64,
    cell: Arc<UserCell>,
    presence: Mutex<Arc<Presence>>,
    pub outbox: Outbox<SessionEvent>,
    /// Front-end data about the client (the MSN server keeps its dialect
    /// here, for the switchboard cookies it issues on invitations).
    pub client_tag: std::sync::atomic::AtomicU32,
}

impl Session {
    pub fn presence(&self) -> Arc<Presence> {
        self.presence.lock().clone()
    }
}

/// A list edit as a user asks for it.
#[derive(Debug, Clone)]
pub enum RosterEdit {
    Add {
        list: List,
        handle: String,
        stored_name: String,
        group: Option<i64>,
    },
    Remove {
        list: List,
        handle: String,
        group: Option<i64>,
    },
    AddGroup {
        name: String,
    },
    RemoveGroup {
        number: i64,
    },
    RenameGroup {
        number: i64,
        name: String,
    },
    SetPrivacy(Privacy),
    SetAutoAllow(bool),
    SetStoredName {
        handle: String,
        name: String,
    },
    SetProperty {
        name: String,
        value: Option<String>,
    },
}

impl RosterEdit {
    /// The changes this edit makes to `roster` (not yet applied), and the
    /// group it creates or removes, if any.
    pub(crate) fn plan(&self, roster: &Roster) -> Result<(Vec<Change>, Option<Group>), ListError> {
        Ok(match self {
            RosterEdit::Add {
                list,
                handle,
                stored_name,
                group,
            } => (roster.plan_add(*list, handle, stored_name, *group)?, None),
            RosterEdit::Remove {
                list,
                handle,
                group,
            } => (roster.plan_remove(*list, handle, *group)?, None),
            RosterEdit::AddGroup { name } => {
                let (changes, group) = roster.plan_add_group(name)?;
                (changes, Some(group))
            }
            RosterEdit::RemoveGroup { number } => (
                roster.plan_remove_group(*number)?,
                roster.groups.get(number).cloned(),
            ),
            RosterEdit::RenameGroup { number, name } => {
                (roster.plan_rename_group(*number, name)?, None)
            }
            RosterEdit::SetPrivacy(p) => (roster.plan_privacy(*p)?, None),
            RosterEdit::SetAutoAllow(a) => (roster.plan_auto_allow(*a)?, None),
            RosterEdit::SetStoredName { handle, name } => {
                (roster.plan_stored_name(handle, name)?, None)
            }
            RosterEdit::SetProperty { name, value } => {
                (roster.plan_property(name, value.as_deref()), None)
            }
        })
    }
}

/// The result of a committed edit.
#[derive(Debug, Clone, Default)]
pub struct EditOutcome {
    /// The list version after the edit (MSNP2-9 replies carry it).
    pub version: i64,
    /// The contact as it is now, for edits about a contact.
    pub contact: Option<Contact>,
    pub group: Option<Group>,
    /// Presence of a contact just put on the forward list, if they are
    /// online and let the user see them (the reply is followed by `ILN`).
    pub contact_presence: Option<Arc<Presence>>,
    /// Phone data of a contact just put on the forward list that they let
    /// the user see (the reply is followed by `BPR` lines).
    pub contact_phone: Vec<(String, String)>,
    /// The contact was put on the forward list (not only into another group).
    pub joined_forward: bool,
}

/// Why an invitation into a conversation cannot reach someone. Deliberately
/// one answer for offline, hidden, unknown and blocking, so blocking is not revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreachable;

pub struct Hub {
    pub accounts: Accounts,
    pub tickets: TicketIssuer,
    pub conversations: Conversations,
    store: Store,
    settings: HubSettings,
    cells: Mutex<HashMap<String, Weak<UserCell>>>,
    remote: networks::RemoteState,
    online: RwLock<HashMap<Arc<str>, Arc<Session>>>,
    next_session: AtomicU64,
}

impl Hub {
    pub fn new(store: Store, accounts: Accounts, settings: HubSettings) -> Hub {
        Hub {
            accounts,
            tickets: TicketIssuer::new(settings.ticket_lifetime),
            conversations: Conversations::new(settings.cookie_lifetime, settings.max_participants),
            store,
            settings,
            cells: Mutex::new(HashMap::new()),
            remote: networks::RemoteState::default(),
            online: RwLock::new(HashMap::new()),
            next_session: AtomicU64::new(1),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    fn cell(&self, account_id: i64, handle: &str) -> Arc<UserCell> {
        let mut cells = self.cells.lock();
        if let Some(cell) = cells.get(handle).and_then(Weak::upgrade) {
            return cell;
        }
        if cells.len() > 1024 && cells.len().is_power_of_two() {
            cells.retain(|_, weak| weak.strong_count() > 0);
        }
        let cell = Arc::new(UserCell {
            account_id,
            handle: handle.to_string(),
            roster: tokio::sync::Mutex::new(None),
            list_version: std::sync::atomic::AtomicI64::new(0),
        });
        cells.insert(handle.to_string(), Arc::downgrade(&cell));
        cell
    }

    async fn load<'a>(
        &self,
        cell: &'a UserCell,
    ) -> Result<tokio::sync::MutexGuard<'a, Option<Roster>>, HubError> {
        self.load_with(cell, None).await
    }

    /// Like [`Hub::load`], with the account row when the caller has it.
    async fn load_with<'a>(
        &self,
        cell: &'a UserCell,
        known: Option<&AccountRow>,
    ) -> Result<tokio::sync::MutexGuard<'a, Option<Roster>>, HubError> {
        let mut guard = cell.roster.lock().await;
        if guard.is_none() {
            let account = match known {
                Some(account) => Some(account.clone()),
                None => self.store.account_by_handle(&cell.handle).await?,
            };
            let Some(account) = account else {
                return Err(HubError::List(ListError::UnknownAccount));
            };
            let rows = self.store.load_roster(account.id).await?;
            let roster = Roster::from_rows(&account, rows, self.settings.max_contacts);
            cell.list_version.store(roster.version, Ordering::Relaxed);
            *guard = Some(roster);
        }
        Ok(guard)
    }

    /// Signs `account` in. A session of the same account elsewhere is told to
    /// disconnect (and its presence ends at once, so watchers never see the
    /// old session's sign-out after the new one's sign-in).
    pub async fn sign_in(&self, account: &AccountRow) -> Result<Arc<Session>, HubError> {
        let cell = self.cell(account.id, &account.handle);
        let (friendly_name, personal_message) = {
            let guard = self.load_with(&cell, Some(account)).await?;
            let roster = guard.as_ref().ok_or(ListError::UnknownAccount)?;
            (
                roster.friendly_name.clone(),
                roster.personal_message.clone(),
            )
        };
        let handle: Arc<str> = account.handle.as_str().into();
        let session = Arc::new(Session {
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            handle: handle.clone(),
            account_id: account.id,
            cell,
            presence: Mutex::new(Arc::new(Presence {
                handle: handle.clone(),
                status: Status::Offline,
                friendly_name: friendly_name.into(),
                capabilities: 0,
                avatar: None,
                personal_message: personal_message.into(),
                now_playing: None,
            })),
            outbox: Outbox::with_byte_limit(
                self.settings.max_queued_events,
                self.settings.max_queued_bytes,
            ),
            client_tag: std::sync::atomic::AtomicU32::new(0),
        });
        let previous = self.online.write().insert(handle, session.clone());
        if let Some(previous) = previous {
            // Even to a full queue: the old connection must end, whether
            // or not its client still reads.
            let _ = previous.outbox.push_last(SessionEvent::Disconnect(
                DisconnectReason::SignedInElsewhere,
            ));
            self.go_offline(&previous).await;
        }
        self.index_remote_contacts(&session).await;
        Ok(session)
    }

    /// Ends a session; watchers see the user go offline.
    pub async fn sign_out(&self, session: &Arc<Session>) {
        let removed = {
            let mut online = self.online.write();
            if online
                .get(&session.handle)
                .is_some_and(|s| s.id == session.id)
            {
                online.remove(&session.handle);
                true
            } else {
                false
            }
        };
        session.outbox.close();
        if removed {
            self.unindex_local(&session.handle);
            self.go_offline(session).await;
        }
    }

    async fn go_offline(&self, session: &Arc<Session>) {
        let old = {
            let mut presence = session.presence.lock();
            let old = presence.clone();
            let mut offline = (*old).clone();
            offline.status = Status::Offline;
            *presence = Arc::new(offline);
            old
        };
        if old.status.is_visible() {
            let offline = session.presence();
            self.tell_networks(&offline);
        }
        if old.status.is_visible()
            && let Ok(guard) = self.load(&session.cell).await
            && let Some(roster) = guard.as_ref()
        {
            self.fan_out(roster, |_| {
                Some(SessionEvent::ContactOffline(session.handle.clone()))
            });
        }
    }

    pub fn session(&self, handle: &str) -> Option<Arc<Session>> {
        self.online.read().get(handle).cloned()
    }

    /// The account's signed-in session, or else a stand-in that is never
    /// signed in (offline, nobody reads its outbox), for list edits made
    /// outside a notification connection — the WLM SOAP services. Edits
    /// through either go through [`Hub::edit`] and reach other users the
    /// same way.
    pub async fn session_or_stand_in(
        &self,
        account: &AccountRow,
    ) -> Result<Arc<Session>, HubError> {
        if let Some(session) = self.session(&account.handle) {
            return Ok(session);
        }
        let cell = self.cell(account.id, &account.handle);
        let friendly_name = {
            let guard = self.load_with(&cell, Some(account)).await?;
            let roster = guard.as_ref().ok_or(ListError::UnknownAccount)?;
            roster.friendly_name.clone()
        };
        let handle: Arc<str> = account.handle.as_str().into();
        Ok(Arc::new(Session {
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            handle: handle.clone(),
            account_id: account.id,
            cell,
            presence: Mutex::new(Arc::new(Presence {
                handle,
                status: Status::Offline,
                friendly_name: friendly_name.into(),
                capabilities: 0,
                avatar: None,
                personal_message: "".into(),
                now_playing: None,
            })),
            outbox: Outbox::new(1),
            client_tag: std::sync::atomic::AtomicU32::new(0),
        }))
    }

    pub fn online_count(&self) -> usize {
        self.online.read().len()
    }

    /// Every signed-in session (for shutdown notices).
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.online.read().values().cloned().collect()
    }

    /// Runs `f` on the session's roster (for the `SYN` dump and similar reads).
    pub async fn with_roster<R>(
        &self,
        session: &Session,
        f: impl FnOnce(&Roster) -> R,
    ) -> Result<R, HubError> {
        let guard = self.load(&session.cell).await?;
        let roster = guard.as_ref().ok_or(ListError::UnknownAccount)?;
        Ok(f(roster))
    }

    /// Pushes to each online watcher of the roster's owner whom the owner allows.
    fn fan_out(&self, roster: &Roster, event: impl Fn(&Arc<Session>) -> Option<SessionEvent>) {
        let online = self.online.read();
        for contact in roster.list_members(List::Reverse) {
            let Some(watcher) = online.get(contact.handle.as_str()) else {
                continue;
            };
            if !roster.allows(&contact.handle) {
                continue;
            }
            if let Some(e) = event(watcher) {
                // An overflowing watcher is disconnected by its own task.
                let _ = watcher.outbox.push(e);
            }
        }
    }

    /// Sets status, capabilities and avatar, and tells every watcher at once.
    pub async fn set_presence(
        &self,
        session: &Session,
        status: Status,
        capabilities: u32,
        avatar: Option<Arc<str>>,
    ) -> Result<(), HubError> {
        let guard = self.load(&session.cell).await?;
        let roster = guard.as_ref().ok_or(ListError::UnknownAccount)?;
        let (old, new) = {
            let mut presence = session.presence.lock();
            let old = presence.clone();
            let new = Arc::new(Presence {
                status,
                capabilities,
                avatar,
                friendly_name: roster.friendly_name.as_str().into(),
                personal_message: roster.personal_message.as_str().into(),
                now_playing: old.now_playing.clone(),
                handle: old.handle.clone(),
            });
            *presence = new.clone();
            (old, new)
        };
        self.announce(roster, &old, &new);
        Ok(())
    }

    /// Tells watchers the difference between `old` and `new`.
    fn announce(&self, roster: &Roster, old: &Presence, new: &Arc<Presence>) {
        if *old != **new && (old.status.is_visible() || new.status.is_visible()) {
            self.tell_networks(new);
        }
        if new.status.is_visible() {
            let appeared = !old.status.is_visible();
            let changed = appeared || *old != **new;
            // On appearing, a message that exists; later, any change (an
            // emptied message too, which clears the watcher's copy).
            let psm_to_send = if appeared {
                new.has_personal_data()
            } else {
                old.personal_data_differs(new)
            };
            let presence_changed = changed
                && (appeared
                    || old.status != new.status
                    || old.friendly_name != new.friendly_name
                    || old.capabilities != new.capabilities
                    || old.avatar != new.avatar);
            if presence_changed {
                self.fan_out(roster, |_| Some(SessionEvent::ContactPresence(new.clone())));
            }
            if psm_to_send {
                self.fan_out(roster, |_| {
                    Some(SessionEvent::ContactPersonalMessage(new.clone()))
                });
            }
        } else if old.status.is_visible() {
            let handle = new.handle.clone();
            self.fan_out(roster, |_| {
                Some(SessionEvent::ContactOffline(handle.clone()))
            });
        }
    }

    /// The presence of every forward-list contact who is online, visible and
    /// lets the user see them: the `ILN` burst after the first status change.
    pub async fn initial_presence(
        &self,
        session: &Session,
    ) -> Result<Vec<Arc<Presence>>, HubError> {
        let contacts: Vec<String> = self
            .with_roster(session, |r| {
                r.list_members(List::Forward)
                    .map(|c| c.handle.clone())
                    .collect()
            })
            .await?;
        let mut out = Vec::new();
        for handle in contacts {
            if let Some(p) = self.visible_presence_for(&handle, &session.handle).await {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// `target`'s presence if `viewer` may see it now.
    pub async fn visible_presence_for(&self, target: &str, viewer: &str) -> Option<Arc<Presence>> {
        if let Some(remote) = self.remote_visible(target) {
            return remote;
        }
        let other = self.session(target)?;
        let presence = other.presence();
        if !presence.status.is_visible() {
            return None;
        }
        let guard = self.load(&other.cell).await.ok()?;
        guard.as_ref()?.allows(viewer).then_some(presence)
    }

    /// Changes the user's own friendly name; returns the new list version.
    pub async fn set_friendly_name(&self, session: &Session, name: &str) -> Result<i64, HubError> {
        let mut guard = self.load(&session.cell).await?;
        let roster = guard.as_mut().ok_or(ListError::UnknownAccount)?;
        let changes = roster.plan_friendly_name(name);
        self.store.apply(&changes).await?;
        session.cell.apply(roster, &changes);
        self.refresh_presence(session, roster);
        Ok(roster.version)
    }

    /// Changes the personal message (stored) and what the user is playing
    /// (for this session only), as MSNP11+ `UUX` does; watchers get it at once.
    pub async fn set_personal_message(
        &self,
        session: &Session,
        text: &str,
        now_playing: Option<Arc<NowPlaying>>,
    ) -> Result<(), HubError> {
        let mut guard = self.load(&session.cell).await?;
        let roster = guard.as_mut().ok_or(ListError::UnknownAccount)?;
        let playing_changed = session.presence().now_playing != now_playing;
        if roster.personal_message == text && !playing_changed {
            return Ok(());
        }
        if roster.personal_message != text {
            let changes = roster.plan_personal_message(text);
            self.store.apply(&changes).await?;
            session.cell.apply(roster, &changes);
        }
        self.refresh_presence_with(session, roster, |p| p.now_playing = now_playing);
        Ok(())
    }

    fn refresh_presence(&self, session: &Session, roster: &Roster) {
        self.refresh_presence_with(session, roster, |_| {});
    }

    /// Takes name and personal message from `roster`, applies `update`,
    /// and announces the difference.
    fn refresh_presence_with(
        &self,
        session: &Session,
        roster: &Roster,
        update: impl FnOnce(&mut Presence),
    ) {
        let (old, new) = {
            let mut presence = session.presence.lock();
            let old = presence.clone();
            let mut new = (*old).clone();
            new.friendly_name = roster.friendly_name.as_str().into();
            new.personal_message = roster.personal_message.as_str().into();
            update(&mut new);
            let new = Arc::new(new);
            *presence = new.clone();
            (old, new)
        };
        self.announce(roster, &old, &new);
    }

    /// Applies a list edit: validated, committed, applied in memory, and only
    /// then announced to the other users it concerns.
    pub async fn edit(&self, session: &Session, edit: RosterEdit) -> Result<EditOutcome, HubError> {
        let edit = self.with_current_handle(edit);
        if let Some(result) = self.edit_remote(session, &edit).await {
            return result;
        }
        // The account an addition names must exist; a forward-list change
        // also changes that account's reverse list.
        let (target_account, touches_other) = match &edit {
            RosterEdit::Add { list, handle, .. } => {
                let account = self
                    .store
                    .account_by_handle(handle)
                    .await?
                    .ok_or(ListError::UnknownAccount)?;
                (Some(account), *list == List::Forward)
            }
            RosterEdit::Remove {
                list: List::Forward,
                handle,
                ..
            } => (self.store.account_by_handle(handle).await?, true),
            _ => (None, false),
        };
        let target_cell = target_account
            .as_ref()
            .filter(|a| touches_other && a.id != session.account_id)
            .map(|a| self.cell(a.id, &a.handle));

        // Lock in account-id order.
        let (mut own_guard, mut target_guard) = match &target_cell {
            Some(t) if t.account_id < session.account_id => {
                let tg = t.roster.lock().await;
                (self.load(&session.cell).await?, Some(tg))
            }
            Some(t) => {
                let og = self.load(&session.cell).await?;
                (og, Some(t.roster.lock().await))
            }
            None => (self.load(&session.cell).await?, None),
        };
        let roster = own_guard.as_mut().ok_or(ListError::UnknownAccount)?;

        let mut outcome = EditOutcome::default();
        let (mut changes, group) = edit.plan(roster)?;
        outcome.group = group;

        // Whether the contact joins or leaves the forward list, decided by the
        // plan itself (a group-only change does neither).
        let (joins_forward, leaves_forward) = match &edit {
            RosterEdit::Add {
                list: List::Forward,
                handle,
                ..
            } => (!roster.is_on(handle, List::Forward), false),
            RosterEdit::Remove {
                list: List::Forward,
                handle,
                ..
            } => {
                let leaves = changes.iter().any(|c| {
                    matches!(c, Change::RemoveLists { account_id, handle: h, bits }
                        if *account_id == session.account_id && h == handle && bits & FORWARD != 0)
                });
                (false, leaves)
            }
            _ => (false, false),
        };

        // The other user's roster must be in memory before the commit: it is
        // read for the reply (phone data, privacy) and the committed changes
        // are applied to it below (loading it after the commit would apply
        // them twice).
        if let (Some(guard), Some(target)) = (target_guard.as_mut(), &target_account)
            && guard.is_none()
            && (joins_forward || leaves_forward)
        {
            let rows = self.store.load_roster(target.id).await?;
            let roster = Roster::from_rows(target, rows, self.settings.max_contacts);
            if let Some(cell) = &target_cell {
                cell.list_version.store(roster.version, Ordering::Relaxed);
            }
            **guard = Some(roster);
        }

        // Reverse-list side of a forward-list change.
        let mut reverse_event = None;
        if let (Some(target), true) = (&target_account, target_cell.is_some()) {
            if joins_forward {
                changes.push(Change::AddLists {
                    account_id: target.id,
                    handle: roster.handle.clone(),
                    guid: new_guid(),
                    stored_name: roster.friendly_name.clone(),
                    bits: REVERSE,
                });
                changes.push(Change::BumpListVersion {
                    account_id: target.id,
                });
                reverse_event = Some(true);
            } else if leaves_forward {
                changes.push(Change::RemoveLists {
                    account_id: target.id,
                    handle: roster.handle.clone(),
                    bits: REVERSE,
                });
                changes.push(Change::BumpListVersion {
                    account_id: target.id,
                });
                reverse_event = Some(false);
            }
        }

        // Who might see the user differently afterwards (privacy edits).
        let privacy_subjects: Vec<String> = match &edit {
            RosterEdit::Add {
                list: List::Allow | List::Block,
                handle,
                ..
            }
            | RosterEdit::Remove {
                list: List::Allow | List::Block,
                handle,
                ..
            } => vec![handle.clone()],
            RosterEdit::SetPrivacy(_) => roster
                .list_members(List::Reverse)
                .map(|c| c.handle.clone())
                .collect(),
            _ => Vec::new(),
        };
        let allowed_before: Vec<bool> = privacy_subjects.iter().map(|h| roster.allows(h)).collect();

        self.store.apply(&changes).await?;
        session.cell.apply(roster, &changes);
        let target_roster = target_guard.as_mut().and_then(|g| g.as_mut());
        if let (Some(target_roster), Some(cell)) = (target_roster, &target_cell) {
            cell.apply(target_roster, &changes);
        }
        let target_roster = target_guard.as_ref().and_then(|g| g.as_ref());

        outcome.version = roster.version;
        match &edit {
            RosterEdit::Add { handle, .. }
            | RosterEdit::Remove { handle, .. }
            | RosterEdit::SetStoredName { handle, .. } => {
                outcome.contact = roster.contact(handle).cloned();
            }
            RosterEdit::RenameGroup { number, .. } => {
                outcome.group = roster.groups.get(number).cloned()
            }
            _ => {}
        }
        outcome.joined_forward = joins_forward;
        if joins_forward && let Some(target_roster) = target_roster {
            outcome.contact_phone = target_roster.visible_phone_data(&session.handle);
        }

        // Announcements to others.
        let me = session.presence();
        if let RosterEdit::SetProperty { name, value } = &edit
            && crate::core::roster::SHARED_PHONE_KEYS.contains(&name.as_str())
            && me.status.is_visible()
        {
            let (key, value): (Arc<str>, Option<Arc<str>>) =
                (name.as_str().into(), value.as_deref().map(Arc::from));
            self.fan_out(roster, |watcher| {
                Some(SessionEvent::ContactPhone {
                    handle: me.handle.clone(),
                    key: key.clone(),
                    value: value.clone(),
                    list_version: watcher.cell.list_version(),
                })
            });
        }
        for (subject, before) in privacy_subjects.iter().zip(allowed_before) {
            let after = roster.allows(subject);
            if before == after || !me.status.is_visible() || !roster.is_on(subject, List::Reverse) {
                continue;
            }
            if let Some(watcher) = self.session(subject) {
                let event = if after {
                    SessionEvent::ContactPresence(me.clone())
                } else {
                    SessionEvent::ContactOffline(me.handle.clone())
                };
                let _ = watcher.outbox.push(event);
                if after && me.has_personal_data() {
                    let _ = watcher
                        .outbox
                        .push(SessionEvent::ContactPersonalMessage(me.clone()));
                }
            }
        }
        if let (Some(added), Some(target)) = (reverse_event, &target_account)
            && let Some(other) = self.session(&target.handle)
        {
            let version = target_roster.map(|r| r.version).unwrap_or(0);
            let event = if added {
                SessionEvent::AddedBy {
                    handle: session.handle.clone(),
                    friendly_name: roster.friendly_name.as_str().into(),
                    list_version: version,
                }
            } else {
                SessionEvent::RemovedBy {
                    handle: session.handle.clone(),
                    list_version: version,
                }
            };
            let _ = other.outbox.push(event);
        }
        if joins_forward
            && let (Some(target), Some(target_roster)) = (&target_account, target_roster)
            && let Some(other) = self.session(&target.handle)
        {
            let presence = other.presence();
            if presence.status.is_visible() && target_roster.allows(&session.handle) {
                outcome.contact_presence = Some(presence);
            }
        }
        Ok(outcome)
    }

    /// Phone data of every forward-list contact who lets the user see it,
    /// for the `BPR` lines of the `SYN` dump.
    pub async fn contacts_phone_data(
        &self,
        session: &Session,
    ) -> Result<BTreeMap<String, Vec<(String, String)>>, HubError> {
        // One query for the whole list: loading every contact's roster would
        // cost several queries per contact at each sign-in.
        // TODO(store owner): move this query into `Store`.
        let rows = sqlx::query(
            "SELECT a.handle, a.blp, p.name, p.value, COALESCE(me.lists, 0) \
             FROM contacts c \
             JOIN accounts a ON a.handle = c.handle \
             JOIN account_properties p ON p.account_id = a.id \
             LEFT JOIN contacts me ON me.account_id = a.id AND me.handle = $2 \
             WHERE c.account_id = $1 AND (c.lists & 1) <> 0 \
             ORDER BY a.handle, p.name",
        )
        .bind(session.account_id)
        .bind(session.handle.as_ref())
        .fetch_all(self.store.pool())
        .await
        .map_err(StoreError::from)?;
        let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for row in rows {
            let handle: String = row.try_get(0).map_err(StoreError::from)?;
            let blp: String = row.try_get(1).map_err(StoreError::from)?;
            let name: String = row.try_get(2).map_err(StoreError::from)?;
            let value: String = row.try_get(3).map_err(StoreError::from)?;
            let lists: i64 = row.try_get(4).map_err(StoreError::from)?;
            if allowed_by(lists, Privacy::from_stored(&blp))
                && SHARED_PHONE_KEYS.contains(&name.as_str())
            {
                out.entry(handle).or_default().push((name, value));
            }
        }
        Ok(out)
    }

    /// Checks that `caller` may invite `invitee` into a conversation now.
    pub async fn reachable(
        &self,
        caller: &str,
        invitee: &str,
    ) -> Result<Arc<Session>, Unreachable> {
        let other = self.session(invitee).ok_or(Unreachable)?;
        if !other.presence().status.is_visible() {
            return Err(Unreachable);
        }
        let allowed = {
            let guard = self.load(&other.cell).await.map_err(|_| Unreachable)?;
            guard.as_ref().is_some_and(|r| r.allows(caller))
        };
        if allowed { Ok(other) } else { Err(Unreachable) }
    }

    /// Delivers an invitation to `invitee`'s session.
    pub fn ring(&self, invitee: &Session, invitation: Invitation) -> bool {
        invitee
            .outbox
            .push(SessionEvent::Invited(Arc::new(invitation)))
            .is_ok()
    }
}
