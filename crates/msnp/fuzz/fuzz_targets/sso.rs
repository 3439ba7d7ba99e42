//! Fuzzes the MBI key response check (`msnp::sso::verify_mbi_response`)
//! and the CID parsers.
//!
//! Input layout: byte 0 splits the rest into a session key and a response
//! (both as text, invalid UTF-8 replaced).
//!
//! Checked besides "never panics": arbitrary responses are refused (a
//! forgery would need the HMAC of the fixed nonce under the fixed key),
//! and a response computed for the fuzzed key and nonce is accepted (or
//! refused as too long, for nonces far longer than the real 64 characters).

#![no_main]

use libfuzzer_sys::fuzz_target;
use msnp::cid::Cid;
use msnp::sso;

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY";
const NONCE: &str = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKT";

fuzz_target!(|data: &[u8]| {
    let [split, rest @ ..] = data else {
        return;
    };
    let at = usize::from(*split).min(rest.len());
    let (key, response) = rest.split_at(at);
    let key = String::from_utf8_lossy(key);
    let response = String::from_utf8_lossy(response);

    assert!(sso::verify_mbi_response(KEY, NONCE, &response).is_err());
    let _ = sso::verify_mbi_response(&key, &response, &response);
    if let Ok(computed) = sso::mbi_response(&key, &response, [7; 8]) {
        // The verifier refuses responses over MAX_RESPONSE_LEN characters
        // (a real one has 172; long fuzzed nonces make longer ones).
        let expected = if computed.len() <= sso::MAX_RESPONSE_LEN {
            Ok(())
        } else {
            Err(sso::MbiError::ResponseTooLong)
        };
        assert_eq!(sso::verify_mbi_response(&key, &response, &computed), expected);
    }

    if let Some(cid) = Cid::from_hex(&response) {
        assert_eq!(Cid::from_hex(&cid.to_hex()), Some(cid));
    }
    if let Some(cid) = Cid::from_signed_decimal(&response) {
        assert_eq!(Cid::from_signed_decimal(&cid.to_signed_decimal()), Some(cid));
    }
});
