//! P16+ endpoints: the machine GUID a client sends in `USR … SSO S` and
//! the handles that name one endpoint of an account
//! (wlm/login-sso.md §3, switchboard-mpop.md §1, notification.md intro).
//!
//! ```text
//! {8C7D6A2B-1F0E-4D3C-B2A1-0F9E8D7C6B5A}       MSNPSharp: braces, any case
//! 8C7D6A2B-1F0E-4D3C-B2A1-0F9E8D7C6B5A         retro-prpl: upper case, no braces
//! alice@example.com;{f26d1f07-…}               UUN target, SB USR/ANS/IRO/JOI
//! 1:alice@example.com;epid={f26d1f07-…}        P18 routing headers (SDG/NFY)
//! ```
//!
//! GUIDs are compared case-insensitively and stored without braces in
//! lower case, so all of these forms of one GUID are equal.

use crate::adl::NetworkId;
use std::fmt;

/// A machine GUID (endpoint id), normalised: lower-case hex, hyphenated
/// 8-4-4-4-12, no braces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineGuid(String);

impl MachineGuid {
    /// Parses `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}` or the same without
    /// braces, hex digits in either case. Anything else (a malformed GUID
    /// in `USR` is answered `911`) is `None`.
    pub fn parse(text: &str) -> Option<MachineGuid> {
        let bare = match text.strip_prefix('{') {
            Some(inner) => inner.strip_suffix('}')?,
            None => text,
        };
        let groups: Vec<&str> = bare.split('-').collect();
        let shape_ok = groups.len() == 5
            && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, len)| {
                group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit())
            });
        shape_ok.then(|| MachineGuid(bare.to_ascii_lowercase()))
    }

    /// The normalised form (lower case, no braces), for storage and
    /// comparison.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `{…}`, the form handles carry on the wire.
    pub fn braced(&self) -> String {
        format!("{{{}}}", self.0)
    }
}

impl fmt::Display for MachineGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A handle that may name a network and one endpoint:
/// `[netid:]email[;{guid} | ;epid={guid} | ;other]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointHandle {
    /// The `netid:` prefix (P18), if any.
    pub network: Option<NetworkId>,
    pub email: String,
    /// The endpoint after `;`, if one was named.
    pub endpoint: Option<MachineGuid>,
    /// Any other `;` suffix, kept as sent (`path=IM` in `SDG`, `via=…` for
    /// circles).
    pub suffix: Option<String>,
}

impl EndpointHandle {
    /// Parses a handle; `None` if the network prefix is not a known network
    /// id, the e-mail part is empty, or a `;{…}`/`;epid=` suffix is not a
    /// GUID.
    pub fn parse(text: &str) -> Option<EndpointHandle> {
        let (head, tail) = match text.split_once(';') {
            Some((head, tail)) => (head, Some(tail)),
            None => (text, None),
        };
        let (network, email) = match head.split_once(':') {
            Some((prefix, email)) if prefix.bytes().all(|b| b.is_ascii_digit()) => {
                let id: u8 = prefix.parse().ok()?;
                (Some(NetworkId::new(id)?), email)
            }
            _ => (None, head),
        };
        if email.is_empty() {
            return None;
        }
        let (endpoint, suffix) = match tail {
            None => (None, None),
            Some(tail) if tail.starts_with('{') => (Some(MachineGuid::parse(tail)?), None),
            Some(tail) => match tail.strip_prefix("epid=") {
                Some(guid) => (Some(MachineGuid::parse(guid)?), None),
                None => (None, Some(tail.to_owned())),
            },
        };
        Some(EndpointHandle {
            network,
            email: email.to_owned(),
            endpoint,
            suffix,
        })
    }
}

/// `email;{guid}`: one endpoint, as in `UUN`, `UBN` and on the P16+
/// switchboard.
pub fn endpoint_handle(email: &str, guid: &MachineGuid) -> String {
    format!("{email};{}", guid.braced())
}

/// `email;epid={guid}`: one endpoint in P18 routing headers.
pub fn epid_handle(email: &str, guid: &MachineGuid) -> String {
    format!("{email};epid={}", guid.braced())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_forms_normalise_to_one() {
        let forms = [
            "{8C7D6A2B-1F0E-4D3C-B2A1-0F9E8D7C6B5A}",
            "8C7D6A2B-1F0E-4D3C-B2A1-0F9E8D7C6B5A",
            "{8c7d6a2b-1f0e-4d3c-b2a1-0f9e8d7c6b5a}",
        ];
        let parsed: Vec<MachineGuid> = forms
            .iter()
            .map(|f| MachineGuid::parse(f).unwrap())
            .collect();
        assert!(parsed.iter().all(|guid| *guid == parsed[0]));
        assert_eq!(parsed[0].as_str(), "8c7d6a2b-1f0e-4d3c-b2a1-0f9e8d7c6b5a");
        assert_eq!(parsed[0].braced(), "{8c7d6a2b-1f0e-4d3c-b2a1-0f9e8d7c6b5a}");
        for bad in [
            "",
            "{}",
            "{8C7D6A2B-1F0E-4D3C-B2A1-0F9E8D7C6B5A",
            "8C7D6A2B-1F0E-4D3C-B2A1-0F9E8D7C6B5A}",
            "8C7D6A2B1F0E4D3CB2A10F9E8D7C6B5A",
            "8C7D6A2B-1F0E-4D3C-B2A1-0F9E8D7C6B5",
            "8C7D6A2G-1F0E-4D3C-B2A1-0F9E8D7C6B5A",
            "{8C7D6A2B-1F0E-4D3C-B2A1-0F9E8D7C6B5A}x",
        ] {
            assert_eq!(MachineGuid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn handles_with_networks_and_endpoints() {
        let guid = MachineGuid::parse("f26d1f07-95e2-403c-bc18-d4bfed493428").unwrap();
        let plain = EndpointHandle::parse("bob@example.com").unwrap();
        assert_eq!(
            (plain.network, plain.endpoint, plain.suffix),
            (None, None, None)
        );
        let sb = EndpointHandle::parse("alice@example.com;{F26D1F07-95E2-403C-BC18-D4BFED493428}")
            .unwrap();
        assert_eq!(sb.email, "alice@example.com");
        assert_eq!(sb.endpoint.as_ref(), Some(&guid));
        let routed = EndpointHandle::parse(
            "1:alice@example.com;epid={f26d1f07-95e2-403c-bc18-d4bfed493428}",
        )
        .unwrap();
        assert_eq!(routed.network, Some(NetworkId::PASSPORT));
        assert_eq!(routed.endpoint, Some(guid.clone()));
        let circle =
            EndpointHandle::parse("9:00000000-0000-0000-0009-0123456789ab@live.com;path=IM")
                .unwrap();
        assert_eq!(circle.network, Some(NetworkId::CIRCLE));
        assert_eq!(circle.suffix.as_deref(), Some("path=IM"));
        for bad in [
            "",
            "3:bob@example.com",
            "1:",
            "bob@example.com;{nope}",
            "bob@example.com;epid=x",
        ] {
            assert_eq!(EndpointHandle::parse(bad), None, "{bad}");
        }
        assert_eq!(
            endpoint_handle("alice@example.com", &guid),
            "alice@example.com;{f26d1f07-95e2-403c-bc18-d4bfed493428}"
        );
        assert_eq!(
            epid_handle("1:alice@example.com", &guid),
            "1:alice@example.com;epid={f26d1f07-95e2-403c-bc18-d4bfed493428}"
        );
    }
}
