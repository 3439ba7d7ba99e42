//! Operations endpoints on the HTTP listener: `/metrics`, `/health`, `/ready`.

use crate::core::hub::Hub;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

/// A named readiness probe (one per bridge).
pub type Probe = (&'static str, Arc<dyn Fn() -> bool + Send + Sync>);

#[derive(Clone)]
struct Ops {
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    probes: Arc<Vec<Probe>>,
}

pub fn router(hub: Arc<Hub>, metrics: Arc<Metrics>, probes: Vec<Probe>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .with_state(Ops {
            hub,
            metrics,
            probes: Arc::new(probes),
        })
}

async fn metrics_text(State(ops): State<Ops>) -> impl IntoResponse {
    let mut body = ops
        .metrics
        .render(ops.hub.online_count(), ops.hub.conversations.len());
    crate::metrics::render_signin_limits(&mut body, &ops.hub.accounts.throttle().stats);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// Ready when the database answers (and takes writes, after one was
/// refused) and every configured bridge is running.
async fn ready(State(ops): State<Ops>) -> impl IntoResponse {
    let mut ok = true;
    let mut body = String::new();
    let store = ops.hub.store();
    let wait = std::time::Duration::from_secs(2);
    let answer = match tokio::time::timeout(wait, store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timeout".to_string()),
    };
    // After a refused write, a write of its own: the database may take
    // writes again (space freed) while no client has tried one yet.
    let answer = match (answer, store.write_failure()) {
        (Ok(()), Some(_)) => match tokio::time::timeout(wait, store.probe_write()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(match store.write_failure() {
                Some(failure) => format!(
                    "writes failing since {}: {}",
                    crate::store::utc_timestamp(failure.since),
                    failure.error
                ),
                None => "write probe timed out".to_string(),
            }),
        },
        (answer, _) => answer,
    };
    match answer {
        Ok(()) => body.push_str("database: ok\n"),
        Err(reason) => {
            ok = false;
            body.push_str(&format!("database: {reason}\n"));
        }
    }
    for (name, probe) in ops.probes.iter() {
        let up = probe();
        ok &= up;
        body.push_str(&format!(
            "{name}: {}\n",
            if up { "ok" } else { "not running" }
        ));
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        format!("{}\n{body}", if ok { "ready" } else { "not ready" }),
    )
}
