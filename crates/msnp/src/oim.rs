//! Offline messages (P13+): the lock key of the `oim.asmx` `Store2`
//! request (wlm/oim.md §1).
//!
//! The first `Store2` of a client carries an empty `lockkey`; the server
//! refuses it with a `q0:AuthenticationFailed` fault holding a
//! `LockKeyChallenge`, and the client resends with the answer to that
//! challenge computed by the MSNP11 `QRY` function for the product id in
//! its `Ticket appid`.

use crate::auth::{self, find_product};

/// The lock key a client with product `product_id` computes for
/// `challenge`; `None` for a product id this crate does not know.
pub fn lock_key(challenge: &str, product_id: &str) -> Option<String> {
    let product = find_product(product_id)?;
    Some(auth::challenge_msnp11(challenge, product.id, product.key))
}

/// Checks the `lockkey` of a `Store2` against the challenge the server
/// sent: the `appid` must be a known product, the key its MSNP11 answer
/// (hex case ignored, surrounding whitespace tolerated, compared without
/// early exit).
pub fn verify_lock_key(challenge: &str, product_id: &str, lockkey: &str) -> bool {
    match lock_key(challenge, product_id) {
        Some(expected) => auth::hex_answer_matches(lockkey.trim_ascii().as_bytes(), &expected),
        None => false,
    }
}
