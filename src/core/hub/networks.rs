//! The hub's side of the bridges: remote contacts on MSN users' lists,
//! remote presence, and conversations that cross networks.

use super::{EditOutcome, Hub, HubError, RosterEdit, Session, Unreachable};
use crate::core::conversation::{Conversation, CookiePurpose, InviteError, ParticipantInfo};
use crate::core::events::{Invitation, SessionEvent};
use crate::core::presence::Presence;
use crate::core::remote::Network;
use crate::core::roster::{List, ListError, REVERSE, new_guid};
use crate::store::Change;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What the hub knows about remote handles.
#[derive(Default)]
pub(super) struct RemoteState {
    networks: RwLock<Vec<Arc<dyn Network>>>,
    /// Last presence each bridge reported, by remote handle.
    presence: RwLock<HashMap<String, Arc<Presence>>>,
    /// Signed-in MSN users who have a remote handle on their forward list.
    watchers: Mutex<HashMap<String, HashSet<Arc<str>>>>,
}

/// Why a `CAL` could not ring its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// Offline, hidden, unknown, or blocking the caller (one answer for all).
    Unreachable,
    /// Already in the conversation or already invited.
    AlreadyThere,
    Full,
    Closed,
}

impl Hub {
    pub fn register_network(&self, network: Arc<dyn Network>) {
        tracing::info!(network = network.name(), "bridge registered");
        self.remote.networks.write().push(network);
    }

    pub fn network_for(&self, handle: &str) -> Option<Arc<dyn Network>> {
        self.remote
            .networks
            .read()
            .iter()
            .find(|n| n.owns(handle))
            .cloned()
    }

    /// `handle` as its network spells it now, if `handle` is an old spelling.
    pub fn current_handle(&self, handle: &str) -> Option<String> {
        self.network_for(handle)?.current_handle(handle)
    }

    /// `edit` about the contact's current handle: clients that stored an old
    /// spelling keep editing the same contact.
    pub(super) fn with_current_handle(&self, mut edit: RosterEdit) -> RosterEdit {
        if let RosterEdit::Add { handle, .. }
        | RosterEdit::Remove { handle, .. }
        | RosterEdit::SetStoredName { handle, .. } = &mut edit
            && let Some(current) = self.current_handle(handle)
        {
            *handle = current;
        }
        edit
    }

    pub(super) fn tell_networks(&self, presence: &Arc<Presence>) {
        let networks = self.remote.networks.read().clone();
        for n in networks {
            n.local_presence(presence.clone());
        }
    }

    /// The last presence a bridge reported for `handle`, if visible.
    pub(super) fn remote_visible(&self, handle: &str) -> Option<Option<Arc<Presence>>> {
        self.network_for(handle)?;
        let p = self.remote.presence.read().get(handle).cloned();
        Some(p.filter(|p| p.status.is_visible()))
    }

    /// Records which remote contacts a newly signed-in user watches.
    pub(super) async fn index_remote_contacts(&self, session: &Session) {
        if self.remote.networks.read().is_empty() {
            return;
        }
        let Ok(handles) = self
            .with_roster(session, |r| {
                r.list_members(List::Forward)
                    .map(|c| c.handle.clone())
                    .collect::<Vec<_>>()
            })
            .await
        else {
            return;
        };
        let mut watchers = self.remote.watchers.lock();
        for h in handles {
            if self.network_for(&h).is_some() {
                watchers
                    .entry(h)
                    .or_default()
                    .insert(session.handle.clone());
            }
        }
    }

    pub(super) fn unindex_local(&self, local: &Arc<str>) {
        let mut watchers = self.remote.watchers.lock();
        watchers.retain(|_, set| {
            set.remove(local);
            !set.is_empty()
        });
    }

    /// A bridge reports a remote user's presence: MSN users who have it on
    /// their forward list see it at once.
    pub fn remote_presence(&self, presence: Arc<Presence>) {
        let handle = presence.handle.to_string();
        let old = self
            .remote
            .presence
            .write()
            .insert(handle.clone(), presence.clone());
        if old.as_deref() == Some(&*presence) {
            // Nothing changed: networks may repeat themselves (a new watcher,
            // a reconnect), and clients should not see the same NLN twice.
            return;
        }
        let watchers: Vec<Arc<str>> = self
            .remote
            .watchers
            .lock()
            .get(&handle)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let was_visible = old.as_ref().is_some_and(|o| o.status.is_visible());
        for w in watchers {
            let Some(session) = self.session(&w) else {
                continue;
            };
            if presence.status.is_visible() {
                let _ = session
                    .outbox
                    .push(SessionEvent::ContactPresence(presence.clone()));
                let psm_changed = old
                    .as_ref()
                    .map(|o| o.personal_data_differs(&presence))
                    .unwrap_or(true);
                if psm_changed && (presence.has_personal_data() || was_visible) {
                    let _ = session
                        .outbox
                        .push(SessionEvent::ContactPersonalMessage(presence.clone()));
                }
            } else if was_visible {
                let _ = session
                    .outbox
                    .push(SessionEvent::ContactOffline(presence.handle.clone()));
            }
        }
    }

    /// List edits about a remote handle: no reverse list on the other side,
    /// but the bridge is asked whether the handle exists and told who watches it.
    /// `None` when the edit is not about a remote handle.
    pub(super) async fn edit_remote(
        &self,
        session: &Session,
        edit: &RosterEdit,
    ) -> Option<Result<EditOutcome, HubError>> {
        let (handle, adding, list) = match edit {
            RosterEdit::Add { handle, list, .. } => (handle, true, *list),
            RosterEdit::Remove {
                handle,
                list,
                group: None,
            } => (handle, false, *list),
            _ => return None,
        };
        let network = self.network_for(handle)?;
        Some(
            self.edit_remote_inner(session, edit, handle, adding, list, network)
                .await,
        )
    }

    async fn edit_remote_inner(
        &self,
        session: &Session,
        edit: &RosterEdit,
        handle: &str,
        adding: bool,
        list: List,
        network: Arc<dyn Network>,
    ) -> Result<EditOutcome, HubError> {
        let resolved = if adding {
            let p = network
                .resolve(handle)
                .await
                .ok_or(ListError::UnknownAccount)?;
            self.remote
                .presence
                .write()
                .insert(handle.to_string(), p.clone());
            Some(p)
        } else {
            None
        };
        let mut guard = self.load(&session.cell).await?;
        let roster = guard.as_mut().ok_or(ListError::UnknownAccount)?;
        let (changes, _) = edit.plan(roster)?;
        self.store.apply(&changes).await?;
        session.cell.apply(roster, &changes);
        let mut outcome = EditOutcome {
            version: roster.version,
            contact: roster.contact(handle).cloned(),
            ..Default::default()
        };
        if list == List::Forward {
            // Watch before telling the network, and report the cached presence
            // rather than `resolved`: a change the network announces in between
            // then reaches this session one way or the other.
            {
                let mut watchers = self.remote.watchers.lock();
                if adding {
                    watchers
                        .entry(handle.to_string())
                        .or_default()
                        .insert(session.handle.clone());
                } else if let Some(set) = watchers.get_mut(handle) {
                    set.remove(&session.handle);
                }
            }
            network.watch(&session.handle, handle, adding);
            outcome.joined_forward = adding && changes.iter().any(|c| matches!(c, Change::AddLists { bits, .. } if bits & crate::core::roster::FORWARD != 0));
            outcome.contact_presence = resolved
                .and_then(|_| self.remote.presence.read().get(handle).cloned())
                .filter(|p| p.status.is_visible());
        }
        Ok(outcome)
    }

    /// MSN accounts that have `remote` on their forward list.
    pub async fn watchers_of(&self, remote: &str) -> Result<Vec<String>, HubError> {
        Ok(self.store.forward_list_owners(remote).await?)
    }

    /// A remote user put MSN user `local` on their list (for instance by
    /// starting a direct chat with `local`'s puppet): `remote` goes on
    /// `local`'s reverse list, and `local` is told if signed in.
    pub async fn remote_added_local(
        &self,
        remote: &str,
        remote_name: &str,
        local: &str,
    ) -> Result<(), HubError> {
        let account = self
            .store
            .account_by_handle(local)
            .await?
            .ok_or(ListError::UnknownAccount)?;
        let cell = self.cell(account.id, &account.handle);
        let mut guard = cell.roster.lock().await;
        if let Some(roster) = guard.as_ref()
            && roster.is_on(remote, List::Reverse)
        {
            return Ok(());
        }
        let changes = vec![
            Change::AddLists {
                account_id: account.id,
                handle: remote.into(),
                guid: new_guid(),
                stored_name: remote_name.into(),
                bits: REVERSE,
            },
            Change::BumpListVersion {
                account_id: account.id,
            },
        ];
        self.store.apply(&changes).await?;
        let version = match guard.as_mut() {
            Some(roster) => {
                cell.apply(roster, &changes);
                roster.version
            }
            None => account.list_version + 1,
        };
        drop(guard);
        if let Some(session) = self.session(local) {
            let _ = session.outbox.push(SessionEvent::AddedBy {
                handle: remote.into(),
                friendly_name: remote_name.into(),
                list_version: version,
            });
        }
        Ok(())
    }

    /// A participant of `conversation` asks `target` in: a local user is
    /// rung (RNG), a remote one is handed to its bridge.
    pub async fn call(
        &self,
        conversation: &Arc<Conversation>,
        inviter: Arc<ParticipantInfo>,
        target: &str,
    ) -> Result<(), CallError> {
        let current = self.current_handle(target);
        let target = current.as_deref().unwrap_or(target);
        if let Some(network) = self.network_for(target) {
            if conversation
                .participants()
                .iter()
                .any(|p| &*p.handle == target)
            {
                return Err(CallError::AlreadyThere);
            }
            return network
                .invite(conversation.clone(), inviter, target)
                .await
                .map_err(|_| CallError::Unreachable);
        }
        self.ring_local(conversation, inviter, target).await
    }

    /// A remote party (already a participant as `inviter`) invites MSN user
    /// `local`: their client is rung. `Err` when they are offline, hidden or
    /// do not allow `inviter` — the bridge keeps the message and retries when
    /// they come online.
    pub async fn invite_local(
        &self,
        conversation: &Arc<Conversation>,
        inviter: Arc<ParticipantInfo>,
        local: &str,
    ) -> Result<(), Unreachable> {
        match self.ring_local(conversation, inviter, local).await {
            Ok(()) | Err(CallError::AlreadyThere) => Ok(()),
            Err(_) => Err(Unreachable),
        }
    }

    async fn ring_local(
        &self,
        conversation: &Arc<Conversation>,
        inviter: Arc<ParticipantInfo>,
        local: &str,
    ) -> Result<(), CallError> {
        let target = self
            .reachable(&inviter.handle, local)
            .await
            .map_err(|_| CallError::Unreachable)?;
        let local: Arc<str> = target.handle.clone();
        conversation.invite(&local).map_err(|e| match e {
            InviteError::AlreadyThere => CallError::AlreadyThere,
            InviteError::Full => CallError::Full,
            InviteError::Closed => CallError::Closed,
        })?;
        let context = target.client_tag.load(Ordering::Relaxed);
        let cookie = self.conversations.issue_cookie(
            local,
            CookiePurpose::Join {
                conversation_id: conversation.id,
            },
            context,
        );
        let invitation = Invitation {
            conversation_id: conversation.id,
            cookie,
            inviter_handle: inviter.handle.clone(),
            inviter_name: inviter.friendly_name.clone(),
        };
        if self.ring(&target, invitation) {
            Ok(())
        } else {
            Err(CallError::Unreachable)
        }
    }
}
