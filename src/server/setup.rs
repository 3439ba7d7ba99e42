//! `GET /setup`: the client set-up of `msngate client-setup` as a page, and
//! `GET /setup/msngate-ca.crt`: msngate's CA for clients to import. On every
//! HTTP listener, plain HTTP included: a client machine fetches them before
//! it trusts the CA.

use crate::client_setup::{CA_DOWNLOAD_PATH, SETUP_PATH, Setup};
use crate::config::Config;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

#[derive(Clone)]
struct Page {
    html: Arc<str>,
    /// The CA in DER, when msngate made one and serves it.
    ca_der: Option<Arc<[u8]>>,
}

/// Built once at start (the page may resolve `msn.public_host`, and the CA
/// does not change while msngate runs).
pub fn router(config: &Config) -> Router {
    let setup = Setup::for_config(config);
    let ca_der = setup
        .ca_file
        .as_ref()
        .and_then(|path| match std::fs::read(path) {
            Ok(der) => Some(Arc::from(der)),
            Err(error) => {
                tracing::warn!(%error, path, "cannot read the CA for /setup; its download answers 404");
                None
            }
        });
    let page = Page {
        html: Arc::from(setup.to_html(config)),
        ca_der,
    };
    Router::new()
        .route(SETUP_PATH, get(show))
        .route(CA_DOWNLOAD_PATH, get(download_ca))
        .with_state(page)
}

async fn show(State(page): State<Page>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.html.to_string(),
    )
        .into_response()
}

async fn download_ca(State(page): State<Page>) -> Response {
    match page.ca_der {
        // The type Windows hands to its certificate import on a download.
        Some(der) => (
            [
                (header::CONTENT_TYPE, "application/x-x509-ca-cert"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"msngate-ca.crt\"",
                ),
            ],
            der.to_vec(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "msngate serves no CA of its own here (http.tls names the operator's certificate, or is not set)\n",
        )
            .into_response(),
    }
}
