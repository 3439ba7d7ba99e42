//! The SOAP documents of the Passport token service (`RST.srf`,
//! `RST2.srf`: WS-Trust over SOAP 1.1), as pure string work.
//!
//! Reading is liberal, because every client library wrote its envelope its
//! own way: elements are found by local name whatever their namespace
//! prefix, whitespace between and inside elements is ignored, attributes
//! may come in any order and with either quote, entities and CDATA are
//! decoded. It is also bounded: a document is scanned in one pass, a few
//! unterminated elements end the scan, and at most
//! [`MAX_TOKENS_PER_REQUEST`] tokens are read.
//!
//! Rendering is exact: the documents are byte for byte what the clients
//! were tested against, with no whitespace between elements (some clients'
//! hand-written parsers fail on it).

use crate::xml::{escape, unescape_lenient};
use std::fmt::Write as _;

/// SOAP 1.1 envelope.
pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// Passport's `psf:pp` header and faults.
pub const NS_PSF: &str = "http://schemas.microsoft.com/Passport/SoapServices/SOAPFault";
/// WS-Trust (2004/04).
pub const NS_WST: &str = "http://schemas.xmlsoap.org/ws/2004/04/trust";
/// WS-Security extensions (2003/06).
pub const NS_WSSE: &str = "http://schemas.xmlsoap.org/ws/2003/06/secext";
/// WS-Security utility (timestamps).
pub const NS_WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// WS-Policy (2002/12).
pub const NS_WSP: &str = "http://schemas.xmlsoap.org/ws/2002/12/policy";
/// WS-Addressing (2004/03).
pub const NS_WSA: &str = "http://schemas.xmlsoap.org/ws/2004/03/addressing";
/// SAML 1.0 assertions.
pub const NS_SAML: &str = "urn:oasis:names:tc:SAML:1.0:assertion";

/// Most `RequestSecurityToken`s read from one request; real clients ask
/// for at most eight.
pub const MAX_TOKENS_PER_REQUEST: usize = 16;

// ---------------------------------------------------------------------------
// Requests

/// The WS-Security `UsernameToken` of a request's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameToken {
    /// `Username`, surrounding whitespace removed; never empty.
    pub username: String,
    /// `Password`, exactly as sent (entities decoded).
    pub password: String,
}

/// Finds the first `Username` and `Password` elements (any prefix, any
/// place: clients disagree on the wrapping). `None` without both, or with
/// an empty username.
pub fn username_token(xml: &str) -> Option<UsernameToken> {
    let username = find_elements(xml, "Username")
        .next()?
        .text()
        .trim()
        .to_string();
    let password = find_elements(xml, "Password").next()?.text();
    if username.is_empty() {
        return None;
    }
    Some(UsernameToken { username, password })
}

/// One `wst:RequestSecurityToken` of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The number of its `Id` (`RST3` → 3), or its position.
    pub number: usize,
    /// Its `wsp:AppliesTo/wsa:EndpointReference/wsa:Address`, trimmed
    /// (empty if absent).
    pub address: String,
    /// The `URI` of its `wsse:PolicyReference` (`MBI`, `MBI_KEY_OLD`, …),
    /// if any.
    pub policy: Option<String>,
}

/// Every `RequestSecurityToken` of `xml`, in document order, at most
/// [`MAX_TOKENS_PER_REQUEST`].
pub fn token_requests(xml: &str) -> Vec<TokenRequest> {
    find_elements(xml, "RequestSecurityToken")
        .take(MAX_TOKENS_PER_REQUEST)
        .enumerate()
        .map(|(position, element)| {
            let number = element
                .attribute("Id")
                .and_then(|id| {
                    let digits: String = id.chars().skip_while(|c| !c.is_ascii_digit()).collect();
                    digits.parse::<usize>().ok()
                })
                .unwrap_or(position);
            let address = find_elements(element.inner, "Address")
                .next()
                .map(|a| a.text().trim().to_string())
                .unwrap_or_default();
            let policy = find_elements(element.inner, "PolicyReference")
                .next()
                .and_then(|p| p.attribute("URI"));
            TokenRequest {
                number,
                address,
                policy,
            }
        })
        .collect()
}

/// What a token-service request asks for: who signs in, and which tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RstRequest {
    pub username: String,
    pub password: String,
    pub tokens: Vec<TokenRequest>,
}

impl RstRequest {
    /// Reads a request envelope (a single `RequestSecurityToken` or a
    /// `RequestMultipleSecurityTokens`). `None` without credentials
    /// (see [`username_token`]); no tokens is not an error.
    pub fn parse(xml: &str) -> Option<RstRequest> {
        let UsernameToken { username, password } = username_token(xml)?;
        Some(RstRequest {
            username,
            password,
            tokens: token_requests(xml),
        })
    }
}

// ---------------------------------------------------------------------------
// Responses

/// The `<?xml …?>` declaration every answer starts with.
const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

/// The `S:Header` with Passport's `psf:pp` block: `fields` between the
/// server version and the server info.
fn passport_header(out: &mut String, server_time: u64, fields: &str) {
    let _ = write!(
        out,
        "<S:Header><psf:pp xmlns:psf=\"{NS_PSF}\"><psf:serverVersion>1</psf:serverVersion>{fields}\
         <psf:serverInfo Path=\"Live1\" RollingUpgradeState=\"ExclusiveNew\" LocVersion=\"0\" ServerTime=\"{}\">msngate</psf:serverInfo>\
         <psf:cookies/><psf:response/></psf:pp></S:Header>",
        iso8601(server_time)
    );
}

/// The `wsse:FailedAuthentication` fault the live service sent for a wrong
/// password or unknown account, `S:Fault` directly in `S:Envelope` (where
/// libpurple looks). `server_time` in seconds since the Unix epoch.
pub fn failed_authentication(server_time: u64) -> String {
    let mut out = String::with_capacity(800);
    out.push_str(DECLARATION);
    let _ = write!(
        out,
        "<S:Envelope xmlns:S=\"{NS_SOAP}\" xmlns:wsse=\"{NS_WSSE}\" xmlns:psf=\"{NS_PSF}\">"
    );
    passport_header(
        &mut out,
        server_time,
        "<psf:authstate>0x80048800</psf:authstate><psf:reqstatus>0x80048821</psf:reqstatus>",
    );
    out.push_str(
        "<S:Fault><faultcode>wsse:FailedAuthentication</faultcode><faultstring>Authentication Failure</faultstring></S:Fault>\
         </S:Envelope>",
    );
    out
}

/// Who signed in, as the success header names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// Passport unique id (`psf:PUID`, 16 upper-case hex digits).
    pub puid: u64,
    /// Contact id (`CID` property, 16 lower-case hex digits).
    pub cid: u64,
    /// The sign-in name (`AuthMembername`).
    pub membername: &'a str,
}

/// The `urn:passport:…` kind of a `wsse:BinarySecurityToken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `urn:passport:compact`, `Id="Compact<n>"`.
    Compact,
    /// `urn:passport:legacy`, `Id="PPToken<n>"`.
    Legacy,
}

impl TokenKind {
    /// The `wst:TokenType` and `wsse:KeyIdentifier` value type.
    fn urn(self) -> &'static str {
        match self {
            TokenKind::Compact => "urn:passport:compact",
            TokenKind::Legacy => "urn:passport:legacy",
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            TokenKind::Compact => "Compact",
            TokenKind::Legacy => "PPToken",
        }
    }
}

/// The `wst:RequestedSecurityToken` of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuedToken {
    /// An `EncryptedData` blob (`urn:passport:legacy`,
    /// `Id="BinaryDAToken<n>"`): what `http://Passport.NET/tb` gets.
    Encrypted { cipher_value: String },
    /// A `wsse:BinarySecurityToken` whose text is `value` (`t=…&p=…`).
    Binary { kind: TokenKind, value: String },
}

/// One `wst:RequestSecurityTokenResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The number of the request it answers (`RST<n>`).
    pub number: usize,
    /// The `AppliesTo` address, as requested.
    pub address: String,
    /// Validity, in seconds since the Unix epoch.
    pub created: u64,
    pub expires: u64,
    pub token: IssuedToken,
    /// The `wst:BinarySecret` of the proof token (base64).
    pub proof_key: String,
}

/// Builds the success answer: a `RequestSecurityTokenResponseCollection`
/// with one response per [`push`](TokenResponses::push), in that order.
#[derive(Debug, Clone)]
pub struct TokenResponses<'a> {
    member: Member<'a>,
    server_time: u64,
    tokens: Vec<TokenResponse>,
}

impl<'a> TokenResponses<'a> {
    /// An answer for `member`, dated `server_time` (seconds since the Unix
    /// epoch).
    pub fn new(member: Member<'a>, server_time: u64) -> Self {
        TokenResponses {
            member,
            server_time,
            tokens: Vec::new(),
        }
    }

    pub fn push(&mut self, token: TokenResponse) -> &mut Self {
        self.tokens.push(token);
        self
    }

    /// The whole document.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048 + self.tokens.len() * 1024);
        out.push_str(DECLARATION);
        let _ = write!(out, "<S:Envelope xmlns:S=\"{NS_SOAP}\">");
        passport_header(&mut out, self.server_time, &self.member_fields());
        let _ = write!(
            out,
            "<S:Body><wst:RequestSecurityTokenResponseCollection xmlns:S=\"{NS_SOAP}\" xmlns:wst=\"{NS_WST}\" \
             xmlns:wsse=\"{NS_WSSE}\" xmlns:wsu=\"{NS_WSU}\" xmlns:saml=\"{NS_SAML}\" xmlns:wsp=\"{NS_WSP}\" xmlns:psf=\"{NS_PSF}\">"
        );
        for token in &self.tokens {
            render_token(&mut out, token);
        }
        out.push_str("</wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>");
        out
    }

    /// The `psf:pp` fields of a successful sign-in.
    fn member_fields(&self) -> String {
        let Member {
            puid,
            cid,
            membername,
        } = self.member;
        format!(
            "<psf:PUID>{puid:016X}</psf:PUID><psf:configVersion>3.100.2199.0</psf:configVersion>\
             <psf:uiVersion>3.0.869.0</psf:uiVersion><psf:authstate>0x48803</psf:authstate><psf:reqstatus>0x0</psf:reqstatus>\
             <psf:credProperties><psf:credProperty Name=\"MainBrandID\"></psf:credProperty>\
             <psf:credProperty Name=\"BrandIDList\"></psf:credProperty>\
             <psf:credProperty Name=\"IsWinLiveUser\">true</psf:credProperty>\
             <psf:credProperty Name=\"CID\">{cid:016x}</psf:credProperty>\
             <psf:credProperty Name=\"AuthMembername\">{}</psf:credProperty></psf:credProperties>\
             <psf:extProperties></psf:extProperties>",
            escape(membername)
        )
    }
}

/// One `wst:RequestSecurityTokenResponse`.
fn render_token(out: &mut String, token: &TokenResponse) {
    let n = token.number;
    // (TokenType, Id, KeyIdentifier ValueType): the `tb` blob's key
    // identifier has no kind suffix.
    let (token_type, id, value_type) = match &token.token {
        IssuedToken::Encrypted { .. } => (
            TokenKind::Legacy.urn(),
            format!("BinaryDAToken{n}"),
            "urn:passport",
        ),
        IssuedToken::Binary { kind, .. } => {
            (kind.urn(), format!("{}{n}", kind.id_prefix()), kind.urn())
        }
    };
    let _ = write!(
        out,
        "<wst:RequestSecurityTokenResponse><wst:TokenType>{token_type}</wst:TokenType>\
         <wsp:AppliesTo xmlns:wsa=\"{NS_WSA}\"><wsa:EndpointReference><wsa:Address>{}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>\
         <wst:LifeTime><wsu:Created>{}</wsu:Created><wsu:Expires>{}</wsu:Expires></wst:LifeTime>\
         <wst:RequestedSecurityToken>",
        escape(&token.address),
        iso8601(token.created),
        iso8601(token.expires),
    );
    match &token.token {
        IssuedToken::Encrypted { cipher_value } => {
            let _ = write!(
                out,
                "<EncryptedData xmlns=\"http://www.w3.org/2001/04/xmlenc#\" Id=\"{id}\" \
                 Type=\"http://www.w3.org/2001/04/xmlenc#Element\"><EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#tripledes-cbc\"></EncryptionMethod>\
                 <ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:KeyName>http://Passport.NET/STS</ds:KeyName></ds:KeyInfo>\
                 <CipherData><CipherValue>{}</CipherValue></CipherData></EncryptedData>",
                escape(cipher_value)
            );
        }
        IssuedToken::Binary { value, .. } => {
            let _ = write!(
                out,
                "<wsse:BinarySecurityToken Id=\"{id}\">{}</wsse:BinarySecurityToken>",
                escape(value)
            );
        }
    }
    let _ = write!(
        out,
        "</wst:RequestedSecurityToken>\
         <wst:RequestedTokenReference><wsse:KeyIdentifier ValueType=\"{value_type}\"></wsse:KeyIdentifier>\
         <wsse:Reference URI=\"#{id}\"></wsse:Reference></wst:RequestedTokenReference>\
         <wst:RequestedProofToken><wst:BinarySecret>{}</wst:BinarySecret></wst:RequestedProofToken>\
         </wst:RequestSecurityTokenResponse>",
        escape(&token.proof_key)
    );
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) for `secs` since the Unix epoch.
pub fn iso8601(secs: u64) -> String {
    let (year, month, day) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------
// Minimal, tolerant XML reading

/// An element found by [`find_elements`]: the text of its start tag after
/// the name, and everything between its start and end tags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Element<'a> {
    pub(crate) attributes: &'a str,
    pub(crate) inner: &'a str,
}

impl Element<'_> {
    /// The value of attribute `name` (any prefix), entities decoded.
    pub(crate) fn attribute(&self, name: &str) -> Option<String> {
        let mut rest = self.attributes;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if rest.is_empty() {
                return None;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim();
            let after = rest[eq + 1..].trim_start();
            let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let body = &after[1..];
            let end = body.find(quote)?;
            let local = key.rsplit(':').next().unwrap_or(key);
            if local == name {
                return Some(unescape_lenient(&body[..end]));
            }
            rest = &body[end + 1..];
        }
    }

    /// The element's character data: entities decoded, CDATA sections kept
    /// verbatim, nested markup and comments dropped.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let mut rest = self.inner;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("<![CDATA[") {
                let end = after.find("]]>").unwrap_or(after.len());
                out.push_str(&after[..end]);
                rest = after.get(end + 3..).unwrap_or("");
            } else if let Some(after) = rest.strip_prefix("<!--") {
                rest = after
                    .find("-->")
                    .and_then(|end| after.get(end + 3..))
                    .unwrap_or("");
            } else if rest.starts_with('<') {
                rest = rest
                    .find('>')
                    .and_then(|end| rest.get(end + 1..))
                    .unwrap_or("");
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                out.push_str(&unescape_lenient(&rest[..end]));
                rest = &rest[end..];
            }
        }
        out
    }
}

/// Longest element name [`find_elements`] considers.
const MAX_NAME_LEN: usize = 128;
/// Unterminated candidates [`find_elements`] skips before giving up.
const MAX_BROKEN_ELEMENTS: usize = 8;

/// Every element whose local name is `local`, whatever its prefix, in
/// document order. Unterminated elements are skipped; same-name nesting is
/// not supported (none of the elements read here nests).
pub(crate) fn find_elements<'a>(
    xml: &'a str,
    local: &'a str,
) -> impl Iterator<Item = Element<'a>> + 'a {
    let mut cursor = 0;
    // Each broken candidate may cost a scan of the rest of the document;
    // a few are tolerated, then the document is given up on, so hostile
    // input cannot make this quadratic.
    let mut broken = 0;
    std::iter::from_fn(move || {
        loop {
            if broken > MAX_BROKEN_ELEMENTS {
                return None;
            }
            let start = cursor + xml.get(cursor..)?.find('<')?;
            cursor = start + 1;
            let tag = &xml[start + 1..];
            let Some(name_len) = tag
                .bytes()
                .take(MAX_NAME_LEN)
                .position(|b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
            else {
                continue;
            };
            let qname = &tag[..name_len];
            if qname.is_empty() || qname.starts_with(['!', '?']) {
                continue;
            }
            if qname.rsplit(':').next() != Some(local) {
                continue;
            }
            let Some(tag_end) = start_tag_end(&tag[name_len..]) else {
                broken += 1;
                continue;
            };
            let attributes_end = name_len + tag_end;
            let attributes = &tag[name_len..attributes_end];
            let after_tag = start + 1 + attributes_end + 1;
            if attributes.trim_end().ends_with('/') {
                cursor = after_tag;
                return Some(Element {
                    attributes,
                    inner: "",
                });
            }
            let body = xml.get(after_tag..)?;
            let Some(close) = find_close(body, qname) else {
                broken += 1;
                continue;
            };
            cursor = after_tag + close;
            return Some(Element {
                attributes,
                inner: &body[..close],
            });
        }
    })
}

/// The index of the `>` ending a start tag, skipping quoted attribute values.
fn start_tag_end(tag: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in tag.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '>') => return Some(i),
            (None, '<') => return None,
            _ => {}
        }
    }
    None
}

/// The index of `</qname>` (optional spaces before `>`) in `body`.
fn find_close(body: &str, qname: &str) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + body.get(from..)?.find("</")?;
        let rest = &body[at + 2..];
        if let Some(after) = rest.strip_prefix(qname)
            && after.trim_start().starts_with('>')
        {
            return Some(at);
        }
        from = at + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2003-09-05T12:17:09Z.
    const T0: u64 = 1_062_764_229;
    const DAY: u64 = 86_400;

    #[test]
    fn envelopes_are_read_whatever_the_prefixes() {
        let xml = r#"<?xml version="1.0"?><Envelope xmlns="x"><Header><wsse:Security><wsse:UsernameToken Id="user">
            <wsse:Username> bob@example.com </wsse:Username><wsse:Password>a&amp;b&lt;c&#33;&#x41;&bogus;</wsse:Password>
            </wsse:UsernameToken></wsse:Security></Header><Body><ps:RequestMultipleSecurityTokens Id="RSTS">
            <wst:RequestSecurityToken Id="RST0"><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>http://Passport.NET/tb</wsa:Address>
            </wsa:EndpointReference></wsp:AppliesTo></wst:RequestSecurityToken>
            <wst:RequestSecurityToken Id='RST1'><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>messengerclear.live.com</wsa:Address>
            </wsa:EndpointReference></wsp:AppliesTo><wsse:PolicyReference URI="MBI_KEY_OLD"/></wst:RequestSecurityToken>
            </ps:RequestMultipleSecurityTokens></Body></Envelope>"#;
        let r = RstRequest::parse(xml).unwrap();
        assert_eq!(r.username, "bob@example.com");
        assert_eq!(r.password, "a&b<c!A&bogus;");
        assert_eq!(
            r.tokens,
            vec![
                TokenRequest {
                    number: 0,
                    address: "http://Passport.NET/tb".into(),
                    policy: None,
                },
                TokenRequest {
                    number: 1,
                    address: "messengerclear.live.com".into(),
                    policy: Some("MBI_KEY_OLD".into()),
                },
            ]
        );
        let cdata = "<Username>x@y.z</Username><s:Password><![CDATA[p<&>]]></s:Password>";
        assert_eq!(RstRequest::parse(cdata).unwrap().password, "p<&>");
        assert!(RstRequest::parse("<Username>x@y.z</Username>").is_none());
        assert!(RstRequest::parse("<Username>x@y.z<Password>p</Password>").is_none());
        assert!(RstRequest::parse("<Username> </Username><Password>p</Password>").is_none());
        assert!(RstRequest::parse("not xml at all < > & ;").is_none());
        assert!(RstRequest::parse("").is_none());
        assert!(RstRequest::parse("<wsse:Username>x</wsse:Username><wsse:Password>p").is_none());
    }

    #[test]
    fn attributes_whitespace_and_comments_do_not_matter() {
        let xml = "<a:Username >u@v.w</a:Username ><Password\n>p<!-- x --> q</Password>\
                   <RequestSecurityToken\n  xmlns:q = 'n'  q:Id = \"RST9\" ><Address>\n a.b \n</Address>\
                   <PolicyReference Other=\"1\" URI='MBI'\t/></RequestSecurityToken>\
                   <RequestSecurityToken Id=\"none\"><Address/></RequestSecurityToken>";
        let r = RstRequest::parse(xml).unwrap();
        assert_eq!(r.username, "u@v.w");
        assert_eq!(r.password, "p q");
        assert_eq!(
            r.tokens,
            vec![
                TokenRequest {
                    number: 9,
                    address: "a.b".into(),
                    policy: Some("MBI".into()),
                },
                TokenRequest {
                    number: 1,
                    address: String::new(),
                    policy: None,
                },
            ]
        );
    }

    #[test]
    fn at_most_sixteen_tokens_are_read() {
        let mut xml = String::from("<Username>u</Username><Password>p</Password>");
        for n in 0..40 {
            xml.push_str(&format!(
                "<RequestSecurityToken Id=\"RST{n}\"><Address>a{n}</Address></RequestSecurityToken>"
            ));
        }
        let tokens = RstRequest::parse(&xml).unwrap().tokens;
        assert_eq!(tokens.len(), MAX_TOKENS_PER_REQUEST);
        assert_eq!(tokens[15].address, "a15");
    }

    #[test]
    fn hostile_envelopes_stay_cheap() {
        // Guards against quadratic scanning: each of these would take
        // minutes if every broken element rescanned the document.
        let size = 64 * 1024;
        let patterns = [
            "<".repeat(size),
            "&".repeat(size),
            "<Username>".repeat(size / 10),
            "<Username></x".repeat(size / 13),
            "<a:Username b=\"".repeat(size / 15),
            format!(
                "<Username>u</Username><Password>p</Password>{}",
                "<RequestSecurityToken>".repeat(size / 22)
            ),
        ];
        for body in patterns {
            let started = std::time::Instant::now();
            let _ = RstRequest::parse(&body);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "{:?}",
                &body[..40]
            );
        }
    }

    const FAULT: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
    <S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:wsse=\"http://schemas.xmlsoap.org/ws/2003/06/secext\" xmlns:psf=\"http://schemas.microsoft.com/Passport/SoapServices/SOAPFault\">\
    <S:Header>\
    <psf:pp xmlns:psf=\"http://schemas.microsoft.com/Passport/SoapServices/SOAPFault\">\
    <psf:serverVersion>1</psf:serverVersion><psf:authstate>0x80048800</psf:authstate>\
    <psf:reqstatus>0x80048821</psf:reqstatus>\
    <psf:serverInfo Path=\"Live1\" RollingUpgradeState=\"ExclusiveNew\" LocVersion=\"0\" ServerTime=\"2003-09-05T12:17:09Z\">msngate</psf:serverInfo>\
    <psf:cookies/><psf:response/></psf:pp></S:Header><S:Fault>\
    <faultcode>wsse:FailedAuthentication</faultcode>\
    <faultstring>Authentication Failure</faultstring></S:Fault></S:Envelope>";

    #[test]
    fn the_fault_is_exactly_what_clients_expect() {
        assert_eq!(failed_authentication(T0), FAULT);
    }

    const FALLBACK_ANSWER: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
    <S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Header>\
    <psf:pp xmlns:psf=\"http://schemas.microsoft.com/Passport/SoapServices/SOAPFault\">\
    <psf:serverVersion>1</psf:serverVersion><psf:PUID>000600000000002A</psf:PUID>\
    <psf:configVersion>3.100.2199.0</psf:configVersion>\
    <psf:uiVersion>3.0.869.0</psf:uiVersion><psf:authstate>0x48803</psf:authstate>\
    <psf:reqstatus>0x0</psf:reqstatus><psf:credProperties>\
    <psf:credProperty Name=\"MainBrandID\"></psf:credProperty>\
    <psf:credProperty Name=\"BrandIDList\"></psf:credProperty>\
    <psf:credProperty Name=\"IsWinLiveUser\">true</psf:credProperty>\
    <psf:credProperty Name=\"CID\">000000000000002a</psf:credProperty>\
    <psf:credProperty Name=\"AuthMembername\">a&amp;b@example.com</psf:credProperty>\
    </psf:credProperties><psf:extProperties></psf:extProperties>\
    <psf:serverInfo Path=\"Live1\" RollingUpgradeState=\"ExclusiveNew\" LocVersion=\"0\" ServerTime=\"2003-09-05T12:17:09Z\">msngate</psf:serverInfo>\
    <psf:cookies/><psf:response/></psf:pp></S:Header><S:Body>\
    <wst:RequestSecurityTokenResponseCollection xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:wst=\"http://schemas.xmlsoap.org/ws/2004/04/trust\" xmlns:wsse=\"http://schemas.xmlsoap.org/ws/2003/06/secext\" xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\" xmlns:saml=\"urn:oasis:names:tc:SAML:1.0:assertion\" xmlns:wsp=\"http://schemas.xmlsoap.org/ws/2002/12/policy\" xmlns:psf=\"http://schemas.microsoft.com/Passport/SoapServices/SOAPFault\">\
    <wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:legacy</wst:TokenType>\
    <wsp:AppliesTo xmlns:wsa=\"http://schemas.xmlsoap.org/ws/2004/03/addressing\">\
    <wsa:EndpointReference><wsa:Address>http://Passport.NET/tb</wsa:Address>\
    </wsa:EndpointReference></wsp:AppliesTo><wst:LifeTime>\
    <wsu:Created>2003-09-05T12:17:09Z</wsu:Created>\
    <wsu:Expires>2003-09-06T12:17:09Z</wsu:Expires></wst:LifeTime><wst:RequestedSecurityToken>\
    <EncryptedData xmlns=\"http://www.w3.org/2001/04/xmlenc#\" Id=\"BinaryDAToken0\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\">\
    <EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#tripledes-cbc\">\
    </EncryptionMethod><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\
    <ds:KeyName>http://Passport.NET/STS</ds:KeyName></ds:KeyInfo><CipherData>\
    <CipherValue>CIPHER</CipherValue></CipherData></EncryptedData>\
    </wst:RequestedSecurityToken><wst:RequestedTokenReference>\
    <wsse:KeyIdentifier ValueType=\"urn:passport\"></wsse:KeyIdentifier>\
    <wsse:Reference URI=\"#BinaryDAToken0\"></wsse:Reference></wst:RequestedTokenReference>\
    <wst:RequestedProofToken><wst:BinarySecret>PROOF0</wst:BinarySecret>\
    </wst:RequestedProofToken></wst:RequestSecurityTokenResponse>\
    <wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:compact</wst:TokenType>\
    <wsp:AppliesTo xmlns:wsa=\"http://schemas.xmlsoap.org/ws/2004/03/addressing\">\
    <wsa:EndpointReference><wsa:Address>messengerclear.live.com</wsa:Address>\
    </wsa:EndpointReference></wsp:AppliesTo><wst:LifeTime>\
    <wsu:Created>2003-09-05T12:17:09Z</wsu:Created>\
    <wsu:Expires>2003-09-06T12:17:09Z</wsu:Expires></wst:LifeTime><wst:RequestedSecurityToken>\
    <wsse:BinarySecurityToken Id=\"Compact1\">t=T&amp;p=P</wsse:BinarySecurityToken>\
    </wst:RequestedSecurityToken><wst:RequestedTokenReference>\
    <wsse:KeyIdentifier ValueType=\"urn:passport:compact\"></wsse:KeyIdentifier>\
    <wsse:Reference URI=\"#Compact1\"></wsse:Reference></wst:RequestedTokenReference>\
    <wst:RequestedProofToken><wst:BinarySecret>PROOF1</wst:BinarySecret>\
    </wst:RequestedProofToken></wst:RequestSecurityTokenResponse>\
    <wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:legacy</wst:TokenType>\
    <wsp:AppliesTo xmlns:wsa=\"http://schemas.xmlsoap.org/ws/2004/03/addressing\">\
    <wsa:EndpointReference><wsa:Address>messenger.msn.com</wsa:Address>\
    </wsa:EndpointReference></wsp:AppliesTo><wst:LifeTime>\
    <wsu:Created>2003-09-05T12:17:09Z</wsu:Created>\
    <wsu:Expires>2003-09-06T12:17:09Z</wsu:Expires></wst:LifeTime><wst:RequestedSecurityToken>\
    <wsse:BinarySecurityToken Id=\"PPToken2\">t=T&amp;p=P</wsse:BinarySecurityToken>\
    </wst:RequestedSecurityToken><wst:RequestedTokenReference>\
    <wsse:KeyIdentifier ValueType=\"urn:passport:legacy\"></wsse:KeyIdentifier>\
    <wsse:Reference URI=\"#PPToken2\"></wsse:Reference></wst:RequestedTokenReference>\
    <wst:RequestedProofToken><wst:BinarySecret>PROOF2</wst:BinarySecret>\
    </wst:RequestedProofToken></wst:RequestSecurityTokenResponse>\
    </wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>";

    #[test]
    fn token_responses_are_rendered_exactly() {
        let member = Member {
            puid: 0x0006_0000_0000_002A,
            cid: 42,
            membername: "a&b@example.com",
        };
        let mut answer = TokenResponses::new(member, T0);
        let lifetime = |number, address: &str, token, proof_key: &str| TokenResponse {
            number,
            address: address.into(),
            created: T0,
            expires: T0 + DAY,
            token,
            proof_key: proof_key.into(),
        };
        answer
            .push(lifetime(
                0,
                "http://Passport.NET/tb",
                IssuedToken::Encrypted {
                    cipher_value: "CIPHER".into(),
                },
                "PROOF0",
            ))
            .push(lifetime(
                1,
                "messengerclear.live.com",
                IssuedToken::Binary {
                    kind: TokenKind::Compact,
                    value: "t=T&p=P".into(),
                },
                "PROOF1",
            ))
            .push(lifetime(
                2,
                "messenger.msn.com",
                IssuedToken::Binary {
                    kind: TokenKind::Legacy,
                    value: "t=T&p=P".into(),
                },
                "PROOF2",
            ));
        assert_eq!(answer.render(), FALLBACK_ANSWER);
    }

    #[test]
    fn rendered_text_is_escaped() {
        let mut answer = TokenResponses::new(
            Member {
                puid: 1,
                cid: 1,
                membername: "<x>",
            },
            0,
        );
        answer.push(TokenResponse {
            number: 3,
            address: "a\"b<c>".into(),
            created: 0,
            expires: 0,
            token: IssuedToken::Binary {
                kind: TokenKind::Compact,
                value: "t=<&>".into(),
            },
            proof_key: "'".into(),
        });
        let xml = answer.render();
        assert!(
            xml.contains("<psf:credProperty Name=\"AuthMembername\">&lt;x&gt;</psf:credProperty>")
        );
        assert!(xml.contains("<wsa:Address>a&quot;b&lt;c&gt;</wsa:Address>"));
        assert!(xml.contains("Id=\"Compact3\">t=&lt;&amp;&gt;</wsse:BinarySecurityToken>"));
        assert!(xml.contains("<wst:BinarySecret>&apos;</wst:BinarySecret>"));
        assert!(!xml.contains('\n') && !xml.contains("> <"));
    }

    #[test]
    fn dates_are_iso8601_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(T0), "2003-09-05T12:17:09Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        // Far beyond any clock, but no overflow panic.
        assert!(iso8601(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn xml_escaping_round_trips() {
        let s = "t=1&p=2 <'\"> é";
        assert_eq!(escape("t=1&p=2"), "t=1&amp;p=2");
        assert_eq!(unescape_lenient(&escape(s)), s);
        assert_eq!(
            unescape_lenient("&#1114112;&#xD800;&"),
            "&#1114112;&#xD800;&"
        );
    }

    proptest! {
        #[test]
        fn any_text_is_read_without_panicking(text in ".{0,400}") {
            let _ = RstRequest::parse(&text);
        }

        #[test]
        fn credentials_survive_escaping(
            username in "[!-~]([ -~]{0,40}[!-~])?",
            password in "[ -~é€]{0,40}",
            address in "[ -~]{0,40}",
        ) {
            let xml = format!(
                "<s:Envelope><s:Header><wsse:Security><wsse:UsernameToken Id=\"user\">\
                 <wsse:Username>{}</wsse:Username><wsse:Password>{}</wsse:Password>\
                 </wsse:UsernameToken></wsse:Security></s:Header><s:Body>\
                 <wst:RequestSecurityToken Id=\"RST4\"><wsp:AppliesTo><wsa:EndpointReference>\
                 <wsa:Address>{}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>\
                 </wst:RequestSecurityToken></s:Body></s:Envelope>",
                escape(&username), escape(&password), escape(&address),
            );
            let request = RstRequest::parse(&xml).unwrap();
            prop_assert_eq!(request.username, username);
            prop_assert_eq!(request.password, password);
            prop_assert_eq!(request.tokens.len(), 1);
            prop_assert_eq!(request.tokens[0].number, 4);
            prop_assert_eq!(&request.tokens[0].address, address.trim());
        }
    }
}
