//! The address book (`abservice.asmx`): the forward list, its groups and
//! the owner's own entry (address-book.md §3.2, §4).
//!
//! * `ABFindAll` / `ABFindContactsPaged`: every group and forward-list
//!   contact, after the owner's `Me` entry. A delta request gets the
//!   `FullSyncRequired` fault (see [`super::sharing`]); there are no circles.
//! * `ABContactAdd` puts the address on FL (`ContactAlreadyExists`,
//!   `InvalidPassportUser`, `BadEmailArgument` otherwise); `ABContactDelete`
//!   takes contacts off FL by `contactId`; `ABContactUpdate` renames a
//!   contact (`AB.NickName` / `displayName`) or, for `Me`, sets the
//!   friendly name and the `MSN.IM.BLP` / `MSN.IM.GTC` privacy settings.
//! * `ABGroupAdd` / `ABGroupDelete` / `ABGroupUpdate` and
//!   `ABGroupContactAdd` / `ABGroupContactDelete` edit groups.
//! * `ABAdd` succeeds: the book always exists.

use super::{Soap, client_fault, hub_fault, now};
use crate::core::handle;
use crate::core::hub::{HubError, RosterEdit, Session};
use crate::core::roster::{List, ListError, Privacy, Roster};
use crate::store::AccountRow;
use axum::body::Body;
use axum::http::Response;
use msnp::abch::{AbContact, AbGroup, ContactRef, ContactUpdate, FindKind, NewContact, Request};
use std::sync::Arc;

/// Longest group name, URL-encoded, as for the older dialects.
const MAX_GROUP_NAME_ENCODED: usize = 61;

type Answer = Result<String, Response<Body>>;

pub(super) async fn answer(
    soap: &Soap,
    account: &AccountRow,
    session: &Arc<Session>,
    request: Request,
) -> Answer {
    let book = Book {
        soap,
        account,
        session,
    };
    match request {
        Request::AbFindAll { deltas_only: true }
        | Request::AbFindContactsPaged {
            deltas_only: true, ..
        } => Err(super::fault_response(msnp::abch::full_sync_required())),
        Request::AbFindContactsPaged {
            other_book: Some(_),
            ..
        } => Err(client_fault(
            "Address Book Does Not Exist",
            "ABDoesNotExist",
        )),
        Request::AbFindAll { .. } => book.find(FindKind::All).await,
        Request::AbFindContactsPaged { .. } => book.find(FindKind::Paged).await,
        Request::AbAdd => Ok(msnp::abch::ab_add_response()),
        Request::ContactAdd(contacts) => book.add_contacts(&contacts).await,
        Request::ContactDelete(ids) => book.delete_contacts(&ids).await,
        Request::ContactUpdate(updates) => book.update_contacts(&updates).await,
        Request::GroupAdd { name } => book.add_group(&name).await,
        Request::GroupDelete(ids) => book.delete_groups(&ids).await,
        Request::GroupUpdate(groups) => book.rename_groups(&groups).await,
        Request::GroupContactAdd {
            group_ids,
            contacts,
        } => book.group_contacts(&group_ids, &contacts).await,
        Request::GroupContactDelete {
            group_ids,
            contact_ids,
        } => book.ungroup_contacts(&group_ids, &contact_ids).await,
        Request::FindMembership { .. } | Request::AddMember(_) | Request::DeleteMember(_) => {
            Err(client_fault("Not an address-book operation", "BadArgument"))
        }
    }
}

/// One request's view of the owner's book.
struct Book<'a> {
    soap: &'a Soap,
    account: &'a AccountRow,
    session: &'a Arc<Session>,
}

/// The fault for a list rule a request broke.
fn list_fault(error: ListError) -> Response<Body> {
    let (text, code) = match error {
        ListError::InvalidHandle => ("Invalid e-mail address", "BadEmailArgument"),
        ListError::UnknownAccount => ("Invalid passport user", "InvalidPassportUser"),
        ListError::AlreadyThere => ("Contact Already Exists", "ContactAlreadyExists"),
        ListError::NotOnList | ListError::NotInGroup => {
            ("Contact Does Not Exist", "ContactDoesNotExist")
        }
        ListError::InvalidGroup | ListError::CannotRemoveGroupZero => {
            ("Group Does Not Exist", "GroupDoesNotExist")
        }
        ListError::GroupNameExists => ("Group Already Exists", "GroupAlreadyExists"),
        ListError::TooManyGroups => ("Maximum groups reached", "MaximumGroupsReached"),
        ListError::ListFull => ("Maximum contacts reached", "QuotaLimitReached"),
        ListError::AlreadyInMode | ListError::ReadOnlyList => ("Bad argument", "BadArgument"),
    };
    client_fault(text, code)
}

impl Book<'_> {
    fn fail(&self, error: HubError) -> Response<Body> {
        match error {
            HubError::List(e) => list_fault(e),
            e => hub_fault(&self.account.handle, e),
        }
    }

    async fn edit(&self, edit: RosterEdit) -> Result<crate::core::hub::EditOutcome, HubError> {
        self.soap.hub.edit(self.session, edit).await
    }

    /// Runs `f` on the current roster.
    async fn read<R>(&self, f: impl FnOnce(&Roster) -> R) -> Result<R, Response<Body>> {
        self.soap
            .hub
            .with_roster(self.session, f)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn find(&self, kind: FindKind) -> Answer {
        struct Listing {
            groups: Vec<AbGroup>,
            contacts: Vec<(String, String, String, Vec<String>)>,
            friendly_name: String,
            allow_unlisted: bool,
            auto_allow: bool,
        }
        let listing = self
            .read(|r| Listing {
                groups: r
                    .groups
                    .values()
                    .filter(|g| g.number != 0)
                    .map(|g| AbGroup {
                        group_id: g.guid.clone(),
                        name: g.name.clone(),
                    })
                    .collect(),
                contacts: r
                    .list_members(List::Forward)
                    .map(|c| {
                        let groups = c
                            .groups
                            .iter()
                            .filter_map(|n| r.groups.get(n))
                            .map(|g| g.guid.clone())
                            .collect();
                        (
                            c.handle.clone(),
                            c.guid.clone(),
                            c.stored_name.clone(),
                            groups,
                        )
                    })
                    .collect(),
                friendly_name: r.friendly_name.clone(),
                allow_unlisted: r.privacy == Privacy::AllowUnlisted,
                auto_allow: r.auto_allow,
            })
            .await?;
        let mut contacts = Vec::with_capacity(listing.contacts.len());
        for (handle, guid, name, group_ids) in listing.contacts {
            let cid = self.soap.cid_of(&handle, &guid).await;
            contacts.push(AbContact {
                contact_id: guid,
                display_name: if name.is_empty() {
                    handle.clone()
                } else {
                    name
                },
                handle,
                cid,
                group_ids,
            });
        }
        let owner = msnp::abch::Owner {
            handle: &self.account.handle,
            cid: super::account_cid(self.account),
            friendly_name: &listing.friendly_name,
            allow_unlisted: listing.allow_unlisted,
            auto_allow: listing.auto_allow,
        };
        Ok(msnp::abch::find_contacts_response(
            kind,
            &owner,
            &listing.groups,
            &contacts,
            now(),
        ))
    }

    /// Puts `contact` on the forward list (and into `group`); its contact id.
    async fn add(
        &self,
        contact: &NewContact,
        group: Option<i64>,
    ) -> Result<String, Response<Body>> {
        let handle = handle::normalize(&contact.address)
            .ok_or_else(|| list_fault(ListError::InvalidHandle))?;
        let edit = RosterEdit::Add {
            list: List::Forward,
            stored_name: contact.name.clone().unwrap_or_else(|| handle.clone()),
            handle: handle.clone(),
            group,
        };
        let outcome = self.edit(edit).await.map_err(|e| self.fail(e))?;
        match outcome.contact {
            Some(c) => Ok(c.guid),
            None => self.contact_id(&handle).await,
        }
    }

    async fn contact_id(&self, handle: &str) -> Result<String, Response<Body>> {
        self.read(|r| r.contact(handle).map(|c| c.guid.clone()))
            .await?
            .ok_or_else(|| list_fault(ListError::NotOnList))
    }

    /// The forward-list contact whose id is `id`.
    async fn by_id(&self, id: &str) -> Result<(String, String), Response<Body>> {
        self.read(|r| {
            r.contact_by_guid(id)
                .filter(|c| c.is_on(List::Forward))
                .map(|c| (c.handle.clone(), c.stored_name.clone()))
        })
        .await?
        .ok_or_else(|| list_fault(ListError::NotOnList))
    }

    /// The number of the group whose id is `id`.
    async fn group(&self, id: &str) -> Result<i64, Response<Body>> {
        self.read(|r| r.group_by_guid(id).map(|g| g.number))
            .await?
            .filter(|n| *n != 0)
            .ok_or_else(|| list_fault(ListError::InvalidGroup))
    }

    async fn add_contacts(&self, contacts: &[NewContact]) -> Answer {
        let mut ids = Vec::with_capacity(contacts.len());
        for contact in contacts {
            ids.push(self.add(contact, None).await?);
        }
        Ok(msnp::abch::guid_response("ABContactAdd", &ids))
    }

    async fn delete_contacts(&self, ids: &[String]) -> Answer {
        for id in ids {
            let (handle, _) = self.by_id(id).await?;
            self.edit(RosterEdit::Remove {
                list: List::Forward,
                handle,
                group: None,
            })
            .await
            .map_err(|e| self.fail(e))?;
        }
        Ok(msnp::abch::empty_response("ABContactDelete"))
    }

    async fn update_contacts(&self, updates: &[ContactUpdate]) -> Answer {
        let me = msnp::abch::me_contact_id(super::account_cid(self.account));
        for update in updates {
            let is_me = update.is_me
                || update
                    .contact_id
                    .as_deref()
                    .is_some_and(|id| id.eq_ignore_ascii_case(&me));
            if is_me {
                self.update_me(update).await?;
                continue;
            }
            let Some(id) = &update.contact_id else {
                return Err(list_fault(ListError::NotOnList));
            };
            let (handle, _) = self.by_id(id).await?;
            let name = update
                .nickname
                .clone()
                .or_else(|| update.display_name.clone().filter(|n| !n.is_empty()));
            if let Some(name) = name {
                self.edit(RosterEdit::SetStoredName { handle, name })
                    .await
                    .map_err(|e| self.fail(e))?;
            }
        }
        Ok(msnp::abch::empty_response("ABContactUpdate"))
    }

    /// The owner's own entry: friendly name and privacy annotations.
    async fn update_me(&self, update: &ContactUpdate) -> Result<(), Response<Body>> {
        let name_changed = update.properties_changed.is_empty()
            || update
                .properties_changed
                .iter()
                .any(|p| p.eq_ignore_ascii_case("DisplayName"));
        if let Some(name) = update.display_name.as_deref().filter(|n| !n.is_empty())
            && name_changed
        {
            self.soap
                .hub
                .set_friendly_name(self.session, name)
                .await
                .map_err(|e| self.fail(e))?;
        }
        for (name, value) in &update.annotations {
            let edit = match (name.as_str(), value.trim()) {
                ("MSN.IM.BLP", "1") => RosterEdit::SetPrivacy(Privacy::AllowUnlisted),
                ("MSN.IM.BLP", "2" | "0") => RosterEdit::SetPrivacy(Privacy::BlockUnlisted),
                ("MSN.IM.GTC", "1") => RosterEdit::SetAutoAllow(false),
                ("MSN.IM.GTC", "2") => RosterEdit::SetAutoAllow(true),
                // Other annotations (MPOP, RoamLiveProperties, …) are not kept.
                _ => continue,
            };
            match self.edit(edit).await {
                Ok(_) | Err(HubError::List(ListError::AlreadyInMode)) => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(())
    }

    async fn add_group(&self, name: &str) -> Answer {
        if msnp::urlenc::encode(name).len() > MAX_GROUP_NAME_ENCODED {
            return Err(client_fault("Group name too long", "GroupNameTooLong"));
        }
        let outcome = self
            .edit(RosterEdit::AddGroup { name: name.into() })
            .await
            .map_err(|e| self.fail(e))?;
        let id = outcome
            .group
            .map(|g| g.guid)
            .ok_or_else(|| list_fault(ListError::InvalidGroup))?;
        Ok(msnp::abch::guid_response("ABGroupAdd", &[id]))
    }

    async fn delete_groups(&self, ids: &[String]) -> Answer {
        for id in ids {
            let number = self.group(id).await?;
            self.edit(RosterEdit::RemoveGroup { number })
                .await
                .map_err(|e| self.fail(e))?;
        }
        Ok(msnp::abch::empty_response("ABGroupDelete"))
    }

    async fn rename_groups(&self, groups: &[(String, String)]) -> Answer {
        for (id, name) in groups {
            if msnp::urlenc::encode(name).len() > MAX_GROUP_NAME_ENCODED {
                return Err(client_fault("Group name too long", "GroupNameTooLong"));
            }
            let number = self.group(id).await?;
            self.edit(RosterEdit::RenameGroup {
                number,
                name: name.clone(),
            })
            .await
            .map_err(|e| self.fail(e))?;
        }
        Ok(msnp::abch::empty_response("ABGroupUpdate"))
    }

    async fn group_contacts(&self, group_ids: &[String], contacts: &[ContactRef]) -> Answer {
        let mut ids = Vec::new();
        for group_id in group_ids {
            let number = self.group(group_id).await?;
            for contact in contacts {
                let id = match contact {
                    ContactRef::Address(new) => self.add(new, Some(number)).await,
                    ContactRef::Id(id) => {
                        let (handle, stored_name) = self.by_id(id).await?;
                        match self
                            .edit(RosterEdit::Add {
                                list: List::Forward,
                                handle,
                                stored_name,
                                group: Some(number),
                            })
                            .await
                        {
                            Ok(_) | Err(HubError::List(ListError::AlreadyThere)) => Ok(id.clone()),
                            Err(e) => Err(self.fail(e)),
                        }
                    }
                }?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        Ok(msnp::abch::guid_response("ABGroupContactAdd", &ids))
    }

    async fn ungroup_contacts(&self, group_ids: &[String], contact_ids: &[String]) -> Answer {
        for group_id in group_ids {
            let number = self.group(group_id).await?;
            for id in contact_ids {
                let (handle, _) = self.by_id(id).await?;
                match self
                    .edit(RosterEdit::Remove {
                        list: List::Forward,
                        handle,
                        group: Some(number),
                    })
                    .await
                {
                    Ok(_) | Err(HubError::List(ListError::NotInGroup)) => {}
                    Err(e) => return Err(self.fail(e)),
                }
            }
        }
        Ok(msnp::abch::empty_response("ABGroupContactDelete"))
    }
}
