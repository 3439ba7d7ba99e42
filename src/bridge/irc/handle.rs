//! How IRC users and channels appear as MSN handles (docs/irc.md).
//!
//! A nick becomes `<escaped nick>@<network>.irc`; a channel becomes
//! `<escaped name>.<kind>@<network>.irc`, where the kind letter stands for
//! the channel prefix (`#` → `c`, `&` → `l`, `!` → `x`, `+` → `p`). Nicks
//! cannot contain `.`, so a local part with a dot is always a channel.
//!
//! Escaping: letters, digits, `-` and `_` stay (letters lower-cased, as
//! handles are canonical in lower case and IRC compares nicks without
//! case); every other byte is written `=xx` (lower-case hex). `=` is never
//! part of a nick or of an unescaped name, so decoding is unambiguous, and
//! the result is always a valid MSN handle (no `[]\`^{}|`).

use crate::core::handle::MAX_HANDLE_LEN;

/// What an IRC handle names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Remote {
    /// A nick as IRC sees it (lower case).
    Nick(String),
    /// A channel name with its prefix (lower case), e.g. `#chat`.
    Channel(String),
}

impl Remote {
    /// The target of a `PRIVMSG` for this remote.
    pub fn target(&self) -> &str {
        match self {
            Remote::Nick(n) | Remote::Channel(n) => n,
        }
    }

    pub fn is_channel(&self) -> bool {
        matches!(self, Remote::Channel(_))
    }
}

const CHANNEL_KINDS: [(char, char); 4] = [('#', 'c'), ('&', 'l'), ('!', 'x'), ('+', 'p')];

/// The `@` domain of a network's handles.
pub fn domain(network: &str) -> String {
    format!("{}.irc", network.to_ascii_lowercase())
}

fn escape(name: &str, out: &mut String) {
    for b in name.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => out.push(b as char),
            b'A'..=b'Z' => out.push(b.to_ascii_lowercase() as char),
            _ => out.push_str(&format!("={b:02x}")),
        }
    }
}

fn unescape(local: &str) -> Option<String> {
    let bytes = local.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' => {
                let hex = local.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b @ (b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.') => {
                out.push(b);
                i += 1;
            }
            b @ b'A'..=b'Z' => {
                out.push(b.to_ascii_lowercase());
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `nick` is a nick IRC could have (RFC 2812 plus common practice).
pub fn valid_nick(nick: &str) -> bool {
    let mut chars = nick.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let special = |c: char| "[]\\`^{}|_".contains(c);
    (first.is_ascii_alphabetic() || special(first))
        && chars.all(|c| c.is_ascii_alphanumeric() || special(c) || c == '-')
        && nick.len() <= 64
}

/// Whether `name` (with its prefix) is a channel name IRC accepts.
pub fn valid_channel(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    CHANNEL_KINDS.iter().any(|(p, _)| *p == first)
        && name.len() > 1
        && name.len() <= 64
        && !name
            .chars()
            .any(|c| c.is_control() || c == ' ' || c == ',' || c == ':')
}

/// The MSN handle of an IRC nick; `None` if it would be too long.
pub fn nick_handle(nick: &str, network: &str) -> Option<String> {
    let mut local = String::with_capacity(nick.len() + 8);
    escape(nick, &mut local);
    finish(local, network)
}

/// The MSN handle of a channel (`#chat` → `chat.c@<network>.irc`).
pub fn channel_handle(channel: &str, network: &str) -> Option<String> {
    let mut chars = channel.chars();
    let prefix = chars.next()?;
    let (_, kind) = CHANNEL_KINDS.iter().find(|(p, _)| *p == prefix)?;
    let mut local = String::with_capacity(channel.len() + 8);
    escape(chars.as_str(), &mut local);
    if local.is_empty() {
        return None;
    }
    local.push('.');
    local.push(*kind);
    finish(local, network)
}

fn finish(mut local: String, network: &str) -> Option<String> {
    local.push('@');
    local.push_str(&domain(network));
    (local.len() <= MAX_HANDLE_LEN).then_some(local)
}

/// Decodes a handle of `network`; `None` if it is not one or is malformed.
pub fn parse(handle: &str, network: &str) -> Option<Remote> {
    let (local, dom) = handle.rsplit_once('@')?;
    if !dom.eq_ignore_ascii_case(&domain(network)) || local.is_empty() {
        return None;
    }
    match local.rsplit_once('.') {
        Some((name, kind)) => {
            let (prefix, _) = CHANNEL_KINDS
                .iter()
                .find(|(_, k)| kind.len() == 1 && kind.starts_with(*k))?;
            let name = unescape(name)?;
            let channel = format!("{prefix}{name}");
            valid_channel(&channel).then_some(Remote::Channel(channel))
        }
        None => {
            let nick = unescape(local)?;
            valid_nick(&nick).then_some(Remote::Nick(nick))
        }
    }
}

/// The handle of a remote (inverse of [`parse`]).
pub fn handle_of(remote: &Remote, network: &str) -> Option<String> {
    match remote {
        Remote::Nick(n) => nick_handle(n, network),
        Remote::Channel(c) => channel_handle(c, network),
    }
}

/// IRC's default case mapping (rfc1459): `[]\~` are the upper case of `{}|^`.
pub fn irc_lower(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks_round_trip_and_are_valid_handles() {
        for nick in [
            "bob",
            "Bob",
            "alice|msn",
            "[x]",
            "a\\b`c^d{e}f",
            "_under",
            "x-y",
        ] {
            let h = nick_handle(nick, "Test").unwrap();
            assert!(
                crate::core::handle::normalize(&h).as_deref() == Some(h.as_str()),
                "{h}"
            );
            assert_eq!(
                parse(&h, "test"),
                Some(Remote::Nick(nick.to_ascii_lowercase())),
                "{h}"
            );
        }
        assert_eq!(
            nick_handle("alice|msn", "libera").unwrap(),
            "alice=7cmsn@libera.irc"
        );
    }

    #[test]
    fn channels_round_trip() {
        assert_eq!(
            channel_handle("#chat", "libera").unwrap(),
            "chat.c@libera.irc"
        );
        for chan in [
            "#chat",
            "##rust",
            "&local",
            "#a.b",
            "#ü-x",
            "!12345",
            "+modeless",
        ] {
            let h = channel_handle(chan, "n").unwrap();
            assert!(crate::core::handle::normalize(&h).is_some(), "{h}");
            assert_eq!(
                parse(&h, "n"),
                Some(Remote::Channel(chan.to_lowercase())),
                "{h}"
            );
        }
    }

    #[test]
    fn refuses_foreign_and_malformed() {
        for bad in [
            "bob@other.irc",
            "bob@n.irc.x",
            "=zz@n.irc",
            "1bob@n.irc",
            "x.q@n.irc",
            ".c@n.irc",
            "a b@n.irc",
            "@n.irc",
        ] {
            assert_eq!(parse(bad, "n"), None, "{bad}");
        }
        assert_eq!(nick_handle(&"a".repeat(200), "n"), None);
    }
}
