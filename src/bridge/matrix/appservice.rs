//! The appservice API the homeserver calls: transactions, user and room
//! queries, ping. Every call must carry the registration's `hs_token`,
//! checked from the headers before any body is read; bodies are capped at
//! `matrix.appservice_limits.max_body_bytes` and slow connections closed.
//!
//! A transaction is answered 200 only once all its events are handled
//! (stored for delivery, or acted on); on a database error the answer is 500
//! and the homeserver sends the transaction again. Events already handled
//! are skipped by event id.

use super::Inner;
use crate::config::AppserviceLimitsConfig;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

type Shared = State<Arc<Inner>>;

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, errcode: &str, message: &str) -> Response {
    json(
        status,
        serde_json::json!({"errcode": errcode, "error": message}),
    )
}

/// `None` when the request carries the right `hs_token` (header, or the
/// legacy `access_token` query parameter).
fn refuse(inner: &Inner, headers: &HeaderMap, query: Option<&str>) -> Option<Response> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let from_query = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("access_token="))
            .map(msnp::urlenc::decode)
    });
    let Some(token) = from_header.or(from_query) else {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "M_UNAUTHORIZED",
            "missing token",
        ));
    };
    if crate::core::hashing::constant_time_eq(token.as_bytes(), inner.reg.hs_token.as_bytes()) {
        None
    } else {
        tracing::warn!("a request to the appservice API carried a wrong hs_token");
        Some(error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "bad token"))
    }
}

/// Refuses a request before its body is read: without the right token
/// (401/403), or declaring a body above the limit (413). The body limit
/// itself is enforced again while reading, for bodies without a length.
async fn authenticate(
    State((inner, max_body)): State<(Arc<Inner>, usize)>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(refused) = refuse(&inner, request.headers(), request.uri().query()) {
        return refused;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body as u64) {
        return too_large(max_body);
    }
    next.run(request).await
}

fn too_large(max_body: usize) -> Response {
    tracing::warn!(
        max_body,
        "refused an appservice request above matrix.appservice_limits.max_body_bytes"
    );
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "M_TOO_LARGE",
        "request body above matrix.appservice_limits.max_body_bytes",
    )
}

pub(super) async fn serve(
    inner: Arc<Inner>,
    listener: tokio::net::TcpListener,
    limits: AppserviceLimitsConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_body = limits.max_body_bytes;
    let router = Router::new()
        .route("/_matrix/app/v1/transactions/{txn}", put(transaction))
        .route("/transactions/{txn}", put(transaction))
        .route("/_matrix/app/v1/users/{user}", get(query_user))
        .route("/users/{user}", get(query_user))
        .route("/_matrix/app/v1/rooms/{alias}", get(query_room))
        .route("/rooms/{alias}", get(query_room))
        .route("/_matrix/app/v1/ping", post(ping))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "M_UNRECOGNIZED", "unknown endpoint") })
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            (inner.clone(), max_body),
            authenticate,
        ))
        .with_state(inner);
    let handle = axum_server::Handle::new();
    let stopper = {
        let handle = handle.clone();
        tokio::spawn(async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
            handle.graceful_shutdown(Some(Duration::from_secs(5)));
        })
    };
    if let Err(e) = serve_limited(listener, router, handle, &limits).await {
        tracing::error!(error = %e, "Matrix appservice listener failed");
    }
    stopper.abort();
}

/// HTTP/1 with the header-read and first-request timeouts, so a connection
/// that sends nothing or trickles its headers is closed.
async fn serve_limited(
    listener: tokio::net::TcpListener,
    router: Router,
    handle: axum_server::Handle<std::net::SocketAddr>,
    limits: &AppserviceLimitsConfig,
) -> std::io::Result<()> {
    let timeout = Duration::from_secs(limits.header_timeout_secs.max(1));
    let mut server = axum_server::from_tcp(listener.into_std()?)?
        .handle(handle)
        .http1_only();
    server
        .http_builder()
        .http1()
        .header_read_timeout(Some(timeout))
        .max_buf_size(64 * 1024)
        .max_headers(64);
    server
        .first_request_timeout(timeout)
        .serve(router.into_make_service())
        .await
}

async fn ping() -> Response {
    json(StatusCode::OK, serde_json::json!({}))
}

async fn query_room() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
        "the bridge has no room aliases",
    )
}

/// The homeserver met an unknown user of our namespace (e.g. in an
/// invitation): a ghost exists for every MSN account, so register it now.
async fn query_user(State(inner): Shared, Path(user): Path<String>) -> Response {
    let Some(local) = inner.ids.handle_of(&user) else {
        return error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "not an MSN user");
    };
    match inner.db.account_name(&local).await {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such MSN account"),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                &e.to_string(),
            );
        }
    }
    match inner.ensure_ghost(&local).await {
        Ok(_) => {
            inner.scan_wake.notify_one(); // and give it its name
            json(StatusCode::OK, serde_json::json!({}))
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "M_UNKNOWN",
            &e.to_string(),
        ),
    }
}

async fn transaction(State(inner): Shared, Path(txn): Path<String>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "M_NOT_JSON",
            "transaction body is not JSON",
        );
    };
    let empty = Vec::new();
    let events = body
        .get("events")
        .and_then(|v| v.as_array())
        .unwrap_or(&empty);
    // Synapse sends the stable key; older ones the MSC2409 key (the same data).
    let ephemeral = body
        .get("ephemeral")
        .or_else(|| body.get("de.sorunome.msc2409.ephemeral"))
        .and_then(|v| v.as_array())
        .unwrap_or(&empty);
    tracing::debug!(%txn, events = events.len(), ephemeral = ephemeral.len(), "appservice transaction");
    for event in events {
        let room = event.get("room_id").and_then(|v| v.as_str()).unwrap_or("");
        let _turn = inner.room_locks.lock(room).await;
        if let Err(e) = inner.handle_event(event).await {
            tracing::error!(%txn, error = %e, "cannot handle a Matrix event; the homeserver will resend the transaction");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                "storage failure",
            );
        }
    }
    for e in ephemeral {
        inner.handle_ephemeral(e);
    }
    json(StatusCode::OK, serde_json::json!({}))
}

impl Inner {
    pub(super) async fn handle_event(
        self: &Arc<Self>,
        event: &serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        let s = |key: &str| event.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let (event_id, room, sender, kind) = (s("event_id"), s("room_id"), s("sender"), s("type"));
        if event_id.is_empty() || room.is_empty() {
            return Ok(());
        }
        if self.db.is_processed(event_id).await? {
            return Ok(());
        }
        let null = serde_json::Value::Null;
        let content = event.get("content").unwrap_or(&null);
        match kind {
            "m.room.member" => {
                let state_key = event
                    .get("state_key")
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                self.on_member(room, sender, state_key, content).await?;
                self.db.mark_processed(event_id).await
            }
            // Our own ghosts' messages come back as events: already on MSN.
            "m.room.message" | "m.sticker" if !self.ids.is_ours(sender) => {
                self.on_room_message(event_id, room, sender, content).await
            }
            "m.room.encrypted" if !self.ids.is_ours(sender) => {
                // The bridge cannot read end-to-end encrypted rooms: say so once per message.
                if let Some((local, _)) = self.db.dm_of_room(room).await? {
                    self.notice_to_room(room, &local, "⚠ msngate cannot read encrypted messages; MSN users do not see them. Use an unencrypted chat.").await;
                }
                self.db.mark_processed(event_id).await
            }
            _ => self.db.mark_processed(event_id).await,
        }
    }

    fn handle_ephemeral(self: &Arc<Self>, data: &serde_json::Value) {
        match data.get("type").and_then(|v| v.as_str()) {
            Some("m.typing") => {
                let Some(room) = data.get("room_id").and_then(|v| v.as_str()) else {
                    return;
                };
                let users: Vec<String> = data
                    .pointer("/content/user_ids")
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|u| u.as_str())
                            .filter(|u| !self.ids.is_ours(u))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                self.matrix_typing(room, &users);
            }
            Some("m.presence") => {
                let Some(sender) = data.get("sender").and_then(|v| v.as_str()) else {
                    return;
                };
                if let Some(content) = data.get("content") {
                    self.on_presence(sender, content);
                }
            }
            _ => {}
        }
    }
}
