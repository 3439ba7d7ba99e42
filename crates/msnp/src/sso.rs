//! MSNP15+ single sign-on: the MBI key response a client sends in
//! `USR trid SSO S <ticket> <response> [{machine-guid}]` (wlm/login-sso.md §5).
//!
//! The server issued a 24-byte proof key (`BinarySecret` of the
//! `messengerclear.live.com` token, base64) from its RST token service and
//! then sent a nonce in `USR trid SSO S MBI_KEY_OLD <nonce>`. The client
//! proves it holds the proof key by returning a blob holding an HMAC-SHA1
//! of the nonce and a 3DES-CBC encryption of it, under two keys derived from
//! the proof key. [`verify_mbi_response`] is the server's check,
//! [`mbi_response`] what a client (or the test client) computes.
//!
//! The primitives come from the RustCrypto crates (`hmac` + `sha1`, `des` +
//! `cbc`); this module only arranges them as the protocol says. Like the
//! rest of the crate it takes randomness (the IV, the nonce bytes) from the
//! caller.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;
type TripleDesCbc = cbc::Encryptor<des::TdesEde3>;

/// Label of the key that signs the nonce (prefix and label as one string,
/// which is what both halves appended one after the other amount to).
pub const HASH_KEY_LABEL: &str = "WS-SecureConversationSESSION KEY HASH";
/// Label of the key that encrypts the nonce.
pub const ENCRYPTION_KEY_LABEL: &str = "WS-SecureConversationSESSION KEY ENCRYPTION";

/// Size of the blob header: seven little-endian u32.
pub const HEADER_LEN: usize = 28;
/// 3DES block size, and so the IV length.
pub const IV_LEN: usize = 8;
/// HMAC-SHA1 output length.
pub const HASH_LEN: usize = 20;
/// Header fields 0–5: header size, CBC mode (1), `CALG_3DES`, `CALG_SHA1`,
/// IV length, hash length. Field 6 is the ciphertext length.
const HEADER_FIXED: [u32; 6] = [
    HEADER_LEN as u32,
    1,
    0x6603,
    0x8004,
    IV_LEN as u32,
    HASH_LEN as u32,
];

/// Random bytes in a nonce. Its base64 form is exactly 64 characters, the
/// only length retro-prpl handles (it assumes a 72-byte ciphertext).
pub const NONCE_RANDOM_BYTES: usize = 48;
/// Length of the nonce string sent in `USR … SSO S MBI_KEY_OLD <nonce>`.
pub const NONCE_LEN: usize = 64;
/// The policy string sent before the nonce.
pub const MBI_POLICY: &str = "MBI_KEY_OLD";

/// Longest response (base64 characters) looked at: the real one is 172
/// characters; anything far longer is refused before decoding.
pub const MAX_RESPONSE_LEN: usize = 1024;

/// Why an MBI response was refused. The server answers every one with
/// `911 trid` and closes; the variant is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MbiError {
    #[error("the session key is not non-empty base64")]
    BadSessionKey,
    #[error("the response is not base64")]
    NotBase64,
    #[error("the response is longer than {MAX_RESPONSE_LEN} characters")]
    ResponseTooLong,
    #[error("the response blob has {len} bytes, less than a header")]
    TooShort { len: usize },
    #[error("the response header is not (28, CBC, 3DES, SHA-1, 8, 20)")]
    BadHeader,
    #[error("the response blob has {actual} bytes, its header says {declared}")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("the nonce hash does not match")]
    HashMismatch,
    #[error("the nonce ciphertext does not match")]
    CipherMismatch,
}

/// A fresh nonce for `USR … SSO S`: base64 of 48 caller-supplied random
/// bytes, 64 characters.
pub fn new_nonce(random: &[u8; NONCE_RANDOM_BYTES]) -> String {
    BASE64.encode(random)
}

/// HMAC-SHA1 of the concatenation of `parts` under `key`.
fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; HASH_LEN] {
    // HMAC takes keys of any length, so this constructor cannot fail; the
    // fallback keeps the function total without a panic path.
    let mut mac = match HmacSha1::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => HmacSha1::new(&Default::default()),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The key derivation of login-sso.md §5: 24 bytes from the proof key and
/// a label (`h2 ‖ h4[0..4]`).
pub fn derive_key(secret: &[u8], label: &str) -> [u8; 24] {
    let label = label.as_bytes();
    let h1 = hmac_sha1(secret, &[label]);
    let h2 = hmac_sha1(secret, &[&h1, label]);
    let h3 = hmac_sha1(secret, &[&h1]);
    let h4 = hmac_sha1(secret, &[&h3, label]);
    let mut key = [0u8; 24];
    key[..HASH_LEN].copy_from_slice(&h2);
    key[HASH_LEN..].copy_from_slice(&h4[..4]);
    key
}

/// The two keys derived from one proof key.
struct DerivedKeys {
    hash: [u8; 24],
    encryption: [u8; 24],
}

impl DerivedKeys {
    fn from_session_key(session_key_base64: &str) -> Result<DerivedKeys, MbiError> {
        let secret = BASE64
            .decode(session_key_base64.trim_ascii())
            .map_err(|_| MbiError::BadSessionKey)?;
        if secret.is_empty() {
            return Err(MbiError::BadSessionKey);
        }
        Ok(DerivedKeys {
            hash: derive_key(&secret, HASH_KEY_LABEL),
            encryption: derive_key(&secret, ENCRYPTION_KEY_LABEL),
        })
    }

    /// 3DES-EDE3-CBC of the nonce with PKCS#7 padding: for the 64-byte
    /// nonce that is the eight `0x08` bytes the clients append.
    fn encrypt(&self, iv: &[u8; IV_LEN], nonce: &[u8]) -> Vec<u8> {
        TripleDesCbc::new(&self.encryption.into(), &(*iv).into()).encrypt_padded_vec::<Pkcs7>(nonce)
    }
}

/// The binary blob of an MBI response (before base64).
fn response_blob(keys: &DerivedKeys, nonce: &[u8], iv: &[u8; IV_LEN]) -> Vec<u8> {
    let hash = hmac_sha1(&keys.hash, &[nonce]);
    let cipher = keys.encrypt(iv, nonce);
    let mut blob = Vec::with_capacity(HEADER_LEN + IV_LEN + HASH_LEN + cipher.len());
    for field in HEADER_FIXED {
        blob.extend_from_slice(&field.to_le_bytes());
    }
    // The ciphertext is the nonce plus at most one block, far below 2^32
    // for any nonce a line can carry; saturate rather than wrap otherwise.
    let cipher_len = u32::try_from(cipher.len()).unwrap_or(u32::MAX);
    blob.extend_from_slice(&cipher_len.to_le_bytes());
    blob.extend_from_slice(iv);
    blob.extend_from_slice(&hash);
    blob.extend_from_slice(&cipher);
    blob
}

/// What a client sends as field 5 of `USR trid SSO S`: the base64 MBI
/// response to `nonce` (the string exactly as the server sent it) under the
/// base64 session key, with the caller's random `iv`.
pub fn mbi_response(
    session_key_base64: &str,
    nonce: &str,
    iv: [u8; IV_LEN],
) -> Result<String, MbiError> {
    let keys = DerivedKeys::from_session_key(session_key_base64)?;
    Ok(BASE64.encode(response_blob(&keys, nonce.as_bytes(), &iv)))
}

fn le_u32(bytes: &[u8], index: usize) -> Option<u32> {
    let start = index.checked_mul(4)?;
    let word: [u8; 4] = bytes.get(start..start.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(word))
}

/// The server's check of a client's MBI response (login-sso.md §5):
/// `session_key_base64` is the proof key the server issued in the RST
/// response, `nonce` the string it sent in `USR … SSO S`, `response` the
/// client's base64 blob.
///
/// The header must be the fixed one and the blob exactly as long as it
/// declares; the hash and the ciphertext are recomputed with the blob's own
/// IV and compared in constant time.
pub fn verify_mbi_response(
    session_key_base64: &str,
    nonce: &str,
    response: &str,
) -> Result<(), MbiError> {
    let keys = DerivedKeys::from_session_key(session_key_base64)?;
    if response.len() > MAX_RESPONSE_LEN {
        return Err(MbiError::ResponseTooLong);
    }
    let blob = BASE64
        .decode(response.trim_ascii())
        .map_err(|_| MbiError::NotBase64)?;
    if blob.len() < HEADER_LEN {
        return Err(MbiError::TooShort { len: blob.len() });
    }
    let header_ok = HEADER_FIXED
        .iter()
        .enumerate()
        .all(|(index, &want)| le_u32(&blob, index) == Some(want));
    if !header_ok {
        return Err(MbiError::BadHeader);
    }
    let declared = le_u32(&blob, 6)
        .and_then(|cipher_len| usize::try_from(cipher_len).ok())
        .and_then(|cipher_len| cipher_len.checked_add(HEADER_LEN + IV_LEN + HASH_LEN))
        .ok_or(MbiError::BadHeader)?;
    if declared != blob.len() {
        return Err(MbiError::LengthMismatch {
            declared,
            actual: blob.len(),
        });
    }
    let (iv, rest) = blob[HEADER_LEN..].split_at(IV_LEN);
    let (hash, cipher) = rest.split_at(HASH_LEN);
    let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| MbiError::BadHeader)?;

    let mut mac = match HmacSha1::new_from_slice(&keys.hash) {
        Ok(mac) => mac,
        Err(_) => return Err(MbiError::HashMismatch),
    };
    mac.update(nonce.as_bytes());
    // `verify_slice` compares in constant time.
    let hash_ok = mac.verify_slice(hash).is_ok();
    let expected_cipher = keys.encrypt(&iv, nonce.as_bytes());
    let cipher_ok = bool::from(expected_cipher.as_slice().ct_eq(cipher));
    match (hash_ok, cipher_ok) {
        (true, true) => Ok(()),
        (false, _) => Err(MbiError::HashMismatch),
        (true, false) => Err(MbiError::CipherMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// vectors.md §1: the proof key is bytes 0x01..=0x18.
    const SECRET: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY";
    const NONCE: &str = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKT";

    #[test]
    fn derived_keys_match_the_intermediate_vectors() {
        let secret: Vec<u8> = (1..=24).collect();
        assert_eq!(BASE64.encode(&secret), SECRET);
        assert_eq!(
            hex::encode(derive_key(&secret, HASH_KEY_LABEL)),
            "faab032d0b0b0e5c3b236294ac9070e62b429cc75f630d8f"
        );
        assert_eq!(
            hex::encode(derive_key(&secret, ENCRYPTION_KEY_LABEL)),
            "6a09297162f557689b17565a605833abcd9be06386559ffa"
        );
        let keys = DerivedKeys::from_session_key(SECRET).unwrap();
        assert_eq!(
            hex::encode(hmac_sha1(&keys.hash, &[NONCE.as_bytes()])),
            "432d443a21be40b7fb571708a150b1e53009b86d"
        );
        assert_eq!(
            hex::encode(keys.encrypt(&[1, 2, 3, 4, 5, 6, 7, 8], NONCE.as_bytes())),
            "0b1e87e4ded1d4c11200592a6b042984bd1038176b1eed649bf77a72eda914855e71cecf\
             b2afe96bcca30addbbef7b3f377e09d47973caa1c8cdffb9c3a7f58abf47fdfd44ef23d0"
        );
        let blob = response_blob(&keys, NONCE.as_bytes(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            hex::encode(&blob[..HEADER_LEN]),
            concat!(
                "1c000000", "01000000", "03660000", "04800000", "08000000", "14000000", "48000000"
            )
        );
        assert_eq!(blob.len(), 128);
    }

    #[test]
    fn nonce_is_sixty_four_characters() {
        let nonce = new_nonce(&[0xA5; NONCE_RANDOM_BYTES]);
        assert_eq!(nonce.len(), NONCE_LEN);
        let from_vector: Vec<u8> = (0x64..=0x93).collect();
        assert_eq!(new_nonce(&from_vector.try_into().unwrap()), NONCE);
    }

    #[test]
    fn refuses_malformed_inputs_without_panicking() {
        assert_eq!(
            verify_mbi_response("", NONCE, "AAAA"),
            Err(MbiError::BadSessionKey)
        );
        assert_eq!(
            verify_mbi_response("not base64!", NONCE, "AAAA"),
            Err(MbiError::BadSessionKey)
        );
        assert_eq!(
            verify_mbi_response(SECRET, NONCE, "%%%"),
            Err(MbiError::NotBase64)
        );
        assert_eq!(
            verify_mbi_response(SECRET, NONCE, "AAAA"),
            Err(MbiError::TooShort { len: 3 })
        );
        assert_eq!(
            verify_mbi_response(SECRET, NONCE, &"A".repeat(MAX_RESPONSE_LEN + 4)),
            Err(MbiError::ResponseTooLong)
        );
        // A header declaring a ciphertext of 2^32-1 bytes.
        let mut blob = Vec::new();
        for field in HEADER_FIXED {
            blob.extend_from_slice(&field.to_le_bytes());
        }
        blob.extend_from_slice(&u32::MAX.to_le_bytes());
        blob.extend_from_slice(&[0; 28]);
        assert!(matches!(
            verify_mbi_response(SECRET, NONCE, &BASE64.encode(&blob)),
            Err(MbiError::LengthMismatch { .. })
        ));
    }
}
