//! The sharing service (`SharingService.asmx`): the allow, block, reverse
//! and pending lists as `Allow`/`Block`/`Reverse`/`Pending` memberships
//! (address-book.md §3.1, §4).
//!
//! * `FindMembership` lists every role with its members (see [`roles_of`]
//!   for `Pending`). A delta request gets the `FullSyncRequired` fault, as
//!   from Escargot, which WLM-era clients work against: MSNPSharp then asks
//!   for everything.
//! * `AddMember` puts members on AL/BL/PL (`Reverse` is the server's and is
//!   ignored); adding someone already there succeeds.
//! * `DeleteMember` takes them off. A member who is not in that role
//!   succeeds too (WLM deletes `Pending` after its `AddMember Allow` already
//!   ended it); a `MembershipId` that is no contact's is `MemberDoesNotExist`.
//!   A `MembershipId` is per contact (from their CID), the same in every role.

use super::{Soap, client_fault, hub_fault, now};
use crate::core::handle;
use crate::core::hub::{HubError, RosterEdit, Session};
use crate::core::roster::{List, ListError};
use crate::store::AccountRow;
use axum::body::Body;
use axum::http::Response;
use msnp::abch::{MemberEntry, MemberRef, MembershipEdit, Request, Role};
use msnp::cid::Cid;
use std::sync::Arc;

/// Whether the sharing service answers `request` (else the address book does).
pub(super) fn answers(request: &Request) -> bool {
    matches!(
        request,
        Request::FindMembership { .. } | Request::AddMember(_) | Request::DeleteMember(_)
    )
}

/// The list a role stands for.
fn list_of(role: Role) -> List {
    match role {
        Role::Allow => List::Allow,
        Role::Block => List::Block,
        Role::Reverse => List::Reverse,
        Role::Pending => List::Pending,
    }
}

/// The roles a contact with list bits `lists` has. Someone who added the
/// user (RL) and whom the user has neither allowed nor blocked is
/// `Pending`, not `Reverse`, as from Escargot: that is what makes WLM ask
/// "X added you" (the older dialects ask for RL without AL/BL, and never
/// set PL). Accepting or declining puts them on AL or BL, which ends it.
fn roles_of(lists: i64) -> Vec<Role> {
    use crate::core::roster::{ALLOW, BLOCK, PENDING, REVERSE};
    let undecided = lists & REVERSE != 0 && lists & (ALLOW | BLOCK) == 0;
    Role::ALL
        .into_iter()
        .filter(|r| match r {
            Role::Pending => lists & PENDING != 0 || undecided,
            Role::Reverse => lists & REVERSE != 0 && !undecided,
            _ => lists & list_of(*r).bit() != 0,
        })
        .collect()
}

/// The numeric `MembershipId` of a member: from their CID, so it is
/// stable, and small enough for retro-prpl's `atoi`.
pub(super) fn membership_id(cid: Cid) -> u64 {
    cid.0 & 0x7FFF_FFFF
}

pub(super) async fn answer(
    soap: &Soap,
    account: &AccountRow,
    session: &Arc<Session>,
    request: Request,
) -> Result<String, Response<Body>> {
    match request {
        Request::FindMembership { deltas_only: true } => {
            Err(super::fault_response(msnp::abch::full_sync_required()))
        }
        Request::FindMembership { .. } => find_membership(soap, account, session).await,
        Request::AddMember(memberships) => {
            edit_members(soap, account, session, &memberships, true).await?;
            Ok(msnp::abch::empty_response("AddMember"))
        }
        Request::DeleteMember(memberships) => {
            edit_members(soap, account, session, &memberships, false).await?;
            Ok(msnp::abch::empty_response("DeleteMember"))
        }
        _ => Err(client_fault("Not a sharing operation", "BadArgument")),
    }
}

/// (handle, guid, lists) of every contact, and the owner's settings.
struct Snapshot {
    contacts: Vec<(String, String, i64)>,
    friendly_name: String,
    allow_unlisted: bool,
    auto_allow: bool,
}

async fn snapshot(session: &Session, soap: &Soap) -> Result<Snapshot, HubError> {
    soap.hub
        .with_roster(session, |r| Snapshot {
            contacts: r
                .contacts
                .values()
                .map(|c| (c.handle.clone(), c.guid.clone(), c.lists))
                .collect(),
            friendly_name: r.friendly_name.clone(),
            allow_unlisted: r.privacy == crate::core::roster::Privacy::AllowUnlisted,
            auto_allow: r.auto_allow,
        })
        .await
}

async fn find_membership(
    soap: &Soap,
    account: &AccountRow,
    session: &Arc<Session>,
) -> Result<String, Response<Body>> {
    let snapshot = snapshot(session, soap)
        .await
        .map_err(|e| hub_fault(&account.handle, e))?;
    let mut members = Vec::new();
    for (handle, guid, lists) in &snapshot.contacts {
        let roles = roles_of(*lists);
        if roles.is_empty() {
            continue;
        }
        let cid = soap.cid_of(handle, guid).await;
        for role in roles {
            members.push(MemberEntry {
                role,
                membership_id: membership_id(cid),
                handle: handle.clone(),
                cid,
            });
        }
    }
    let owner = msnp::abch::Owner {
        handle: &account.handle,
        cid: super::account_cid(account),
        friendly_name: &snapshot.friendly_name,
        allow_unlisted: snapshot.allow_unlisted,
        auto_allow: snapshot.auto_allow,
    };
    Ok(msnp::abch::find_membership_response(
        &owner,
        &members,
        now(),
    ))
}

async fn edit_members(
    soap: &Soap,
    account: &AccountRow,
    session: &Arc<Session>,
    memberships: &[MembershipEdit],
    adding: bool,
) -> Result<(), Response<Body>> {
    for membership in memberships {
        if membership.role == Role::Reverse {
            // The reverse list follows other users' forward lists.
            continue;
        }
        let list = list_of(membership.role);
        for member in &membership.members {
            let handle = match member {
                MemberRef::Address(address) => handle::normalize(address)
                    .ok_or_else(|| client_fault("Invalid e-mail address", "BadEmailArgument"))?,
                MemberRef::MembershipId(id) => by_membership_id(soap, account, session, *id)
                    .await?
                    .ok_or_else(|| client_fault("Member does not exist", "MemberDoesNotExist"))?,
            };
            let edit = if adding {
                RosterEdit::Add {
                    list,
                    handle: handle.clone(),
                    stored_name: handle.clone(),
                    group: None,
                }
            } else {
                RosterEdit::Remove {
                    list,
                    handle: handle.clone(),
                    group: None,
                }
            };
            match soap.hub.edit(session, edit).await {
                Ok(_) => {}
                Err(HubError::List(ListError::AlreadyThere | ListError::NotOnList)) => {}
                Err(HubError::List(ListError::UnknownAccount | ListError::InvalidHandle)) => {
                    return Err(client_fault("User does not exist", "UserDoesNotExist"));
                }
                Err(HubError::List(ListError::ListFull)) => {
                    return Err(client_fault("Member limit reached", "MemberLimitReached"));
                }
                Err(HubError::List(e)) => {
                    return Err(client_fault(&e.to_string(), "BadArgument"));
                }
                Err(e) => return Err(hub_fault(&account.handle, e)),
            }
        }
    }
    Ok(())
}

/// The contact whose `MembershipId` is `id`, whatever their roles now: the
/// id is the contact's, and WLM deletes a `Pending` membership by id after
/// its `AddMember Allow` already ended it.
async fn by_membership_id(
    soap: &Soap,
    account: &AccountRow,
    session: &Arc<Session>,
    id: u64,
) -> Result<Option<String>, Response<Body>> {
    let snapshot = snapshot(session, soap)
        .await
        .map_err(|e| hub_fault(&account.handle, e))?;
    for (handle, guid, lists) in snapshot.contacts {
        if lists != 0 && membership_id(soap.cid_of(&handle, &guid).await) == id {
            return Ok(Some(handle));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::roster::{ALLOW, BLOCK, FORWARD, PENDING, REVERSE};

    #[test]
    fn watchers_nobody_decided_on_are_pending() {
        assert_eq!(roles_of(REVERSE), [Role::Pending]);
        assert_eq!(roles_of(REVERSE | FORWARD), [Role::Pending]);
        assert_eq!(roles_of(REVERSE | ALLOW), [Role::Allow, Role::Reverse]);
        assert_eq!(roles_of(REVERSE | BLOCK), [Role::Block, Role::Reverse]);
        assert_eq!(roles_of(PENDING | ALLOW), [Role::Allow, Role::Pending]);
        assert_eq!(roles_of(FORWARD), []);
    }
}
