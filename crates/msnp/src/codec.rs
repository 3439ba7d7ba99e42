//! Framing: text command lines, optionally followed by a byte-counted payload
//! (framing.md §2, §4, §8).
//!
//! The decoder never panics and never waits forever on garbage: a line longer
//! than the limit, a payload over the limit or a payload command without a
//! numeric length is a [`FrameError`], which the server answers by closing the
//! connection, as the real service did.
//!
//! Which commands carry a payload depends on the direction and, from MSNP13
//! on, on the dialect ([`payload_commands`]); a [`Decoder`] is built for one
//! direction and dialect and can be switched after `VER`
//! ([`Decoder::set_dialect`]). [`Decoder::decode`] is stateless and looks at
//! the buffer afresh on every call; a [`StreamDecoder`] (one per connection)
//! remembers how far it has scanned and the header of a payload that is
//! still arriving, so a large payload or long line received in many small
//! reads costs time linear in its size.

use crate::dialect::Dialect;
use bytes::{Buf, Bytes, BytesMut};
use std::fmt::Write as _;

/// Longest accepted command line. P9+ `CHG` with an encoded MSN object can
/// exceed 1 KiB, so this is generous.
pub const MAX_LINE: usize = 8192;
/// Largest switchboard `MSG` payload official clients send (and accept).
pub const MAX_SWITCHBOARD_PAYLOAD: usize = 1664;
/// Largest notification-server payload (`UUX` personal messages, `QRY`, `SDC`).
pub const MAX_NOTIFICATION_PAYLOAD: usize = 7500;

/// Largest notification-server payload to accept from a P13+ client. WLM
/// clients batch up to 150 contacts into one `ADL`/`FQY` (client-quirks.md),
/// which can exceed [`MAX_NOTIFICATION_PAYLOAD`]; 150 contacts with a
/// 64-character local part, each in its own 255-character domain, fit.
pub const MAX_WLM_NOTIFICATION_PAYLOAD: usize = 64 * 1024;

/// Client → server commands that carry a payload in P2–P12 (framing.md §4).
pub const CLIENT_PAYLOAD_COMMANDS: &[&str] = &["MSG", "QRY", "SDC", "UUX"];
/// Server → client commands that carry a payload in P2–P12.
pub const SERVER_PAYLOAD_COMMANDS: &[&str] = &["MSG", "UBX", "GCF", "UUX", "NOT", "IPG"];

/// Client → server payload commands in P13–P17: the P2–P12 set plus list
/// subscriptions (`ADL`, `RML`), network queries (`FQY`), endpoint
/// notifications (`UUN`) and messages to other networks (`UUM`)
/// (wlm/notification.md; the same set as Escargot's server minus P18).
pub const WLM_CLIENT_PAYLOAD_COMMANDS: &[&str] = &[
    "MSG", "QRY", "SDC", "UUX", "ADL", "RML", "FQY", "UUN", "UUM",
];
/// Client → server payload commands in P18: the P13 set plus the circle
/// commands `PUT`, `SDG`, `DEL` and `VAS`.
pub const P18_CLIENT_PAYLOAD_COMMANDS: &[&str] = &[
    "MSG", "QRY", "SDC", "UUX", "ADL", "RML", "FQY", "UUN", "UUM", "PUT", "SDG", "DEL", "VAS",
];
/// Server → client payload commands in P13–P17: the P2–P12 set plus
/// server-originated `ADL`/`RML` (someone added or removed you), `FQY`
/// answers, `UUN`/`UBN` and `UBM` (wlm/notification.md §1–§3, retro-prpl's
/// notification command table). `ADL trid OK`, `RML trid OK` and
/// `UUN trid OK` have no payload (see [`Decoder`]).
pub const WLM_SERVER_PAYLOAD_COMMANDS: &[&str] = &[
    "MSG", "UBX", "GCF", "UUX", "NOT", "IPG", "ADL", "RML", "FQY", "UUN", "UBN", "UBM",
];
/// Server → client payload commands in P18: the P13 set plus the circle
/// commands `NFY`, `PUT` (`PUT trid OK <len>`), `SDG`, `DEL` and `GET`
/// (MSNPSharp's notification reader lists all five).
pub const P18_SERVER_PAYLOAD_COMMANDS: &[&str] = &[
    "MSG", "UBX", "GCF", "UUX", "NOT", "IPG", "ADL", "RML", "FQY", "UUN", "UBN", "UBM", "NFY",
    "PUT", "SDG", "DEL", "GET",
];

/// Error replies that MSNPSharp (P18) always reads a payload after: it
/// takes the line's trailing number as the payload length, so `241 8`
/// makes it wait for 8 bytes. A P13+ server sends these as
/// `NNN trid <len>` (+ payload, `len` may be 0), which retro-prpl reads
/// the same way (its `ADL`/`RML`/`FQY` error handlers take field 2 as the
/// length).
pub const WLM_ERRORS_WITH_PAYLOAD: &[u16] = &[203, 204, 205, 210, 234, 241, 508, 509, 511, 933];

/// Which side of the connection wrote the bytes being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// What a client sends (the server's decoder).
    ClientToServer,
    /// What a server sends (test clients, the load generator).
    ServerToClient,
}

/// The commands that carry a payload in `direction` for `dialect`.
pub fn payload_commands(direction: Direction, dialect: Dialect) -> &'static [&'static str] {
    match (direction, dialect.number()) {
        (Direction::ClientToServer, ..=12) => CLIENT_PAYLOAD_COMMANDS,
        (Direction::ClientToServer, 13..=17) => WLM_CLIENT_PAYLOAD_COMMANDS,
        (Direction::ClientToServer, _) => P18_CLIENT_PAYLOAD_COMMANDS,
        (Direction::ServerToClient, ..=12) => SERVER_PAYLOAD_COMMANDS,
        (Direction::ServerToClient, 13..=17) => WLM_SERVER_PAYLOAD_COMMANDS,
        (Direction::ServerToClient, _) => P18_SERVER_PAYLOAD_COMMANDS,
    }
}

/// One decoded command: its name, its raw (still URL-encoded) parameters and
/// its payload, if the command carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub args: Vec<String>,
    pub payload: Option<Bytes>,
}

impl Command {
    /// The transaction id: the first parameter, when it is a decimal u32.
    pub fn trid(&self) -> Option<u32> {
        self.args.first().and_then(|t| parse_trid(t))
    }

    pub fn arg(&self, index: usize) -> Option<&str> {
        self.args.get(index).map(String::as_str)
    }

    /// True for an error reply such as `911 3`.
    pub fn is_error(&self) -> bool {
        self.name.bytes().all(|b| b.is_ascii_digit())
    }

    /// Renders the command back to wire bytes (used by clients and tests).
    pub fn encode(&self, out: &mut BytesMut) {
        let mut line = self.name.clone();
        // A decoded payload command already ends with its length; it is written anew.
        let args = match self.payload {
            Some(_) => &self.args[..self.args.len().saturating_sub(1)],
            None => &self.args[..],
        };
        for arg in args {
            line.push(' ');
            line.push_str(arg);
        }
        match &self.payload {
            Some(payload) => write_payload_command(out, &line, payload),
            None => write_line(out, &line),
        }
    }
}

/// Parses a transaction id (0 ..= 2^32−1, decimal digits only).
pub fn parse_trid(token: &str) -> Option<u32> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// Why a byte stream cannot be framed. Every variant means "close the connection".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("command line longer than {max} bytes")]
    LineTooLong { max: usize },
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("payload command {0} without a numeric length")]
    BadPayloadLength(String),
    #[error("malformed command name {0:?}")]
    BadName(String),
}

/// How a decoder frames commands: its limits and which commands carry a
/// payload.
///
/// Server → client from P13 on, two forms are framed specially:
/// * a payload command whose last argument is `OK` is an acknowledgement
///   without payload (`ADL 8 OK`, `RML 9 OK`, `UUN 20 OK`);
/// * an error reply with exactly two numeric arguments carries a payload
///   of the second one's length (`241 8 69` + the `<ml>` document naming
///   the contacts that failed, as retro-prpl's `ADL` error handler reads).
///
/// Up to P12, and for every client → server stream, neither rule applies,
/// so the P2–P12 framing is exactly as before.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_line: usize,
    max_payload: usize,
    direction: Direction,
    payload_commands: &'static [&'static str],
    wlm_server_forms: bool,
}

impl Decoder {
    /// Decoder for what clients send to a server, before `VER`: the
    /// P2–P12 payload commands. Call [`Decoder::set_dialect`] after `VER`.
    pub fn client_to_server(max_payload: usize) -> Decoder {
        Decoder {
            max_line: MAX_LINE,
            max_payload,
            direction: Direction::ClientToServer,
            payload_commands: CLIENT_PAYLOAD_COMMANDS,
            wlm_server_forms: false,
        }
    }

    /// Decoder for what a server sends to clients (test clients, the load
    /// generator), framing as P2–P12.
    pub fn server_to_client() -> Decoder {
        Decoder {
            max_line: MAX_LINE,
            max_payload: 1 << 20,
            direction: Direction::ServerToClient,
            payload_commands: SERVER_PAYLOAD_COMMANDS,
            wlm_server_forms: false,
        }
    }

    /// Decoder for what a client speaking `dialect` sends.
    pub fn client_to_server_for(dialect: Dialect, max_payload: usize) -> Decoder {
        Decoder::client_to_server(max_payload).with_dialect(dialect)
    }

    /// Decoder for what a server speaking `dialect` sends.
    pub fn server_to_client_for(dialect: Dialect) -> Decoder {
        Decoder::server_to_client().with_dialect(dialect)
    }

    /// Frames as `dialect` from now on (call it once `VER` has settled the
    /// dialect, before decoding the next command).
    pub fn set_dialect(&mut self, dialect: Dialect) {
        self.payload_commands = payload_commands(self.direction, dialect);
        self.wlm_server_forms =
            self.direction == Direction::ServerToClient && dialect.has_soap_address_book();
    }

    /// This decoder, framing as `dialect`.
    pub fn with_dialect(mut self, dialect: Dialect) -> Decoder {
        self.set_dialect(dialect);
        self
    }

    pub fn with_max_line(mut self, max_line: usize) -> Decoder {
        self.max_line = max_line;
        self
    }

    /// Changes the payload limit (e.g. to [`MAX_WLM_NOTIFICATION_PAYLOAD`]
    /// once a P13+ dialect is negotiated).
    pub fn with_max_payload(mut self, max_payload: usize) -> Decoder {
        self.max_payload = max_payload;
        self
    }

    /// Changes the payload limit in place.
    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.max_payload = max_payload;
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The commands this decoder reads a payload for.
    pub fn payload_command_names(&self) -> &'static [&'static str] {
        self.payload_commands
    }

    /// Bytes the buffer may hold before a complete command must have arrived.
    pub fn max_buffered(&self) -> usize {
        self.max_line
            .saturating_add(2)
            .saturating_add(self.max_payload)
    }

    /// This decoder bound to one byte stream (see [`StreamDecoder`]).
    pub fn into_stream(self) -> StreamDecoder {
        StreamDecoder::new(self)
    }

    /// Takes the next complete command off the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed; nothing is consumed then, so a
    /// line or payload split across reads is reassembled on the next call.
    /// Blank lines are skipped (some clients send a stray CR LF after a payload).
    ///
    /// This looks at `buf` from its start on every call; a connection that
    /// receives in small pieces should use a [`StreamDecoder`].
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Command>, FrameError> {
        self.decode_resuming(&mut ScanState::default(), buf)
    }

    /// The decoding step shared by [`Decoder::decode`] (with a fresh state)
    /// and [`StreamDecoder::decode`] (with the state of its stream).
    fn decode_resuming(
        &self,
        state: &mut ScanState,
        buf: &mut BytesMut,
    ) -> Result<Option<Command>, FrameError> {
        if !state.fits(buf.len()) {
            // The caller replaced or shrank the buffer: start over.
            state.scanned = 0;
            state.pending = None;
        }
        if let Some(pending) = &state.pending {
            if buf.len() < pending.line_end.saturating_add(pending.len) {
                return Ok(None);
            }
            let Some(pending) = state.pending.take() else {
                return Ok(None);
            };
            state.scanned = 0;
            buf.advance(pending.line_end);
            let payload = buf.split_to(pending.len).freeze();
            return Ok(Some(Command {
                name: pending.name,
                args: pending.args,
                payload: Some(payload),
            }));
        }
        loop {
            let from = state.scanned.min(buf.len());
            let found = buf[from..].iter().position(|&b| b == b'\n');
            let searched = found.map_or(buf.len() - from, |offset| offset + 1);
            state.bytes_examined += searched as u64;
            let Some(lf) = found.map(|offset| from + offset) else {
                // +1: the line's CR may already be here while its LF is not.
                if buf.len() > self.max_line.saturating_add(1) {
                    return Err(FrameError::LineTooLong { max: self.max_line });
                }
                state.scanned = buf.len();
                return Ok(None);
            };
            state.scanned = 0;
            let line_bytes = buf[..lf].strip_suffix(b"\r").unwrap_or(&buf[..lf]);
            if line_bytes.len() > self.max_line {
                return Err(FrameError::LineTooLong { max: self.max_line });
            }
            state.header_parses += 1;
            let line = String::from_utf8_lossy(line_bytes);
            let mut tokens = line.split(' ').filter(|t| !t.is_empty()).map(str::to_owned);
            let Some(name) = tokens.next() else {
                buf.advance(lf + 1);
                continue;
            };
            if name.len() != 3 || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(FrameError::BadName(truncate(&name, 16)));
            }
            let args: Vec<String> = tokens.collect();
            if !self.carries_payload(&name, &args) {
                buf.advance(lf + 1);
                return Ok(Some(Command {
                    name,
                    args,
                    payload: None,
                }));
            }
            let len = args
                .last()
                .and_then(|t| parse_length(t))
                .ok_or_else(|| FrameError::BadPayloadLength(name.clone()))?;
            if len > self.max_payload {
                return Err(FrameError::PayloadTooLarge {
                    len,
                    max: self.max_payload,
                });
            }
            // Saturating: a caller may allow payloads up to usize::MAX.
            let end = (lf + 1).saturating_add(len);
            if buf.len() < end {
                // Reserve once so a large payload arriving in pieces is not re-copied.
                buf.reserve(end - buf.len());
                state.pending = Some(PendingPayload {
                    line_end: lf + 1,
                    len,
                    name,
                    args,
                });
                return Ok(None);
            }
            buf.advance(lf + 1);
            let payload = buf.split_to(len).freeze();
            return Ok(Some(Command {
                name,
                args,
                payload: Some(payload),
            }));
        }
    }

    /// Whether the command on this line is followed by a payload.
    fn carries_payload(&self, name: &str, args: &[String]) -> bool {
        if self.wlm_server_forms {
            if name.bytes().all(|b| b.is_ascii_digit()) {
                return matches!(args, [trid, len] if is_digits(trid) && is_digits(len));
            }
            if args.last().is_some_and(|last| last == "OK") {
                return false;
            }
        }
        self.payload_commands.contains(&name)
    }
}

fn is_digits(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())
}

/// A payload length: decimal digits only (no sign, no spaces).
fn parse_length(token: &str) -> Option<usize> {
    if token.bytes().all(|b| b.is_ascii_digit()) {
        token.parse::<usize>().ok()
    } else {
        None
    }
}

/// A payload command whose line has been parsed while its payload is still
/// arriving.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingPayload {
    /// Offset just past the line's LF: where the payload starts.
    line_end: usize,
    len: usize,
    name: String,
    args: Vec<String>,
}

/// Where a [`StreamDecoder`] stopped in its buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ScanState {
    /// Bytes at the front of the buffer already known to hold no LF.
    scanned: usize,
    /// The header of a payload command waiting for its payload.
    pending: Option<PendingPayload>,
    /// Bytes looked at for an LF, over the stream's life (for tests).
    bytes_examined: u64,
    /// Command lines tokenised, over the stream's life (for tests).
    header_parses: u64,
}

impl ScanState {
    /// Whether this state can describe a buffer of `len` bytes (buffers only
    /// grow between calls unless the caller replaced them).
    fn fits(&self, len: usize) -> bool {
        match &self.pending {
            Some(pending) => pending.line_end <= len,
            None => self.scanned <= len,
        }
    }
}

/// A [`Decoder`] bound to one byte stream, normally one connection's
/// receive buffer.
///
/// Between calls it remembers how many bytes of an incomplete line it has
/// already searched for the line end, and the parsed line of a payload
/// command whose payload has not fully arrived, so neither is looked at
/// again. It gives exactly the same commands and errors as
/// [`Decoder::decode`] on the same bytes, however they are split.
///
/// Pass it the same buffer every time, and only append to that buffer
/// between calls (a buffer that shrank or was replaced is detected and
/// scanned afresh; call [`StreamDecoder::reset`] after replacing it with
/// different bytes of the same length or more).
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    decoder: Decoder,
    state: ScanState,
}

impl StreamDecoder {
    pub fn new(decoder: Decoder) -> StreamDecoder {
        StreamDecoder {
            decoder,
            state: ScanState::default(),
        }
    }

    /// Takes the next complete command off the front of `buf`, as
    /// [`Decoder::decode`] does, resuming where the previous call stopped.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, FrameError> {
        self.decoder.decode_resuming(&mut self.state, buf)
    }

    /// Frames as `dialect` from the next command on (after `VER`). A
    /// payload header already parsed under the old dialect is forgotten and
    /// its line read again.
    pub fn set_dialect(&mut self, dialect: Dialect) {
        self.decoder.set_dialect(dialect);
        self.forget_position();
    }

    /// Changes the payload limit from the next command on (e.g. to
    /// [`MAX_WLM_NOTIFICATION_PAYLOAD`] once `VER` chose a P13+ dialect).
    /// A payload header already parsed is read again under the new limit.
    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.decoder.set_max_payload(max_payload);
        self.forget_position();
    }

    /// Forgets the scan position (after the buffer was replaced).
    pub fn reset(&mut self) {
        self.forget_position();
    }

    fn forget_position(&mut self) {
        self.state.scanned = 0;
        self.state.pending = None;
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Bytes the buffer may hold before a complete command must have arrived.
    pub fn max_buffered(&self) -> usize {
        self.decoder.max_buffered()
    }

    /// Bytes searched for a line end so far (each received byte once).
    pub fn bytes_examined(&self) -> u64 {
        self.state.bytes_examined
    }

    /// Command lines parsed so far (each line once).
    pub fn lines_parsed(&self) -> u64 {
        self.state.header_parses
    }
}

impl From<Decoder> for StreamDecoder {
    fn from(decoder: Decoder) -> StreamDecoder {
        StreamDecoder::new(decoder)
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Appends `line` and CR LF.
pub fn write_line(out: &mut BytesMut, line: &str) {
    out.reserve(line.len() + 2);
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `head len` CR LF and the payload: the length is always the last
/// parameter and counts bytes, never characters.
pub fn write_payload_command(out: &mut BytesMut, head: &str, payload: &[u8]) {
    let mut line = String::with_capacity(head.len() + 8);
    line.push_str(head);
    let _ = write!(line, " {}", payload.len());
    out.reserve(line.len() + 2 + payload.len());
    write_line(out, &line);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Dialect;

    fn decode_all(decoder: &Decoder, input: &[u8]) -> Result<Vec<Command>, FrameError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = decoder.decode(&mut buf)? {
            out.push(cmd);
        }
        Ok(out)
    }

    #[test]
    fn decodes_lines_and_payloads() {
        let d = Decoder::client_to_server(MAX_SWITCHBOARD_PAYLOAD);
        let cmds = decode_all(
            &d,
            b"VER 1 MSNP8 CVR0\r\nMSG 4 A 5\r\nHelloCAL 5 bob@example.com\n",
        )
        .unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0].name, "VER");
        assert_eq!(cmds[0].args, ["1", "MSNP8", "CVR0"]);
        assert_eq!(cmds[0].trid(), Some(1));
        assert_eq!(cmds[1].payload.as_deref(), Some(&b"Hello"[..]));
        assert_eq!(cmds[2].args, ["5", "bob@example.com"]);
    }

    #[test]
    fn tolerates_extra_spaces_and_blank_lines() {
        let d = Decoder::client_to_server(100);
        let cmds = decode_all(&d, b"\r\nCHG 14 BSY 536870920 \r\nCVR 2  0x0409 winnt\r\n").unwrap();
        assert_eq!(cmds[0].args, ["14", "BSY", "536870920"]);
        assert_eq!(cmds[1].args, ["2", "0x0409", "winnt"]);
    }

    #[test]
    fn reassembles_split_line_and_payload() {
        let d = Decoder::client_to_server(100);
        let mut buf = BytesMut::from(&b"MSG 4 N 1"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"0\r\n01234");
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"56789PNG\r\n");
        let msg = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(msg.args, ["4", "N", "10"]);
        assert_eq!(msg.payload.as_deref(), Some(&b"0123456789"[..]));
        assert_eq!(d.decode(&mut buf).unwrap().unwrap().name, "PNG");
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_framing_violations() {
        let d = Decoder::client_to_server(1664);
        assert_eq!(
            decode_all(&d, b"MSG 1 A 1665\r\n"),
            Err(FrameError::PayloadTooLarge {
                len: 1665,
                max: 1664
            })
        );
        assert_eq!(
            decode_all(&d, b"MSG 1 A\r\n"),
            Err(FrameError::BadPayloadLength("MSG".into()))
        );
        assert_eq!(
            decode_all(&d, b"MSG 1 A -5\r\n"),
            Err(FrameError::BadPayloadLength("MSG".into()))
        );
        assert!(matches!(
            decode_all(&d, b"TOOLONG 1\r\n"),
            Err(FrameError::BadName(_))
        ));
        assert!(matches!(
            decode_all(&d, b"V\xffR 1\r\n"),
            Err(FrameError::BadName(_))
        ));
        let long = vec![b'A'; MAX_LINE + 2];
        assert_eq!(
            decode_all(&d, &long),
            Err(FrameError::LineTooLong { max: MAX_LINE })
        );
    }

    #[test]
    fn longest_line_is_accepted_however_it_is_split() {
        let d = Decoder::client_to_server(100).with_max_line(5);
        let mut buf = BytesMut::from(&b"PNG 1\r"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"\n");
        assert_eq!(d.decode(&mut buf).unwrap().unwrap().name, "PNG");
        let mut buf = BytesMut::from(&b"PNG 12\r"[..]);
        assert_eq!(d.decode(&mut buf), Err(FrameError::LineTooLong { max: 5 }));
    }

    #[test]
    fn payload_keeps_binary_bytes() {
        let d = Decoder::client_to_server(100);
        let mut input = b"MSG 9 D 6\r\n".to_vec();
        input.extend_from_slice(&[0, 0xff, b'\r', b'\n', 0, 1]);
        let cmds = decode_all(&d, &input).unwrap();
        assert_eq!(
            cmds[0].payload.as_deref(),
            Some(&[0, 0xff, b'\r', b'\n', 0, 1][..])
        );
    }

    #[test]
    fn encodes_byte_lengths() {
        let mut out = BytesMut::new();
        write_payload_command(&mut out, "MSG alice@example.com Alice", "héllo".as_bytes());
        assert_eq!(
            &out[..],
            "MSG alice@example.com Alice 6\r\nhéllo".as_bytes()
        );
        let mut d = BytesMut::from(&b"MSG 1 A 2\r\nhi"[..]);
        let decoded = Decoder::client_to_server(10)
            .decode(&mut d)
            .unwrap()
            .unwrap();
        let mut again = BytesMut::new();
        decoded.encode(&mut again);
        assert_eq!(&again[..], b"MSG 1 A 2\r\nhi");
        let cmd = Command {
            name: "OUT".into(),
            args: vec![],
            payload: None,
        };
        let mut out = BytesMut::new();
        cmd.encode(&mut out);
        assert_eq!(&out[..], b"OUT\r\n");
    }

    #[test]
    fn server_decoder_reads_error_replies() {
        let d = Decoder::server_to_client();
        let cmds = decode_all(&d, b"911 3\r\nUBX bob@example.com 2\r\nhiQNG 50\r\n").unwrap();
        assert!(cmds[0].is_error());
        assert_eq!(cmds[1].payload.as_deref(), Some(&b"hi"[..]));
        assert_eq!(cmds[2].name, "QNG");
    }

    fn stream_all(decoder: &mut StreamDecoder, input: &[u8], chunk: usize) -> Vec<Command> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(cmd) = decoder.decode(&mut buf).unwrap() {
                out.push(cmd);
            }
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        out
    }

    const ADL_INITIAL: &[u8] = b"ADL 8 15\r\n<ml l=\"1\"></ml>\r\n";

    #[test]
    fn wlm_client_commands_carry_payloads_from_p13_only() {
        let p13 = Decoder::client_to_server_for(Dialect::MSNP13, 100);
        let cmds = decode_all(&p13, b"ADL 8 15\r\n<ml l=\"1\"></ml>PNG\r\n").unwrap();
        assert_eq!(cmds[0].payload.as_deref(), Some(&b"<ml l=\"1\"></ml>"[..]));
        assert_eq!(cmds[1].name, "PNG");
        for name in [
            "ADL", "RML", "FQY", "UUN", "UUM", "MSG", "QRY", "SDC", "UUX",
        ] {
            let input = format!("{name} 1 2\r\nhi");
            let cmds = decode_all(&p13, input.as_bytes()).unwrap();
            assert_eq!(cmds[0].payload.as_deref(), Some(&b"hi"[..]), "{name}");
        }
        // P2–P12 framing is unchanged: the XML is read as a command line.
        let p12 = Decoder::client_to_server_for(Dialect::MSNP12, 100);
        assert!(matches!(
            decode_all(&p12, ADL_INITIAL),
            Err(FrameError::BadName(_))
        ));
        assert!(matches!(
            decode_all(&Decoder::client_to_server(100), ADL_INITIAL),
            Err(FrameError::BadName(_))
        ));
        // Circle commands only in P18.
        let put = b"PUT 9 2\r\nhiPNG\r\n";
        let p17 = Decoder::client_to_server_for(Dialect::MSNP17, 100);
        assert!(matches!(decode_all(&p17, put), Err(FrameError::BadName(_))));
        let p18 = Decoder::client_to_server_for(Dialect::MSNP18, 100);
        for name in ["PUT", "SDG", "DEL", "VAS", "ADL"] {
            let input = format!("{name} 9 2\r\nhiPNG\r\n");
            let cmds = decode_all(&p18, input.as_bytes()).unwrap();
            assert_eq!(cmds[0].payload.as_deref(), Some(&b"hi"[..]), "{name}");
            assert_eq!(cmds[1].name, "PNG");
        }
    }

    #[test]
    fn wlm_server_acknowledgements_and_error_payloads() {
        let d = Decoder::server_to_client_for(Dialect::MSNP18);
        let input = b"ADL 8 OK\r\nADL 0 2\r\nabRML 9 OK\r\nUUN 20 OK\r\n\
241 8 3\r\nxyz911 3\r\nPUT 5 OK 2\r\nokNFY PUT 1\r\nnUBX 1:bob@example.com 0\r\n\
UBN alice@example.com 4 2\r\nbyFQY 12 1\r\nf";
        let cmds = decode_all(&d, input).unwrap();
        let summary: Vec<(&str, Option<&[u8]>)> = cmds
            .iter()
            .map(|c| (c.name.as_str(), c.payload.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("ADL", None),
                ("ADL", Some(&b"ab"[..])),
                ("RML", None),
                ("UUN", None),
                ("241", Some(&b"xyz"[..])),
                ("911", None),
                ("PUT", Some(&b"ok"[..])),
                ("NFY", Some(&b"n"[..])),
                ("UBX", Some(&b""[..])),
                ("UBN", Some(&b"by"[..])),
                ("FQY", Some(&b"f"[..])),
            ]
        );
        assert_eq!(cmds[0].args, ["8", "OK"]);
        // The P2–P12 server framing keeps errors payload-free.
        let classic = Decoder::server_to_client();
        let cmds = decode_all(&classic, b"241 8 3\r\nPNG\r\n").unwrap();
        assert_eq!(cmds[0].payload, None);
        assert_eq!(cmds[1].name, "PNG");
        // And a client never gets the acknowledgement rule.
        let client = Decoder::client_to_server_for(Dialect::MSNP18, 100);
        assert_eq!(
            decode_all(&client, b"ADL 1 OK\r\n"),
            Err(FrameError::BadPayloadLength("ADL".into()))
        );
    }

    #[test]
    fn payload_sets_per_direction_and_dialect() {
        let classic = [2, 8, 11, 12];
        for n in classic {
            let d = Dialect::new(n).unwrap();
            assert_eq!(
                payload_commands(Direction::ClientToServer, d),
                CLIENT_PAYLOAD_COMMANDS
            );
            assert_eq!(
                payload_commands(Direction::ServerToClient, d),
                SERVER_PAYLOAD_COMMANDS
            );
        }
        for n in 13..=17 {
            let d = Dialect::new(n).unwrap();
            assert_eq!(
                payload_commands(Direction::ClientToServer, d),
                WLM_CLIENT_PAYLOAD_COMMANDS
            );
            assert_eq!(
                payload_commands(Direction::ServerToClient, d),
                WLM_SERVER_PAYLOAD_COMMANDS
            );
        }
        // Each larger set extends the smaller one.
        for (small, large) in [
            (CLIENT_PAYLOAD_COMMANDS, WLM_CLIENT_PAYLOAD_COMMANDS),
            (WLM_CLIENT_PAYLOAD_COMMANDS, P18_CLIENT_PAYLOAD_COMMANDS),
            (SERVER_PAYLOAD_COMMANDS, WLM_SERVER_PAYLOAD_COMMANDS),
            (WLM_SERVER_PAYLOAD_COMMANDS, P18_SERVER_PAYLOAD_COMMANDS),
        ] {
            assert!(small.iter().all(|name| large.contains(name)));
        }
    }

    #[test]
    fn stream_decoder_switches_dialect_after_ver() {
        let mut d = Decoder::client_to_server(100).into_stream();
        let mut buf = BytesMut::from(&b"VER 1 MSNP18 CVR0\r\nADL 8 15\r\n<ml l=\"1\"></ml>"[..]);
        let ver = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(ver.name, "VER");
        d.set_dialect(Dialect::MSNP18);
        d.set_max_payload(MAX_WLM_NOTIFICATION_PAYLOAD);
        assert_eq!(
            d.max_buffered(),
            MAX_LINE + 2 + MAX_WLM_NOTIFICATION_PAYLOAD
        );
        let adl = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(adl.payload.as_deref(), Some(&b"<ml l=\"1\"></ml>"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn stream_decoder_reads_a_megabyte_payload_without_rescanning() {
        let len = 1 << 20;
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut input = format!("MSG 1 D {len}\r\n").into_bytes();
        input.extend_from_slice(&payload);
        input.extend_from_slice(b"PNG\r\n");
        for chunk in [1, 1024] {
            let mut d = Decoder::client_to_server(len).into_stream();
            let cmds = stream_all(&mut d, &input, chunk);
            assert_eq!(cmds.len(), 2, "chunk {chunk}");
            assert_eq!(cmds[0].args, ["1", "D", &len.to_string()]);
            assert_eq!(cmds[0].payload.as_deref(), Some(&payload[..]));
            assert_eq!(cmds[1].name, "PNG");
            // Each line was tokenised once, not once per read.
            assert_eq!(d.lines_parsed(), 2, "chunk {chunk}");
            // Only line bytes are searched for an LF, never the payload.
            let lines = input.len() - len;
            assert!(d.bytes_examined() <= lines as u64, "chunk {chunk}");
        }
    }

    #[test]
    fn stream_decoder_searches_a_long_line_once() {
        let mut line = b"CHG 1 NLN 0 ".to_vec();
        line.resize(MAX_LINE, b'x');
        line.extend_from_slice(b"\r\n");
        let mut d = Decoder::client_to_server(100).into_stream();
        let cmds = stream_all(&mut d, &line, 1);
        assert_eq!(cmds.len(), 1);
        assert_eq!(d.bytes_examined(), line.len() as u64);
        assert_eq!(d.lines_parsed(), 1);
        // One byte more is still refused, however it arrives.
        let mut too_long = b"CHG 1 NLN 0 ".to_vec();
        too_long.resize(MAX_LINE + 2, b'x');
        let mut d = Decoder::client_to_server(100).into_stream();
        let mut buf = BytesMut::new();
        let mut outcome = Ok(None);
        for &byte in &too_long {
            buf.extend_from_slice(&[byte]);
            outcome = d.decode(&mut buf);
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!(outcome, Err(FrameError::LineTooLong { max: MAX_LINE }));
    }

    #[test]
    fn stream_decoder_refuses_oversized_payloads() {
        let mut d = Decoder::client_to_server_for(Dialect::MSNP18, 10).into_stream();
        let mut buf = BytesMut::from(&b"ADL 1 1"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"1\r\n");
        assert_eq!(
            d.decode(&mut buf),
            Err(FrameError::PayloadTooLarge { len: 11, max: 10 })
        );
    }

    #[test]
    fn stream_decoder_notices_a_replaced_buffer() {
        let mut d = Decoder::client_to_server(100).into_stream();
        let mut buf = BytesMut::from(&b"MSG 1 N 5\r\nab"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        let mut other = BytesMut::from(&b"PNG\r\n"[..]);
        assert_eq!(d.decode(&mut other).unwrap().unwrap().name, "PNG");
        let mut buf = BytesMut::from(&b"OUT"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        d.reset();
        let mut other = BytesMut::from(&b"QNG\r\n"[..]);
        assert_eq!(d.decode(&mut other).unwrap().unwrap().name, "QNG");
    }
}
