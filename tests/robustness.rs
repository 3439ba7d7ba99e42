//! Robustness over real TCP: every command a client can send — well-formed,
//! malformed, unknown or out of order — is answered within a bounded time by
//! a reply carrying its TrID, an error line `NNN trid`, or a closed
//! connection; never by silence (real clients wait on their TrID and hang),
//! a hang or a panic (framing.md §3, §7, §8; errors.md §3). Where the
//! reference names the outcome (an error code, or a close), that outcome is
//! checked as well. After an answer that leaves the connection open, one
//! more command (`PNG` on a signed-in NS) must still be answered.
//!
//! Cases are generated: command names × malformations × dialects × states.
//! Each case runs on a connection (and an account) of its own, so a failure
//! names exactly the dialect, the state and the bytes sent.

mod common;
use common::*;
use msnp::codec::Command;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

const PW: &str = "r0bust!";
/// How long a case waits for the answer to one command. Answers take
/// milliseconds; a case only waits this long when the server stays silent.
const WAIT: Duration = Duration::from_secs(5);
/// Cases in flight at once.
const PARALLEL: usize = 16;
/// An existing account that is never signed in.
const BUDDY: &str = "buddy@robust.test";
/// A well-formed address without an account.
const NOBODY: &str = "nobody@robust.test";
const GUID: &str = "8e5f2a04-7a4b-4a9a-9b6f-2e0e1e8a9c01";
const TRID: &str = "7";
const MAX_TRID: &str = "4294967295";
const OVERFLOW_TRID: &str = "4294967296";
const BARRIER_TRID: &str = "99999";
/// Placeholders for the handles of a case's own accounts, replaced in the
/// bytes sent by handles of the same length (payload lengths stay right).
const ME: &str = "me000000@robust.test";
const PEER: &str = "pe000000@robust.test";
const NS_DIALECTS: &[u8] = &[2, 5, 7, 9, 11, 12];
/// WLM dialects probed signed in and online (the address-book era: no
/// SYN/ADC/REM/GTC/groups; ADL/RML/FQY instead).
const NS_WLM_DIALECTS: &[u8] = &[13, 15, 18];
const SB_DIALECTS: &[u8] = &[7, 9, 12];

/// Violations this file knows about: (case label prefix, problem prefix).
/// A product bug found here is listed until src/ is fixed; the test fails
/// both on a new violation and on a listed one that no longer occurs.
const KNOWN_VIOLATIONS: &[(&str, &str)] = &[];

// ---------------------------------------------------------------------------
// Panics anywhere outside the tests (the server runs in this process).

static SERVER_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records every panic raised outside `tests/`: the server runs in this
/// process, so a panicking connection task shows up here even though its
/// client only sees a closed socket.
fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let file = info.location().map(|l| l.file()).unwrap_or("?");
            if !file.starts_with("tests/") && !file.contains("/tests/") {
                SERVER_PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(info.to_string());
            }
            previous(info);
        }));
    });
}

fn assert_no_server_panics() {
    let panics = SERVER_PANICS.lock().unwrap_or_else(|e| e.into_inner());
    assert!(panics.is_empty(), "the server panicked: {panics:#?}");
}

// ---------------------------------------------------------------------------
// Cases.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// NS: connected, nothing sent.
    Fresh,
    /// NS: after `VER`.
    Versioned,
    /// NS: after `USR … I` (challenge received).
    Challenged,
    /// NS: after `USR … OK`, before `SYN`.
    SignedIn,
    /// NS: after `SYN` and `CHG NLN`.
    Online,
    /// Dispatch listener (`msn.dispatch_redirect`): connected, nothing sent.
    DsFresh,
    /// Dispatch listener: after `VER`.
    DsVersioned,
    /// SB: connected, before `USR`/`ANS`.
    SbFresh,
    /// SB: the caller after `USR OK`, alone in the session.
    SbAlone,
    /// SB: the caller after `USR OK`, with the invitee joined.
    SbPair,
}

const NS_STATES: [State; 5] = [
    State::Fresh,
    State::Versioned,
    State::Challenged,
    State::SignedIn,
    State::Online,
];
const DS_STATES: [State; 2] = [State::DsFresh, State::DsVersioned];
const SB_STATES: [State; 3] = [State::SbFresh, State::SbAlone, State::SbPair];

impl State {
    fn signed_in(self) -> bool {
        matches!(self, State::SignedIn | State::Online)
    }
    fn joined(self) -> bool {
        matches!(self, State::SbAlone | State::SbPair)
    }
}

/// What the reference requires of the answer.
#[derive(Clone, Debug)]
enum Expect {
    /// A reply with the TrID, an error `NNN trid`, or a close.
    Answer,
    /// A close (errors.md §3).
    Close,
    /// An error line with one of these codes (a close may follow it); with
    /// `or_close`, a close without an error line is accepted too.
    Error {
        codes: &'static [u16],
        or_close: bool,
    },
    /// A line with this name carrying the TrID (for `PNG`: `QNG`, no TrID).
    Reply(&'static str),
    /// No answer is due (switchboard `MSG U`, delivered `MSG N`,
    /// undelivered `MSG S`): the next command must be answered first, and
    /// the connection must stay.
    Nothing,
}

#[derive(Clone)]
struct Probe {
    /// Everything sent: the line, its terminator and any payload.
    bytes: Vec<u8>,
    /// The first field of a reply that belongs to this command; `None`:
    /// only a close (or, for `PNG`, a `QNG`) answers it.
    token: Option<String>,
    expect: Expect,
}

struct Case {
    dialect: u8,
    state: State,
    probe: Probe,
}

impl Case {
    fn label(&self) -> String {
        format!(
            "MSNP{} {:?}: {}",
            self.dialect,
            self.state,
            show(&self.probe.bytes)
        )
    }
}

/// The bytes sent, readable and short.
fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut s: String = text.escape_debug().collect();
    if s.len() > 110 {
        let cut = (0..=100)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s = format!("{}… ({} bytes)", &s[..cut], bytes.len());
    }
    format!("\"{s}\"")
}

/// `name [trid] args…` (+ ` len` and the payload), terminated by CR LF.
fn probe(
    name: &str,
    trid: Option<&str>,
    args: &[String],
    payload: Option<&[u8]>,
    expect: Expect,
) -> Probe {
    let mut line = name.as_bytes().to_vec();
    for field in trid.iter().copied().chain(args.iter().map(String::as_str)) {
        line.push(b' ');
        line.extend_from_slice(field.as_bytes());
    }
    if let Some(p) = payload {
        line.extend_from_slice(format!(" {}", p.len()).as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    if let Some(p) = payload {
        line.extend_from_slice(p);
    }
    Probe {
        bytes: line,
        token: trid.map(str::to_string),
        expect,
    }
}

/// A probe given as raw bytes (the terminator included).
fn raw(bytes: &[u8], token: Option<&str>, expect: Expect) -> Probe {
    Probe {
        bytes: bytes.to_vec(),
        token: token.map(str::to_string),
        expect,
    }
}

fn strings(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|s| s.to_string()).collect()
}

fn err(codes: &'static [u16]) -> Expect {
    Expect::Error {
        codes,
        or_close: false,
    }
}

fn err_or_close(codes: &'static [u16]) -> Expect {
    Expect::Error {
        codes,
        or_close: true,
    }
}

const PSM: &[u8] = b"<Data><PSM>robust</PSM><CurrentMedia></CurrentMedia></Data>";
const QRY_ANSWER: &[u8] = b"8f2f5a91b72102cd28355e9fc9000d6e";
const TEXT: &[u8] = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Arial; EF=; CO=0; CS=0; PF=22\r\n\r\nHello";

/// Malformations applied to a command: what is sent, and with which TrID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// The command as a client of the dialect sends it.
    Plausible,
    /// The TrID and nothing else (payload commands: a zero length).
    Bare,
    /// The name alone.
    NoTrid,
    /// The parameters without a TrID.
    NoTridArgs,
    /// A TrID that is not a number.
    BadTrid,
    /// Garbage parameters appended.
    Extra,
    /// The first parameter 4000 bytes long.
    Long,
    /// The largest TrID.
    MaxTrid,
    /// A TrID just above the largest.
    OverflowTrid,
    /// Non-UTF-8 bytes, control characters and broken %-escapes.
    Garbage,
}

const ALL_VARIANTS: &[Variant] = &[
    Variant::Plausible,
    Variant::Bare,
    Variant::NoTrid,
    Variant::NoTridArgs,
    Variant::BadTrid,
    Variant::Extra,
    Variant::Long,
    Variant::MaxTrid,
    Variant::OverflowTrid,
    Variant::Garbage,
];
const FEW_VARIANTS: &[Variant] = &[Variant::Plausible, Variant::Bare, Variant::NoTrid];

/// Builds the variant of `name args (payload)`; `plausible` is the
/// expectation for the well-formed command (also used with the largest TrID).
fn variant(
    v: Variant,
    name: &str,
    args: &[String],
    payload: Option<&[u8]>,
    plausible: Expect,
) -> Option<Probe> {
    let long = "A".repeat(4000);
    Some(match v {
        Variant::Plausible => probe(name, Some(TRID), args, payload, plausible),
        Variant::MaxTrid => probe(name, Some(MAX_TRID), args, payload, plausible),
        Variant::OverflowTrid => probe(name, Some(OVERFLOW_TRID), args, payload, Expect::Answer),
        Variant::Bare => {
            let payload = payload.map(|_| &b""[..]);
            probe(name, Some(TRID), &[], payload, Expect::Answer)
        }
        // Without a TrID no reply could be matched: only a close answers.
        Variant::NoTrid => raw(format!("{name}\r\n").as_bytes(), None, Expect::Close),
        Variant::NoTridArgs => {
            // A numeric first parameter would read as a TrID; payload
            // commands would take their length for one.
            if payload.is_some() || args.is_empty() || args[0].bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            probe(name, None, args, None, Expect::Close)
        }
        Variant::BadTrid => probe(name, Some("x7"), args, payload, Expect::Answer),
        Variant::Extra => {
            let mut a = args.to_vec();
            a.extend(strings(&["g1", "%ZZ", "0", "-1", "N=", "C=", "A,B"]));
            probe(name, Some(TRID), &a, payload, Expect::Answer)
        }
        Variant::Long => {
            let mut a = args.to_vec();
            match a.first_mut() {
                Some(first) => *first = long,
                None => a.push(long),
            }
            probe(name, Some(TRID), &a, payload, Expect::Answer)
        }
        Variant::Garbage => {
            let mut p = probe(name, Some(TRID), &[], payload, Expect::Answer);
            // Insert the garbage fields right after the TrID.
            let at = name.len() + 1 + TRID.len();
            let junk: &[u8] = b" \xff\xfe%%%ZZ\x01\x7f \xc3\x28 %00 \t";
            p.bytes.splice(at..at, junk.iter().copied());
            p
        }
    })
}

// ---------------------------------------------------------------------------
// Notification server cases.

/// Commands a client sends to the NS in P2–P12 (README.md command index).
const NS_COMMANDS: &[&str] = &[
    "VER", "CVR", "CVQ", "INF", "USR", "XFR", "SYN", "GTC", "BLP", "PRP", "CHG", "ADD", "ADC",
    "REM", "ADG", "RMG", "REG", "REA", "SBP", "URL", "SND", "SDC", "UUX", "GCF", "QRY", "FND",
    "IMS", "LST", "LSG",
];

/// Names a client has no business sending to the NS: server-only,
/// switchboard-only, P13+ and made up (errors.md §3: close).
const NS_FOREIGN: &[&str] = &[
    "BPR", "ILN", "NLN", "FLN", "UBX", "SBS", "QNG", "CHL", "RNG", "NOT", "IPG", "MSG", "ACK",
    "NAK", "CAL", "ANS", "IRO", "JOI", "BYE", "ADL", "RML", "FQY", "UUN", "UBN", "PUT", "NFY",
    "FOO", "ZZZ", "ver", "Png", "123", "A1B",
];

/// The well-formed parameters (after the TrID) and payload of `name`.
fn ns_args(name: &str, d: u8, state: State, me: &str) -> (Vec<String>, Option<Vec<u8>>) {
    let guids = d >= 10;
    let args = match name {
        "VER" => vec![format!("MSNP{d}"), "CVR0".into()],
        "CVR" | "CVQ" => strings(&[
            "0x0409", "winnt", "5.1", "i386", "MSNMSGR", "7.0.0813", "msmsgs", me,
        ]),
        "USR" => match (state, d <= 7) {
            (State::Challenged, true) => strings(&["MD5", "S", "0123456789abcdef0123456789abcdef"]),
            (State::Challenged, false) => strings(&["TWN", "S", "t=bogus&p=bogus"]),
            (_, true) => strings(&["MD5", "I", me]),
            (_, false) => strings(&["TWN", "I", me]),
        },
        "XFR" => strings(&["SB"]),
        "SYN" if guids => strings(&["0", "0"]),
        "SYN" => strings(&["0"]),
        "GTC" => strings(&["N"]),
        "BLP" => strings(&["BL"]),
        "PRP" if guids => strings(&["MFN", "New%20Name"]),
        "PRP" => strings(&["PHH", "555%201234"]),
        "CHG" if d >= 8 => strings(&["NLN", "0"]),
        "CHG" => strings(&["NLN"]),
        "ADD" if d >= 7 => strings(&["FL", BUDDY, BUDDY, "0"]),
        "ADD" => strings(&["FL", BUDDY, BUDDY]),
        "ADC" => vec!["FL".into(), format!("N={BUDDY}"), "F=Buddy".into()],
        "REM" => strings(&["AL", BUDDY]),
        "ADG" if guids => strings(&["Pals"]),
        "ADG" => strings(&["Pals", "0"]),
        "RMG" if guids => strings(&[GUID]),
        "RMG" => strings(&["1"]),
        "REG" if guids => strings(&[GUID, "Mates"]),
        "REG" => strings(&["1", "Mates", "0"]),
        "REA" => strings(&[me, "New%20Name"]),
        "SBP" => strings(&[GUID, "MFN", "Bob"]),
        "URL" => strings(&["INBOX"]),
        "SND" => strings(&["friend@example.com"]),
        "SDC" => strings(&[
            "friend@example.com",
            "0x0409",
            "MSMSGS",
            "WindowsMessenger",
            "X",
            "X",
            "Alice",
        ]),
        "GCF" => strings(&["Shields.xml"]),
        "QRY" => strings(&["msmsgs@msnmsgr.com"]),
        "FND" => strings(&["fname=Bob", "lname=Smith", "city=*", "state=*", "country=*"]),
        "IMS" => strings(&["ON"]),
        "LST" => strings(&["FL"]),
        "MSG" => strings(&["A"]),
        "INF" | "UUX" | "LSG" => vec![],
        // P13+ payload commands (wlm/notification.md): just TrID and length.
        "ADL" | "RML" | "FQY" if d >= 13 => vec![],
        "PUT" if d >= 18 => vec![],
        "UUN" if d >= 13 => strings(&[BUDDY, "4"]),
        _ => strings(&["x", BUDDY]),
    };
    let payload = match name {
        "ADL" | "RML" if d >= 13 => Some(b"<ml l=\"1\"></ml>".to_vec()),
        "FQY" if d >= 13 => Some(b"<ml><d n=\"robust.test\"><c n=\"buddy\" /></d></ml>".to_vec()),
        "PUT" if d >= 18 => Some(b"<circle/>".to_vec()),
        "UUN" if d >= 13 => Some(b"goawyplzthxbye".to_vec()),
        "UUX" => Some(PSM.to_vec()),
        "QRY" => Some(QRY_ANSWER.to_vec()),
        "SDC" => Some(Vec::new()),
        "MSG" => Some(TEXT.to_vec()),
        _ => None,
    };
    (args, payload)
}

/// What the reference says about the well-formed `name` in this state.
fn ns_expect(name: &str, d: u8, state: State) -> Expect {
    use Expect::*;
    match state {
        State::DsVersioned if name == "USR" => Reply("XFR"),
        State::DsFresh => ns_expect(name, d, State::Fresh),
        State::DsVersioned => ns_expect(name, d, State::Versioned),
        // framing.md §9: anything before VER except VER → close.
        State::Fresh if name == "VER" => Reply("VER"),
        State::Fresh => Close,
        // Before USR OK: the login commands, anything else closes
        // (errors.md §3; "some servers send 302").
        State::Versioned | State::Challenged => match name {
            "VER" | "CVQ" => Answer,
            "CVR" => Reply("CVR"),
            "INF" if d <= 7 => Reply("INF"),
            "INF" => Close,
            "USR" if state == State::Versioned => Reply("USR"),
            "USR" if d <= 7 => err(&[911]),
            "USR" => err(&[911, 928]),
            _ => err_or_close(&[302]),
        },
        _ if d >= 13 => match name {
            // wlm/notification.md: removed in P13 → close.
            n if msnp::dialect::LEGACY_LIST_COMMANDS.contains(&n) => Close,
            "ADD" | "LST" | "LSG" => Close,
            // The lists come from the address book: no SYN needed first.
            "GCF" => Reply("GCF"),
            // Valid from P13; outcomes of their variants are fixed below.
            "ADL" | "RML" | "FQY" | "UUN" => Answer,
            _ => ns_expect(name, 12, state),
        },
        _ => match name {
            "CVR" => Reply("CVR"),
            "USR" => err(&[207]),
            "XFR" if state == State::SignedIn => err(&[913]),
            "XFR" => Reply("XFR"),
            "SYN" | "GTC" | "BLP" | "CHG" | "URL" => Reply(name_static(name)),
            "PRP" if d >= 5 => Reply("PRP"),
            "ADD" if d <= 9 => Reply("ADD"),
            "ADC" if d >= 10 => Reply("ADC"),
            "REM" => err(&[216]),
            "RMG" | "REG" if d >= 7 => err(&[224]),
            "ADG" if d >= 7 => Reply("ADG"),
            "REA" if d <= 9 => Reply("REA"),
            "REA" => err_or_close(&[502]),
            "SND" if d <= 4 => Reply("SND"),
            "SDC" if d >= 5 => Reply("SDC"),
            "UUX" if d >= 11 => Reply("UUX"),
            "GCF" if d >= 11 && state == State::SignedIn => err(&[715]),
            "GCF" if d >= 11 => Reply("GCF"),
            "FND" if d <= 7 => err(&[502]),
            "FND" => err_or_close(&[502]),
            "INF" if d >= 8 => Close,
            n if NS_FOREIGN.contains(&n) => Close,
            // Valid but with no fixed outcome here, or not part of this
            // dialect (a server may answer or close).
            _ => Answer,
        },
    }
}

/// `<ml>` naming `handle` on `lists`, as WLM clients write it.
fn ml_doc(handle: &str, lists: u8) -> Vec<u8> {
    let (local, domain) = handle.split_once('@').unwrap();
    format!("<ml><d n=\"{domain}\"><c n=\"{local}\" l=\"{lists}\" t=\"1\" /></d></ml>").into_bytes()
}

/// P13+ outcomes the reference fixes (wlm/notification.md §1, §2, §5, §7).
fn wlm_specific(d: u8) -> Vec<Probe> {
    let t = Some(TRID);
    let mut v = vec![
        // BLP is echoed, also for the mode in force; a bad value → 201 or close.
        probe("BLP", t, &strings(&["AL"]), None, Expect::Reply("BLP")),
        probe("BLP", t, &strings(&["XX"]), None, err_or_close(&[201])),
        probe("GTC", t, &strings(&["A"]), None, Expect::Close),
        probe("ADG", t, &strings(&["Pals"]), None, Expect::Close),
        probe("REM", t, &strings(&["RL", BUDDY]), None, Expect::Close),
        probe(
            "ADL",
            t,
            &[],
            Some(b"<ml l=\"1\"></ml>"),
            Expect::Reply("ADL"),
        ),
        probe("ADL", t, &[], Some(&ml_doc(BUDDY, 3)), Expect::Reply("ADL")),
        probe("RML", t, &[], Some(&ml_doc(BUDDY, 2)), Expect::Reply("RML")),
        // Reverse/pending bits, a domain without contacts, broken XML → close.
        probe("ADL", t, &[], Some(&ml_doc(BUDDY, 8)), err(&[241])),
        probe(
            "ADL",
            t,
            &[],
            Some(b"<ml><d n=\"robust.test\"></d></ml>"),
            err(&[240]),
        ),
        probe("ADL", t, &[], Some(b"<ml><d n="), err(&[241])),
        probe("ADL", t, &[], Some(&ml_doc(NOBODY, 1)), err(&[208])),
        probe(
            "CHG",
            t,
            &strings(&["NLN", "2688340284:2550273040", "0"]),
            None,
            Expect::Reply("CHG"),
        ),
        probe(
            "CHG",
            t,
            &strings(&["NLN", "1:x"]),
            None,
            err_or_close(&[201]),
        ),
        probe(
            "UUX",
            t,
            &[],
            Some(b"<EndpointData><Capabilities>0:0</Capabilities></EndpointData>"),
            Expect::Reply("UUX"),
        ),
        probe("UUX", t, &[], Some(b"<Data><PSM>unclosed"), Expect::Answer),
    ];
    if d >= 14 {
        let (local, domain) = BUDDY.split_once('@').unwrap();
        let query = format!("<ml><d n=\"{domain}\"><c n=\"{local}\" /></d></ml>");
        v.push(probe(
            "FQY",
            t,
            &[],
            Some(query.as_bytes()),
            Expect::Reply("FQY"),
        ));
        let (local, domain) = NOBODY.split_once('@').unwrap();
        let query = format!("<ml><d n=\"{domain}\"><c n=\"{local}\" /></d></ml>");
        v.push(probe("FQY", t, &[], Some(query.as_bytes()), err(&[208])));
    }
    v
}

fn name_static(name: &str) -> &'static str {
    NS_COMMANDS
        .iter()
        .chain(NS_FOREIGN)
        .find(|n| **n == name)
        .copied()
        .unwrap_or("?")
}

/// Cases whose outcome the reference fixes, beyond the generated ones.
fn ns_specific(d: u8, state: State) -> Vec<Probe> {
    let mut v = Vec::new();
    let t = Some(TRID);
    let caps: &[&str] = if d >= 8 { &["0"] } else { &[] };
    let with_caps = |status: &str| {
        let mut a = vec![status.to_string()];
        a.extend(strings(caps));
        a
    };
    // A line over the 8 KiB limit closes in every state (framing.md §6–§8).
    let mut long = format!("CHG {TRID} NLN 0 ").into_bytes();
    long.resize(9000, b'A');
    long.extend_from_slice(b"\r\n");
    v.push(raw(&long, t, Expect::Close));
    if matches!(state, State::Fresh | State::DsFresh) {
        // No common dialect: `VER t 0`, then close (login.md §2).
        v.push(probe(
            "VER",
            t,
            &strings(&["MSNP99", "CVR0"]),
            None,
            Expect::Answer,
        ));
        v.push(probe("VER", t, &[], None, Expect::Answer));
        v.push(probe("PNG", None, &[], None, Expect::Close));
        return v;
    }
    if !state.signed_in() {
        // PNG before sign-in → close (notification.md §13).
        v.push(probe("PNG", None, &[], None, Expect::Close));
        v.push(probe("SYN", t, &strings(&["0", "0"]), None, Expect::Close));
        if d <= 7 {
            // USR with another dialect's security package → close (errors.md §3).
            v.push(probe(
                "USR",
                t,
                &strings(&["TWN", "I", BUDDY]),
                None,
                Expect::Close,
            ));
        } else {
            v.push(probe(
                "USR",
                t,
                &strings(&["MD5", "I", BUDDY]),
                None,
                Expect::Close,
            ));
        }
        v.push(probe(
            "USR",
            t,
            &strings(&["XYZ", "I", BUDDY]),
            None,
            Expect::Close,
        ));
        return v;
    }
    // A command line just under the limit (a P9+ CHG with an MSN object).
    let mut obj = format!("CHG {TRID} NLN 0 %3Cmsnobj%20").into_bytes();
    obj.resize(8000, b'A');
    obj.extend_from_slice(b"\r\n");
    v.push(raw(&obj, t, Expect::Answer));
    // Line-ending and spacing leniency (framing.md §1).
    let chg = if d >= 8 { "NLN 0" } else { "NLN" };
    v.push(raw(
        format!("CHG {TRID} {chg}\n").as_bytes(),
        t,
        Expect::Reply("CHG"),
    ));
    v.push(raw(
        format!("CHG  {TRID}   {}  \r\n", chg.replace(' ', "   ")).as_bytes(),
        t,
        Expect::Reply("CHG"),
    ));
    v.push(raw(b"\r\n\r\nPNG\r\n", None, Expect::Reply("QNG")));
    // NUL bytes, a lone CR, tabs, thousands of parameters.
    v.push(raw(
        format!("CHG {TRID} NLN\0 0\r\n").as_bytes(),
        t,
        Expect::Answer,
    ));
    v.push(raw(
        format!("CHG {TRID}\rNLN 0\r\n").as_bytes(),
        t,
        Expect::Answer,
    ));
    v.push(raw(
        format!("CHG\t{TRID}\tNLN\t0\r\n").as_bytes(),
        t,
        Expect::Answer,
    ));
    v.push(raw(
        format!("URL {TRID} {}\r\n", "x ".repeat(3500)).as_bytes(),
        t,
        Expect::Answer,
    ));
    v.push(raw(
        format!("CHG {TRID} \r\n").as_bytes(),
        t,
        Expect::Answer,
    ));
    v.push(raw(b"PNG 7\r\n", None, Expect::Reply("QNG")));
    v.push(raw(b"OUT\r\n", None, Expect::Close));
    v.push(raw(b"OUT 7\r\n", None, Expect::Close));
    // Statuses: FLN is not settable → 201; an unknown one → 201 or close.
    v.push(probe("CHG", t, &with_caps("FLN"), None, err(&[201])));
    v.push(probe(
        "CHG",
        t,
        &with_caps("XYZ"),
        None,
        err_or_close(&[201]),
    ));
    // XFR with anything but SB → 201 or close.
    v.push(probe(
        "XFR",
        t,
        &strings(&["NS"]),
        None,
        err_or_close(&[201]),
    ));
    v.push(probe(
        "XFR",
        t,
        &strings(&["sb"]),
        None,
        err_or_close(&[201]),
    ));
    if d >= 13 {
        v.extend(wlm_specific(d));
        return v;
    }
    // Privacy settings: the value in force → 218; an invalid one → 201 or close.
    v.push(probe("BLP", t, &strings(&["AL"]), None, err(&[218])));
    v.push(probe("GTC", t, &strings(&["A"]), None, err(&[218])));
    v.push(probe(
        "BLP",
        t,
        &strings(&["XX"]),
        None,
        err_or_close(&[201]),
    ));
    v.push(probe(
        "GTC",
        t,
        &strings(&["Q"]),
        None,
        err_or_close(&[201]),
    ));
    // The reverse list is read-only → close (notification.md §7).
    if d <= 9 {
        let rl = strings(&["RL", BUDDY, BUDDY]);
        v.push(probe("ADD", t, &rl, None, Expect::Close));
        let bad = if d >= 7 {
            strings(&["FL", "a@b", "a@b", "0"])
        } else {
            strings(&["FL", "a@b", "a@b"])
        };
        v.push(probe("ADD", t, &bad, None, err(&[201])));
        let unknown = if d >= 7 {
            strings(&["FL", NOBODY, NOBODY, "0"])
        } else {
            strings(&["FL", NOBODY, NOBODY])
        };
        v.push(probe("ADD", t, &unknown, None, err(&[205])));
        v.push(probe(
            "REM",
            t,
            &strings(&["FL", NOBODY]),
            None,
            err(&[216]),
        ));
    } else {
        let rl = vec!["RL".to_string(), format!("N={BUDDY}")];
        v.push(probe("ADC", t, &rl, None, Expect::Close));
        let pl = vec!["PL".to_string(), format!("N={BUDDY}")];
        v.push(probe("ADC", t, &pl, None, Expect::Close));
        let bad = strings(&["FL", "N=a@b", "F=a"]);
        v.push(probe("ADC", t, &bad, None, err(&[201])));
        let unknown = vec!["FL".to_string(), format!("N={NOBODY}"), "F=x".into()];
        v.push(probe("ADC", t, &unknown, None, err(&[208])));
    }
    v.push(probe(
        "REM",
        t,
        &strings(&["RL", BUDDY]),
        None,
        Expect::Close,
    ));
    if (5..10).contains(&d) {
        // PRP MFN before P10 → 715 (notification.md §9.2).
        v.push(probe("PRP", t, &strings(&["MFN", "x"]), None, err(&[715])));
    }
    if (7..=9).contains(&d) {
        v.push(probe("RMG", t, &strings(&["0"]), None, err(&[230])));
    }
    if d >= 7 {
        let name = "G".repeat(70);
        let args = if d >= 10 {
            vec![name]
        } else {
            vec![name, "0".into()]
        };
        v.push(probe("ADG", t, &args, None, err(&[229])));
    }
    if d <= 4 {
        v.push(probe(
            "SND",
            t,
            &strings(&["not-an-address"]),
            None,
            err(&[201]),
        ));
    } else {
        let mut a = ns_args("SDC", d, state, BUDDY).0;
        a[0] = "not-an-address".into();
        v.push(probe("SDC", t, &a, Some(b""), err(&[201])));
    }
    if d >= 11 {
        v.push(probe(
            "UUX",
            t,
            &[],
            Some(b"<Data><PSM>unclosed"),
            Expect::Answer,
        ));
        v.push(probe("UUX", t, &[], Some(b""), Expect::Answer));
    }
    v
}

fn ns_cases() -> Vec<Case> {
    let mut groups = vec![(12, State::Fresh)];
    for d in [7, 11] {
        groups.push((d, State::Versioned));
        groups.push((d, State::Challenged));
    }
    for &d in NS_DIALECTS.iter().chain(NS_WLM_DIALECTS) {
        groups.push((d, State::SignedIn));
        groups.push((d, State::Online));
    }
    cases_for(groups)
}

/// The dispatch role answers like a notification server before sign-in,
/// except that `USR … I` is answered with `XFR … NS` and a close.
fn ds_cases() -> Vec<Case> {
    cases_for(vec![
        (12, State::DsFresh),
        (7, State::DsVersioned),
        (11, State::DsVersioned),
    ])
}

fn cases_for(groups: Vec<(u8, State)>) -> Vec<Case> {
    let mut cases = Vec::new();
    let me = ME;
    for (d, state) in groups {
        let mut push = |probe: Probe| {
            cases.push(Case {
                dialect: d,
                state,
                probe,
            })
        };
        for name in NS_COMMANDS.iter().chain(NS_FOREIGN) {
            let variants = if NS_FOREIGN.contains(name) || !state.signed_in() {
                FEW_VARIANTS
            } else {
                ALL_VARIANTS
            };
            let (args, payload) = ns_args(name, d, state, me);
            for &v in variants {
                let mut expect = ns_expect(name, d, state);
                // Before sign-in a malformed login command may be refused
                // either way; the rule that it is answered still holds.
                if !state.signed_in() && v != Variant::Plausible && v != Variant::NoTrid {
                    expect = Expect::Answer;
                }
                if let Some(p) = variant(v, name, &args, payload.as_deref(), expect) {
                    push(p);
                }
            }
        }
        for p in ns_specific(d, state) {
            push(p);
        }
    }
    cases
}

// ---------------------------------------------------------------------------
// Switchboard cases.

const SB_COMMANDS: &[&str] = &["USR", "ANS", "CAL", "MSG"];
/// Server-only and NS-only names, and made-up ones: close (switchboard.md §9).
const SB_FOREIGN: &[&str] = &[
    "ACK", "NAK", "JOI", "BYE", "IRO", "RNG", "VER", "CVR", "PNG", "CHG", "XFR", "ADD", "SYN",
    "QRY", "FOO", "123",
];

fn sb_args(name: &str, me: &str) -> (Vec<String>, Option<Vec<u8>>) {
    match name {
        "USR" => (strings(&[me, "bogus.cookie"]), None),
        "ANS" => (strings(&[me, "bogus.cookie", "12345"]), None),
        "CAL" => (strings(&[BUDDY]), None),
        "MSG" => (strings(&["A"]), Some(TEXT.to_vec())),
        "QRY" => (strings(&["msmsgs@msnmsgr.com"]), Some(QRY_ANSWER.to_vec())),
        _ => (strings(&["x", BUDDY]), None),
    }
}

fn sb_expect(name: &str, state: State) -> Expect {
    match (name, state) {
        // A bad cookie → 911, then close (switchboard.md §3, §5).
        ("USR" | "ANS", State::SbFresh) => err(&[911]),
        (_, State::SbFresh) => Expect::Close,
        ("USR" | "ANS", _) => Expect::Answer,
        // BUDDY exists but is offline → 217.
        ("CAL", _) => err(&[217]),
        ("MSG", State::SbAlone) => Expect::Reply("NAK"),
        ("MSG", _) => Expect::Reply("ACK"),
        _ => Expect::Close,
    }
}

/// A P2P data message (messages.md) addressed to `to`.
fn p2p(to: &str) -> Vec<u8> {
    let mut m = format!(
        "MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: {to}\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(&[0u8; 48]);
    m.extend_from_slice(b"hi");
    m.extend_from_slice(&[0u8; 4]);
    m
}

/// `me` is the caller, `peer` the invitee (joined in `SbPair`).
fn sb_specific(d: u8, state: State, me: &str, peer: &str) -> Vec<Probe> {
    let t = Some(TRID);
    let mut v = Vec::new();
    let mut long = format!("CAL {TRID} ").into_bytes();
    long.resize(9000, b'A');
    long.extend_from_slice(b"\r\n");
    v.push(raw(&long, t, Expect::Close));
    v.push(raw(b"OUT\r\n", None, Expect::Close));
    if !state.joined() {
        // USR with a cookie of nobody's, ANS with missing fields.
        v.push(probe("USR", t, &strings(&[me]), None, Expect::Answer));
        v.push(probe("ANS", t, &strings(&[me, "x"]), None, Expect::Answer));
        v.push(probe(
            "USR",
            t,
            &strings(&["not-an-address", "x"]),
            None,
            err_or_close(&[911]),
        ));
        return v;
    }
    let alone = state == State::SbAlone;
    // CAL checks (switchboard.md §4): syntax 208, self/member 215, offline 217,
    // wrong parameter count → close.
    v.push(probe(
        "CAL",
        t,
        &strings(&["not-an-address"]),
        None,
        err(&[208]),
    ));
    v.push(probe("CAL", t, &strings(&[me]), None, err(&[215])));
    v.push(probe("CAL", t, &strings(&[NOBODY]), None, err(&[217])));
    v.push(probe("CAL", t, &[], None, Expect::Close));
    if !alone {
        v.push(probe("CAL", t, &strings(&[peer]), None, err(&[215])));
    }
    // MSG modes (switchboard.md §6).
    let msg = |mode: &str, payload: &[u8], expect: Expect| {
        probe("MSG", t, &strings(&[mode]), Some(payload), expect)
    };
    let ack = if alone {
        Expect::Reply("NAK")
    } else {
        Expect::Reply("ACK")
    };
    v.push(msg("U", TEXT, Expect::Nothing));
    v.push(msg(
        "N",
        TEXT,
        if alone {
            Expect::Reply("NAK")
        } else {
            Expect::Nothing
        },
    ));
    v.push(msg("A", TEXT, ack.clone()));
    v.push(msg(
        "S",
        TEXT,
        if alone {
            Expect::Nothing
        } else {
            Expect::Reply("ACK")
        },
    ));
    v.push(msg(
        "D",
        &p2p(peer),
        if d >= 9 { ack.clone() } else { Expect::Answer },
    ));
    v.push(msg(
        "D",
        b"\x00\x01\x02 not a MIME message",
        err_or_close(&[282]),
    ));
    v.push(msg("X", TEXT, Expect::Close));
    v.push(msg("a", TEXT, Expect::Close));
    v.push(msg("A", b"", Expect::Answer));
    v.push(msg("A", &vec![b'x'; 1664], Expect::Answer));
    v.push(msg("A", &vec![b'x'; 1665], Expect::Close));
    // A length that is not a number → close (framing.md §8).
    v.push(raw(
        format!("MSG {TRID} A abc\r\n").as_bytes(),
        t,
        Expect::Close,
    ));
    v.push(raw(
        format!("MSG {TRID} A -1\r\n").as_bytes(),
        t,
        Expect::Close,
    ));
    v.push(raw(
        format!("MSG {TRID} A 0x10\r\n").as_bytes(),
        t,
        Expect::Close,
    ));
    v.push(raw(
        format!("MSG {TRID} A 18446744073709551616\r\n").as_bytes(),
        t,
        Expect::Close,
    ));
    // The mode missing: the TrID's place holds the length.
    v.push(raw(
        format!("MSG {TRID} 5\r\nHello").as_bytes(),
        t,
        Expect::Close,
    ));
    v
}

fn sb_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let me = ME;
    let mut groups = vec![(9, State::SbFresh)];
    for &d in SB_DIALECTS {
        groups.push((d, State::SbAlone));
        groups.push((d, State::SbPair));
    }
    for (d, state) in groups {
        for name in SB_COMMANDS.iter().chain(SB_FOREIGN) {
            let variants = if SB_FOREIGN.contains(name) {
                FEW_VARIANTS
            } else {
                ALL_VARIANTS
            };
            let (args, payload) = sb_args(name, me);
            for &v in variants {
                let mut expect = sb_expect(name, state);
                if v == Variant::Bare && (name == &"CAL" || !state.joined()) {
                    // Missing parameters → close (switchboard.md §4).
                    expect = Expect::Close;
                }
                if v == Variant::Bare && name == &"MSG" {
                    // `MSG 7 0`: the mode missing.
                    expect = Expect::Close;
                }
                if let Some(p) = variant(v, name, &args, payload.as_deref(), expect) {
                    cases.push(Case {
                        dialect: d,
                        state,
                        probe: p,
                    });
                }
            }
        }
        for p in sb_specific(d, state, me, PEER) {
            cases.push(Case {
                dialect: d,
                state,
                probe: p,
            });
        }
    }
    cases
}

// ---------------------------------------------------------------------------
// Running a case.

/// A command the server answers for sure in this state, sent after an
/// answer to prove the connection still works.
struct Barrier {
    line: String,
    name: &'static str,
    token: Option<String>,
}

impl Barrier {
    fn matches(&self, cmd: &Command) -> bool {
        cmd.name == self.name
            && self
                .token
                .as_ref()
                .is_none_or(|t| cmd.args.first() == Some(t))
    }
}

fn barrier(d: u8, state: State, me: &str, answer: Option<&Command>) -> Barrier {
    let cvr = || Barrier {
        line: format!("CVR {BARRIER_TRID} 0x0409 winnt 5.1 i386 MSNMSGR 7.0.0813 msmsgs {me}"),
        name: "CVR",
        token: Some(BARRIER_TRID.into()),
    };
    match state {
        State::SignedIn | State::Online => Barrier {
            line: "PNG".into(),
            name: "QNG",
            token: None,
        },
        State::Fresh if answer.is_none_or(|a| a.name != "VER") => Barrier {
            line: format!("VER {BARRIER_TRID} MSNP{d} CVR0"),
            name: "VER",
            token: Some(BARRIER_TRID.into()),
        },
        State::DsFresh if answer.is_none_or(|a| a.name != "VER") => Barrier {
            line: format!("VER {BARRIER_TRID} MSNP{d} CVR0"),
            name: "VER",
            token: Some(BARRIER_TRID.into()),
        },
        State::Fresh | State::Versioned | State::Challenged => cvr(),
        State::DsFresh | State::DsVersioned => cvr(),
        State::SbFresh => Barrier {
            line: format!("USR {BARRIER_TRID} {me} no.such.cookie"),
            name: "911",
            token: Some(BARRIER_TRID.into()),
        },
        State::SbAlone | State::SbPair => Barrier {
            line: format!("CAL {BARRIER_TRID} {me}"),
            name: "215",
            token: Some(BARRIER_TRID.into()),
        },
    }
}

enum Outcome {
    /// A line that belongs to the probe.
    Line(Command),
    /// The barrier's answer came first (only sent along for `Expect::Nothing`).
    Barrier,
    Closed,
    Silent,
}

fn belongs(p: &Probe, cmd: &Command) -> bool {
    let qng = matches!(p.expect, Expect::Reply("QNG")) && cmd.name == "QNG";
    qng || p
        .token
        .as_ref()
        .is_some_and(|t| cmd.args.first() == Some(t))
}

/// Sends the probe and judges the answer; `Err` describes the violation.
async fn check(c: &mut Client, p: &Probe, d: u8, state: State, me: &str) -> Result<(), String> {
    let mut bytes = p.bytes.clone();
    let nothing_due = matches!(p.expect, Expect::Nothing);
    let after = barrier(d, state, me, None);
    if nothing_due {
        bytes.extend_from_slice(format!("{}\r\n", after.line).as_bytes());
    }
    // A write error means the server closed; the read side reports it.
    let _ = c.try_send_raw(&bytes).await;
    let mut other = Vec::new();
    let deadline = Instant::now() + WAIT;
    let outcome = loop {
        match c
            .recv_within(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            None => break Outcome::Silent,
            Some(None) => break Outcome::Closed,
            Some(Some(cmd)) if belongs(p, &cmd) => break Outcome::Line(cmd),
            Some(Some(cmd)) if nothing_due && after.matches(&cmd) => break Outcome::Barrier,
            Some(Some(cmd)) => other.push(render(&cmd)),
        }
    };
    let seen = if other.is_empty() {
        String::new()
    } else {
        format!(" (other lines: {other:?})")
    };
    let answer = match (&p.expect, outcome) {
        (_, Outcome::Silent) => {
            return Err(format!(
                "no answer within {WAIT:?}, connection left open{seen}"
            ));
        }
        (Expect::Nothing, Outcome::Barrier) => return Ok(()),
        (Expect::Nothing, Outcome::Line(cmd)) => {
            return Err(format!("answered `{}`, no answer is due", render(&cmd)));
        }
        (Expect::Nothing, Outcome::Closed) => {
            return Err(format!(
                "closed; the command is valid and needs no answer{seen}"
            ));
        }
        (_, Outcome::Barrier) => unreachable!("barrier only sent for Expect::Nothing"),
        (Expect::Close | Expect::Answer, Outcome::Closed) => return Ok(()),
        (Expect::Error { or_close: true, .. }, Outcome::Closed) => return Ok(()),
        (Expect::Error { codes, .. }, Outcome::Closed) => {
            return Err(format!(
                "closed without the error line; expected {codes:?}{seen}"
            ));
        }
        (Expect::Reply(name), Outcome::Closed) => {
            return Err(format!("closed; expected `{name}`{seen}"));
        }
        (Expect::Close, Outcome::Line(cmd)) => {
            return Err(format!("answered `{}`; the reference closes", render(&cmd)));
        }
        (Expect::Error { codes, .. }, Outcome::Line(cmd)) => {
            let code = cmd.name.parse::<u16>().ok();
            if !code.is_some_and(|c| codes.contains(&c)) {
                return Err(format!(
                    "answered `{}`; the reference answers error {codes:?}",
                    render(&cmd)
                ));
            }
            cmd
        }
        (Expect::Reply(name), Outcome::Line(cmd)) => {
            if cmd.name != *name {
                return Err(format!("answered `{}`; expected `{name}`", render(&cmd)));
            }
            cmd
        }
        (Expect::Answer, Outcome::Line(cmd)) => cmd,
    };
    // Answered: unless the server closes now, the connection must go on working.
    let after = barrier(d, state, me, Some(&answer));
    let _ = c
        .try_send_raw(format!("{}\r\n", after.line).as_bytes())
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        match c
            .recv_within(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            None => {
                return Err(format!(
                    "answered `{}`, then `{}` got no answer within {WAIT:?}",
                    render(&answer),
                    after.line
                ));
            }
            Some(None) => return Ok(()),
            Some(Some(cmd)) if after.matches(&cmd) => return Ok(()),
            Some(Some(_)) => {}
        }
    }
}

/// Everything a case needs to reach its state: the connection to probe and
/// the ones that must stay open meanwhile.
struct Setup {
    client: Client,
    _keep: Vec<Client>,
}

async fn drain(c: &mut Client) {
    c.send("PNG").await;
    c.recv_named("QNG").await;
}

async fn go_online(c: &mut Client, d: u8) {
    let t = c.next();
    if d >= 13 {
        c.send_payload(&format!("ADL {t}"), b"<ml l=\"1\"></ml>")
            .await;
        c.expect(&format!("ADL {t} OK")).await;
        let t = c.next();
        c.send(&format!("CHG {t} NLN 0")).await;
        c.recv_named("CHG").await;
        drain(c).await;
        return;
    }
    c.send(&if d >= 10 {
        format!("SYN {t} 0 0")
    } else {
        format!("SYN {t} 0")
    })
    .await;
    drain(c).await;
    let t = c.next();
    c.send(&if d >= 8 {
        format!("CHG {t} NLN 0")
    } else {
        format!("CHG {t} NLN")
    })
    .await;
    c.recv_named("CHG").await;
    drain(c).await;
}

async fn setup(server: &TestServer, d: u8, state: State, me: &str, peer: &str) -> Setup {
    let plain = |client| Setup {
        client,
        _keep: Vec::new(),
    };
    match state {
        State::Fresh => plain(Client::connect(server.ns()).await),
        State::DsFresh | State::DsVersioned => {
            let dispatch = server.running.dispatch_addr.expect("dispatch listener");
            let mut c = Client::connect(dispatch).await;
            if state == State::DsVersioned {
                c.send(&format!("VER 1 MSNP{d} CVR0")).await;
                c.expect(&format!("VER 1 MSNP{d}")).await;
            }
            plain(c)
        }
        State::Versioned | State::Challenged => {
            server.add_user(me, PW, "Me").await;
            let mut c = Client::connect(server.ns()).await;
            c.send(&format!("VER 1 MSNP{d} CVR0")).await;
            c.expect(&format!("VER 1 MSNP{d}")).await;
            if state == State::Challenged {
                let package = if d <= 7 { "MD5" } else { "TWN" };
                c.send(&format!("USR 2 {package} I {me}")).await;
                let challenge = c.recv().await;
                assert_eq!(render(&challenge).split(' ').nth(3), Some("S"));
            }
            plain(c)
        }
        State::SignedIn | State::Online => {
            server.add_user(me, PW, "Me").await;
            let mut c = sign_in(server, d, me, PW).await;
            if state == State::Online {
                go_online(&mut c, d).await;
            } else {
                drain(&mut c).await;
            }
            plain(c)
        }
        State::SbFresh => plain(Client::connect(server.running.switchboard_addr).await),
        State::SbAlone | State::SbPair => {
            server.add_user(me, PW, "Me").await;
            let mut ns = sign_in(server, d, me, PW).await;
            go_online(&mut ns, d).await;
            let t = ns.next();
            ns.send(&format!("XFR {t} SB")).await;
            let xfr = ns.recv_named("XFR").await;
            let cookie = xfr.args[4].clone();
            let mut sb = Client::connect(server.running.switchboard_addr).await;
            sb.send(&format!("USR 1 {me} {cookie}")).await;
            sb.expect(&format!("USR 1 OK {me} Me")).await;
            let mut keep = vec![ns];
            if state == State::SbPair {
                server.add_user(peer, PW, "Peer").await;
                let mut pns = sign_in(server, d, peer, PW).await;
                go_online(&mut pns, d).await;
                sb.send(&format!("CAL 2 {peer}")).await;
                assert_eq!(sb.recv().await.name, "CAL");
                let rng = pns.recv_named("RNG").await;
                let mut psb = Client::connect(server.running.switchboard_addr).await;
                psb.send(&format!("ANS 1 {peer} {} {}", rng.args[3], rng.args[0]))
                    .await;
                psb.recv_named("ANS").await;
                sb.recv_named("JOI").await;
                keep.push(pns);
                keep.push(psb);
            }
            Setup {
                client: sb,
                _keep: keep,
            }
        }
    }
}

/// Runs every case (in parallel, each on its own connection and accounts)
/// and returns the violations, labelled.
async fn run_cases(server: Arc<TestServer>, cases: Vec<Case>, prefix: &str) -> Vec<String> {
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut set = tokio::task::JoinSet::new();
    let total = cases.len();
    for (i, case) in cases.into_iter().enumerate() {
        let server = server.clone();
        let limit = limit.clone();
        let me = format!("{prefix}{i:07}@robust.test");
        let peer = format!("{prefix}{i:06}p@robust.test");
        assert_eq!((me.len(), peer.len()), (ME.len(), PEER.len()));
        set.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore");
            let mut probe = case.probe.clone();
            probe.bytes = replace(&probe.bytes, ME.as_bytes(), me.as_bytes());
            probe.bytes = replace(&probe.bytes, PEER.as_bytes(), peer.as_bytes());
            let label = case.label();
            let run = async {
                let mut s = setup(&server, case.dialect, case.state, &me, &peer).await;
                check(&mut s.client, &probe, case.dialect, case.state, &me).await
            };
            // A wrapper limit on top of the per-read ones: setup waits use TIMEOUT.
            let result = match tokio::time::timeout(TIMEOUT + 2 * WAIT, run).await {
                Ok(r) => r,
                Err(_) => Err("case timed out as a whole".into()),
            };
            result.err().map(|problem| format!("{label} -> {problem}"))
        });
    }
    let mut violations = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Some(v)) => violations.push(v),
            Ok(None) => {}
            Err(e) => violations.push(format!("a case panicked (setup or client decoding): {e}")),
        }
    }
    eprintln!(
        "robustness [{prefix}]: {total} cases, {} violations",
        violations.len()
    );
    violations.sort();
    violations
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// Fails on violations not in [`KNOWN_VIOLATIONS`], and on listed ones
/// (for the states this test covers) that no longer occur.
fn judge(violations: &[String], states: &[State]) {
    let mine = |label: &str| states.iter().any(|s| label.contains(&format!(" {s:?}:")));
    let known = |v: &str| {
        KNOWN_VIOLATIONS.iter().position(|(label, problem)| {
            v.starts_with(label) && v.contains(&format!("-> {problem}"))
        })
    };
    let new: Vec<&String> = violations.iter().filter(|v| known(v).is_none()).collect();
    let seen: BTreeSet<usize> = violations.iter().filter_map(|v| known(v)).collect();
    let fixed: Vec<_> = KNOWN_VIOLATIONS
        .iter()
        .enumerate()
        .filter(|(i, (label, _))| mine(label) && !seen.contains(i))
        .map(|(_, k)| k)
        .collect();
    for v in violations {
        if known(v).is_some() {
            eprintln!("known violation: {v}");
        }
    }
    assert!(
        new.is_empty(),
        "{} violation(s) of \"every command is answered\":\n{}",
        new.len(),
        new.iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        fixed.is_empty(),
        "known violations no longer seen (remove them from KNOWN_VIOLATIONS): {fixed:?}"
    );
}

/// After all cases: the server still signs people in and answers.
async fn still_serving(server: &TestServer, handle: &str) {
    server.add_user(handle, PW, "Last").await;
    let mut c = sign_in(server, 12, handle, PW).await;
    go_online(&mut c, 12).await;
}

async fn server() -> Arc<TestServer> {
    watch_panics();
    let server = start().await;
    server.add_user(BUDDY, PW, "Buddy").await;
    Arc::new(server)
}

// ---------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_server_answers_every_command() {
    let server = server().await;
    let violations = run_cases(server.clone(), ns_cases(), "n").await;
    still_serving(&server, "last-ns@robust.test").await;
    assert_no_server_panics();
    judge(&violations, &NS_STATES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchboard_answers_every_command() {
    let server = server().await;
    let violations = run_cases(server.clone(), sb_cases(), "s").await;
    still_serving(&server, "last-sb@robust.test").await;
    assert_no_server_panics();
    judge(&violations, &SB_STATES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_server_answers_every_command() {
    watch_panics();
    let ns_port = free_port();
    let server = start_with(|c| {
        c.msn.dispatch_redirect = true;
        c.msn.notification_listen = Some(ns_port);
    })
    .await;
    let server = Arc::new(server);
    let violations = run_cases(server.clone(), ds_cases(), "d").await;
    assert_no_server_panics();
    judge(&violations, &DS_STATES);
}

/// Payload commands whose declared length is over the limit, or larger than
/// the bytes that follow before the client stops sending: the server closes
/// (at once, or when it reads end-of-file), it neither waits forever nor
/// crashes, and it lets go of the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_oversized_payloads_close_the_connection() {
    let server = server().await;
    // (state, dialect, bytes, half-close after sending)
    let mut cases: Vec<(State, u8, Vec<u8>, bool)> = Vec::new();
    let partial = |head: &str, body: &[u8]| {
        let mut b = format!("{head}\r\n").into_bytes();
        b.extend_from_slice(body);
        b
    };
    let mut no_lf = b"CHG 7 NLN 0 ".to_vec();
    no_lf.resize(9000, b'A');
    for (state, d) in [
        (State::Versioned, 11),
        (State::Online, 9),
        (State::Online, 11),
    ] {
        // Declared more than sent, then end-of-file.
        cases.push((state, d, partial("UUX 7 100", b"<Data>"), true));
        cases.push((
            state,
            d,
            partial("QRY 7 msmsgs@msnmsgr.com 32", b"8f2f5"),
            true,
        ));
        let sdc = "SDC 7 friend@example.com 0x0409 MSMSGS WindowsMessenger X X Alice 50";
        cases.push((state, d, partial(sdc, b"hi"), true));
        cases.push((state, d, partial("UUX 7 7500", &[b'x'; 7499]), true));
        // A line cut short, then end-of-file.
        cases.push((state, d, b"CHG 7 NL".to_vec(), true));
        // Over the limit (7500 on the NS) or not a number: closed without waiting.
        cases.push((state, d, b"UUX 7 7501\r\n".to_vec(), false));
        cases.push((
            state,
            d,
            b"QRY 7 msmsgs@msnmsgr.com 4294967296\r\n".to_vec(),
            false,
        ));
        cases.push((
            state,
            d,
            b"UUX 7 99999999999999999999999\r\n".to_vec(),
            false,
        ));
        cases.push((state, d, no_lf.clone(), false));
    }
    for &d in SB_DIALECTS {
        for state in [State::SbAlone, State::SbPair] {
            cases.push((state, d, partial("MSG 7 A 500", b"MIME-Version"), true));
            cases.push((state, d, partial("MSG 7 D 1664", &[0u8; 1663]), true));
            cases.push((state, d, b"MSG 7 A 1665\r\n".to_vec(), false));
            cases.push((state, d, b"MSG 7 A 4294967296\r\n".to_vec(), false));
            cases.push((state, d, b"MSG 7 A".to_vec(), true));
        }
    }
    let mut failures = Vec::new();
    for (i, (state, d, bytes, half_close)) in cases.into_iter().enumerate() {
        let me = format!("t{i:07}@robust.test");
        let peer = format!("t{i:06}p@robust.test");
        let label = format!(
            "MSNP{d} {state:?}: {}{}",
            show(&bytes),
            if half_close { " + end-of-file" } else { "" }
        );
        let mut s = setup(&server, d, state, &me, &peer).await;
        let _ = s.client.try_send_raw(&bytes).await;
        if half_close {
            s.client.shutdown_write().await;
        }
        let deadline = Instant::now() + WAIT;
        let mut lines = Vec::new();
        let closed = loop {
            match s
                .client
                .recv_within(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                None => break false,
                Some(None) => break true,
                Some(Some(cmd)) => lines.push(render(&cmd)),
            }
        };
        if !closed {
            failures.push(format!(
                "{label} -> not closed within {WAIT:?} (got {lines:?})"
            ));
            continue;
        }
        if state.signed_in() {
            // The session ends with the connection.
            let hub = server.hub();
            eventually(&format!("{label}: session of {me} ends"), || {
                hub.session(&me).is_none()
            })
            .await;
        }
        if state == State::SbPair {
            // The other participant learns that the sender left.
            let other = &mut s._keep[2];
            let bye = other.recv_named("BYE").await;
            assert_eq!(bye.args.first(), Some(&me), "{label}: {}", render(&bye));
        }
    }
    still_serving(&server, "last-payload@robust.test").await;
    assert_no_server_panics();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Many commands in one write, most of them refused with an error: every
/// TrID is answered, in the order sent, and every `PNG` gets its `QNG`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_are_all_answered_in_order() {
    let server = server().await;
    for &d in NS_DIALECTS {
        let me = format!("pipe{d}@robust.test");
        let mut s = setup(&server, d, State::Online, &me, "").await;
        let c = &mut s.client;
        let mut bytes = Vec::new();
        let mut trids = Vec::new();
        let mut pings = 0;
        let caps = if d >= 8 { " 0" } else { "" };
        let sdc_or_snd = if d >= 5 {
            "SDC {t} not-an-address 0x0409 MSMSGS WindowsMessenger X X Alice 0"
        } else {
            "SND {t} not-an-address"
        };
        let add = if d >= 10 {
            format!("ADC {{t}} FL N={NOBODY} F=x")
        } else {
            format!("ADD {{t}} FL {NOBODY} {NOBODY}")
        };
        let templates: Vec<String> = [
            "BLP {t} AL",
            "GTC {t} A",
            &format!("REM {{t}} AL {BUDDY}"),
            &format!("CHG {{t}} FLN{caps}"),
            "URL {t} INBOX",
            &add,
            "PNG",
            &format!("CHG {{t}} BSY{caps}"),
            &format!("USR {{t}} MD5 I {me}"),
            "FND {t} fname=a lname=b city=* state=* country=*",
            sdc_or_snd,
            &format!("CVR {{t}} 0x0409 winnt 5.1 i386 MSNMSGR 7.0.0813 msmsgs {me}"),
            "IMS {t} OFF",
            "XFR {t} SB",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut t = 100u32;
        for _ in 0..20 {
            for template in &templates {
                if template == "PNG" {
                    pings += 1;
                    bytes.extend_from_slice(b"PNG\r\n");
                    continue;
                }
                t += 1;
                trids.push(t.to_string());
                bytes.extend_from_slice(template.replace("{t}", &t.to_string()).as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
        }
        c.send_raw(&bytes).await;
        let mut answered = Vec::new();
        let mut qngs = 0;
        let deadline = Instant::now() + TIMEOUT;
        while answered.len() < trids.len() || qngs < pings {
            let cmd = c
                .recv_within(deadline.saturating_duration_since(Instant::now()))
                .await
                .unwrap_or_else(|| {
                    panic!(
                        "MSNP{d}: pipelined commands left unanswered: {:?}, QNG {qngs}/{pings}",
                        trids
                            .iter()
                            .filter(|t| !answered.contains(*t))
                            .collect::<Vec<_>>()
                    )
                })
                .unwrap_or_else(|| panic!("MSNP{d}: connection closed; answered {answered:?}"));
            if cmd.name == "QNG" {
                qngs += 1;
            } else if let Some(first) = cmd.args.first()
                && trids.contains(first)
                && answered.last() != Some(first)
            {
                answered.push(first.clone());
            }
        }
        assert_eq!(answered, trids, "MSNP{d}: answers out of order");
        drain(c).await;
    }
    assert_no_server_panics();
}

/// Cookies used the wrong way on the switchboard: someone else's handle, a
/// second use, a session cookie for `ANS`, an invitation for `USR`, the
/// wrong session id, a session everyone has left. Each is refused with 911
/// (then a close) or a close, never left unanswered (switchboard.md §3, §5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchboard_cookie_misuse_is_answered() {
    let server = server().await;
    let mut failures = Vec::new();
    for &d in SB_DIALECTS {
        let caller = format!("cookie-a{d}@robust.test");
        let invitee = format!("cookie-b{d}@robust.test");
        for h in [&caller, &invitee] {
            server.add_user(h, PW, "Cookie").await;
        }
        let mut a = sign_in(&server, d, &caller, PW).await;
        go_online(&mut a, d).await;
        let mut b = sign_in(&server, d, &invitee, PW).await;
        go_online(&mut b, d).await;
        let sb = server.running.switchboard_addr;
        let mut run = async |what: &str, line: String, expect: Expect| {
            let mut c = Client::connect(sb).await;
            let p = probe_line(&line, expect);
            if let Err(problem) = check(&mut c, &p, d, State::SbFresh, &caller).await {
                failures.push(format!("MSNP{d} {what}: {} -> {problem}", show(&p.bytes)));
            }
        };
        // A fresh session cookie presented with another user's handle.
        let cookie = xfr_cookie(&mut a).await;
        run(
            "foreign handle",
            format!("USR 7 {invitee} {cookie}"),
            err(&[911]),
        )
        .await;
        // The same cookie, already spent (or never valid for the owner now).
        run(
            "spent cookie",
            format!("USR 7 {caller} {cookie}"),
            Expect::Answer,
        )
        .await;
        // A session cookie is no invitation.
        let cookie = xfr_cookie(&mut a).await;
        run(
            "ANS with XFR cookie",
            format!("ANS 7 {caller} {cookie} 1"),
            err(&[911]),
        )
        .await;
        // An invitation (in a session of its own each time) used for USR.
        let (_asb, _, invitation) = invite(&server, &mut a, &caller, &mut b, &invitee).await;
        run(
            "USR with invitation",
            format!("USR 7 {invitee} {invitation}"),
            Expect::Answer,
        )
        .await;
        // The wrong session id, or someone else's handle.
        let (_asb, session, invitation) = invite(&server, &mut a, &caller, &mut b, &invitee).await;
        let wrong = session.parse::<u64>().unwrap() + 1000;
        run(
            "ANS wrong session",
            format!("ANS 7 {invitee} {invitation} {wrong}"),
            Expect::Answer,
        )
        .await;
        let (_asb, session, invitation) = invite(&server, &mut a, &caller, &mut b, &invitee).await;
        run(
            "ANS foreign handle",
            format!("ANS 7 {caller} {invitation} {session}"),
            Expect::Answer,
        )
        .await;
        // The session empties before the invitee answers.
        let (mut asb, session, invitation) =
            invite(&server, &mut a, &caller, &mut b, &invitee).await;
        asb.send("OUT").await;
        asb.expect_closed().await;
        run(
            "ANS to an empty session",
            format!("ANS 7 {invitee} {invitation} {session}"),
            Expect::Answer,
        )
        .await;
    }
    still_serving(&server, "last-cookie@robust.test").await;
    assert_no_server_panics();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A new session of `caller` with `invitee` called: (caller's SB, session id, invitation cookie).
async fn invite(
    server: &TestServer,
    a: &mut Client,
    caller: &str,
    b: &mut Client,
    invitee: &str,
) -> (Client, String, String) {
    let cookie = xfr_cookie(a).await;
    let mut asb = Client::connect(server.running.switchboard_addr).await;
    asb.send(&format!("USR 1 {caller} {cookie}")).await;
    asb.recv_named("USR").await;
    asb.send(&format!("CAL 2 {invitee}")).await;
    let session = asb.recv_named("CAL").await.args[2].clone();
    let invitation = b.recv_named("RNG").await.args[3].clone();
    (asb, session, invitation)
}

async fn xfr_cookie(ns: &mut Client) -> String {
    let t = ns.next();
    ns.send(&format!("XFR {t} SB")).await;
    ns.recv_named("XFR").await.args[4].clone()
}

fn probe_line(line: &str, expect: Expect) -> Probe {
    let token = line.split(' ').nth(1);
    raw(format!("{line}\r\n").as_bytes(), token, expect)
}

// ---------------------------------------------------------------------------
// Notification clients that stop reading.

/// Sends a request and reads until the reply with its TrID (returned).
async fn request(c: &mut Client, line: &str) -> Command {
    let t = c.next();
    c.send(&line.replace("{t}", &t.to_string())).await;
    loop {
        let cmd = c.recv().await;
        if cmd.trid() == Some(t) {
            return cmd;
        }
    }
}

/// Two MSNP7 users on each other's forward list, both online; `alice`
/// connected with a small receive window.
async fn watched_pair(server: &TestServer, alice: &str, bob: &str) -> (Client, Client) {
    server.add_user(alice, PW, "Alice").await;
    server.add_user(bob, PW, "Bob").await;
    let small = Client::connect_with_small_window(server.ns(), 4096).await;
    let mut a = sign_in_md5_on(small, 7, alice, PW).await;
    let mut b = sign_in_md5(server.ns(), 7, bob, PW).await;
    assert_eq!(
        request(&mut a, &format!("ADD {{t}} FL {bob} {bob} 0"))
            .await
            .name,
        "ADD"
    );
    assert_eq!(
        request(&mut b, &format!("ADD {{t}} FL {alice} {alice} 0"))
            .await
            .name,
        "ADD"
    );
    assert_eq!(request(&mut a, "CHG {t} NLN").await.name, "CHG");
    assert_eq!(request(&mut b, "CHG {t} NLN").await.name, "CHG");
    (a, b)
}

/// Sends `PNG` on `stream` without ever reading the answers, until the
/// server closes the connection (or 64 MiB are sent). Counts bytes sent.
fn ping_without_reading(
    stream: tokio::net::TcpStream,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let task = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut stream = stream;
        let chunk = "PNG\r\n".repeat(4096).into_bytes();
        for _ in 0..(64 << 20) / chunk.len() {
            if stream.write_all(&chunk).await.is_err() {
                return;
            }
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });
    (task, sent)
}

/// The `msngate_connections{role="notification"}` gauge from `/metrics`.
async fn notification_connections(server: &TestServer) -> i64 {
    let (_, body) = http_get(server.http(), "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix("msngate_connections{role=\"notification\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("notification connection gauge")
}

#[tokio::test]
async fn a_notification_client_that_stops_reading_is_dropped_and_seen_going_offline() {
    // A short write deadline, so the test does not wait a minute for it.
    let server = start_with(|c| c.msn.write_timeout_secs = 2).await;
    let (alice, bob) = ("alice@nsstuck.test", "bob@nsstuck.test");
    let (a, mut b) = watched_pair(&server, alice, bob).await;
    assert_eq!(notification_connections(&server).await, 2);

    // alice keeps sending and never reads: her answers pile up until the
    // server cannot write to her any more.
    let (flood, _) = ping_without_reading(a.into_stream());
    // bob sees her go offline, as if she had signed out.
    loop {
        let cmd = b.recv().await;
        if render(&cmd) == format!("FLN {alice}") {
            break;
        }
    }
    // Her connection is closed, not just forgotten.
    tokio::time::timeout(TIMEOUT, flood)
        .await
        .expect("alice's connection is still open")
        .expect("flood task");
    eventually_async("alice's connection closed", async || {
        notification_connections(&server).await == 1
    })
    .await;
    assert_eq!(server.hub().online_count(), 1);
    // The server goes on: bob is answered, and alice can sign in again.
    b.send("PNG").await;
    b.expect("QNG").await;
    let mut again = sign_in_md5(server.ns(), 7, alice, PW).await;
    assert_eq!(request(&mut again, "CHG {t} NLN").await.name, "CHG");
    assert_eq!(
        render(&b.recv_named("NLN").await),
        format!("NLN NLN {alice} Alice")
    );
}

#[tokio::test]
async fn a_newer_sign_in_ends_a_connection_that_stopped_reading() {
    // The default write deadline (a minute): only the new sign-in can end
    // the old connection within the test's patience.
    let server = start().await;
    let (alice, bob) = ("alice@nsother.test", "bob@nsother.test");
    let (a, mut b) = watched_pair(&server, alice, bob).await;
    let (flood, sent) = ping_without_reading(a.into_stream());
    // Wait until the flood stalls: the server is stuck writing to alice.
    let mut last = u64::MAX;
    eventually_async("the flood to stall", async || {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = sent.load(std::sync::atomic::Ordering::Relaxed);
        std::mem::replace(&mut last, now) == now
    })
    .await;
    assert_eq!(notification_connections(&server).await, 2);

    let mut again = sign_in_md5(server.ns(), 7, alice, PW).await;
    // The old connection is closed (its client could not even be told).
    tokio::time::timeout(TIMEOUT, flood)
        .await
        .expect("the old connection is still open")
        .expect("flood task");
    eventually_async("the old connection closed", async || {
        notification_connections(&server).await == 2
    })
    .await;
    assert_eq!(server.hub().online_count(), 2);
    // bob saw the old session end; the new one works.
    assert_eq!(render(&b.recv_named("FLN").await), format!("FLN {alice}"));
    assert_eq!(request(&mut again, "CHG {t} NLN").await.name, "CHG");
    assert_eq!(
        render(&b.recv_named("NLN").await),
        format!("NLN NLN {alice} Alice")
    );
}

#[tokio::test]
async fn a_notification_client_whose_queue_fills_is_dropped_before_the_write_deadline() {
    // The smallest queue and the default write deadline (a minute): what
    // ends alice's connection here is her queue filling up.
    let server = start_with(|c| {
        c.msn.max_queued_bytes = 64 * 1024;
        c.msn.rate_limit_changes = 1_000_000;
    })
    .await;
    let (alice, bob) = ("alice@nsfull.test", "bob@nsfull.test");
    let (_a, mut b) = watched_pair(&server, alice, bob).await;
    // alice stops reading; bob changes status again and again, each change
    // a notice for her, until the server gives up on her.
    let mut changes = 0;
    'flood: loop {
        // (The kernel takes a few hundred kilobytes for her before the
        // server's writes stall.)
        assert!(
            changes < 400_000,
            "alice still online after {changes} notices"
        );
        let mut batch = String::new();
        let first = b.trid + 1;
        for i in 0..1000 {
            let t = b.next();
            batch.push_str(&format!("CHG {t} {}\r\n", ["BSY", "NLN"][i % 2]));
        }
        b.send_raw(batch.as_bytes()).await;
        changes += 1000;
        let last = b.trid;
        loop {
            let cmd = b.recv().await;
            if render(&cmd) == format!("FLN {alice}") {
                break 'flood;
            }
            if cmd.trid().is_some_and(|t| t >= first) && cmd.trid() == Some(last) {
                break;
            }
        }
    }
    eventually_async("alice's connection closed", async || {
        notification_connections(&server).await == 1
    })
    .await;
    b.send("PNG").await;
    b.recv_named("QNG").await;
}
