//! One account's contact lists, groups and settings, in memory.
//!
//! Edits are planned as [`Change`]s against the current state, committed to
//! the store, and only then applied here with [`Roster::apply`] — the same
//! change list for both, so memory and database cannot drift apart.

use crate::store::{AccountField, AccountRow, Change, ContactRow, GroupRow, RosterRows};
use std::collections::{BTreeMap, BTreeSet};

/// List bits, as stored and as MSNP8+ `LST` shows them.
pub const FORWARD: i64 = 1;
pub const ALLOW: i64 = 2;
pub const BLOCK: i64 = 4;
pub const REVERSE: i64 = 8;
pub const PENDING: i64 = 16;

pub const MAX_GROUPS: usize = 30;

/// Own properties that contacts who are allowed see as `BPR` lines.
pub const SHARED_PHONE_KEYS: &[&str] = &["PHH", "PHW", "PHM", "MOB", "MBE"];

/// The privacy rule (notification.md §6) for an owner whose entry for the
/// viewer carries `lists` bits (0 when the viewer is on none of their lists).
pub fn allowed_by(lists: i64, privacy: Privacy) -> bool {
    lists & ALLOW != 0 || (lists & BLOCK == 0 && privacy == Privacy::AllowUnlisted)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum List {
    Forward,
    Allow,
    Block,
    Reverse,
    Pending,
}

impl List {
    pub fn bit(self) -> i64 {
        match self {
            List::Forward => FORWARD,
            List::Allow => ALLOW,
            List::Block => BLOCK,
            List::Reverse => REVERSE,
            List::Pending => PENDING,
        }
    }
}

/// Who may see and message the user when neither allowed nor blocked explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privacy {
    /// Everyone not blocked (`BLP AL`, the default).
    AllowUnlisted,
    /// Only the allow list (`BLP BL`).
    BlockUnlisted,
}

impl Privacy {
    pub fn as_stored(self) -> &'static str {
        match self {
            Privacy::AllowUnlisted => "AL",
            Privacy::BlockUnlisted => "BL",
        }
    }
    pub fn from_stored(s: &str) -> Privacy {
        if s == "BL" {
            Privacy::BlockUnlisted
        } else {
            Privacy::AllowUnlisted
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub handle: String,
    pub guid: String,
    pub stored_name: String,
    pub lists: i64,
    pub groups: BTreeSet<i64>,
}

impl Contact {
    pub fn is_on(&self, list: List) -> bool {
        self.lists & list.bit() != 0
    }

    /// In group `number`; a forward contact in no group counts as in group 0.
    pub fn in_group(&self, number: i64) -> bool {
        self.groups.contains(&number) || (number == 0 && self.groups.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub number: i64,
    pub guid: String,
    pub name: String,
}

/// Why a list edit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("malformed handle")]
    InvalidHandle,
    #[error("no such account")]
    UnknownAccount,
    #[error("list is full")]
    ListFull,
    #[error("already on that list or in that group")]
    AlreadyThere,
    #[error("not on that list")]
    NotOnList,
    #[error("no such group")]
    InvalidGroup,
    #[error("contact not in that group")]
    NotInGroup,
    #[error("too many groups")]
    TooManyGroups,
    #[error("a group with that name exists")]
    GroupNameExists,
    #[error("group 0 cannot be removed")]
    CannotRemoveGroupZero,
    #[error("setting already in force")]
    AlreadyInMode,
    #[error("the list is maintained by the server")]
    ReadOnlyList,
}

#[derive(Debug, Clone)]
pub struct Roster {
    pub account_id: i64,
    pub handle: String,
    pub friendly_name: String,
    pub personal_message: String,
    pub privacy: Privacy,
    /// `GTC N`: add new watchers to the allow list without asking (a client-side hint).
    pub auto_allow: bool,
    pub version: i64,
    pub contacts: BTreeMap<String, Contact>,
    pub groups: BTreeMap<i64, Group>,
    pub properties: BTreeMap<String, String>,
    pub max_contacts: usize,
}

impl Roster {
    pub fn from_rows(account: &AccountRow, rows: RosterRows, max_contacts: usize) -> Roster {
        let mut contacts: BTreeMap<String, Contact> = rows
            .contacts
            .into_iter()
            .map(|c: ContactRow| {
                let contact = Contact {
                    handle: c.handle.clone(),
                    guid: c.guid,
                    stored_name: c.stored_name,
                    lists: c.lists,
                    groups: BTreeSet::new(),
                };
                (c.handle, contact)
            })
            .collect();
        for (handle, group) in rows.memberships {
            if let Some(c) = contacts.get_mut(&handle) {
                c.groups.insert(group);
            }
        }
        Roster {
            account_id: account.id,
            handle: account.handle.clone(),
            friendly_name: account.friendly_name.clone(),
            personal_message: account.personal_message.clone(),
            privacy: Privacy::from_stored(&account.blp),
            auto_allow: account.gtc == "N",
            version: account.list_version,
            contacts,
            groups: rows
                .groups
                .into_iter()
                .map(|g: GroupRow| {
                    (
                        g.number,
                        Group {
                            number: g.number,
                            guid: g.guid,
                            name: g.name,
                        },
                    )
                })
                .collect(),
            properties: rows.properties.into_iter().collect(),
            max_contacts,
        }
    }

    pub fn contact(&self, handle: &str) -> Option<&Contact> {
        self.contacts.get(handle)
    }

    pub fn is_on(&self, handle: &str, list: List) -> bool {
        self.contacts.get(handle).is_some_and(|c| c.is_on(list))
    }

    /// May `other` see this user's presence and invite them to chats?
    pub fn allows(&self, other: &str) -> bool {
        allowed_by(
            self.contacts.get(other).map_or(0, |c| c.lists),
            self.privacy,
        )
    }

    /// The phone properties `viewer` may see (none unless allowed).
    pub fn visible_phone_data(&self, viewer: &str) -> Vec<(String, String)> {
        if !self.allows(viewer) {
            return Vec::new();
        }
        self.properties
            .iter()
            .filter(|(k, _)| SHARED_PHONE_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn contact_by_guid(&self, guid: &str) -> Option<&Contact> {
        self.contacts
            .values()
            .find(|c| c.guid.eq_ignore_ascii_case(guid))
    }

    pub fn group_by_guid(&self, guid: &str) -> Option<&Group> {
        self.groups
            .values()
            .find(|g| g.guid.eq_ignore_ascii_case(guid))
    }

    pub fn group_by_name(&self, name: &str) -> Option<&Group> {
        self.groups.values().find(|g| g.name == name)
    }

    pub fn list_members(&self, list: List) -> impl Iterator<Item = &Contact> {
        self.contacts.values().filter(move |c| c.is_on(list))
    }

    fn bump(&self) -> Change {
        Change::BumpListVersion {
            account_id: self.account_id,
        }
    }

    /// Plans putting `handle` on `list` (and, for the forward list, into `group`).
    ///
    /// Group 0 is MSNP7–9's "Other Contacts": it is stored as an ordinary
    /// membership so a contact can be in 0 and other groups at once, as those
    /// clients believe; a forward contact in no group at all is shown in group
    /// 0 too. MSNP10+ has no group 0 and simply ignores that membership.
    pub fn plan_add(
        &self,
        list: List,
        handle: &str,
        stored_name: &str,
        group: Option<i64>,
    ) -> Result<Vec<Change>, ListError> {
        let id = self.account_id;
        let existing = self.contacts.get(handle);
        if let Some(g) = group
            && g != 0
            && !self.groups.contains_key(&g)
        {
            return Err(ListError::InvalidGroup);
        }
        let mut changes = Vec::new();
        match list {
            List::Reverse => return Err(ListError::ReadOnlyList),
            List::Forward => {
                if let Some(c) = existing.filter(|c| c.is_on(List::Forward)) {
                    match group {
                        Some(g) if !c.in_group(g) => {
                            changes.push(Change::AddMembership {
                                account_id: id,
                                handle: handle.into(),
                                group: g,
                            });
                        }
                        _ => return Err(ListError::AlreadyThere),
                    }
                } else {
                    if self.list_members(List::Forward).count() >= self.max_contacts {
                        return Err(ListError::ListFull);
                    }
                    changes.push(self.add_bits(handle, stored_name, FORWARD));
                    if let Some(g) = group {
                        changes.push(Change::AddMembership {
                            account_id: id,
                            handle: handle.into(),
                            group: g,
                        });
                    }
                }
            }
            List::Allow | List::Block | List::Pending => {
                if existing.is_some_and(|c| c.is_on(list)) {
                    return Err(ListError::AlreadyThere);
                }
                let opposite = match list {
                    List::Allow => Some(List::Block),
                    List::Block => Some(List::Allow),
                    _ => None,
                };
                if existing.is_none() && self.contacts.len() >= self.max_contacts * 2 {
                    return Err(ListError::ListFull);
                }
                changes.push(self.add_bits(handle, stored_name, list.bit()));
                // Clients block as `ADD BL` then `REM AL` as often as the
                // other way round: an add to the opposite list moves the
                // contact (after the add, so the row is never left on no list).
                if let Some(o) = opposite.filter(|o| existing.is_some_and(|c| c.is_on(*o))) {
                    changes.push(Change::RemoveLists {
                        account_id: id,
                        handle: handle.into(),
                        bits: o.bit(),
                    });
                }
                // Allowing or blocking someone answers their pending request.
                if list != List::Pending && existing.is_some_and(|c| c.is_on(List::Pending)) {
                    changes.push(Change::RemoveLists {
                        account_id: id,
                        handle: handle.into(),
                        bits: PENDING,
                    });
                }
            }
        }
        changes.push(self.bump());
        Ok(changes)
    }

    fn add_bits(&self, handle: &str, stored_name: &str, bits: i64) -> Change {
        let existing = self.contacts.get(handle);
        Change::AddLists {
            account_id: self.account_id,
            handle: handle.into(),
            guid: existing.map(|c| c.guid.clone()).unwrap_or_else(new_guid),
            stored_name: existing
                .map(|c| c.stored_name.clone())
                .unwrap_or_else(|| stored_name.into()),
            bits,
        }
    }

    /// Plans taking `handle` off `list`, or, with a group, out of that group
    /// only (the contact stays on the forward list even when in no group).
    pub fn plan_remove(
        &self,
        list: List,
        handle: &str,
        group: Option<i64>,
    ) -> Result<Vec<Change>, ListError> {
        let id = self.account_id;
        if list == List::Reverse {
            return Err(ListError::ReadOnlyList);
        }
        let Some(contact) = self.contacts.get(handle).filter(|c| c.is_on(list)) else {
            return Err(ListError::NotOnList);
        };
        let mut changes = Vec::new();
        match (list, group) {
            (List::Forward, Some(0)) => {
                // MSNP7–9 clients move a contact out of "Other Contacts" with
                // `ADD … g` then `REM … 0`, also when group 0 was only implied
                // (no groups at all): leaving it is never an error.
                if !contact.groups.contains(&0) {
                    return Ok(Vec::new());
                }
                changes.push(Change::RemoveMembership {
                    account_id: id,
                    handle: handle.into(),
                    group: 0,
                });
            }
            (List::Forward, Some(g)) => {
                if !self.groups.contains_key(&g) {
                    return Err(ListError::InvalidGroup);
                }
                if !contact.groups.contains(&g) {
                    return Err(ListError::NotInGroup);
                }
                changes.push(Change::RemoveMembership {
                    account_id: id,
                    handle: handle.into(),
                    group: g,
                });
            }
            (List::Forward, None) => {
                changes.push(Change::ClearMemberships {
                    account_id: id,
                    handle: handle.into(),
                });
                changes.push(Change::RemoveLists {
                    account_id: id,
                    handle: handle.into(),
                    bits: FORWARD,
                });
            }
            _ => changes.push(Change::RemoveLists {
                account_id: id,
                handle: handle.into(),
                bits: list.bit(),
            }),
        }
        changes.push(self.bump());
        Ok(changes)
    }

    pub fn plan_add_group(&self, name: &str) -> Result<(Vec<Change>, Group), ListError> {
        if self.groups.len() >= MAX_GROUPS {
            return Err(ListError::TooManyGroups);
        }
        if self.group_by_name(name).is_some() {
            return Err(ListError::GroupNameExists);
        }
        let number = self.groups.keys().next_back().copied().unwrap_or(0) + 1;
        let group = Group {
            number,
            guid: new_guid(),
            name: name.into(),
        };
        let row = GroupRow {
            number,
            guid: group.guid.clone(),
            name: group.name.clone(),
        };
        Ok((
            vec![
                Change::UpsertGroup {
                    account_id: self.account_id,
                    group: row,
                },
                self.bump(),
            ],
            group,
        ))
    }

    pub fn plan_remove_group(&self, number: i64) -> Result<Vec<Change>, ListError> {
        if number == 0 {
            return Err(ListError::CannotRemoveGroupZero);
        }
        if !self.groups.contains_key(&number) {
            return Err(ListError::InvalidGroup);
        }
        Ok(vec![
            Change::DeleteGroup {
                account_id: self.account_id,
                number,
            },
            self.bump(),
        ])
    }

    pub fn plan_rename_group(&self, number: i64, name: &str) -> Result<Vec<Change>, ListError> {
        let Some(group) = self.groups.get(&number) else {
            return Err(ListError::InvalidGroup);
        };
        if self.group_by_name(name).is_some_and(|g| g.number != number) {
            return Err(ListError::GroupNameExists);
        }
        let row = GroupRow {
            number,
            guid: group.guid.clone(),
            name: name.into(),
        };
        Ok(vec![
            Change::UpsertGroup {
                account_id: self.account_id,
                group: row,
            },
            self.bump(),
        ])
    }

    pub fn plan_privacy(&self, privacy: Privacy) -> Result<Vec<Change>, ListError> {
        if self.privacy == privacy {
            return Err(ListError::AlreadyInMode);
        }
        Ok(vec![
            self.set_field(AccountField::Blp, privacy.as_stored()),
            self.bump(),
        ])
    }

    pub fn plan_auto_allow(&self, auto_allow: bool) -> Result<Vec<Change>, ListError> {
        if self.auto_allow == auto_allow {
            return Err(ListError::AlreadyInMode);
        }
        Ok(vec![
            self.set_field(AccountField::Gtc, if auto_allow { "N" } else { "A" }),
            self.bump(),
        ])
    }

    pub fn plan_friendly_name(&self, name: &str) -> Vec<Change> {
        vec![
            self.set_field(AccountField::FriendlyName, name),
            self.bump(),
        ]
    }

    pub fn plan_personal_message(&self, text: &str) -> Vec<Change> {
        vec![self.set_field(AccountField::PersonalMessage, text)]
    }

    pub fn plan_stored_name(&self, handle: &str, name: &str) -> Result<Vec<Change>, ListError> {
        if !self.contacts.contains_key(handle) {
            return Err(ListError::NotOnList);
        }
        Ok(vec![
            Change::SetStoredName {
                account_id: self.account_id,
                handle: handle.into(),
                name: name.into(),
            },
            self.bump(),
        ])
    }

    pub fn plan_property(&self, name: &str, value: Option<&str>) -> Vec<Change> {
        let change = match value {
            Some(v) if !v.is_empty() => Change::SetProperty {
                account_id: self.account_id,
                name: name.into(),
                value: v.into(),
            },
            _ => Change::DeleteProperty {
                account_id: self.account_id,
                name: name.into(),
            },
        };
        vec![change, self.bump()]
    }

    fn set_field(&self, field: AccountField, value: &str) -> Change {
        Change::SetField {
            account_id: self.account_id,
            field,
            value: value.into(),
        }
    }

    /// Applies committed changes that concern this account; others are ignored.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            self.apply_one(change);
        }
    }

    fn apply_one(&mut self, change: &Change) {
        let me = self.account_id;
        match change {
            Change::AddLists {
                account_id,
                handle,
                guid,
                stored_name,
                bits,
            } if *account_id == me => {
                let contact = self
                    .contacts
                    .entry(handle.clone())
                    .or_insert_with(|| Contact {
                        handle: handle.clone(),
                        guid: guid.clone(),
                        stored_name: stored_name.clone(),
                        lists: 0,
                        groups: BTreeSet::new(),
                    });
                contact.lists |= bits;
            }
            Change::RemoveLists {
                account_id,
                handle,
                bits,
            } if *account_id == me => {
                if let Some(contact) = self.contacts.get_mut(handle) {
                    contact.lists &= !bits;
                    if contact.lists == 0 {
                        self.contacts.remove(handle);
                    }
                }
            }
            Change::SetStoredName {
                account_id,
                handle,
                name,
            } if *account_id == me => {
                if let Some(c) = self.contacts.get_mut(handle) {
                    c.stored_name = name.clone();
                }
            }
            Change::AddMembership {
                account_id,
                handle,
                group,
            } if *account_id == me => {
                if let Some(c) = self.contacts.get_mut(handle) {
                    c.groups.insert(*group);
                }
            }
            Change::RemoveMembership {
                account_id,
                handle,
                group,
            } if *account_id == me => {
                if let Some(c) = self.contacts.get_mut(handle) {
                    c.groups.remove(group);
                }
            }
            Change::ClearMemberships { account_id, handle } if *account_id == me => {
                if let Some(c) = self.contacts.get_mut(handle) {
                    c.groups.clear();
                }
            }
            Change::UpsertGroup { account_id, group } if *account_id == me => {
                self.groups.insert(
                    group.number,
                    Group {
                        number: group.number,
                        guid: group.guid.clone(),
                        name: group.name.clone(),
                    },
                );
            }
            Change::DeleteGroup { account_id, number } if *account_id == me => {
                self.groups.remove(number);
                for c in self.contacts.values_mut() {
                    c.groups.remove(number);
                }
            }
            Change::SetField {
                account_id,
                field,
                value,
            } if *account_id == me => match field {
                AccountField::FriendlyName => self.friendly_name = value.clone(),
                AccountField::Blp => self.privacy = Privacy::from_stored(value),
                AccountField::Gtc => self.auto_allow = value == "N",
                AccountField::PersonalMessage => self.personal_message = value.clone(),
                AccountField::PasswordHash => {}
            },
            Change::BumpListVersion { account_id } if *account_id == me => self.version += 1,
            Change::SetProperty {
                account_id,
                name,
                value,
            } if *account_id == me => {
                self.properties.insert(name.clone(), value.clone());
            }
            Change::DeleteProperty { account_id, name } if *account_id == me => {
                self.properties.remove(name);
            }
            _ => {}
        }
    }
}

pub fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster() -> Roster {
        let account = AccountRow {
            id: 1,
            handle: "alice@example.com".into(),
            friendly_name: "Alice".into(),
            password_hash: String::new(),
            legacy_salt: None,
            legacy_digest: None,
            blp: "AL".into(),
            gtc: "A".into(),
            list_version: 0,
            personal_message: String::new(),
            created_at: 0,
        };
        Roster::from_rows(&account, RosterRows::default(), 3)
    }

    /// Plans against the current state, then applies (as the hub does after commit).
    fn edit(
        r: &mut Roster,
        plan: impl FnOnce(&Roster) -> Result<Vec<Change>, ListError>,
    ) -> Result<(), ListError> {
        let changes = plan(r)?;
        r.apply(&changes);
        Ok(())
    }

    #[test]
    fn allow_and_block_are_exclusive() {
        let mut r = roster();
        edit(&mut r, |r| {
            r.plan_add(List::Allow, "bob@example.com", "bob", None)
        })
        .unwrap();
        assert_eq!(
            r.plan_add(List::Allow, "bob@example.com", "bob", None),
            Err(ListError::AlreadyThere)
        );
        assert!(r.allows("bob@example.com"));
        // An add to the opposite list moves the contact, both ways.
        edit(&mut r, |r| {
            r.plan_add(List::Block, "bob@example.com", "bob", None)
        })
        .unwrap();
        let bob = r.contact("bob@example.com").unwrap();
        assert!(bob.is_on(List::Block) && !bob.is_on(List::Allow));
        assert_eq!(
            r.plan_remove(List::Allow, "bob@example.com", None),
            Err(ListError::NotOnList)
        );
        edit(&mut r, |r| {
            r.plan_add(List::Allow, "bob@example.com", "bob", None)
        })
        .unwrap();
        let bob = r.contact("bob@example.com").unwrap();
        assert!(bob.is_on(List::Allow) && !bob.is_on(List::Block));
        edit(&mut r, |r| {
            r.plan_remove(List::Allow, "bob@example.com", None)
        })
        .unwrap();
        edit(&mut r, |r| {
            r.plan_add(List::Block, "bob@example.com", "bob", None)
        })
        .unwrap();
        assert!(!r.allows("bob@example.com"));
        assert!(r.allows("carol@example.com"));
        edit(&mut r, |r| r.plan_privacy(Privacy::BlockUnlisted)).unwrap();
        assert!(!r.allows("carol@example.com"));
        assert_eq!(
            r.plan_privacy(Privacy::BlockUnlisted),
            Err(ListError::AlreadyInMode)
        );
        assert_eq!(r.version, 6);
    }

    #[test]
    fn groups_and_memberships() {
        let mut r = roster();
        let (changes, friends) = r.plan_add_group("Friends").unwrap();
        r.apply(&changes);
        assert_eq!(friends.number, 1);
        assert_eq!(
            r.plan_add_group("Friends").unwrap_err(),
            ListError::GroupNameExists
        );
        edit(&mut r, |r| {
            r.plan_add(List::Forward, "bob@example.com", "bob", Some(0))
        })
        .unwrap();
        assert_eq!(
            r.plan_add(List::Forward, "bob@example.com", "bob", None),
            Err(ListError::AlreadyThere)
        );
        edit(&mut r, |r| {
            r.plan_add(List::Forward, "bob@example.com", "bob", Some(1))
        })
        .unwrap();
        assert_eq!(
            r.plan_add(List::Forward, "bob@example.com", "bob", Some(1)),
            Err(ListError::AlreadyThere)
        );
        assert_eq!(
            r.plan_add(List::Forward, "x@example.com", "x", Some(9)),
            Err(ListError::InvalidGroup)
        );
        assert!(r.contact("bob@example.com").unwrap().groups.contains(&1));
        edit(&mut r, |r| {
            r.plan_remove(List::Forward, "bob@example.com", Some(1))
        })
        .unwrap();
        assert_eq!(
            r.plan_remove(List::Forward, "bob@example.com", Some(1)),
            Err(ListError::NotInGroup)
        );
        assert!(r.is_on("bob@example.com", List::Forward));
        assert_eq!(
            r.plan_remove_group(0),
            Err(ListError::CannotRemoveGroupZero)
        );
        edit(&mut r, |r| r.plan_remove_group(1)).unwrap();
        assert!(r.groups.is_empty());
        edit(&mut r, |r| {
            r.plan_remove(List::Forward, "bob@example.com", None)
        })
        .unwrap();
        assert!(r.contact("bob@example.com").is_none());
        assert_eq!(
            r.plan_remove(List::Forward, "bob@example.com", None),
            Err(ListError::NotOnList)
        );
    }

    #[test]
    fn group_zero_is_a_group_of_its_own_for_msnp7_to_9() {
        let mut r = roster();
        let (changes, _) = r.plan_add_group("Work").unwrap();
        r.apply(&changes);
        edit(&mut r, |r| {
            r.plan_add(List::Forward, "bob@example.com", "bob", Some(0))
        })
        .unwrap();
        assert_eq!(
            r.plan_add(List::Forward, "bob@example.com", "bob", Some(0)),
            Err(ListError::AlreadyThere)
        );
        // Move 0 → 1 the way MSN 6 and libpurple do it: add to 1, leave 0.
        edit(&mut r, |r| {
            r.plan_add(List::Forward, "bob@example.com", "bob", Some(1))
        })
        .unwrap();
        assert_eq!(
            r.contact("bob@example.com").unwrap().groups,
            BTreeSet::from([0, 1])
        );
        edit(&mut r, |r| {
            r.plan_remove(List::Forward, "bob@example.com", Some(0))
        })
        .unwrap();
        assert_eq!(
            r.contact("bob@example.com").unwrap().groups,
            BTreeSet::from([1])
        );
        // Leaving group 0 again, or an implied group 0, is harmless and changes nothing.
        assert_eq!(
            r.plan_remove(List::Forward, "bob@example.com", Some(0)),
            Ok(Vec::new())
        );
        // Leaving the last group keeps the contact (then shown in group 0).
        edit(&mut r, |r| {
            r.plan_remove(List::Forward, "bob@example.com", Some(1))
        })
        .unwrap();
        let bob = r.contact("bob@example.com").unwrap();
        assert!(bob.is_on(List::Forward) && bob.groups.is_empty() && bob.in_group(0));
        assert_eq!(
            r.plan_add(List::Forward, "bob@example.com", "bob", Some(0)),
            Err(ListError::AlreadyThere)
        );
    }

    #[test]
    fn limits() {
        let mut r = roster();
        for h in ["a@x.com", "b@x.com", "c@x.com"] {
            edit(&mut r, |r| r.plan_add(List::Forward, h, h, None)).unwrap();
        }
        assert_eq!(
            r.plan_add(List::Forward, "d@x.com", "d", None),
            Err(ListError::ListFull)
        );
        assert_eq!(
            r.plan_add(List::Reverse, "d@x.com", "d", None),
            Err(ListError::ReadOnlyList)
        );
        for i in 0..MAX_GROUPS {
            let (c, _) = r.plan_add_group(&format!("g{i}")).unwrap();
            r.apply(&c);
        }
        assert_eq!(
            r.plan_add_group("one more").unwrap_err(),
            ListError::TooManyGroups
        );
    }
}
