//! Message formatting between MSN and Matrix.
//!
//! MSN formats a whole message at once (`X-MMS-IM-Format`: font, effects,
//! colour; messages.md §2.1); Matrix formats spans of HTML
//! (`formatted_body`). MSN → Matrix wraps the text in the equivalent tags;
//! Matrix → MSN keeps the text and the style that covers all of it.

use msnp::mime::ImFormat;

/// Fonts MSN clients send by default: a message in one of them with no
/// effects and no colour is sent to Matrix as plain text only.
const DEFAULT_FONTS: &[&str] = &[
    "arial",
    "ms sans serif",
    "microsoft sans serif",
    "segoe ui",
    "tahoma",
    "verdana",
    "calibri",
    "times new roman",
];

/// Matrix `body` and optional HTML `formatted_body` for an MSN message.
pub fn msn_to_matrix(text: &str, format: Option<&ImFormat>) -> (String, Option<String>) {
    let body = text.replace("\r\n", "\n").replace('\r', "\n");
    let Some(f) = format else { return (body, None) };
    let colored = f.color_rgb != (0, 0, 0);
    let custom_font =
        !f.font.is_empty() && !DEFAULT_FONTS.contains(&f.font.to_ascii_lowercase().as_str());
    if !(f.bold || f.italic || f.underline || f.strike || colored || custom_font) {
        return (body, None);
    }
    let mut html = escape_html(&body).replace('\n', "<br>");
    for (on, tag) in [
        (f.strike, "del"),
        (f.underline, "u"),
        (f.italic, "em"),
        (f.bold, "strong"),
    ] {
        if on {
            html = format!("<{tag}>{html}</{tag}>");
        }
    }
    if colored || custom_font {
        let mut attrs = String::new();
        if colored {
            let (r, g, b) = f.color_rgb;
            // `data-mx-color` is what the spec allows; `color` is what most clients read.
            attrs.push_str(&format!(
                " data-mx-color=\"#{r:02x}{g:02x}{b:02x}\" color=\"#{r:02x}{g:02x}{b:02x}\""
            ));
        }
        if custom_font {
            // Not in the spec's allow-list: clients drop it, but it survives a round trip.
            attrs.push_str(&format!(" face=\"{}\"", escape_html(&f.font)));
        }
        html = format!("<font{attrs}>{html}</font>");
    }
    (body, Some(html))
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Style {
    bold: bool,
    italic: bool,
    underline: bool,
    strike: bool,
    color: Option<(u8, u8, u8)>,
    face: Option<String>,
}

impl Style {
    fn intersect(&self, other: &Style) -> Style {
        Style {
            bold: self.bold && other.bold,
            italic: self.italic && other.italic,
            underline: self.underline && other.underline,
            strike: self.strike && other.strike,
            color: if self.color == other.color {
                self.color
            } else {
                None
            },
            face: if self.face == other.face {
                self.face.clone()
            } else {
                None
            },
        }
    }
}

/// MSN text (CR LF line breaks) and format for a Matrix message. With
/// `html`, the text comes from the HTML (reply fallbacks removed) and the
/// format is the style shared by all of it; otherwise from `body`.
pub fn matrix_to_msn(body: &str, html: Option<&str>) -> (String, ImFormat) {
    let mut format = ImFormat {
        font: "Segoe UI".into(),
        ..ImFormat::default()
    };
    let (text, style) = match html {
        Some(html) => {
            let (text, style) = parse_html(html);
            (text, style.unwrap_or_default())
        }
        None => (strip_reply_fallback(body).to_string(), Style::default()),
    };
    format.bold = style.bold;
    format.italic = style.italic;
    format.underline = style.underline;
    format.strike = style.strike;
    if let Some(rgb) = style.color {
        format.color_rgb = rgb;
    }
    if let Some(face) = style.face {
        format.font = face;
    }
    let text = text
        .trim_end_matches('\n')
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    (text, format)
}

/// A plain-text reply starts with `> <@user> quoted` lines and a blank line.
fn strip_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") {
        return body;
    }
    match body.find("\n\n") {
        Some(end) if body[..end].lines().all(|l| l.starts_with('>')) => &body[end + 2..],
        _ => body,
    }
}

fn parse_color(value: &str) -> Option<(u8, u8, u8)> {
    let hex = value.trim().strip_prefix('#')?;
    let hex = match hex.len() {
        6 => hex.to_string(),
        3 => hex.chars().flat_map(|c| [c, c]).collect(),
        _ => return None,
    };
    let n = u32::from_str_radix(&hex, 16).ok()?;
    Some(((n >> 16) as u8, (n >> 8) as u8, n as u8))
}

/// Tag name (lower case), whether it closes, and its attributes.
fn parse_tag(inner: &str) -> (String, bool, Vec<(String, String)>) {
    let inner = inner.trim();
    let (closing, inner) = match inner.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, inner),
    };
    let inner = inner.trim_end_matches('/');
    let name_end = inner
        .find(|c: char| c.is_whitespace())
        .unwrap_or(inner.len());
    let name = inner[..name_end].to_ascii_lowercase();
    let mut attrs = Vec::new();
    let mut rest = &inner[name_end..];
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = rest[..key_end].to_ascii_lowercase();
        rest = rest[key_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
            match quote {
                Some(q) => {
                    let body = &after[1..];
                    let end = body.find(q).unwrap_or(body.len());
                    rest = body.get(end + 1..).unwrap_or("");
                    decode_entities(&body[..end])
                }
                None => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    rest = &after[end..];
                    decode_entities(&after[..end])
                }
            }
        } else {
            String::new()
        };
        if key.is_empty() {
            // Stray characters: skip one to make progress.
            rest = rest.get(1..).unwrap_or("");
            continue;
        }
        attrs.push((key, value));
    }
    (name, closing, attrs)
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "tr",
    "table",
    "hr",
];

/// Text and shared style of an HTML fragment (Matrix's tag subset; anything
/// else is read as text with its tags ignored).
fn parse_html(html: &str) -> (String, Option<Style>) {
    let mut text = String::new();
    let mut stack: Vec<(String, Style)> = Vec::new();
    let mut shared: Option<Style> = None;
    let mut skip_depth = 0usize; // inside <mx-reply>
    let mut rest = html;
    let newline = |text: &mut String| {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
    };
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            let Some(end) = after.find('>') else {
                // A lone `<` is text.
                text.push('<');
                rest = after;
                continue;
            };
            let (name, closing, attrs) = parse_tag(&after[..end]);
            rest = &after[end + 1..];
            if name == "mx-reply" {
                skip_depth = if closing {
                    skip_depth.saturating_sub(1)
                } else {
                    skip_depth + 1
                };
                continue;
            }
            if skip_depth > 0 {
                continue;
            }
            if name == "br" {
                text.push('\n');
                continue;
            }
            if BLOCK_TAGS.contains(&name.as_str()) {
                newline(&mut text);
            }
            if closing {
                if let Some(pos) = stack.iter().rposition(|(n, _)| *n == name) {
                    stack.truncate(pos);
                }
                continue;
            }
            let mut style = stack.last().map(|(_, s)| s.clone()).unwrap_or_default();
            match name.as_str() {
                "b" | "strong" => style.bold = true,
                "i" | "em" => style.italic = true,
                "u" | "ins" => style.underline = true,
                "s" | "del" | "strike" => style.strike = true,
                _ => {}
            }
            for (key, value) in &attrs {
                match key.as_str() {
                    "data-mx-color" | "color" => {
                        if let Some(c) = parse_color(value) {
                            style.color = Some(c);
                        }
                    }
                    "face" => style.face = Some(value.clone()),
                    _ => {}
                }
            }
            if !matches!(name.as_str(), "img" | "hr" | "input" | "meta") {
                stack.push((name, style));
            } else if name == "img" {
                // Emoji images and the like: their alt text stands in.
                if let Some((_, alt)) = attrs.iter().find(|(k, _)| k == "alt") {
                    text.push_str(alt);
                }
            }
            continue;
        }
        let end = rest.find('<').unwrap_or(rest.len());
        let chunk = decode_entities(&rest[..end]);
        rest = &rest[end..];
        if skip_depth > 0 {
            continue;
        }
        if chunk.chars().any(|c| !c.is_whitespace()) {
            let style = stack.last().map(|(_, s)| s.clone()).unwrap_or_default();
            shared = Some(match shared {
                Some(s) => s.intersect(&style),
                None => style,
            });
        }
        text.push_str(&chunk);
    }
    (text.trim_start_matches('\n').to_string(), shared)
}

/// Splits text so each MSN payload stays under the 1664-byte limit
/// (messages.md §2): pieces of at most `max` bytes, cut at line breaks or
/// spaces when possible, never inside a character.
pub fn split_for_msn(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let window = &rest[..cut];
        let at = window
            .rfind("\r\n")
            .filter(|&i| i > 0)
            .or_else(|| window.rfind(' ').filter(|&i| i > 0))
            .unwrap_or(cut);
        out.push(rest[..at].to_string());
        rest = rest[at..].trim_start_matches("\r\n");
        if let Some(r) = rest.strip_prefix(' ') {
            rest = r;
        }
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msn_format_becomes_html() {
        let plain = ImFormat::default();
        assert_eq!(
            msn_to_matrix("hi\r\nthere", Some(&plain)),
            ("hi\nthere".into(), None)
        );
        let f = ImFormat {
            font: "Comic Sans MS".into(),
            bold: true,
            italic: true,
            underline: true,
            strike: true,
            color_rgb: (255, 0, 0),
            ..ImFormat::default()
        };
        let (body, html) = msn_to_matrix("a<b & ✓\r\nx", Some(&f));
        assert_eq!(body, "a<b & ✓\nx");
        assert_eq!(
            html.as_deref(),
            Some(
                "<font data-mx-color=\"#ff0000\" color=\"#ff0000\" face=\"Comic Sans MS\"><strong><em><u><del>a&lt;b &amp; ✓<br>x</del></u></em></strong></font>"
            )
        );
    }

    #[test]
    fn html_becomes_msn_text_and_format() {
        let (text, f) = matrix_to_msn("ignored", Some("<strong>bold <em>and</em> more</strong>"));
        assert_eq!(text, "bold and more");
        assert!(f.bold && !f.italic);
        let (text, f) = matrix_to_msn(
            "x",
            Some("<font color=\"#00ff00\"><u>line1<br/>line2 &amp; &#x2713;</u></font>"),
        );
        assert_eq!(text, "line1\r\nline2 & ✓");
        assert!(f.underline);
        assert_eq!(f.color_rgb, (0, 255, 0));
        assert!(f.to_header().contains("CO=ff00"));
        let (text, f) = matrix_to_msn(
            "x",
            Some(
                "<mx-reply><blockquote>old</blockquote></mx-reply>new <span data-mx-color=\"#0000ff\">blue</span>",
            ),
        );
        assert_eq!(text, "new blue");
        assert_eq!(
            f.color_rgb,
            (0, 0, 0),
            "colour covers only part of the text"
        );
        let (text, f) = matrix_to_msn("> <@a:b> old\n\nnew\nline", None);
        assert_eq!(text, "new\r\nline");
        assert!(!f.bold);
        // Round trip of every MSN effect through HTML.
        let src = ImFormat {
            font: "Comic Sans MS".into(),
            bold: true,
            italic: true,
            underline: true,
            strike: true,
            color_rgb: (1, 2, 3),
            ..ImFormat::default()
        };
        let (body, html) = msn_to_matrix("round ✓ trip", Some(&src));
        let (text, back) = matrix_to_msn(&body, html.as_deref());
        assert_eq!(text, "round ✓ trip");
        assert_eq!(
            (
                back.bold,
                back.italic,
                back.underline,
                back.strike,
                back.color_rgb,
                back.font.as_str()
            ),
            (true, true, true, true, (1, 2, 3), "Comic Sans MS")
        );
        let (text, _) = matrix_to_msn(
            "x",
            Some("<p>one</p><p>two &lt;3 <a href=\"https://x\">link</a></p>"),
        );
        assert_eq!(text, "one\r\ntwo <3 link");
    }

    #[test]
    fn long_text_is_split_on_boundaries() {
        let text = "é".repeat(1000);
        let parts = split_for_msn(&text, 1401);
        assert!(parts.iter().all(|p| p.len() <= 1401));
        assert_eq!(parts.concat(), text);
        let parts = split_for_msn("aaa bbb ccc", 8);
        assert_eq!(parts, ["aaa bbb", "ccc"]);
        assert_eq!(split_for_msn("", 10), [""]);
    }
}
