//! The WS-Trust token service, `POST /RST.srf` and `/RST2.srf`.

use super::header_case::with_header_case;
use super::{Passport, Refusal, empty, loggable, peer, source_ip, xml_response};
use crate::store::AccountRow;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Response, StatusCode, header};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

/// Largest `RST.srf` request body accepted (413 beyond).
pub const MAX_RST_BODY: usize = 64 * 1024;

/// Most `RequestSecurityToken`s answered in one `RST.srf` request; real
/// clients ask for at most eight.
const MAX_TOKENS_PER_REQUEST: usize = 16;

const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const NS_PSF: &str = "http://schemas.microsoft.com/Passport/SoapServices/SOAPFault";
const NS_WST: &str = "http://schemas.xmlsoap.org/ws/2004/04/trust";
const NS_WSSE: &str = "http://schemas.xmlsoap.org/ws/2003/06/secext";
const NS_WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const NS_WSP: &str = "http://schemas.xmlsoap.org/ws/2002/12/policy";
const NS_WSA: &str = "http://schemas.xmlsoap.org/ws/2004/03/addressing";
const NS_SAML: &str = "urn:oasis:names:tc:SAML:1.0:assertion";

/// The AppliesTo address whose token is only a session key for token renewal.
const PASSPORT_TB: &str = "http://Passport.NET/tb";
/// AppliesTo addresses whose token is the ticket `USR … TWN S` presents.
const MESSENGER_ADDRESSES: [&str; 2] = ["messengerclear.live.com", "messenger.msn.com"];

/// One `wst:RequestSecurityToken` of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The number of its `Id` (`RST3` → 3), or its position.
    pub number: usize,
    /// Its `wsp:AppliesTo/wsa:EndpointReference/wsa:Address`.
    pub address: String,
}

/// What an `RST.srf` request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RstRequest {
    pub username: String,
    pub password: String,
    pub tokens: Vec<TokenRequest>,
}

/// Reads an `RST.srf` envelope: `Username`, `Password` and each
/// `RequestSecurityToken`'s `Id` and `Address`, whatever their namespace
/// prefixes, XML entities decoded. `None` without a `Username` and a
/// `Password`.
pub fn parse_rst(xml: &str) -> Option<RstRequest> {
    let username = find_elements(xml, "Username")
        .next()?
        .text()
        .trim()
        .to_string();
    let password = find_elements(xml, "Password").next()?.text();
    if username.is_empty() {
        return None;
    }
    let tokens = find_elements(xml, "RequestSecurityToken")
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
            TokenRequest { number, address }
        })
        .collect();
    Some(RstRequest {
        username,
        password,
        tokens,
    })
}

/// The `RST.srf` service.
///
/// Request (libpurple, KMess, Miranda; prefixes and the list of tokens vary):
///
/// ```text
/// POST /RST.srf HTTP/1.1
/// Content-Type: text/xml; charset=utf-8
///
/// <Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsse=… xmlns:wst=… xmlns:wsp=… xmlns:wsa=…>
///   <Header>
///     <ps:AuthInfo …>…</ps:AuthInfo>
///     <wsse:Security><wsse:UsernameToken Id="user">
///       <wsse:Username>alice@example.com</wsse:Username>
///       <wsse:Password>s3cret!</wsse:Password>
///     </wsse:UsernameToken></wsse:Security>
///   </Header>
///   <Body><ps:RequestMultipleSecurityTokens …>
///     <wst:RequestSecurityToken Id="RST0"> … <wsa:Address>http://Passport.NET/tb</wsa:Address> …
///     <wst:RequestSecurityToken Id="RST1"> … <wsa:Address>messengerclear.live.com</wsa:Address>
///        <wsse:PolicyReference URI="…"/> …
///   </ps:RequestMultipleSecurityTokens></Body>
/// </Envelope>
/// ```
///
/// Success — `200`, `Content-Type: text/xml; charset=utf-8`, one
/// `RequestSecurityTokenResponse` per requested token, in request order:
///
/// ```text
/// <?xml version="1.0" encoding="utf-8"?>
/// <S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">
///   <S:Header><psf:pp xmlns:psf="…/SOAPFault">
///     <psf:serverVersion>1</psf:serverVersion><psf:PUID>…</psf:PUID> … <psf:reqstatus>0x0</psf:reqstatus> …
///   </psf:pp></S:Header>
///   <S:Body>
///     <wst:RequestSecurityTokenResponseCollection xmlns:wst=… xmlns:wsse=… xmlns:wsu=… xmlns:wsp=… …>
///       <wst:RequestSecurityTokenResponse>   (http://Passport.NET/tb: an opaque
///          EncryptedData/CipherData/CipherValue and a RequestedProofToken/BinarySecret)
///       <wst:RequestSecurityTokenResponse>
///         <wst:TokenType>urn:passport:compact</wst:TokenType>
///         <wsp:AppliesTo><wsa:EndpointReference><wsa:Address>messengerclear.live.com</wsa:Address>…
///         <wst:LifeTime><wsu:Created>…</wsu:Created><wsu:Expires>…</wsu:Expires></wst:LifeTime>
///         <wst:RequestedSecurityToken>
///           <wsse:BinarySecurityToken Id="Compact1">t=…&amp;p=…</wsse:BinarySecurityToken>
///         </wst:RequestedSecurityToken>
///         <wst:RequestedTokenReference>…<wsse:Reference URI="#Compact1"/></wst:RequestedTokenReference>
///         <wst:RequestedProofToken><wst:BinarySecret>…</wst:BinarySecret></wst:RequestedProofToken>
///       </wst:RequestSecurityTokenResponse>
///       …
///     </wst:RequestSecurityTokenResponseCollection>
///   </S:Body>
/// </S:Envelope>
/// ```
///
/// The token of `messengerclear.live.com` and `messenger.msn.com` (`Id`
/// `Compact<n>`/`PPToken<n>` after `RST<n>`: libpurple indexes by it) is a
/// Passport ticket from [`crate::core::tickets`], which `USR … TWN S`
/// redeems; other addresses get an opaque token that signs nothing in. What
/// the clients read: libpurple walks the collection by `Address` and splits
/// `BinarySecurityToken` at `&`; KMess wants the `wst:` prefix on the
/// collection; Miranda takes the text of the first `<wsse:BinarySecurityToken`
/// (hence the `tb` entry carries none) and splits it at `&p=`.
///
/// Failure (unknown account, wrong password, no credentials) — `200` (Miranda
/// treats any other status as "server unreachable") with the fault the live
/// service sent, `S:Fault` directly in `S:Envelope` (where libpurple looks):
///
/// ```text
/// <?xml version="1.0" encoding="utf-8"?>
/// <S:Envelope xmlns:S=… xmlns:wsse=… xmlns:psf=…>
///   <S:Header><psf:pp …>…<psf:reqstatus>0x80048821</psf:reqstatus>…</psf:pp></S:Header>
///   <S:Fault>
///     <faultcode>wsse:FailedAuthentication</faultcode>
///     <faultstring>Authentication Failure</faultstring>
///   </S:Fault>
/// </S:Envelope>
/// ```
///
/// A body over [`MAX_RST_BODY`] gets `413`, a store outage `500`.
async fn rst(
    passport: &Passport,
    (peer, source): (&str, IpAddr),
    route: &str,
    body: &[u8],
) -> Response<Body> {
    let now = SystemTime::now();
    let text = String::from_utf8_lossy(body);
    let Some(request) = parse_rst(&text) else {
        info!(%peer, route, reason = "malformed request: no Username or Password", "passport sign-in refused");
        passport.count(false);
        return xml_response(rst_fault(now));
    };
    match passport
        .check(&request.username, &request.password, source)
        .await
    {
        Ok(account) => {
            let ticket = passport.hub.tickets.issue(&account.handle);
            info!(handle = %account.handle, %peer, route, "passport sign-in accepted");
            passport.count(true);
            xml_response(rst_success(
                &account,
                &ticket,
                &request.tokens,
                now,
                passport.ticket_lifetime,
            ))
        }
        Err(Refusal::Unavailable(e)) => {
            warn!(handle = %loggable(&request.username), %peer, route, error = %e, "passport sign-in failed: account store unavailable");
            empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Err(refusal) => {
            info!(handle = %loggable(&request.username), %peer, route, reason = %refusal, "passport sign-in refused");
            passport.count(false);
            xml_response(rst_fault(now))
        }
    }
}

pub(super) async fn handler(
    State(passport): State<Arc<Passport>>,
    request: Request,
) -> Response<Body> {
    let peer = peer(&request);
    let source = source_ip(&request);
    let route = if request.uri().path().eq_ignore_ascii_case("/RST2.srf") {
        "RST2.srf"
    } else {
        "RST.srf"
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let response = if declared.is_some_and(|n| n > MAX_RST_BODY as u64) {
        info!(%peer, route, reason = "request body too large", "passport sign-in refused");
        passport.count(false);
        empty(StatusCode::PAYLOAD_TOO_LARGE)
    } else {
        match axum::body::to_bytes(request.into_body(), MAX_RST_BODY).await {
            Ok(body) => rst(&passport, (&peer, source), route, &body).await,
            Err(e) => {
                info!(%peer, route, reason = %format!("request body unreadable or too large: {e}"), "passport sign-in refused");
                passport.count(false);
                empty(StatusCode::PAYLOAD_TOO_LARGE)
            }
        }
    };
    with_header_case(response).await
}

fn psf_header(now: SystemTime, body: &str) -> String {
    format!(
        "<S:Header><psf:pp xmlns:psf=\"{NS_PSF}\"><psf:serverVersion>1</psf:serverVersion>{body}\
         <psf:serverInfo Path=\"Live1\" RollingUpgradeState=\"ExclusiveNew\" LocVersion=\"0\" ServerTime=\"{}\">msngate</psf:serverInfo>\
         <psf:cookies/><psf:response/></psf:pp></S:Header>",
        iso8601(now)
    )
}

fn rst_fault(now: SystemTime) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <S:Envelope xmlns:S=\"{SOAP_ENV}\" xmlns:wsse=\"{NS_WSSE}\" xmlns:psf=\"{NS_PSF}\">{}\
         <S:Fault><faultcode>wsse:FailedAuthentication</faultcode><faultstring>Authentication Failure</faultstring></S:Fault>\
         </S:Envelope>",
        psf_header(
            now,
            "<psf:authstate>0x80048800</psf:authstate><psf:reqstatus>0x80048821</psf:reqstatus>"
        )
    )
}

fn rst_success(
    account: &AccountRow,
    ticket: &str,
    requested: &[TokenRequest],
    now: SystemTime,
    ticket_lifetime: Duration,
) -> String {
    let fallback;
    let requested = if requested.is_empty() {
        fallback = [
            TokenRequest {
                number: 0,
                address: PASSPORT_TB.into(),
            },
            TokenRequest {
                number: 1,
                address: MESSENGER_ADDRESSES[0].into(),
            },
            TokenRequest {
                number: 2,
                address: MESSENGER_ADDRESSES[1].into(),
            },
        ];
        &fallback[..]
    } else {
        requested
    };
    let id = u64::try_from(account.id).unwrap_or(0);
    let puid = format!(
        "{:016X}",
        0x0006_0000_0000_0000_u64 | (id & 0xFFFF_FFFF_FFFF)
    );
    let cid = format!("{id:016x}");
    let created = iso8601(now);
    let mut out = String::with_capacity(2048 + requested.len() * 1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    out.push_str(&format!("<S:Envelope xmlns:S=\"{SOAP_ENV}\">"));
    out.push_str(&psf_header(
        now,
        &format!(
            "<psf:PUID>{puid}</psf:PUID><psf:configVersion>3.100.2199.0</psf:configVersion>\
             <psf:uiVersion>3.0.869.0</psf:uiVersion><psf:authstate>0x48803</psf:authstate><psf:reqstatus>0x0</psf:reqstatus>\
             <psf:credProperties><psf:credProperty Name=\"MainBrandID\"></psf:credProperty>\
             <psf:credProperty Name=\"BrandIDList\"></psf:credProperty>\
             <psf:credProperty Name=\"IsWinLiveUser\">true</psf:credProperty>\
             <psf:credProperty Name=\"CID\">{cid}</psf:credProperty>\
             <psf:credProperty Name=\"AuthMembername\">{}</psf:credProperty></psf:credProperties>\
             <psf:extProperties></psf:extProperties>",
            xml_escape(&account.handle)
        ),
    ));
    out.push_str(&format!(
        "<S:Body><wst:RequestSecurityTokenResponseCollection xmlns:S=\"{SOAP_ENV}\" xmlns:wst=\"{NS_WST}\" \
         xmlns:wsse=\"{NS_WSSE}\" xmlns:wsu=\"{NS_WSU}\" xmlns:saml=\"{NS_SAML}\" xmlns:wsp=\"{NS_WSP}\" xmlns:psf=\"{NS_PSF}\">"
    ));
    for token in requested {
        let address = xml_escape(&token.address);
        let n = token.number;
        let messenger = MESSENGER_ADDRESSES
            .iter()
            .any(|a| token.address.eq_ignore_ascii_case(a));
        let lifetime = if messenger {
            ticket_lifetime
        } else {
            Duration::from_secs(24 * 3600)
        };
        let expires = iso8601(now + lifetime);
        out.push_str("<wst:RequestSecurityTokenResponse>");
        if token.address.eq_ignore_ascii_case(PASSPORT_TB) {
            out.push_str(&format!(
                "<wst:TokenType>urn:passport:legacy</wst:TokenType>\
                 <wsp:AppliesTo xmlns:wsa=\"{NS_WSA}\"><wsa:EndpointReference><wsa:Address>{address}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>\
                 <wst:LifeTime><wsu:Created>{created}</wsu:Created><wsu:Expires>{expires}</wsu:Expires></wst:LifeTime>\
                 <wst:RequestedSecurityToken><EncryptedData xmlns=\"http://www.w3.org/2001/04/xmlenc#\" Id=\"BinaryDAToken{n}\" \
                 Type=\"http://www.w3.org/2001/04/xmlenc#Element\"><EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#tripledes-cbc\"></EncryptionMethod>\
                 <ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:KeyName>http://Passport.NET/STS</ds:KeyName></ds:KeyInfo>\
                 <CipherData><CipherValue>{}</CipherValue></CipherData></EncryptedData></wst:RequestedSecurityToken>\
                 <wst:RequestedTokenReference><wsse:KeyIdentifier ValueType=\"urn:passport\"></wsse:KeyIdentifier>\
                 <wsse:Reference URI=\"#BinaryDAToken{n}\"></wsse:Reference></wst:RequestedTokenReference>\
                 <wst:RequestedProofToken><wst:BinarySecret>{}</wst:BinarySecret></wst:RequestedProofToken>",
                opaque_base64(),
                opaque_base64(),
            ));
        } else {
            // messenger.msn.com was a "legacy" PPToken in the MSNP12 era,
            // the rest "compact" tokens; clients only read the text.
            let legacy = token.address.eq_ignore_ascii_case(MESSENGER_ADDRESSES[1]);
            let (kind, id) = if legacy {
                ("legacy", format!("PPToken{n}"))
            } else {
                ("compact", format!("Compact{n}"))
            };
            let value = if messenger {
                xml_escape(ticket)
            } else {
                xml_escape(&format!(
                    "t={}&p={}",
                    crate::core::tickets::random_hex(),
                    crate::core::tickets::random_hex()
                ))
            };
            out.push_str(&format!(
                "<wst:TokenType>urn:passport:{kind}</wst:TokenType>\
                 <wsp:AppliesTo xmlns:wsa=\"{NS_WSA}\"><wsa:EndpointReference><wsa:Address>{address}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>\
                 <wst:LifeTime><wsu:Created>{created}</wsu:Created><wsu:Expires>{expires}</wsu:Expires></wst:LifeTime>\
                 <wst:RequestedSecurityToken><wsse:BinarySecurityToken Id=\"{id}\">{value}</wsse:BinarySecurityToken></wst:RequestedSecurityToken>\
                 <wst:RequestedTokenReference><wsse:KeyIdentifier ValueType=\"urn:passport:{kind}\"></wsse:KeyIdentifier>\
                 <wsse:Reference URI=\"#{id}\"></wsse:Reference></wst:RequestedTokenReference>\
                 <wst:RequestedProofToken><wst:BinarySecret>{}</wst:BinarySecret></wst:RequestedProofToken>",
                opaque_base64(),
            ));
        }
        out.push_str("</wst:RequestSecurityTokenResponse>");
    }
    out.push_str("</wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>");
    out
}

/// 32 random hex digits: valid base64 for 24 random bytes, the size of
/// the proof keys clients derive 3DES keys from. Nothing checks them here.
fn opaque_base64() -> String {
    crate::core::tickets::random_hex()
}
// ---------------------------------------------------------------------------
// Minimal, tolerant XML reading

/// An element found by [`find_elements`]: the text of its start tag after
/// the name, and everything between its start and end tags.
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    attributes: &'a str,
    inner: &'a str,
}

impl<'a> Element<'a> {
    /// The value of attribute `name` (any prefix), entities decoded.
    fn attribute(&self, name: &str) -> Option<String> {
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
                return Some(xml_unescape(&body[..end]));
            }
            rest = &body[end + 1..];
        }
    }

    /// The element's character data: entities decoded, CDATA sections kept
    /// verbatim, nested markup and comments dropped.
    fn text(&self) -> String {
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
                out.push_str(&xml_unescape(&rest[..end]));
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
fn find_elements<'a>(xml: &'a str, local: &'a str) -> impl Iterator<Item = Element<'a>> + 'a {
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

/// XML helpers shared with the rest of the protocol code.
pub use msnp::xml::{escape as xml_escape, unescape_lenient as xml_unescape};

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn iso8601(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rst_envelopes_are_read_whatever_the_prefixes() {
        let xml = r#"<?xml version="1.0"?><Envelope xmlns="x"><Header><wsse:Security><wsse:UsernameToken Id="user">
            <wsse:Username> bob@example.com </wsse:Username><wsse:Password>a&amp;b&lt;c&#33;&#x41;&bogus;</wsse:Password>
            </wsse:UsernameToken></wsse:Security></Header><Body><ps:RequestMultipleSecurityTokens Id="RSTS">
            <wst:RequestSecurityToken Id="RST0"><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>http://Passport.NET/tb</wsa:Address>
            </wsa:EndpointReference></wsp:AppliesTo></wst:RequestSecurityToken>
            <wst:RequestSecurityToken Id='RST1'><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>messengerclear.live.com</wsa:Address>
            </wsa:EndpointReference></wsp:AppliesTo><wsse:PolicyReference URI="MBI_KEY_OLD"/></wst:RequestSecurityToken>
            </ps:RequestMultipleSecurityTokens></Body></Envelope>"#;
        let r = parse_rst(xml).unwrap();
        assert_eq!(r.username, "bob@example.com");
        assert_eq!(r.password, "a&b<c!A&bogus;");
        assert_eq!(
            r.tokens,
            vec![
                TokenRequest {
                    number: 0,
                    address: "http://Passport.NET/tb".into()
                },
                TokenRequest {
                    number: 1,
                    address: "messengerclear.live.com".into()
                },
            ]
        );
        let cdata = "<Username>x@y.z</Username><s:Password><![CDATA[p<&>]]></s:Password>";
        assert_eq!(parse_rst(cdata).unwrap().password, "p<&>");
        assert!(parse_rst("<Username>x@y.z</Username>").is_none());
        assert!(parse_rst("<Username>x@y.z<Password>p</Password>").is_none());
        assert!(parse_rst("not xml at all < > & ;").is_none());
        assert!(parse_rst("").is_none());
        assert!(parse_rst("<wsse:Username>x</wsse:Username><wsse:Password>p").is_none());
    }

    #[test]
    fn hostile_rst_bodies_stay_cheap() {
        let size = MAX_RST_BODY;
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
            let _ = parse_rst(&body);
            let _ = xml_unescape(&body);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                &body[..40]
            );
        }
    }

    #[test]
    fn xml_escaping_round_trips() {
        let s = "t=1&p=2 <'\"> é";
        assert_eq!(xml_escape("t=1&p=2"), "t=1&amp;p=2");
        assert_eq!(xml_unescape(&xml_escape(s)), s);
        assert_eq!(xml_unescape("&#1114112;&#xD800;&"), "&#1114112;&#xD800;&");
    }

    #[test]
    fn dates_are_iso8601_utc() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(1_062_764_229)),
            "2003-09-05T12:17:09Z"
        );
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
