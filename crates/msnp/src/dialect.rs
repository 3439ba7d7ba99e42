//! Protocol dialects MSNP2–MSNP12 and what each one changes.
//!
//! Every dialect difference the server needs is a named predicate here, so
//! the server never compares raw version numbers.

use std::fmt;

/// A negotiated protocol dialect, `MSNP2` ..= `MSNP12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dialect(u8);

impl Dialect {
    pub const MIN: Dialect = Dialect(2);
    pub const MAX: Dialect = Dialect(12);

    pub const fn new(number: u8) -> Option<Dialect> {
        if number >= Self::MIN.0 && number <= Self::MAX.0 {
            Some(Dialect(number))
        } else {
            None
        }
    }

    pub const fn number(self) -> u8 {
        self.0
    }

    /// Parses a dialect name as offered in `VER` (`MSNP8`, case-insensitive).
    /// Returns `None` for `CVR0` and for dialects this server does not speak.
    pub fn parse(name: &str) -> Option<Dialect> {
        let bytes = name.as_bytes();
        if bytes.len() < 5 || !bytes[..4].eq_ignore_ascii_case(b"MSNP") {
            return None;
        }
        let number: u8 = name.get(4..)?.parse().ok()?;
        Dialect::new(number)
    }

    /// Chooses the highest dialect both sides speak, as `VER` requires.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Dialect> {
        offered.into_iter().filter_map(Dialect::parse).max()
    }

    /// P2–P7 sign in with `INF` + `USR MD5`; P8+ with `CVR` + `USR TWN`.
    pub fn uses_md5_login(self) -> bool {
        self.0 <= 7
    }
    /// P4+: `CVR` carries a client id; irrelevant to the server except for parsing.
    /// P5+: phone numbers (`PRP`/`BPR`) and `SDC` instead of `SND`.
    pub fn has_phone_properties(self) -> bool {
        self.0 >= 5
    }
    /// P6+: `USR OK` carries the "verified" flag and clients answer `CHL`.
    pub fn has_verified_flag(self) -> bool {
        self.0 >= 6
    }
    pub fn has_challenges(self) -> bool {
        self.0 >= 6
    }
    /// P7+: contact groups (`LSG`, `ADG`, `RMG`, `REG`); `XFR NS` gains a 5th field.
    pub fn has_groups(self) -> bool {
        self.0 >= 7
    }
    /// P8+: client capabilities in `CHG`/`ILN`/`NLN`, one-`LST`-per-contact `SYN`.
    pub fn has_capabilities(self) -> bool {
        self.0 >= 8
    }
    /// P9+: MSN objects in presence, `QNG <seconds>`, MSG mode `D`.
    pub fn has_msn_objects(self) -> bool {
        self.0 >= 9
    }
    /// P10+: contact and group GUIDs, `ADC`, `PRP MFN`, `SBP`, timestamped `SYN`,
    /// and no friendly name in `USR OK`.
    pub fn uses_guids(self) -> bool {
        self.0 >= 10
    }
    /// P11+: personal messages (`UUX`/`UBX`), `GCF`, `SBS`, the MSNP11 challenge.
    pub fn has_personal_message(self) -> bool {
        self.0 >= 11
    }
    /// P12+: network id in `LST`, capabilities in `IRO`/`JOI`.
    pub fn has_network_ids(self) -> bool {
        self.0 >= 12
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MSNP{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_case_insensitively() {
        assert_eq!(Dialect::parse("MSNP8"), Dialect::new(8));
        assert_eq!(Dialect::parse("msnp12"), Dialect::new(12));
        assert_eq!(Dialect::parse("CVR0"), None);
        assert_eq!(Dialect::parse("MSNP13"), None);
        assert_eq!(Dialect::parse("MSNP1"), None);
        assert_eq!(Dialect::parse("MSNP"), None);
        assert_eq!(Dialect::parse("MSNPx"), None);
    }

    #[test]
    fn negotiates_highest_common() {
        let offered = ["MSNP15", "MSNP9", "MSNP11", "CVR0"];
        assert_eq!(Dialect::negotiate(offered), Dialect::new(11));
        assert_eq!(Dialect::negotiate(["MSNP18", "CVR0"]), None);
        assert_eq!(Dialect::negotiate(["MSNP2"]), Dialect::new(2));
    }

    #[test]
    fn display_round_trips() {
        for n in 2..=12 {
            let d = Dialect::new(n).unwrap();
            assert_eq!(Dialect::parse(&d.to_string()), Some(d));
        }
    }
}
