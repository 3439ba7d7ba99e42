//! The nexus, `/rdr/pprdr.asp`: where the Passport 1.4 login lives.

use super::header_case::with_header_case;
use super::{Client, Passport, empty, header_value};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use std::sync::Arc;
use tracing::debug;

pub(super) async fn handler(
    State(passport): State<Arc<Passport>>,
    request: Request,
) -> Response<Body> {
    debug!(peer = %Client::of(&request, "pprdr.asp").peer, "nexus request");
    let mut response = empty(StatusCode::OK);
    response.headers_mut().insert(
        HeaderName::from_static("passporturls"),
        passport.nexus.clone(),
    );
    with_header_case(response).await
}

/// The `PassportURLs` value for a server whose public URL is `base`
/// (sanitised): `DALogin` is `base` without its scheme, plus `/login2.srf`.
pub(super) fn passport_urls(base: &str) -> HeaderValue {
    let login_host = base.split_once("://").map_or(base, |(_, rest)| rest);
    header_value(
        format!(
            "DARealm=Passport.Net,DALogin={login_host}/login2.srf,DAReg={base}/reg,Properties={base}/properties,\
             Privacy={base}/privacy,GeneralRedir={base}/redir,Help={base}/help,ConfigVersion=15"
        ),
        "DARealm=Passport.Net,DALogin=localhost/login2.srf,ConfigVersion=15",
    )
}
