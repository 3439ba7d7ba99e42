//! User handles: e-mail-like addresses, compared case-insensitively.

/// Longest handle the protocol allows (1999 draft §5.4).
pub const MAX_HANDLE_LEN: usize = 129;

/// Returns the canonical (lower-case) form of `raw` if it is a well-formed
/// handle: `local@domain.tld`, printable ASCII, no spaces, at most 129 bytes.
pub fn normalize(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_HANDLE_LEN {
        return None;
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic())
        || raw.contains(['%', ',', '\'', '"', '<', '>', '\\'])
    {
        return None;
    }
    let (local, domain) = raw.split_once('@')?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return None;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
        return None;
    }
    Some(raw.to_ascii_lowercase())
}

/// Whether `handle` is in a domain msngate uses for bridged users
/// (`…@matrix.msngate`, `…@<network>.irc`), where no local account may exist.
pub fn is_bridged(handle: &str) -> bool {
    match handle.rsplit_once('@') {
        Some((_, domain)) => {
            let domain = domain.to_ascii_lowercase();
            domain == "matrix.msngate" || domain.ends_with(".irc")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{is_bridged, normalize};

    #[test]
    fn bridged_domains_are_recognised() {
        assert!(is_bridged("bob_3aexample.org@matrix.msngate"));
        assert!(is_bridged("nick@libera.irc"));
        assert!(!is_bridged("alice@example.com"));
    }

    #[test]
    fn accepts_addresses_and_lowercases() {
        assert_eq!(
            normalize("Alice@Example.COM").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(
            normalize("nick@libera.irc").as_deref(),
            Some("nick@libera.irc")
        );
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "a@b.com,",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
        assert_eq!(normalize(&format!("{}@example.com", "a".repeat(130))), None);
    }
}
