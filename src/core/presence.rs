//! What others see of a signed-in user.

use std::sync::Arc;

/// A user's availability, in network-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Online,
    Busy,
    Idle,
    BeRightBack,
    Away,
    OnThePhone,
    OutToLunch,
    /// Signed in but appearing offline.
    Hidden,
    Offline,
}

impl Status {
    /// Whether contacts see the user as present at all.
    pub fn is_visible(self) -> bool {
        !matches!(self, Status::Hidden | Status::Offline)
    }
}

/// A snapshot of one user's presence, shared (not copied) by every watcher's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub handle: Arc<str>,
    pub status: Status,
    pub friendly_name: Arc<str>,
    /// Client capability bits (MSN clients; bridged users report their own value).
    pub capabilities: u32,
    /// The client's display-picture descriptor, opaque here.
    pub avatar: Option<Arc<str>>,
    pub personal_message: Arc<str>,
    /// What the user is playing, while they share it (not stored: it ends
    /// with the session).
    pub now_playing: Option<Arc<NowPlaying>>,
}

/// "What I'm listening to", in network-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NowPlaying {
    /// `Music`, `Games` or `Office` in MSN terms.
    pub category: Arc<str>,
    /// As a person reads it: "Title - Artist".
    pub text: Arc<str>,
    /// The MSN client's own rendering, passed on unchanged between MSN
    /// clients so the format and fields survive; `None` from other networks.
    pub msn_form: Option<Arc<str>>,
}

impl Presence {
    /// Whether the personal message or what is playing differ.
    pub fn personal_data_differs(&self, other: &Presence) -> bool {
        self.personal_message != other.personal_message || self.now_playing != other.now_playing
    }

    pub fn has_personal_data(&self) -> bool {
        !self.personal_message.is_empty() || self.now_playing.is_some()
    }

    /// The status text for networks with a single one: the personal
    /// message, else what is playing ("♫ Title - Artist").
    pub fn status_text(&self) -> String {
        match &self.now_playing {
            Some(p) if self.personal_message.is_empty() => {
                let mark = if &*p.category == "Music" {
                    "♫"
                } else {
                    "▶"
                };
                format!("{mark} {}", p.text)
            }
            _ => self.personal_message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_prefers_the_personal_message() {
        let mut p = Presence {
            handle: "a@x.com".into(),
            status: Status::Online,
            friendly_name: "A".into(),
            capabilities: 0,
            avatar: None,
            personal_message: "".into(),
            now_playing: Some(Arc::new(NowPlaying {
                category: "Music".into(),
                text: "Title - Artist".into(),
                msn_form: None,
            })),
        };
        assert_eq!(p.status_text(), "♫ Title - Artist");
        assert!(p.has_personal_data());
        let before = p.clone();
        p.personal_message = "at work".into();
        assert_eq!(p.status_text(), "at work");
        assert!(p.personal_data_differs(&before));
        p.now_playing = None;
        p.personal_message = "".into();
        assert_eq!(p.status_text(), "");
        assert!(!p.has_personal_data());
    }
}
