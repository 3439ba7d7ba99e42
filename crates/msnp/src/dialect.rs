//! Protocol dialects MSNP2–MSNP18 and what each one changes.
//!
//! Every dialect difference the server needs is a named predicate here, so
//! the server never compares raw version numbers.
//!
//! [`Dialect::parse`] and [`Dialect::negotiate`] keep offering only the
//! classic dialects MSNP2–MSNP12, so a server that has not been taught the
//! Windows Live Messenger dialects never agrees to one by accident. A server
//! that speaks them negotiates with [`Dialect::negotiate_up_to`] and
//! [`Dialect::MSNP18`] (or a lower, configured ceiling).

use std::fmt;

/// A protocol dialect, `MSNP2` ..= `MSNP18`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dialect(u8);

impl Dialect {
    pub const MIN: Dialect = Dialect(2);
    /// The highest classic (MSN Messenger) dialect, and the ceiling of
    /// [`Dialect::parse`] / [`Dialect::negotiate`].
    pub const MAX: Dialect = Dialect(12);
    /// MSN Messenger 7.5.
    pub const MSNP12: Dialect = Dialect(12);
    /// Windows Live Messenger 8.0 (SOAP address book, `ADL`).
    pub const MSNP13: Dialect = Dialect(13);
    /// Windows Live Messenger 8.0 with network ids and `FQY`.
    pub const MSNP14: Dialect = Dialect(14);
    /// Windows Live Messenger 8.1/8.5 (`USR SSO`).
    pub const MSNP15: Dialect = Dialect(15);
    /// Windows Live Messenger 2009 betas (machine GUIDs, MPOP).
    pub const MSNP16: Dialect = Dialect(16);
    /// Treated exactly like MSNP16; no known client speaks it.
    pub const MSNP17: Dialect = Dialect(17);
    /// Windows Live Messenger 2009 (14.0), retro-prpl, MSNPSharp.
    pub const MSNP18: Dialect = Dialect(18);
    /// The highest dialect this crate knows.
    pub const LATEST: Dialect = Dialect::MSNP18;

    /// The dialect with that number, MSNP2 ..= MSNP18.
    pub const fn new(number: u8) -> Option<Dialect> {
        if number >= Self::MIN.0 && number <= Self::LATEST.0 {
            Some(Dialect(number))
        } else {
            None
        }
    }

    pub const fn number(self) -> u8 {
        self.0
    }

    /// Parses a classic dialect name as offered in `VER` (`MSNP8`,
    /// case-insensitive). Returns `None` for `CVR0` and for dialects above
    /// [`Dialect::MAX`]; [`Dialect::parse_any`] also knows MSNP13–MSNP18.
    pub fn parse(name: &str) -> Option<Dialect> {
        Dialect::parse_any(name).filter(|dialect| *dialect <= Dialect::MAX)
    }

    /// Parses any known dialect name, MSNP2 ..= MSNP18 (case-insensitive).
    pub fn parse_any(name: &str) -> Option<Dialect> {
        let bytes = name.as_bytes();
        if bytes.len() < 5 || !bytes[..4].eq_ignore_ascii_case(b"MSNP") {
            return None;
        }
        let number: u8 = name.get(4..)?.parse().ok()?;
        Dialect::new(number)
    }

    /// Chooses the highest classic dialect (≤ MSNP12) both sides speak, as
    /// `VER` requires.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Dialect> {
        Dialect::negotiate_up_to(offered, Dialect::MAX)
    }

    /// Chooses the highest offered dialect not above `highest`: a server
    /// that speaks the WLM dialects passes [`Dialect::MSNP18`], an operator
    /// who wants to hold clients at an older dialect passes that one.
    pub fn negotiate_up_to<'a>(
        offered: impl IntoIterator<Item = &'a str>,
        highest: Dialect,
    ) -> Option<Dialect> {
        offered
            .into_iter()
            .filter_map(Dialect::parse_any)
            .filter(|dialect| *dialect <= highest)
            .max()
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

    // ---- Windows Live Messenger dialects (wlm/README.md dialect matrix) ----

    /// P13+: the contact list lives in the SOAP address book (ABCH and
    /// Sharing services); the client subscribes with `ADL`/`RML`.
    pub fn has_soap_address_book(self) -> bool {
        self.0 >= 13
    }
    /// P2–P12 only: the server-side list commands in
    /// [`LEGACY_LIST_COMMANDS`]. From P13 a client sending one is closed.
    pub fn has_legacy_list_commands(self) -> bool {
        self.0 <= 12
    }
    /// How the client proves its password and which token it presents.
    pub fn login_method(self) -> LoginMethod {
        match self.0 {
            ..=7 => LoginMethod::Md5,
            8..=12 => LoginMethod::Tweener,
            13..=14 => LoginMethod::TweenerSoap,
            _ => LoginMethod::Sso,
        }
    }
    /// P13+: tickets come from the `RST.srf`/`RST2.srf` SOAP token service,
    /// not from the Passport 1.4 nexus.
    pub fn uses_rst_token_service(self) -> bool {
        self.0 >= 13
    }
    /// P15+: `USR SSO` with the MBI key response instead of `USR TWN`.
    pub fn uses_sso_login(self) -> bool {
        self.0 >= 15
    }
    /// P16+: the client must send the MBI blob. P15 clients do too, but
    /// patched P15 clients may omit it (login-sso.md §3).
    pub fn requires_mbi_response(self) -> bool {
        self.0 >= 16
    }
    /// P13+: an unsolicited `GCF 0 <len>` policy document precedes the
    /// `USR … S` reply.
    pub fn sends_gcf_policy(self) -> bool {
        self.0 >= 13
    }
    /// P16+: the machine GUID in `USR SSO S`, multiple points of presence
    /// (several endpoints per account), `email;{guid}` handles on the
    /// switchboard and `EndpointData` in `UBX`.
    pub fn has_mpop(self) -> bool {
        self.0 >= 16
    }
    /// P16+: capabilities are `caps:extcaps` in `CHG`, `ILN`/`NLN`, `IRO`/`JOI`.
    pub fn has_extended_caps(self) -> bool {
        self.0 >= 16
    }
    /// P18: circles (`USR SHA`, `PUT`/`NFY`/`SDG`/`DEL`) and scenes/colour
    /// schemes in `UUX`/`UBX`.
    pub fn has_circles(self) -> bool {
        self.0 >= 18
    }
    /// P13+: `UUN`/`UBN` notifications relayed between endpoints.
    pub fn has_unified_notifications(self) -> bool {
        self.0 >= 13
    }
    /// P14+: `FQY` network queries.
    pub fn has_fqy(self) -> bool {
        self.0 >= 14
    }
    /// P14+: `UUM`/`UBM` messages to and from other networks (Yahoo).
    pub fn has_federated_messages(self) -> bool {
        self.0 >= 14
    }
    /// P18: `UUM` with network 1 carries an offline message to a WLM user
    /// over the notification connection (client-quirks.md, seen on the wire).
    pub fn has_ns_offline_messages(self) -> bool {
        self.0 >= 18
    }
    /// Up to P17 the initial presence burst is `ILN trid …`; P18 sends
    /// `NLN` lines only (MSNPSharp has no `ILN` handler).
    pub fn has_initial_presence_iln(self) -> bool {
        self.0 <= 17
    }
    /// How `ILN`/`NLN`/`FLN`/`UBX` name a contact (notification.md §4, §6).
    pub fn presence_handle_form(self) -> PresenceHandleForm {
        match self.0 {
            ..=13 => PresenceHandleForm::Plain,
            14..=17 => PresenceHandleForm::NetworkField,
            _ => PresenceHandleForm::NetworkPrefix,
        }
    }
    /// The handle field(s) of a presence line in this dialect:
    /// `bob@example.com`, `bob@example.com 1` or `1:bob@example.com`.
    pub fn presence_handle(self, email: &str, network: u32) -> String {
        match self.presence_handle_form() {
            PresenceHandleForm::Plain => email.to_owned(),
            PresenceHandleForm::NetworkField => format!("{email} {network}"),
            PresenceHandleForm::NetworkPrefix => format!("{network}:{email}"),
        }
    }
    /// The capabilities field: `caps` before P16, `caps:extcaps` from P16.
    pub fn capabilities_field(self, caps: u32, extcaps: u32) -> String {
        if self.has_extended_caps() {
            format!("{caps}:{extcaps}")
        } else {
            caps.to_string()
        }
    }
    /// The client family that negotiates this dialect, for logs.
    pub fn client_family(self) -> &'static str {
        match self.0 {
            ..=2 => "MSN Messenger 1.0",
            3..=4 => "MSN Messenger 2.x–3.x",
            5..=6 => "MSN Messenger 3.x–4.x",
            7 => "MSN Messenger 4.5–4.7",
            8 => "MSN Messenger 5.0",
            9 => "MSN Messenger 6.x",
            10 => "MSN Messenger 6.1–7.0",
            11 => "MSN Messenger 7.0",
            12 => "MSN Messenger 7.5",
            13..=14 => "Windows Live Messenger 8.0",
            15 => "Windows Live Messenger 8.1–8.5",
            16..=17 => "Windows Live Messenger 2009 beta",
            _ => "Windows Live Messenger 2009",
        }
    }
}

/// Commands P13 removed: a P13+ client sending one is closed
/// (wlm/notification.md, first paragraph).
pub const LEGACY_LIST_COMMANDS: &[&str] = &[
    "SYN", "ADC", "REM", "ADG", "RMG", "REG", "GTC", "SBP", "REA",
];

/// The sign-in exchange of a dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginMethod {
    /// P2–P7: `INF` + `USR MD5`.
    Md5,
    /// P8–P12: `USR TWN` with a Passport 1.4 ticket.
    Tweener,
    /// P13–P14: `USR TWN` with a ticket from the RST SOAP token service.
    TweenerSoap,
    /// P15+: `USR SSO` with the MBI key response.
    Sso,
}

/// How presence lines write a contact's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceHandleForm {
    /// P2–P13: `bob@example.com`.
    Plain,
    /// P14–P17: `bob@example.com 1` (the network id is its own field).
    NetworkField,
    /// P18: `1:bob@example.com`.
    NetworkPrefix,
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
    fn knows_wlm_dialects_without_negotiating_them_by_default() {
        assert_eq!(Dialect::parse_any("MSNP18"), Some(Dialect::MSNP18));
        assert_eq!(Dialect::parse_any("msnp13"), Some(Dialect::MSNP13));
        assert_eq!(Dialect::parse_any("MSNP19"), None);
        assert_eq!(Dialect::parse_any("MSNP8"), Dialect::new(8));
        assert_eq!(Dialect::parse("MSNP18"), None);
        let offered = ["MSNP18", "MSNP15", "MSNP12", "CVR0"];
        assert_eq!(Dialect::negotiate(offered), Some(Dialect::MSNP12));
        assert_eq!(
            Dialect::negotiate_up_to(offered, Dialect::LATEST),
            Some(Dialect::MSNP18)
        );
        assert_eq!(
            Dialect::negotiate_up_to(offered, Dialect::MSNP16),
            Some(Dialect::MSNP15)
        );
        assert_eq!(
            Dialect::negotiate_up_to(["MSNP18", "CVR0"], Dialect::MSNP15),
            None
        );
        for n in 2..=18 {
            let d = Dialect::new(n).unwrap();
            assert_eq!(Dialect::parse_any(&d.to_string()), Some(d));
        }
        assert_eq!(Dialect::new(19), None);
    }

    #[test]
    fn wlm_predicates_follow_the_dialect_matrix() {
        let p = |n| Dialect::new(n).unwrap();
        assert_eq!(p(7).login_method(), LoginMethod::Md5);
        assert_eq!(p(12).login_method(), LoginMethod::Tweener);
        assert_eq!(p(13).login_method(), LoginMethod::TweenerSoap);
        assert_eq!(p(14).login_method(), LoginMethod::TweenerSoap);
        assert_eq!(p(15).login_method(), LoginMethod::Sso);
        assert_eq!(p(18).login_method(), LoginMethod::Sso);
        assert!(!p(12).has_soap_address_book() && p(13).has_soap_address_book());
        assert!(p(12).has_legacy_list_commands() && !p(13).has_legacy_list_commands());
        assert!(!p(13).has_fqy() && p(14).has_fqy());
        assert!(!p(15).has_mpop() && p(16).has_mpop() && p(17).has_mpop());
        assert!(!p(15).requires_mbi_response() && p(16).requires_mbi_response());
        assert!(!p(15).has_extended_caps() && p(16).has_extended_caps());
        assert!(!p(17).has_circles() && p(18).has_circles());
        assert!(p(17).has_initial_presence_iln() && !p(18).has_initial_presence_iln());
        assert!(p(12).has_initial_presence_iln());
        assert!(!p(12).sends_gcf_policy() && p(13).sends_gcf_policy());
        assert!(!p(14).uses_sso_login() && p(15).uses_sso_login());
    }

    #[test]
    fn presence_handles_and_caps_per_dialect() {
        let p = |n| Dialect::new(n).unwrap();
        let bob = "bob@example.com";
        assert_eq!(p(12).presence_handle(bob, 1), "bob@example.com");
        assert_eq!(p(13).presence_handle(bob, 1), "bob@example.com");
        assert_eq!(p(14).presence_handle(bob, 1), "bob@example.com 1");
        assert_eq!(p(17).presence_handle(bob, 32), "bob@example.com 32");
        assert_eq!(p(18).presence_handle(bob, 1), "1:bob@example.com");
        assert_eq!(p(15).capabilities_field(1342177312, 7), "1342177312");
        assert_eq!(
            p(16).capabilities_field(2688340284, 2550273040),
            "2688340284:2550273040"
        );
    }

    #[test]
    fn display_round_trips() {
        for n in 2..=12 {
            let d = Dialect::new(n).unwrap();
            assert_eq!(Dialect::parse(&d.to_string()), Some(d));
        }
    }
}
