//! Properties of the WLM-era payload functions over arbitrary input:
//! `<ml>` documents round-trip and never panic, MBI responses verify
//! for any key, nonce and IV, and arbitrary blobs are refused, not panicked on.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use msnp::adl::{ListEntry, Lists, MembershipList, NetworkId};
use msnp::cid::Cid;
use msnp::endpoint::{self, EndpointHandle, MachineGuid};
use msnp::sso;
use proptest::prelude::*;

fn name_text() -> impl Strategy<Value = String> {
    // Any printable text without '@' or whitespace, XML specials included.
    proptest::string::string_regex("[a-zA-Z0-9._&<>\"'%=;{}é-]{1,20}").unwrap()
}

fn network() -> impl Strategy<Value = Option<NetworkId>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vec![1u8, 2, 4, 8, 9, 16, 32]).prop_map(NetworkId::new),
    ]
}

fn entry() -> impl Strategy<Value = ListEntry> {
    (
        name_text(),
        prop::sample::select(vec!["example.com", "yahoo.com", "live.com", "a&b.org"]),
        0u8..32,
        network(),
        proptest::option::of(proptest::string::string_regex("[ -~\t\n\ré]{0,30}").unwrap()),
    )
        .prop_map(|(local, domain, lists, network, friendly_name)| ListEntry {
            local,
            domain: domain.to_owned(),
            lists: Lists::from_bits(lists).unwrap_or(Lists::NONE),
            network,
            friendly_name,
        })
}

/// Entries in the order rendering puts them: grouped by domain, domains
/// in order of first appearance.
fn grouped(entries: &[ListEntry]) -> Vec<ListEntry> {
    let mut domains: Vec<&str> = Vec::new();
    for entry in entries {
        if !domains.contains(&entry.domain.as_str()) {
            domains.push(&entry.domain);
        }
    }
    domains
        .iter()
        .flat_map(|domain| entries.iter().filter(move |entry| entry.domain == *domain))
        .cloned()
        .collect()
}

proptest! {
    #[test]
    fn membership_lists_round_trip(initial in any::<bool>(), entries in proptest::collection::vec(entry(), 0..12)) {
        let list = MembershipList { initial, entries };
        let expected = MembershipList { initial, entries: grouped(&list.entries) };
        for xml in [list.to_xml(), list.to_client_xml()] {
            prop_assert!(!xml.contains(['\n', '\r', '\t']) && !xml.contains("> "));
            prop_assert_eq!(&MembershipList::parse(xml.as_bytes()).unwrap(), &expected);
        }
    }

    #[test]
    fn membership_list_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = MembershipList::parse(&bytes);
    }

    #[test]
    fn membership_list_parser_never_panics_on_near_misses(
        pieces in proptest::collection::vec(prop::sample::select(vec![
            "<ml", "<ml l=\"1\">", "</ml>", "<d n=\"a.com\">", "<d", " n=", "\"x\"", "'", "</d>",
            "<c n=\"bob\" />", "<c", " l=\"3\"", " t=\"32\"", " t=\"99\"", "/>", ">", "<!--", "-->",
            "<?xml?>", "&amp;", "&", " ", "\r\n", "é", "</c>",
        ]), 0..20)
    ) {
        let document = pieces.concat();
        if let Ok(list) = MembershipList::parse(document.as_bytes()) {
            // Whatever parses renders to something that parses the same.
            let again = MembershipList::parse(list.to_xml().as_bytes()).unwrap();
            prop_assert_eq!(again.entries.len(), list.entries.len());
        }
    }

    #[test]
    fn mbi_responses_verify_for_any_inputs(
        secret in proptest::collection::vec(any::<u8>(), 1..40),
        nonce in proptest::string::string_regex("[A-Za-z0-9+/=]{0,100}").unwrap(),
        iv in any::<[u8; 8]>(),
    ) {
        let key = BASE64.encode(&secret);
        let response = sso::mbi_response(&key, &nonce, iv).unwrap();
        prop_assert_eq!(sso::verify_mbi_response(&key, &nonce, &response), Ok(()));
        let other = BASE64.encode(secret.iter().map(|b| b ^ 1).collect::<Vec<u8>>());
        prop_assert!(sso::verify_mbi_response(&other, &nonce, &response).is_err());
    }

    #[test]
    fn mbi_verifier_never_panics(response in any::<String>(), blob in proptest::collection::vec(any::<u8>(), 0..200)) {
        let key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY";
        prop_assert!(sso::verify_mbi_response(key, "nonce", &response).is_err());
        prop_assert!(sso::verify_mbi_response(key, "nonce", &BASE64.encode(&blob)).is_err());
        let _ = sso::verify_mbi_response(&response, "nonce", &response);
    }

    #[test]
    fn cid_forms_round_trip(value in any::<u64>()) {
        let cid = Cid(value);
        prop_assert_eq!(Cid::from_hex(&cid.to_hex()), Some(cid));
        prop_assert_eq!(Cid::from_signed_decimal(&cid.to_signed_decimal()), Some(cid));
        prop_assert_eq!(cid.to_hex().len(), 16);
    }

    #[test]
    fn endpoint_handles_round_trip_and_never_panic(bytes in any::<[u8; 16]>(), upper in any::<bool>(), junk in any::<String>()) {
        let text = format!(
            "{}-{}-{}-{}-{}",
            hex::encode(&bytes[..4]), hex::encode(&bytes[4..6]), hex::encode(&bytes[6..8]),
            hex::encode(&bytes[8..10]), hex::encode(&bytes[10..])
        );
        let text = if upper { text.to_ascii_uppercase() } else { text };
        let guid = MachineGuid::parse(&text).unwrap();
        prop_assert_eq!(MachineGuid::parse(&guid.braced()), Some(guid.clone()));
        let handle = EndpointHandle::parse(&endpoint::endpoint_handle("bob@example.com", &guid)).unwrap();
        prop_assert_eq!(handle.endpoint, Some(guid.clone()));
        let routed = EndpointHandle::parse(&endpoint::epid_handle("1:bob@example.com", &guid)).unwrap();
        prop_assert_eq!(routed.email, "bob@example.com");
        let _ = EndpointHandle::parse(&junk);
        let _ = MachineGuid::parse(&junk);
    }
}
