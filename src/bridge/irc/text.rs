//! Text between MSN and IRC: formatting, CTCP, and splitting long messages
//! into IRC lines on word boundaries without losing text.

use msnp::mime::{self, ImFormat, MimeMessage, PayloadKind};

/// What one IRC line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Privmsg,
    /// CTCP ACTION (`/me`).
    Action,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Privmsg => "privmsg",
            LineKind::Action => "action",
        }
    }

    pub fn from_stored(s: &str) -> LineKind {
        if s == "action" {
            LineKind::Action
        } else {
            LineKind::Privmsg
        }
    }

    /// Bytes the kind adds around the text (`\x01ACTION …\x01`).
    pub fn overhead(self) -> usize {
        match self {
            LineKind::Privmsg => 0,
            LineKind::Action => 9,
        }
    }
}

/// What an MSN switchboard payload means for IRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromMsn {
    /// Text to send: the kind, the text (may contain line breaks; split
    /// later) and IRC formatting codes to put at the start of every line.
    Text {
        kind: LineKind,
        text: String,
        style: String,
    },
    /// Something a person sent that IRC cannot carry; the sender is told.
    Unsupported(&'static str),
    /// Protocol chatter (typing, caps, keep-alives): nothing to do.
    Ignore,
}

/// Interprets a switchboard payload from an MSN user.
pub fn from_msn(payload: &[u8]) -> FromMsn {
    match mime::classify(payload) {
        PayloadKind::Text => {
            let Some(msg) = MimeMessage::parse(payload) else {
                return FromMsn::Ignore;
            };
            let Some(text) = mime::text_body(&msg) else {
                return FromMsn::Ignore;
            };
            let style = msg
                .header("X-MMS-IM-Format")
                .map(|v| irc_style(&ImFormat::parse(v)))
                .unwrap_or_default();
            // MSN has no emote; Pidgin and habit write "/me does".
            let (kind, text) = match text.strip_prefix("/me ") {
                Some(rest) => (LineKind::Action, rest.to_string()),
                None => (LineKind::Privmsg, text),
            };
            if text.trim().is_empty() {
                return FromMsn::Ignore;
            }
            FromMsn::Text { kind, text, style }
        }
        PayloadKind::Nudge => FromMsn::Text {
            kind: LineKind::Action,
            text: "nudges you".into(),
            style: String::new(),
        },
        PayloadKind::Invite => FromMsn::Unsupported("file transfers and other invitations"),
        PayloadKind::Ink => FromMsn::Unsupported("handwriting"),
        PayloadKind::Datacast => FromMsn::Unsupported("winks and voice clips"),
        PayloadKind::P2p => FromMsn::Unsupported("file transfers"),
        _ => FromMsn::Ignore,
    }
}

/// IRC codes for the effects of an MSN font (colour and face are not
/// carried: most MSN users pick one, and IRC readers would see it on every line).
fn irc_style(format: &ImFormat) -> String {
    let mut s = String::new();
    for (on, code) in [
        (format.bold, '\x02'),
        (format.italic, '\x1d'),
        (format.underline, '\x1f'),
        (format.strike, '\x1e'),
    ] {
        if on {
            s.push(code);
        }
    }
    s
}

/// Removes IRC formatting: bold, italic, underline, strike, monospace,
/// reverse, reset, and colours with their `fg[,bg]` digits or hex values.
pub fn strip_formatting(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x02' | '\x0f' | '\x11' | '\x16' | '\x1d' | '\x1e' | '\x1f' => {}
            '\x03' => {
                let digits = |chars: &mut std::iter::Peekable<std::str::Chars>| {
                    let mut n = 0;
                    while n < 2 && chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                        chars.next();
                        n += 1;
                    }
                    n
                };
                if digits(&mut chars) > 0 && chars.peek() == Some(&',') {
                    let mut probe = chars.clone();
                    probe.next();
                    if probe.peek().is_some_and(|c| c.is_ascii_digit()) {
                        chars.next();
                        digits(&mut chars);
                    }
                }
            }
            '\x04' => {
                let hex = |chars: &mut std::iter::Peekable<std::str::Chars>| {
                    let mut probe = chars.clone();
                    if (0..6).all(|_| probe.next().is_some_and(|c| c.is_ascii_hexdigit())) {
                        for _ in 0..6 {
                            chars.next();
                        }
                        true
                    } else {
                        false
                    }
                };
                if hex(&mut chars) && chars.peek() == Some(&',') {
                    let mut probe = chars.clone();
                    probe.next();
                    if hex(&mut probe) {
                        chars.next();
                        hex(&mut chars);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Decodes a line from IRC: UTF-8 when it is, otherwise Latin-1 (what most
/// non-UTF-8 IRC clients send), so no byte is dropped.
pub fn decode_line(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// A CTCP request or reply inside a PRIVMSG/NOTICE text: `(COMMAND, args)`.
pub fn ctcp(text: &str) -> Option<(String, &str)> {
    let inner = text.strip_prefix('\x01')?;
    let inner = inner.strip_suffix('\x01').unwrap_or(inner);
    let (cmd, args) = inner.split_once(' ').unwrap_or((inner, ""));
    Some((cmd.to_ascii_uppercase(), args))
}

/// Removes characters that would end or corrupt an IRC line.
pub fn line_safe(text: &str) -> String {
    text.chars()
        .filter(|&c| c != '\r' && c != '\n' && c != '\0')
        .collect()
}

/// Splits `text` into pieces of at most `budget` bytes: first at line
/// breaks, then between words; a word longer than a whole line is cut at
/// a character boundary. Joining the pieces of one input line with single
/// spaces gives the line back with its runs of spaces at the cut points
/// reduced to one; nothing else is lost. Empty lines are skipped (IRC
/// cannot send them).
pub fn split(text: &str, budget: usize) -> Vec<String> {
    let budget = budget.max(16);
    let mut out = Vec::new();
    for line in text.split(['\n', '\r']).map(|l| l.replace('\0', "")) {
        let mut rest = line.trim_end();
        while !rest.is_empty() {
            if rest.len() <= budget {
                out.push(rest.to_string());
                break;
            }
            let mut cut = budget;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            // Prefer the last space at or before the budget.
            let space = if rest.as_bytes()[cut] == b' ' {
                Some(cut)
            } else {
                rest[..cut].rfind(' ')
            };
            let (piece, next) = match space {
                Some(space) if space > 0 => (&rest[..space], &rest[space + 1..]),
                _ => (&rest[..cut], &rest[cut..]),
            };
            let piece = piece.trim_end();
            if !piece.is_empty() {
                out.push(piece.to_string());
            }
            rest = next.trim_start_matches(' ');
        }
    }
    out
}

/// A duration as a person says it: "3 days", "2 hours", "45 seconds".
pub fn duration_words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = match secs {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_irc_codes() {
        assert_eq!(
            strip_formatting("\x02bold\x02 \x0304,12red\x03 \x1ditalic\x0f x\x0399"),
            "bold red italic x"
        );
        assert_eq!(strip_formatting("\x031,2 and \x03,x"), " and ,x");
        assert_eq!(strip_formatting("\x04ff0000,00ff00hex\x04"), "hex");
        assert_eq!(strip_formatting("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn split_keeps_every_word() {
        let words: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
        let text = words.join(" ");
        let pieces = split(&text, 100);
        assert!(pieces.iter().all(|p| p.len() <= 100));
        assert_eq!(pieces.join(" "), text);
        let long = "x".repeat(250) + " ✓✓✓";
        let pieces = split(&long, 100);
        assert!(pieces.iter().all(|p| p.len() <= 100));
        assert_eq!(pieces.concat().replace(' ', ""), long.replace(' ', ""));
        assert_eq!(split("a\r\n\r\nb", 100), ["a", "b"]);
        let multibyte = "é".repeat(100);
        let pieces = split(&multibyte, 33);
        assert!(pieces.iter().all(|p| p.len() <= 33));
        assert_eq!(pieces.concat(), multibyte);
    }

    #[test]
    fn msn_payloads() {
        let p = mime::text_message("/me waves", None);
        assert_eq!(
            from_msn(&p),
            FromMsn::Text {
                kind: LineKind::Action,
                text: "waves".into(),
                style: String::new()
            }
        );
        let bold = ImFormat {
            bold: true,
            ..ImFormat::default()
        };
        let p = mime::text_message("hi", Some(&bold));
        assert_eq!(
            from_msn(&p),
            FromMsn::Text {
                kind: LineKind::Privmsg,
                text: "hi".into(),
                style: "\x02".into()
            }
        );
        assert_eq!(from_msn(&mime::typing_message("a@b.c")), FromMsn::Ignore);
        assert!(matches!(
            from_msn(&mime::nudge_message()),
            FromMsn::Text {
                kind: LineKind::Action,
                ..
            }
        ));
    }

    #[test]
    fn ctcp_parsing() {
        assert_eq!(
            ctcp("\x01ACTION waves\x01"),
            Some(("ACTION".into(), "waves"))
        );
        assert_eq!(ctcp("\x01version\x01"), Some(("VERSION".into(), "")));
        assert_eq!(ctcp("hello"), None);
        assert_eq!(decode_line(b"caf\xe9"), "café");
    }

    #[test]
    fn durations_in_words() {
        use std::time::Duration;
        assert_eq!(duration_words(Duration::from_secs(259_200)), "3 days");
        assert_eq!(duration_words(Duration::from_secs(3_600)), "1 hour");
        assert_eq!(duration_words(Duration::from_secs(90)), "90 seconds");
        assert_eq!(duration_words(Duration::from_secs(1)), "1 second");
    }
}
