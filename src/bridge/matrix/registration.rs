//! The appservice registration file the homeserver loads.
//!
//! Written once by `msngate matrix registration`; later runs keep the
//! tokens (so a homeserver that already loaded the file keeps working) and
//! refresh everything derived from the configuration.

use crate::config::MatrixConfig;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    pub url: String,
    pub as_token: String,
    pub hs_token: String,
    pub sender_localpart: String,
    pub namespaces: Namespaces,
    pub rate_limited: bool,
    /// Typing, receipts and presence of Matrix users arrive in transactions (MSC2409).
    pub receive_ephemeral: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    pub users: Vec<Namespace>,
    #[serde(default)]
    pub aliases: Vec<Namespace>,
    #[serde(default)]
    pub rooms: Vec<Namespace>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub exclusive: bool,
    pub regex: String,
}

/// Escapes regex metacharacters in a literal.
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The registration for `config`, keeping `existing` tokens when given.
pub fn build(config: &MatrixConfig, existing: Option<&Registration>) -> Registration {
    let (prefix, suffix) = config
        .ghost_localpart_template
        .split_once("{handle}")
        .unwrap_or(("_msn_", ""));
    let server = regex_literal(&config.server_name);
    let token = || {
        format!(
            "{}{}",
            crate::core::tickets::random_hex(),
            crate::core::tickets::random_hex()
        )
    };
    Registration {
        id: "msngate".into(),
        url: config.appservice_url(),
        as_token: existing.map(|r| r.as_token.clone()).unwrap_or_else(token),
        hs_token: existing.map(|r| r.hs_token.clone()).unwrap_or_else(token),
        sender_localpart: config.bot_localpart.clone(),
        namespaces: Namespaces {
            users: vec![
                Namespace {
                    exclusive: true,
                    regex: format!(
                        "@{}.+{}:{server}",
                        regex_literal(prefix),
                        regex_literal(suffix)
                    ),
                },
                Namespace {
                    exclusive: true,
                    regex: format!("@{}:{server}", regex_literal(&config.bot_localpart)),
                },
            ],
            aliases: Vec::new(),
            rooms: Vec::new(),
        },
        rate_limited: false,
        receive_ephemeral: true,
    }
}

pub fn load(path: &Path) -> anyhow::Result<Registration> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the registration {}", path.display()))?;
    yaml_serde::from_str(&text)
        .with_context(|| format!("{} is not a valid appservice registration", path.display()))
}

/// Writes (or refreshes) the registration file; returns what was written.
pub fn write(config: &MatrixConfig) -> anyhow::Result<Registration> {
    let path = &config.registration;
    let existing = if path.exists() {
        Some(load(path)?)
    } else {
        None
    };
    let registration = build(config, existing.as_ref());
    let text = yaml_serde::to_string(&registration)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // Write then rename, so a homeserver never reads half a file.
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Tokens are secrets: owner and group (the homeserver's) only.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o640))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(registration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> MatrixConfig {
        MatrixConfig {
            homeserver_url: "http://127.0.0.1:8008".into(),
            server_name: "example.org".into(),
            registration: dir.join("reg/msn.yaml"),
            listen: "127.0.0.1:29320".parse().unwrap(),
            appservice_url: None,
            ghost_localpart_template: "_msn_{handle}".into(),
            bot_localpart: "_msn_bot".into(),
            appservice_limits: Default::default(),
        }
    }

    #[test]
    fn writes_once_and_keeps_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let first = write(&c).unwrap();
        assert_eq!(first.url, "http://127.0.0.1:29320");
        assert_eq!(first.as_token.len(), 64);
        assert_ne!(first.as_token, first.hs_token);
        assert_eq!(first.namespaces.users[0].regex, "@_msn_.+:example\\.org");
        assert!(first.receive_ephemeral && !first.rate_limited);
        let text = std::fs::read_to_string(&c.registration).unwrap();
        assert!(text.contains("receive_ephemeral: true"), "{text}");
        let mut c2 = c.clone();
        c2.appservice_url = Some("http://msngate:29320".into());
        let second = write(&c2).unwrap();
        assert_eq!(
            (second.as_token.as_str(), second.hs_token.as_str()),
            (first.as_token.as_str(), first.hs_token.as_str())
        );
        assert_eq!(second.url, "http://msngate:29320");
        assert_eq!(load(&c.registration).unwrap(), second);
    }
}
