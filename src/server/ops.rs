//! Operations endpoints on the HTTP listener: `/metrics`, `/health`, `/ready`.

use crate::core::hub::Hub;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

#[derive(Clone)]
struct Ops {
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
}

pub fn router(hub: Arc<Hub>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .with_state(Ops { hub, metrics })
}

async fn metrics_text(State(ops): State<Ops>) -> impl IntoResponse {
    let body = ops.metrics.render(ops.hub.online_count(), ops.hub.conversations.len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

/// Ready when the database answers (bridges join this check when configured).
async fn ready(State(ops): State<Ops>) -> impl IntoResponse {
    match tokio::time::timeout(std::time::Duration::from_secs(2), ops.hub.store().ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\ndatabase: ok\n".to_string()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready\ndatabase: {e}\n")),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\ndatabase: timeout\n".to_string()),
    }
}
