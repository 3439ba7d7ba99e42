//! Sign-in over real TCP and real HTTP, for every dialect MSNP2–MSNP12, and
//! what the server does with wrong, hostile or interrupted input.

mod common;
use common::*;
use std::time::Duration;

const PW: &str = "s3cret!";

#[tokio::test]
async fn md5_sign_in_for_msnp2_5_7_with_each_dialects_usr_ok() {
    let server = start().await;
    server.add_user("alice@example.com", PW, "Alice A").await;
    for (dialect, expected) in [
        (2u8, "OK alice@example.com Alice%20A"),
        (5, "OK alice@example.com Alice%20A"),
        (6, "OK alice@example.com Alice%20A 1"),
        (7, "OK alice@example.com Alice%20A 1"),
    ] {
        let mut c = Client::connect(server.ns()).await;
        c.send(&format!("VER 1 MSNP{dialect} CVR0")).await;
        c.expect(&format!("VER 1 MSNP{dialect}")).await;
        c.send("INF 2").await;
        c.expect("INF 2 MD5").await;
        c.send("USR 3 MD5 I Alice@Example.com").await;
        let salt = c.recv().await.args[3].clone();
        c.send(&format!(
            "USR 4 MD5 S {}",
            msnp::auth::md5_login_hash(&salt, PW)
        ))
        .await;
        c.expect(&format!("USR 4 {expected}")).await;
        let profile = c.recv().await;
        assert_eq!(
            render(&profile),
            format!(
                "MSG Hotmail Hotmail {}",
                profile.payload.as_ref().unwrap().len()
            )
        );
        let body = String::from_utf8(profile.payload.unwrap().to_vec()).unwrap();
        assert!(
            body.contains("Content-Type: text/x-msmsgsprofile"),
            "{body}"
        );
        c.send("OUT").await;
        c.expect_closed().await;
    }
}

#[tokio::test]
async fn passport_sign_in_for_msnp8_to_12() {
    let server = start().await;
    server.add_user("bob@example.com", PW, "Bob").await;
    for (dialect, expected) in [
        (8u8, "USR 4 OK bob@example.com Bob 1 0"),
        (9, "USR 4 OK bob@example.com Bob 1 0"),
        (10, "USR 4 OK bob@example.com 1 0"),
        (11, "USR 4 OK bob@example.com 1 0"),
        (12, "USR 4 OK bob@example.com 1 0"),
    ] {
        let mut c = Client::connect(server.ns()).await;
        c.send(&format!("VER 1 MSNP{dialect} MSNP8 CVR0")).await;
        c.expect(&format!("VER 1 MSNP{dialect}")).await;
        c.send("CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.2.0208 MSMSGS bob@example.com")
            .await;
        let cvr = c.recv().await;
        assert_eq!(&cvr.args[..4], ["2", "6.2.0208", "6.2.0208", "6.2.0208"]);
        c.send("USR 3 TWN I bob@example.com").await;
        let challenge = c.recv().await;
        assert_eq!(&challenge.args[..3], ["3", "TWN", "S"]);
        for key in [
            "lc=", "id=", "tw=", "fs=", "ru=", "ct=", "kpp=", "kv=", "ver=", "tpf=",
        ] {
            assert!(challenge.args[3].contains(key), "challenge lacks {key}");
        }
        let ticket = passport_login(server.http(), "bob@example.com", PW)
            .await
            .expect("ticket");
        c.send(&format!("USR 4 TWN S {ticket}")).await;
        c.expect(expected).await;
        if dialect >= 11 {
            c.expect("SBS 0 null").await;
        }
        assert_eq!(c.recv().await.name, "MSG");
    }
}

#[tokio::test]
async fn ver_picks_highest_common_dialect_or_refuses() {
    let server = start().await;
    let mut c = Client::connect(server.ns()).await;
    c.send("VER 0 MSNP19 MSNP9 MSNP11 CVR0").await;
    c.expect("VER 0 MSNP11").await;
    let mut c = Client::connect(server.ns()).await;
    c.send("VER 3 MSNP13 MSNP18 MSNP12 CVR0").await;
    c.expect("VER 3 MSNP18").await;
    let mut c = Client::connect(server.ns()).await;
    c.send("VER 7 MSNP19 MSNP1 CVR0").await;
    c.expect("VER 7 0").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_account_are_refused() {
    let server = start().await;
    server.add_user("alice@example.com", PW, "Alice").await;
    for handle in ["alice@example.com", "nobody@example.com"] {
        let mut c = Client::connect(server.ns()).await;
        c.send("VER 1 MSNP7").await;
        c.expect("VER 1 MSNP7").await;
        c.send(&format!("USR 2 MD5 I {handle}")).await;
        let salt = c.recv().await.args[3].clone();
        c.send(&format!(
            "USR 3 MD5 S {}",
            msnp::auth::md5_login_hash(&salt, "wrong")
        ))
        .await;
        c.expect("911 3").await;
    }
    // Passport: the HTTP login itself refuses, with the reply libpurple looks for.
    for handle in ["alice@example.com", "nobody@example.com"] {
        let refused = passport_login(server.http(), handle, "wrong")
            .await
            .unwrap_err();
        assert_eq!(refused, "HTTP/1.1 401 Unauthorized");
    }
    // A client whose HTTP step failed may still send a meaningless ticket.
    let mut c = Client::connect(server.ns()).await;
    c.send("VER 1 MSNP9").await;
    c.expect("VER 1 MSNP9").await;
    c.send("USR 2 TWN I alice@example.com").await;
    c.recv().await;
    c.send("USR 3 TWN S 1").await;
    c.expect("911 3").await;
}

#[tokio::test]
async fn the_md5_salt_does_not_reveal_whether_an_account_exists() {
    let server = start().await;
    let mut salts = Vec::new();
    for _ in 0..2 {
        let mut c = Client::connect(server.ns()).await;
        c.send("VER 1 MSNP7").await;
        c.recv().await;
        c.send("USR 2 MD5 I ghost@example.com").await;
        salts.push(c.recv().await.args[3].clone());
    }
    assert_eq!(salts[0], salts[1], "a decoy salt must be stable");
    assert!(
        salts[0].contains('.'),
        "decoy salt looks like a real one: {}",
        salts[0]
    );
}

async fn decoy_salt(ns: std::net::SocketAddr, handle: &str) -> String {
    let mut c = Client::connect(ns).await;
    c.send("VER 1 MSNP7").await;
    c.expect("VER 1 MSNP7").await;
    c.send(&format!("USR 2 MD5 I {handle}")).await;
    let challenge = c.recv().await;
    assert_eq!(&challenge.args[..3], ["2", "MD5", "S"]);
    challenge.args[3].clone()
}

/// Real salts are stored, so a decoy that changed at restart would tell
/// which handles exist: the decoys come from a secret kept in the database.
#[tokio::test]
async fn a_decoy_salt_survives_a_restart_on_the_same_database_only() {
    let first = start().await;
    let before = decoy_salt(first.ns(), "unknown@x.com").await;
    let database = first.running.config.database.url.clone();
    let TestServer { running, dir } = first;
    running.shutdown(Duration::from_secs(1)).await;
    let again = start_with(|c| c.database.url = database).await;
    assert_eq!(decoy_salt(again.ns(), "unknown@x.com").await, before);
    assert_ne!(
        decoy_salt(again.ns(), "other@x.com").await,
        before,
        "one decoy per handle"
    );
    drop(dir);
    let elsewhere = start().await;
    assert_ne!(decoy_salt(elsewhere.ns(), "unknown@x.com").await, before);
}

async fn twn_until_ticket(server: &TestServer, handle: &str) -> Client {
    let mut c = Client::connect(server.ns()).await;
    c.send("VER 1 MSNP11").await;
    c.expect("VER 1 MSNP11").await;
    c.send(&format!("USR 2 TWN I {handle}")).await;
    c.recv().await;
    c
}

#[tokio::test]
async fn tickets_are_single_use_bound_to_their_account_and_expire() {
    let server = start_with(|c| c.auth.ticket_lifetime_secs = 1).await;
    server.add_user("alice@example.com", PW, "Alice").await;
    server.add_user("eve@example.com", PW, "Eve").await;

    let ticket = passport_login(server.http(), "alice@example.com", PW)
        .await
        .unwrap();
    // Another account cannot use it.
    let mut eve = twn_until_ticket(&server, "eve@example.com").await;
    eve.send(&format!("USR 3 TWN S {ticket}")).await;
    eve.expect("911 3").await;
    // Its owner can, once.
    let mut a = twn_until_ticket(&server, "alice@example.com").await;
    a.send(&format!("USR 3 TWN S {ticket}")).await;
    assert_eq!(a.recv().await.args[1], "OK");
    let mut again = twn_until_ticket(&server, "alice@example.com").await;
    again.send(&format!("USR 3 TWN S {ticket}")).await;
    again.expect("911 3").await;
    // An expired ticket is refused.
    let stale = passport_login(server.http(), "alice@example.com", PW)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut late = twn_until_ticket(&server, "alice@example.com").await;
    late.send(&format!("USR 3 TWN S {stale}")).await;
    late.expect("911 3").await;
}

#[tokio::test]
async fn second_sign_in_ends_the_first_session_with_out_oth() {
    let server = start().await;
    server.add_user("alice@example.com", PW, "Alice").await;
    let mut first = sign_in(&server, 9, "alice@example.com", PW).await;
    let _second = sign_in(&server, 11, "alice@example.com", PW).await;
    let seen = first.expect_closed().await;
    assert_eq!(seen.iter().map(render).collect::<Vec<_>>(), ["OUT OTH"]);
    assert_eq!(server.hub().online_count(), 1);
}

#[tokio::test]
async fn malformed_and_out_of_order_input_closes_the_connection() {
    let server = start().await;
    server.add_user("alice@example.com", PW, "Alice").await;
    for (setup, bad) in [
        (vec![], "SYN 1 0"),                          // command before VER
        (vec![], "PNG"),                              // keep-alive before sign-in
        (vec!["VER 1 MSNP8"], "INF 2"),               // INF is MSNP2-7 only
        (vec!["VER 1 MSNP7"], "USR 2 TWN I a@b.com"), // wrong package for the dialect
        (vec!["VER 1 MSNP8"], "USR 2 MD5 I alice@example.com"),
        (vec!["VER 1 MSNP8"], "CHG 2 NLN 0"),   // before sign-in
        (vec!["VER 1 MSNP8"], "VER 2 MSNP8"),   // second VER
        (vec!["VER 1 MSNP8"], "TOOLONGNAME 2"), // not a command name
        (vec!["VER 1 MSNP8"], "ZZZ 2"),         // unknown command
        (vec!["VER 1 MSNP8"], "USR 2 TWN S sometoken"), // S before I
        (vec!["VER 1 MSNP8"], "USR x TWN I alice@example.com"), // no TrID
    ] {
        let mut c = Client::connect(server.ns()).await;
        for line in &setup {
            c.send(line).await;
            c.recv().await;
        }
        c.send(bad).await;
        let seen = c.expect_closed().await;
        assert!(
            seen.is_empty(),
            "{bad}: unexpected reply {:?}",
            seen.iter().map(render).collect::<Vec<_>>()
        );
    }
    // Commands before sign-in of a signed-in-only kind, after a good start.
    let mut c = Client::connect(server.ns()).await;
    c.send("VER 1 MSNP11").await;
    c.recv().await;
    c.send("SYN 2 0 0").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn oversized_line_and_payload_close_the_connection() {
    let server = start().await;
    server.add_user("alice@example.com", PW, "Alice").await;
    let mut c = Client::connect(server.ns()).await;
    let long = format!("VER 1 {}\r\n", "MSNP8 ".repeat(2000));
    c.send_raw(long.as_bytes()).await;
    c.expect_closed().await;
    // A payload above the limit, announced by a signed-in MSNP11 client.
    let mut c = sign_in(&server, 11, "alice@example.com", PW).await;
    c.send("UUX 9 100000").await;
    c.expect_closed().await;
    // A payload command without a length.
    let mut c = sign_in(&server, 11, "alice@example.com", PW).await;
    c.send("UUX 9 lots").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn a_line_split_across_reads_is_reassembled() {
    let server = start().await;
    let mut c = Client::connect(server.ns()).await;
    c.send_raw(b"VER 1 MSN").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send_raw(b"P9 CVR0\r").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send_raw(b"\nCVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.2.0208 MSMSGS a@b.com\r\nVER")
        .await;
    c.expect("VER 1 MSNP9").await;
    let cvr = c.recv().await;
    assert_eq!(cvr.name, "CVR");
    // ...and the trailing "VER" (a second VER once completed) is not acted on early.
    c.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_sign_in_leaves_no_trace() {
    let server = start().await;
    server.add_user("alice@example.com", PW, "Alice").await;
    for stage in 0..3 {
        let mut c = Client::connect(server.ns()).await;
        c.send("VER 1 MSNP7").await;
        c.recv().await;
        if stage >= 1 {
            c.send("USR 2 MD5 I alice@example.com").await;
            c.recv().await;
        }
        if stage >= 2 {
            c.send_raw(b"USR 3 MD5 S 0123").await; // half a line, then gone
        }
        drop(c);
    }
    // Once the server has closed all three connections, nothing is left.
    let connections = &server.running.metrics.notification_connections;
    eventually("the server to close the abandoned connections", || {
        connections.load(std::sync::atomic::Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(server.hub().online_count(), 0);
    let _ok = sign_in_md5(server.ns(), 7, "alice@example.com", PW).await;
    assert_eq!(server.hub().online_count(), 1);
}

#[tokio::test]
async fn login_timeout_closes_silent_connections() {
    let server = start_with(|c| c.msn.login_timeout_secs = 1).await;
    let mut c = Client::connect(server.ns()).await;
    c.send("VER 1 MSNP8").await;
    c.recv().await;
    let started = std::time::Instant::now();
    c.expect_closed().await;
    // The 1 s login timeout, not the default minute (slack for a loaded machine).
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn dispatch_redirects_to_the_notification_server_when_configured() {
    let ns_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = start_with(|c| {
        c.msn.dispatch_redirect = true;
        c.msn.notification_listen = Some(ns_port);
    })
    .await;
    server.add_user("alice@example.com", PW, "Alice").await;
    let dispatch = server.running.dispatch_addr.expect("dispatch listener");
    for (dialect, fields) in [(2u8, 1usize), (5, 2), (7, 3), (9, 3)] {
        let mut c = Client::connect(dispatch).await;
        c.send(&format!("VER 1 MSNP{dialect}")).await;
        c.recv().await;
        let package = if dialect <= 7 { "MD5" } else { "TWN" };
        c.send(&format!("USR 2 {package} I alice@example.com"))
            .await;
        let xfr = c.recv().await;
        assert_eq!(&xfr.args[..2], ["2", "NS"]);
        assert_eq!(xfr.args[2], format!("127.0.0.1:{}", server.ns().port()));
        assert_eq!(
            xfr.args.len() - 2,
            fields,
            "XFR form for MSNP{dialect}: {}",
            render(&xfr)
        );
        c.expect_closed().await;
    }
    // The advertised address really is a notification server.
    let _c = sign_in_md5(server.ns(), 7, "alice@example.com", PW).await;
}

#[tokio::test]
async fn usr_after_sign_in_is_answered_207() {
    let server = start().await;
    server.add_user("alice@example.com", PW, "Alice").await;
    let mut c = sign_in(&server, 9, "alice@example.com", PW).await;
    c.send("USR 10 TWN I alice@example.com").await;
    c.expect("207 10").await;
}

/// Some client libraries take everything after `from-PP='` in the
/// `Authentication-Info` header as the ticket.
#[tokio::test]
async fn a_ticket_followed_by_the_rest_of_the_header_is_accepted_once() {
    let server = start().await;
    server.add_user("alice@example.com", PW, "Alice").await;
    for tail in [
        "',ru=http://messenger.msn.com",
        ",ru=http://messenger.msn.com",
    ] {
        let ticket = passport_login(server.http(), "alice@example.com", PW)
            .await
            .unwrap();
        let mut c = twn_until_ticket(&server, "alice@example.com").await;
        c.send(&format!("USR 3 TWN S {ticket}{tail}")).await;
        c.expect("USR 3 OK alice@example.com 1 0").await;
        c.expect("SBS 0 null").await;
        assert_eq!(c.recv().await.name, "MSG");
        // Still single-use, with or without the tail.
        for reuse in [format!("{ticket}{tail}"), ticket.clone()] {
            let mut again = twn_until_ticket(&server, "alice@example.com").await;
            again.send(&format!("USR 3 TWN S {reuse}")).await;
            again.expect("911 3").await;
        }
    }
    // A forged ticket with a tail, and a real one's prefix with a tail.
    let real = passport_login(server.http(), "alice@example.com", PW)
        .await
        .unwrap();
    let forged = format!("t={}&p={}", "0".repeat(32), "0".repeat(32));
    let prefix = &real[..real.len() - 1];
    for bad in [forged.as_str(), prefix] {
        let mut c = twn_until_ticket(&server, "alice@example.com").await;
        c.send(&format!("USR 3 TWN S {bad}',ru=http://messenger.msn.com"))
            .await;
        c.expect("911 3").await;
    }
    // Bound to its account even with a tail.
    server.add_user("eve@example.com", PW, "Eve").await;
    let mut eve = twn_until_ticket(&server, "eve@example.com").await;
    eve.send(&format!("USR 3 TWN S {real},ru=http://messenger.msn.com"))
        .await;
    eve.expect("911 3").await;
}

/// The value of one `/metrics` sample line, e.g. `msngate_signin_failures_total`.
async fn metric(server: &TestServer, sample: &str) -> u64 {
    let (_, body) = http_get(server.http(), "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {sample} in /metrics:\n{body}"))
        .parse()
        .expect("a number")
}

/// One MD5 attempt on an open MSNP7 connection: `USR I`, then `USR S`.
async fn md5_attempt(c: &mut Client, handle: &str, password: &str) -> u32 {
    let t = c.next();
    c.send(&format!("USR {t} MD5 I {handle}")).await;
    let salt = c.recv().await.args[3].clone();
    let t = c.next();
    c.send(&format!(
        "USR {t} MD5 S {}",
        msnp::auth::md5_login_hash(&salt, password)
    ))
    .await;
    t
}

async fn md5_connection(server: &TestServer) -> Client {
    let mut c = Client::connect(server.ns()).await;
    c.send("VER 1 MSNP7").await;
    c.expect("VER 1 MSNP7").await;
    c
}

const DELAY_MS: u64 = 1500;
const DELAYED_BY_ACCOUNT: &str = "msngate_signin_delayed_total{by=\"account\"}";
const DELAYED_BY_SOURCE: &str = "msngate_signin_delayed_total{by=\"source\"}";

#[tokio::test]
async fn wrong_md5_passwords_meet_a_growing_delay_and_close_the_connection() {
    let server = start_with(|c| {
        c.signin_limits.account_free_failures = 2;
        c.signin_limits.source_free_failures = 1000;
        c.signin_limits.first_delay_ms = DELAY_MS;
        c.signin_limits.failures_per_connection = 3;
    })
    .await;
    server.add_user("alice@example.com", PW, "Alice").await;
    let mut c = md5_connection(&server).await;
    for _ in 0..2 {
        let t = md5_attempt(&mut c, "alice@example.com", "wrong").await;
        c.expect(&format!("911 {t}")).await;
    }
    assert_eq!(metric(&server, DELAYED_BY_ACCOUNT).await, 0);
    // The third wrong password waits its delay before the 911 ...
    let t = md5_attempt(&mut c, "alice@example.com", "wrong").await;
    c.expect_silence(Duration::from_millis(DELAY_MS / 3)).await;
    c.expect(&format!("911 {t}")).await;
    // ... and, the third on this connection, closes it.
    c.expect_closed().await;
    assert_eq!(metric(&server, "msngate_signin_failures_total").await, 3);
    assert_eq!(metric(&server, DELAYED_BY_ACCOUNT).await, 1);
    assert_eq!(
        metric(&server, "msngate_signin_connections_closed_total").await,
        1
    );
    // Another account is not slowed by alice's failures.
    server.add_user("bob@example.com", PW, "Bob").await;
    let _bob = sign_in_md5(server.ns(), 7, "bob@example.com", PW).await;
    assert_eq!(metric(&server, DELAYED_BY_ACCOUNT).await, 1);
    // The right password, delayed, is still accepted, and resets the count.
    let mut c = md5_connection(&server).await;
    let t = md5_attempt(&mut c, "alice@example.com", PW).await;
    c.expect_silence(Duration::from_millis(DELAY_MS / 3)).await;
    c.expect(&format!("USR {t} OK alice@example.com Alice 1"))
        .await;
    assert_eq!(metric(&server, DELAYED_BY_ACCOUNT).await, 2);
    let mut c = md5_connection(&server).await;
    let t = md5_attempt(&mut c, "alice@example.com", "wrong").await;
    c.expect(&format!("911 {t}")).await;
    assert_eq!(metric(&server, DELAYED_BY_ACCOUNT).await, 2);
}

#[tokio::test]
async fn wrong_passport_passwords_are_delayed_per_account_and_per_source() {
    let server = start_with(|c| {
        c.signin_limits.account_free_failures = 2;
        c.signin_limits.source_free_failures = 4;
        c.signin_limits.first_delay_ms = 200;
    })
    .await;
    server.add_user("alice@example.com", PW, "Alice").await;
    for _ in 0..3 {
        let refused = passport_login(server.http(), "alice@example.com", "wrong")
            .await
            .unwrap_err();
        assert_eq!(refused, "HTTP/1.1 401 Unauthorized");
    }
    assert_eq!(metric(&server, DELAYED_BY_ACCOUNT).await, 1);
    assert_eq!(metric(&server, DELAYED_BY_SOURCE).await, 0);
    // Guessing at other accounts (known or not) from the same address.
    for handle in ["nobody@example.com", "ghost@example.com"] {
        let refused = passport_login(server.http(), handle, "wrong")
            .await
            .unwrap_err();
        assert_eq!(refused, "HTTP/1.1 401 Unauthorized");
    }
    assert_eq!(metric(&server, DELAYED_BY_SOURCE).await, 1);
    assert_eq!(metric(&server, "msngate_signin_failures_total").await, 5);
    // The right password still gets its ticket, which signs in.
    let mut c = sign_in_twn(&server, 11, "alice@example.com", PW).await;
    c.send("PNG").await;
    assert_eq!(c.recv().await.name, "QNG");
    assert_eq!(metric(&server, DELAYED_BY_ACCOUNT).await, 2);
}
