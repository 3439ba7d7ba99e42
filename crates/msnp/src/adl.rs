//! The `<ml>` documents of `ADL`, `RML` and `FQY` (P13+, wlm/notification.md
//! §1–§2, vectors.md §4).
//!
//! ```text
//! <ml l="1"><d n="example.com"><c n="bob" l="3" t="1" /></d></ml>
//! ```
//!
//! `ml` may carry `l="1"` (the initial dump after the address book was
//! read); one `d` per domain, `n` = the domain; one `c` per contact,
//! `n` = the local part, `l` = list bits, `t` = network id, `f` = the
//! URL-encoded friendly name (server → client only).
//!
//! Parsing is liberal about what does not change the meaning: whitespace
//! between elements, attribute order, single or double quotes, `<c …></c>`
//! for `<c … />`, an XML declaration or comments, unknown attributes.
//! It is strict about what does: every problem is a typed [`AdlError`]
//! (never a panic), and input size, entry count and attribute length are
//! bounded. Rendering is exact and has no whitespace between elements:
//! clients built on small XML parsers crash on whitespace nodes.

use crate::xml;
use std::fmt;

/// The list bitmask of `l` (the same bits as P8+ `LST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lists(u8);

impl Lists {
    /// Forward list: contacts the user watches.
    pub const FL: Lists = Lists(1);
    /// Allow list.
    pub const AL: Lists = Lists(2);
    /// Block list.
    pub const BL: Lists = Lists(4);
    /// Reverse list: users who have the user on their FL.
    pub const RL: Lists = Lists(8);
    /// Pending list: users who added the user and await a decision.
    pub const PL: Lists = Lists(16);
    /// No list (an `FQY` entry has none).
    pub const NONE: Lists = Lists(0);
    const ALL_BITS: u8 = 31;

    /// The lists with these bits; `None` if a bit above PL is set.
    pub const fn from_bits(bits: u8) -> Option<Lists> {
        if bits & !Self::ALL_BITS == 0 {
            Some(Lists(bits))
        } else {
            None
        }
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn contains(self, other: Lists) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Lists) -> Lists {
        Lists(self.0 | other.0)
    }

    pub const fn without(self, other: Lists) -> Lists {
        Lists(self.0 & !other.0)
    }

    /// Whether a client may name these lists in `ADL`/`RML`: never RL or
    /// PL, which only the server changes.
    pub const fn client_may_set(self) -> bool {
        self.0 & (Self::RL.0 | Self::PL.0) == 0
    }
}

impl std::ops::BitOr for Lists {
    type Output = Lists;
    fn bitor(self, other: Lists) -> Lists {
        self.union(other)
    }
}

/// A network id (`t`): which service an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(u8);

impl NetworkId {
    /// Passport / Windows Live.
    pub const PASSPORT: NetworkId = NetworkId(1);
    /// LCS/OCS (corporate).
    pub const LCS: NetworkId = NetworkId(2);
    /// Telephone number.
    pub const TELEPHONE: NetworkId = NetworkId(4);
    /// Mobile network interop.
    pub const MNI: NetworkId = NetworkId(8);
    /// A circle (P18 group).
    pub const CIRCLE: NetworkId = NetworkId(9);
    /// Plain e-mail address (SMTP).
    pub const SMTP: NetworkId = NetworkId(16);
    /// Yahoo! Messenger.
    pub const YAHOO: NetworkId = NetworkId(32);
    const KNOWN: [NetworkId; 7] = [
        Self::PASSPORT,
        Self::LCS,
        Self::TELEPHONE,
        Self::MNI,
        Self::CIRCLE,
        Self::SMTP,
        Self::YAHOO,
    ];

    /// The network with that id, if it is one of the known ones.
    pub fn new(id: u8) -> Option<NetworkId> {
        Self::KNOWN.iter().copied().find(|known| known.0 == id)
    }

    pub const fn id(self) -> u8 {
        self.0
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One contact of an `<ml>` document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListEntry {
    /// The part before `@` (`c n`).
    pub local: String,
    /// The part after `@` (`d n`).
    pub domain: String,
    /// `l`; empty when absent.
    pub lists: Lists,
    /// `t`; `None` when absent (a client that does not know the network
    /// yet, or an `FQY` question).
    pub network: Option<NetworkId>,
    /// `f`, still URL-encoded as on the wire; server → client only.
    pub friendly_name: Option<String>,
}

impl ListEntry {
    /// An entry for `email`, split at its `@`; `None` unless the address
    /// has exactly one `@` with text on both sides.
    pub fn from_email(email: &str, lists: Lists, network: Option<NetworkId>) -> Option<ListEntry> {
        let (local, domain) = email.split_once('@')?;
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return None;
        }
        Some(ListEntry {
            local: local.to_owned(),
            domain: domain.to_owned(),
            lists,
            network,
            friendly_name: None,
        })
    }

    /// `local@domain`.
    pub fn email(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
}

/// A whole `<ml>` document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MembershipList {
    /// `ml l="1"`: the initial dump after sign-in.
    pub initial: bool,
    /// The contacts, in document order.
    pub entries: Vec<ListEntry>,
}

/// Bounds on what [`MembershipList::parse_with`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document, in bytes.
    pub max_bytes: usize,
    /// Most `c` elements.
    pub max_entries: usize,
    /// Longest attribute value, in bytes, before unescaping.
    pub max_attribute: usize,
}

impl Default for Limits {
    /// A payload the P13+ decoder accepts, 150-contact batches many times
    /// over, and attributes long enough for a 255-byte domain or a
    /// URL-encoded friendly name.
    fn default() -> Limits {
        Limits {
            max_bytes: crate::codec::MAX_WLM_NOTIFICATION_PAYLOAD,
            max_entries: 4096,
            max_attribute: 1024,
        }
    }
}

/// Why an `<ml>` document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdlError {
    #[error("document of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("more than {max} contacts")]
    TooManyEntries { max: usize },
    #[error("attribute value longer than {max} bytes")]
    AttributeTooLong { max: usize },
    #[error("document is not UTF-8")]
    NotUtf8,
    #[error("XML syntax error at byte {offset}: {what}")]
    Syntax { offset: usize, what: &'static str },
    #[error("unexpected element <{0}>")]
    UnexpectedElement(String),
    #[error("domain {0:?} has no contacts")]
    DomainWithoutContacts(String),
    #[error("domain element without a name")]
    MissingDomainName,
    #[error("domain {0:?} appears twice")]
    DuplicateDomain(String),
    #[error("contact element without a valid name")]
    BadContactName,
    #[error("list bits {0:?} are not a number from 0 to 31")]
    BadLists(String),
    #[error("network id {0:?} is not a known network")]
    BadNetwork(String),
    #[error("a client may not change the reverse or pending list")]
    ReservedLists,
}

impl AdlError {
    /// The error reply the server sends before closing
    /// (wlm/notification.md §1): `240` for a domain without contacts,
    /// `204` for a bad network id, `241` for everything else.
    pub fn wire_code(&self) -> u16 {
        match self {
            AdlError::DomainWithoutContacts(_) => 240,
            AdlError::BadNetwork(_) => 204,
            _ => 241,
        }
    }
}

impl MembershipList {
    /// Parses a document with the default [`Limits`].
    pub fn parse(document: &[u8]) -> Result<MembershipList, AdlError> {
        MembershipList::parse_with(document, &Limits::default())
    }

    /// Parses a document within `limits`.
    pub fn parse_with(document: &[u8], limits: &Limits) -> Result<MembershipList, AdlError> {
        if document.len() > limits.max_bytes {
            return Err(AdlError::TooLarge {
                len: document.len(),
                max: limits.max_bytes,
            });
        }
        let text = std::str::from_utf8(document).map_err(|_| AdlError::NotUtf8)?;
        Parser {
            text,
            pos: 0,
            limits,
        }
        .document()
    }

    /// Checks what a client may ask for in `ADL`/`RML`: no RL or PL bits.
    pub fn check_client_lists(&self) -> Result<(), AdlError> {
        if self
            .entries
            .iter()
            .all(|entry| entry.lists.client_may_set())
        {
            Ok(())
        } else {
            Err(AdlError::ReservedLists)
        }
    }

    /// The document as a server writes it (`ADL 0`, `RML 0`, `FQY`
    /// answers): contact attributes in the order `n t l f`, entries grouped
    /// by domain in order of first appearance, no whitespace.
    pub fn to_xml(&self) -> String {
        self.render(AttributeOrder::Server)
    }

    /// The document as WLM clients and retro-prpl write it (`ADL`, `RML`,
    /// `FQY` requests): contact attributes in the order `n l t`.
    pub fn to_client_xml(&self) -> String {
        self.render(AttributeOrder::Client)
    }

    fn render(&self, order: AttributeOrder) -> String {
        let mut out = String::with_capacity(16 + self.entries.len() * 40);
        out.push_str(if self.initial { "<ml l=\"1\">" } else { "<ml>" });
        let mut domains: Vec<&str> = Vec::new();
        for entry in &self.entries {
            if !domains.contains(&entry.domain.as_str()) {
                domains.push(&entry.domain);
            }
        }
        for domain in domains {
            out.push_str("<d n=\"");
            out.push_str(&escape_attribute(domain));
            out.push_str("\">");
            for entry in self.entries.iter().filter(|entry| entry.domain == domain) {
                render_entry(&mut out, entry, order);
            }
            out.push_str("</d>");
        }
        out.push_str("</ml>");
        out
    }
}

#[derive(Clone, Copy)]
enum AttributeOrder {
    Server,
    Client,
}

/// XML-escapes an attribute value, writing tab, CR and LF as character
/// references so the document stays free of whitespace other than the
/// single spaces between attributes (a parser would turn them into spaces).
fn escape_attribute(value: &str) -> String {
    let escaped = xml::escape(value);
    if !escaped.contains(['\t', '\n', '\r']) {
        return escaped;
    }
    escaped
        .replace('\t', "&#9;")
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
}

fn render_entry(out: &mut String, entry: &ListEntry, order: AttributeOrder) {
    out.push_str("<c n=\"");
    out.push_str(&escape_attribute(&entry.local));
    out.push('"');
    let lists = (!entry.lists.is_empty()).then(|| format!(" l=\"{}\"", entry.lists.bits()));
    let network = entry.network.map(|network| format!(" t=\"{network}\""));
    let (first, second) = match order {
        AttributeOrder::Server => (network, lists),
        AttributeOrder::Client => (lists, network),
    };
    for attribute in [first, second].into_iter().flatten() {
        out.push_str(&attribute);
    }
    if let Some(name) = &entry.friendly_name {
        out.push_str(" f=\"");
        out.push_str(&escape_attribute(name));
        out.push('"');
    }
    out.push_str(" />");
}

/// Attributes of one start tag: (name, unescaped value).
type Attributes<'a> = Vec<(&'a str, String)>;

/// How a start tag ended.
#[derive(PartialEq, Eq)]
enum TagEnd {
    /// `/>`
    Empty,
    /// `>`
    Open,
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    limits: &'a Limits,
}

impl<'a> Parser<'a> {
    fn syntax(&self, what: &'static str) -> AdlError {
        AdlError::Syntax {
            offset: self.pos,
            what,
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        self.pos += rest.len() - trimmed.len();
    }

    /// Skips whitespace, comments and (before the root) an XML declaration.
    fn skip_misc(&mut self, allow_declaration: bool) -> Result<(), AdlError> {
        loop {
            self.skip_whitespace();
            if self.eat("<!--") {
                let end = self
                    .rest()
                    .find("-->")
                    .ok_or(self.syntax("unterminated comment"))?;
                self.pos += end + 3;
            } else if allow_declaration && self.rest().starts_with("<?") {
                let end = self
                    .rest()
                    .find("?>")
                    .ok_or(self.syntax("unterminated declaration"))?;
                self.pos += end + 2;
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<&'a str, AdlError> {
        let rest = self.rest();
        let len = rest
            .bytes()
            .take_while(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-'))
            .count();
        if len == 0 {
            return Err(self.syntax("expected a name"));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    /// After `<name`: attributes up to `>` or `/>`.
    fn attributes(&mut self) -> Result<(Attributes<'a>, TagEnd), AdlError> {
        let mut attributes: Attributes<'a> = Vec::new();
        loop {
            let before = self.pos;
            self.skip_whitespace();
            if self.eat("/>") {
                return Ok((attributes, TagEnd::Empty));
            }
            if self.eat(">") {
                return Ok((attributes, TagEnd::Open));
            }
            if self.pos == before {
                return Err(self.syntax("expected whitespace before an attribute"));
            }
            let name = self.name()?;
            self.skip_whitespace();
            if !self.eat("=") {
                return Err(self.syntax("expected '='"));
            }
            self.skip_whitespace();
            let quote = match self.rest().as_bytes().first() {
                Some(b'"') => '"',
                Some(b'\'') => '\'',
                _ => return Err(self.syntax("expected a quoted value")),
            };
            self.pos += 1;
            let end = self
                .rest()
                .find(quote)
                .ok_or(self.syntax("unterminated value"))?;
            if end > self.limits.max_attribute {
                return Err(AdlError::AttributeTooLong {
                    max: self.limits.max_attribute,
                });
            }
            let raw = &self.rest()[..end];
            if raw.contains('<') {
                return Err(self.syntax("'<' in an attribute value"));
            }
            let value =
                xml::unescape(raw).ok_or(self.syntax("bad entity in an attribute value"))?;
            if value
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
            {
                // Not allowed in XML 1.0 at all, escaped or not.
                return Err(self.syntax("control character in an attribute value"));
            }
            self.pos += end + 1;
            if attributes.iter().any(|(seen, _)| *seen == name) {
                return Err(self.syntax("duplicate attribute"));
            }
            attributes.push((name, value));
        }
    }

    /// A start tag `<expected …>`; any other element name is an error.
    fn start_tag(&mut self, expected: &str) -> Result<(Attributes<'a>, TagEnd), AdlError> {
        if !self.eat("<") {
            return Err(self.syntax("expected '<'"));
        }
        let name = self.name()?;
        if name != expected {
            return Err(AdlError::UnexpectedElement(name.chars().take(32).collect()));
        }
        self.attributes()
    }

    /// `</name>`, with optional whitespace before `>`.
    fn end_tag(&mut self, name: &str) -> Result<(), AdlError> {
        if !self.eat("</") || !self.eat(name) {
            return Err(self.syntax("expected an end tag"));
        }
        self.skip_whitespace();
        if !self.eat(">") {
            return Err(self.syntax("expected '>'"));
        }
        Ok(())
    }

    fn at_end_tag(&self) -> bool {
        self.rest().starts_with("</")
    }

    fn document(mut self) -> Result<MembershipList, AdlError> {
        self.skip_misc(true)?;
        let (attributes, end) = self.start_tag("ml")?;
        let initial = match attribute(&attributes, "l") {
            None => false,
            Some(value) => parse_number(value).ok_or(self.syntax("ml l is not a number"))? == 1,
        };
        let mut list = MembershipList {
            initial,
            entries: Vec::new(),
        };
        if end == TagEnd::Open {
            let mut domains: Vec<String> = Vec::new();
            loop {
                self.skip_misc(false)?;
                if self.at_end_tag() {
                    self.end_tag("ml")?;
                    break;
                }
                if self.rest().is_empty() {
                    return Err(self.syntax("unterminated ml"));
                }
                if !self.rest().starts_with('<') {
                    return Err(self.syntax("text inside ml"));
                }
                self.domain(&mut domains, &mut list.entries)?;
            }
        }
        self.skip_misc(false)?;
        if !self.rest().is_empty() {
            return Err(self.syntax("data after the document"));
        }
        Ok(list)
    }

    fn domain(
        &mut self,
        domains: &mut Vec<String>,
        entries: &mut Vec<ListEntry>,
    ) -> Result<(), AdlError> {
        let (attributes, end) = self.start_tag("d")?;
        let domain = match attribute(&attributes, "n") {
            Some(name) if valid_domain(name) => name.to_owned(),
            _ => return Err(AdlError::MissingDomainName),
        };
        if domains.contains(&domain) {
            return Err(AdlError::DuplicateDomain(domain));
        }
        if end == TagEnd::Empty {
            return Err(AdlError::DomainWithoutContacts(domain));
        }
        let first_entry = entries.len();
        loop {
            self.skip_misc(false)?;
            if self.at_end_tag() {
                self.end_tag("d")?;
                break;
            }
            if self.rest().is_empty() {
                return Err(self.syntax("unterminated d"));
            }
            if !self.rest().starts_with('<') {
                return Err(self.syntax("text inside d"));
            }
            if entries.len() >= self.limits.max_entries {
                return Err(AdlError::TooManyEntries {
                    max: self.limits.max_entries,
                });
            }
            let entry = self.contact(&domain)?;
            entries.push(entry);
        }
        if entries.len() == first_entry {
            return Err(AdlError::DomainWithoutContacts(domain));
        }
        domains.push(domain);
        Ok(())
    }

    fn contact(&mut self, domain: &str) -> Result<ListEntry, AdlError> {
        let (attributes, end) = self.start_tag("c")?;
        if end == TagEnd::Open {
            self.skip_misc(false)?;
            self.end_tag("c")?;
        }
        let local = match attribute(&attributes, "n") {
            Some(name) if valid_local(name) => name.to_owned(),
            _ => return Err(AdlError::BadContactName),
        };
        let lists = match attribute(&attributes, "l") {
            None => Lists::NONE,
            Some(value) => parse_number(value)
                .and_then(|bits| u8::try_from(bits).ok())
                .and_then(Lists::from_bits)
                .ok_or_else(|| AdlError::BadLists(value.chars().take(16).collect()))?,
        };
        let network = match attribute(&attributes, "t") {
            None => None,
            Some(value) => Some(
                parse_number(value)
                    .and_then(|id| u8::try_from(id).ok())
                    .and_then(NetworkId::new)
                    .ok_or_else(|| AdlError::BadNetwork(value.chars().take(16).collect()))?,
            ),
        };
        let friendly_name = attribute(&attributes, "f").map(str::to_owned);
        Ok(ListEntry {
            local,
            domain: domain.to_owned(),
            lists,
            network,
            friendly_name,
        })
    }
}

fn attribute<'v>(attributes: &'v Attributes<'_>, name: &str) -> Option<&'v str> {
    attributes
        .iter()
        .find(|(seen, _)| *seen == name)
        .map(|(_, value)| value.as_str())
}

/// A small decimal number (digits only, at most 9 of them, surrounding
/// spaces allowed).
fn parse_number(value: &str) -> Option<u32> {
    let digits = value.trim_matches(' ');
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// No `@`, no whitespace or control characters, not empty.
fn valid_name_text(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '@' || c.is_whitespace() || c.is_control())
}

fn valid_domain(name: &str) -> bool {
    valid_name_text(name)
}

fn valid_local(name: &str) -> bool {
    valid_name_text(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(email: &str, lists: u8, network: Option<u8>) -> ListEntry {
        ListEntry::from_email(
            email,
            Lists::from_bits(lists).unwrap(),
            network.and_then(NetworkId::new),
        )
        .unwrap()
    }

    #[test]
    fn liberal_about_layout() {
        let document = "<?xml version=\"1.0\"?>\r\n<ml l='1'>\n  <!-- contacts -->\n  \
                        <d n=\"example.com\">\n    <c t=\"1\" n=\"bob\" l=\"3\" extra=\"x\"></c>\n    \
                        <c n='carol' l = '5' />\n  </d >\n</ml>\n";
        let list = MembershipList::parse(document.as_bytes()).unwrap();
        assert!(list.initial);
        assert_eq!(
            list.entries,
            [
                entry("bob@example.com", 3, Some(1)),
                entry("carol@example.com", 5, None)
            ]
        );
    }

    #[test]
    fn typed_errors_with_wire_codes() {
        let cases: &[(&str, AdlError, u16)] = &[
            (
                "<ml><d n=\"example.com\"></d></ml>",
                AdlError::DomainWithoutContacts("example.com".into()),
                240,
            ),
            (
                "<ml><d n=\"example.com\" /></ml>",
                AdlError::DomainWithoutContacts("example.com".into()),
                240,
            ),
            (
                "<ml><d><c n=\"bob\" /></d></ml>",
                AdlError::MissingDomainName,
                241,
            ),
            (
                "<ml><d n=\"a.com\"><c n=\"x\" /></d><d n=\"a.com\"><c n=\"y\" /></d></ml>",
                AdlError::DuplicateDomain("a.com".into()),
                241,
            ),
            (
                "<ml><d n=\"a.com\"><c n=\"x\" t=\"3\" /></d></ml>",
                AdlError::BadNetwork("3".into()),
                204,
            ),
            (
                "<ml><d n=\"a.com\"><c n=\"x\" l=\"32\" /></d></ml>",
                AdlError::BadLists("32".into()),
                241,
            ),
            (
                "<ml><d n=\"a.com\"><c l=\"1\" /></d></ml>",
                AdlError::BadContactName,
                241,
            ),
            (
                "<ml><d n=\"a.com\"><c n=\"x@y\" /></d></ml>",
                AdlError::BadContactName,
                241,
            ),
            (
                "<ml><x /></ml>",
                AdlError::UnexpectedElement("x".into()),
                241,
            ),
        ];
        for (document, error, code) in cases {
            let got = MembershipList::parse(document.as_bytes());
            assert_eq!(got.as_ref(), Err(error), "{document}");
            assert_eq!(error.wire_code(), *code, "{document}");
        }
        for broken in [
            "",
            "<ml",
            "<ml>",
            "<ml><d n=\"a.com\"><c n=\"x\" /></d>",
            "<ml><d n=\"a.com\"><c n=\"x\" /></d></ml>trailing",
            "<ml><d n=\"a.com\">text<c n=\"x\" /></d></ml>",
            "<ml><d n=\"a&bogus;\"><c n=\"x\" /></d></ml>",
            "<ml><d n=\"a.com\"><c n=\"x\" n=\"y\" /></d></ml>",
            "<ml><d n=\"a.com\"><c n=x /></d></ml>",
            "<ml l=\"yes\"></ml>",
            "<ml></mx>",
        ] {
            let got = MembershipList::parse(broken.as_bytes());
            assert!(
                matches!(
                    got,
                    Err(AdlError::Syntax { .. } | AdlError::UnexpectedElement(_))
                ),
                "{broken:?} gave {got:?}"
            );
        }
        assert_eq!(
            MembershipList::parse(b"<ml>\xff</ml>"),
            Err(AdlError::NotUtf8)
        );
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_bytes: 200,
            max_entries: 2,
            max_attribute: 10,
        };
        let three = "<ml><d n=\"a.com\"><c n=\"x\" /><c n=\"y\" /><c n=\"z\" /></d></ml>";
        assert_eq!(
            MembershipList::parse_with(three.as_bytes(), &limits),
            Err(AdlError::TooManyEntries { max: 2 })
        );
        let long = "<ml><d n=\"abcdefghijk.com\"><c n=\"x\" /></d></ml>";
        assert_eq!(
            MembershipList::parse_with(long.as_bytes(), &limits),
            Err(AdlError::AttributeTooLong { max: 10 })
        );
        let big = vec![b' '; 201];
        assert_eq!(
            MembershipList::parse_with(&big, &limits),
            Err(AdlError::TooLarge { len: 201, max: 200 })
        );
    }

    #[test]
    fn client_may_not_set_reverse_or_pending() {
        for (lists, ok) in [(1, true), (3, true), (5, true), (8, false), (17, false)] {
            let list = MembershipList {
                initial: false,
                entries: vec![entry("bob@example.com", lists, Some(1))],
            };
            assert_eq!(list.check_client_lists().is_ok(), ok, "{lists}");
        }
        assert_eq!(AdlError::ReservedLists.wire_code(), 241);
    }

    #[test]
    fn renders_grouped_escaped_and_without_whitespace() {
        let mut escaped = entry("o'neil@example.com", 1, Some(1));
        escaped.friendly_name = Some("A&B".into());
        let list = MembershipList {
            initial: false,
            entries: vec![
                escaped,
                entry("dave@yahoo.com", 1, Some(32)),
                entry("bob@example.com", 3, None),
            ],
        };
        assert_eq!(
            list.to_xml(),
            "<ml><d n=\"example.com\"><c n=\"o&apos;neil\" t=\"1\" l=\"1\" f=\"A&amp;B\" />\
             <c n=\"bob\" l=\"3\" /></d><d n=\"yahoo.com\"><c n=\"dave\" t=\"32\" l=\"1\" /></d></ml>"
        );
        assert_eq!(
            MembershipList::parse(list.to_xml().as_bytes())
                .unwrap()
                .entries
                .len(),
            3
        );
        assert_eq!(MembershipList::default().to_xml(), "<ml></ml>");
        let mut multi_line = entry("bob@example.com", 1, None);
        multi_line.friendly_name = Some("two\nlines\t".into());
        let list = MembershipList {
            initial: false,
            entries: vec![multi_line],
        };
        let xml = list.to_xml();
        assert!(xml.contains("f=\"two&#10;lines&#9;\""), "{xml}");
        assert_eq!(MembershipList::parse(xml.as_bytes()).unwrap(), list);
        assert!(matches!(
            MembershipList::parse(b"<ml><d n=\"a.com\"><c n=\"x\" f=\"&#1;\" /></d></ml>"),
            Err(AdlError::Syntax { .. })
        ));
    }

    #[test]
    fn email_split() {
        assert_eq!(entry("bob@example.com", 1, None).email(), "bob@example.com");
        for bad in ["bob", "@example.com", "bob@", "a@b@c"] {
            assert_eq!(ListEntry::from_email(bad, Lists::FL, None), None, "{bad}");
        }
        assert_eq!(Lists::FL | Lists::AL, Lists::from_bits(3).unwrap());
        assert!(Lists::from_bits(3).unwrap().contains(Lists::AL));
        assert_eq!(Lists::from_bits(32), None);
        assert_eq!(NetworkId::new(32), Some(NetworkId::YAHOO));
        assert_eq!(NetworkId::new(3), None);
    }
}
