//! Contact lists, privacy and presence on the notification server, over
//! real TCP against the real server, with clients of different dialects
//! watching each other.
//!
//! Handles carry the test's name, so the tests would also work against one
//! database shared by all of them (the harness gives each its own).

mod common;
use common::*;
use std::future::Future;
use std::time::Duration;

const PW: &str = "contacts-pw";

/// Runs a test body on its own runtime, on a thread with a large stack:
/// unoptimised builds give every awaited future its own stack slot, and a
/// long conversation between several clients outgrows the default 2 MiB.
fn run(body: impl Future<Output = ()> + Send + 'static) {
    let thread = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(body)
        })
        .expect("test thread");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

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
fn seen_as(
    viewer: u8,
    status: &str,
    handle: &str,
    name: &str,
    caps: u32,
    obj: Option<&str>,
) -> String {
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
    c.send(&format!(
        "SYN {t} {}",
        if dialect >= 10 { "0 0" } else { "0" }
    ))
    .await;
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
    let expected: Vec<String> = expected
        .iter()
        .map(|l| l.replace("{t}", &t.to_string()))
        .collect();
    assert_eq!(lines, expected);
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, ch)| {
            if [8, 13, 18, 23].contains(&i) {
                ch == '-'
            } else {
                ch.is_ascii_hexdigit()
            }
        })
}

/// The `C=` GUID in an `ADC`/`LST` line.
fn guid_in(line: &str) -> String {
    let guid = line
        .split(' ')
        .find_map(|f| f.strip_prefix("C="))
        .unwrap_or_else(|| panic!("no C= in {line}"));
    assert!(is_guid(guid), "{line}");
    guid.to_string()
}

// ---------------------------------------------------------------------------
// SYN

/// One account's lists, built up by an MSNP7 client (groups, a contact in
/// two groups, AL, BL, phone numbers, GTC) and by others (a phone number the
/// contact shares, a reverse-list entry), then read back by every dialect.
#[test]
fn syn_dump_in_every_dialect_shows_the_same_lists() {
    run(async {
        let server = start().await;
        let (alice, bob, carol) = (
            uid("syn_dump", "alice"),
            uid("syn_dump", "bob"),
            uid("syn_dump", "carol"),
        );

        server.add_user(&carol, PW, "Carol").await;
        // bob shares two phone properties (BLP AL lets alice see them).
        let mut b = user(&server, &bob, "Bob B", 9).await;
        let (t, got) = call(&mut b, "PRP {t} PHH 555%204321").await;
        same(&got, t, &["PRP {t} 2 PHH 555%204321"]);
        let (t, got) = call(&mut b, "PRP {t} MOB Y").await;
        same(&got, t, &["PRP {t} 3 MOB Y"]);

        let mut a = user(&server, &alice, "Alice A", 7).await;
        let (t, got) = syn(&mut a, 7).await;
        same(
            &got,
            t,
            &[
                "SYN {t} 1",
                "GTC {t} 1 A",
                "BLP {t} 1 AL",
                "LSG {t} 1 1 1 0 Other%20Contacts 0",
                "LST {t} FL 1 0 0",
                "LST {t} AL 1 0 0",
                "LST {t} BL 1 0 0",
                "LST {t} RL 1 0 0",
            ],
        );
        let (t, got) = call(&mut a, "ADG {t} Friends 0").await;
        same(&got, t, &["ADG {t} 2 Friends 1 0"]);
        // A new forward contact: the reply, then the contact's phone data (MSNP5+).
        let (t, got) = call(&mut a, &format!("ADD {{t}} FL {bob} Bobby 0")).await;
        same(
            &got,
            t,
            &[
                &format!("ADD {{t}} FL 3 {bob} Bobby 0"),
                &format!("BPR 3 {bob} PHH 555%204321"),
                &format!("BPR 3 {bob} PHW"),
                &format!("BPR 3 {bob} PHM"),
                &format!("BPR 3 {bob} MOB Y"),
            ],
        );
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
        assert_eq!(
            got[0],
            format!("ADC {t} FL N={alice} F=Alice C={}", guid_in(&got[0]))
        );
        assert_eq!(
            got[1..],
            [
                format!("BPR {alice} PHH"),
                format!("BPR {alice} PHW"),
                format!("BPR {alice} PHM"),
                format!("BPR {alice} MOB N")
            ]
        );
        a.expect(&format!("ADD 0 RL 9 {carol} Carol")).await;
        a.send("OUT").await;
        a.expect_closed().await;

        // MSNP2: four lists, no groups, no phone data.
        let mut a = sign_in(&server, 2, &alice, PW).await;
        let (t, got) = syn(&mut a, 2).await;
        same(
            &got,
            t,
            &[
                "SYN {t} 9",
                "GTC {t} 9 N",
                "BLP {t} 9 AL",
                &format!("LST {{t}} FL 9 1 1 {bob} Bobby"),
                &format!("LST {{t}} AL 9 1 1 {bob} Bobby"),
                &format!("LST {{t}} BL 9 1 1 {carol} {carol}"),
                &format!("LST {{t}} RL 9 1 1 {carol} {carol}"),
            ],
        );
        // MSNP5: own phone numbers (PRP) and the contact's (BPR after its FL line).
        let mut a = sign_in(&server, 5, &alice, PW).await;
        let (t, got) = syn(&mut a, 5).await;
        same(
            &got,
            t,
            &[
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
            ],
        );
        // MSNP7: groups, and the contact in groups 0 and 1.
        let mut a = sign_in(&server, 7, &alice, PW).await;
        let (t, got) = syn(&mut a, 7).await;
        same(
            &got,
            t,
            &[
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
            ],
        );
        // MSNP8: one LST per contact with list bits, no TrIDs on dump lines.
        let mut a = sign_in(&server, 8, &alice, PW).await;
        let (t, got) = syn(&mut a, 8).await;
        same(
            &got,
            t,
            &[
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
            ],
        );
        // MSNP10: GUIDs, PRP MFN, timestamps, no group 0.
        let mut a = sign_in(&server, 10, &alice, PW).await;
        let (t, got) = syn(&mut a, 10).await;
        let head: Vec<&str> = got[0].split(' ').collect();
        assert_eq!(
            (head[0], head[1], head[4], head[5]),
            ("SYN", t.to_string().as_str(), "2", "1"),
            "{got:?}"
        );
        assert!(
            head[2].contains('T') && head[2] == head[3],
            "timestamps: {}",
            got[0]
        );
        let group_guid = got[5]
            .strip_prefix("LSG Friends ")
            .expect("LSG line")
            .to_string();
        assert!(is_guid(&group_guid), "{got:?}");
        let bob_guid = guid_in(&got[6]);
        same(
            &got[1..],
            t,
            &[
                "GTC N",
                "BLP AL",
                "PRP MFN Alice%20A",
                "PRP PHH 555%201234",
                &format!("LSG Friends {group_guid}"),
                &format!("LST N={bob} F=Bobby C={bob_guid} 3 {group_guid}"),
                "BPR MOB Y",
                "BPR PHH 555%204321",
                &format!("LST N={carol} F={carol} 12"),
            ],
        );
        // MSNP12: the network id after the list bits; the same GUIDs.
        let mut a = sign_in(&server, 12, &alice, PW).await;
        let (t, got) = syn(&mut a, 12).await;
        same(
            &got[6..],
            t,
            &[
                &format!("LST N={bob} F=Bobby C={bob_guid} 3 1 {group_guid}"),
                "BPR MOB Y",
                "BPR PHH 555%204321",
                &format!("LST N={carol} F={carol} 12 1"),
            ],
        );
    });
}

/// A client whose cached list version is current gets the short form
/// (MSNP2–9); a stale one gets everything; MSNP10+ always gets everything.
#[test]
fn syn_short_form_when_the_cached_version_is_current() {
    run(async {
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
            assert_eq!(
                got[0].split(' ').take(3).collect::<Vec<_>>(),
                ["SYN", &t.to_string(), "2"],
                "{got:?}"
            );
            assert!(
                got.iter().any(|l| l.contains(&bob)),
                "MSNP{dialect}: {got:?}"
            );
        }
        let mut a = sign_in(&server, 11, &alice, PW).await;
        let (_, got) = call(&mut a, "SYN {t} 2 2").await;
        assert!(
            got.iter()
                .any(|l| l.starts_with(&format!("LST N={bob} F={bob} C="))),
            "{got:?}"
        );
    });
}

// ---------------------------------------------------------------------------
// Lists, reverse-list notices and presence between dialects

/// An MSNP2 user and an MSNP12 user put each other on their lists while
/// both are online, watch each other's status and name changes, and take
/// each other off again.
#[test]
fn msnp2_and_msnp12_users_add_watch_and_remove_each_other() {
    run(async {
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
        same(
            &got,
            t,
            &[
                &format!("ADD {{t}} FL 2 {bob} {bob}"),
                &format!("ILN {{t}} NLN {bob} Bob%20B"),
            ],
        );
        b.expect(&format!("ADC 0 RL N={alice} F=Alice%20A")).await;
        // bob adds alice back: GUID, blank phone data (she shares none), her presence.
        let (t, got) = call(&mut b, &format!("ADC {{t}} FL N={alice} F=Alice%20A")).await;
        let alice_guid = guid_in(&got[0]);
        same(
            &got,
            t,
            &[
                &format!("ADC {{t}} FL N={alice} F=Alice%20A C={alice_guid}"),
                &format!("BPR {alice} PHH"),
                &format!("BPR {alice} PHW"),
                &format!("BPR {alice} PHM"),
                &format!("BPR {alice} MOB N"),
                &format!("ILN {{t}} NLN {alice} Alice%20A 0"),
            ],
        );
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
        assert_eq!(
            got[3..],
            [
                "LST {t} FL 7 0 0",
                "LST {t} AL 7 0 0",
                "LST {t} BL 7 0 0",
                "LST {t} RL 7 0 0"
            ]
            .map(|l| l.replace("{t}", "5"))
        );
    });
}

/// When a user is offline, being added shows up on the reverse list at the
/// next SYN (and an online user who has not synchronised yet gets it there).
#[test]
fn reverse_list_reaches_an_offline_user_at_the_next_syn() {
    run(async {
        let server = start().await;
        let (alice, bob, carol) = (
            uid("rl_offline", "alice"),
            uid("rl_offline", "bob"),
            uid("rl_offline", "carol"),
        );
        server.add_user(&bob, PW, "Bob").await;
        server.add_user(&carol, PW, "Carol").await;
        let mut a = online(&server, &alice, "Alice A", 9).await;
        let (t, got) = call(&mut a, &format!("ADD {{t}} FL {bob} {bob} 0")).await;
        same(
            &got,
            t,
            &[
                &format!("ADD {{t}} FL 2 {bob} {bob} 0"),
                &format!("BPR 2 {bob} PHH"),
                &format!("BPR 2 {bob} PHW"),
                &format!("BPR 2 {bob} PHM"),
                &format!("BPR 2 {bob} MOB N"),
            ],
        );
        let (t, got) = call(&mut a, &format!("ADD {{t}} FL {carol} {carol} 0")).await;
        assert_eq!(got[0], format!("ADD {t} FL 3 {carol} {carol} 0"));

        // bob (MSNP11) signs in later.
        let mut b = sign_in(&server, 11, &bob, PW).await;
        let (t, got) = syn(&mut b, 11).await;
        assert_eq!(
            got[0].split(' ').skip(4).collect::<Vec<_>>(),
            ["1", "0"],
            "{got:?}"
        );
        same(
            &got[1..],
            t,
            &[
                "GTC A",
                "BLP AL",
                "PRP MFN Bob",
                &format!("LST N={alice} F=Alice%20A 8"),
            ],
        );
        // carol (MSNP7) is signed in but has not sent SYN: no notice, the dump has it.
        let mut c = sign_in(&server, 7, &carol, PW).await;
        let (t, got) = call(&mut a, &format!("REA {{t}} {alice} Alice%20B")).await;
        same(&got, t, &[&format!("REA {{t}} 4 {alice} Alice%20B")]);
        quiet(&mut c).await;
        let (t, got) = syn(&mut c, 7).await;
        same(
            &got,
            t,
            &[
                "SYN {t} 2",
                "GTC {t} 2 A",
                "BLP {t} 2 AL",
                "LSG {t} 2 1 1 0 Other%20Contacts 0",
                "LST {t} FL 2 0 0",
                "LST {t} AL 2 0 0",
                "LST {t} BL 2 0 0",
                &format!("LST {{t}} RL 2 1 1 {alice} Alice%20A"),
            ],
        );
    });
}

/// MSNP7, MSNP9 and MSNP11 users on each other's lists: the initial ILN
/// burst, every status, capabilities and pictures as each dialect shows
/// them, hiding (FLN, and left out of a later ILN burst).
#[test]
fn msnp7_msnp9_msnp11_trio_see_every_status_in_their_own_dialect() {
    run(async {
        let server = start().await;
        let (alice, bob, carol) = (
            uid("trio", "alice"),
            uid("trio", "bob"),
            uid("trio", "carol"),
        );
        let mut a = user(&server, &alice, "Alice", 7).await;
        let mut b = user(&server, &bob, "Bob", 9).await;
        let mut c = user(&server, &carol, "Carol C", 11).await;
        syn(&mut a, 7).await;
        syn(&mut b, 9).await;
        syn(&mut c, 11).await;
        // Everyone adds everyone before anyone is online: no ILN, but each
        // reverse-list notice arrives at once, in the receiver's dialect.
        let add = |dialect: u8, other: &str| {
            if dialect >= 10 {
                format!("ADC {{t}} FL N={other} F={other}")
            } else {
                format!("ADD {{t}} FL {other} {other} 0")
            }
        };
        for other in [&bob, &carol] {
            let (_, got) = call(&mut a, &add(7, other)).await;
            assert_eq!(got.len(), 5, "reply and four BPR lines, no ILN: {got:?}");
        }
        b.expect(&format!("ADD 0 RL 2 {alice} Alice")).await;
        c.expect(&format!("ADC 0 RL N={alice} F=Alice")).await;
        for other in [&alice, &carol] {
            let (_, got) = call(&mut b, &add(9, other)).await;
            assert_eq!(got.len(), 5, "{got:?}");
        }
        a.expect(&format!("ADD 0 RL 4 {bob} Bob")).await;
        c.expect(&format!("ADC 0 RL N={bob} F=Bob")).await;
        for other in [&alice, &bob] {
            let (_, got) = call(&mut c, &add(11, other)).await;
            assert_eq!(got.len(), 5, "{got:?}");
        }
        a.expect(&format!("ADD 0 RL 5 {carol} Carol%20C")).await;
        b.expect(&format!("ADD 0 RL 5 {carol} Carol%20C")).await;

        // carol sets a personal message before going online.
        let t = c.next();
        c.send_payload(
            &format!("UUX {t}"),
            b"<Data><PSM>at lunch &amp; back</PSM><CurrentMedia></CurrentMedia></Data>",
        )
        .await;
        c.expect(&format!("UUX {t} 0")).await;

        // alice first: nobody else is online, so no ILN.
        assert!(chg(&mut a, 7, "NLN", None).await.is_empty());
        // bob: the ILN burst has alice (no caps in MSNP7, so 0); alice sees bob without caps.
        let (bob_obj, carol_obj) = (msnobj(&bob), msnobj(&carol));
        let (bc, cc) = (caps(9), caps(11));
        assert_eq!(
            chg(&mut b, 9, "NLN", Some(&bob_obj)).await,
            [format!("ILN {} NLN {alice} Alice 0", b.trid)]
        );
        a.expect(&format!("NLN NLN {bob} Bob")).await;
        // carol: ILN for both (bob's picture included), then the presence she
        // causes, each in the watcher's dialect. No UBX for pre-MSNP11 watchers.
        assert_eq!(
            chg(&mut c, 11, "BSY", Some(&carol_obj)).await,
            [
                format!("ILN {} NLN {alice} Alice 0", c.trid),
                format!(
                    "ILN {} {}",
                    c.trid,
                    seen_as(11, "NLN", &bob, "Bob", bc, Some(&bob_obj))
                )
            ]
        );
        a.expect(&format!("NLN BSY {carol} Carol%20C")).await;
        b.expect(&format!(
            "NLN {}",
            seen_as(9, "BSY", &carol, "Carol%20C", cc, Some(&carol_obj))
        ))
        .await;
        quiet(&mut a).await;
        quiet(&mut b).await;

        // Every visible status, as the other two see it.
        for status in ["BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "NLN"] {
            chg(&mut b, 9, status, Some(&bob_obj)).await;
            a.expect(&format!("NLN {status} {bob} Bob")).await;
            c.expect(&format!(
                "NLN {}",
                seen_as(11, status, &bob, "Bob", bc, Some(&bob_obj))
            ))
            .await;
        }
        // A picture change alone is news too; a repeated identical CHG is not.
        chg(&mut b, 9, "NLN", None).await;
        c.expect(&format!(
            "NLN {}",
            seen_as(11, "NLN", &bob, "Bob", bc, None)
        ))
        .await;
        a.expect(&format!("NLN NLN {bob} Bob")).await;
        chg(&mut b, 9, "NLN", None).await;
        quiet(&mut a).await;
        quiet(&mut c).await;
        // Hidden looks offline...
        chg(&mut b, 9, "HDN", None).await;
        a.expect(&format!("FLN {bob}")).await;
        c.expect(&format!("FLN {bob}")).await;
        // ...including to someone who signs in now: carol again, from MSNP12.
        let mut c2 = sign_in(&server, 12, &carol, PW).await;
        c.expect("OUT OTH").await;
        a.expect(&format!("FLN {carol}")).await;
        // Hidden bob still watches others.
        b.expect(&format!("FLN {carol}")).await;
        syn(&mut c2, 12).await;
        assert_eq!(
            chg(&mut c2, 12, "NLN", None).await,
            [format!("ILN {} NLN {alice} Alice 0", c2.trid)]
        );
        a.expect(&format!("NLN NLN {carol} Carol%20C")).await;
        b.expect(&format!(
            "NLN {}",
            seen_as(9, "NLN", &carol, "Carol%20C", caps(12), None)
        ))
        .await;
        // bob comes back: NLN to both.
        chg(&mut b, 9, "AWY", None).await;
        a.expect(&format!("NLN AWY {bob} Bob")).await;
        c2.expect(&format!(
            "NLN {}",
            seen_as(12, "AWY", &bob, "Bob", bc, None)
        ))
        .await;
        quiet(&mut c2).await;
        // Signing out is FLN to everyone watching.
        b.send("OUT").await;
        b.expect_closed().await;
        a.expect(&format!("FLN {bob}")).await;
        c2.expect(&format!("FLN {bob}")).await;
    });
}

// ---------------------------------------------------------------------------
// Privacy

/// Blocking shows the owner offline to the blocked contact at once (and
/// keeps it so across sign-ins); BLP BL leaves only the allow list watching.
#[test]
fn blocking_and_blp_bl_hide_the_owner_from_those_not_allowed() {
    run(async {
        let server = start().await;
        let (alice, bob, carol) = (
            uid("privacy", "alice"),
            uid("privacy", "bob"),
            uid("privacy", "carol"),
        );
        let mut a = online(&server, &alice, "Alice", 8).await;
        let mut b = online(&server, &bob, "Bob", 9).await;
        let mut c = online(&server, &carol, "Carol", 11).await;
        let ac = caps(8);
        for (watcher, dialect) in [(&mut b, 9u8), (&mut c, 11)] {
            let line = if dialect >= 10 {
                format!("ADC {{t}} FL N={alice}")
            } else {
                format!("ADD {{t}} FL {alice} {alice} 0")
            };
            let (t, got) = call(watcher, &line).await;
            assert_eq!(
                got.last().unwrap(),
                &format!("ILN {t} NLN {alice} Alice {ac}"),
                "{got:?}"
            );
        }
        a.expect(&format!("ADD 0 RL 2 {bob} Bob")).await;
        a.expect(&format!("ADD 0 RL 3 {carol} Carol")).await;

        // Block bob: he sees alice go offline, carol sees nothing.
        let (t, got) = call(&mut a, &format!("ADD {{t}} BL {bob} {bob}")).await;
        same(&got, t, &[&format!("ADD {{t}} BL 4 {bob} {bob}")]);
        b.expect(&format!("FLN {alice}")).await;
        quiet(&mut c).await;
        let (t, got) = call(&mut a, &format!("ADD {{t}} BL {bob} {bob}")).await;
        same(&got, t, &["215 {t}"]);
        // Her status changes reach carol only.
        chg(&mut a, 8, "BSY", None).await;
        c.expect(&format!("NLN BSY {alice} Alice {ac}")).await;
        quiet(&mut b).await;
        // A new session of bob's does not get her in its ILN burst.
        let mut b2 = sign_in(&server, 9, &bob, PW).await;
        b.expect("OUT OTH").await;
        syn(&mut b2, 9).await;
        assert!(chg(&mut b2, 9, "NLN", None).await.is_empty());
        // Unblocking shows her again, as she is now.
        let (t, got) = call(&mut a, &format!("REM {{t}} BL {bob}")).await;
        same(&got, t, &[&format!("REM {{t}} BL 5 {bob}")]);
        b2.expect(&format!("NLN BSY {alice} Alice {ac}")).await;
        let (t, got) = call(&mut a, &format!("REM {{t}} BL {bob}")).await;
        same(&got, t, &["216 {t}"]);

        // BLP BL: only the allow list (carol) may see her.
        let (t, got) = call(&mut a, &format!("ADD {{t}} AL {carol} {carol}")).await;
        same(&got, t, &[&format!("ADD {{t}} AL 6 {carol} {carol}")]);
        let (t, got) = call(&mut a, "BLP {t} BL").await;
        same(&got, t, &["BLP {t} 7 BL"]);
        b2.expect(&format!("FLN {alice}")).await;
        quiet(&mut c).await;
        let (t, got) = call(&mut a, "BLP {t} BL").await;
        same(&got, t, &["218 {t}"]);
        chg(&mut a, 8, "AWY", None).await;
        c.expect(&format!("NLN AWY {alice} Alice {ac}")).await;
        quiet(&mut b2).await;
        // Sign-ins respect it too: carol's new session sees her, bob's does not.
        let mut c2 = sign_in(&server, 11, &carol, PW).await;
        c.expect("OUT OTH").await;
        syn(&mut c2, 11).await;
        assert_eq!(
            chg(&mut c2, 11, "NLN", None).await,
            [format!("ILN {} AWY {alice} Alice {ac}", c2.trid)]
        );
        let mut b3 = sign_in(&server, 9, &bob, PW).await;
        b2.expect("OUT OTH").await;
        syn(&mut b3, 9).await;
        assert!(chg(&mut b3, 9, "NLN", None).await.is_empty());
        // Allowing bob explicitly shows her to him; taking that back hides her again.
        let (t, got) = call(&mut a, &format!("ADD {{t}} AL {bob} {bob}")).await;
        same(&got, t, &[&format!("ADD {{t}} AL 8 {bob} {bob}")]);
        b3.expect(&format!("NLN AWY {alice} Alice {ac}")).await;
        let (t, got) = call(&mut a, &format!("REM {{t}} AL {bob}")).await;
        same(&got, t, &[&format!("REM {{t}} AL 9 {bob}")]);
        b3.expect(&format!("FLN {alice}")).await;
        // Back to BLP AL: bob sees her again.
        let (t, got) = call(&mut a, "BLP {t} AL").await;
        same(&got, t, &["BLP {t} 10 AL"]);
        b3.expect(&format!("NLN AWY {alice} Alice {ac}")).await;
        quiet(&mut c2).await;
        // Unknown values are refused.
        let (t, got) = call(&mut a, "BLP {t} XX").await;
        same(&got, t, &["201 {t}"]);
    });
}

/// GTC is stored and echoed; setting the mode in force is 218.
#[test]
fn gtc_is_stored_and_a_repeat_is_218() {
    run(async {
        let server = start().await;
        let alice = uid("gtc", "alice");
        let mut a = user(&server, &alice, "Alice", 9).await;
        let (t, got) = call(&mut a, "GTC {t} A").await;
        same(&got, t, &["218 {t}"]);
        let (t, got) = call(&mut a, "GTC {t} N").await;
        same(&got, t, &["GTC {t} 2 N"]);
        let (t, got) = call(&mut a, "GTC {t} Q").await;
        same(&got, t, &["201 {t}"]);
        let mut a = sign_in(&server, 10, &alice, PW).await;
        let (t, got) = call(&mut a, "GTC {t} A").await;
        same(&got, t, &["GTC {t} A"]);
        let (_, got) = syn(&mut a, 10).await;
        assert_eq!(got[1], "GTC A");
    });
}

/// A phone number changed while watchers are online reaches them at once
/// (`BPR`, numbered with each MSNP5–9 watcher's own list version), but not
/// a blocked watcher, and nobody while the owner appears offline.
#[test]
fn phone_changes_reach_allowed_watchers_at_once() {
    run(async {
        let server = start().await;
        let (bob, alice, erin, carol) = (
            uid("bpr", "bob"),
            uid("bpr", "alice"),
            uid("bpr", "erin"),
            uid("bpr", "carol"),
        );
        let mut b = online(&server, &bob, "Bob", 9).await;
        let mut a = online(&server, &alice, "Alice", 7).await;
        let mut e = online(&server, &erin, "Erin", 12).await;
        let mut c = online(&server, &carol, "Carol", 10).await;
        call(&mut a, &format!("ADD {{t}} FL {bob} Bob 0")).await;
        call(&mut e, &format!("ADC {{t}} FL N={bob} F=Bob")).await;
        call(&mut c, &format!("ADC {{t}} FL N={bob} F=Bob")).await;
        call(&mut b, &format!("ADD {{t}} BL {carol} Carol")).await;
        c.expect(&format!("FLN {bob}")).await;
        let (_, got) = call(&mut a, "GTC {t} N").await;
        let alice_version: i64 = got[0].split(' ').nth(2).unwrap().parse().unwrap();

        call(&mut b, "PRP {t} PHM 555%209876").await;
        a.expect(&format!("BPR {alice_version} {bob} PHM 555%209876"))
            .await;
        e.expect(&format!("BPR {bob} PHM 555%209876")).await;
        quiet(&mut c).await;
        // Cleared: an empty value.
        call(&mut b, "PRP {t} PHM").await;
        a.expect(&format!("BPR {alice_version} {bob} PHM")).await;
        e.expect(&format!("BPR {bob} PHM")).await;
        // Hidden: the change is kept for the next SYN, not announced.
        chg(&mut b, 9, "HDN", None).await;
        a.expect(&format!("FLN {bob}")).await;
        e.expect(&format!("FLN {bob}")).await;
        call(&mut b, "PRP {t} PHH 555%201111").await;
        quiet(&mut a).await;
        quiet(&mut e).await;
    });
}

/// MSNP2–7 clients may ask for one list (`LST trid XX`) or the groups
/// (`LSG trid`, MSNP7) outside `SYN`: the same lines as in the dump.
#[test]
fn list_requests_outside_syn_repeat_the_dump_lines() {
    run(async {
        let server = start().await;
        let (alice, bob) = (uid("lstreq", "alice"), uid("lstreq", "bob"));
        server.add_user(&bob, PW, "Bob").await;
        let mut a = user(&server, &alice, "Alice", 7).await;
        syn(&mut a, 7).await;
        call(&mut a, "ADG {t} Work 0").await;
        call(&mut a, &format!("ADD {{t}} FL {bob} Bob 1")).await;
        let (_, dump) = syn(&mut a, 7).await;
        let (t, got) = call(&mut a, "LST {t} FL").await;
        let from_dump = |prefix: &str, t: u32| -> Vec<String> {
            dump.iter()
                .filter(|l| l.starts_with(prefix))
                .map(|l| {
                    let mut parts: Vec<&str> = l.split(' ').collect();
                    let t = t.to_string();
                    parts[1] = &t;
                    parts.join(" ")
                })
                .collect()
        };
        let fl: Vec<String> = from_dump("LST ", t)
            .into_iter()
            .filter(|l| l.split(' ').nth(2) == Some("FL"))
            .collect();
        assert_eq!(got, fl);
        assert_eq!(got.len(), 1);
        let (t, got) = call(&mut a, "LST {t} BL").await;
        assert_eq!(got, [format!("LST {t} BL 3 0 0")]);
        let (t, got) = call(&mut a, "LSG {t}").await;
        assert_eq!(got, from_dump("LSG ", t));
        assert_eq!(got.len(), 2);
        let (t, got) = call(&mut a, "LST {t} XX").await;
        same(&got, t, &["201 {t}"]);
    });
}

// ---------------------------------------------------------------------------
// Personal messages (MSNP11+)

/// UUX sets the personal message; MSNP11+ watchers get UBX after NLN/ILN
/// and on every change, never while the owner is hidden.
#[test]
fn personal_messages_reach_msnp11_and_msnp12_watchers() {
    run(async {
        let server = start().await;
        let (dave, erin) = (uid("psm", "dave"), uid("psm", "erin"));
        let mut d = online(&server, &dave, "Dave", 11).await;
        let mut e = online(&server, &erin, "Erin", 12).await;
        let (_, got) = call(&mut d, &format!("ADC {{t}} FL N={erin} F=Erin")).await;
        assert_eq!(
            got.last().unwrap(),
            &format!("ILN {} NLN {erin} Erin {}", d.trid, caps(12))
        );
        e.expect(&format!("ADC 0 RL N={dave} F=Dave")).await;

        let set =
            |text: &str| format!("<Data><PSM>{text}</PSM><CurrentMedia></CurrentMedia></Data>");
        let uux = async |c: &mut Client, xml: &str| {
            let t = c.next();
            c.send_payload(&format!("UUX {t}"), xml.as_bytes()).await;
            c.expect(&format!("UUX {t} 0")).await;
        };
        let expect_ubx = async |c: &mut Client, text: &str| {
            let xml = set(text);
            let got = c.expect(&format!("UBX {erin} {}", xml.len())).await;
            assert_eq!(got.payload.as_deref(), Some(xml.as_bytes()));
        };
        uux(&mut e, &set("fish &amp; chips")).await;
        expect_ubx(&mut d, "fish &amp; chips").await;
        // The same text again is no news.
        uux(&mut e, &set("fish &amp; chips")).await;
        quiet(&mut d).await;
        // Hidden: nothing; visible again: NLN then UBX with the current text.
        chg(&mut e, 12, "HDN", None).await;
        d.expect(&format!("FLN {erin}")).await;
        uux(&mut e, &set("secret")).await;
        quiet(&mut d).await;
        chg(&mut e, 12, "BRB", None).await;
        d.expect(&format!("NLN BRB {erin} Erin {}", caps(12))).await;
        expect_ubx(&mut d, "secret").await;
        // A new session of dave's gets ILN then UBX.
        let mut d2 = sign_in(&server, 11, &dave, PW).await;
        d.expect("OUT OTH").await;
        syn(&mut d2, 11).await;
        let t = d2.next();
        d2.send(&format!("CHG {t} NLN {}", caps(11))).await;
        d2.expect(&format!("CHG {t} NLN {}", caps(11))).await;
        d2.expect(&format!("ILN {t} BRB {erin} Erin {}", caps(12)))
            .await;
        expect_ubx(&mut d2, "secret").await;
        // Clearing it is news too.
        uux(
            &mut e,
            "<Data><PSM></PSM><CurrentMedia></CurrentMedia></Data>",
        )
        .await;
        expect_ubx(&mut d2, "").await;
        // A malformed document closes the sender's connection.
        let t = e.next();
        e.send_payload(&format!("UUX {t}"), b"<Data><PSM>broken</Data>")
            .await;
        e.expect_closed().await;
        d2.expect(&format!("FLN {erin}")).await;
    });
}

/// What a user is playing (`CurrentMedia`) reaches watchers beside the
/// personal message, byte for byte; it changes on its own, and it ends with
/// the session while the personal message is kept.
#[test]
fn now_playing_reaches_watchers_and_ends_with_the_session() {
    run(async {
        let server = start().await;
        let (dave, erin) = (uid("media", "dave"), uid("media", "erin"));
        let mut d = online(&server, &dave, "Dave", 11).await;
        let mut e = online(&server, &erin, "Erin", 12).await;
        call(&mut d, &format!("ADC {{t}} FL N={erin} F=Erin")).await;
        e.expect(&format!("ADC 0 RL N={dave} F=Dave")).await;
        let doc = |psm: &str, media: &str| {
            format!("<Data><PSM>{psm}</PSM><CurrentMedia>{media}</CurrentMedia></Data>")
        };
        let uux = async |c: &mut Client, xml: &str| {
            let t = c.next();
            c.send_payload(&format!("UUX {t}"), xml.as_bytes()).await;
            c.expect(&format!("UUX {t} 0")).await;
        };
        let expect_ubx = async |c: &mut Client, xml: &str| {
            let got = c.recv_named("UBX").await;
            assert_eq!(render(&got), format!("UBX {erin} {}", xml.len()));
            assert_eq!(
                String::from_utf8_lossy(got.payload.as_deref().unwrap_or_default()),
                xml
            );
        };
        let song =
            |title: &str| format!("\\0Music\\01\\0{{0}} - {{1}}\\0{title}\\0Artist\\0Album\\0\\0");

        let playing = doc("at work", &song("First"));
        uux(&mut e, &playing).await;
        expect_ubx(&mut d, &playing).await;
        // A new song alone is news.
        let next = doc("at work", &song("Second &amp; Third"));
        uux(&mut e, &next).await;
        expect_ubx(&mut d, &next).await;
        // Switched off in the player: the message stays, the media goes.
        uux(&mut e, &doc("at work", "\\0Music\\00\\0{0}\\0Second\\0\\0")).await;
        expect_ubx(&mut d, &doc("at work", "")).await;
        uux(&mut e, &next).await;
        expect_ubx(&mut d, &next).await;
        // A new session starts with the stored message and nothing playing.
        e.send("OUT").await;
        d.expect(&format!("FLN {erin}")).await;
        let mut e2 = sign_in(&server, 12, &erin, PW).await;
        syn(&mut e2, 12).await;
        chg(&mut e2, 12, "NLN", None).await;
        d.recv_named("NLN").await;
        expect_ubx(&mut d, &doc("at work", "")).await;
        quiet(&mut e2).await;
    });
}

// ---------------------------------------------------------------------------
// Groups

/// MSNP7 groups: create, rename, delete, a contact in several groups (group
/// 0 included), moving between groups as MSN 6 does, and every refusal.
#[test]
fn msnp7_groups_and_their_errors() {
    run(async {
        let server = start().await;
        let (alice, carol) = (uid("groups7", "alice"), uid("groups7", "carol"));
        server.add_user(&carol, PW, "Carol").await;
        let mut a = user(&server, &alice, "Alice", 7).await;
        syn(&mut a, 7).await;
        let (t, got) = call(&mut a, "ADG {t} Work 0").await;
        same(&got, t, &["ADG {t} 2 Work 1 0"]);
        let (t, got) = call(&mut a, "ADG {t} Work 0").await;
        same(&got, t, &["228 {t}"]);
        // 61 encoded bytes is the longest name; one more is 229.
        let longest = format!("{}%20", "x".repeat(58));
        let (t, got) = call(&mut a, &format!("ADG {{t}} {longest} 0")).await;
        same(&got, t, &[&format!("ADG {{t}} 3 {longest} 2 0")]);
        let (t, got) = call(&mut a, &format!("ADG {{t}} y{longest} 0")).await;
        same(&got, t, &["229 {t}"]);
        // Rename: to a free name, not to a taken or too long one, not a missing group.
        let (t, got) = call(&mut a, "REG {t} 2 Fun%20Stuff 0").await;
        same(&got, t, &["REG {t} 4 2 Fun%20Stuff 0"]);
        let (t, got) = call(&mut a, "REG {t} 2 Work 0").await;
        same(&got, t, &["228 {t}"]);
        let (t, got) = call(&mut a, &format!("REG {{t}} 2 y{longest} 0")).await;
        same(&got, t, &["229 {t}"]);
        let (t, got) = call(&mut a, "REG {t} 9 Nine 0").await;
        same(&got, t, &["224 {t}"]);

        // carol in "Work" only, then also in "Fun Stuff".
        let (t, got) = call(&mut a, &format!("ADD {{t}} FL {carol} {carol} 1")).await;
        assert_eq!(got[0], format!("ADD {t} FL 5 {carol} {carol} 1"));
        let (t, got) = call(&mut a, &format!("ADD {{t}} FL {carol} {carol} 2")).await;
        same(&got, t, &[&format!("ADD {{t}} FL 6 {carol} {carol} 2")]);
        let (t, got) = call(&mut a, &format!("ADD {{t}} FL {carol} {carol} 2")).await;
        same(&got, t, &["215 {t}"]);
        let (t, got) = call(&mut a, &format!("ADD {{t}} FL {carol} {carol} 9")).await;
        same(&got, t, &["224 {t}"]);
        // A bad or unknown address is reported before a bad group.
        let (t, got) = call(
            &mut a,
            &format!("ADD {{t}} FL {} x 9", uid("groups7", "nobody")),
        )
        .await;
        same(&got, t, &["205 {t}"]);
        let (t, got) = call(&mut a, "ADD {t} FL a@b x 9").await;
        same(&got, t, &["201 {t}"]);
        // Leaving one group keeps the others.
        let (t, got) = call(&mut a, &format!("REM {{t}} FL {carol} 2")).await;
        same(&got, t, &[&format!("REM {{t}} FL 7 {carol} 2")]);
        let (t, got) = call(&mut a, &format!("REM {{t}} FL {carol} 2")).await;
        same(&got, t, &["225 {t}"]);
        let (t, got) = call(&mut a, &format!("REM {{t}} FL {carol} 9")).await;
        same(&got, t, &["224 {t}"]);
        // MSN 6 moves a contact out of group 0 with ADD to the new group and REM
        // from 0; here from 1 to 0 and back.
        let (t, got) = call(&mut a, &format!("ADD {{t}} FL {carol} {carol} 0")).await;
        same(&got, t, &[&format!("ADD {{t}} FL 8 {carol} {carol} 0")]);
        let (t, got) = call(&mut a, &format!("REM {{t}} FL {carol} 1")).await;
        same(&got, t, &[&format!("REM {{t}} FL 9 {carol} 1")]);
        let (t, got) = call(&mut a, &format!("ADD {{t}} FL {carol} {carol} 2")).await;
        same(&got, t, &[&format!("ADD {{t}} FL 10 {carol} {carol} 2")]);
        let (t, got) = call(&mut a, &format!("REM {{t}} FL {carol} 0")).await;
        same(&got, t, &[&format!("REM {{t}} FL 11 {carol} 0")]);
        // Group 0 cannot be removed; a missing group is 224.
        let (t, got) = call(&mut a, "RMG {t} 0").await;
        same(&got, t, &["230 {t}"]);
        let (t, got) = call(&mut a, "RMG {t} 9").await;
        same(&got, t, &["224 {t}"]);
        let (_, got) = syn(&mut sign_in(&server, 7, &alice, PW).await, 7).await;
        same(
            &got[4..7],
            5,
            &[
                "LSG {t} 11 2 3 1 Work 0",
                "LSG {t} 11 3 3 2 Fun%20Stuff 0",
                &format!("LST {{t}} FL 11 1 1 {carol} {carol} 2"),
            ],
        );
        // Removing a group leaves its members on the list (in group 0).
        let mut a = sign_in(&server, 7, &alice, PW).await;
        let (t, got) = call(&mut a, "RMG {t} 2").await;
        same(&got, t, &["RMG {t} 12 2"]);
        let (t, got) = syn(&mut a, 7).await;
        same(
            &got[3..6],
            t,
            &[
                "LSG {t} 12 1 2 0 Other%20Contacts 0",
                "LSG {t} 12 2 2 1 Work 0",
                &format!("LST {{t}} FL 12 1 1 {carol} {carol} 0"),
            ],
        );
        // Thirty groups at most.
        for n in 2..=30 {
            let (t, got) = call(&mut a, &format!("ADG {{t}} G{n} 0")).await;
            assert!(
                got[0].starts_with(&format!("ADG {t} ")),
                "group {n}: {got:?}"
            );
        }
        let (t, got) = call(&mut a, "ADG {t} One%20too%20many 0").await;
        same(&got, t, &["223 {t}"]);
    });
}

/// MSNP10 groups by GUID: ADG/REG/RMG forms, ADC/REM of a contact in a
/// group, the MSN 7 habit of naming a new group instead of its GUID.
#[test]
fn msnp10_groups_by_guid() {
    run(async {
        let server = start().await;
        let (bob, carol) = (uid("groups10", "bob"), uid("groups10", "carol"));
        server.add_user(&carol, PW, "Carol").await;
        let mut b = user(&server, &bob, "Bob", 10).await;
        syn(&mut b, 10).await;
        let (t, got) = call(&mut b, "ADG {t} Friends").await;
        let group = got[0]
            .strip_prefix(&format!("ADG {t} Friends "))
            .expect("ADG reply")
            .to_string();
        assert!(is_guid(&group), "{got:?}");
        let (t, got) = call(&mut b, &format!("ADC {{t}} FL N={carol} F=Carol")).await;
        let contact = guid_in(&got[0]);
        assert_eq!(got[0], format!("ADC {t} FL N={carol} F=Carol C={contact}"));
        let (t, got) = call(&mut b, &format!("ADC {{t}} FL C={contact} {group}")).await;
        same(&got, t, &[&format!("ADC {{t}} FL C={contact} {group}")]);
        let (t, got) = call(&mut b, &format!("ADC {{t}} FL C={contact} {group}")).await;
        same(&got, t, &["215 {t}"]);
        let (t, got) = call(
            &mut b,
            &format!("ADC {{t}} FL C=00000000-0000-0000-0000-000000000000 {group}"),
        )
        .await;
        same(&got, t, &["208 {t}"]);
        let (t, got) = call(
            &mut b,
            &format!("ADC {{t}} FL C={contact} 00000000-0000-0000-0000-000000000000"),
        )
        .await;
        same(&got, t, &["224 {t}"]);
        let (t, got) = call(&mut b, &format!("REG {{t}} {group} Best%20Friends")).await;
        same(&got, t, &[&format!("REG {{t}} 1 Best%20Friends {group} 0")]);
        let (_, got) = syn(&mut sign_in(&server, 10, &bob, PW).await, 10).await;
        assert_eq!(
            got[4..],
            [
                format!("LSG Best%20Friends {group}"),
                format!("LST N={carol} F=Carol C={contact} 1 {group}")
            ]
        );
        // Out of the group (still on the list), then out of a group it is not in.
        let mut b = sign_in(&server, 10, &bob, PW).await;
        let (t, got) = call(&mut b, &format!("REM {{t}} FL {contact} {group}")).await;
        same(&got, t, &[&format!("REM {{t}} FL {contact} {group}")]);
        let (t, got) = call(&mut b, &format!("REM {{t}} FL {contact} {group}")).await;
        same(&got, t, &["225 {t}"]);
        // Group 0 does not exist here.
        let (t, got) = call(&mut b, "RMG {t} 0").await;
        same(&got, t, &["224 {t}"]);
        let (t, got) = call(&mut b, &format!("RMG {{t}} {group}")).await;
        same(&got, t, &[&format!("RMG {{t}} 1 {group}")]);
        // MSN 7.0 may remove a group it just made by name.
        let (t, got) = call(&mut b, "ADG {t} New%20Group").await;
        let new_group = got[0]
            .strip_prefix(&format!("ADG {t} New%20Group "))
            .expect("ADG reply")
            .to_string();
        let (t, got) = call(&mut b, "RMG {t} New%20Group").await;
        same(&got, t, &[&format!("RMG {{t}} 1 {new_group}")]);
        let (t, got) = syn(&mut b, 10).await;
        same(
            &got,
            t,
            &[
                &format!(
                    "SYN {{t}} {}",
                    got[0].split(' ').skip(2).collect::<Vec<_>>().join(" ")
                ),
                "GTC A",
                "BLP AL",
                "PRP MFN Bob",
                &format!("LST N={carol} F=Carol C={contact} 1"),
            ],
        );
        assert!(got[0].ends_with(" 1 0"), "{got:?}");
        // The stored name of a contact (SBP MFN).
        let (t, got) = call(&mut b, &format!("SBP {{t}} {contact} MFN Caz")).await;
        same(&got, t, &[&format!("SBP {{t}} {contact} MFN Caz")]);
        let (t, got) = call(
            &mut b,
            "SBP {t} 00000000-0000-0000-0000-000000000000 MFN Caz",
        )
        .await;
        same(&got, t, &["208 {t}"]);
        let (_, got) = syn(&mut b, 10).await;
        assert_eq!(got[4], format!("LST N={carol} F=Caz C={contact} 1"));
        // Removing by GUID takes the contact off the forward list only.
        let (t, got) = call(&mut b, &format!("ADC {{t}} AL N={carol}")).await;
        same(&got, t, &[&format!("ADC {{t}} AL N={carol}")]);
        let (t, got) = call(&mut b, &format!("REM {{t}} FL {contact}")).await;
        same(&got, t, &[&format!("REM {{t}} FL {contact}")]);
        let (t, got) = call(&mut b, &format!("REM {{t}} FL {contact}")).await;
        same(&got, t, &["216 {t}"]);
        // Its old GUID no longer names a forward contact.
        let (t, got) = call(&mut b, "ADG {t} Later").await;
        let later = got[0]
            .strip_prefix(&format!("ADG {t} Later "))
            .expect("ADG reply")
            .to_string();
        let (t, got) = call(&mut b, &format!("ADC {{t}} FL C={contact} {later}")).await;
        same(&got, t, &["208 {t}"]);
        let (_, got) = syn(&mut b, 10).await;
        assert_eq!(
            got[4..],
            [
                format!("LSG Later {later}"),
                format!("LST N={carol} F=Caz 2")
            ]
        );
    });
}

// ---------------------------------------------------------------------------
// Names, properties, and the smaller commands

/// PRP phone numbers with and without versions, PRP MFN only from MSNP10,
/// REA refusals, URL, SND/SDC and GCF.
#[test]
fn properties_names_and_small_commands() {
    run(async {
        let server = start().await;
        let (alice, bob) = (uid("props", "alice"), uid("props", "bob"));
        let mut a = user(&server, &alice, "Alice", 5).await;
        let (t, got) = call(&mut a, "PRP {t} PHW 555%201000").await;
        same(&got, t, &["PRP {t} 2 PHW 555%201000"]);
        let (t, got) = call(&mut a, "PRP {t} PHW").await;
        same(&got, t, &["PRP {t} 3 PHW"]);
        let (t, got) = call(&mut a, "PRP {t} XYZ 1").await;
        same(&got, t, &["201 {t}"]);
        let (t, got) = call(&mut a, "PRP {t} MFN Alice").await;
        same(&got, t, &["715 {t}"]);
        // A name with a control character is refused; an unknown contact is 216.
        let (t, got) = call(&mut a, &format!("REA {{t}} {alice} bad%07name")).await;
        same(&got, t, &["209 {t}"]);
        let (t, got) = call(&mut a, &format!("REA {{t}} {bob} Bob")).await;
        same(&got, t, &["216 {t}"]);
        let (t, got) = call(&mut a, "URL {t} INBOX").await;
        same(
            &got,
            t,
            &[&format!(
                "URL {{t}} /cgi-bin/HoTMaiL {}/ 2",
                server.running.config.http.public_url
            )],
        );
        let t = a.next();
        a.send_payload(
            &format!("SDC {t} {bob} 0x0409 MSMSGS WindowsMessenger X X Alice"),
            b"hi",
        )
        .await;
        a.expect(&format!("SDC {t} OK")).await;
        let (t, got) = syn(&mut a, 5).await;
        assert_eq!(
            got[..3],
            ["SYN {t} 3", "GTC {t} 3 A", "BLP {t} 3 AL"].map(|l| l.replace("{t}", &t.to_string()))
        );
        assert!(
            !got.iter().any(|l| l.starts_with("PRP")),
            "cleared property still listed: {got:?}"
        );

        let mut a = sign_in(&server, 3, &alice, PW).await;
        let (t, got) = call(&mut a, &format!("SND {{t}} {bob}")).await;
        same(&got, t, &["SND {t} OK"]);
        // PRP came with MSNP5: an unknown command before.
        a.send("PRP 99 PHH 555").await;
        assert!(a.expect_closed().await.is_empty());

        // MSNP10+: no versions; MFN is the own name and reaches watchers.
        let mut a = sign_in(&server, 11, &alice, PW).await;
        let (t, got) = call(&mut a, "GCF {t} Shields.xml").await;
        same(&got, t, &["715 {t}"]);
        syn(&mut a, 11).await;
        let t = a.next();
        a.send(&format!("GCF {t} Shields.xml")).await;
        let gcf = a.recv().await;
        assert_eq!(
            render(&gcf),
            format!(
                "GCF {t} Shields.xml {}",
                gcf.payload.as_ref().map_or(0, |p| p.len())
            )
        );
        assert!(
            String::from_utf8_lossy(gcf.payload.as_deref().unwrap_or_default())
                .contains("<config>")
        );
        let (t, got) = call(&mut a, "PRP {t} PHM 555%209999").await;
        same(&got, t, &["PRP {t} PHM 555%209999"]);
        let (t, got) = call(&mut a, "PRP {t} MFN Alice%20%E2%9C%93").await;
        same(&got, t, &["PRP {t} MFN Alice%20%E2%9C%93"]);
        let (t, got) = call(&mut a, "PRP {t} MFN %01").await;
        same(&got, t, &["209 {t}"]);
        let (t, got) = call(&mut a, &format!("REA {{t}} {alice} Alice")).await;
        same(&got, t, &["502 {t}"]);
        let (_, got) = syn(&mut a, 11).await;
        assert_eq!(
            got[3..5],
            ["PRP MFN Alice%20%E2%9C%93", "PRP PHM 555%209999"]
        );
        // The new name is what the next sign-in shows.
        let mut a = sign_in(&server, 9, &alice, PW).await;
        let (_, got) = syn(&mut a, 9).await;
        assert_eq!(got[3], "PRP PHM 555%209999");
        a.send("OUT").await;
        a.expect_closed().await;
        let mut raw = Client::connect(server.ns()).await;
        raw.send("VER 1 MSNP9").await;
        raw.recv().await;
        raw.send(&format!("USR 2 TWN I {alice}")).await;
        raw.recv().await;
        let ticket = passport_login(server.http(), &alice, PW)
            .await
            .expect("ticket");
        raw.send(&format!("USR 3 TWN S {ticket}")).await;
        raw.expect(&format!("USR 3 OK {alice} Alice%20%E2%9C%93 1 0"))
            .await;
    });
}

/// `handle`'s allow- and block-list entries as the user's client sees them:
/// the `LST AL` and `LST BL` replies (MSNP2–7, TrIDs replaced by `{t}`) or
/// the contact's line in the `SYN` dump (MSNP10+).
async fn allow_and_block_entries(c: &mut Client, dialect: u8, handle: &str) -> Vec<String> {
    if dialect < 8 {
        let mut lines = Vec::new();
        for list in ["AL", "BL"] {
            let (t, got) = call(c, &format!("LST {{t}} {list}")).await;
            let prefix = format!("LST {t} ");
            lines.extend(got.into_iter().map(|l| l.replacen(&prefix, "LST {t} ", 1)));
        }
        lines
    } else {
        let (_, dump) = syn(c, dialect).await;
        dump.into_iter()
            .filter(|l| l.starts_with(&format!("LST N={handle} ")))
            .collect()
    }
}

/// Clients block either as `REM AL` then `ADD/ADC BL`, or as `ADD/ADC BL`
/// first and `REM AL` after (and unblock likewise): an add to the opposite
/// list moves the contact, the later `REM` answers 216, the contact is never
/// on both lists, and the blocked contact sees FLN / NLN at once.
#[test]
fn blocking_and_unblocking_in_either_order_moves_the_contact() {
    run(async {
        let server = start().await;
        for dialect in [5u8, 7, 10, 12] {
            let test = format!("moveblock{dialect}");
            let (alice, bob) = (uid(&test, "alice"), uid(&test, "bob"));
            let mut a = online(&server, &alice, "Alice", dialect).await;
            let mut b = online(&server, &bob, "Bob", 7).await;
            let (t, got) = call(&mut b, &format!("ADD {{t}} FL {alice} {alice} 0")).await;
            assert_eq!(got.last().unwrap(), &format!("ILN {t} NLN {alice} Alice"));
            drain(&mut a).await;
            let old = dialect < 10;
            // Commands and replies in alice's dialect; `v` is her list version
            // after the edit (MSNP2–9 replies carry it).
            let add_cmd = |list: &str| {
                if old {
                    format!("ADD {{t}} {list} {bob} {bob}")
                } else {
                    format!("ADC {{t}} {list} N={bob}")
                }
            };
            let added = |list: &str, v: u32| {
                if old {
                    format!("ADD {{t}} {list} {v} {bob} {bob}")
                } else {
                    format!("ADC {{t}} {list} N={bob}")
                }
            };
            let rem_cmd = |list: &str| format!("REM {{t}} {list} {bob}");
            let removed = |list: &str, v: u32| {
                if old {
                    format!("REM {{t}} {list} {v} {bob}")
                } else {
                    format!("REM {{t}} {list} {bob}")
                }
            };
            // Bob is also on her reverse list (RL = 8), under the name he has.
            let entries = |on: &str, v: u32| {
                if old {
                    let member = format!("LST {{t}} {on} {v} 1 1 {bob} Bob");
                    let empty = |l: &str| format!("LST {{t}} {l} {v} 0 0");
                    if on == "AL" {
                        vec![member, empty("BL")]
                    } else {
                        vec![empty("AL"), member]
                    }
                } else {
                    let bits = if on == "AL" { 2 + 8 } else { 4 + 8 };
                    let net = if dialect >= 12 { " 1" } else { "" };
                    vec![format!("LST N={bob} F=Bob {bits}{net}")]
                }
            };
            let nln = format!("NLN NLN {alice} Alice");
            let fln = format!("FLN {alice}");

            // Set-up: bob on her allow list; `v` counts her list versions on.
            let (t, got) = call(&mut a, &add_cmd("AL")).await;
            let v: u32 = if old {
                got[0]
                    .split(' ')
                    .nth(3)
                    .and_then(|v| v.parse().ok())
                    .unwrap()
            } else {
                0
            };
            same(&got, t, &[added("AL", v).as_str()]);
            quiet(&mut b).await;

            // Block, add first: the add moves bob, REM AL then finds him gone.
            let (t, got) = call(&mut a, &add_cmd("BL")).await;
            same(&got, t, &[added("BL", v + 1).as_str()]);
            b.expect(&fln).await;
            let (t, got) = call(&mut a, &rem_cmd("AL")).await;
            same(&got, t, &["216 {t}"]);
            let got = allow_and_block_entries(&mut a, dialect, &bob).await;
            assert_eq!(got, entries("BL", v + 1), "MSNP{dialect}");
            quiet(&mut b).await;

            // Unblock, add first.
            let (t, got) = call(&mut a, &add_cmd("AL")).await;
            same(&got, t, &[added("AL", v + 2).as_str()]);
            b.expect(&nln).await;
            let (t, got) = call(&mut a, &rem_cmd("BL")).await;
            same(&got, t, &["216 {t}"]);
            let got = allow_and_block_entries(&mut a, dialect, &bob).await;
            assert_eq!(got, entries("AL", v + 2), "MSNP{dialect}");

            // Block, remove first: REM AL leaves him unlisted (still allowed
            // under BLP AL), ADD BL hides alice.
            let (t, got) = call(&mut a, &rem_cmd("AL")).await;
            same(&got, t, &[removed("AL", v + 3).as_str()]);
            quiet(&mut b).await;
            let (t, got) = call(&mut a, &add_cmd("BL")).await;
            same(&got, t, &[added("BL", v + 4).as_str()]);
            b.expect(&fln).await;

            // Unblock, remove first.
            let (t, got) = call(&mut a, &rem_cmd("BL")).await;
            same(&got, t, &[removed("BL", v + 5).as_str()]);
            b.expect(&nln).await;
            let (t, got) = call(&mut a, &add_cmd("AL")).await;
            same(&got, t, &[added("AL", v + 6).as_str()]);
            quiet(&mut b).await;

            // The move was stored: a new session has him on AL only.
            let mut a2 = sign_in(&server, dialect, &alice, PW).await;
            let got = allow_and_block_entries(&mut a2, dialect, &bob).await;
            assert_eq!(got, entries("AL", v + 6), "MSNP{dialect}");
        }
    });
}

/// Errors not shown elsewhere: unknown accounts (205 before MSNP10, 208
/// from it), a full list (210), CHG to FLN or nonsense (201), and the
/// commands that close the connection (the reverse list is read-only).
#[test]
fn list_errors_and_read_only_reverse_list() {
    run(async {
        let server = start_with(|c| c.msn.max_contacts = 2).await;
        let [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map(|w| uid("errors", w));
        for h in [&bob, &carol, &dave] {
            server.add_user(h, PW, "X").await;
        }
        let nobody = uid("errors", "nobody");
        let mut a = online(&server, &alice, "Alice", 9).await;
        let (t, got) = call(&mut a, &format!("ADD {{t}} FL {nobody} {nobody} 0")).await;
        same(&got, t, &["205 {t}"]);
        let (t, got) = call(&mut a, &format!("ADD {{t}} AL {nobody} {nobody}")).await;
        same(&got, t, &["205 {t}"]);
        for h in [&bob, &carol] {
            let (t, got) = call(&mut a, &format!("ADD {{t}} FL {h} {h} 0")).await;
            assert!(got[0].starts_with(&format!("ADD {t} FL ")), "{got:?}");
        }
        let (t, got) = call(&mut a, &format!("ADD {{t}} FL {dave} {dave} 0")).await;
        same(&got, t, &["210 {t}"]);
        // The allow and block lists are not the forward list's size.
        let (t, got) = call(&mut a, &format!("ADD {{t}} AL {dave} {dave}")).await;
        same(&got, t, &[&format!("ADD {{t}} AL 4 {dave} {dave}")]);
        let (t, got) = call(&mut a, &format!("REM {{t}} AL {bob}")).await;
        same(&got, t, &["216 {t}"]);
        let (t, got) = call(&mut a, "CHG {t} FLN 0").await;
        same(&got, t, &["201 {t}"]);
        let (t, got) = call(&mut a, "CHG {t} XYZ 0").await;
        same(&got, t, &["201 {t}"]);

        let mut a = sign_in(&server, 10, &alice, PW).await;
        let (t, got) = call(&mut a, &format!("ADC {{t}} FL N={nobody} F=x")).await;
        same(&got, t, &["208 {t}"]);
        let (t, got) = call(&mut a, "ADC {t} FL N=a@b").await;
        same(&got, t, &["201 {t}"]);
        // An add to the opposite list moves the contact (see the blocking test).
        let (t, got) = call(&mut a, &format!("ADC {{t}} BL N={dave}")).await;
        same(&got, t, &[&format!("ADC {{t}} BL N={dave}")]);
        let (t, got) = call(&mut a, &format!("REM {{t}} FL {dave}")).await;
        same(&got, t, &["216 {t}"]);

        // The reverse list belongs to the server: touching it closes.
        for (dialect, line) in [
            (9u8, format!("ADD 9 RL {bob} {bob}")),
            (9, format!("REM 9 RL {bob}")),
            (10, format!("ADC 9 RL N={bob}")),
            (10, format!("REM 9 RL {bob}")),
        ] {
            let mut a = sign_in(&server, dialect, &alice, PW).await;
            a.send(&line).await;
            let seen = a.expect_closed().await;
            assert!(
                seen.is_empty(),
                "{line}: {:?}",
                seen.iter().map(render).collect::<Vec<_>>()
            );
        }
    });
}

// ---------------------------------------------------------------------------
// Challenges, keep-alive, timeouts, rate limit

/// The `CHL 0 <challenge>` that follows the first CHG (MSNP6+ only).
async fn challenged(c: &mut Client, dialect: u8) -> String {
    syn(c, dialect).await;
    let got = chg(c, dialect, "NLN", None).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let challenge = got[0]
        .strip_prefix("CHL 0 ")
        .unwrap_or_else(|| panic!("no CHL: {got:?}"))
        .to_string();
    assert!(
        !challenge.is_empty() && challenge.bytes().all(|b| b.is_ascii_digit()),
        "{challenge}"
    );
    challenge
}

/// Right answers (MD5 scheme up to MSNP10, MSNP11 scheme from MSNP11) get
/// `QRY trid`; a wrong one gets 540 and the connection closes. MSNP5 is
/// never challenged.
#[test]
fn challenges_are_checked_and_a_wrong_answer_closes() {
    run(async {
        let server = start_with(|c| c.msn.challenges = true).await;
        let [p5, p6, p9, p11, p12] = ["p5", "p6", "p9", "p11", "p12"].map(|w| uid("chl", w));
        let mut c = user(&server, &p5, "Five", 5).await;
        syn(&mut c, 5).await;
        assert!(chg(&mut c, 5, "NLN", None).await.is_empty());

        for (handle, dialect) in [(&p6, 6u8), (&p9, 9)] {
            let mut c = user(&server, handle, "MD5", dialect).await;
            let challenge = challenged(&mut c, dialect).await;
            let answer = msnp::auth::challenge_md5(&challenge, "Q1P7W2E4J9R8U3S5");
            let t = c.next();
            c.send_payload(&format!("QRY {t} msmsgs@msnmsgr.com"), answer.as_bytes())
                .await;
            c.expect(&format!("QRY {t}")).await;
            quiet(&mut c).await;
        }
        let mut c = user(&server, &p11, "Eleven", 11).await;
        let challenge = challenged(&mut c, 11).await;
        let answer =
            msnp::auth::challenge_msnp11(&challenge, "PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL");
        let t = c.next();
        c.send_payload(&format!("QRY {t} PROD0090YUAUV{{2B"), answer.as_bytes())
            .await;
        c.expect(&format!("QRY {t}")).await;
        quiet(&mut c).await;

        let mut c = user(&server, &p12, "Twelve", 12).await;
        let challenge = challenged(&mut c, 12).await;
        // The MD5 answer for the wrong key.
        let answer = msnp::auth::challenge_md5(&challenge, "YMM8C_H7KCQ2S_KL");
        let t = c.next();
        c.send_payload(&format!("QRY {t} msmsgs@msnmsgr.com"), answer.as_bytes())
            .await;
        let seen = c.expect_closed().await;
        assert_eq!(
            seen.iter().map(render).collect::<Vec<_>>(),
            [format!("540 {t}")]
        );
    });
}

/// A challenge left unanswered closes the connection after
/// `msn.challenge_timeout_secs`.
#[test]
fn an_unanswered_challenge_closes_the_connection() {
    run(async {
        let server = start_with(|c| {
            c.msn.challenges = true;
            c.msn.challenge_timeout_secs = 1;
        })
        .await;
        let alice = uid("chl_timeout", "alice");
        let mut a = user(&server, &alice, "Alice", 8).await;
        challenged(&mut a, 8).await;
        let started = std::time::Instant::now();
        a.expect_closed().await;
        // The 1 s challenge timeout, not the default minute (slack for a loaded machine).
        assert!(started.elapsed() < Duration::from_secs(15));
    });
}

/// `PNG` → `QNG` (with the seconds to the next ping from MSNP9).
#[test]
fn png_gets_qng_in_each_dialects_form() {
    run(async {
        let server = start().await;
        let alice = uid("png", "alice");
        server.add_user(&alice, PW, "Alice").await;
        for (dialect, qng) in [
            (2u8, "QNG"),
            (7, "QNG"),
            (8, "QNG"),
            (9, "QNG 50"),
            (12, "QNG 50"),
        ] {
            let mut a = sign_in(&server, dialect, &alice, PW).await;
            a.send("PNG").await;
            a.expect(qng).await;
        }
    });
}

/// A signed-in session that stays silent is closed after
/// `msn.idle_timeout_secs` (its watchers see it go offline); one that pings
/// stays; a connection that never signs in is closed after
/// `msn.login_timeout_secs`.
#[test]
fn silent_sessions_are_closed_and_pinging_ones_stay() {
    run(async {
        // Long enough that bob, pinging every 300 ms, stays with seconds of
        // slack on a loaded machine.
        const IDLE: Duration = Duration::from_secs(3);
        let server = start_with(|c| {
            c.msn.idle_timeout_secs = IDLE.as_secs();
            c.msn.login_timeout_secs = 1;
        })
        .await;
        let (alice, bob) = (uid("idle", "alice"), uid("idle", "bob"));
        server.add_user(&alice, PW, "Alice").await;
        let mut b = online(&server, &bob, "Bob", 9).await;
        call(&mut b, &format!("ADD {{t}} FL {alice} {alice} 0")).await;
        let mut a = sign_in(&server, 9, &alice, PW).await;
        syn(&mut a, 9).await;
        // alice's last word is the PNG that ends chg(): the server sees it
        // after this instant, so she cannot be dropped less than IDLE later.
        let started = std::time::Instant::now();
        chg(&mut a, 9, "NLN", None).await;
        // bob pings every 300 ms and sees her come and go.
        let mut seen = Vec::new();
        while !seen.contains(&format!("FLN {alice}")) {
            assert!(
                started.elapsed() < IDLE + TIMEOUT,
                "alice was never dropped: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            seen.extend(drain(&mut b).await);
        }
        assert!(
            started.elapsed() >= IDLE,
            "dropped too early: {:?}",
            started.elapsed()
        );
        assert_eq!(
            seen,
            [
                format!("NLN NLN {alice} Alice {}", caps(9)),
                format!("FLN {alice}")
            ]
        );
        a.expect_closed().await;
        // bob, who kept pinging for longer than the timeout, is still there.
        quiet(&mut b).await;
        // Never signing in.
        let mut c = Client::connect(server.ns()).await;
        c.send("VER 1 MSNP9").await;
        c.expect("VER 1 MSNP9").await;
        let started = std::time::Instant::now();
        c.expect_closed().await;
        // The 1 s login timeout, not the default minute (slack for a loaded machine).
        assert!(started.elapsed() < Duration::from_secs(15));
    });
}

/// Over `msn.rate_limit_changes` changes in a window, list edits, status,
/// name and personal message changes are answered 800 and not applied; the
/// connection stays.
#[test]
fn too_many_changes_are_answered_800_not_applied_and_not_disconnected() {
    run(async {
        let server = start_with(|c| {
            c.msn.rate_limit_changes = 3;
            c.msn.rate_window_secs = 3600;
        })
        .await;
        let (alice, bob) = (uid("rate", "alice"), uid("rate", "bob"));
        server.add_user(&bob, PW, "Bob").await;
        let mut a = online(&server, &alice, "Alice", 11).await;
        for n in 1..=3 {
            let (t, got) = call(&mut a, &format!("ADG {{t}} G{n}")).await;
            assert!(got[0].starts_with(&format!("ADG {t} G{n} ")), "{got:?}");
        }
        for line in [
            "ADG {t} G4".to_string(),
            format!("ADC {{t}} FL N={bob}"),
            format!("CHG {{t}} BSY {}", caps(11)),
            "PRP {t} MFN Too%20Fast".into(),
            "BLP {t} BL".into(),
        ] {
            let (t, got) = call(&mut a, &line).await;
            same(&got, t, &["800 {t}"]);
        }
        let t = a.next();
        a.send_payload(
            &format!("UUX {t}"),
            b"<Data><PSM>x</PSM><CurrentMedia></CurrentMedia></Data>",
        )
        .await;
        a.expect(&format!("800 {t}")).await;
        // Nothing of it happened.
        let (_, got) = syn(&mut a, 11).await;
        assert_eq!(
            got[0].split(' ').skip(4).collect::<Vec<_>>(),
            ["0", "3"],
            "{got:?}"
        );
        assert_eq!(got[1..4], ["GTC A", "BLP AL", "PRP MFN Alice"]);
    });
}

/// The limit is per window: after it, changes are accepted again.
#[test]
fn the_rate_limit_recovers_after_its_window() {
    run(async {
        let server = start_with(|c| {
            c.msn.rate_limit_changes = 3;
            c.msn.rate_window_secs = 1;
        })
        .await;
        let alice = uid("rate_window", "alice");
        let mut a = online(&server, &alice, "Alice", 7).await;
        // Rename until refused (the window may turn over once on a slow machine).
        let mut refused = false;
        for n in 0..20 {
            let (t, got) = call(&mut a, &format!("REA {{t}} {alice} A{n}")).await;
            if got == [format!("800 {t}")] {
                refused = true;
                break;
            }
            assert!(got[0].starts_with(&format!("REA {t} ")), "{got:?}");
        }
        assert!(refused, "never rate-limited");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (t, got) = call(&mut a, &format!("REA {{t}} {alice} Again")).await;
        assert!(
            got[0].starts_with(&format!("REA {t} ")) && got[0].ends_with(" Again"),
            "{got:?}"
        );
    });
}
