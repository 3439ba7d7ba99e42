//! The reference vectors of shared/msnp/vectors.md §1–§6 and §8, checked
//! against the public API. Each table row is one assertion, so a failure
//! names the row.

use msnp::auth::{self, ChallengeScheme, PRODUCTS};
use msnp::error::ErrorCode;
use msnp::mime::{self, ImFormat, MimeMessage, PayloadKind, Profile};
use msnp::urlenc;

// ---- §1 MD5 login ----

#[test]
fn md5_login_hashes() {
    assert_eq!(
        auth::md5_login_hash("1056561624.17795", "abcdefg1234567"),
        "483eee01d6a1de1b668cac9a0ac75d91"
    );
    assert_eq!(
        auth::md5_login_hash("1700000000.48213", "hunter2"),
        "cd52c0b96eb5f12a182da0c6a67a0e26"
    );
}

#[test]
fn md5_hex_is_plain_lowercase_md5() {
    assert_eq!(auth::md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(
        auth::md5_hex(b"1700000000.48213hunter2"),
        auth::md5_login_hash("1700000000.48213", "hunter2")
    );
}

// ---- §2 CHL/QRY, MD5 scheme ----

const MD5_CHALLENGE: &str = "15570131571988941333";

/// (product id, key, answer) rows of vectors.md §2.
const MD5_ROWS: &[(&str, &str, &str)] = &[
    (
        "msmsgs@msnmsgr.com",
        "Q1P7W2E4J9R8U3S5",
        "8f2f5a91b72102cd28355e9fc9000d6e",
    ),
    (
        "PROD0038W!61ZTF9",
        "VT6PX?UQTM4WM%YR",
        "ca90e6a7c94a14aae7b3ae0f6018433e",
    ),
    (
        "PROD0058#7IL2{QD",
        "QHDCY@7R1TB6W?5B",
        "f8a1cd8d90b73fd4a3d3f8fd3341da87",
    ),
    (
        "PROD0061VRRZH@4F",
        "JXQ6J@TUOGYV@N0M",
        "769dfe2c4292159189b71837ce37b74e",
    ),
];

#[test]
fn md5_challenge_rows() {
    for &(id, key, answer) in MD5_ROWS {
        assert_eq!(auth::challenge_md5(MD5_CHALLENGE, key), answer, "{id}");
    }
}

#[test]
fn md5_challenge_rows_verify_for_p6_to_p12() {
    for &(id, _, answer) in MD5_ROWS {
        for dialect in 6..=12 {
            assert!(
                auth::verify_qry(MD5_CHALLENGE, id, answer.as_bytes(), dialect),
                "{id} P{dialect}"
            );
        }
        let upper = answer.to_ascii_uppercase();
        assert!(auth::verify_qry(MD5_CHALLENGE, id, upper.as_bytes(), 8));
        // Below P6 there is no CHL/QRY at all.
        assert!(!auth::verify_qry(MD5_CHALLENGE, id, answer.as_bytes(), 5));
    }
}

// ---- §3 CHL/QRY, MSNP11 scheme ----

/// (challenge, product id, key, answer) rows of vectors.md §3.1 and §3.2.
const MSNP11_ROWS: &[(&str, &str, &str, &str)] = &[
    (
        "22210219642164014968",
        "PROD0090YUAUV{2B",
        "YMM8C_H7KCQ2S_KL",
        "85ecb0db8f32113df79ce0892b9a102c",
    ),
    (
        "22210219642164014968",
        "PROD0101{0RM?UBW",
        "CFHUR$52U_{VIX5T",
        "64812169fe9717715f03c678fa4ab938",
    ),
    (
        "22210219642164014968",
        "PROD0119GSJUC$18",
        "ILTXC!4IXB5FB*PX",
        "a400af809ac86fbdf6deec7286fc06b8",
    ),
    (
        "22210219642164014968",
        "PROD0120PW!CCV9@",
        "C1BX{V4W}Q3*10SM",
        "6e92a312bf6b70ee58e75a1e3315695c",
    ),
    (
        "11533365622852247127",
        "PROD0113H11T8$X_",
        "RG@XY*28Q5QHS%Q5",
        "f086d1ded067186deca8dba2231602cf",
    ),
    // 43-byte input, padded to 48.
    (
        "237191752526424888127371168",
        "PROD0113H11T8$X_",
        "RG@XY*28Q5QHS%Q5",
        "65b6b623c649c25629af048d34066040",
    ),
    // 32-byte input: no padding at all.
    (
        "1234567890123456",
        "PROD0090YUAUV{2B",
        "YMM8C_H7KCQ2S_KL",
        "8479bcf63bcca9262f389e1b7e5f5e3c",
    ),
];

#[test]
fn msnp11_challenge_rows() {
    for &(challenge, id, key, answer) in MSNP11_ROWS {
        assert_eq!(
            auth::challenge_msnp11(challenge, id, key),
            answer,
            "{challenge} {id}"
        );
    }
}

#[test]
fn msnp11_rows_verify_for_p11_and_p12() {
    for &(challenge, id, _, answer) in MSNP11_ROWS {
        for dialect in [11, 12] {
            assert!(
                auth::verify_qry(challenge, id, answer.as_bytes(), dialect),
                "{challenge} {id} P{dialect}"
            );
        }
    }
}

#[test]
fn msnp11_input_lengths_are_the_documented_ones() {
    assert_eq!("237191752526424888127371168PROD0113H11T8$X_".len(), 43);
    assert_eq!("1234567890123456PROD0090YUAUV{2B".len(), 32);
}

#[test]
fn verify_rejects_the_masked_xor_mistake() {
    let challenge = "22210219642164014968";
    let mistaken = b"85ecb05b8f32113df79ce0092b9a102c";
    for dialect in 6..=12 {
        assert!(!auth::verify_qry(
            challenge,
            "PROD0090YUAUV{2B",
            mistaken,
            dialect
        ));
    }
}

#[test]
fn verify_accepts_either_scheme_for_a_known_id() {
    // An MSNP11-era id answered with the MD5 scheme, and an MD5-era id
    // answered with the MSNP11 scheme: real clients mix them up.
    let challenge = "22210219642164014968";
    let md5_answer = auth::challenge_md5(challenge, "YMM8C_H7KCQ2S_KL");
    assert!(auth::verify_qry(
        challenge,
        "PROD0090YUAUV{2B",
        md5_answer.as_bytes(),
        11
    ));
    let msnp11_answer =
        auth::challenge_msnp11(MD5_CHALLENGE, "msmsgs@msnmsgr.com", "Q1P7W2E4J9R8U3S5");
    assert!(auth::verify_qry(
        MD5_CHALLENGE,
        "msmsgs@msnmsgr.com",
        msnp11_answer.as_bytes(),
        8
    ));
}

#[test]
fn verify_rejects_wrong_answers_and_unknown_ids() {
    let (_, id, _, answer) = MSNP11_ROWS[0];
    let challenge = MSNP11_ROWS[0].0;
    // Right answer, wrong challenge.
    assert!(!auth::verify_qry(MD5_CHALLENGE, id, answer.as_bytes(), 11));
    // Right answer under an id the server does not know.
    assert!(!auth::verify_qry(
        challenge,
        "PROD9999XXXXXXXX",
        answer.as_bytes(),
        11
    ));
    // Right answer, but for a different product's key.
    assert!(!auth::verify_qry(
        challenge,
        "PROD0101{0RM?UBW",
        answer.as_bytes(),
        11
    ));
    // Truncated, padded and empty answers.
    assert!(!auth::verify_qry(
        challenge,
        id,
        &answer.as_bytes()[..31],
        11
    ));
    assert!(!auth::verify_qry(
        challenge,
        id,
        format!("{answer}0").as_bytes(),
        11
    ));
    assert!(!auth::verify_qry(challenge, id, b"", 11));
}

#[test]
fn product_table_holds_every_documented_pair() {
    let md5 = PRODUCTS
        .iter()
        .filter(|p| p.scheme == ChallengeScheme::Md5)
        .count();
    let msnp11 = PRODUCTS
        .iter()
        .filter(|p| p.scheme == ChallengeScheme::Msnp11)
        .count();
    assert_eq!((md5, msnp11), (6, 9));
    for &(id, key, _) in MD5_ROWS {
        let product = auth::find_product(id).expect(id);
        assert_eq!((product.key, product.scheme), (key, ChallengeScheme::Md5));
    }
    for &(_, id, key, _) in MSNP11_ROWS {
        let product = auth::find_product(id).expect(id);
        assert_eq!(
            (product.key, product.scheme),
            (key, ChallengeScheme::Msnp11)
        );
    }
    for product in PRODUCTS {
        assert_eq!(
            product.id.len(),
            if product.id.starts_with("PROD") {
                16
            } else {
                18
            }
        );
        assert_eq!(product.key.len(), 16, "{}", product.id);
    }
}

#[test]
fn new_challenges_are_verifiable() {
    let challenge = auth::new_challenge(0x0123_4567_89AB_CDEF);
    assert_eq!(challenge.len(), 20);
    let answer = auth::challenge_msnp11(&challenge, "PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL");
    assert!(auth::verify_qry(
        &challenge,
        "PROD0090YUAUV{2B",
        answer.as_bytes(),
        11
    ));
}

// ---- §4 URL encoding ----

const NICKNAME: &str = "Alice & Bob 100% ✓";

#[test]
fn url_encoding_minimal_form() {
    let encoded = urlenc::encode_min(NICKNAME);
    assert_eq!(encoded, "Alice%20&%20Bob%20100%25%20✓");
    assert_eq!(encoded.len(), 30);
    assert_eq!(urlenc::decode(&encoded), NICKNAME);
}

#[test]
fn url_encoding_full_form() {
    let encoded = urlenc::encode(NICKNAME);
    assert_eq!(encoded, "Alice%20%26%20Bob%20100%25%20%E2%9C%93");
    assert_eq!(encoded.len(), 38);
    assert_eq!(urlenc::encoded_len(NICKNAME), 38);
    assert_eq!(urlenc::decode(&encoded), NICKNAME);
    assert_eq!(
        urlenc::decode("Alice%20%26%20Bob%20100%25%20%e2%9c%93"),
        NICKNAME
    );
}

#[test]
fn url_encoding_passport_fields() {
    assert_eq!(
        urlenc::encode_passport_field("alice@example.com"),
        "alice%40example.com"
    );
    assert_eq!(
        urlenc::encode_passport_field("p@ss w%rd,1"),
        "p%40ss%20w%25rd%2C1"
    );
    assert_eq!(urlenc::decode("p%40ss%20w%25rd%2C1"), "p@ss w%rd,1");
    assert_eq!(urlenc::decode("alice%40example.com"), "alice@example.com");
}

#[test]
fn url_decoding_never_treats_plus_as_space() {
    assert_eq!(urlenc::decode("a+b%2Bc"), "a+b+c");
}

// ---- §5 X-MMS-IM-Format ----

#[test]
fn im_format_segoe_bold_italic() {
    let format = ImFormat::parse("FN=Segoe%20UI; EF=BI; CO=ff8000; CS=0; PF=22");
    assert_eq!(
        format,
        ImFormat {
            font: "Segoe UI".into(),
            bold: true,
            italic: true,
            underline: false,
            strike: false,
            color_rgb: (0x00, 0x80, 0xFF),
            charset: 0,
            pitch_family: 0x22,
            rtl: false,
        }
    );
    assert_eq!(format.pitch_family & 0x03, 2, "variable pitch");
    assert_eq!(format.pitch_family & 0xF0, 0x20, "swiss family");
}

#[test]
fn im_format_ms_sans_serif_red() {
    let format = ImFormat::parse("FN=MS%20Sans%20Serif; EF=; CO=ff; CS=0; PF=0");
    assert_eq!(
        format,
        ImFormat {
            font: "MS Sans Serif".into(),
            bold: false,
            italic: false,
            underline: false,
            strike: false,
            color_rgb: (0xFF, 0x00, 0x00),
            charset: 0,
            pitch_family: 0,
            rtl: false,
        }
    );
}

#[test]
fn im_format_arial_cyrillic_rtl() {
    let format = ImFormat::parse("FN=Arial; EF=U; CO=8000; CS=cc; PF=22; RL=1");
    assert_eq!(
        format,
        ImFormat {
            font: "Arial".into(),
            bold: false,
            italic: false,
            underline: true,
            strike: false,
            color_rgb: (0x00, 0x80, 0x00),
            charset: 204,
            pitch_family: 0x22,
            rtl: true,
        }
    );
}

#[test]
fn im_format_colour_generation() {
    for (rgb, co) in [
        ((0x00, 0x80, 0xFF), "ff8000"),
        ((0xFF, 0x00, 0x00), "ff"),
        ((0x00, 0x00, 0x00), "0"),
        ((0x00, 0x80, 0x00), "8000"),
    ] {
        let format = ImFormat {
            color_rgb: rgb,
            ..ImFormat::default()
        };
        let header = format.to_header();
        assert!(header.contains(&format!("; CO={co}; ")), "{header}");
        assert_eq!(ImFormat::parse(&header).color_rgb, rgb);
    }
}

#[test]
fn im_format_parses_padded_and_upper_case_colours() {
    assert_eq!(ImFormat::parse("CO=00FF8000").color_rgb, (0x00, 0x80, 0xFF));
    assert_eq!(ImFormat::parse("CO=0000ff").color_rgb, (0xFF, 0x00, 0x00));
}

#[test]
fn im_format_generator_form() {
    assert_eq!(
        ImFormat::default().to_header(),
        "FN=Arial; EF=; CO=0; CS=0; PF=22"
    );
    let format = ImFormat {
        font: "Segoe UI".into(),
        bold: true,
        italic: true,
        underline: true,
        strike: true,
        color_rgb: (0x00, 0x80, 0xFF),
        ..ImFormat::default()
    };
    assert_eq!(
        format.to_header(),
        "FN=Segoe%20UI; EF=BIUS; CO=ff8000; CS=0; PF=22"
    );
    for row in [
        "FN=Segoe%20UI; EF=BI; CO=ff8000; CS=0; PF=22",
        "FN=Arial; EF=U; CO=8000; CS=cc; PF=22; RL=1",
    ] {
        assert_eq!(ImFormat::parse(row).to_header(), row);
    }
}

#[test]
fn im_format_missing_keys_take_defaults() {
    assert_eq!(ImFormat::parse(""), ImFormat::default());
    assert_eq!(ImFormat::parse("garbage;;=;CO=zz"), ImFormat::default());
}

// ---- §6 payload byte lengths ----

/// Asserts the exact bytes and the documented length of a builder's output.
fn assert_payload(actual: Vec<u8>, expected: &str, documented_len: usize) {
    assert_eq!(String::from_utf8_lossy(&actual), expected);
    assert_eq!(actual.len(), documented_len);
}

#[test]
fn text_message_with_format_is_118_and_122_bytes() {
    let format = ImFormat::default();
    assert_payload(
        mime::text_message("Hello", Some(&format)),
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\
         X-MMS-IM-Format: FN=Arial; EF=; CO=0; CS=0; PF=22\r\n\r\nHello",
        118,
    );
    assert_eq!(mime::text_message("Hello bob", Some(&format)).len(), 122);
}

#[test]
fn text_message_without_format_counts_utf8_bytes() {
    let payload = mime::text_message("héllo", None);
    assert_payload(
        payload.clone(),
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhéllo",
        68,
    );
    assert_eq!(String::from_utf8_lossy(&payload).chars().count(), 67);
}

#[test]
fn typing_messages_are_90_and_88_bytes() {
    assert_payload(
        mime::typing_message("alice@example.com"),
        "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\n\
         TypingUser: alice@example.com\r\n\r\n\r\n",
        90,
    );
    assert_eq!(mime::typing_message("bob@example.com").len(), 88);
}

#[test]
fn nudge_is_69_bytes() {
    assert_payload(
        mime::nudge_message(),
        "MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n",
        69,
    );
}

#[test]
fn keepalive_is_53_bytes() {
    assert_payload(
        mime::keepalive_message(),
        "MIME-Version: 1.0\r\nContent-Type: text/x-keepalive\r\n\r\n",
        53,
    );
}

#[test]
fn client_caps_is_98_bytes() {
    assert_payload(
        mime::client_caps_message("MyBridge/1.0", true),
        "MIME-Version: 1.0\r\nContent-Type: text/x-clientcaps\r\n\r\n\
         Client-Name: MyBridge/1.0\r\nChat-Logging: Y\r\n",
        98,
    );
}

#[test]
fn invite_cancel_is_148_bytes() {
    assert_payload(
        mime::invite_cancel_message("41524", "REJECT"),
        "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n\
         Invitation-Command: CANCEL\r\nInvitation-Cookie: 41524\r\nCancel-Code: REJECT\r\n\r\n",
        148,
    );
}

#[test]
fn only_an_opening_invitation_is_declined() {
    let invite = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n\
        Application-Name: File Transfer\r\nInvitation-Command: INVITE\r\nInvitation-Cookie: 41524\r\n\r\n";
    assert_eq!(
        mime::decline_unsupported_invitation(invite),
        Some(mime::invite_cancel_message("41524", "REJECT_NOT_INSTALLED"))
    );
    let accept = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n\
        Invitation-Command: ACCEPT\r\nInvitation-Cookie: 41524\r\n\r\n";
    assert_eq!(mime::decline_unsupported_invitation(accept), None);
    let no_cookie =
        b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n\
        Invitation-Command: INVITE\r\n\r\n";
    assert_eq!(mime::decline_unsupported_invitation(no_cookie), None);
    let text = mime::text_message("Invitation-Command: INVITE", None);
    assert_eq!(mime::decline_unsupported_invitation(&text), None);
}

/// The profile of messages.md §8 (and the §8 ClientPort vector: 1337).
fn printed_profile() -> Profile<'static> {
    Profile {
        login_time: 1_700_000_000,
        email: "alice@example.com",
        member_id: 0,
        mspauth: "0000000000000000000000000000000000000000$$",
        client_ip: "192.0.2.10",
        client_port: 1337,
        abch_migrated: false,
    }
}

#[test]
fn profile_message_is_412_bytes() {
    assert_payload(
        mime::profile_message(&printed_profile()),
        "MIME-Version: 1.0\r\n\
         Content-Type: text/x-msmsgsprofile; charset=UTF-8\r\n\
         LoginTime: 1700000000\r\n\
         EmailEnabled: 0\r\n\
         MemberIdHigh: 0\r\n\
         MemberIdLow: 0\r\n\
         lang_preference: 1033\r\n\
         preferredEmail: alice@example.com\r\n\
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
         MSPAuth: 0000000000000000000000000000000000000000$$\r\n\
         ClientIP: 192.0.2.10\r\n\
         ClientPort: 14597\r\n\
         \r\n",
        412,
    );
}

#[test]
fn profile_message_fields_parse_back() {
    let profile = Profile {
        member_id: 0x0000_0001_0000_0002,
        abch_migrated: true,
        ..printed_profile()
    };
    let payload = mime::profile_message(&profile);
    let message = MimeMessage::parse(&payload).expect("profile is MIME");
    assert!(message.is_content_type("text/x-msmsgsprofile"));
    assert_eq!(message.header("MemberIdHigh"), Some("1"));
    assert_eq!(message.header("MemberIdLow"), Some("2"));
    assert_eq!(message.header("ABCHMigrated"), Some("1"));
    assert_eq!(message.header("PostalCode"), Some(""));
    assert!(message.body.is_empty());
    assert_eq!(payload.len(), 412 + "ABCHMigrated: 1\r\n".len());
}

#[test]
fn system_message_is_88_bytes() {
    assert_payload(
        mime::system_message(1, 5),
        "MIME-Version: 1.0\r\nContent-Type: application/x-msmsgssystemmessage\r\n\r\n\
         Type: 1\r\nArg1: 5\r\n",
        88,
    );
}

#[test]
fn initial_mail_data_is_195_bytes() {
    assert_payload(
        mime::initial_mail_data(),
        "MIME-Version: 1.0\r\n\
         Content-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8\r\n\r\n\
         Mail-Data: <MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E>\
         <Q><QTM>409600</QTM><QNM>204800</QNM></Q></MD>\r\n",
        195,
    );
}

// ---- §8 ClientPort ----

#[test]
fn client_port_is_byte_swapped() {
    let payload = mime::profile_message(&printed_profile());
    let message = MimeMessage::parse(&payload).expect("profile is MIME");
    assert_eq!(message.header("ClientPort"), Some("14597"));
    assert_eq!(1337u16.swap_bytes(), 14597);
}

// ---- parsing and classifying the documented payloads ----

#[test]
fn builders_classify_as_their_kind() {
    let format = ImFormat::default();
    assert_eq!(
        mime::classify(&mime::text_message("Hello", Some(&format))),
        PayloadKind::Text
    );
    assert_eq!(
        mime::classify(&mime::typing_message("alice@example.com")),
        PayloadKind::Typing
    );
    assert_eq!(mime::classify(&mime::nudge_message()), PayloadKind::Nudge);
    assert_eq!(
        mime::classify(&mime::keepalive_message()),
        PayloadKind::KeepAlive
    );
    assert_eq!(
        mime::classify(&mime::client_caps_message("MyBridge/1.0", false)),
        PayloadKind::ClientCaps
    );
    assert_eq!(
        mime::classify(&mime::invite_cancel_message("1", "REJECT")),
        PayloadKind::Invite
    );
    assert_eq!(
        mime::classify(&mime::system_message(1, 5)),
        PayloadKind::Other
    );
}

#[test]
fn classifies_the_other_documented_types() {
    let cases: &[(&[u8], PayloadKind)] = &[
        (
            b"MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: bob@example.com\r\n\r\n\0\0\xff",
            PayloadKind::P2p,
        ),
        (
            b"MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 2\r\nData: x\r\n\r\n",
            PayloadKind::Datacast,
        ),
        (
            b"MIME-Version: 1.0\r\nContent-Type: text/x-clientinfo\r\n\r\n",
            PayloadKind::ClientCaps,
        ),
        (
            b"MIME-Version: 1.0\r\nContent-Type: text/x-mms-animemoticon\r\n\r\n(a)\tx\t",
            PayloadKind::Emoticon,
        ),
        (
            b"MIME-Version: 1.0\r\nContent-Type: image/gif\r\n\r\nbase64:R0lG",
            PayloadKind::Ink,
        ),
        (
            b"MIME-Version: 1.0\r\nContent-Type: application/x-ms-ink\r\n\r\n",
            PayloadKind::Ink,
        ),
        (
            b"MIME-Version: 1.0\r\nContent-Type: TEXT/PLAIN\r\n\r\nhi",
            PayloadKind::Text,
        ),
        (
            b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nRecordingUser: a@b.c\r\n\r\n\r\n",
            PayloadKind::Other,
        ),
        (
            b"<Data><PSM>Hi</PSM><CurrentMedia></CurrentMedia></Data>",
            PayloadKind::Other,
        ),
        (b"", PayloadKind::Other),
    ];
    for (payload, kind) in cases {
        assert_eq!(
            mime::classify(payload),
            *kind,
            "{}",
            String::from_utf8_lossy(payload)
        );
    }
}

#[test]
fn p2p_binary_body_is_untouched() {
    let mut payload = b"MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: bob@example.com\r\n\r\n".to_vec();
    let binary: Vec<u8> = (0..=255u8).chain([0, b'\r', b'\n', b'\r', b'\n']).collect();
    payload.extend_from_slice(&binary);
    let message = MimeMessage::parse(&payload).expect("p2p is MIME");
    assert_eq!(message.body, &binary[..]);
    assert_eq!(message.header("p2p-dest"), Some("bob@example.com"));
    assert_eq!(message.p2p_destination(), Some("bob@example.com"));
    let text = mime::text_message("P2P-Dest: bob@example.com", None);
    assert_eq!(MimeMessage::parse(&text).unwrap().p2p_destination(), None);
}

#[test]
fn invitation_body_fields_in_order() {
    let payload = b"MIME-Version: 1.0\r\n\
Content-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\
\r\n\
Application-Name: File Transfer\r\n\
Application-GUID: {5D3E02AB-6190-11d3-BBBB-00C04F795683}\r\n\
Invitation-Command: INVITE\r\n\
Invitation-Cookie: 41524\r\n\
Application-File: report.txt\r\n\
Application-FileSize: 11\r\n\
Connectivity: Y\r\n\
\r\n";
    assert_eq!(payload.len(), 291);
    let message = MimeMessage::parse(payload).expect("invite is MIME");
    assert_eq!(message.charset(), Some("UTF-8"));
    assert_eq!(
        message.body_fields(),
        vec![
            ("Application-Name", "File Transfer"),
            ("Application-GUID", "{5D3E02AB-6190-11d3-BBBB-00C04F795683}"),
            ("Invitation-Command", "INVITE"),
            ("Invitation-Cookie", "41524"),
            ("Application-File", "report.txt"),
            ("Application-FileSize", "11"),
            ("Connectivity", "Y"),
        ]
    );
    assert_eq!(message.body_field("invitation-cookie"), Some("41524"));
    assert_eq!(mime::classify(payload), PayloadKind::Invite);
}

#[test]
fn text_body_reads_utf8_and_legacy_charsets() {
    let payload = mime::text_message("héllo ✓ 😀", Some(&ImFormat::default()));
    let message = MimeMessage::parse(&payload).expect("text is MIME");
    assert_eq!(mime::text_body(&message).as_deref(), Some("héllo ✓ 😀"));

    let bare = b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\ncaf\xe9";
    let message = MimeMessage::parse(bare).expect("bare text is MIME");
    assert_eq!(mime::text_body(&message).as_deref(), Some("café"));

    let latin1 =
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nna\xefve";
    let message = MimeMessage::parse(latin1).expect("latin-1 text is MIME");
    assert_eq!(mime::text_body(&message).as_deref(), Some("naïve"));

    let lying = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xe9t\xe9";
    let message = MimeMessage::parse(lying).expect("text is MIME");
    assert_eq!(mime::text_body(&message).as_deref(), Some("été"));

    let nudge = mime::nudge_message();
    let message = MimeMessage::parse(&nudge).expect("nudge is MIME");
    assert_eq!(mime::text_body(&message), None);
}

#[test]
fn text_message_body_round_trips_exactly() {
    for text in ["", "a\r\nb", "<b>literal</b>", "日本語\u{0}\u{7f}", "%20+"] {
        let payload = mime::text_message(text, None);
        let message = MimeMessage::parse(&payload).expect("text is MIME");
        assert_eq!(message.body, text.as_bytes());
        assert_eq!(mime::text_body(&message).as_deref(), Some(text));
    }
}

#[test]
fn builders_strip_line_breaks_from_caller_values() {
    let payload = mime::typing_message("evil\r\nInjected: 1");
    let message = MimeMessage::parse(&payload).expect("typing is MIME");
    assert_eq!(message.header("Injected"), None);
    assert_eq!(message.header("TypingUser"), Some("evilInjected: 1"));
}

// ---- errors.md ----

#[test]
fn error_codes_from_the_brief() {
    let expected: &[(ErrorCode, u16)] = &[
        (ErrorCode::SyntaxError, 200),
        (ErrorCode::InvalidParameter, 201),
        (ErrorCode::InvalidUser, 205),
        (ErrorCode::DomainMissing, 206),
        (ErrorCode::AlreadyLoggedIn, 207),
        (ErrorCode::InvalidUsername, 208),
        (ErrorCode::InvalidFriendlyName, 209),
        (ErrorCode::ListFull, 210),
        (ErrorCode::AlreadyThere, 215),
        (ErrorCode::NotOnList, 216),
        (ErrorCode::NotOnline, 217),
        (ErrorCode::AlreadyInMode, 218),
        (ErrorCode::InOppositeList, 219),
        (ErrorCode::TooManyGroups, 223),
        (ErrorCode::InvalidGroup, 224),
        (ErrorCode::NotInGroup, 225),
        (ErrorCode::GroupNameExists, 228),
        (ErrorCode::GroupNameTooLong, 229),
        (ErrorCode::CannotRemoveGroupZero, 230),
        (ErrorCode::InvalidGroup231, 231),
        (ErrorCode::SwitchboardFailed, 280),
        (ErrorCode::TransferFailed, 281),
        (ErrorCode::P2pError, 282),
        (ErrorCode::RequiredFieldsMissing, 300),
        (ErrorCode::NotLoggedIn, 302),
        (ErrorCode::InternalError, 500),
        (ErrorCode::DatabaseError, 501),
        (ErrorCode::CommandDisabled, 502),
        (ErrorCode::ChallengeFailed, 540),
        (ErrorCode::ServerBusy, 600),
        (ErrorCode::ServerUnavailable, 601),
        (ErrorCode::ServerGoingDown, 604),
        (ErrorCode::BadCvr, 710),
        (ErrorCode::TooActive, 713),
        (ErrorCode::NotExpected, 715),
        (ErrorCode::RateLimited, 800),
        (ErrorCode::AuthFailed, 911),
        (ErrorCode::NotAllowedWhenOffline, 913),
        (ErrorCode::BadTicket, 928),
    ];
    for &(code, number) in expected {
        assert_eq!(code.code(), number);
        assert_eq!(ErrorCode::from_code(number), Some(code));
        assert_eq!(code.to_string(), number.to_string());
    }
}
