//! Numeric error replies (`NNN trid`, framing.md §7, errors.md).
//!
//! Only the codes a P2–P12 server has a reason to send are listed; the
//! names follow the meaning clients show for them, not the draft's `ERR_`
//! symbols.

use std::fmt;

/// An error code the server can send as `NNN trid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// Malformed command (servers usually close instead).
    SyntaxError = 200,
    /// Bad status, address, list or property value.
    InvalidParameter = 201,
    /// Well-formed but unknown account (P2–P9 `ADD`).
    InvalidUser = 205,
    /// Handle without a domain, e.g. `name@`.
    DomainMissing = 206,
    /// `USR` after a successful login.
    AlreadyLoggedIn = 207,
    /// Unknown or invalid handle (SB `CAL`; P10+ `ADC`).
    InvalidUsername = 208,
    /// Forbidden friendly name.
    InvalidFriendlyName = 209,
    /// The list is at its size limit.
    ListFull = 210,
    /// Contact already on that list / in that group / in the session.
    AlreadyThere = 215,
    /// Contact not on that list.
    NotOnList = 216,
    /// SB `CAL` of an offline, invisible or unknown user.
    NotOnline = 217,
    /// `BLP`/`GTC` set to the value already in force.
    AlreadyInMode = 218,
    /// `AL` add while on `BL`, or the reverse.
    InOppositeList = 219,
    /// More than 30 groups.
    TooManyGroups = 223,
    /// Group id or GUID that does not exist.
    InvalidGroup = 224,
    /// `REM` from a group the contact is not in.
    NotInGroup = 225,
    /// `RMG` of a non-empty group, where the server refuses that (UNCONFIRMED).
    GroupNotEmpty = 227,
    /// `ADG`/`REG` with a name already in use.
    GroupNameExists = 228,
    /// Group name over 61 encoded bytes.
    GroupNameTooLong = 229,
    /// `RMG 0` in P7–P9.
    CannotRemoveGroupZero = 230,
    /// Adding a user to a missing group (what older clients expect).
    InvalidGroup231 = 231,
    /// No switchboard could be allocated.
    SwitchboardFailed = 280,
    /// `XFR SB` failed.
    TransferFailed = 281,
    /// Malformed SB `MSG … D` (P2P) payload.
    P2pError = 282,
    /// Command with missing parameters.
    RequiredFieldsMissing = 300,
    /// `FND` directory search returned too many results.
    TooManyResults = 301,
    /// A command that needs a login before `USR … OK`.
    NotLoggedIn = 302,
    /// Unexpected server fault.
    InternalError = 500,
    /// Storage failure.
    DatabaseError = 501,
    /// Command switched off on this server (e.g. `FND`).
    CommandDisabled = 502,
    /// Wrong `QRY` answer; the server closes afterwards.
    ChallengeFailed = 540,
    /// Server busy.
    ServerBusy = 600,
    /// Server unavailable.
    ServerUnavailable = 601,
    /// Server shutting down.
    ServerGoingDown = 604,
    /// `CVR` with disallowed values.
    BadCvr = 710,
    /// Calling or requesting switchboards too rapidly.
    TooActive = 713,
    /// Valid command at the wrong time (e.g. `GCF` before `SYN`).
    NotExpected = 715,
    /// Changing the name or requesting switchboards too often.
    RateLimited = 800,
    /// Server too busy during login.
    ServerTooBusy = 910,
    /// Wrong password hash, ticket or switchboard cookie.
    AuthFailed = 911,
    /// `XFR SB` while hidden or before the first `CHG`.
    NotAllowedWhenOffline = 913,
    /// Registrations closed.
    NotAcceptingNewUsers = 920,
    /// Kids Passport without parental consent.
    KidsWithoutConsent = 923,
    /// Account e-mail address not yet verified.
    AccountNotVerified = 924,
    /// Account restricted or suspended.
    AccountRestricted = 927,
    /// Unusable Passport ticket (P8+; 911 also works).
    BadTicket = 928,
}

impl ErrorCode {
    /// Every code, in ascending numeric order.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::SyntaxError,
        ErrorCode::InvalidParameter,
        ErrorCode::InvalidUser,
        ErrorCode::DomainMissing,
        ErrorCode::AlreadyLoggedIn,
        ErrorCode::InvalidUsername,
        ErrorCode::InvalidFriendlyName,
        ErrorCode::ListFull,
        ErrorCode::AlreadyThere,
        ErrorCode::NotOnList,
        ErrorCode::NotOnline,
        ErrorCode::AlreadyInMode,
        ErrorCode::InOppositeList,
        ErrorCode::TooManyGroups,
        ErrorCode::InvalidGroup,
        ErrorCode::NotInGroup,
        ErrorCode::GroupNotEmpty,
        ErrorCode::GroupNameExists,
        ErrorCode::GroupNameTooLong,
        ErrorCode::CannotRemoveGroupZero,
        ErrorCode::InvalidGroup231,
        ErrorCode::SwitchboardFailed,
        ErrorCode::TransferFailed,
        ErrorCode::P2pError,
        ErrorCode::RequiredFieldsMissing,
        ErrorCode::TooManyResults,
        ErrorCode::NotLoggedIn,
        ErrorCode::InternalError,
        ErrorCode::DatabaseError,
        ErrorCode::CommandDisabled,
        ErrorCode::ChallengeFailed,
        ErrorCode::ServerBusy,
        ErrorCode::ServerUnavailable,
        ErrorCode::ServerGoingDown,
        ErrorCode::BadCvr,
        ErrorCode::TooActive,
        ErrorCode::NotExpected,
        ErrorCode::RateLimited,
        ErrorCode::ServerTooBusy,
        ErrorCode::AuthFailed,
        ErrorCode::NotAllowedWhenOffline,
        ErrorCode::NotAcceptingNewUsers,
        ErrorCode::KidsWithoutConsent,
        ErrorCode::AccountNotVerified,
        ErrorCode::AccountRestricted,
        ErrorCode::BadTicket,
    ];

    /// The three-digit number sent on the wire.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The code with that number, if this server knows it.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|known| known.code() == code)
    }

    /// A short English description for logs (errors.md §1).
    pub const fn description(self) -> &'static str {
        match self {
            ErrorCode::SyntaxError => "syntax error",
            ErrorCode::InvalidParameter => "invalid parameter",
            ErrorCode::InvalidUser => "invalid user",
            ErrorCode::DomainMissing => "domain name missing",
            ErrorCode::AlreadyLoggedIn => "already logged in",
            ErrorCode::InvalidUsername => "invalid user name",
            ErrorCode::InvalidFriendlyName => "invalid friendly name",
            ErrorCode::ListFull => "list full",
            ErrorCode::AlreadyThere => "already there",
            ErrorCode::NotOnList => "not on list",
            ErrorCode::NotOnline => "user not online",
            ErrorCode::AlreadyInMode => "already in the mode",
            ErrorCode::InOppositeList => "already in the opposite list",
            ErrorCode::TooManyGroups => "too many groups",
            ErrorCode::InvalidGroup => "invalid group",
            ErrorCode::NotInGroup => "user not in group",
            ErrorCode::GroupNotEmpty => "group not empty",
            ErrorCode::GroupNameExists => "group already exists",
            ErrorCode::GroupNameTooLong => "group name too long",
            ErrorCode::CannotRemoveGroupZero => "cannot remove group zero",
            ErrorCode::InvalidGroup231 => "invalid group",
            ErrorCode::SwitchboardFailed => "switchboard failed",
            ErrorCode::TransferFailed => "transfer to switchboard failed",
            ErrorCode::P2pError => "P2P error",
            ErrorCode::RequiredFieldsMissing => "required fields missing",
            ErrorCode::TooManyResults => "too many results",
            ErrorCode::NotLoggedIn => "not logged in",
            ErrorCode::InternalError => "internal server error",
            ErrorCode::DatabaseError => "database server error",
            ErrorCode::CommandDisabled => "command disabled",
            ErrorCode::ChallengeFailed => "challenge response failed",
            ErrorCode::ServerBusy => "server busy",
            ErrorCode::ServerUnavailable => "server unavailable",
            ErrorCode::ServerGoingDown => "server going down",
            ErrorCode::BadCvr => "bad CVR parameters",
            ErrorCode::TooActive => "user too active",
            ErrorCode::NotExpected => "not expected",
            ErrorCode::RateLimited => "changing too rapidly",
            ErrorCode::ServerTooBusy => "server too busy",
            ErrorCode::AuthFailed => "authentication failed",
            ErrorCode::NotAllowedWhenOffline => "not allowed when offline",
            ErrorCode::NotAcceptingNewUsers => "not accepting new users",
            ErrorCode::KidsWithoutConsent => "Kids Passport without parental consent",
            ErrorCode::AccountNotVerified => "Passport account not yet verified",
            ErrorCode::AccountRestricted => "account restricted",
            ErrorCode::BadTicket => "bad ticket",
        }
    }
}

impl fmt::Display for ErrorCode {
    /// The wire form: exactly three digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_complete_sorted_and_round_trips() {
        let mut previous = 0;
        for &code in ErrorCode::ALL {
            assert!(code.code() > previous, "{code:?} out of order");
            previous = code.code();
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
            assert_eq!(code.to_string().len(), 3);
            assert!(!code.description().is_empty());
        }
        assert_eq!(ErrorCode::ALL.len(), 46);
    }

    #[test]
    fn unknown_codes_are_none() {
        for unknown in [0, 199, 226, 999, u16::MAX] {
            assert_eq!(ErrorCode::from_code(unknown), None);
        }
    }

    #[test]
    fn displays_wire_digits() {
        assert_eq!(ErrorCode::AuthFailed.to_string(), "911");
        assert_eq!(ErrorCode::SyntaxError.to_string(), "200");
        assert_eq!(ErrorCode::ChallengeFailed.code(), 540);
    }
}
