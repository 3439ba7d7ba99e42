//! The MIME-like payloads carried by `MSG` (messages.md).
//!
//! Parsing borrows from the payload and never changes it: the switchboard
//! relays payloads byte for byte, so this module only reads what the server
//! or the bridge has to interpret. The builders produce the exact bytes of
//! messages.md / vectors.md §6, because clients locate fields by position
//! and desynchronise on a wrong length.

use std::borrow::Cow;

use crate::urlenc;

/// The first header line of every payload the server generates.
const MIME_VERSION_LINE: &str = "MIME-Version: 1.0\r\n";

/// A parsed payload: header lines in order, and the body after the first
/// empty line, untouched (it may be binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MimeMessage<'a> {
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

/// Whether a byte may appear in a header or field name (an RFC 7230
/// token). Rejecting anything else keeps XML or free text containing a `:`
/// from being mistaken for a header.
const fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Parses one `Name: value` line (without its LF; a trailing CR is
/// dropped). Lines that are not UTF-8, have no `:` or have an invalid name
/// yield `None` and are skipped by the callers.
fn parse_field_line(line: &[u8]) -> Option<(&str, &str)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).ok()?;
    let (name, value) = text.split_once(':')?;
    let name = name.trim_ascii_end();
    if name.is_empty() || !name.bytes().all(is_name_byte) {
        return None;
    }
    Some((name, value.trim_ascii()))
}

/// Splits `bytes` into LF-terminated lines (LF excluded). Each item is the
/// line and the offset just past its LF (or the end of `bytes`).
fn lines_with_end(bytes: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let rest = bytes.get(start..).filter(|rest| !rest.is_empty())?;
        let (line, consumed) = match rest.iter().position(|&byte| byte == b'\n') {
            Some(lf) => (rest.get(..lf).unwrap_or(rest), lf + 1),
            None => (rest, rest.len()),
        };
        start += consumed;
        Some((line, start))
    })
}

/// Whether a line (LF already removed) is the empty line ending a block.
fn is_blank_line(line: &[u8]) -> bool {
    line.is_empty() || line == b"\r"
}

/// Collects every `Name: value` line of a text block.
fn parse_fields(block: &[u8]) -> Vec<(&str, &str)> {
    lines_with_end(block)
        .filter_map(|(line, _)| parse_field_line(line))
        .collect()
}

/// First value of `name` (ASCII case-insensitive) in a field list.
fn find_field<'a>(fields: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|&(_, value)| value)
}

impl<'a> MimeMessage<'a> {
    /// Parses a payload. Headers end at the first empty line (CR LF or a
    /// bare LF); without one, the whole payload is headers and the body is
    /// empty. Returns `None` when no valid `Name: value` header is present,
    /// i.e. the payload is not MIME at all (a `UUX` XML body, garbage).
    pub fn parse(payload: &'a [u8]) -> Option<MimeMessage<'a>> {
        let mut headers = Vec::new();
        let mut body_start = payload.len();
        for (line, end) in lines_with_end(payload) {
            if is_blank_line(line) {
                body_start = end;
                break;
            }
            if let Some(field) = parse_field_line(line) {
                headers.push(field);
            }
        }
        if headers.is_empty() {
            return None;
        }
        let body = payload.get(body_start..).unwrap_or_default();
        Some(MimeMessage { headers, body })
    }

    /// First value of a header, name compared ASCII case-insensitively.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        find_field(&self.headers, name)
    }

    /// The media type of `Content-Type` (before the first `;`), trimmed,
    /// in the case the sender used. Compare it with [`Self::is_content_type`].
    pub fn content_type(&self) -> Option<&'a str> {
        let value = self.header("Content-Type")?;
        let media_type = value.split(';').next().unwrap_or(value).trim();
        Some(media_type)
    }

    /// The `P2P-Dest` of a P2P message (messages.md §7): the one participant
    /// it is for. `None` for other messages, or P2P without one.
    pub fn p2p_destination(&self) -> Option<&'a str> {
        if !self.is_content_type("application/x-msnmsgrp2p") {
            return None;
        }
        self.header("P2P-Dest").filter(|d| !d.is_empty())
    }

    /// Whether the media type equals `media_type`, ignoring ASCII case.
    pub fn is_content_type(&self, media_type: &str) -> bool {
        self.content_type()
            .is_some_and(|actual| actual.eq_ignore_ascii_case(media_type))
    }

    /// The `charset` parameter of `Content-Type`, without quotes.
    pub fn charset(&self) -> Option<&'a str> {
        let value = self.header("Content-Type")?;
        value.split(';').skip(1).find_map(|parameter| {
            let (name, charset) = parameter.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("charset")
                .then(|| charset.trim().trim_matches('"'))
        })
    }

    /// The `Name: value` lines of the body (invitations, datacasts, e-mail
    /// and system messages). Blank and malformed lines are skipped.
    pub fn body_fields(&self) -> Vec<(&'a str, &'a str)> {
        parse_fields(self.body)
    }

    /// First value of a body field, name compared ASCII case-insensitively.
    pub fn body_field(&self, name: &str) -> Option<&'a str> {
        find_field(&self.body_fields(), name)
    }
}

/// What a payload is, as far as the server or a bridge cares (messages.md
/// §1 summary table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// `text/plain`: an instant message.
    Text,
    /// `text/x-msmsgscontrol` with a `TypingUser` header.
    Typing,
    /// `text/x-msnmsgr-datacast` with `ID: 1`.
    Nudge,
    /// Any other datacast (wink, voice clip, action message).
    Datacast,
    /// `text/x-msmsgsinvite`: MSNFTP, NetMeeting and other invitations.
    Invite,
    /// `application/x-msnmsgrp2p`: binary MSNC data.
    P2p,
    /// `text/x-clientcaps` or `text/x-clientinfo`.
    ClientCaps,
    /// `text/x-keepalive`.
    KeepAlive,
    /// `text/x-mms-emoticon` or `text/x-mms-animemoticon`.
    Emoticon,
    /// Handwriting: `image/gif` or `application/x-ms-ink`.
    Ink,
    /// Anything else, including payloads that are not MIME.
    Other,
}

/// Classifies a payload by its media type (case-insensitive).
pub fn classify(payload: &[u8]) -> PayloadKind {
    let Some(message) = MimeMessage::parse(payload) else {
        return PayloadKind::Other;
    };
    let Some(media_type) = message.content_type() else {
        return PayloadKind::Other;
    };
    let media_type = media_type.to_ascii_lowercase();
    match media_type.as_str() {
        "text/plain" => PayloadKind::Text,
        // `RecordingUser` and other control messages are not typing.
        "text/x-msmsgscontrol" if message.header("TypingUser").is_some() => PayloadKind::Typing,
        "text/x-msnmsgr-datacast" => match message.body_field("ID") {
            Some("1") => PayloadKind::Nudge,
            _ => PayloadKind::Datacast,
        },
        "text/x-msmsgsinvite" => PayloadKind::Invite,
        "application/x-msnmsgrp2p" => PayloadKind::P2p,
        "text/x-clientcaps" | "text/x-clientinfo" => PayloadKind::ClientCaps,
        "text/x-keepalive" => PayloadKind::KeepAlive,
        "text/x-mms-emoticon" | "text/x-mms-animemoticon" => PayloadKind::Emoticon,
        "image/gif" | "application/x-ms-ink" => PayloadKind::Ink,
        _ => PayloadKind::Other,
    }
}

/// The `X-MMS-IM-Format` header: font, effects and colour of a whole
/// message (messages.md §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImFormat {
    /// Font face, URL-decoded.
    pub font: String,
    pub bold: bool,
    pub italic: bool,
    pub underline: bool,
    pub strike: bool,
    /// Colour as (red, green, blue); the wire form is 0xBBGGRR.
    pub color_rgb: (u8, u8, u8),
    /// Windows `LOGFONT.lfCharSet` (`CS`); informational only.
    pub charset: u8,
    /// Windows `lfPitchAndFamily` (`PF`).
    pub pitch_family: u8,
    /// Right-to-left text (`RL=1`).
    pub rtl: bool,
}

impl Default for ImFormat {
    /// The generator form of messages.md §2 and vectors.md §6:
    /// `FN=Arial; EF=; CO=0; CS=0; PF=22`.
    fn default() -> Self {
        ImFormat {
            font: String::from("Arial"),
            bold: false,
            italic: false,
            underline: false,
            strike: false,
            color_rgb: (0, 0, 0),
            charset: 0,
            pitch_family: 0x22,
            rtl: false,
        }
    }
}

/// Parses a hexadecimal header number leniently: surrounding spaces, an
/// optional `0x`/`#` prefix, any case, leading zeros.
fn parse_hex(value: &str) -> Option<u32> {
    let value = value.trim();
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .or_else(|| value.strip_prefix('#'))
        .unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    // Drop leading zeros so that zero-padded values of any length parse.
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Some(0);
    }
    u32::from_str_radix(significant, 16).ok()
}

impl ImFormat {
    /// Parses a header value leniently: unknown keys, malformed values and
    /// missing keys fall back to [`ImFormat::default`]. Never fails.
    pub fn parse(header_value: &str) -> ImFormat {
        let mut format = ImFormat::default();
        for item in header_value.split(';') {
            let Some((key, value)) = item.split_once('=') else {
                continue;
            };
            let key = key.trim();
            let value = value.trim();
            if key.eq_ignore_ascii_case("FN") {
                format.font = urlenc::decode(value);
            } else if key.eq_ignore_ascii_case("EF") {
                let effects = value.to_ascii_uppercase();
                format.bold = effects.contains('B');
                format.italic = effects.contains('I');
                format.underline = effects.contains('U');
                format.strike = effects.contains('S');
            } else if key.eq_ignore_ascii_case("CO") {
                if let Some(bgr) = parse_hex(value) {
                    let [red, green, blue, _] = bgr.to_le_bytes();
                    format.color_rgb = (red, green, blue);
                }
            } else if key.eq_ignore_ascii_case("CS") {
                if let Some(charset) = parse_hex(value).and_then(|n| u8::try_from(n).ok()) {
                    format.charset = charset;
                }
            } else if key.eq_ignore_ascii_case("PF") {
                if let Some(pitch) = parse_hex(value).and_then(|n| u8::try_from(n).ok()) {
                    format.pitch_family = pitch;
                }
            } else if key.eq_ignore_ascii_case("RL") {
                format.rtl = value == "1";
            }
        }
        format
    }

    /// The colour in wire form, 0xBBGGRR.
    pub fn color_bgr(&self) -> u32 {
        let (red, green, blue) = self.color_rgb;
        u32::from_le_bytes([red, green, blue, 0])
    }

    /// The header value in the order official clients write it:
    /// `FN=<url-encoded>; EF=<BIUS>; CO=<bbggrr>; CS=<hex>; PF=<hex>`, plus
    /// `; RL=1` for right-to-left text. Numbers are lower-case hex without
    /// leading zeros, so the default renders `CS=0; PF=22`.
    pub fn to_header(&self) -> String {
        let mut effects = String::new();
        for (on, letter) in [
            (self.bold, 'B'),
            (self.italic, 'I'),
            (self.underline, 'U'),
            (self.strike, 'S'),
        ] {
            if on {
                effects.push(letter);
            }
        }
        let mut header = format!(
            "FN={}; EF={}; CO={:x}; CS={:x}; PF={:x}",
            urlenc::encode(&self.font),
            effects,
            self.color_bgr(),
            self.charset,
            self.pitch_family,
        );
        if self.rtl {
            header.push_str("; RL=1");
        }
        header
    }
}

/// A header or field value with CR and LF removed, so that caller data can
/// never end a header line early and inject fields or change the length.
fn single_line(value: &str) -> Cow<'_, str> {
    if value.contains(['\r', '\n']) {
        Cow::Owned(
            value
                .chars()
                .filter(|&ch| ch != '\r' && ch != '\n')
                .collect(),
        )
    } else {
        Cow::Borrowed(value)
    }
}

/// A `text/plain` instant message, optionally with `X-MMS-IM-Format`
/// (118 bytes for `Hello` with the default format). The text is copied
/// as UTF-8 without any change.
pub fn text_message(text: &str, format: Option<&ImFormat>) -> Vec<u8> {
    let mut payload = String::from(MIME_VERSION_LINE);
    payload.push_str("Content-Type: text/plain; charset=UTF-8\r\n");
    if let Some(format) = format {
        payload.push_str("X-MMS-IM-Format: ");
        payload.push_str(&format.to_header());
        payload.push_str("\r\n");
    }
    payload.push_str("\r\n");
    payload.push_str(text);
    payload.into_bytes()
}

/// A typing notification naming `handle` as the typist (90 bytes for
/// `alice@example.com`); the body is a lone CR LF.
pub fn typing_message(handle: &str) -> Vec<u8> {
    format!(
        "{MIME_VERSION_LINE}Content-Type: text/x-msmsgscontrol\r\nTypingUser: {}\r\n\r\n\r\n",
        single_line(handle)
    )
    .into_bytes()
}

/// A nudge: datacast `ID: 1` (69 bytes). Only P9+ clients show it.
pub fn nudge_message() -> Vec<u8> {
    format!("{MIME_VERSION_LINE}Content-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n")
        .into_bytes()
}

/// An idle-switchboard keep-alive with an empty body (53 bytes).
pub fn keepalive_message() -> Vec<u8> {
    format!("{MIME_VERSION_LINE}Content-Type: text/x-keepalive\r\n\r\n").into_bytes()
}

/// A `text/x-clientcaps` announcement (98 bytes for `MyBridge/1.0`, logging on).
pub fn client_caps_message(client_name: &str, chat_logging: bool) -> Vec<u8> {
    format!(
        "{MIME_VERSION_LINE}Content-Type: text/x-clientcaps\r\n\r\nClient-Name: {}\r\nChat-Logging: {}\r\n",
        single_line(client_name),
        if chat_logging { 'Y' } else { 'N' },
    )
    .into_bytes()
}

/// Declines an invitation (msnftp.md §2; 148 bytes for cookie `41524` and
/// `REJECT`). A bridge answers invitations it cannot handle with
/// `REJECT_NOT_INSTALLED` (messages.md §12).
pub fn invite_cancel_message(cookie: &str, cancel_code: &str) -> Vec<u8> {
    format!(
        "{MIME_VERSION_LINE}Content-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n\
         Invitation-Command: CANCEL\r\nInvitation-Cookie: {}\r\nCancel-Code: {}\r\n\r\n",
        single_line(cookie),
        single_line(cancel_code),
    )
    .into_bytes()
}

/// The decline for an invitation nobody on the other side can accept: a
/// `CANCEL … REJECT_NOT_INSTALLED` when `payload` opens an invitation (its
/// `INVITE` with a cookie), so the sender's client stops waiting.
pub fn decline_unsupported_invitation(payload: &[u8]) -> Option<Vec<u8>> {
    let msg = MimeMessage::parse(payload)?;
    if classify(payload) != PayloadKind::Invite
        || msg.body_field("Invitation-Command") != Some("INVITE")
    {
        return None;
    }
    let cookie = msg.body_field("Invitation-Cookie")?;
    Some(invite_cancel_message(cookie, "REJECT_NOT_INSTALLED"))
}

/// The data of the profile message the NS sends after `USR … OK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile<'a> {
    /// Unix time of this login.
    pub login_time: u64,
    /// `preferredEmail`: the account's handle.
    pub email: &'a str,
    /// 64-bit member id, sent as two 32-bit decimal halves.
    pub member_id: u64,
    /// `MSPAuth` token the client stores for Hotmail/profile links.
    pub mspauth: &'a str,
    /// Client address as the server sees it.
    pub client_ip: &'a str,
    /// Client source port as the server sees it; the builder swaps its
    /// bytes as the protocol requires (1337 → 14597).
    pub client_port: u16,
    /// Adds `ABCHMigrated: 1` (P10+ clients expect GUID lists with it).
    pub abch_migrated: bool,
}

/// The `text/x-msmsgsprofile` message (messages.md §8). All fields are
/// headers, in the documented order; the body is empty. The example
/// printed there is 412 bytes.
pub fn profile_message(profile: &Profile) -> Vec<u8> {
    let member_id_high = profile.member_id >> 32;
    let member_id_low = profile.member_id & 0xFFFF_FFFF;
    let mut payload = format!(
        "{MIME_VERSION_LINE}Content-Type: text/x-msmsgsprofile; charset=UTF-8\r\n\
         LoginTime: {}\r\n\
         EmailEnabled: 0\r\n\
         MemberIdHigh: {member_id_high}\r\n\
         MemberIdLow: {member_id_low}\r\n\
         lang_preference: 1033\r\n\
         preferredEmail: {}\r\n\
         country: US\r\n\
         PostalCode: \r\n\
         Gender: \r\n\
         Kid: 0\r\n\
         Age: \r\n\
         BDayPre: \r\n\
         Birthday: \r\n\
         Wallet: \r\n\
         Flags: 1027\r\n\
         sid: 507\r\n\
         kv: 2\r\n\
         MSPAuth: {}\r\n\
         ClientIP: {}\r\n\
         ClientPort: {}\r\n",
        profile.login_time,
        single_line(profile.email),
        single_line(profile.mspauth),
        single_line(profile.client_ip),
        profile.client_port.swap_bytes(),
    );
    if profile.abch_migrated {
        payload.push_str("ABCHMigrated: 1\r\n");
    }
    payload.push_str("\r\n");
    payload.into_bytes()
}

/// A server notice (messages.md §10). `kind` 1 with `arg` N warns that the
/// server goes down for maintenance in N minutes (88 bytes for 1/5).
pub fn system_message(kind: u32, arg: u32) -> Vec<u8> {
    format!(
        "{MIME_VERSION_LINE}Content-Type: application/x-msmsgssystemmessage\r\n\r\n\
         Type: {kind}\r\nArg1: {arg}\r\n"
    )
    .into_bytes()
}

/// The P11+ "empty mailbox, no offline messages" notification
/// (messages.md §9, 195 bytes).
pub fn initial_mail_data() -> Vec<u8> {
    format!(
        "{MIME_VERSION_LINE}Content-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8\r\n\r\n\
         Mail-Data: <MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E>\
         <Q><QTM>409600</QTM><QNM>204800</QNM></Q></MD>\r\n"
    )
    .into_bytes()
}

/// Windows-1252 characters for bytes 0x80–0x9F; the five unassigned bytes
/// map to the C1 control of the same value, like Latin-1.
const WINDOWS_1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}', '\u{178}',
];

/// Decodes single-byte Windows text: Latin-1, except that 0x80–0x9F are
/// the Windows-1252 punctuation (curly quotes, dashes, €) that Windows
/// clients actually meant.
fn decode_windows_1252(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&byte| match byte {
            0x80..=0x9F => WINDOWS_1252_HIGH
                .get(usize::from(byte - 0x80))
                .copied()
                .unwrap_or(char::from(byte)),
            _ => char::from(byte),
        })
        .collect()
}

/// The text of a `text/plain` message; `None` for any other type.
///
/// `charset=UTF-8` (any case, also `utf8`) is read as UTF-8. Without a
/// charset (1999-era clients) the body is UTF-8 if it is valid UTF-8 —
/// single-byte text with accents almost never is — and Windows-1252
/// otherwise. Any other charset, and invalid UTF-8, is read as
/// Windows-1252 (a superset of Latin-1's printable characters).
pub fn text_body(msg: &MimeMessage) -> Option<String> {
    if !msg.is_content_type("text/plain") {
        return None;
    }
    let declared_utf8 = match msg.charset() {
        None => true,
        Some(charset) => {
            charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
        }
    };
    if declared_utf8 && let Ok(text) = std::str::from_utf8(msg.body) {
        return Some(text.to_owned());
    }
    Some(decode_windows_1252(msg.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_crlf_lf_and_headerless_bodies() {
        let crlf = MimeMessage::parse(b"A: 1\r\nB:2\r\n\r\nbody").unwrap();
        assert_eq!(crlf.headers, vec![("A", "1"), ("B", "2")]);
        assert_eq!(crlf.body, b"body");

        let lf = MimeMessage::parse(b"A: 1\nB: 2\n\nbody\r\n").unwrap();
        assert_eq!(lf.headers, vec![("A", "1"), ("B", "2")]);
        assert_eq!(lf.body, b"body\r\n");

        let no_blank = MimeMessage::parse(b"A: 1\r\nB: 2").unwrap();
        assert_eq!(no_blank.headers, vec![("A", "1"), ("B", "2")]);
        assert!(no_blank.body.is_empty());
    }

    #[test]
    fn rejects_non_mime() {
        assert_eq!(MimeMessage::parse(b""), None);
        assert_eq!(MimeMessage::parse(b"\r\n\r\nA: 1"), None);
        assert_eq!(MimeMessage::parse(b"<Data><PSM>a: b</PSM></Data>"), None);
    }

    #[test]
    fn header_lookup_ignores_case() {
        let message =
            MimeMessage::parse(b"content-TYPE: Text/Plain;charset=\"utf-8\"\r\n\r\n").unwrap();
        assert_eq!(
            message.header("Content-Type"),
            Some("Text/Plain;charset=\"utf-8\"")
        );
        assert_eq!(message.content_type(), Some("Text/Plain"));
        assert!(message.is_content_type("text/plain"));
        assert_eq!(message.charset(), Some("utf-8"));
    }

    #[test]
    fn windows_1252_quotes() {
        assert_eq!(
            decode_windows_1252(b"\x93hi\x94 caf\xe9 \x80"),
            "\u{201C}hi\u{201D} café €"
        );
    }

    #[test]
    fn single_line_strips_line_breaks() {
        assert_eq!(single_line("a\r\nb"), "ab");
        assert!(matches!(single_line("ab"), Cow::Borrowed("ab")));
    }
}
