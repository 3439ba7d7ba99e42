//! Names across the bridge: MSN handles ↔ ghost Matrix IDs, and Matrix IDs
//! ↔ the e-mail-like handles MSN users add as contacts.
//!
//! Both directions use one reversible escape, an escape byte followed by
//! two lower-case hex digits of a byte, for every byte outside the set the
//! other side accepts. Ghost localparts escape with `=` (`=40` for `@`);
//! contact handles with `_` (`_3a` for `:`), because some MSN client
//! libraries split `N=…` fields on every `=` and cut such handles short.
//! docs/matrix.md describes both for users.

use crate::config::MatrixConfig;

/// Domain of the handles under which Matrix users appear on MSN. `.msngate`
/// is no real top-level domain, so no real mailbox (and so no sensible local
/// account) can collide with it.
pub const CONTACT_DOMAIN: &str = "matrix.msngate";

/// Capability bits reported for Matrix users (what Escargot reports for
/// users who are not on an MSN client; notification.md §3.1).
pub const MATRIX_CAPABILITIES: u32 = 0x4000_0000;

/// Longest MSN handle (1999 draft §5.4; `core::handle::MAX_HANDLE_LEN`).
const MAX_HANDLE: usize = crate::core::handle::MAX_HANDLE_LEN;

/// Escape byte of contact handles: no MSN client treats `_` as a separator
/// and every add-contact field accepts it in an address.
const HANDLE_ESCAPE: u8 = b'_';
/// Escape byte of contact handles before `_` (still resolved as an alias).
const LEGACY_HANDLE_ESCAPE: u8 = b'=';
/// Escape byte of ghost localparts (a Matrix localpart may hold `=`).
const GHOST_ESCAPE: u8 = b'=';

fn push_escaped(out: &mut String, marker: u8, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(marker as char);
    out.push(HEX[usize::from(byte >> 4)] as char);
    out.push(HEX[usize::from(byte & 15)] as char);
}

/// Escapes `s` with `marker`, keeping bytes for which `keep(byte, index,
/// previous)` holds (never `marker` itself).
fn escape(s: &str, marker: u8, keep: impl Fn(u8, usize, Option<u8>) -> bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut previous = None;
    for (i, b) in s.bytes().enumerate() {
        if b != marker && keep(b, i, previous) {
            out.push(b as char);
        } else {
            push_escaped(&mut out, marker, b);
        }
        previous = Some(b);
    }
    out
}

/// Reverses [`escape`]; `None` on a malformed escape or non-UTF-8 result.
fn unescape(s: &str, marker: u8) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == marker {
            let hex = s.get(i + 1..i + 3)?;
            if !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `localpart` is a valid (non-historical) Matrix user localpart.
fn valid_localpart(localpart: &str) -> bool {
    !localpart.is_empty()
        && localpart
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._=-/+".contains(&b))
}

/// Whether `server` looks like a Matrix server name: a host name, IPv4 or
/// bracketed IPv6 literal, with an optional port.
fn valid_server_name(server: &str) -> bool {
    let host = match server.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            host
        }
        _ => server,
    };
    if let Some(inner) = host.strip_prefix('[') {
        return inner.strip_suffix(']').is_some_and(|v6| {
            !v6.is_empty()
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        });
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Splits `@local:server` (validated).
pub fn split_user_id(user_id: &str) -> Option<(&str, &str)> {
    let (local, server) = user_id.strip_prefix('@')?.split_once(':')?;
    (valid_localpart(local) && valid_server_name(server)).then_some((local, server))
}

/// The MSN handle of a Matrix user: `<escaped "local:server">@matrix.msngate`.
/// Lower-case letters, digits and `-` stay; `.` stays unless first, last or
/// doubled (which e-mail syntax forbids); everything else — `:`, `_`, `=`,
/// `/`, `+`, upper case — becomes `_xx`. So `@bob:example.org` is
/// `bob_3aexample.org@matrix.msngate`. `None` when the result would be
/// longer than an MSN handle may be.
pub fn contact_handle(user_id: &str) -> Option<String> {
    contact_handle_with(user_id, HANDLE_ESCAPE)
}

/// [`contact_handle`] with escape byte `marker` (`=` gave the old form).
fn contact_handle_with(user_id: &str, marker: u8) -> Option<String> {
    let (local, server) = split_user_id(user_id)?;
    let raw = format!("{local}:{server}");
    let last = raw.len() - 1;
    let escaped = escape(&raw, marker, |b, i, previous| match b {
        b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => true,
        b'.' => i != 0 && i != last && previous != Some(b'.'),
        _ => false,
    });
    let handle = format!("{escaped}@{CONTACT_DOMAIN}");
    (handle.len() <= MAX_HANDLE).then_some(handle)
}

/// The Matrix user ID behind a contact handle (case-insensitive, as MSN
/// handles are), or `None` if `handle` is not one. The old `=xx` form
/// (`bob=3aexample.org@matrix.msngate`) is still understood, so clients
/// that stored it keep working.
pub fn user_id_of_contact(handle: &str) -> Option<String> {
    user_id_of_contact_with(handle, HANDLE_ESCAPE)
        .or_else(|| user_id_of_contact_with(handle, LEGACY_HANDLE_ESCAPE))
}

/// The current handle for an old-form contact handle; `None` for anything
/// else (a current handle included).
pub fn current_contact_handle(handle: &str) -> Option<String> {
    contact_handle(&user_id_of_contact_with(handle, LEGACY_HANDLE_ESCAPE)?)
}

fn user_id_of_contact_with(handle: &str, marker: u8) -> Option<String> {
    let lower = handle.to_ascii_lowercase();
    let local = lower.strip_suffix(CONTACT_DOMAIN)?.strip_suffix('@')?;
    let raw = unescape(local, marker)?;
    let user_id = format!("@{raw}");
    // Only the canonical spelling maps back, so each Matrix user has one handle.
    (split_user_id(&user_id).is_some()
        && contact_handle_with(&user_id, marker).as_deref() == Some(lower.as_str()))
    .then_some(user_id)
}

/// Ghost naming from the configuration.
#[derive(Debug, Clone)]
pub struct Ghosts {
    prefix: String,
    suffix: String,
    pub server_name: String,
    pub bot_localpart: String,
}

impl Ghosts {
    pub fn new(config: &MatrixConfig, bot_localpart: &str) -> Ghosts {
        let (prefix, suffix) = config
            .ghost_localpart_template
            .split_once("{handle}")
            .unwrap_or(("_msn_", ""));
        Ghosts {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
            server_name: config.server_name.clone(),
            bot_localpart: bot_localpart.to_string(),
        }
    }

    /// The ghost localpart of an MSN handle: the template around the handle,
    /// with every byte a Matrix localpart cannot hold (`@` first of all)
    /// written `=xx`: `alice@example.com` → `_msn_alice=40example.com`.
    pub fn localpart(&self, handle: &str) -> String {
        let escaped = escape(
            &handle.to_ascii_lowercase(),
            GHOST_ESCAPE,
            |b, _, _| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'),
        );
        format!("{}{escaped}{}", self.prefix, self.suffix)
    }

    pub fn user_id(&self, handle: &str) -> String {
        format!("@{}:{}", self.localpart(handle), self.server_name)
    }

    pub fn bot_user_id(&self) -> String {
        format!("@{}:{}", self.bot_localpart, self.server_name)
    }

    /// The MSN handle a ghost user ID stands for, or `None` for anyone else.
    pub fn handle_of(&self, user_id: &str) -> Option<String> {
        let (local, server) = user_id.strip_prefix('@')?.split_once(':')?;
        if server != self.server_name {
            return None;
        }
        let escaped = local
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        let handle = crate::core::handle::normalize(&unescape(escaped, GHOST_ESCAPE)?)?;
        (self.localpart(&handle) == local).then_some(handle)
    }

    /// Whether `user_id` is in the bridge's own namespace (ghost or bot).
    pub fn is_ours(&self, user_id: &str) -> bool {
        user_id == self.bot_user_id() || self.handle_of(user_id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ghosts() -> Ghosts {
        let config = MatrixConfig {
            homeserver_url: "http://127.0.0.1:8008".into(),
            server_name: "example.org".into(),
            registration: "reg.yaml".into(),
            listen: "127.0.0.1:29320".parse().unwrap(),
            appservice_url: None,
            ghost_localpart_template: "_msn_{handle}".into(),
            bot_localpart: "_msn_bot".into(),
            appservice_limits: Default::default(),
        };
        Ghosts::new(&config, "_msn_bot")
    }

    #[test]
    fn contact_handles_are_mail_shaped_and_reversible() {
        for (id, handle, old) in [
            (
                "@bob:example.org",
                "bob_3aexample.org@matrix.msngate",
                "bob=3aexample.org@matrix.msngate",
            ),
            (
                "@a.b_c-d:matrix.org",
                "a.b_5fc-d_3amatrix.org@matrix.msngate",
                "a.b_c-d=3amatrix.org@matrix.msngate",
            ),
            (
                "@x=y/z+w:hs.test:8448",
                "x_3dy_2fz_2bw_3ahs.test_3a8448@matrix.msngate",
                "x=3dy=2fz=2bw=3ahs.test=3a8448@matrix.msngate",
            ),
            (
                "@.dot..:s.org",
                "_2edot._2e_3as.org@matrix.msngate",
                "=2edot.=2e=3as.org@matrix.msngate",
            ),
            (
                "@bob:[::1]:8008",
                "bob_3a_5b_3a_3a1_5d_3a8008@matrix.msngate",
                "bob=3a=5b=3a=3a1=5d=3a8008@matrix.msngate",
            ),
            (
                "@bob:Example.ORG",
                "bob_3a_45xample._4f_52_47@matrix.msngate",
                "bob=3a=45xample.=4f=52=47@matrix.msngate",
            ),
        ] {
            let got = contact_handle(id).unwrap();
            assert_eq!(got, handle, "{id}");
            assert_eq!(
                crate::core::handle::normalize(&got).as_deref(),
                Some(handle),
                "a valid MSN handle"
            );
            assert!(
                got.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b)),
                "no byte an MSN client treats as a separator"
            );
            assert_eq!(user_id_of_contact(&got).as_deref(), Some(id));
            assert_eq!(
                user_id_of_contact(&got.to_ascii_uppercase()).as_deref(),
                Some(id),
                "case-insensitive like MSN handles"
            );
            assert_eq!(current_contact_handle(&got), None, "already current");
            // The old form is an alias of the same user.
            assert_eq!(user_id_of_contact(old).as_deref(), Some(id), "{old}");
            assert_eq!(current_contact_handle(old).as_deref(), Some(handle));
        }
        for bad in [
            "bob",
            "@bob",
            "@:x.org",
            "@Bob:x.org",
            "@bob:",
            "@b b:x.org",
            "@bob:x.org:port",
        ] {
            assert_eq!(contact_handle(bad), None, "{bad}");
        }
        for bad in [
            "bob@example.org",
            "bob=3aexample.org@matrix.msngate.com",
            "bob=3Aexample.org@x.matrix.msngate",
            "bob=zz@matrix.msngate",
            "bob@matrix.msngate",
            "=62ob=3aexample.org@matrix.msngate",
            "_62ob_3aexample.org@matrix.msngate",
            "a.b_c-d_3amatrix.org@matrix.msngate",
            "bob_3aexample.org=3a@matrix.msngate",
        ] {
            assert_eq!(user_id_of_contact(bad), None, "{bad}");
        }
        assert_eq!(
            contact_handle(&format!("@{}:example.org", "a".repeat(120))),
            None,
            "too long for MSN"
        );
    }

    #[test]
    fn ghost_ids_follow_the_template() {
        let g = ghosts();
        assert_eq!(
            g.user_id("alice@example.com"),
            "@_msn_alice=40example.com:example.org"
        );
        assert_eq!(
            g.user_id("o'brien+x@mail.example.com"),
            "@_msn_o=27brien=2bx=40mail.example.com:example.org"
        );
        assert_eq!(
            g.handle_of("@_msn_alice=40example.com:example.org")
                .as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(g.handle_of("@_msn_alice=40example.com:other.org"), None);
        assert_eq!(g.handle_of("@_msn_bot:example.org"), None);
        assert_eq!(g.handle_of("@bob:example.org"), None);
        assert!(g.is_ours("@_msn_bot:example.org"));
        assert!(!g.is_ours("@bob:example.org"));
    }
}
