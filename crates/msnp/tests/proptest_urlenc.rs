//! Properties of URL encoding over arbitrary input (framing.md §5).

use msnp::urlenc;
use proptest::prelude::*;

proptest! {
    #[test]
    fn full_form_round_trips(s in any::<String>()) {
        prop_assert_eq!(urlenc::decode(&urlenc::encode(&s)), s);
    }

    #[test]
    fn minimal_form_round_trips(s in any::<String>()) {
        prop_assert_eq!(urlenc::decode(&urlenc::encode_min(&s)), s);
    }

    #[test]
    fn passport_form_round_trips(s in any::<String>()) {
        prop_assert_eq!(urlenc::decode(&urlenc::encode_passport_field(&s)), s);
    }

    #[test]
    fn encoded_forms_fit_on_one_token(s in any::<String>()) {
        for encoded in [urlenc::encode(&s), urlenc::encode_min(&s), urlenc::encode_passport_field(&s)] {
            prop_assert!(
                !encoded.bytes().any(|b| b == b' ' || b == b'\r' || b == b'\n' || b < 0x20 || b == 0x7F),
                "{:?}", encoded
            );
        }
    }

    #[test]
    fn full_form_is_ascii_and_counted_exactly(s in any::<String>()) {
        let encoded = urlenc::encode(&s);
        prop_assert!(encoded.is_ascii());
        prop_assert_eq!(urlenc::encoded_len(&s), encoded.len());
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~@%".contains(&b)));
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = urlenc::decode(&s);
    }

    #[test]
    fn decode_never_panics_on_percent_heavy_text(s in "[%0-9a-fA-FgG+ é✓]{0,64}") {
        let decoded = urlenc::decode(&s);
        // Decoding only ever shrinks byte-for-byte escapes, or widens each
        // escaped byte into one Latin-1 char (at most 2 UTF-8 bytes).
        prop_assert!(decoded.len() <= s.len());
    }

    #[test]
    fn text_without_percent_decodes_to_itself(s in "[^%]{0,64}") {
        prop_assert_eq!(urlenc::decode(&s), s);
    }

    #[test]
    fn escaped_latin1_decodes_char_per_byte(bytes in proptest::collection::vec(0x80u8..=0xFF, 1..32)) {
        let escaped: String = bytes.iter().map(|b| format!("%{b:02x}")).collect();
        let decoded = urlenc::decode(&escaped);
        match std::str::from_utf8(&bytes) {
            Ok(text) => prop_assert_eq!(decoded, text),
            Err(_) => prop_assert_eq!(decoded, bytes.iter().map(|&b| char::from(b)).collect::<String>()),
        }
    }
}
