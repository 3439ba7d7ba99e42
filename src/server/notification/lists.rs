//! Contact lists: SYN dumps per dialect, ADD/ADC/REM, groups, names,
//! properties and privacy settings. Every reply is written only after the
//! change is committed to the database.

use super::presence::presence_fields;
use super::{Flow, NsConnection, decoded, encoded};
use crate::core::handle;
use crate::core::hub::{EditOutcome, HubError, RosterEdit};
use crate::core::roster::{FORWARD, List, ListError, Privacy, Roster};
use msnp::codec::Command;
use msnp::dialect::Dialect;
use msnp::error::ErrorCode;
use std::collections::BTreeMap;

/// Longest friendly name, URL-encoded (1999 draft §5.5).
const MAX_NAME_ENCODED: usize = 387;
/// Longest group name, URL-encoded.
const MAX_GROUP_NAME_ENCODED: usize = 61;
/// Longest phone-number property value.
const MAX_PROPERTY_LEN: usize = 95;
const PHONE_KEYS: &[&str] = &["PHH", "PHW", "PHM", "MOB", "MBE", "WWE"];

fn parse_list(code: &str) -> Option<List> {
    Some(match code {
        "FL" => List::Forward,
        "AL" => List::Allow,
        "BL" => List::Block,
        "RL" => List::Reverse,
        "PL" => List::Pending,
        _ => return None,
    })
}

fn list_code(list: List) -> &'static str {
    match list {
        List::Forward => "FL",
        List::Allow => "AL",
        List::Block => "BL",
        List::Reverse => "RL",
        List::Pending => "PL",
    }
}

/// A `SYN` timestamp standing for a list version (MSNP10+ has no versions).
fn version_timestamp(version: i64) -> String {
    let secs = version.clamp(0, 86_399);
    format!(
        "2005-01-01T{:02}:{:02}:{:02}.0000000-00:00",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

impl NsConnection {
    /// Runs an edit under the rate limit and maps refusals to error codes;
    /// `Err` carries what to do instead of replying.
    async fn edit(&mut self, trid: u32, edit: RosterEdit) -> Result<EditOutcome, Flow> {
        let Some(session) = self.session.clone() else {
            return Err(Flow::Close);
        };
        if !self.rate.allow() {
            return Err(self.reply_error(ErrorCode::RateLimited, trid));
        }
        match self.ctx.hub.edit(&session, edit).await {
            Ok(outcome) => Ok(outcome),
            Err(HubError::List(e)) => Err(match self.list_error(e) {
                Some(code) => self.reply_error(code, trid),
                None => Flow::Close,
            }),
            Err(HubError::Store(e)) => {
                tracing::error!(user = %session.handle, error = %e, "list change failed: database");
                Err(self.reply_error(ErrorCode::DatabaseError, trid))
            }
        }
    }

    fn list_error(&self, e: ListError) -> Option<ErrorCode> {
        let guids = self.dialect.uses_guids();
        Some(match e {
            ListError::InvalidHandle => ErrorCode::InvalidParameter,
            ListError::UnknownAccount if guids => ErrorCode::InvalidUsername,
            ListError::UnknownAccount => ErrorCode::InvalidUser,
            ListError::ListFull => ErrorCode::ListFull,
            ListError::AlreadyThere => ErrorCode::AlreadyThere,
            ListError::NotOnList => ErrorCode::NotOnList,
            ListError::InvalidGroup => ErrorCode::InvalidGroup,
            ListError::NotInGroup => ErrorCode::NotInGroup,
            ListError::TooManyGroups => ErrorCode::TooManyGroups,
            ListError::GroupNameExists => ErrorCode::GroupNameExists,
            ListError::CannotRemoveGroupZero if guids => ErrorCode::InvalidGroup,
            ListError::CannotRemoveGroupZero => ErrorCode::CannotRemoveGroupZero,
            ListError::AlreadyInMode => ErrorCode::AlreadyInMode,
            ListError::ReadOnlyList => return None,
        })
    }

    fn send_contact_presence(&mut self, trid: u32, outcome: &EditOutcome) {
        if let Some(p) = &outcome.contact_presence
            && self.presence_started
        {
            self.conn
                .send_line(&format!("ILN {trid} {}", presence_fields(p, self.dialect)));
            if self.dialect.has_personal_message() && !p.personal_message.is_empty() {
                let xml = super::presence::personal_data_xml(p);
                self.conn
                    .send_payload(&format!("UBX {}", p.handle), xml.as_bytes());
            }
        }
    }

    /// `LST trid FL|AL|BL|RL` and (P7) `LSG trid`: MSNP2–7 clients may ask
    /// for one list, or the groups, outside `SYN` (notification.md §2).
    pub(super) async fn list_request(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(session) = self.session.clone() else {
            return Flow::Close;
        };
        let d = self.dialect;
        let list = if cmd.name == "LSG" {
            None
        } else {
            match cmd.arg(1).and_then(parse_list) {
                Some(l @ (List::Forward | List::Allow | List::Block | List::Reverse)) => Some(l),
                _ => return self.reply_error(ErrorCode::InvalidParameter, trid),
            }
        };
        let wanted = list == Some(List::Forward) && d.has_phone_properties();
        let phones = match self.contacts_phones(&session, wanted).await {
            Ok(p) => p,
            Err(()) => return self.reply_error(ErrorCode::DatabaseError, trid),
        };
        let lines = self
            .ctx
            .hub
            .with_roster(&session, |r| match list {
                Some(list) => legacy_list_lines(r, d, trid, list, &phones),
                None => legacy_group_lines(r, trid),
            })
            .await;
        match lines {
            Ok(lines) => {
                for line in lines {
                    self.conn.send_line(&line);
                }
                Flow::Continue
            }
            Err(e) => {
                tracing::error!(user = %session.handle, error = %e, "LST failed");
                self.reply_error(ErrorCode::DatabaseError, trid)
            }
        }
    }

    /// The phone data each forward contact lets the user see, when `wanted`.
    async fn contacts_phones(
        &self,
        session: &crate::core::hub::Session,
        wanted: bool,
    ) -> Result<BTreeMap<String, Vec<(String, String)>>, ()> {
        if !wanted {
            return Ok(BTreeMap::new());
        }
        self.ctx
            .hub
            .contacts_phone_data(session)
            .await
            .map_err(|e| tracing::error!(user = %session.handle, error = %e, "cannot read contacts' phone data"))
    }

    pub(super) async fn syn(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(session) = self.session.clone() else {
            return Flow::Close;
        };
        // Reverse-list notices queued before the first SYN are in the dump:
        // drop them now, so none is sent twice.
        if !self.synced && self.render_events() == Flow::Close {
            return Flow::Close;
        }
        let client_version: Option<i64> = cmd.arg(1).and_then(|v| v.parse().ok());
        let d = self.dialect;
        let current = match self.ctx.hub.with_roster(&session, |r| r.version).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(user = %session.handle, error = %e, "SYN failed");
                return self.reply_error(ErrorCode::DatabaseError, trid);
            }
        };
        let short_form = !d.uses_guids() && client_version == Some(current);
        let wanted = d.has_phone_properties() && !short_form;
        let phones = match self.contacts_phones(&session, wanted).await {
            Ok(p) => p,
            Err(()) => return self.reply_error(ErrorCode::DatabaseError, trid),
        };
        let lines = self
            .ctx
            .hub
            .with_roster(&session, |roster| {
                syn_dump(roster, d, trid, client_version, &phones)
            })
            .await;
        match lines {
            Ok(lines) => {
                for line in lines {
                    self.conn.send_line(&line);
                }
                self.synced = true;
                Flow::Continue
            }
            Err(e) => {
                tracing::error!(user = %session.handle, error = %e, "SYN failed");
                self.reply_error(ErrorCode::DatabaseError, trid)
            }
        }
    }

    /// The `BPR` lines that follow a successful `ADD`/`ADC` to the forward
    /// list (MSNP5+, once the client has its list): the contact's phone data,
    /// blank unless the contact allows the user.
    fn send_new_contact_phone_data(&mut self, handle: &str, outcome: &EditOutcome) {
        if !outcome.joined_forward || !self.dialect.has_phone_properties() || !self.synced {
            return;
        }
        let prefix = if self.dialect.uses_guids() {
            format!("BPR {handle}")
        } else {
            format!("BPR {} {handle}", outcome.version)
        };
        for key in ["PHH", "PHW", "PHM", "MOB"] {
            let value = outcome
                .contact_phone
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str());
            let line = match (key, value) {
                (_, Some(v)) => format!("{prefix} {key} {}", encoded(v)),
                ("MOB", None) => format!("{prefix} MOB N"),
                (_, None) => format!("{prefix} {key}"),
            };
            self.conn.send_line(&line);
        }
    }

    /// ADD (MSNP2–9): `ADD trid FL|AL|BL handle name [group]`.
    pub(super) async fn add(&mut self, trid: u32, cmd: &Command) -> Flow {
        let (Some(list), Some(raw_handle)) = (cmd.arg(1).and_then(parse_list), cmd.arg(2)) else {
            return Flow::Close;
        };
        if matches!(list, List::Reverse | List::Pending) {
            return Flow::Close;
        }
        let raw_name = cmd.arg(3).unwrap_or(raw_handle);
        if raw_name.len() > MAX_NAME_ENCODED {
            return Flow::Close;
        }
        let Some(handle) = handle::normalize(raw_handle) else {
            return self.reply_error(ErrorCode::InvalidParameter, trid);
        };
        let group = if list == List::Forward && self.dialect.has_groups() {
            match cmd.arg(4).map(str::parse::<i64>) {
                None => Some(0),
                Some(Ok(g)) if g >= 0 => Some(g),
                Some(_) => return self.reply_error(ErrorCode::InvalidGroup, trid),
            }
        } else {
            None
        };
        let edit = RosterEdit::Add {
            list,
            handle: handle.clone(),
            stored_name: decoded(raw_name),
            group,
        };
        let outcome = match self.edit(trid, edit).await {
            Ok(o) => o,
            Err(flow) => return flow,
        };
        let mut line = format!(
            "ADD {trid} {} {} {handle} {}",
            list_code(list),
            outcome.version,
            encoded(&decoded(raw_name))
        );
        if let Some(g) = group {
            line.push_str(&format!(" {g}"));
        }
        self.conn.send_line(&line);
        self.send_new_contact_phone_data(&handle, &outcome);
        self.send_contact_presence(trid, &outcome);
        Flow::Continue
    }

    /// ADC (MSNP10–12): `ADC trid FL N=handle [F=name]`, `ADC trid FL C=guid group-guid`,
    /// `ADC trid AL|BL N=handle`.
    pub(super) async fn adc(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(list) = cmd.arg(1).and_then(parse_list) else {
            return Flow::Close;
        };
        if matches!(list, List::Reverse | List::Pending) {
            return Flow::Close;
        }
        let field = |prefix: &str| {
            cmd.args
                .iter()
                .skip(2)
                .find_map(|a| a.strip_prefix(prefix).map(str::to_string))
        };
        if let (List::Forward, Some(guid), Some(group_guid)) = (list, field("C="), cmd.arg(3)) {
            let Some(session) = self.session.clone() else {
                return Flow::Close;
            };
            let guid_c = guid.clone();
            let group_g = group_guid.to_string();
            let found = self
                .ctx
                .hub
                .with_roster(&session, move |r| {
                    (
                        // Only forward contacts have a GUID the client knows.
                        r.contact_by_guid(&guid_c)
                            .filter(|c| c.is_on(List::Forward))
                            .map(|c| c.handle.clone()),
                        r.group_by_guid(&group_g).map(|g| g.number),
                    )
                })
                .await;
            let (handle, group) = match found {
                Ok((Some(h), Some(g))) => (h, g),
                Ok((None, _)) => return self.reply_error(ErrorCode::InvalidUsername, trid),
                Ok((_, None)) => return self.reply_error(ErrorCode::InvalidGroup, trid),
                Err(_) => return self.reply_error(ErrorCode::DatabaseError, trid),
            };
            let edit = RosterEdit::Add {
                list,
                handle: handle.clone(),
                stored_name: handle,
                group: Some(group),
            };
            if let Err(flow) = self.edit(trid, edit).await {
                return flow;
            }
            self.conn
                .send_line(&format!("ADC {trid} FL C={guid} {group_guid}"));
            return Flow::Continue;
        }
        let Some(raw_handle) = field("N=") else {
            return Flow::Close;
        };
        let Some(handle) = handle::normalize(&raw_handle) else {
            return self.reply_error(ErrorCode::InvalidParameter, trid);
        };
        let name = field("F=").map(|f| decoded(&f)).unwrap_or_default();
        if encoded(&name).len() > MAX_NAME_ENCODED {
            return Flow::Close;
        }
        let stored = if name.is_empty() {
            handle.clone()
        } else {
            name.clone()
        };
        // MSNP10+ has no group 0: a new contact is in no group.
        let outcome = match self
            .edit(
                trid,
                RosterEdit::Add {
                    list,
                    handle: handle.clone(),
                    stored_name: stored,
                    group: None,
                },
            )
            .await
        {
            Ok(o) => o,
            Err(flow) => return flow,
        };
        let line = if list == List::Forward {
            let guid = outcome
                .contact
                .as_ref()
                .map(|c| c.guid.clone())
                .unwrap_or_default();
            if name.is_empty() {
                format!("ADC {trid} FL N={handle} C={guid}")
            } else {
                format!("ADC {trid} FL N={handle} F={} C={guid}", encoded(&name))
            }
        } else {
            format!("ADC {trid} {} N={handle}", list_code(list))
        };
        self.conn.send_line(&line);
        self.send_new_contact_phone_data(&handle, &outcome);
        self.send_contact_presence(trid, &outcome);
        Flow::Continue
    }

    /// REM: `REM trid LIST handle [group]` (MSNP2–9); `REM trid FL guid [group-guid]`
    /// or `REM trid AL|BL|PL handle` (MSNP10–12).
    pub(super) async fn rem(&mut self, trid: u32, cmd: &Command) -> Flow {
        let (Some(list), Some(target)) = (cmd.arg(1).and_then(parse_list), cmd.arg(2)) else {
            return Flow::Close;
        };
        if list == List::Reverse || (list == List::Pending && !self.dialect.uses_guids()) {
            return Flow::Close;
        }
        let Some(session) = self.session.clone() else {
            return Flow::Close;
        };
        let group_arg = cmd.arg(3).map(str::to_string);
        let (handle, group) = if self.dialect.uses_guids() && list == List::Forward {
            let target_s = target.to_string();
            let group_s = group_arg.clone();
            let found = self
                .ctx
                .hub
                .with_roster(&session, move |r| {
                    let handle = r
                        .contact_by_guid(&target_s)
                        .map(|c| c.handle.clone())
                        .or_else(|| handle::normalize(&target_s));
                    let group = group_s.map(|g| r.group_by_guid(&g).map(|g| g.number));
                    (handle, group)
                })
                .await;
            match found {
                Ok((Some(h), None)) => (h, None),
                Ok((Some(h), Some(Some(g)))) => (h, Some(g)),
                Ok((Some(_), Some(None))) => {
                    return self.reply_error(ErrorCode::InvalidGroup, trid);
                }
                Ok((None, _)) => return self.reply_error(ErrorCode::NotOnList, trid),
                Err(_) => return self.reply_error(ErrorCode::DatabaseError, trid),
            }
        } else {
            let Some(handle) = handle::normalize(target) else {
                return self.reply_error(ErrorCode::InvalidParameter, trid);
            };
            let group = match (&group_arg, list) {
                (Some(g), List::Forward) if self.dialect.has_groups() => match g.parse::<i64>() {
                    Ok(g) => Some(g),
                    Err(_) => return self.reply_error(ErrorCode::InvalidGroup, trid),
                },
                _ => None,
            };
            (handle, group)
        };
        let outcome = match self
            .edit(
                trid,
                RosterEdit::Remove {
                    list,
                    handle: handle.clone(),
                    group,
                },
            )
            .await
        {
            Ok(o) => o,
            Err(flow) => return flow,
        };
        let mut line = if self.dialect.uses_guids() {
            format!("REM {trid} {} {target}", list_code(list))
        } else {
            format!(
                "REM {trid} {} {} {handle}",
                list_code(list),
                outcome.version
            )
        };
        if let Some(g) = &group_arg
            && list == List::Forward
        {
            line.push(' ');
            line.push_str(g);
        }
        self.conn.send_line(&line);
        Flow::Continue
    }

    pub(super) async fn adg(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(raw) = cmd.arg(1) else {
            return Flow::Close;
        };
        let name = decoded(raw);
        if name.is_empty() {
            return self.reply_error(ErrorCode::InvalidParameter, trid);
        }
        if encoded(&name).len() > MAX_GROUP_NAME_ENCODED {
            return self.reply_error(ErrorCode::GroupNameTooLong, trid);
        }
        let outcome = match self
            .edit(trid, RosterEdit::AddGroup { name: name.clone() })
            .await
        {
            Ok(o) => o,
            Err(flow) => return flow,
        };
        let Some(group) = outcome.group else {
            return self.reply_error(ErrorCode::InternalError, trid);
        };
        let line = if self.dialect.uses_guids() {
            format!("ADG {trid} {} {}", encoded(&name), group.guid)
        } else {
            format!(
                "ADG {trid} {} {} {} 0",
                outcome.version,
                encoded(&name),
                group.number
            )
        };
        self.conn.send_line(&line);
        Flow::Continue
    }

    /// Resolves a group reference: a number (MSNP7–9) or a GUID (MSNP10+; MSN
    /// 7.0 sometimes sends the name of a group it just created instead).
    async fn group_ref(&mut self, raw: &str) -> Result<Option<i64>, Flow> {
        if !self.dialect.uses_guids() {
            return raw.parse::<i64>().map(Some).map_err(|_| Flow::Close);
        }
        let Some(session) = self.session.clone() else {
            return Err(Flow::Close);
        };
        let raw = raw.to_string();
        self.ctx
            .hub
            .with_roster(&session, move |r| {
                r.group_by_guid(&raw)
                    .or_else(|| r.group_by_name(&decoded(&raw)))
                    .map(|g| g.number)
            })
            .await
            .map_err(|_| Flow::Close)
    }

    pub(super) async fn rmg(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(raw) = cmd.arg(1) else {
            return Flow::Close;
        };
        let number = match self.group_ref(raw).await {
            Ok(Some(n)) => n,
            Ok(None) => return self.reply_error(ErrorCode::InvalidGroup, trid),
            Err(flow) => return flow,
        };
        let outcome = match self.edit(trid, RosterEdit::RemoveGroup { number }).await {
            Ok(o) => o,
            Err(flow) => return flow,
        };
        let line = if self.dialect.uses_guids() {
            format!(
                "RMG {trid} 1 {}",
                outcome
                    .group
                    .map(|g| g.guid)
                    .unwrap_or_else(|| raw.to_string())
            )
        } else {
            format!("RMG {trid} {} {number}", outcome.version)
        };
        self.conn.send_line(&line);
        Flow::Continue
    }

    pub(super) async fn reg(&mut self, trid: u32, cmd: &Command) -> Flow {
        let (Some(raw_group), Some(raw_name)) = (cmd.arg(1), cmd.arg(2)) else {
            return Flow::Close;
        };
        let name = decoded(raw_name);
        if name.is_empty() {
            return self.reply_error(ErrorCode::InvalidParameter, trid);
        }
        if encoded(&name).len() > MAX_GROUP_NAME_ENCODED {
            return self.reply_error(ErrorCode::GroupNameTooLong, trid);
        }
        let number = match self.group_ref(raw_group).await {
            Ok(Some(n)) => n,
            Ok(None) => return self.reply_error(ErrorCode::InvalidGroup, trid),
            Err(flow) => return flow,
        };
        let outcome = match self
            .edit(
                trid,
                RosterEdit::RenameGroup {
                    number,
                    name: name.clone(),
                },
            )
            .await
        {
            Ok(o) => o,
            Err(flow) => return flow,
        };
        let line = if self.dialect.uses_guids() {
            let guid = outcome.group.map(|g| g.guid).unwrap_or_default();
            format!("REG {trid} 1 {} {guid} 0", encoded(&name))
        } else {
            format!(
                "REG {trid} {} {number} {} 0",
                outcome.version,
                encoded(&name)
            )
        };
        self.conn.send_line(&line);
        Flow::Continue
    }

    /// REA (MSNP2–9): renames the user (own handle) or a contact's stored name.
    pub(super) async fn rea(&mut self, trid: u32, cmd: &Command) -> Flow {
        let (Some(raw_handle), Some(raw_name)) = (cmd.arg(1), cmd.arg(2)) else {
            return Flow::Close;
        };
        if raw_name.len() > MAX_NAME_ENCODED {
            return Flow::Close;
        }
        let name = decoded(raw_name);
        let Some(handle) = handle::normalize(raw_handle) else {
            return self.reply_error(ErrorCode::InvalidParameter, trid);
        };
        let Some(session) = self.session.clone() else {
            return Flow::Close;
        };
        let version = if *session.handle == *handle {
            match self.set_own_name(trid, &name).await {
                Ok(v) => v,
                Err(flow) => return flow,
            }
        } else {
            match self
                .edit(
                    trid,
                    RosterEdit::SetStoredName {
                        handle: handle.clone(),
                        name: name.clone(),
                    },
                )
                .await
            {
                Ok(o) => o.version,
                Err(flow) => return flow,
            }
        };
        self.conn
            .send_line(&format!("REA {trid} {version} {handle} {}", encoded(&name)));
        Flow::Continue
    }

    async fn set_own_name(&mut self, trid: u32, name: &str) -> Result<i64, Flow> {
        let Some(session) = self.session.clone() else {
            return Err(Flow::Close);
        };
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(self.reply_error(ErrorCode::InvalidFriendlyName, trid));
        }
        if !self.rate.allow() {
            return Err(self.reply_error(ErrorCode::RateLimited, trid));
        }
        self.ctx
            .hub
            .set_friendly_name(&session, name)
            .await
            .map_err(|e| {
                tracing::error!(user = %session.handle, error = %e, "rename failed");
                self.reply_error(ErrorCode::DatabaseError, trid)
            })
    }

    /// PRP: own phone properties (MSNP5+) and friendly name (`MFN`, MSNP10+).
    pub(super) async fn prp(&mut self, trid: u32, cmd: &Command) -> Flow {
        // PRP arrived with MSNP5: to older dialects it is an unknown command.
        if !self.dialect.has_phone_properties() {
            return Flow::Close;
        }
        let Some(key) = cmd.arg(1) else {
            return Flow::Close;
        };
        let raw_value = cmd.arg(2).unwrap_or("");
        if key == "MFN" {
            if !self.dialect.uses_guids() {
                return self.reply_error(ErrorCode::NotExpected, trid);
            }
            if raw_value.len() > MAX_NAME_ENCODED {
                return Flow::Close;
            }
            let name = decoded(raw_value);
            if let Err(flow) = self.set_own_name(trid, &name).await {
                return flow;
            }
            self.conn
                .send_line(&format!("PRP {trid} MFN {}", encoded(&name)));
            return Flow::Continue;
        }
        if !PHONE_KEYS.contains(&key) {
            return self.reply_error(ErrorCode::InvalidParameter, trid);
        }
        let value = decoded(raw_value);
        if value.chars().count() > MAX_PROPERTY_LEN {
            return Flow::Close;
        }
        let edit = RosterEdit::SetProperty {
            name: key.to_string(),
            value: Some(value.clone()).filter(|v| !v.is_empty()),
        };
        let outcome = match self.edit(trid, edit).await {
            Ok(o) => o,
            Err(flow) => return flow,
        };
        let shown = if value.is_empty() {
            String::new()
        } else {
            format!(" {}", encoded(&value))
        };
        let line = if self.dialect.uses_guids() {
            format!("PRP {trid} {key}{shown}")
        } else {
            format!("PRP {trid} {} {key}{shown}", outcome.version)
        };
        self.conn.send_line(&line);
        Flow::Continue
    }

    /// SBP (MSNP10–12): a contact's properties; `MFN` is its stored name.
    pub(super) async fn sbp(&mut self, trid: u32, cmd: &Command) -> Flow {
        let (Some(guid), Some(key)) = (cmd.arg(1), cmd.arg(2)) else {
            return Flow::Close;
        };
        let raw_value = cmd.arg(3).unwrap_or("");
        let Some(session) = self.session.clone() else {
            return Flow::Close;
        };
        let guid_s = guid.to_string();
        let handle = match self
            .ctx
            .hub
            .with_roster(&session, move |r| {
                r.contact_by_guid(&guid_s).map(|c| c.handle.clone())
            })
            .await
        {
            Ok(Some(h)) => h,
            Ok(None) => return self.reply_error(ErrorCode::InvalidUsername, trid),
            Err(_) => return self.reply_error(ErrorCode::DatabaseError, trid),
        };
        if key == "MFN" {
            if raw_value.len() > MAX_NAME_ENCODED {
                return Flow::Close;
            }
            let edit = RosterEdit::SetStoredName {
                handle,
                name: decoded(raw_value),
            };
            if let Err(flow) = self.edit(trid, edit).await {
                return flow;
            }
        }
        self.conn
            .send_line(&format!("SBP {trid} {guid} {key} {raw_value}"));
        Flow::Continue
    }

    pub(super) async fn blp(&mut self, trid: u32, cmd: &Command) -> Flow {
        let privacy = match cmd.arg(1) {
            Some("AL") => Privacy::AllowUnlisted,
            Some("BL") => Privacy::BlockUnlisted,
            _ => return self.reply_error(ErrorCode::InvalidParameter, trid),
        };
        let outcome = match self.edit(trid, RosterEdit::SetPrivacy(privacy)).await {
            Ok(o) => o,
            Err(flow) => return flow,
        };
        let code = privacy.as_stored();
        let line = if self.dialect.uses_guids() {
            format!("BLP {trid} {code}")
        } else {
            format!("BLP {trid} {} {code}", outcome.version)
        };
        self.conn.send_line(&line);
        Flow::Continue
    }

    pub(super) async fn gtc(&mut self, trid: u32, cmd: &Command) -> Flow {
        let auto_allow = match cmd.arg(1) {
            Some("A") => false,
            Some("N") => true,
            _ => return self.reply_error(ErrorCode::InvalidParameter, trid),
        };
        let outcome = match self.edit(trid, RosterEdit::SetAutoAllow(auto_allow)).await {
            Ok(o) => o,
            Err(flow) => return flow,
        };
        let code = if auto_allow { "N" } else { "A" };
        let line = if self.dialect.uses_guids() {
            format!("GTC {trid} {code}")
        } else {
            format!("GTC {trid} {} {code}", outcome.version)
        };
        self.conn.send_line(&line);
        Flow::Continue
    }
}

/// The `SYN` reply in `dialect`: the short form when the client's cached
/// version is current (MSNP2–9), else the whole list. `phones` holds the
/// phone data each forward contact lets the user see (`BPR` lines, MSNP5+).
pub(crate) fn syn_dump(
    r: &Roster,
    d: Dialect,
    trid: u32,
    client_version: Option<i64>,
    phones: &BTreeMap<String, Vec<(String, String)>>,
) -> Vec<String> {
    let mut out = Vec::new();
    let gtc = if r.auto_allow { "N" } else { "A" };
    let blp = r.privacy.as_stored();
    let v = r.version;
    // P8+: `BPR key value` lines right after the contact's `LST` line.
    let short_bpr = |out: &mut Vec<String>, c: &crate::core::roster::Contact| {
        if c.lists & FORWARD != 0 && d.has_phone_properties() {
            for (key, value) in phones.get(&c.handle).into_iter().flatten() {
                out.push(format!("BPR {key} {}", encoded(value)));
            }
        }
    };
    if d.uses_guids() {
        let ts = version_timestamp(v);
        out.push(format!(
            "SYN {trid} {ts} {ts} {} {}",
            r.contacts.len(),
            r.groups.len()
        ));
        out.push(format!("GTC {gtc}"));
        out.push(format!("BLP {blp}"));
        out.push(format!("PRP MFN {}", encoded(&r.friendly_name)));
        for (key, value) in &r.properties {
            out.push(format!("PRP {key} {}", encoded(value)));
        }
        for g in r.groups.values() {
            out.push(format!("LSG {} {}", encoded(&g.name), g.guid));
        }
        for c in r.contacts.values() {
            let mut line = format!("LST N={} F={}", c.handle, encoded(&c.stored_name));
            if c.lists & FORWARD != 0 {
                line.push_str(&format!(" C={}", c.guid));
            }
            line.push_str(&format!(" {}", c.lists));
            if d.has_network_ids() {
                line.push_str(" 1");
            }
            // Group 0 (an MSNP7–9 notion) has no GUID and is left out.
            let guids: Vec<&str> = c
                .groups
                .iter()
                .filter_map(|n| r.groups.get(n))
                .map(|g| g.guid.as_str())
                .collect();
            if c.lists & FORWARD != 0 && !guids.is_empty() {
                line.push_str(&format!(" {}", guids.join(",")));
            }
            out.push(line);
            short_bpr(&mut out, c);
        }
        return out;
    }
    if client_version == Some(v) {
        out.push(format!("SYN {trid} {v}"));
        return out;
    }
    if d.has_capabilities() {
        out.push(format!(
            "SYN {trid} {v} {} {}",
            r.contacts.len(),
            r.groups.len() + 1
        ));
        out.push(format!("GTC {gtc}"));
        out.push(format!("BLP {blp}"));
        for (key, value) in &r.properties {
            out.push(format!("PRP {key} {}", encoded(value)));
        }
        out.push("LSG 0 Other%20Contacts 0".into());
        for g in r.groups.values() {
            out.push(format!("LSG {} {} 0", g.number, encoded(&g.name)));
        }
        for c in r.contacts.values() {
            let mut line = format!("LST {} {} {}", c.handle, encoded(&c.stored_name), c.lists);
            if c.lists & FORWARD != 0 {
                line.push_str(&format!(" {}", contact_group_ids(c)));
            }
            out.push(line);
            short_bpr(&mut out, c);
        }
        return out;
    }
    out.push(format!("SYN {trid} {v}"));
    out.push(format!("GTC {trid} {v} {gtc}"));
    out.push(format!("BLP {trid} {v} {blp}"));
    if d.has_phone_properties() {
        for (key, value) in &r.properties {
            out.push(format!("PRP {trid} {v} {key} {}", encoded(value)));
        }
    }
    if d.has_groups() {
        out.extend(legacy_group_lines(r, trid));
    }
    for list in [List::Forward, List::Allow, List::Block, List::Reverse] {
        out.extend(legacy_list_lines(r, d, trid, list, phones));
    }
    out
}

/// A forward contact's group numbers in MSNP7–9 form (`0` for none).
fn contact_group_ids(c: &crate::core::roster::Contact) -> String {
    if c.groups.is_empty() {
        "0".into()
    } else {
        c.groups
            .iter()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// MSNP7 `LSG` lines with list versions, group 0 first (in the dump and
/// answering a client's `LSG`).
fn legacy_group_lines(r: &Roster, trid: u32) -> Vec<String> {
    let v = r.version;
    let total = r.groups.len() + 1;
    let mut out = vec![format!("LSG {trid} {v} 1 {total} 0 Other%20Contacts 0")];
    for (i, g) in r.groups.values().enumerate() {
        out.push(format!(
            "LSG {trid} {v} {} {total} {} {} 0",
            i + 2,
            g.number,
            encoded(&g.name)
        ));
    }
    out
}

/// MSNP2–7 `LST` lines of one list (in the dump and answering a client's
/// `LST`), with the contacts' `BPR` lines after FL entries (P5–7).
fn legacy_list_lines(
    r: &Roster,
    d: Dialect,
    trid: u32,
    list: List,
    phones: &BTreeMap<String, Vec<(String, String)>>,
) -> Vec<String> {
    let v = r.version;
    let code = list_code(list);
    let members: Vec<_> = r.list_members(list).collect();
    if members.is_empty() {
        return vec![format!("LST {trid} {code} {v} 0 0")];
    }
    let total = members.len();
    let mut out = Vec::with_capacity(total);
    for (i, c) in members.into_iter().enumerate() {
        let mut line = format!(
            "LST {trid} {code} {v} {} {total} {} {}",
            i + 1,
            c.handle,
            encoded(&c.stored_name)
        );
        if list == List::Forward && d.has_groups() {
            line.push_str(&format!(" {}", contact_group_ids(c)));
        }
        out.push(line);
        if list == List::Forward && d.has_phone_properties() {
            for (key, value) in phones.get(&c.handle).into_iter().flatten() {
                out.push(format!("BPR {v} {} {key} {}", c.handle, encoded(value)));
            }
        }
    }
    out
}
