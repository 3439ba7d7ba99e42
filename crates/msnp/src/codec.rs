//! Framing: text command lines, optionally followed by a byte-counted payload
//! (framing.md §2, §4, §8).
//!
//! The decoder never panics and never waits forever on garbage: a line longer
//! than the limit, a payload over the limit or a payload command without a
//! numeric length is a [`FrameError`], which the server answers by closing the
//! connection, as the real service did.

use bytes::{Buf, Bytes, BytesMut};
use std::fmt::Write as _;

/// Longest accepted command line. P9+ `CHG` with an encoded MSN object can
/// exceed 1 KiB, so this is generous.
pub const MAX_LINE: usize = 8192;
/// Largest switchboard `MSG` payload official clients send (and accept).
pub const MAX_SWITCHBOARD_PAYLOAD: usize = 1664;
/// Largest notification-server payload (`UUX` personal messages, `QRY`, `SDC`).
pub const MAX_NOTIFICATION_PAYLOAD: usize = 7500;

/// Client → server commands that carry a payload in P2–P12 (framing.md §4).
pub const CLIENT_PAYLOAD_COMMANDS: &[&str] = &["MSG", "QRY", "SDC", "UUX"];
/// Server → client commands that carry a payload in P2–P12.
pub const SERVER_PAYLOAD_COMMANDS: &[&str] = &["MSG", "UBX", "GCF", "UUX", "NOT", "IPG"];

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

/// Incremental decoder over a receive buffer.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_line: usize,
    max_payload: usize,
    payload_commands: &'static [&'static str],
}

impl Decoder {
    /// Decoder for what clients send to a server.
    pub fn client_to_server(max_payload: usize) -> Decoder {
        Decoder {
            max_line: MAX_LINE,
            max_payload,
            payload_commands: CLIENT_PAYLOAD_COMMANDS,
        }
    }

    /// Decoder for what a server sends to clients (test clients, the load generator).
    pub fn server_to_client() -> Decoder {
        Decoder {
            max_line: MAX_LINE,
            max_payload: 1 << 20,
            payload_commands: SERVER_PAYLOAD_COMMANDS,
        }
    }

    pub fn with_max_line(mut self, max_line: usize) -> Decoder {
        self.max_line = max_line;
        self
    }

    /// Bytes the buffer may hold before a complete command must have arrived.
    pub fn max_buffered(&self) -> usize {
        self.max_line + 2 + self.max_payload
    }

    /// Takes the next complete command off the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed; nothing is consumed then, so a
    /// line or payload split across reads is reassembled on the next call.
    /// Blank lines are skipped (some clients send a stray CR LF after a payload).
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Command>, FrameError> {
        loop {
            let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
                // +1: the line's CR may already be here while its LF is not.
                if buf.len() > self.max_line + 1 {
                    return Err(FrameError::LineTooLong { max: self.max_line });
                }
                return Ok(None);
            };
            let line_bytes = buf[..lf].strip_suffix(b"\r").unwrap_or(&buf[..lf]);
            if line_bytes.len() > self.max_line {
                return Err(FrameError::LineTooLong { max: self.max_line });
            }
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
            if !self.payload_commands.contains(&name.as_str()) {
                buf.advance(lf + 1);
                return Ok(Some(Command {
                    name,
                    args,
                    payload: None,
                }));
            }
            let len = args
                .last()
                .and_then(|t| {
                    if t.bytes().all(|b| b.is_ascii_digit()) {
                        t.parse::<usize>().ok()
                    } else {
                        None
                    }
                })
                .ok_or_else(|| FrameError::BadPayloadLength(name.clone()))?;
            if len > self.max_payload {
                return Err(FrameError::PayloadTooLarge {
                    len,
                    max: self.max_payload,
                });
            }
            if buf.len() < lf + 1 + len {
                // Reserve once so a large payload arriving in pieces is not re-copied.
                buf.reserve(lf + 1 + len - buf.len());
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
}
