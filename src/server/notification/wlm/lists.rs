//! `ADL`, `RML`, `FQY` (wlm/notification.md §1–§2): the MSNP13+ client
//! tells the server which contacts it has on which list. Each change is
//! applied to the same roster the MSNP2–12 commands edit, so blocking,
//! allowing and reverse-list notices work across dialects.

use super::super::{Flow, NsConnection};
use super::NETWORK_PASSPORT;
use crate::core::handle;
use crate::core::hub::{HubError, RosterEdit};
use crate::core::presence::Presence;
use crate::core::roster::{List, ListError};
use msnp::adl::{ListEntry, Lists, MembershipList, NetworkId};
use msnp::codec::Command;
use msnp::error::ErrorCode;
use std::sync::Arc;

/// The lists a client may set, in the order edits are applied (a contact
/// sent on both AL and BL ends up blocked).
const CLIENT_LISTS: [(Lists, List); 3] = [
    (Lists::FL, List::Forward),
    (Lists::AL, List::Allow),
    (Lists::BL, List::Block),
];

/// Whether ADL adds or RML removes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Add,
    Remove,
}

impl NsConnection {
    pub(super) async fn adl(&mut self, trid: u32, cmd: &Command) -> Flow {
        self.membership_command(trid, cmd, Direction::Add).await
    }

    pub(super) async fn rml(&mut self, trid: u32, cmd: &Command) -> Flow {
        self.membership_command(trid, cmd, Direction::Remove).await
    }

    /// Parses the document, refusing what the reference closes for
    /// (240/241/204 and close), then applies each contact's list bits.
    fn parse_client_document(&mut self, trid: u32, cmd: &Command) -> Result<MembershipList, Flow> {
        let payload = cmd.payload.as_deref().unwrap_or_default();
        let parsed = MembershipList::parse(payload).and_then(|list| {
            list.check_client_lists()?;
            Ok(list)
        });
        parsed.map_err(|e| {
            tracing::info!(peer = %self.conn.peer, command = %cmd.name, error = %e, "closing: bad <ml> document");
            self.send_wlm_error(e.wire_code(), trid);
            Flow::Close
        })
    }

    async fn membership_command(&mut self, trid: u32, cmd: &Command, direction: Direction) -> Flow {
        let Some(session) = self.session.clone() else {
            return Flow::Close;
        };
        let document = match self.parse_client_document(trid, cmd) {
            Ok(document) => document,
            Err(flow) => return flow,
        };
        // The initial dump repeats what the address book holds, so it is
        // not counted against the change rate; later edits are, once each.
        if !document.initial && !self.rate.allow() {
            self.reply_error(ErrorCode::RateLimited, trid);
            return Flow::Continue;
        }
        let mut joined: Vec<Arc<Presence>> = Vec::new();
        for entry in &document.entries {
            match self
                .apply_entry(&session, entry, direction, document.initial)
                .await
            {
                Ok(Some(presence)) => joined.push(presence),
                Ok(None) => {}
                Err(code) => {
                    self.send_wlm_error(code, trid);
                    return Flow::Continue;
                }
            }
        }
        self.conn.send_line(&format!("{} {trid} OK", cmd.name));
        if self.presence_started {
            for p in joined {
                self.send_wlm_presence(Some(trid), &p);
            }
        }
        Flow::Continue
    }

    /// Applies one `<c>`: the list bits it names that the roster does not
    /// have yet (ADL) or has (RML). Returns the contact's presence when it
    /// just joined the forward list and is visible; `Err` is the error code
    /// to answer with.
    async fn apply_entry(
        &mut self,
        session: &Arc<crate::core::hub::Session>,
        entry: &ListEntry,
        direction: Direction,
        initial: bool,
    ) -> Result<Option<Arc<Presence>>, u16> {
        let Some(contact) = handle::normalize(&entry.email()) else {
            return Err(ErrorCode::InvalidParameter.code());
        };
        if entry.network.is_some_and(|n| n != NetworkId::PASSPORT) {
            // Only Passport contacts exist here (bridged users included).
            tracing::info!(user = %session.handle, %contact, network = ?entry.network,
                "list entry for another network ignored");
            return Ok(None);
        }
        let lookup = contact.clone();
        let current = self
            .ctx
            .hub
            .with_roster(session, move |r| {
                r.contact(&lookup).map(|c| c.lists).unwrap_or(0)
            })
            .await
            .map_err(|_| ErrorCode::DatabaseError.code())?;
        let mut presence = None;
        for (bit, list) in CLIENT_LISTS {
            if !entry.lists.contains(bit) {
                continue;
            }
            let on_list = current & list.bit() != 0;
            let edit = match direction {
                Direction::Add if !on_list => RosterEdit::Add {
                    list,
                    handle: contact.clone(),
                    stored_name: contact.clone(),
                    group: None,
                },
                Direction::Remove if on_list => RosterEdit::Remove {
                    list,
                    handle: contact.clone(),
                    group: None,
                },
                _ => continue,
            };
            match self.ctx.hub.edit(session, edit).await {
                Ok(outcome) => {
                    if outcome.contact_presence.is_some() {
                        presence = outcome.contact_presence;
                    }
                }
                // Already as asked: ADL and RML are idempotent.
                Err(HubError::List(ListError::AlreadyThere | ListError::NotOnList)) => {}
                // A contact whose account is gone must not stop the
                // initial dump (clients wait for `ADL trid OK`).
                Err(HubError::List(ListError::UnknownAccount)) if initial => {
                    tracing::info!(user = %session.handle, %contact, "initial ADL names an unknown account; skipped");
                    return Ok(None);
                }
                Err(HubError::List(e)) => return Err(wlm_list_error(e)),
                Err(HubError::Store(e)) => {
                    tracing::error!(user = %session.handle, error = %e, "list change failed: database");
                    return Err(ErrorCode::DatabaseError.code());
                }
            }
        }
        // WLM puts a new contact on the forward list through the address
        // book (SOAP) first and subscribes with ADL after: the contact is
        // already there, and its presence is due now all the same.
        if presence.is_none()
            && direction == Direction::Add
            && !initial
            && entry.lists.contains(Lists::FL)
        {
            presence = self
                .ctx
                .hub
                .visible_presence_for(&contact, &session.handle)
                .await;
        }
        Ok(presence)
    }

    /// `FQY trid len` + `<ml><d n="x"><c n="bob" /></d></ml>`: which
    /// network each contact is on. Every account and every bridged user is
    /// a Passport contact (network 1); unknown ones are left out, and
    /// nobody known at all → `208`.
    pub(super) async fn fqy(&mut self, trid: u32, cmd: &Command) -> Flow {
        let payload = cmd.payload.as_deref().unwrap_or_default();
        let document = match MembershipList::parse(payload) {
            Ok(document) => document,
            Err(e) => {
                tracing::info!(peer = %self.conn.peer, error = %e, "closing: bad FQY document");
                self.send_wlm_error(e.wire_code(), trid);
                return Flow::Close;
            }
        };
        let mut known = Vec::new();
        for entry in document.entries {
            let Some(contact) = handle::normalize(&entry.email()) else {
                continue;
            };
            // A bridged user exists if the network that owns the handle knows it.
            let exists = match self.ctx.hub.network_for(&contact) {
                Some(network) => network.resolve(&contact).await.is_some(),
                None => matches!(self.ctx.hub.accounts.find(&contact).await, Ok(Some(_))),
            };
            if exists {
                known.push(ListEntry {
                    lists: Lists::NONE,
                    network: NetworkId::new(NETWORK_PASSPORT as u8),
                    friendly_name: None,
                    ..entry
                });
            }
        }
        if known.is_empty() {
            return self.reply_error(ErrorCode::InvalidUsername, trid);
        }
        let answer = MembershipList {
            initial: false,
            entries: known,
        }
        .to_xml();
        self.conn
            .send_payload(&format!("FQY {trid}"), answer.as_bytes());
        Flow::Continue
    }
}

/// The MSNP13+ answer to a refused list edit.
fn wlm_list_error(e: ListError) -> u16 {
    match e {
        ListError::UnknownAccount => ErrorCode::InvalidUsername.code(),
        ListError::ListFull => ErrorCode::ListFull.code(),
        _ => ErrorCode::InvalidParameter.code(),
    }
}
