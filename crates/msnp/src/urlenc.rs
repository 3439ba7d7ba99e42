//! URL ("percent") encoding of command parameters (framing.md §5).
//!
//! Friendly names, group names, property values and MSN objects travel as a
//! single space-free token, so anything that could break the line is written
//! as `%HH`. Unlike HTML forms, `+` is never a space here.

/// Upper-case hex digits used for every `%HH` the server emits.
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Bytes the full form leaves alone: `[A-Za-z0-9-_.~@]`. Everything else is
/// escaped, which is what the protocol's length limits were measured on.
const fn is_kept_by_full_form(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'@')
}

/// Bytes the minimal form must escape to keep the line parseable: `%`,
/// space, every control byte below 0x20 (CR and LF included) and DEL.
const fn must_escape_in_minimal_form(byte: u8) -> bool {
    byte == b'%' || byte == b' ' || byte < 0x20 || byte == 0x7F
}

/// Appends `%HH` (upper-case hex) for one byte.
fn push_escaped(out: &mut String, byte: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(byte >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(byte & 0x0F)]));
}

/// Full form: every byte outside `[A-Za-z0-9-_.~@]` becomes `%HH`.
///
/// This is what the server emits: every client accepts it, and the size
/// limits in framing.md §6 (387-byte friendly names, 61-byte group names)
/// are defined on it.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(encoded_len(s));
    for &byte in s.as_bytes() {
        if is_kept_by_full_form(byte) {
            out.push(char::from(byte));
        } else {
            push_escaped(&mut out, byte);
        }
    }
    out
}

/// Minimal form: only `%`, space, bytes below 0x20 and DEL are escaped;
/// non-ASCII text stays raw UTF-8 (what the Escargot server sends).
pub fn encode_min(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        // Every byte that needs escaping is ASCII, so a char either is one
        // such byte or is copied through whole (multi-byte UTF-8 included).
        match u8::try_from(ch) {
            Ok(byte) if must_escape_in_minimal_form(byte) => push_escaped(&mut out, byte),
            _ => out.push(ch),
        }
    }
    out
}

/// Passport form: like [`encode`] but also escapes `@` (`%40`), as the
/// `sign-in=` and `pwd=` fields of the Passport `Authorization` header
/// require (login.md §7.2, vectors.md §4). Useful for test clients.
pub fn encode_passport_field(s: &str) -> String {
    let mut out = String::with_capacity(encoded_len(s));
    for &byte in s.as_bytes() {
        if byte != b'@' && is_kept_by_full_form(byte) {
            out.push(char::from(byte));
        } else {
            push_escaped(&mut out, byte);
        }
    }
    out
}

/// Length in bytes of `encode(s)`, computed without allocating, so the
/// server can enforce the encoded-length limits cheaply.
pub fn encoded_len(s: &str) -> usize {
    s.bytes()
        .map(|byte| if is_kept_by_full_form(byte) { 1 } else { 3 })
        .sum()
}

/// Value of one ASCII hex digit, either case.
const fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// The byte a `%HH` escape at the start of `rest` stands for, if `rest`
/// starts with a well-formed one.
fn escape_at(rest: &[u8]) -> Option<u8> {
    match rest {
        [b'%', high, low, ..] => Some((hex_value(*high)? << 4) | hex_value(*low)?),
        _ => None,
    }
}

/// Decodes a parameter: `%HH` (either case) becomes that byte, every other
/// byte (including `+` and malformed `%` sequences) is kept literally.
///
/// The bytes are read as UTF-8. If they are not valid UTF-8 (very old
/// clients escaped Latin-1 bytes), each escaped byte is read as the Latin-1
/// character of the same value instead, while the literal characters of
/// `s` are kept as they are. Never panics.
pub fn decode(s: &str) -> String {
    let input = s.as_bytes();
    if !input.contains(&b'%') {
        return s.to_owned();
    }

    let mut bytes = Vec::with_capacity(input.len());
    let mut pos = 0;
    while let Some(rest) = input.get(pos..) {
        let Some(&first) = rest.first() else { break };
        match escape_at(rest) {
            Some(byte) => {
                bytes.push(byte);
                pos += 3;
            }
            None => {
                bytes.push(first);
                pos += 1;
            }
        }
    }

    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => decode_escapes_as_latin1(s),
    }
}

/// Fallback of [`decode`]: every `%HH` becomes the Latin-1 character with
/// that code; everything else is copied as the character it already is.
fn decode_escapes_as_latin1(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((index, ch)) = chars.next() {
        let escaped = s.as_bytes().get(index..).and_then(escape_at);
        match escaped {
            Some(byte) => {
                out.push(char::from(byte));
                // The two hex digits are ASCII, hence one char each.
                chars.next();
                chars.next();
            }
            None => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_form_escapes_everything_but_unreserved() {
        assert_eq!(encode("a-b_c.d~e@f"), "a-b_c.d~e@f");
        assert_eq!(encode("a b+c"), "a%20b%2Bc");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn minimal_form_keeps_unicode() {
        assert_eq!(encode_min("a b%\r\n\x7F✓"), "a%20b%25%0D%0A%7F✓");
    }

    #[test]
    fn decode_keeps_plus_and_malformed_escapes() {
        assert_eq!(decode("a+b"), "a+b");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%4a%4A"), "JJ");
    }

    #[test]
    fn decode_falls_back_to_latin1() {
        assert_eq!(decode("caf%E9"), "café");
        // Literal characters survive the fallback untouched.
        assert_eq!(decode("✓%E9"), "✓é");
    }

    #[test]
    fn encoded_len_matches_encode() {
        for s in ["", "abc", "a b", "Alice & Bob 100% ✓", "\u{10FFFF}"] {
            assert_eq!(encoded_len(s), encode(s).len());
        }
    }
}
