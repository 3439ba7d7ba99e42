//! XML text escaping for the small XML documents MSNP carries (`UUX`/`UBX`
//! personal messages, the Passport SOAP token service).

/// Escapes the five XML special characters.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes one entity body (`amp`, `#233`, `#xE9`); `None` if unknown or invalid.
fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let code =
                if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    name.strip_prefix('#')
                        .and_then(|dec| dec.parse::<u32>().ok())
                };
            code.and_then(char::from_u32)
        }
    }
}

/// Unescapes; `None` when an `&` does not start a valid entity (the
/// document is malformed and the protocol says to refuse it).
pub fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let end = after.bytes().take(13).position(|b| b == b';')?;
        out.push(entity(&after[1..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Unescapes, keeping anything that is not a valid entity as it stands
/// (for documents from clients known to be sloppy).
pub fn unescape_lenient(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let decoded = after
            .bytes()
            .take(13)
            .position(|b| b == b';')
            .and_then(|end| entity(&after[1..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_or_keeps_bad_entities() {
        let s = "fish & <chips> \"quoted\" 'it' ✓";
        assert_eq!(unescape(&escape(s)).as_deref(), Some(s));
        assert_eq!(escape("t=1&p=2"), "t=1&amp;p=2");
        assert_eq!(unescape("&#233;&#xE9;").as_deref(), Some("éé"));
        assert_eq!(unescape("&bogus;"), None);
        assert_eq!(unescape("a & b"), None);
        assert_eq!(unescape("&#xD800;"), None);
        assert_eq!(
            unescape_lenient("&#1114112;&#xD800;&"),
            "&#1114112;&#xD800;&"
        );
        assert_eq!(unescape_lenient("a &amp; b & c"), "a & b & c");
    }
}
