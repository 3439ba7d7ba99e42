//! The P13–P18 test vectors of wlm/vectors.md, one test per table.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use msnp::adl::{AdlError, ListEntry, Lists, MembershipList, NetworkId};
use msnp::auth::{self, PRODUCTS};
use msnp::cid::Cid;
use msnp::dialect::Dialect;
use msnp::oim;
use msnp::sso::{self, MbiError};

// ---- §1 MBI key response ----

const SECRET: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY";
const NONCE: &str = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKT";
const IV: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const MBI_RESPONSE: &str = "HAAAAAEAAAADZgAABIAAAAgAAAAUAAAASAAAAAECAwQFBgcIQy1EOiG+QLf7VxcIoVCx5TAJuG0LHofk3tHUwRIAWSprBCmEvRA4F2se7WSb93py7akUhV5xzs+yr+lrzKMK3bvvez83fgnUeXPKocjN/7nDp/WKv0f9/UTvI9A=";

#[test]
fn mbi_response_matches_the_vector() {
    let response = sso::mbi_response(SECRET, NONCE, IV).unwrap();
    assert_eq!(response.len(), 172);
    assert_eq!(response, MBI_RESPONSE);
    assert_eq!(
        sso::verify_mbi_response(SECRET, NONCE, MBI_RESPONSE),
        Ok(())
    );
}

#[test]
fn mbi_verifier_accepts_any_iv() {
    let response = sso::mbi_response(SECRET, NONCE, [0xEE; 8]).unwrap();
    assert_ne!(response, MBI_RESPONSE);
    assert_eq!(sso::verify_mbi_response(SECRET, NONCE, &response), Ok(()));
}

fn tampered(change: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut blob = BASE64.decode(MBI_RESPONSE).unwrap();
    change(&mut blob);
    BASE64.encode(blob)
}

#[test]
fn mbi_verifier_refuses_tampered_blobs() {
    // Ciphertext (bytes 56..128), hash (36..56), IV (28..36), header word 5.
    let cipher = tampered(|blob| blob[100] ^= 0x01);
    assert_eq!(
        sso::verify_mbi_response(SECRET, NONCE, &cipher),
        Err(MbiError::CipherMismatch)
    );
    let hash = tampered(|blob| blob[40] ^= 0x80);
    assert_eq!(
        sso::verify_mbi_response(SECRET, NONCE, &hash),
        Err(MbiError::HashMismatch)
    );
    let iv = tampered(|blob| blob[30] ^= 0x10);
    assert_eq!(
        sso::verify_mbi_response(SECRET, NONCE, &iv),
        Err(MbiError::CipherMismatch)
    );
    let header = tampered(|blob| blob[20] = 21);
    assert_eq!(
        sso::verify_mbi_response(SECRET, NONCE, &header),
        Err(MbiError::BadHeader)
    );
    let short = tampered(|blob| blob.truncate(120));
    assert_eq!(
        sso::verify_mbi_response(SECRET, NONCE, &short),
        Err(MbiError::LengthMismatch {
            declared: 128,
            actual: 120
        })
    );
    // The right blob for another nonce or another key.
    let other_nonce = format!("{}A", &NONCE[..63]);
    assert_eq!(
        sso::verify_mbi_response(SECRET, &other_nonce, MBI_RESPONSE),
        Err(MbiError::HashMismatch)
    );
    let other_key = BASE64.encode([7u8; 24]);
    assert_eq!(
        sso::verify_mbi_response(&other_key, NONCE, MBI_RESPONSE),
        Err(MbiError::HashMismatch)
    );
}

// ---- §2 QRY answers for the WLM product ids ----

const CHALLENGE: &str = "22210219642164014968";

/// (product id, key, correct answer, what a masked-XOR verifier expects)
const QRY_ROWS: &[(&str, &str, &str, &str)] = &[
    (
        "PROD0090YUAUV{2B",
        "YMM8C_H7KCQ2S_KL",
        "85ecb0db8f32113df79ce0892b9a102c",
        "85ecb05b8f32113df79ce0092b9a102c",
    ),
    (
        "PROD01065C%ZFN6F",
        "O4BG@C7BWLYQX?5G",
        "5a7ca864d9edaedfd464bbbd8e1a7c1c",
        "5a7ca864d9edae5fd464bb3d8e1a7c1c",
    ),
    (
        "PROD0112J1LW7%NB",
        "RH96F{PHI8PPX_TJ",
        "82b096fe53bbc00f9c8436a2fbc48f0d",
        "82b0967e53bbc00f9c843622fbc48f0d",
    ),
    (
        "PROD0113H11T8$X_",
        "RG@XY*28Q5QHS%Q5",
        "52e41a335075c63e132d6f3a497fd82b",
        "52e41a335075c63e132d6f3a497fd82b",
    ),
    (
        "PROD0114ES4Z%Q5W",
        "PK}_A_0N_K%O?A9S",
        "e790b908276bb51115fa7eb3c8a36315",
        "e790b908276bb51115fa7e33c8a36315",
    ),
    (
        "PROD0118R6%2WYOS",
        "YIXPX@5I2P0UT*LK",
        "8c24d791ee3a1064557c99fcf95fde72",
        "8c24d711ee3a1064557c997cf95fde72",
    ),
    (
        "PROD0119GSJUC$18",
        "ILTXC!4IXB5FB*PX",
        "a400af809ac86fbdf6deec7286fc06b8",
        "a400af009ac86f3df6deec7286fc0638",
    ),
    (
        "PROD0120PW!CCV9@",
        "C1BX{V4W}Q3*10SM",
        "6e92a312bf6b70ee58e75a1e3315695c",
        "6e92a312bf6b706e58e75a1e3315695c",
    ),
];

#[test]
fn wlm_qry_answers_match_the_vectors() {
    for &(id, key, answer, masked) in QRY_ROWS {
        let product = auth::find_product(id).unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(product.key, key, "{id}");
        assert_eq!(auth::challenge_msnp11(CHALLENGE, id, key), answer, "{id}");
        for dialect in 13..=18 {
            assert!(
                auth::verify_qry(CHALLENGE, id, answer.as_bytes(), dialect),
                "{id} P{dialect}"
            );
            if masked != answer {
                assert!(
                    !auth::verify_qry(CHALLENGE, id, masked.as_bytes(), dialect),
                    "{id}"
                );
            }
        }
    }
}

#[test]
fn wlm_product_ids_are_known_products() {
    for n in 13..=18 {
        let dialect = Dialect::new(n).unwrap();
        let ids = auth::wlm_product_ids(dialect);
        assert!(!ids.is_empty());
        for id in ids {
            assert!(PRODUCTS.iter().any(|product| product.id == *id), "{id}");
        }
        let product = auth::wlm_client_product(dialect).unwrap();
        assert!(ids.contains(&product.id), "P{n}");
    }
    assert!(auth::wlm_product_ids(Dialect::MSNP12).is_empty());
    assert_eq!(auth::wlm_client_product(Dialect::MSNP12), None);
    assert_eq!(
        auth::wlm_client_product(Dialect::MSNP18).map(|p| p.id),
        Some("PROD0120PW!CCV9@")
    );
}

// ---- §3 OIM lock key ----

#[test]
fn oim_lock_keys_match_the_vectors() {
    let challenge = "1850937852";
    for (id, lockkey) in [
        ("PROD0119GSJUC$18", "844559b18ac25f3affb9281fd729203c"),
        ("PROD0120PW!CCV9@", "4d7903fe4e44d395e9bad3b0f98879a6"),
    ] {
        assert_eq!(oim::lock_key(challenge, id).as_deref(), Some(lockkey));
        assert!(oim::verify_lock_key(challenge, id, lockkey));
        assert!(oim::verify_lock_key(
            challenge,
            id,
            &lockkey.to_ascii_uppercase()
        ));
        assert!(!oim::verify_lock_key("1850937853", id, lockkey));
        assert!(!oim::verify_lock_key(challenge, id, ""));
    }
    assert_eq!(oim::lock_key(challenge, "PROD9999XXXXXXXX"), None);
    assert!(!oim::verify_lock_key(challenge, "PROD9999XXXXXXXX", "00"));
}

// ---- §4 ADL payloads ----

fn entry(email: &str, lists: u8, network: Option<NetworkId>) -> ListEntry {
    ListEntry::from_email(email, Lists::from_bits(lists).unwrap(), network).unwrap()
}

#[test]
fn adl_initial_dump() {
    let payload = "<ml l=\"1\"><d n=\"example.com\"><c n=\"bob\" l=\"3\" t=\"1\" /><c n=\"carol\" l=\"5\" t=\"1\" /></d><d n=\"yahoo.com\"><c n=\"dave\" l=\"1\" t=\"32\" /></d></ml>";
    assert_eq!(payload.len(), 138);
    let list = MembershipList::parse(payload.as_bytes()).unwrap();
    let expected = MembershipList {
        initial: true,
        entries: vec![
            entry("bob@example.com", 3, Some(NetworkId::PASSPORT)),
            entry("carol@example.com", 5, Some(NetworkId::PASSPORT)),
            entry("dave@yahoo.com", 1, Some(NetworkId::YAHOO)),
        ],
    };
    assert_eq!(list, expected);
    assert!(list.entries[0].lists.contains(Lists::FL | Lists::AL));
    assert!(list.entries[1].lists.contains(Lists::BL));
    assert_eq!(list.check_client_lists(), Ok(()));
    assert_eq!(list.to_client_xml(), payload);
}

#[test]
fn adl_later_edit_and_empty_dump() {
    let edit = "<ml><d n=\"example.com\"><c n=\"erin\" l=\"1\" t=\"1\" /></d></ml>";
    assert_eq!(edit.len(), 58);
    let list = MembershipList::parse(edit.as_bytes()).unwrap();
    assert!(!list.initial);
    assert_eq!(
        list.entries,
        [entry("erin@example.com", 1, Some(NetworkId::PASSPORT))]
    );
    assert_eq!(list.to_client_xml(), edit);

    let empty = "<ml l=\"1\"></ml>";
    assert_eq!(empty.len(), 15);
    let list = MembershipList::parse(empty.as_bytes()).unwrap();
    assert!(list.initial && list.entries.is_empty());
    assert_eq!(list.to_xml(), empty);
}

#[test]
fn adl_and_rml_from_the_server() {
    let mut alice = entry("alice@example.com", 8, Some(NetworkId::PASSPORT));
    alice.friendly_name = Some("Alice".into());
    let added = MembershipList {
        initial: false,
        entries: vec![alice.clone()],
    };
    let adl = "<ml><d n=\"example.com\"><c n=\"alice\" t=\"1\" l=\"8\" f=\"Alice\" /></d></ml>";
    assert_eq!(adl.len(), 69);
    assert_eq!(added.to_xml(), adl);
    assert_eq!(MembershipList::parse(adl.as_bytes()).unwrap(), added);
    // A client sending RL is refused with 241.
    assert_eq!(added.check_client_lists(), Err(AdlError::ReservedLists));

    alice.friendly_name = None;
    let removed = MembershipList {
        initial: false,
        entries: vec![alice],
    };
    let rml = "<ml><d n=\"example.com\"><c n=\"alice\" t=\"1\" l=\"8\" /></d></ml>";
    assert_eq!(rml.len(), 59);
    assert_eq!(removed.to_xml(), rml);
    assert_eq!(MembershipList::parse(rml.as_bytes()).unwrap(), removed);
}

#[test]
fn fqy_request_and_answer() {
    let request = "<ml><d n=\"example.com\"><c n=\"bob\" /></d></ml>";
    assert_eq!(request.len(), 45);
    let question = MembershipList::parse(request.as_bytes()).unwrap();
    assert_eq!(question.entries, [entry("bob@example.com", 0, None)]);
    assert_eq!(question.to_client_xml(), request);
    let mut answer = question.clone();
    answer.entries[0].network = Some(NetworkId::PASSPORT);
    let wire = "<ml><d n=\"example.com\"><c n=\"bob\" t=\"1\" /></d></ml>";
    assert_eq!(wire.len(), 51);
    assert_eq!(answer.to_xml(), wire);
}

// ---- §5 CID encodings ----

#[test]
fn cid_forms_of_one_value() {
    // 3f2504e0-4f89-11d3-9a0c-0305e82c3301
    let uuid = [
        0x3f, 0x25, 0x04, 0xe0, 0x4f, 0x89, 0x11, 0xd3, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33,
        0x01,
    ];
    let cid = Cid::from_uuid_bytes(&uuid);
    assert_eq!(cid.to_hex(), "9a0c0305e82c3301");
    // What MSNPSharp makes of that hex: the signed decimal the address book
    // must show for the two to agree.
    assert_eq!(cid.to_signed_decimal(), "-7346493568243191039");
    assert_eq!(cid.to_string(), "-7346493568243191039");
    assert_eq!(Cid::from_hex("9A0C0305E82C3301"), Some(cid));
    assert_eq!(Cid::from_signed_decimal("-7346493568243191039"), Some(cid));
    // Escargot's ABCH form reads the same bytes little-endian: a different
    // number, which is why this crate does not produce it.
    let escargot_decimal = u64::from_le_bytes([0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01]);
    assert_eq!(escargot_decimal, 86462192878292122);
    assert_ne!(Cid(escargot_decimal), cid);
    assert_eq!(cid.member_id_high_low(), (0x9a0c0305, 0xe82c3301));
    for bad in ["", "-", "12x", "00000000000000000", "+5", " 1"] {
        assert_eq!(Cid::from_hex(bad), None, "{bad}");
    }
    for bad in ["", "-", "12x", "+5", " 1", "0x10"] {
        assert_eq!(Cid::from_signed_decimal(bad), None, "{bad}");
    }
    assert_eq!(Cid::from_signed_decimal("9223372036854775808"), None);
}
