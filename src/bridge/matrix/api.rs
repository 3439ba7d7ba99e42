//! The homeserver's client-server API, called as the appservice: ruma's
//! typed requests, sent with reqwest, acting as any ghost through identity
//! assertion (`?user_id=`), or as a real user with their own token (double
//! puppeting).
//!
//! Errors are classified here once — transient (retry, honouring
//! `retry_after_ms`) or permanent — for the queue and the self-check.

use parking_lot::RwLock;
use ruma::UserId;
use ruma::api::auth_scheme::{AuthScheme, SendAccessToken};
use ruma::api::path_builder::{PathBuilder, SinglePath, VersionHistory};
use ruma::api::{
    AppserviceUserIdentity, IncomingResponseExt, OutgoingRequest, OutgoingRequestAppserviceExt,
    SupportedVersions,
};
use std::borrow::Cow;
use std::time::Duration;

/// What the homeserver said, or why it said nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("the homeserver is unreachable: {0}")]
    Transport(String),
    #[error("the homeserver answered {status} {errcode}: {message}")]
    Status {
        status: u16,
        errcode: String,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("bad request or response: {0}")]
    Invalid(String),
}

impl ApiError {
    pub fn errcode(&self) -> Option<&str> {
        match self {
            ApiError::Status { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth retrying: unreachable, overloaded, rate-limited, or our token
    /// not (yet) accepted — a homeserver restarting without the registration
    /// loaded is an operator problem that must not lose queued messages.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Transport(_) => true,
            ApiError::Status {
                status, errcode, ..
            } => {
                *status == 429
                    || *status >= 500
                    || matches!(
                        errcode.as_str(),
                        "M_LIMIT_EXCEEDED" | "M_UNKNOWN_TOKEN" | "M_MISSING_TOKEN"
                    )
            }
            ApiError::Invalid(_) => false,
        }
    }

    /// The wait the homeserver asked for (`retry_after_ms` or `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn from_response(status: u16, retry_header: Option<Duration>, body: &[u8]) -> ApiError {
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let errcode = json
            .get("errcode")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let message = json
            .get("error")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        let retry_after = json
            .get("retry_after_ms")
            .and_then(|v| v.as_u64())
            .map(Duration::from_millis)
            .or(retry_header);
        ApiError::Status {
            status,
            errcode,
            message,
            retry_after,
        }
    }
}

/// Who a request acts as.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// No token at all (public endpoints such as `/versions`).
    Anonymous,
    /// The bridge bot (`sender_localpart`).
    Bot,
    /// A user in the appservice namespace (a ghost), by identity assertion.
    Ghost(&'a UserId),
    /// A real user with their own access token (double puppeting).
    Token(&'a str),
}

/// Path selection input for both kinds of ruma path builders.
pub trait PathInput: PathBuilder {
    fn input(versions: &SupportedVersions) -> Self::Input<'_>;
}

impl PathInput for VersionHistory {
    fn input(versions: &SupportedVersions) -> Cow<'_, SupportedVersions> {
        Cow::Borrowed(versions)
    }
}

impl PathInput for SinglePath {
    fn input(_: &SupportedVersions) {}
}

pub struct Homeserver {
    base: String,
    as_token: String,
    http: reqwest::Client,
    versions: RwLock<SupportedVersions>,
}

fn default_versions() -> SupportedVersions {
    // Everything the bridge calls exists since v1.7 (appservice ping); Synapse speaks v1.11+.
    SupportedVersions::from_parts(&["v1.11".to_string()], &Default::default())
}

impl Homeserver {
    pub fn new(base: &str, as_token: &str) -> anyhow::Result<Homeserver> {
        // reqwest is built without a crypto provider (no aws-lc): install ring's
        // as the process default; an error only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Homeserver {
            base: base.trim_end_matches('/').to_string(),
            as_token: as_token.to_string(),
            http,
            versions: RwLock::new(default_versions()),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Learns which API versions the homeserver speaks (`GET /versions`).
    pub async fn discover_versions(&self) -> Result<(), ApiError> {
        let response = self
            .send(
                ruma::api::client::discovery::get_supported_versions::Request::new(),
                Actor::Anonymous,
            )
            .await?;
        let versions =
            SupportedVersions::from_parts(&response.versions, &response.unstable_features);
        if !versions.versions.is_empty() {
            *self.versions.write() = versions;
        }
        Ok(())
    }

    pub async fn send<R>(
        &self,
        request: R,
        actor: Actor<'_>,
    ) -> Result<R::IncomingResponse, ApiError>
    where
        R: OutgoingRequest,
        R::PathBuilder: PathInput,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        let http_request: http::Request<Vec<u8>> = {
            let versions = self.versions.read().clone();
            let input = <R::PathBuilder as PathInput>::input(&versions);
            let (token, identity) = match actor {
                Actor::Anonymous => (SendAccessToken::None, AppserviceUserIdentity::default()),
                Actor::Bot => (
                    SendAccessToken::Appservice(&self.as_token),
                    AppserviceUserIdentity::default(),
                ),
                Actor::Ghost(user) => (
                    SendAccessToken::Appservice(&self.as_token),
                    AppserviceUserIdentity::new(user),
                ),
                Actor::Token(token) => (
                    SendAccessToken::IfRequired(token),
                    AppserviceUserIdentity::default(),
                ),
            };
            request
                .try_into_http_request_with_identity(&self.base, token, identity, input)
                .map_err(|e| ApiError::Invalid(e.to_string()))?
        };
        let request = reqwest::Request::try_from(http_request)
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| ApiError::Transport(transport_reason(&e)))?;
        let status = response.status();
        let retry_header = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut builder = http::Response::builder().status(status);
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| ApiError::Transport(transport_reason(&e)))?;
        if status.as_u16() >= 400 {
            return Err(ApiError::from_response(
                status.as_u16(),
                retry_header,
                &body,
            ));
        }
        let http_response = builder
            .body(body.as_ref())
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        R::IncomingResponse::try_from_http_response(http_response)
            .map_err(|e| ApiError::Invalid(e.to_string()))
    }
}

/// The innermost cause: "Connection refused (os error 111)" says more than
/// reqwest's outer "error sending request".
fn transport_reason(e: &reqwest::Error) -> String {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        format!("timed out ({reason})")
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let e = ApiError::from_response(
            429,
            None,
            br#"{"errcode":"M_LIMIT_EXCEEDED","error":"slow down","retry_after_ms":1500}"#,
        );
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        let e = ApiError::from_response(
            429,
            Some(Duration::from_secs(3)),
            br#"{"errcode":"M_LIMIT_EXCEEDED"}"#,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        let e = ApiError::from_response(
            403,
            None,
            br#"{"errcode":"M_FORBIDDEN","error":"not in room"}"#,
        );
        assert!(!e.is_transient());
        assert_eq!(e.errcode(), Some("M_FORBIDDEN"));
        assert!(ApiError::from_response(502, None, b"<html>bad gateway</html>").is_transient());
        assert!(ApiError::Transport("refused".into()).is_transient());
    }
}
