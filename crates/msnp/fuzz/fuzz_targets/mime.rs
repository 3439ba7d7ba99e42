//! Fuzzes the payload-side parsers: `msnp::mime` (MIME payloads,
//! `X-MMS-IM-Format`), `msnp::urlenc` and `msnp::auth::verify_qry`.
//!
//! Checked besides "never panics":
//! * a parsed body is a suffix of the payload (bodies are never altered);
//! * header names are tokens and no value spans a line break;
//! * `ImFormat` and URL encoding round-trip whatever was parsed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use msnp::mime::{self, ImFormat, MimeMessage};
use msnp::{auth, urlenc};

fuzz_target!(|data: &[u8]| {
    if let Some(message) = MimeMessage::parse(data) {
        assert!(!message.headers.is_empty());
        assert!(data.ends_with(message.body));
        for &(name, value) in &message.headers {
            assert!(!name.is_empty() && !name.contains([':', ' ', '\r', '\n']));
            assert!(!value.contains('\n') && value.trim_ascii() == value);
            assert!(message.header(name).is_some());
        }
        for (name, value) in message.body_fields() {
            assert!(!name.is_empty() && !value.contains('\n') && value.trim_ascii() == value);
        }
        let _ = message.content_type();
        let _ = message.charset();
        let text = mime::text_body(&message);
        assert_eq!(text.is_some(), message.is_content_type("text/plain"));
    }
    let _ = mime::classify(data);

    let text = String::from_utf8_lossy(data);
    let format = ImFormat::parse(&text);
    assert_eq!(ImFormat::parse(&format.to_header()), format);

    let decoded = urlenc::decode(&text);
    assert_eq!(urlenc::decode(&urlenc::encode(&decoded)), decoded);
    assert_eq!(urlenc::decode(&urlenc::encode_min(&decoded)), decoded);
    assert_eq!(
        urlenc::encoded_len(&decoded),
        urlenc::encode(&decoded).len()
    );

    let middle = (0..=text.len() / 2)
        .rev()
        .find(|&index| text.is_char_boundary(index))
        .unwrap_or(0);
    let (challenge, answer) = text.split_at(middle);
    let _ = auth::verify_qry(challenge, "PROD0090YUAUV{2B", answer.as_bytes(), 11);
    let _ = auth::challenge_msnp11(challenge, answer, "YMM8C_H7KCQ2S_KL");
});
