//! The nexus, `/rdr/pprdr.asp`: where the Passport 1.4 login lives.

use super::header_case::with_header_case;
use super::{Passport, empty, peer};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Response, StatusCode};
use std::sync::Arc;
use tracing::debug;

pub(super) async fn handler(
    State(passport): State<Arc<Passport>>,
    request: Request,
) -> Response<Body> {
    debug!(peer = %peer(&request), "nexus request");
    let mut response = empty(StatusCode::OK);
    response.headers_mut().insert(
        HeaderName::from_static("passporturls"),
        passport.nexus.clone(),
    );
    with_header_case(response).await
}
