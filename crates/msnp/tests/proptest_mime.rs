//! Properties of MIME payload parsing over arbitrary input (messages.md).

use msnp::mime::{self, ImFormat, MimeMessage, PayloadKind};
use proptest::prelude::*;

/// Payload-like bytes: mostly header-ish text with line breaks, colons and
/// binary, so that both the parser's happy path and its edges are hit.
fn payload_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b" \t".to_vec()),
        Just(b": ".to_vec()),
        Just(b"Content-Type: ".to_vec()),
        Just(b"text/plain; charset=UTF-8".to_vec()),
        Just(b"text/x-msnmsgr-datacast".to_vec()),
        Just(b"ID: 1".to_vec()),
        "[A-Za-z-]{1,12}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn parse_never_panics_and_body_is_a_suffix(payload in payload_bytes()) {
        if let Some(message) = MimeMessage::parse(&payload) {
            prop_assert!(!message.headers.is_empty());
            prop_assert!(payload.ends_with(message.body));
            for (name, value) in &message.headers {
                prop_assert!(!name.is_empty());
                prop_assert!(!name.contains([':', ' ', '\r', '\n']));
                prop_assert!(!value.contains('\n') && value.trim_ascii() == *value);
                prop_assert_eq!(message.header(name).is_some(), true);
            }
            let _ = message.content_type();
            let _ = message.charset();
            let _ = message.body_fields();
            let _ = mime::text_body(&message);
        }
        let _ = mime::classify(&payload);
    }

    #[test]
    fn parse_never_panics_on_raw_bytes(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Some(message) = MimeMessage::parse(&payload) {
            prop_assert!(payload.ends_with(message.body));
            let _ = message.body_fields();
            let _ = mime::text_body(&message);
        }
        let _ = mime::classify(&payload);
    }

    #[test]
    fn binary_bodies_survive_untouched(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        bare_lf in any::<bool>(),
    ) {
        let head: &[u8] = if bare_lf {
            b"MIME-Version: 1.0\nContent-Type: application/x-msnmsgrp2p\nP2P-Dest: bob@example.com\n\n"
        } else {
            b"MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: bob@example.com\r\n\r\n"
        };
        let payload = [head, &body].concat();
        let message = MimeMessage::parse(&payload).expect("p2p header block parses");
        prop_assert_eq!(message.body, &body[..]);
        prop_assert_eq!(message.headers.len(), 3);
        prop_assert_eq!(mime::classify(&payload), PayloadKind::P2p);
    }

    #[test]
    fn text_messages_round_trip(text in any::<String>(), with_format in any::<bool>()) {
        let format = ImFormat::default();
        let payload = mime::text_message(&text, with_format.then_some(&format));
        let message = MimeMessage::parse(&payload).expect("text message parses");
        prop_assert_eq!(message.body, text.as_bytes());
        prop_assert_eq!(mime::text_body(&message), Some(text));
        prop_assert_eq!(mime::classify(&payload), PayloadKind::Text);
    }

    #[test]
    fn im_format_parse_never_panics(value in any::<String>()) {
        let _ = ImFormat::parse(&value).to_header();
    }

    #[test]
    fn im_format_parse_never_panics_on_key_soup(value in "((FN|EF|CO|CS|PF|RL|fn|co)=[^;]{0,10}; ?){0,8}") {
        let format = ImFormat::parse(&value);
        // Whatever was parsed renders to a header that parses back the same.
        prop_assert_eq!(ImFormat::parse(&format.to_header()), format);
    }

    #[test]
    fn im_format_round_trips(
        font in any::<String>(),
        effects in any::<(bool, bool, bool, bool)>(),
        color_rgb in any::<(u8, u8, u8)>(),
        charset in any::<u8>(),
        pitch_family in any::<u8>(),
        rtl in any::<bool>(),
    ) {
        let (bold, italic, underline, strike) = effects;
        let format = ImFormat { font, bold, italic, underline, strike, color_rgb, charset, pitch_family, rtl };
        let header = format.to_header();
        prop_assert!(!header.contains(['\r', '\n']));
        prop_assert_eq!(ImFormat::parse(&header), format);
    }

    #[test]
    fn typing_message_names_the_handle(handle in "[a-z0-9._-]{1,20}@[a-z0-9.-]{1,20}") {
        let payload = mime::typing_message(&handle);
        let message = MimeMessage::parse(&payload).expect("typing parses");
        prop_assert_eq!(message.header("TypingUser"), Some(handle.as_str()));
        prop_assert_eq!(mime::classify(&payload), PayloadKind::Typing);
    }
}
