//! The 64-bit contact id (CID) of a WLM account and its wire forms
//! (wlm/vectors.md §5, address-book.md §3.2, login-sso.md §4.2).
//!
//! One value `V` per account, written two ways: the RST token response's
//! `credProperty Name="CID"` holds `V` as 16 hex digits (MSNPSharp parses it
//! as a hexadecimal number), the address book's `CID`/`OwnerCID` and the
//! `NOT` payload hold `V` as a signed decimal. Both are the same number, so
//! a client that compares them finds them equal (Escargot's two encodings
//! differ in byte order; this crate does not copy that).

use std::fmt;

/// A contact id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cid(pub u64);

impl Cid {
    /// The CID of an account identified by a UUID: its last 8 bytes,
    /// big-endian (for `3f2504e0-4f89-11d3-9a0c-0305e82c3301` that is
    /// `9a0c0305e82c3301`, the hex form Escargot derives too).
    pub fn from_uuid_bytes(uuid: &[u8; 16]) -> Cid {
        let [.., b8, b9, b10, b11, b12, b13, b14, b15] = *uuid;
        Cid(u64::from_be_bytes([b8, b9, b10, b11, b12, b13, b14, b15]))
    }

    /// The RST `credProperty CID` form: 16 lower-case hex digits.
    pub fn to_hex(self) -> String {
        format!("{:016x}", self.0)
    }

    /// The address-book form: the same bits as a signed 64-bit decimal.
    pub fn to_signed_decimal(self) -> String {
        i64::from_ne_bytes(self.0.to_ne_bytes()).to_string()
    }

    /// Parses the hex form (1–16 hex digits, either case).
    pub fn from_hex(text: &str) -> Option<Cid> {
        if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Cid)
    }

    /// Parses the signed decimal form.
    pub fn from_signed_decimal(text: &str) -> Option<Cid> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: i64 = text.parse().ok()?;
        Some(Cid(u64::from_ne_bytes(value.to_ne_bytes())))
    }

    /// `MemberIdHigh` / `MemberIdLow` of the profile message and the
    /// `0x<low>:0x<high>` pid of `NOT` payloads: the two 32-bit halves.
    /// Any stable pair works (login-sso.md §7); these are the CID's.
    pub fn member_id_high_low(self) -> (u32, u32) {
        let [h0, h1, h2, h3, l0, l1, l2, l3] = self.0.to_be_bytes();
        (
            u32::from_be_bytes([h0, h1, h2, h3]),
            u32::from_be_bytes([l0, l1, l2, l3]),
        )
    }
}

impl fmt::Display for Cid {
    /// The address-book (signed decimal) form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_signed_decimal())
    }
}
