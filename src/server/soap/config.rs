//! The client configuration, `/Config/MsgrConfig.asmx` (storage-config.md
//! §2): WLM 8.x/2009 fetch it with `GET` (or `POST`) and a `ver` query;
//! MSN 7.x `POST` a SOAP `GetClientConfig`. Without an answer WLM keeps
//! retrying, so everyone gets the smallest configuration: nothing expires
//! later than now, no tabs, no extra services. No ticket is needed.

use super::xml;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Response, StatusCode};

/// The configuration document itself.
const MSGR_CONFIG: &str =
    "<MsgrConfig><Simple><Config><ExpiresInDays>0</ExpiresInDays></Config></Simple></MsgrConfig>";

/// Largest body read to tell a SOAP request from a plain fetch.
const MAX_CONFIG_BODY: usize = 16 * 1024;

pub(super) async fn handler(request: Request) -> Response<Body> {
    let body = axum::body::to_bytes(request.into_body(), MAX_CONFIG_BODY)
        .await
        .unwrap_or_default();
    let soap = String::from_utf8_lossy(&body).contains("GetClientConfig");
    let document = if soap {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><soap:Body>\
             <GetClientConfigResponse xmlns=\"http://www.msn.com/webservices/Messenger/Client\"><GetClientConfigResult>\
             <![CDATA[{MSGR_CONFIG}]]></GetClientConfigResult></GetClientConfigResponse></soap:Body></soap:Envelope>"
        )
    } else {
        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>{MSGR_CONFIG}")
    };
    xml(StatusCode::OK, document)
}
