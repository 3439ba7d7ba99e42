//! Contact lists, privacy and presence on the notification server, over
//! real TCP against the real server, with clients of different dialects
//! watching each other.
//!
//! Handles carry the test's name, so every test can share one PostgreSQL
//! database (`MSNGATE_TEST_DATABASE_URL`) with the others.

mod common;
use common::*;
use std::time::Duration;

const PW: &str = "contacts-pw";

/// A handle unique to one test.
fn uid(test: &str, who: &str) -> String {
    format!("{who}.{test}@example.com")
}

/// The capabilities the test client of each dialect announces.
fn caps(dialect: u8) -> u32 {
    match dialect {
        8 => 268435500,
        9 => 805306404,
        10 => 1073741860,
        11 => 1342177312,
        _ => 1610612768,
    }
}

/// An URL-encoded display-picture descriptor of `handle`.
fn msnobj(handle: &str) -> String {
    msnp::urlenc::encode(&format!(
        r#"<msnobj Creator="{handle}" Size="24539" Type="3" Location="TFR2C.tmp" Friendly="AAA=" SHA1D="trC8SlFx2sWQxZMIBAWSEnXc8oQ=" SHA1C="U32o6bosZzluJq82eAtMpx5dIEI="/>"#
    ))
}

/// `status handle name [caps [msnobj]]` as a viewer in `viewer` dialect sees
/// it in `ILN`/`NLN`.
fn seen_as(viewer: u8, status: &str, handle: &str, name: &str, caps: u32, obj: Option<&str>) -> String {
    let mut s = format!("{status} {handle} {name}");
    if viewer >= 8 {
        s.push_str(&format!(" {caps}"));
    }
    if let (true, Some(o)) = (viewer >= 9, obj) {
        s.push_str(&format!(" {o}"));
    }
    s
}

/// Sends `PNG` and returns every line that arrives before its `QNG`. The
/// server answers in order, so that is everything it had sent so far.
async fn drain(c: &mut Client) -> Vec<String> {
    c.send("PNG").await;
    let mut seen = Vec::new();
    loop {
        let cmd = c.recv().await;
        if cmd.name == "QNG" {
            return seen;
        }
        seen.push(render(&cmd));
    }
}

/// Asserts the server has sent nothing since the last command was answered.
async fn quiet(c: &mut Client) {
    let got = drain(c).await;
    assert!(got.is_empty(), "expected nothing, got {got:?}");
}

/// Creates the account and signs it in.
async fn user(server: &TestServer, handle: &str, nick: &str, dialect: u8) -> Client {
    server.add_user(handle, PW, nick).await;
    sign_in(server, dialect, handle, PW).await
}

/// `SYN` with no cache; returns its TrID and the whole dump.
async fn syn(c: &mut Client, dialect: u8) -> (u32, Vec<String>) {
    let t = c.next();
    c.send(&format!("SYN {t} {}", if dialect >= 10 { "0 0" } else { "0" })).await;
    (t, drain(c).await)
}

/// `CHG` in the dialect's form; checks the echo and returns what follows
/// (the `ILN` burst after the first one).
async fn chg(c: &mut Client, dialect: u8, status: &str, obj: Option<&str>) -> Vec<String> {
    let t = c.next();
    let mut line = format!("CHG {t} {status}");
    if dialect >= 8 {
        line.push_str(&format!(" {}", caps(dialect)));
    }
    if let (true, Some(o)) = (dialect >= 9, obj) {
        line.push_str(&format!(" {o}"));
    }
    c.send(&line).await;
    c.expect(&line).await;
    drain(c).await
}

/// Signs in, synchronises and goes online: a client ready for presence.
async fn online(server: &TestServer, handle: &str, nick: &str, dialect: u8) -> Client {
    let mut c = user(server, handle, nick, dialect).await;
    syn(&mut c, dialect).await;
    chg(&mut c, dialect, "NLN", None).await;
    c
}

/// Sends a command with the next TrID (`{t}` in `line`) and returns the
/// reply plus everything after it, all with that TrID filled in.
async fn call(c: &mut Client, line: &str) -> (u32, Vec<String>) {
    let t = c.next();
    c.send(&line.replace("{t}", &t.to_string())).await;
    (t, drain(c).await)
}

/// Asserts `lines` equals `expected` with `{t}` replaced by the TrID.
fn same(lines: &[String], t: u32, expected: &[&str]) {
    let expected: Vec<String> = expected.iter().map(|l| l.replace("{t}", &t.to_string())).collect();
    assert_eq!(lines, expected);
}

fn is_guid(s: &str) -> bool {
    s.len() == 36 && s.chars().enumerate().all(|(i, ch)| if [8, 13, 18, 23].contains(&i) { ch == '-' } else { ch.is_ascii_hexdigit() })
}

/// The `C=` GUID in an `ADC`/`LST` line.
fn guid_in(line: &str) -> String {
    let guid = line.split(' ').find_map(|f| f.strip_prefix("C=")).unwrap_or_else(|| panic!("no C= in {line}"));
    assert!(is_guid(guid), "{line}");
    guid.to_string()
}

// ---------------------------------------------------------------------------
// SYN

/// One account's lists, built up by an MSNP7 client (groups, a contact in
/// two groups, AL, BL, phone numbers, GTC) and by others (a phone number the
/// contact shares, a reverse-list entry), then read back by every dialect.
#[tokio::test]
async fn syn_dump_in_every_dialect_shows_the_same_lists() {
    let server = start().await;
    let (alice, bob, carol) = (uid("syn_dump", "alice"), uid("syn_dump", "bob"), uid("syn_dump", "carol"));

    server.add_user(&carol, PW, "Carol").await;
    // bob shares two phone properties (BLP AL lets alice see them).
    let mut b = user(&server, &bob, "Bob B", 9).await;
    let (t, got) = call(&mut b, "PRP {t} PHH 555%204321").await;
    same(&got, t, &["PRP {t} 2 PHH 555%204321"]);
    let (t, got) = call(&mut b, "PRP {t} MOB Y").await;
    same(&got, t, &["PRP {t} 3 MOB Y"]);

    let mut a = user(&server, &alice, "Alice A", 7).await;
    let (t, got) = syn(&mut a, 7).await;
    same(&got, t, &[
        "SYN {t} 1",
        "GTC {t} 1 A",
        "BLP {t} 1 AL",
        "LSG {t} 1 1 1 0 Other%20Contacts 0",
        "LST {t} FL 1 0 0",
        "LST {t} AL 1 0 0",
        "LST {t} BL 1 0 0",
        "LST {t} RL 1 0 0",
    ]);
    let (t, got) = call(&mut a, "ADG {t} Friends 0").await;
    same(&got, t, &["ADG {t} 2 Friends 1 0"]);
    // A new forward contact: the reply, then the contact's phone data (MSNP5+).
    let (t, got) = call(&mut a, &format!("ADD {{t}} FL {bob} Bobby 0")).await;
    same(&got, t, &[
        &format!("ADD {{t}} FL 3 {bob} Bobby 0"),
        &format!("BPR 3 {bob} PHH 555%204321"),
        &format!("BPR 3 {bob} PHW"),
        &format!("BPR 3 {bob} PHM"),
        &format!("BPR 3 {bob} MOB Y"),
    ]);
    // The same contact into a second group: no phone data again.
    let (t, got) = call(&mut a, &format!("ADD {{t}} FL {bob} Bobby 1")).await;
    same(&got, t, &[&format!("ADD {{t}} FL 4 {bob} Bobby 1")]);
    let (t, got) = call(&mut a, &format!("ADD {{t}} AL {bob} Bobby")).await;
    same(&got, t, &[&format!("ADD {{t}} AL 5 {bob} Bobby")]);
    let (t, got) = call(&mut a, &format!("ADD {{t}} BL {carol} {carol}")).await;
    same(&got, t, &[&format!("ADD {{t}} BL 6 {carol} {carol}")]);
    let (t, got) = call(&mut a, "PRP {t} PHH 555%201234").await;
    same(&got, t, &["PRP {t} 7 PHH 555%201234"]);
    let (t, got) = call(&mut a, "GTC {t} N").await;
    same(&got, t, &["GTC {t} 8 N"]);

    // carol (MSNP10) adds alice: alice's reverse list grows (version 9) and
    // she is told at once; carol gets blank phone data (alice blocks her).
    let mut c = sign_in(&server, 10, &carol, PW).await;
    syn(&mut c, 10).await;
    let (t, got) = call(&mut c, &format!("ADC {{t}} FL N={alice} F=Alice")).await;
    assert_eq!(got[0], format!("ADC {t} FL N={alice} F=Alice C={}", guid_in(&got[0])));
    assert_eq!(got[1..], [format!("BPR {alice} PHH"), format!("BPR {alice} PHW"), format!("BPR {alice} PHM"), format!("BPR {alice} MOB N")]);
    a.expect(&format!("ADD 0 RL 9 {carol} Carol")).await;
    a.send("OUT").await;
    a.expect_closed().await;

    // MSNP2: four lists, no groups, no phone data.
    let mut a = sign_in(&server, 2, &alice, PW).await;
    let (t, got) = syn(&mut a, 2).await;
    same(&got, t, &[
        "SYN {t} 9",
        "GTC {t} 9 N",
        "BLP {t} 9 AL",
        &format!("LST {{t}} FL 9 1 1 {bob} Bobby"),
        &format!("LST {{t}} AL 9 1 1 {bob} Bobby"),
        &format!("LST {{t}} BL 9 1 1 {carol} {carol}"),
        &format!("LST {{t}} RL 9 1 1 {carol} {carol}"),
    ]);
    // MSNP5: own phone numbers (PRP) and the contact's (BPR after its FL line).
    let mut a = sign_in(&server, 5, &alice, PW).await;
    let (t, got) = syn(&mut a, 5).await;
    same(&got, t, &[
        "SYN {t} 9",
        "GTC {t} 9 N",
        "BLP {t} 9 AL",
        "PRP {t} 9 PHH 555%201234",
        &format!("LST {{t}} FL 9 1 1 {bob} Bobby"),
        &format!("BPR 9 {bob} MOB Y"),
        &format!("BPR 9 {bob} PHH 555%204321"),
        &format!("LST {{t}} AL 9 1 1 {bob} Bobby"),
        &format!("LST {{t}} BL 9 1 1 {carol} {carol}"),
        &format!("LST {{t}} RL 9 1 1 {carol} {carol}"),
    ]);
    // MSNP7: groups, and the contact in groups 0 and 1.
    let mut a = sign_in(&server, 7, &alice, PW).await;
    let (t, got) = syn(&mut a, 7).await;
    same(&got, t, &[
        "SYN {t} 9",
        "GTC {t} 9 N",
        "BLP {t} 9 AL",
        "PRP {t} 9 PHH 555%201234",
        "LSG {t} 9 1 2 0 Other%20Contacts 0",
        "LSG {t} 9 2 2 1 Friends 0",
        &format!("LST {{t}} FL 9 1 1 {bob} Bobby 0,1"),
        &format!("BPR 9 {bob} MOB Y"),
        &format!("BPR 9 {bob} PHH 555%204321"),
        &format!("LST {{t}} AL 9 1 1 {bob} Bobby"),
        &format!("LST {{t}} BL 9 1 1 {carol} {carol}"),
        &format!("LST {{t}} RL 9 1 1 {carol} {carol}"),
    ]);
    // MSNP8: one LST per contact with list bits, no TrIDs on dump lines.
    let mut a = sign_in(&server, 8, &alice, PW).await;
    let (t, got) = syn(&mut a, 8).await;
    same(&got, t, &[
        "SYN {t} 9 2 2",
        "GTC N",
        "BLP AL",
        "PRP PHH 555%201234",
        "LSG 0 Other%20Contacts 0",
        "LSG 1 Friends 0",
        &format!("LST {bob} Bobby 3 0,1"),
        "BPR MOB Y",
        "BPR PHH 555%204321",
        &format!("LST {carol} {carol} 12"),
    ]);
    // MSNP10: GUIDs, PRP MFN, timestamps, no group 0.
    let mut a = sign_in(&server, 10, &alice, PW).await;
    let (t, got) = syn(&mut a, 10).await;
    let head: Vec<&str> = got[0].split(' ').collect();
    assert_eq!((head[0], head[1], head[4], head[5]), ("SYN", t.to_string().as_str(), "2", "1"), "{got:?}");
    assert!(head[2].contains('T') && head[2] == head[3], "timestamps: {}", got[0]);
    let group_guid = got[5].strip_prefix("LSG Friends ").expect("LSG line").to_string();
    assert!(is_guid(&group_guid), "{got:?}");
    let bob_guid = guid_in(&got[6]);
    same(&got[1..], t, &[
        "GTC N",
        "BLP AL",
        "PRP MFN Alice%20A",
        "PRP PHH 555%201234",
        &format!("LSG Friends {group_guid}"),
        &format!("LST N={bob} F=Bobby C={bob_guid} 3 {group_guid}"),
        "BPR MOB Y",
        "BPR PHH 555%204321",
        &format!("LST N={carol} F={carol} 12"),
    ]);
    // MSNP12: the network id after the list bits; the same GUIDs.
    let mut a = sign_in(&server, 12, &alice, PW).await;
    let (t, got) = syn(&mut a, 12).await;
    same(&got[6..], t, &[
        &format!("LST N={bob} F=Bobby C={bob_guid} 3 1 {group_guid}"),
        "BPR MOB Y",
        "BPR PHH 555%204321",
        &format!("LST N={carol} F={carol} 12 1"),
    ]);
}

/// A client whose cached list version is current gets the short form
/// (MSNP2–9); a stale one gets everything; MSNP10+ always gets everything.
#[tokio::test]
async fn syn_short_form_when_the_cached_version_is_current() {
    let server = start().await;
    let (alice, bob) = (uid("syn_short", "alice"), uid("syn_short", "bob"));
    server.add_user(&bob, PW, "Bob").await;
    let mut a = user(&server, &alice, "Alice", 7).await;
    syn(&mut a, 7).await;
    let (t, got) = call(&mut a, &format!("ADD {{t}} FL {bob} {bob} 0")).await;
    same(&got[..1], t, &[&format!("ADD {{t}} FL 2 {bob} {bob} 0")]);
    for dialect in [2u8, 7, 9] {
        let mut a = sign_in(&server, dialect, &alice, PW).await;
        let (t, got) = call(&mut a, "SYN {t} 2").await;
        same(&got, t, &["SYN {t} 2"]);
        // An older cache gets the whole list again.
        let (t, got) = call(&mut a, "SYN {t} 1").await;
        assert_eq!(got[0].split(' ').take(3).collect::<Vec<_>>(), ["SYN", &t.to_string(), "2"], "{got:?}");
        assert!(got.iter().any(|l| l.contains(&bob)), "MSNP{dialect}: {got:?}");
    }
    let mut a = sign_in(&server, 11, &alice, PW).await;
    let (_, got) = call(&mut a, "SYN {t} 2 2").await;
    assert!(got.iter().any(|l| l.starts_with(&format!("LST N={bob} F={bob} C="))), "{got:?}");
}

// ---------------------------------------------------------------------------
// Lists, reverse-list notices and presence between dialects

/// An MSNP2 user and an MSNP12 user put each other on their lists while
/// both are online, watch each other's status and name changes, and take
/// each other off again.
#[tokio::test]
async fn msnp2_and_msnp12_users_add_watch_and_remove_each_other() {
    let server = start().await;
    let (alice, bob) = (uid("p2_p12", "alice"), uid("p2_p12", "bob"));
    let obj = msnobj(&bob);
    let bob_caps = caps(12);
    let mut a = online(&server, &alice, "Alice A", 2).await;
    let mut b = user(&server, &bob, "Bob B", 12).await;
    syn(&mut b, 12).await;
    assert!(chg(&mut b, 12, "NLN", Some(&obj)).await.is_empty());

    // alice adds bob: her reply, then bob's presence (he is online and lets
    // her see him); bob is told at once in his own dialect.
    let (t, got) = call(&mut a, &format!("ADD {{t}} FL {bob} {bob}")).await;
    same(&got, t, &[&format!("ADD {{t}} FL 2 {bob} {bob}"), &format!("ILN {{t}} NLN {bob} Bob%20B")]);
    b.expect(&format!("ADC 0 RL N={alice} F=Alice%20A")).await;
    // bob adds alice back: GUID, blank phone data (she shares none), her presence.
    let (t, got) = call(&mut b, &format!("ADC {{t}} FL N={alice} F=Alice%20A")).await;
    let alice_guid = guid_in(&got[0]);
    same(&got, t, &[
        &format!("ADC {{t}} FL N={alice} F=Alice%20A C={alice_guid}"),
        &format!("BPR {alice} PHH"),
        &format!("BPR {alice} PHW"),
        &format!("BPR {alice} PHM"),
        &format!("BPR {alice} MOB N"),
        &format!("ILN {{t}} NLN {alice} Alice%20A 0"),
    ]);
    a.expect(&format!("ADD 0 RL 3 {bob} Bob%20B")).await;
    // Adding again is refused (a client that re-adds on every ADD must not loop).
    let (t, got) = call(&mut a, &format!("ADD {{t}} FL {bob} {bob}")).await;
    same(&got, t, &["215 {t}"]);
    let (t, got) = call(&mut b, &format!("ADC {{t}} FL N={alice}")).await;
    same(&got, t, &["215 {t}"]);

    // Status, capabilities and picture: MSNP2 sees only the status.
    let (t, got) = call(&mut b, &format!("CHG {{t}} BSY {bob_caps} {obj}")).await;
    same(&got, t, &[&format!("CHG {{t}} BSY {bob_caps} {obj}")]);
    a.expect(&format!("NLN BSY {bob} Bob%20B")).await;
    // bob's new name (MSNP10+: PRP MFN) reaches alice.
    let (t, got) = call(&mut b, "PRP {t} MFN Bobby%20B").await;
    same(&got, t, &["PRP {t} MFN Bobby%20B"]);
    a.expect(&format!("NLN BSY {bob} Bobby%20B")).await;
    // alice's (MSNP2–9: REA with her own handle) reaches bob, with caps 0.
    let (t, got) = call(&mut a, &format!("REA {{t}} {alice} Al")).await;
    same(&got, t, &[&format!("REA {{t}} 4 {alice} Al")]);
    b.expect(&format!("NLN NLN {alice} Al 0")).await;
    // Renaming a contact only changes alice's own list.
    let (t, got) = call(&mut a, &format!("REA {{t}} {bob} Robert")).await;
    same(&got, t, &[&format!("REA {{t}} 5 {bob} Robert")]);
    quiet(&mut b).await;
    // A personal message is not shown to an MSNP2 client at all.
    let psm = b"<Data><PSM>hello</PSM><CurrentMedia></CurrentMedia></Data>";
    let t = b.next();
    b.send_payload(&format!("UUX {t}"), psm).await;
    b.expect(&format!("UUX {t} 0")).await;
    quiet(&mut a).await;
    let (t, got) = call(&mut a, "CHG {t} AWY").await;
    same(&got, t, &["CHG {t} AWY"]);
    b.expect(&format!("NLN AWY {alice} Al 0")).await;

    // bob removes alice (by GUID): alice's reverse list loses him at once.
    let (t, got) = call(&mut b, &format!("REM {{t}} FL {alice_guid}")).await;
    same(&got, t, &[&format!("REM {{t}} FL {alice_guid}")]);
    a.expect(&format!("REM 0 RL 6 {bob}")).await;
    // ...and no longer watches her.
    let (t, got) = call(&mut a, "CHG {t} BRB").await;
    same(&got, t, &["CHG {t} BRB"]);
    quiet(&mut b).await;
    let (t, got) = call(&mut a, &format!("REM {{t}} FL {bob}")).await;
    same(&got, t, &[&format!("REM {{t}} FL 7 {bob}")]);
    b.expect(&format!("REM 0 RL {alice}")).await;
    let (t, got) = call(&mut b, &format!("CHG {{t}} IDL {bob_caps}")).await;
    same(&got, t, &[&format!("CHG {{t}} IDL {bob_caps}")]);
    quiet(&mut a).await;
    // Both lists as a fresh sign-in sees them: nothing left but bob's stored name is gone too.
    let (_, got) = syn(&mut sign_in(&server, 2, &alice, PW).await, 2).await;
    assert_eq!(got[3..], ["LST {t} FL 7 0 0", "LST {t} AL 7 0 0", "LST {t} BL 7 0 0", "LST {t} RL 7 0 0"].map(|l| l.replace("{t}", "5")));
}

/// When a user is offline, being added shows up on the reverse list at the
/// next SYN (and an online user who has not synchronised yet gets it there).
#[tokio::test]
async fn reverse_list_reaches_an_offline_user_at_the_next_syn() {
    let server = start().await;
    let (alice, bob, carol) = (uid("rl_offline", "alice"), uid("rl_offline", "bob"), uid("rl_offline", "carol"));
    server.add_user(&bob, PW, "Bob").await;
    server.add_user(&carol, PW, "Carol").await;
    let mut a = online(&server, &alice, "Alice A", 9).await;
    let (t, got) = call(&mut a, &format!("ADD {{t}} FL {bob} {bob} 0")).await;
    same(&got, t, &[
        &format!("ADD {{t}} FL 2 {bob} {bob} 0"),
        &format!("BPR 2 {bob} PHH"),
        &format!("BPR 2 {bob} PHW"),
        &format!("BPR 2 {bob} PHM"),
        &format!("BPR 2 {bob} MOB N"),
    ]);
    let (t, got) = call(&mut a, &format!("ADD {{t}} FL {carol} {carol} 0")).await;
    assert_eq!(got[0], format!("ADD {t} FL 3 {carol} {carol} 0"));

    // bob (MSNP11) signs in later.
    let mut b = sign_in(&server, 11, &bob, PW).await;
    let (t, got) = syn(&mut b, 11).await;
    assert_eq!(got[0].split(' ').skip(4).collect::<Vec<_>>(), ["1", "0"], "{got:?}");
    same(&got[1..], t, &["GTC A", "BLP AL", "PRP MFN Bob", &format!("LST N={alice} F=Alice%20A 8")]);
    // carol (MSNP7) is signed in but has not sent SYN: no notice, the dump has it.
    let mut c = sign_in(&server, 7, &carol, PW).await;
    let (t, got) = call(&mut a, &format!("REA {{t}} {alice} Alice%20B")).await;
    same(&got, t, &[&format!("REA {{t}} 4 {alice} Alice%20B")]);
    quiet(&mut c).await;
    let (t, got) = syn(&mut c, 7).await;
    same(&got, t, &[
        "SYN {t} 2",
        "GTC {t} 2 A",
        "BLP {t} 2 AL",
        "LSG {t} 2 1 1 0 Other%20Contacts 0",
        "LST {t} FL 2 0 0",
        "LST {t} AL 2 0 0",
        "LST {t} BL 2 0 0",
        &format!("LST {{t}} RL 2 1 1 {alice} Alice%20A"),
    ]);
}
