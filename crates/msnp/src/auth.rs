//! Authentication hashes: the P2–P7 MD5 login (login.md §5) and the
//! `CHL`/`QRY` client challenges (notification.md §14).
//!
//! This crate has no random number generator: callers pass randomness in,
//! which keeps every function here deterministic and testable.

use crate::dialect::Dialect;
use md5::{Digest, Md5};

/// Lower-case hex MD5 of `data`.
pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// MD5 of `first ‖ second` as 16 raw bytes, without building the
/// concatenation.
fn md5_of_pair(first: &[u8], second: &[u8]) -> [u8; 16] {
    let mut hasher = Md5::new();
    hasher.update(first);
    hasher.update(second);
    hasher.finalize().into()
}

/// The hash a P2–P7 client sends in `USR trid MD5 S <hash>`:
/// lower-case hex of MD5(salt ‖ password).
pub fn md5_login_hash(salt: &str, password: &str) -> String {
    hex::encode(md5_of_pair(salt.as_bytes(), password.as_bytes()))
}

/// Which `QRY` answer algorithm a product id/key pair belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeScheme {
    /// MD5(challenge ‖ key), used by P6–P10 clients (notification.md §14.1).
    Md5,
    /// The "MSNP11 challenge" algorithm of P11+ clients (§14.2).
    Msnp11,
}

/// A client product id (as sent in `QRY`) with its secret key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Product {
    pub id: &'static str,
    pub key: &'static str,
    pub scheme: ChallengeScheme,
}

/// Shorthand for the table below.
const fn product(id: &'static str, key: &'static str, scheme: ChallengeScheme) -> Product {
    Product { id, key, scheme }
}

/// Every known product id/key pair (notification.md §14.1 and §14.2).
/// Clients answer with different ids, so a verifier must know them all.
pub const PRODUCTS: &[Product] = &[
    product(
        "msmsgs@msnmsgr.com",
        "Q1P7W2E4J9R8U3S5",
        ChallengeScheme::Md5,
    ),
    product("PROD0038W!61ZTF9", "VT6PX?UQTM4WM%YR", ChallengeScheme::Md5),
    product("PROD0058#7IL2{QD", "QHDCY@7R1TB6W?5B", ChallengeScheme::Md5),
    product("PROD0061VRRZH@4F", "JXQ6J@TUOGYV@N0M", ChallengeScheme::Md5),
    product("PROD00504RLUG%WL", "I2EBK%PYNLZL5_J4", ChallengeScheme::Md5),
    product("PROD0076ENE8*@AW", "CEQJ8}OE0!WTSWII", ChallengeScheme::Md5),
    product(
        "PROD0090YUAUV{2B",
        "YMM8C_H7KCQ2S_KL",
        ChallengeScheme::Msnp11,
    ),
    product(
        "PROD0101{0RM?UBW",
        "CFHUR$52U_{VIX5T",
        ChallengeScheme::Msnp11,
    ),
    product(
        "PROD01065C%ZFN6F",
        "O4BG@C7BWLYQX?5G",
        ChallengeScheme::Msnp11,
    ),
    product(
        "PROD0112J1LW7%NB",
        "RH96F{PHI8PPX_TJ",
        ChallengeScheme::Msnp11,
    ),
    product(
        "PROD0113H11T8$X_",
        "RG@XY*28Q5QHS%Q5",
        ChallengeScheme::Msnp11,
    ),
    product(
        "PROD0114ES4Z%Q5W",
        "PK}_A_0N_K%O?A9S",
        ChallengeScheme::Msnp11,
    ),
    product(
        "PROD0118R6%2WYOS",
        "YIXPX@5I2P0UT*LK",
        ChallengeScheme::Msnp11,
    ),
    product(
        "PROD0119GSJUC$18",
        "ILTXC!4IXB5FB*PX",
        ChallengeScheme::Msnp11,
    ),
    product(
        "PROD0120PW!CCV9@",
        "C1BX{V4W}Q3*10SM",
        ChallengeScheme::Msnp11,
    ),
];

/// Looks a product up by the id a client sent in `QRY` (exact match).
pub fn find_product(product_id: &str) -> Option<&'static Product> {
    PRODUCTS.iter().find(|product| product.id == product_id)
}

/// The product ids clients of a WLM dialect answer `CHL` with
/// (wlm/notification.md §9); empty below P13. A verifier accepts every
/// known id in every dialect ([`verify_qry`]): retro-prpl speaks P18 but
/// answers with the P15 id `PROD0119GSJUC$18`.
pub fn wlm_product_ids(dialect: Dialect) -> &'static [&'static str] {
    match dialect.number() {
        ..=12 => &[],
        13..=14 => &["PROD01065C%ZFN6F", "PROD0112J1LW7%NB"],
        15 => &[
            "PROD0113H11T8$X_",
            "PROD0114ES4Z%Q5W",
            "PROD0118R6%2WYOS",
            "PROD0119GSJUC$18",
        ],
        _ => &["PROD0120PW!CCV9@", "PROD0119GSJUC$18"],
    }
}

/// The product a test client speaking a WLM dialect answers with: the id
/// of the client that is confirmed by two sources for that dialect
/// (WLM 8.0, WLM 8.1, WLM 2009/MSNPSharp). `None` below P13.
pub fn wlm_client_product(dialect: Dialect) -> Option<&'static Product> {
    let id = match dialect.number() {
        ..=12 => return None,
        13..=14 => "PROD01065C%ZFN6F",
        15 => "PROD0113H11T8$X_",
        _ => "PROD0120PW!CCV9@",
    };
    find_product(id)
}

/// P6–P10 answer: lower-case hex MD5(challenge ‖ key).
pub fn challenge_md5(challenge: &str, key: &str) -> String {
    hex::encode(md5_of_pair(challenge.as_bytes(), key.as_bytes()))
}

/// Little-endian u32 from four bytes.
const fn le_word(bytes: [u8; 4]) -> u32 {
    u32::from_le_bytes(bytes)
}

/// The modulus of the MSNP11 algorithm, 2^31 − 1.
const MSNP11_MODULUS: u64 = 0x7FFF_FFFF;
/// The multiplier applied to each even input word.
const MSNP11_MULTIPLIER: u64 = 0x0E79_A9C1;

/// P11+ answer (notification.md §14.2, worked example in vectors.md §3.1).
///
/// The input `challenge ‖ product_id` is padded with ASCII `'0'` to a
/// multiple of 8 bytes (nothing is added when it already is one), and the
/// result is XOR-ed with the *unmasked* MD5 words: XOR-ing the masked words
/// is a known bug of one server and gives answers real clients never send.
pub fn challenge_msnp11(challenge: &str, product_id: &str, product_key: &str) -> String {
    let [
        d0,
        d1,
        d2,
        d3,
        d4,
        d5,
        d6,
        d7,
        d8,
        d9,
        d10,
        d11,
        d12,
        d13,
        d14,
        d15,
    ] = md5_of_pair(challenge.as_bytes(), product_key.as_bytes());
    let raw = [
        le_word([d0, d1, d2, d3]),
        le_word([d4, d5, d6, d7]),
        le_word([d8, d9, d10, d11]),
        le_word([d12, d13, d14, d15]),
    ];
    let [m0, m1, m2, m3] = raw.map(|word| u64::from(word) & MSNP11_MODULUS);

    let mut input = Vec::with_capacity(challenge.len() + product_id.len() + 8);
    input.extend_from_slice(challenge.as_bytes());
    input.extend_from_slice(product_id.as_bytes());
    let padding = (8 - input.len() % 8) % 8;
    input.resize(input.len() + padding, b'0');

    // All products stay below 2^64 (vectors.md §3.3); `low` only wraps
    // after about 2^32 pairs, and wrapping keeps that case panic-free.
    let (mut high, mut low) = (0u64, 0u64);
    for pair in input.chunks_exact(8) {
        let &[a0, a1, a2, a3, b0, b1, b2, b3] = pair else {
            continue;
        };
        let first = u64::from(le_word([a0, a1, a2, a3]));
        let second = u64::from(le_word([b0, b1, b2, b3]));
        let mut t = (first * MSNP11_MULTIPLIER) % MSNP11_MODULUS;
        t = (m0 * (t + high) + m1) % MSNP11_MODULUS;
        high = (second + t) % MSNP11_MODULUS;
        high = (m2 * high + m3) % MSNP11_MODULUS;
        low = low.wrapping_add(high).wrapping_add(t);
    }
    high = (high + m1) % MSNP11_MODULUS;
    low = low.wrapping_add(m3) % MSNP11_MODULUS;

    // Both values are below 2^31 after the final reduction.
    let high = high as u32;
    let low = low as u32;
    let answer = [raw[0] ^ high, raw[1] ^ low, raw[2] ^ high, raw[3] ^ low];
    let mut bytes = [0u8; 16];
    for (out, word) in bytes.chunks_exact_mut(4).zip(answer) {
        out.copy_from_slice(&word.to_le_bytes());
    }
    hex::encode(bytes)
}

/// Compares a client's hex answer with the expected lower-case hex
/// without an early exit, ignoring the case of the client's hex digits.
pub(crate) fn hex_answer_matches(answer: &[u8], expected: &str) -> bool {
    let expected = expected.as_bytes();
    if answer.len() != expected.len() {
        return false;
    }
    let difference = answer.iter().zip(expected).fold(0u8, |acc, (&got, &want)| {
        acc | (got.to_ascii_lowercase() ^ want)
    });
    difference == 0
}

/// Checks a `QRY` payload against the challenge that was sent.
///
/// The product id must be a known one. P6–P10 clients use the MD5 scheme
/// and P11+ clients the MSNP11 scheme, but real clients do not always match
/// their dialect, so an answer that matches *either* scheme for the key of
/// that product id is accepted. Hex case is ignored and surrounding ASCII
/// whitespace tolerated. Dialects below P6 have no challenges and are always
/// rejected. Both answers are always computed and compared without early
/// exit, so timing does not reveal which scheme or prefix matched.
pub fn verify_qry(challenge: &str, product_id: &str, answer: &[u8], dialect_num: u8) -> bool {
    if dialect_num < 6 {
        return false;
    }
    let Some(product) = find_product(product_id) else {
        return false;
    };
    let answer = answer.trim_ascii();
    let md5_ok = hex_answer_matches(answer, &challenge_md5(challenge, product.key));
    let msnp11_ok = hex_answer_matches(
        answer,
        &challenge_msnp11(challenge, product.id, product.key),
    );
    md5_ok | msnp11_ok
}

/// Number of decimal digits in a challenge, as the Microsoft service sent.
pub const CHALLENGE_DIGITS: usize = 20;

/// Builds a 20-digit decimal challenge from caller-supplied randomness.
///
/// The mapping is one-to-one: the first digit is `1 + random % 9` (never a
/// leading zero, like the service's challenges) and the other 19 digits are
/// `random / 9`, which is below 10^19.
pub fn new_challenge(random: u64) -> String {
    let first_digit = 1 + random % 9;
    let rest = random / 9;
    format!("{first_digit}{rest:019}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_ids_are_unique() {
        for (index, product) in PRODUCTS.iter().enumerate() {
            assert!(
                PRODUCTS.iter().skip(index + 1).all(|p| p.id != product.id),
                "duplicate {}",
                product.id
            );
        }
    }

    #[test]
    fn challenge_is_twenty_digits() {
        for random in [0, 1, 8, 9, u64::MAX, u64::MAX - 1, 1 << 63] {
            let challenge = new_challenge(random);
            assert_eq!(challenge.len(), CHALLENGE_DIGITS, "{challenge}");
            assert!(challenge.bytes().all(|b| b.is_ascii_digit()));
            assert_ne!(challenge.as_bytes()[0], b'0');
        }
        assert_ne!(new_challenge(0), new_challenge(1));
        assert_ne!(new_challenge(9), new_challenge(18));
    }

    #[test]
    fn hex_compare_ignores_case_only() {
        assert!(hex_answer_matches(b"ABCDEF", "abcdef"));
        assert!(!hex_answer_matches(b"abcde", "abcdef"));
        assert!(!hex_answer_matches(b"abcdeg", "abcdef"));
    }
}
