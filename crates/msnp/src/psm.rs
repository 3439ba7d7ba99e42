//! The personal-message document of `UUX` (client → server) and `UBX`
//! (server → watchers), MSNP11+ (notification.md §11):
//! `<Data><PSM>text</PSM><CurrentMedia>…</CurrentMedia></Data>`.
//!
//! `CurrentMedia` is what the user is playing ("What I'm listening to"):
//! fields separated by the two characters `\0` (a backslash and a zero, not
//! a NUL byte): `\0Music\01\0{0} - {1}\0Title\0Artist\0Album\0\0`, i.e.
//! application, category, enabled flag, a format string and its arguments.

use crate::xml;

/// The two-character field separator of `CurrentMedia`.
const SEPARATOR: &str = "\\0";

/// Format arguments beyond this many are dropped (real clients send 3–4).
const MAX_FIELDS: usize = 16;

/// What a `UUX` document says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonalData {
    pub message: String,
    /// `None` when `CurrentMedia` is absent, empty or switched off.
    pub media: Option<CurrentMedia>,
}

/// A `CurrentMedia` entry that is switched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentMedia {
    /// The player, often empty.
    pub application: String,
    /// `Music`, `Games` or `Office`.
    pub category: String,
    /// Placeholders `{0}`, `{1}`… refer to `fields`.
    pub format: String,
    pub fields: Vec<String>,
}

impl CurrentMedia {
    /// Parses the unescaped text of `<CurrentMedia>`; `None` when empty,
    /// switched off (`…\00\0…`) or not in the field layout.
    pub fn parse(text: &str) -> Option<CurrentMedia> {
        let mut parts = text.split(SEPARATOR);
        let application = parts.next()?.to_string();
        let category = parts.next()?.to_string();
        if parts.next()? != "1" {
            return None;
        }
        let format = parts.next()?.to_string();
        let mut fields: Vec<String> = parts.take(MAX_FIELDS).map(str::to_string).collect();
        while fields.last().is_some_and(String::is_empty) {
            fields.pop();
        }
        if format.is_empty() && fields.is_empty() {
            return None;
        }
        Some(CurrentMedia {
            application,
            category,
            format,
            fields,
        })
    }

    /// A media entry that shows `text` as it is (`{0}` with one field).
    pub fn from_text(category: &str, text: &str) -> CurrentMedia {
        CurrentMedia {
            application: String::new(),
            category: category.to_string(),
            format: "{0}".into(),
            fields: vec![text.to_string()],
        }
    }

    /// The value of `<CurrentMedia>`, before XML escaping.
    pub fn render(&self) -> String {
        let mut s = no_separator(&self.application);
        s.push_str(SEPARATOR);
        s.push_str(&no_separator(&self.category));
        s.push_str(SEPARATOR);
        s.push('1');
        s.push_str(SEPARATOR);
        s.push_str(&no_separator(&self.format));
        for field in &self.fields {
            s.push_str(SEPARATOR);
            s.push_str(&no_separator(field));
        }
        s.push_str(SEPARATOR);
        s.push_str(SEPARATOR);
        s
    }

    /// What a client displays: the format with its placeholders filled in
    /// ("Title - Artist"); the fields joined by " - " when there is no format.
    pub fn display(&self) -> String {
        if self.format.is_empty() {
            return self.fields.join(" - ");
        }
        let mut out = String::new();
        let mut rest = self.format.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after
                .find('}')
                .map(|close| (close, after[..close].parse::<usize>()))
            {
                Some((close, Ok(n))) => {
                    out.push_str(self.fields.get(n).map(String::as_str).unwrap_or(""));
                    rest = &after[close + 1..];
                }
                _ => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out.trim().to_string()
    }
}

/// A field may not contain the separator itself (it would shift the others).
fn no_separator(s: &str) -> String {
    s.replace(SEPARATOR, "\\ 0")
}

/// The `UUX`/`UBX` document.
pub fn document(message: &str, media: Option<&CurrentMedia>) -> String {
    document_with(
        message,
        &media.map(CurrentMedia::render).unwrap_or_default(),
    )
}

/// The `UUX`/`UBX` document with `CurrentMedia` already rendered
/// ([`CurrentMedia::render`]; empty for none).
pub fn document_with(message: &str, rendered_media: &str) -> String {
    format!(
        "<Data><PSM>{}</PSM><CurrentMedia>{}</CurrentMedia></Data>",
        xml::escape(message),
        xml::escape(rendered_media)
    )
}

/// Parses a `UUX` payload; `None` if it is malformed (the server then
/// closes the connection, as the real service did). An empty payload
/// clears everything.
pub fn parse(payload: &[u8]) -> Option<PersonalData> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    if text.is_empty() {
        return Some(PersonalData::default());
    }
    let inner = text.strip_prefix("<Data>")?.strip_suffix("</Data>")?;
    let message = element(inner, "PSM")?.unwrap_or_default();
    let media = element(inner, "CurrentMedia")?
        .as_deref()
        .and_then(CurrentMedia::parse);
    Some(PersonalData { message, media })
}

/// The unescaped text of `<name>…</name>` (or `<name/>`) in `xml`:
/// `Some(None)` when absent, `None` when malformed.
fn element(xml: &str, name: &str) -> Option<Option<String>> {
    if xml.contains(&format!("<{name}/>")) {
        return Some(Some(String::new()));
    }
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    match (xml.find(&open), xml.find(&close)) {
        (Some(start), Some(end)) if start + open.len() <= end => {
            xml::unescape(&xml[start + open.len()..end]).map(Some)
        }
        (None, None) => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAYING: &str = "\\0Music\\01\\0{0} - {1}\\0Title\\0Artist\\0Album\\0\\0";

    #[test]
    fn message_and_media_round_trip() {
        let media = CurrentMedia::parse(PLAYING).expect("switched on");
        assert_eq!(media.render(), PLAYING);
        assert_eq!(media.category, "Music");
        assert_eq!(media.fields, ["Title", "Artist", "Album"]);
        assert_eq!(media.display(), "Title - Artist");
        let doc = document("fish & <chips> ✓", Some(&media));
        assert_eq!(
            parse(doc.as_bytes()),
            Some(PersonalData {
                message: "fish & <chips> ✓".into(),
                media: Some(media),
            })
        );
    }

    #[test]
    fn the_reference_documents() {
        let empty = b"<Data><PSM></PSM><CurrentMedia></CurrentMedia></Data>";
        assert_eq!(parse(empty), Some(PersonalData::default()));
        assert_eq!(document("", None).as_bytes(), empty);
        assert_eq!(document("Hi", None).len(), 55);
        assert_eq!(parse(b""), Some(PersonalData::default()));
        assert_eq!(parse(b"<Data><PSM/></Data>"), Some(PersonalData::default()));
    }

    #[test]
    fn malformed_documents_are_refused() {
        assert_eq!(parse(b"<Data><PSM>oops</Data>"), None);
        assert_eq!(parse(b"not xml"), None);
        assert_eq!(parse(b"<Data><PSM>&bogus;</PSM></Data>"), None);
        assert_eq!(parse(b"<Data><PSM>a</PSM><CurrentMedia>x</Data>"), None);
        assert_eq!(parse(&[0xff, 0xfe]), None);
    }

    #[test]
    fn media_switched_off_or_odd_is_no_media() {
        assert_eq!(CurrentMedia::parse(""), None);
        assert_eq!(
            CurrentMedia::parse("\\0Music\\00\\0{0} - {1}\\0Title\\0Artist\\0\\0"),
            None
        );
        assert_eq!(CurrentMedia::parse("Music"), None);
        assert_eq!(CurrentMedia::parse("\\0\\0Music\\01"), None);
        let games = CurrentMedia::parse("\\0Games\\01\\0Playing {0}\\0Minesweeper\\0\\0")
            .expect("switched on");
        assert_eq!(games.display(), "Playing Minesweeper");
        // Placeholders without a field, or not numbers, stay harmless.
        let odd = CurrentMedia::parse("\\0Music\\01\\0{5} {x} {0\\0A\\0\\0").unwrap();
        assert_eq!(odd.display(), "{x} {0");
    }

    #[test]
    fn text_media_renders_in_the_layout_clients_read() {
        let m = CurrentMedia::from_text("Music", "Song \\0 - Band");
        let rendered = m.render();
        assert_eq!(rendered, "\\0Music\\01\\0{0}\\0Song \\ 0 - Band\\0\\0");
        assert_eq!(
            CurrentMedia::parse(&rendered).unwrap().display(),
            "Song \\ 0 - Band"
        );
    }
}
