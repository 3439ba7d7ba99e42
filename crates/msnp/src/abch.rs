//! The SOAP documents of the WLM contact-list services (MSNP13+): the
//! address book (`abservice.asmx`: `ABFindAll`, `ABFindContactsPaged`,
//! `ABAdd`, `ABContact*`, `ABGroup*`) and the sharing service
//! (`SharingService.asmx`: `FindMembership`, `AddMember`, `DeleteMember`),
//! plus the storage service's `GetProfile`, as pure string work.
//!
//! Reading reuses the liberal, bounded primitives of [`crate::soap`]:
//! elements are found by local name whatever their prefix, and at most
//! [`MAX_ITEMS`] contacts, groups or members are read from one request.
//! The operation is the local name of the first child of `Body` (as
//! Escargot does), falling back to the `SOAPAction` header's last segment.
//!
//! Rendering is exact and has no whitespace between elements (WLM-era
//! clients' parsers crash on indented documents).

use crate::soap::{Element, find_elements, iso8601};
use crate::xml::escape;
use std::fmt::Write as _;

/// The AddressBook namespace of every request and response body.
pub const NS_AB: &str = "http://www.msn.com/webservices/AddressBook";
/// The all-zero id of the user's own (only) address book.
pub const DEFAULT_AB_ID: &str = "00000000-0000-0000-0000-000000000000";
/// Most contacts, groups or members read from one request.
pub const MAX_ITEMS: usize = 64;
/// Longest text (a name, an address) kept from a request, in characters.
pub const MAX_TEXT: usize = 256;

// ---------------------------------------------------------------------------
// Requests

/// A Sharing role, and the list it stands for (address-book.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// AL.
    Allow,
    /// BL.
    Block,
    /// RL (maintained by the server).
    Reverse,
    /// PL.
    Pending,
}

impl Role {
    /// Every role, in the order `FindMembership` answers them.
    pub const ALL: [Role; 4] = [Role::Allow, Role::Block, Role::Reverse, Role::Pending];

    pub fn name(self) -> &'static str {
        match self {
            Role::Allow => "Allow",
            Role::Block => "Block",
            Role::Reverse => "Reverse",
            Role::Pending => "Pending",
        }
    }

    /// Reads a `MemberRole` (case-insensitively); other roles (`ProfileExpression`, …) are `None`.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(text.trim()))
    }
}

/// Who a `Member` of `AddMember`/`DeleteMember` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRef {
    /// `PassportName` or `Email`.
    Address(String),
    /// `MembershipId`, as a number or Escargot's `Role/<id>` form.
    MembershipId(u64),
}

/// One `Membership` of an `AddMember`/`DeleteMember`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipEdit {
    pub role: Role,
    pub members: Vec<MemberRef>,
}

/// A contact of `ABContactAdd` (or `ABGroupContactAdd` by address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    /// `contactInfo/passportName` (or the first `emails/ContactEmail/email`), trimmed.
    pub address: String,
    /// The `AB.NickName` annotation, else `displayName`, if any.
    pub name: Option<String>,
}

/// A contact of `ABContactUpdate`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactUpdate {
    /// `contactId`, if given.
    pub contact_id: Option<String>,
    /// `contactInfo/contactType` is `Me`: the owner's own entry.
    pub is_me: bool,
    /// `contactInfo/displayName`, if present.
    pub display_name: Option<String>,
    /// The `AB.NickName` annotation, if present.
    pub nickname: Option<String>,
    /// Every `contactInfo/annotations/Annotation` (name, value).
    pub annotations: Vec<(String, String)>,
    /// `propertiesChanged`, split at spaces.
    pub properties_changed: Vec<String>,
}

/// A contact named by `ABGroupContactAdd`/`ABGroupContactDelete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactRef {
    Id(String),
    Address(NewContact),
}

/// What an address-book or sharing request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    FindMembership {
        deltas_only: bool,
    },
    AbFindAll {
        deltas_only: bool,
    },
    AbFindContactsPaged {
        deltas_only: bool,
        /// `abHandle/ABId` when it names another book (a circle).
        other_book: Option<String>,
    },
    AbAdd,
    ContactAdd(Vec<NewContact>),
    ContactDelete(Vec<String>),
    ContactUpdate(Vec<ContactUpdate>),
    GroupAdd {
        name: String,
    },
    GroupDelete(Vec<String>),
    /// (groupId, new name).
    GroupUpdate(Vec<(String, String)>),
    GroupContactAdd {
        group_ids: Vec<String>,
        contacts: Vec<ContactRef>,
    },
    GroupContactDelete {
        group_ids: Vec<String>,
        contact_ids: Vec<String>,
    },
    AddMember(Vec<MembershipEdit>),
    DeleteMember(Vec<MembershipEdit>),
}

/// Why a request could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// No `Body` with an element in it.
    NoBody,
    /// An operation this module does not know (its local name, truncated).
    Unsupported(String),
    /// A known operation without something it needs.
    Missing(&'static str),
}

/// A parsed request with the ticket it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `TicketToken` of `ABAuthHeader` / `StorageUserHeader` (entities decoded, trimmed).
    pub ticket_token: Option<String>,
    /// The operation's local name, as sent.
    pub operation: String,
}

/// The `TicketToken` and the operation (first element of `Body`, else the
/// last path segment of `soap_action`) of any of the WLM SOAP services.
pub fn envelope(soap_action: Option<&str>, xml: &str) -> Result<Envelope, ParseError> {
    let ticket_token = first(xml, "TicketToken")
        .map(|t| t.text().trim().to_string())
        .filter(|t| !t.is_empty());
    let operation = find_elements(xml, "Body")
        .next()
        .and_then(|body| first_child_name(body.inner))
        .or_else(|| {
            soap_action
                .map(|a| a.trim().trim_matches('"'))
                .and_then(|a| a.rsplit('/').next())
                .filter(|a| !a.is_empty())
                .map(str::to_string)
        })
        .ok_or(ParseError::NoBody)?;
    Ok(Envelope {
        ticket_token,
        operation,
    })
}

/// Reads an address-book or sharing request.
pub fn parse(soap_action: Option<&str>, xml: &str) -> Result<(Envelope, Request), ParseError> {
    let envelope = envelope(soap_action, xml)?;
    let body = find_elements(xml, "Body").next().map_or(xml, |b| b.inner);
    let request = match envelope.operation.as_str() {
        "FindMembership" => Request::FindMembership {
            deltas_only: deltas_only(body),
        },
        "ABFindAll" => Request::AbFindAll {
            deltas_only: deltas_only(body),
        },
        "ABFindContactsPaged" => Request::AbFindContactsPaged {
            deltas_only: deltas_only(body),
            other_book: first(body, "abHandle")
                .and_then(|h| first(h.inner, "ABId"))
                .map(|id| id.text().trim().to_string())
                .filter(|id| !id.is_empty() && id != DEFAULT_AB_ID),
        },
        "ABAdd" => Request::AbAdd,
        "ABContactAdd" => {
            let contacts: Vec<NewContact> = contacts(body).filter_map(new_contact).collect();
            if contacts.is_empty() {
                return Err(ParseError::Missing(
                    "contacts/Contact/contactInfo/passportName",
                ));
            }
            Request::ContactAdd(contacts)
        }
        "ABContactDelete" => {
            let ids: Vec<String> = contacts(body).filter_map(contact_id).collect();
            if ids.is_empty() {
                return Err(ParseError::Missing("contacts/Contact/contactId"));
            }
            Request::ContactDelete(ids)
        }
        "ABContactUpdate" => {
            let updates: Vec<ContactUpdate> = contacts(body).map(contact_update).collect();
            if updates.is_empty() {
                return Err(ParseError::Missing("contacts/Contact"));
            }
            Request::ContactUpdate(updates)
        }
        "ABGroupAdd" => {
            let info = first(body, "groupInfo").map_or(body, |g| g.inner);
            let name = first(info, "name")
                .map(|n| bounded(n.text().trim()))
                .filter(|n| !n.is_empty())
                .ok_or(ParseError::Missing("groupInfo/GroupInfo/name"))?;
            Request::GroupAdd { name }
        }
        "ABGroupDelete" => {
            let ids = group_ids(body);
            if ids.is_empty() {
                return Err(ParseError::Missing("groupFilter/groupIds/guid"));
            }
            Request::GroupDelete(ids)
        }
        "ABGroupUpdate" => {
            let groups: Vec<(String, String)> = find_elements(body, "Group")
                .take(MAX_ITEMS)
                .filter_map(|g| {
                    let id = first(g.inner, "groupId").map(|i| i.text().trim().to_string())?;
                    let name = first(g.inner, "name").map(|n| bounded(n.text().trim()))?;
                    (!id.is_empty() && !name.is_empty()).then_some((id, name))
                })
                .collect();
            if groups.is_empty() {
                return Err(ParseError::Missing("groups/Group/groupId and name"));
            }
            Request::GroupUpdate(groups)
        }
        "ABGroupContactAdd" => {
            let group_ids = group_ids(body);
            let contacts: Vec<ContactRef> = contacts(body)
                .filter_map(|c| {
                    contact_id(c)
                        .map(ContactRef::Id)
                        .or_else(|| new_contact(c).map(ContactRef::Address))
                })
                .collect();
            if group_ids.is_empty() || contacts.is_empty() {
                return Err(ParseError::Missing(
                    "groupFilter/groupIds/guid and contacts",
                ));
            }
            Request::GroupContactAdd {
                group_ids,
                contacts,
            }
        }
        "ABGroupContactDelete" => {
            let group_ids = group_ids(body);
            let contact_ids: Vec<String> = contacts(body).filter_map(contact_id).collect();
            if group_ids.is_empty() || contact_ids.is_empty() {
                return Err(ParseError::Missing(
                    "groupFilter/groupIds/guid and contactId",
                ));
            }
            Request::GroupContactDelete {
                group_ids,
                contact_ids,
            }
        }
        "AddMember" => Request::AddMember(memberships(body)),
        "DeleteMember" => Request::DeleteMember(memberships(body)),
        other => return Err(ParseError::Unsupported(other.chars().take(64).collect())),
    };
    Ok((envelope, request))
}

fn first<'a>(xml: &'a str, local: &'a str) -> Option<Element<'a>> {
    find_elements(xml, local).next()
}

fn bounded(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// The local name of the first element in `xml` (comments, declarations skipped).
fn first_child_name(xml: &str) -> Option<String> {
    let mut rest = xml;
    loop {
        let start = rest.find('<')?;
        rest = &rest[start + 1..];
        if rest.starts_with(['!', '?', '/']) {
            continue;
        }
        let end = rest
            .bytes()
            .take(128)
            .position(|b| b.is_ascii_whitespace() || b == b'>' || b == b'/')?;
        let qname = &rest[..end];
        let local = qname.rsplit(':').next().unwrap_or(qname);
        return (!local.is_empty()).then(|| local.to_string());
    }
}

/// `deltasOnly` (FindMembership, ABFindAll) or `filterOptions/DeltasOnly`
/// (ABFindContactsPaged: clients differ in the capital) is `true`.
fn deltas_only(body: &str) -> bool {
    ["deltasOnly", "DeltasOnly"]
        .into_iter()
        .any(|name| find_elements(body, name).any(|d| d.text().trim().eq_ignore_ascii_case("true")))
}

fn contacts(body: &str) -> impl Iterator<Item = Element<'_>> {
    find_elements(body, "Contact").take(MAX_ITEMS)
}

fn contact_id(contact: Element<'_>) -> Option<String> {
    first(contact.inner, "contactId")
        .map(|i| i.text().trim().trim_matches(['{', '}']).to_string())
        .filter(|i| !i.is_empty())
        .map(|i| bounded(&i))
}

fn annotations(xml: &str) -> Vec<(String, String)> {
    find_elements(xml, "Annotation")
        .take(MAX_ITEMS)
        .filter_map(|a| {
            let name = first(a.inner, "Name")?.text().trim().to_string();
            let value = first(a.inner, "Value")
                .map(|v| v.text())
                .unwrap_or_default();
            Some((bounded(&name), bounded(&value)))
        })
        .collect()
}

fn nickname(annotations: &[(String, String)]) -> Option<String> {
    annotations
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("AB.NickName"))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn new_contact(contact: Element<'_>) -> Option<NewContact> {
    let info = first(contact.inner, "contactInfo").map_or(contact.inner, |i| i.inner);
    let address = first(info, "passportName")
        .map(|p| p.text())
        .or_else(|| first(info, "email").map(|e| e.text()))
        .map(|a| bounded(a.trim()))
        .filter(|a| !a.is_empty())?;
    let annotations = annotations(info);
    let name = nickname(&annotations).or_else(|| {
        first(info, "displayName")
            .map(|d| bounded(d.text().trim()))
            .filter(|d| !d.is_empty())
    });
    Some(NewContact { address, name })
}

fn contact_update(contact: Element<'_>) -> ContactUpdate {
    let info = first(contact.inner, "contactInfo").map_or("", |i| i.inner);
    let annotations = annotations(info);
    ContactUpdate {
        contact_id: contact_id(contact),
        is_me: first(info, "contactType").is_some_and(|t| t.text().trim() == "Me"),
        display_name: first(info, "displayName").map(|d| bounded(d.text().trim())),
        nickname: nickname(&annotations),
        properties_changed: first(contact.inner, "propertiesChanged")
            .map(|p| {
                p.text()
                    .split_whitespace()
                    .take(MAX_ITEMS)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        annotations,
    }
}

fn group_ids(body: &str) -> Vec<String> {
    let filter = first(body, "groupFilter").map_or(body, |f| f.inner);
    find_elements(filter, "guid")
        .take(MAX_ITEMS)
        .map(|g| bounded(g.text().trim().trim_matches(['{', '}'])))
        .filter(|g| !g.is_empty())
        .collect()
}

fn memberships(body: &str) -> Vec<MembershipEdit> {
    find_elements(body, "Membership")
        .take(MAX_ITEMS)
        .filter_map(|m| {
            let role = Role::parse(&first(m.inner, "MemberRole")?.text())?;
            let members = find_elements(m.inner, "Member")
                .take(MAX_ITEMS)
                .filter_map(member_ref)
                .collect();
            Some(MembershipEdit { role, members })
        })
        .collect()
}

fn member_ref(member: Element<'_>) -> Option<MemberRef> {
    let address = first(member.inner, "PassportName")
        .or_else(|| first(member.inner, "Email"))
        .map(|a| bounded(a.text().trim()))
        .filter(|a| !a.is_empty());
    if let Some(address) = address {
        return Some(MemberRef::Address(address));
    }
    let id = first(member.inner, "MembershipId")?.text();
    let id = id.trim();
    let number = id.rsplit('/').next().unwrap_or(id);
    number.parse::<u64>().ok().map(MemberRef::MembershipId)
}

// ---------------------------------------------------------------------------
// Responses

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";
const ENVELOPE_OPEN: &str = "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
     xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">";

/// What the `ServiceHeader` of every answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceHeader<'a> {
    /// `PreferredHostName`: where the client should send its next requests.
    pub host: &'a str,
    /// `SessionId`, a GUID.
    pub session_id: &'a str,
}

impl ServiceHeader<'_> {
    fn render(&self, out: &mut String) {
        let _ = write!(
            out,
            "<soap:Header><ServiceHeader xmlns=\"{NS_AB}\"><Version>15.01.1408.0000</Version>\
             <CacheKey>12r1:msngate</CacheKey><CacheKeyChanged>true</CacheKeyChanged>\
             <PreferredHostName>{}</PreferredHostName><SessionId>{}</SessionId></ServiceHeader></soap:Header>",
            escape(self.host),
            escape(self.session_id)
        );
    }
}

/// A whole answer: declaration, envelope, `ServiceHeader`, `body`.
pub fn answer(header: &ServiceHeader<'_>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 600);
    out.push_str(DECLARATION);
    out.push_str(ENVELOPE_OPEN);
    header.render(&mut out);
    out.push_str("<soap:Body>");
    out.push_str(body);
    out.push_str("</soap:Body></soap:Envelope>");
    out
}

/// An operation's empty answer body, `<{operation}Response xmlns="…AddressBook"/>`.
pub fn empty_response(operation: &str) -> String {
    format!("<{operation}Response xmlns=\"{NS_AB}\"/>")
}

/// The answer body of `ABContactAdd`, `ABGroupAdd` and `ABGroupContactAdd`:
/// `<{operation}Response><{operation}Result><guid>…</guid>…`.
pub fn guid_response(operation: &str, guids: &[String]) -> String {
    let mut out = format!("<{operation}Response xmlns=\"{NS_AB}\"><{operation}Result>");
    for guid in guids {
        let _ = write!(out, "<guid>{}</guid>", escape(guid));
    }
    let _ = write!(out, "</{operation}Result></{operation}Response>");
    out
}

/// The answer body of `ABAdd` (address-book.md §3.2: the result element is
/// **UNCONFIRMED**; nothing needs it, the book always exists).
pub fn ab_add_response() -> String {
    format!(
        "<ABAddResponse xmlns=\"{NS_AB}\"><ABAddResult>{DEFAULT_AB_ID}</ABAddResult></ABAddResponse>"
    )
}

/// A SOAP fault (HTTP 500): `soap:Client`, `faultstring`, and
/// `detail/errorcode` in the AddressBook namespace, as a whole document.
pub fn fault(faultcode: &str, faultstring: &str, errorcode: &str) -> String {
    let mut out = String::with_capacity(600);
    out.push_str(DECLARATION);
    out.push_str(ENVELOPE_OPEN);
    let _ = write!(
        out,
        "<soap:Body><soap:Fault><faultcode xmlns:q0=\"{NS_AB}\">{}</faultcode><faultstring>{}</faultstring>\
         <faultactor>http://www.msn.com/webservices/AddressBook/abservice.asmx</faultactor>\
         <detail><errorcode xmlns=\"{NS_AB}\">{}</errorcode><errorstring xmlns=\"{NS_AB}\">{}</errorstring>\
         <machineName xmlns=\"{NS_AB}\">msngate</machineName></detail></soap:Fault></soap:Body></soap:Envelope>",
        escape(faultcode),
        escape(faultstring),
        escape(errorcode),
        escape(faultstring),
    );
    out
}

/// The fault for a missing, unknown or expired ticket: `q0:BadContextToken`
/// (retro-prpl then asks the token service for a new one, address-book.md §2).
pub fn bad_context_token() -> String {
    fault(
        "q0:BadContextToken",
        "Full authentication required",
        "BadContextToken",
    )
}

/// The fault that makes clients retry a delta request as a full one
/// (address-book.md §3.1: MSNPSharp matches "Full sync required").
pub fn full_sync_required() -> String {
    fault(
        "soap:Client",
        "Full sync required.  Details: Delta syncs disabled.",
        "FullSyncRequired",
    )
}

/// The owner of the book, as both services name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    pub handle: &'a str,
    /// The account's CID, as signed decimal in the documents.
    pub cid: crate::cid::Cid,
    /// The friendly name (plain text).
    pub friendly_name: &'a str,
    /// `BLP AL` (allow unlisted) → `MSN.IM.BLP` 1, else 2.
    pub allow_unlisted: bool,
    /// `GTC N` (add watchers without asking) → `MSN.IM.GTC` 2, else 1.
    pub auto_allow: bool,
}

/// One member of a role in `FindMembership`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    pub role: Role,
    pub membership_id: u64,
    pub handle: String,
    pub cid: crate::cid::Cid,
}

/// The `FindMembershipResponse` body: one `Membership` per role (members
/// may be none), dated `now` (seconds since the Unix epoch).
pub fn find_membership_response(owner: &Owner<'_>, members: &[MemberEntry], now: u64) -> String {
    let date = iso8601(now);
    let mut out = String::with_capacity(1500 + members.len() * 600);
    let _ = write!(
        out,
        "<FindMembershipResponse xmlns=\"{NS_AB}\"><FindMembershipResult><Services><Service><Memberships>"
    );
    for role in Role::ALL {
        let _ = write!(out, "<Membership><MemberRole>{}</MemberRole>", role.name());
        let mut any = false;
        for m in members.iter().filter(|m| m.role == role) {
            if !any {
                out.push_str("<Members>");
                any = true;
            }
            let _ = write!(
                out,
                "<Member xsi:type=\"PassportMember\"><MembershipId>{}</MembershipId><Type>Passport</Type>\
                 <State>Accepted</State><Deleted>false</Deleted>\
                 <LastChanged>{date}</LastChanged><JoinedDate>{date}</JoinedDate>\
                 <ExpirationDate>0001-01-01T00:00:00</ExpirationDate><Changes/>\
                 <PassportName>{}</PassportName><IsPassportNameHidden>false</IsPassportNameHidden>\
                 <PassportId>0</PassportId><CID>{}</CID><PassportChanges/>\
                 <LookedupByCID>false</LookedupByCID></Member>",
                m.membership_id,
                escape(&m.handle),
                m.cid,
            );
        }
        out.push_str(if any { "</Members>" } else { "<Members/>" });
        out.push_str("<MembershipIsComplete>true</MembershipIsComplete></Membership>");
    }
    let _ = write!(
        out,
        "</Memberships><Info><Handle><Id>1</Id><Type>Messenger</Type><ForeignId/></Handle>\
         <InverseRequired>false</InverseRequired><AuthorizationCriteria>Everyone</AuthorizationCriteria>\
         <IsBot>false</IsBot></Info><Changes/><LastChange>{date}</LastChange><Deleted>false</Deleted>\
         </Service></Services><OwnerNamespace><Info><Handle><Id>{DEFAULT_AB_ID}</Id>\
         <IsPassportNameHidden>false</IsPassportNameHidden><CID>0</CID></Handle><CreatorPuid>0</CreatorPuid>\
         <CreatorCID>{}</CreatorCID><CreatorPassportName>{}</CreatorPassportName>\
         <CircleAttributes><IsPresenceEnabled>false</IsPresenceEnabled><Domain>WindowsLive</Domain></CircleAttributes>\
         <MessengerApplicationServiceCreated>false</MessengerApplicationServiceCreated></Info><Changes/>\
         <CreateDate>{date}</CreateDate><LastChange>{date}</LastChange></OwnerNamespace>\
         </FindMembershipResult></FindMembershipResponse>",
        owner.cid,
        escape(owner.handle),
    );
    out
}

/// A forward-list contact of the address book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbContact {
    /// `contactId` (a GUID, no braces).
    pub contact_id: String,
    pub handle: String,
    pub cid: crate::cid::Cid,
    /// The name the owner keeps for them (`displayName`, `quickName`).
    pub display_name: String,
    /// Their groups' GUIDs.
    pub group_ids: Vec<String>,
}

/// A group of the address book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbGroup {
    pub group_id: String,
    pub name: String,
}

/// Which find operation an address-book answer is for: the element names differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindKind {
    /// `ABFindAll` (MSNP13–15): `groups`, `contacts`, `ab`.
    All,
    /// `ABFindContactsPaged` (MSNP18): `Groups`, `Contacts`, `CircleResult`, `Ab`.
    Paged,
}

/// The `ABFindAllResponse` / `ABFindContactsPagedResponse` body: groups,
/// the owner's `Me` entry followed by the contacts, and the book info.
pub fn find_contacts_response(
    kind: FindKind,
    owner: &Owner<'_>,
    groups: &[AbGroup],
    contacts: &[AbContact],
    now: u64,
) -> String {
    let date = iso8601(now);
    let (operation, groups_tag, contacts_tag, ab_tag) = match kind {
        FindKind::All => ("ABFindAll", "groups", "contacts", "ab"),
        FindKind::Paged => ("ABFindContactsPaged", "Groups", "Contacts", "Ab"),
    };
    let mut out = String::with_capacity(2000 + contacts.len() * 900 + groups.len() * 500);
    let _ = write!(
        out,
        "<{operation}Response xmlns=\"{NS_AB}\"><{operation}Result><{groups_tag}>"
    );
    for group in groups {
        let _ = write!(
            out,
            "<Group><groupId>{}</groupId><groupInfo><annotations><Annotation><Name>MSN.IM.Display</Name>\
             <Value>1</Value></Annotation></annotations><groupType>c8529ce2-6ead-434d-881f-341e17db3ff8</groupType>\
             <name>{}</name><IsNotMobileVisible>false</IsNotMobileVisible><IsPrivate>false</IsPrivate>\
             <IsFavorite>false</IsFavorite></groupInfo><propertiesChanged/><fDeleted>false</fDeleted>\
             <lastChange>{date}</lastChange></Group>",
            escape(&group.group_id),
            escape(&group.name),
        );
    }
    let _ = write!(out, "</{groups_tag}><{contacts_tag}>");
    me_entry(&mut out, owner, &date);
    for contact in contacts {
        contact_entry(&mut out, contact, &date);
    }
    let _ = write!(out, "</{contacts_tag}>");
    if kind == FindKind::Paged {
        // Escargot always sends a ticket; a server without circles can put
        // any text there (storage-config.md §4).
        out.push_str(
            "<CircleResult><CircleTicket>msngate-no-circles</CircleTicket></CircleResult>",
        );
    }
    let _ = write!(
        out,
        "<{ab_tag}><abId>{DEFAULT_AB_ID}</abId><abInfo><ownerPuid>0</ownerPuid><OwnerCID>{}</OwnerCID>\
         <ownerEmail>{}</ownerEmail><fDefault>true</fDefault><joinedNamespace>false</joinedNamespace>\
         <IsBot>false</IsBot><IsParentManaged>false</IsParentManaged>\
         <SubscribeExternalPartner>false</SubscribeExternalPartner><NotifyExternalPartner>false</NotifyExternalPartner>\
         <AddressBookType>Individual</AddressBookType></abInfo><lastChange>{date}</lastChange>\
         <DynamicItemLastChanged>0001-01-01T00:00:00</DynamicItemLastChanged><createDate>{date}</createDate>\
         <propertiesChanged/></{ab_tag}></{operation}Result></{operation}Response>",
        owner.cid,
        escape(owner.handle),
    );
    out
}

/// The fields every `contactInfo` ends with.
const CONTACT_INFO_TAIL: &str = "<isMessengerUser>true</isMessengerUser><isFavorite>false</isFavorite>\
     <isSmtp>false</isSmtp><hasSpace>false</hasSpace><spotWatchState>NoDevice</spotWatchState>\
     <birthdate>0001-01-01T00:00:00</birthdate><primaryEmailType>ContactEmailPersonal</primaryEmailType>\
     <PrimaryLocation>ContactLocationPersonal</PrimaryLocation><PrimaryPhone>ContactPhonePersonal</PrimaryPhone>\
     <IsPrivate>false</IsPrivate><Gender>Unspecified</Gender><TimeZone>None</TimeZone>";

fn me_entry(out: &mut String, owner: &Owner<'_>, date: &str) {
    let name = escape(owner.friendly_name);
    // `annotations` comes first in `contactInfo`, as in the service's
    // schema (MSNPSharp reads the elements in schema order).
    let _ = write!(
        out,
        "<Contact><contactId>{}</contactId><contactInfo><annotations>\
         <Annotation><Name>MSN.IM.MBEA</Name><Value>0</Value></Annotation>\
         <Annotation><Name>MSN.IM.GTC</Name><Value>{}</Value></Annotation>\
         <Annotation><Name>MSN.IM.BLP</Name><Value>{}</Value></Annotation></annotations>\
         <contactType>Me</contactType><quickName>{name}</quickName><passportName>{}</passportName>\
         <IsPassportNameHidden>false</IsPassportNameHidden><displayName>{name}</displayName><puid>0</puid>\
         <CID>{}</CID>{CONTACT_INFO_TAIL}</contactInfo><propertiesChanged/><fDeleted>false</fDeleted>\
         <lastChange>{date}</lastChange></Contact>",
        me_contact_id(owner.cid),
        if owner.auto_allow { 2 } else { 1 },
        if owner.allow_unlisted { 1 } else { 2 },
        escape(owner.handle),
        owner.cid,
    );
}

/// The owner's own `contactId`: a GUID made of their CID, stable.
pub fn me_contact_id(cid: crate::cid::Cid) -> String {
    let hex = cid.to_hex();
    format!("00000000-0000-0000-{}-{}", &hex[..4], &hex[4..])
}

fn contact_entry(out: &mut String, contact: &AbContact, date: &str) {
    let name = escape(&contact.display_name);
    let _ = write!(
        out,
        "<Contact><contactId>{}</contactId><contactInfo><contactType>Regular</contactType>\
         <quickName>{name}</quickName><passportName>{}</passportName><IsPassportNameHidden>false</IsPassportNameHidden>\
         <displayName>{name}</displayName><puid>0</puid>",
        escape(&contact.contact_id),
        escape(&contact.handle),
    );
    if !contact.group_ids.is_empty() {
        out.push_str("<groupIds>");
        for group in &contact.group_ids {
            let _ = write!(out, "<guid>{}</guid>", escape(group));
        }
        out.push_str("</groupIds>");
    }
    let _ = write!(
        out,
        "<CID>{}</CID>{CONTACT_INFO_TAIL}</contactInfo><propertiesChanged/><fDeleted>false</fDeleted>\
         <lastChange>{date}</lastChange></Contact>",
        contact.cid
    );
}

// ---------------------------------------------------------------------------
// Storage service (storage-config.md §1)

/// The storage namespace a request used (`…/storage/w10` or `…/storage/2008`);
/// the answer must use the same one.
pub fn storage_namespace(soap_action: Option<&str>, xml: &str) -> &'static str {
    const W10: &str = "http://www.msn.com/webservices/storage/w10";
    const Y2008: &str = "http://www.msn.com/webservices/storage/2008";
    let says_2008 = |s: &str| s.contains("webservices/storage/2008");
    if soap_action.is_some_and(says_2008)
        || (!soap_action.is_some_and(|a| a.contains("w10")) && says_2008(xml))
    {
        Y2008
    } else {
        W10
    }
}

/// A whole storage answer: `AffinityCacheHeader` and `StorageUserHeader`, then `body`.
pub fn storage_answer(namespace: &str, cid: crate::cid::Cid, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 700);
    out.push_str(DECLARATION);
    out.push_str(ENVELOPE_OPEN);
    let _ = write!(
        out,
        "<soap:Header><AffinityCacheHeader xmlns=\"{namespace}\"><CacheKey>msngate</CacheKey></AffinityCacheHeader>\
         <StorageUserHeader xmlns=\"{namespace}\"><Puid>0</Puid><Cid>{}</Cid><ApplicationId>0</ApplicationId>\
         <DeviceId>0</DeviceId><IsTrustedDevice>false</IsTrustedDevice><IsStrongAuth>false</IsStrongAuth>\
         <TicketToken/><IsAdmin>false</IsAdmin><LanguagePreference>0</LanguagePreference><Claims/></StorageUserHeader>\
         </soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>",
        cid
    );
    out
}

/// The `GetProfileResponse` body: the roaming profile with the friendly
/// name and personal message, and no `Photo` (display pictures travel
/// between clients).
pub fn get_profile_response(
    namespace: &str,
    cid: crate::cid::Cid,
    display_name: &str,
    personal_status: &str,
    now: u64,
) -> String {
    let date = iso8601(now);
    let hex = cid.to_hex().to_ascii_uppercase();
    format!(
        "<GetProfileResponse xmlns=\"{namespace}\"><GetProfileResult><ResourceID>{hex}!106</ResourceID>\
         <DateModified>{date}</DateModified><ExpressionProfile><ResourceID>{hex}!118</ResourceID>\
         <DateModified>{date}</DateModified><Version>1</Version><Flags>0</Flags>\
         <PersonalStatus>{}</PersonalStatus><PersonalStatusLastModified>{date}</PersonalStatusLastModified>\
         <DisplayName>{}</DisplayName><DisplayNameLastModified>{date}</DisplayNameLastModified>\
         <StaticUserTilePublicURL></StaticUserTilePublicURL></ExpressionProfile></GetProfileResult></GetProfileResponse>",
        escape(personal_status),
        escape(display_name),
    )
}

/// A storage operation's empty answer, `<{operation}Response xmlns="{namespace}"/>`.
pub fn storage_empty_response(namespace: &str, operation: &str) -> String {
    format!("<{operation}Response xmlns=\"{namespace}\"/>")
}

/// What `UpdateProfile` sets: `profile/ExpressionProfile/DisplayName` and `PersonalStatus`, when present.
pub fn update_profile(xml: &str) -> (Option<String>, Option<String>) {
    let profile = first(xml, "ExpressionProfile").map_or("", |p| p.inner);
    (
        first(profile, "DisplayName").map(|d| bounded(d.text().trim())),
        first(profile, "PersonalStatus").map(|p| bounded(p.text().trim())),
    )
}

#[cfg(test)]
mod tests;
