//! Switchboard chats over real TCP: XFR SB / RNG on the notification
//! server, USR / ANS / CAL / IRO / JOI / MSG / ACK / NAK / BYE / OUT on the
//! switchboard, for clients of every dialect, including group chats, file
//! transfer invitations with P2P data, cookies and time-outs.
//!
//! Every handle is unique to its test (its domain names the test), so the
//! tests may share one PostgreSQL database.

mod common;
use common::*;
use md5::{Digest, Md5};
use msnp::codec::Command;
use std::time::{Duration, Instant};

const PW: &str = "s3cret!";
const SHORT: Duration = Duration::from_millis(150);

/// A user signed in on the notification server with a visible status.
struct User {
    handle: String,
    /// Friendly name as it appears on the wire (URL-encoded).
    name: String,
    caps: u32,
    ns: Client,
}

/// Creates the account, signs in with the dialect's method and sets `NLN`
/// (with capabilities from P8), as clients do before they may chat.
async fn online(server: &TestServer, dialect: u8, handle: &str, nickname: &str, caps: u32) -> User {
    server.add_user(handle, PW, nickname).await;
    let mut ns = sign_in(server, dialect, handle, PW).await;
    set_status(&mut ns, dialect, "NLN", caps).await;
    User {
        handle: handle.to_string(),
        name: msnp::urlenc::encode(nickname),
        caps,
        ns,
    }
}

async fn set_status(ns: &mut Client, dialect: u8, status: &str, caps: u32) {
    let t = ns.next();
    if dialect >= 8 {
        ns.send(&format!("CHG {t} {status} {caps}")).await;
        ns.expect(&format!("CHG {t} {status} {caps}")).await;
    } else {
        ns.send(&format!("CHG {t} {status}")).await;
        ns.expect(&format!("CHG {t} {status}")).await;
    }
}

fn sb_address(server: &TestServer) -> String {
    format!("127.0.0.1:{}", server.running.switchboard_addr.port())
}

/// `XFR SB`: checks the reply's form and returns (address, cookie).
async fn xfr(ns: &mut Client) -> (String, String) {
    let t = ns.next();
    ns.send(&format!("XFR {t} SB")).await;
    let reply = ns.recv_named("XFR").await;
    assert_eq!(reply.args.len(), 5, "XFR SB form: {}", render(&reply));
    assert_eq!(reply.args[0], t.to_string());
    assert_eq!(reply.args[1], "SB");
    assert_eq!(reply.args[3], "CKI");
    (reply.args[2].clone(), reply.args[4].clone())
}

/// The caller's side: XFR SB on the NS, then USR on the switchboard.
async fn open_chat(server: &TestServer, u: &mut User) -> Client {
    let (address, cookie) = xfr(&mut u.ns).await;
    assert_eq!(address, sb_address(server));
    let mut sb = Client::connect(server.running.switchboard_addr).await;
    let t = sb.next();
    sb.send(&format!("USR {t} {} {cookie}", u.handle)).await;
    sb.expect(&format!("USR {t} OK {} {}", u.handle, u.name))
        .await;
    sb
}

/// `CAL`: returns the session id from `CAL t RINGING id`.
async fn call(sb: &mut Client, invitee: &str) -> String {
    let t = sb.next();
    sb.send(&format!("CAL {t} {invitee}")).await;
    let reply = sb.recv().await;
    assert_eq!(reply.name, "CAL", "CAL {invitee}: {}", render(&reply));
    assert_eq!(&reply.args[..2], [t.to_string(), "RINGING".to_string()]);
    assert_eq!(reply.args.len(), 3);
    reply.args[2].clone()
}

/// Checks the `RNG` the invitee's NS connection receives; returns the cookie.
async fn ring(server: &TestServer, invitee: &mut User, session: &str, caller: &User) -> String {
    let rng = invitee.ns.recv_named("RNG").await;
    assert_eq!(rng.args.len(), 6, "RNG form: {}", render(&rng));
    assert_eq!(rng.args[0], session);
    assert_eq!(rng.args[1], sb_address(server));
    assert_eq!(rng.args[2], "CKI");
    assert_eq!(rng.args[4], caller.handle);
    assert_eq!(rng.args[5], caller.name);
    rng.args[3].clone()
}

/// The invitee's side: `ANS`, then the `IRO` lines (returned, rendered) and `ANS OK`.
async fn answer(
    server: &TestServer,
    u: &User,
    cookie: &str,
    session: &str,
) -> (Client, Vec<String>) {
    let sb = Client::connect(server.running.switchboard_addr).await;
    answer_on(sb, u, cookie, session).await
}

/// [`answer`] on a switchboard connection the caller opened.
async fn answer_on(mut sb: Client, u: &User, cookie: &str, session: &str) -> (Client, Vec<String>) {
    let t = sb.next();
    sb.send(&format!("ANS {t} {} {cookie} {session}", u.handle))
        .await;
    let mut iro = Vec::new();
    loop {
        let cmd = sb.recv().await;
        if render(&cmd) == format!("ANS {t} OK") {
            return (sb, iro);
        }
        assert_eq!(cmd.name, "IRO", "unexpected reply to ANS: {}", render(&cmd));
        iro.push(render(&cmd));
    }
}

/// `caller` (already on `caller_sb`) brings `invitee` into the session.
async fn invite(
    server: &TestServer,
    caller_sb: &mut Client,
    caller: &User,
    invitee: &mut User,
) -> (Client, Vec<String>) {
    let session = call(caller_sb, &invitee.handle).await;
    let cookie = ring(server, invitee, &session, caller).await;
    answer(server, invitee, &cookie, &session).await
}

/// `JOI` (or `IRO` fields) for `u` as a client of `viewer_dialect` sees it.
fn fields(u: &User, viewer_dialect: u8) -> String {
    if viewer_dialect >= 12 {
        format!("{} {} {}", u.handle, u.name, u.caps)
    } else {
        format!("{} {}", u.handle, u.name)
    }
}

fn text_message(body: &str) -> Vec<u8> {
    format!(
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Segoe%20UI; EF=BI; CO=ff0000; CS=0; PF=22\r\n\r\n{body}"
    )
    .into_bytes()
}

fn typing(handle: &str) -> Vec<u8> {
    format!("MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: {handle}\r\n\r\n\r\n").into_bytes()
}

const NUDGE: &[u8] =
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n";

/// Sends `MSG t mode len` + payload; returns the TrID.
async fn send_msg(sb: &mut Client, mode: &str, payload: &[u8]) -> u32 {
    let t = sb.next();
    sb.send_payload(&format!("MSG {t} {mode}"), payload).await;
    t
}

/// Receives one relayed message and checks sender, name and exact bytes.
async fn expect_relayed(sb: &mut Client, from: &User, payload: &[u8]) {
    let cmd = sb.recv().await;
    assert_eq!(
        render(&cmd),
        format!("MSG {} {} {}", from.handle, from.name, payload.len())
    );
    assert_eq!(
        cmd.payload.as_deref(),
        Some(payload),
        "payload not relayed byte for byte"
    );
}

/// Proves nothing else is queued for `sb` before a fresh `A` message's
/// reply: sends one and expects exactly `reply` (`ACK` or `NAK`) with its TrID next.
async fn next_reply_is(sb: &mut Client, reply: &str) -> u32 {
    let t = send_msg(sb, "A", &text_message("marker")).await;
    sb.expect(&format!("{reply} {t}")).await;
    t
}

fn rendered(cmds: &[Command]) -> Vec<String> {
    cmds.iter().map(render).collect()
}

#[tokio::test]
async fn one_to_one_chat_both_ways_with_utf8_and_formatting_intact() {
    let server = start().await;
    let mut alice = online(
        &server,
        9,
        "alice@one2one.example.com",
        "Alice Ä",
        268435492,
    )
    .await;
    let mut bob = online(&server, 9, "bob@one2one.example.com", "Bob", 268435492).await;

    let mut a_sb = open_chat(&server, &mut alice).await;
    let (mut b_sb, iro) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    assert_eq!(iro, [format!("IRO 1 1 1 {}", fields(&alice, 9))]);
    a_sb.expect(&format!("JOI {}", fields(&bob, 9))).await;

    // alice → bob: relayed with alice's name, byte for byte; ACK to alice only.
    let hello = text_message("Grüße, Bob! ✓ 你好 \u{1F600}\r\nsecond line <b>not markup</b>");
    let t = send_msg(&mut a_sb, "A", &hello).await;
    // No JOI for bob himself: the first thing he sees is alice's message.
    expect_relayed(&mut b_sb, &alice, &hello).await;
    a_sb.expect(&format!("ACK {t}")).await;

    // bob → alice.
    let reply = text_message("Hi Alice — ça va?");
    let t = send_msg(&mut b_sb, "A", &reply).await;
    expect_relayed(&mut a_sb, &bob, &reply).await;
    b_sb.expect(&format!("ACK {t}")).await;

    // Nobody receives their own messages back.
    a_sb.expect_silence(SHORT).await;
    b_sb.expect_silence(SHORT).await;
}

#[tokio::test]
async fn xfr_and_rng_advertise_the_configured_public_switchboard_address() {
    let server =
        start_with(|c| c.msn.switchboard_public = Some("sb.example.net:1864".into())).await;
    let mut alice = online(&server, 12, "alice@sbpublic.example.com", "Alice", 0).await;
    let mut bob = online(&server, 7, "bob@sbpublic.example.com", "Bob", 0).await;
    let (address, cookie) = xfr(&mut alice.ns).await;
    assert_eq!(address, "sb.example.net:1864");
    let mut a_sb = Client::connect(server.running.switchboard_addr).await;
    a_sb.send(&format!("USR 1 {} {cookie}", alice.handle)).await;
    a_sb.expect(&format!("USR 1 OK {} Alice", alice.handle))
        .await;
    a_sb.send(&format!("CAL 2 {}", bob.handle)).await;
    let session = a_sb.recv().await.args[2].clone();
    let rng = bob.ns.recv_named("RNG").await;
    assert_eq!(
        render(&rng),
        format!(
            "RNG {session} sb.example.net:1864 CKI {} {} Alice",
            rng.args[3], alice.handle
        )
    );
}

#[tokio::test]
async fn xfr_sb_needs_a_visible_status() {
    let server = start().await;
    server
        .add_user("alice@xfrstatus.example.com", PW, "Alice")
        .await;
    let mut ns = sign_in(&server, 11, "alice@xfrstatus.example.com", PW).await;
    // No CHG yet.
    ns.send("XFR 10 SB").await;
    ns.expect("913 10").await;
    set_status(&mut ns, 11, "HDN", 0).await;
    ns.send("XFR 11 SB").await;
    ns.expect("913 11").await;
    set_status(&mut ns, 11, "AWY", 0).await;
    ns.send("XFR 12 SB").await;
    assert_eq!(ns.recv().await.args[..2], ["12", "SB"]);
}

#[tokio::test]
async fn three_party_chat_with_joins_leaves_and_dialect_specific_iro_joi() {
    let server = start().await;
    let mut alice = online(&server, 12, "alice@group.example.com", "Alice", 1342177280).await;
    let mut bob = online(&server, 11, "bob@group.example.com", "Bob B", 268435492).await;
    let mut carol = online(&server, 12, "carol@group.example.com", "Carol", 1342177312).await;

    let mut a_sb = open_chat(&server, &mut alice).await;
    let (mut b_sb, iro) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    // bob speaks MSNP11: no capabilities in IRO.
    assert_eq!(iro, [format!("IRO 1 1 1 {}", fields(&alice, 11))]);
    // alice speaks MSNP12: JOI carries bob's capabilities.
    a_sb.expect(&format!("JOI {}", fields(&bob, 12))).await;

    // Any participant may invite: bob calls carol.
    let (mut c_sb, iro) = invite(&server, &mut b_sb, &bob, &mut carol).await;
    assert_eq!(
        iro,
        [
            format!("IRO 1 1 2 {}", fields(&alice, 12)),
            format!("IRO 1 2 2 {}", fields(&bob, 12))
        ]
    );
    a_sb.expect(&format!("JOI {}", fields(&carol, 12))).await;
    b_sb.expect(&format!("JOI {}", fields(&carol, 11))).await;

    // A message reaches both others, ACK only after that.
    let m = text_message("hello both");
    let t = send_msg(&mut c_sb, "A", &m).await;
    expect_relayed(&mut a_sb, &carol, &m).await;
    expect_relayed(&mut b_sb, &carol, &m).await;
    c_sb.expect(&format!("ACK {t}")).await;

    // P2P data goes only to the participant its P2P-Dest names.
    let chunk = p2p_chunk(&alice.handle, 7, 0, 4, b"data");
    let t = send_msg(&mut c_sb, "D", &chunk).await;
    expect_relayed(&mut a_sb, &carol, &chunk).await;
    c_sb.expect(&format!("ACK {t}")).await;
    let m = text_message("marker");
    send_msg(&mut c_sb, "U", &m).await;
    expect_relayed(&mut b_sb, &carol, &m).await; // not the P2P chunk first
    expect_relayed(&mut a_sb, &carol, &m).await;

    // bob leaves with OUT: the others see BYE, bob sees nothing more.
    b_sb.send("OUT").await;
    assert!(b_sb.expect_closed().await.is_empty());
    a_sb.expect(&format!("BYE {}", bob.handle)).await;
    c_sb.expect(&format!("BYE {}", bob.handle)).await;

    let m = text_message("just us now");
    let t = send_msg(&mut a_sb, "A", &m).await;
    expect_relayed(&mut c_sb, &alice, &m).await;
    a_sb.expect(&format!("ACK {t}")).await;

    // bob can be invited back into the running session.
    let (mut b_sb, iro) = invite(&server, &mut c_sb, &carol, &mut bob).await;
    assert_eq!(
        iro,
        [
            format!("IRO 1 1 2 {}", fields(&alice, 11)),
            format!("IRO 1 2 2 {}", fields(&carol, 11))
        ]
    );
    a_sb.expect(&format!("JOI {}", fields(&bob, 12))).await;
    c_sb.expect(&format!("JOI {}", fields(&bob, 12))).await;

    // carol's TCP connection drops: BYE for her too.
    drop(c_sb);
    a_sb.expect(&format!("BYE {}", carol.handle)).await;
    b_sb.expect(&format!("BYE {}", carol.handle)).await;
    let m = text_message("bye carol");
    let t = send_msg(&mut b_sb, "A", &m).await;
    expect_relayed(&mut a_sb, &bob, &m).await;
    b_sb.expect(&format!("ACK {t}")).await;
}

#[tokio::test]
async fn each_acknowledgement_mode() {
    let server = start().await;
    let mut alice = online(&server, 9, "alice@ackmodes.example.com", "Alice", 0).await;
    let mut bob = online(&server, 9, "bob@ackmodes.example.com", "Bob", 0).await;
    let mut a_sb = open_chat(&server, &mut alice).await;

    // Alone in the session: nothing can be delivered.
    for mode in ["U", "S"] {
        send_msg(&mut a_sb, mode, &text_message(mode)).await;
    }
    let n = send_msg(&mut a_sb, "N", &text_message("N")).await;
    a_sb.expect(&format!("NAK {n}")).await;
    let d = send_msg(&mut a_sb, "D", NUDGE).await;
    a_sb.expect(&format!("NAK {d}")).await;
    // U and S got no reply at all: the next reply is the NAK of this A.
    next_reply_is(&mut a_sb, "NAK").await;

    let (mut b_sb, _) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    a_sb.expect(&format!("JOI {}", fields(&bob, 9))).await;

    // U: relayed, never acknowledged. N: relayed, nothing on success.
    for mode in ["U", "N"] {
        let m = text_message(mode);
        send_msg(&mut a_sb, mode, &m).await;
        expect_relayed(&mut b_sb, &alice, &m).await;
    }
    // A and S: ACK on success. D: ACK for a well-formed data message.
    for mode in ["A", "S", "D"] {
        let m = text_message(mode);
        let t = send_msg(&mut a_sb, mode, &m).await;
        expect_relayed(&mut b_sb, &alice, &m).await;
        a_sb.expect(&format!("ACK {t}")).await;
    }
    // The U and N messages above got no reply: the next one is this ACK.
    next_reply_is(&mut a_sb, "ACK").await;
    expect_relayed(&mut b_sb, &alice, &text_message("marker")).await;

    // D with a payload that is not a message at all: 282, not relayed.
    let t = send_msg(&mut a_sb, "D", b"\x00\x01 not mime").await;
    a_sb.expect(&format!("282 {t}")).await;
    b_sb.expect_silence(SHORT).await;

    // An unknown mode closes the connection; bob sees alice leave.
    send_msg(&mut a_sb, "X", &text_message("?")).await;
    assert!(a_sb.expect_closed().await.is_empty());
    b_sb.expect(&format!("BYE {}", alice.handle)).await;
}

#[tokio::test]
async fn typing_notices_and_nudges_are_relayed_byte_for_byte() {
    let server = start().await;
    let mut alice = online(&server, 11, "alice@typing.example.com", "Alice", 0).await;
    let mut bob = online(&server, 11, "bob@typing.example.com", "Bob", 0).await;
    let mut a_sb = open_chat(&server, &mut alice).await;
    let (mut b_sb, _) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    a_sb.expect(&format!("JOI {}", fields(&bob, 11))).await;

    let notice = typing(&alice.handle);
    assert_eq!(notice.len(), 73 + alice.handle.len()); // 90 bytes for alice@example.com
    send_msg(&mut a_sb, "U", &notice).await;
    let mut wire = format!("MSG {} Alice {}\r\n", alice.handle, notice.len()).into_bytes();
    wire.extend_from_slice(&notice);
    assert_eq!(
        b_sb.recv_exact_bytes(wire.len()).await,
        wire,
        "typing notice relayed as exactly these bytes"
    );

    assert_eq!(NUDGE.len(), 69);
    send_msg(&mut b_sb, "N", NUDGE).await;
    let mut wire = format!("MSG {} Bob 69\r\n", bob.handle).into_bytes();
    wire.extend_from_slice(NUDGE);
    assert_eq!(
        a_sb.recv_exact_bytes(wire.len()).await,
        wire,
        "nudge relayed as exactly these bytes"
    );

    // Neither sender got an acknowledgement.
    next_reply_is(&mut a_sb, "ACK").await;
    expect_relayed(&mut b_sb, &alice, &text_message("marker")).await;
    next_reply_is(&mut b_sb, "ACK").await;
}

/// One P2P (MSNC) data message: MIME header, 48-byte binary header, data, footer.
fn p2p_chunk(dest: &str, session_id: u32, offset: u64, total: u64, data: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: {dest}\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&(offset as u32 ^ 0x5a5a).to_le_bytes()); // identifier
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&0x0100_0030u32.to_le_bytes()); // flags: file data
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&2u32.to_be_bytes()); // footer: file transfer
    out
}

/// Reads back the data part of a P2P message built by [`p2p_chunk`].
fn p2p_data(payload: &[u8]) -> (u64, &[u8]) {
    let body_start = payload
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("MIME header end")
        + 4;
    let header = &payload[body_start..body_start + 48];
    let offset = u64::from_le_bytes(header[8..16].try_into().unwrap());
    let len = u32::from_le_bytes(header[24..28].try_into().unwrap()) as usize;
    let data = &payload[body_start + 48..body_start + 48 + len];
    assert_eq!(&payload[body_start + 48 + len..], 2u32.to_be_bytes());
    (offset, data)
}

#[tokio::test]
async fn file_transfer_invitation_and_a_megabyte_of_p2p_data_arrive_intact() {
    let server = start().await;
    let mut alice = online(&server, 9, "alice@filexfer.example.com", "Alice", 268435492).await;
    let mut bob = online(&server, 12, "bob@filexfer.example.com", "Bob", 1342177280).await;
    let mut a_sb = open_chat(&server, &mut alice).await;
    let (mut b_sb, _) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    a_sb.expect(&format!("JOI {}", fields(&bob, 9))).await;

    const SIZE: usize = 1 << 20;
    // Binary content with NULs, CR LF and things that look like commands.
    let mut file = Vec::with_capacity(SIZE);
    let mut x: u32 = 0x1234_5678;
    while file.len() < SIZE {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        match file.len() % 4096 {
            0 => file.extend_from_slice(b"\r\nMSG 1 A 5\r\n\0\0"),
            _ => file.push((x >> 24) as u8),
        }
    }
    file.truncate(SIZE);

    // MSNFTP invitation (msnftp.md §2): INVITE with S (as Miranda does),
    // ACCEPT from the receiver, ACCEPT with the connection data — all relayed as sent.
    let invite_msg = format!(
        "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\nApplication-Name: File Transfer\r\nApplication-GUID: {{5D3E02AB-6190-11d3-BBBB-00C04F795683}}\r\nInvitation-Command: INVITE\r\nInvitation-Cookie: 41524\r\nApplication-File: r\u{e9}sum\u{e9}.bin\r\nApplication-FileSize: {SIZE}\r\nConnectivity: Y\r\n\r\n"
    );
    let t = send_msg(&mut a_sb, "S", invite_msg.as_bytes()).await;
    expect_relayed(&mut b_sb, &alice, invite_msg.as_bytes()).await;
    a_sb.expect(&format!("ACK {t}")).await;
    let accept = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\nInvitation-Command: ACCEPT\r\nInvitation-Cookie: 41524\r\nLaunch-Application: FALSE\r\nRequest-Data: IP-Address:\r\n\r\n";
    assert_eq!(accept.len(), 181);
    send_msg(&mut b_sb, "N", accept).await;
    expect_relayed(&mut a_sb, &bob, accept).await;
    let connect = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\nInvitation-Command: ACCEPT\r\nInvitation-Cookie: 41524\r\nIP-Address: 192.0.2.20\r\nPort: 6891\r\nAuthCookie: 1618033\r\nLaunch-Application: FALSE\r\nRequest-Data: IP-Address:\r\n\r\n";
    assert_eq!(connect.len(), 238);
    send_msg(&mut a_sb, "N", connect).await;
    expect_relayed(&mut b_sb, &alice, connect).await;

    // The data: ~870 MSG … D chunks of at most 1664 bytes, pipelined.
    let chunks: Vec<Vec<u8>> = file
        .chunks(1202)
        .enumerate()
        .map(|(i, data)| {
            p2p_chunk(
                &bob.handle,
                0x2f00_0001,
                (i * 1202) as u64,
                SIZE as u64,
                data,
            )
        })
        .collect();
    assert!(chunks.iter().all(|c| c.len() <= 1664) && chunks.len() > 800);
    let count = chunks.len();
    let sender = tokio::spawn(async move {
        let mut trids = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            trids.push(send_msg(&mut a_sb, "D", chunk).await);
        }
        for t in trids {
            a_sb.expect(&format!("ACK {t}")).await;
        }
        a_sb
    });
    let mut received = Vec::with_capacity(SIZE);
    let mut next_offset = 0u64;
    for _ in 0..count {
        let cmd = b_sb.recv().await;
        let payload = cmd.payload.as_deref().expect("MSG payload");
        assert_eq!(
            render(&cmd),
            format!("MSG {} Alice {}", alice.handle, payload.len())
        );
        let (offset, data) = p2p_data(payload);
        assert_eq!(offset, next_offset, "chunks relayed in order");
        next_offset += data.len() as u64;
        received.extend_from_slice(data);
    }
    let mut a_sb = sender.await.expect("sender task");
    assert_eq!(received.len(), SIZE);
    assert_eq!(
        Md5::digest(&received),
        Md5::digest(&file),
        "file corrupted in transit"
    );
    a_sb.expect_silence(SHORT).await;
    b_sb.expect_silence(SHORT).await;
}

#[tokio::test]
async fn bad_reused_and_foreign_cookies_are_refused_with_911_and_close() {
    let server = start().await;
    let mut alice = online(&server, 8, "alice@cookies.example.com", "Alice", 0).await;
    let mut bob = online(&server, 8, "bob@cookies.example.com", "Bob", 0).await;
    let mallory = online(&server, 8, "mallory@cookies.example.com", "Mallory", 0).await;
    let sb = server.running.switchboard_addr;

    // A made-up cookie.
    let mut c = Client::connect(sb).await;
    c.send(&format!("USR 1 {} 12345.67890", alice.handle)).await;
    assert_eq!(rendered(&c.expect_closed().await), ["911 1"]);

    // Another user's cookie is refused; its owner can still use it, once.
    let (_, cookie) = xfr(&mut alice.ns).await;
    let mut c = Client::connect(sb).await;
    c.send(&format!("USR 1 {} {cookie}", mallory.handle)).await;
    assert_eq!(rendered(&c.expect_closed().await), ["911 1"]);
    let mut a_sb = Client::connect(sb).await;
    a_sb.send(&format!("USR 1 {} {cookie}", alice.handle)).await;
    a_sb.expect(&format!("USR 1 OK {} Alice", alice.handle))
        .await;
    let mut c = Client::connect(sb).await;
    c.send(&format!("USR 1 {} {cookie}", alice.handle)).await;
    assert_eq!(
        rendered(&c.expect_closed().await),
        ["911 1"],
        "a used cookie works once"
    );

    // The same for invitation cookies (ANS).
    a_sb.send(&format!("CAL 2 {}", bob.handle)).await;
    let session = a_sb.recv().await.args[2].clone();
    let cookie = ring(&server, &mut bob, &session, &alice).await;
    let mut c = Client::connect(sb).await;
    c.send(&format!("ANS 1 {} {cookie} {session}", mallory.handle))
        .await;
    assert_eq!(rendered(&c.expect_closed().await), ["911 1"]);
    // An invitation cookie does not create a session...
    let mut c = Client::connect(sb).await;
    c.send(&format!("USR 1 {} {cookie}", bob.handle)).await;
    assert_eq!(rendered(&c.expect_closed().await), ["911 1"]);
    // ...and was spent by that attempt.
    let mut c = Client::connect(sb).await;
    c.send(&format!("ANS 1 {} {cookie} {session}", bob.handle))
        .await;
    assert_eq!(rendered(&c.expect_closed().await), ["911 1"]);

    // A session id that does not match the cookie: closed.
    a_sb.send(&format!("CAL 3 {}", bob.handle)).await;
    a_sb.expect("215 3").await; // still invited
    drop(a_sb);
    let mut a_sb = open_chat(&server, &mut alice).await;
    let session = call(&mut a_sb, &bob.handle).await;
    let cookie = ring(&server, &mut bob, &session, &alice).await;
    let mut c = Client::connect(sb).await;
    c.send(&format!(
        "ANS 1 {} {cookie} {}",
        bob.handle,
        session.parse::<u64>().unwrap() + 1
    ))
    .await;
    assert!(c.expect_closed().await.is_empty());

    // A create cookie is not an invitation.
    let (_, cookie) = xfr(&mut bob.ns).await;
    let mut c = Client::connect(sb).await;
    c.send(&format!("ANS 1 {} {cookie} {session}", bob.handle))
        .await;
    assert_eq!(rendered(&c.expect_closed().await), ["911 1"]);

    // Nothing but USR/ANS before authentication.
    for line in [
        "CAL 1 bob@cookies.example.com",
        "MSG 1 A 0",
        "XFR 1 SB",
        "VER 1 MSNP8",
    ] {
        let mut c = Client::connect(sb).await;
        c.send(line).await;
        assert!(c.expect_closed().await.is_empty(), "{line}");
    }

    // Cookies are not guessable from one another.
    let (_, c1) = xfr(&mut alice.ns).await;
    let (_, c2) = xfr(&mut alice.ns).await;
    assert_ne!(c1, c2);
    let digits = |c: &str| c.bytes().filter(u8::is_ascii_alphanumeric).count();
    assert!(
        digits(&c1) >= 20 && digits(&c2) >= 20,
        "cookies too short: {c1} {c2}"
    );
}

#[tokio::test]
async fn expired_cookies_are_refused() {
    let server = start_with(|c| c.msn.cookie_lifetime_secs = 1).await;
    let mut alice = online(&server, 10, "alice@expired.example.com", "Alice", 0).await;
    let mut bob = online(&server, 10, "bob@expired.example.com", "Bob", 0).await;
    let (_, stale) = xfr(&mut alice.ns).await;
    let mut a_sb = open_chat(&server, &mut alice).await;
    let session = call(&mut a_sb, &bob.handle).await;
    let stale_invitation = ring(&server, &mut bob, &session, &alice).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut c = Client::connect(server.running.switchboard_addr).await;
    c.send(&format!("USR 1 {} {stale}", alice.handle)).await;
    assert_eq!(rendered(&c.expect_closed().await), ["911 1"]);
    let mut c = Client::connect(server.running.switchboard_addr).await;
    c.send(&format!(
        "ANS 1 {} {stale_invitation} {session}",
        bob.handle
    ))
    .await;
    assert_eq!(rendered(&c.expect_closed().await), ["911 1"]);
    // The expired invitation no longer counts as pending: bob can be called again.
    let (_b_sb, iro) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    assert_eq!(iro.len(), 1);
}

#[tokio::test]
async fn unauthenticated_switchboard_connections_time_out() {
    let server = start_with(|c| c.msn.switchboard_auth_timeout_secs = 1).await;
    // Taken before connecting: the server's clock for this connection starts
    // later, so the close cannot come less than 1 s after this.
    let started = Instant::now();
    let mut c = Client::connect(server.running.switchboard_addr).await;
    assert!(c.expect_closed().await.is_empty());
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn cal_errors() {
    let server = start_with(|c| c.msn.max_participants = 3).await;
    let d = "calerrors.example.com";
    let mut alice = online(&server, 9, &format!("alice@{d}"), "Alice", 0).await;
    let mut bob = online(&server, 9, &format!("bob@{d}"), "Bob", 0).await;
    let mut hidden = online(&server, 9, &format!("hidden@{d}"), "Hidden", 0).await;
    set_status(&mut hidden.ns, 9, "HDN", 0).await;
    let mut blocker = online(&server, 9, &format!("blocker@{d}"), "Blocker", 0).await;
    blocker
        .ns
        .send(&format!("ADD 20 BL {} Alice", alice.handle))
        .await;
    assert_eq!(blocker.ns.recv().await.args[..2], ["20", "BL"]);
    server
        .add_user(&format!("offline@{d}"), PW, "Offline")
        .await;
    // Signed in but no status set yet: not reachable either.
    server.add_user(&format!("nochg@{d}"), PW, "NoChg").await;
    let _nochg = sign_in(&server, 9, &format!("nochg@{d}"), PW).await;
    let carol = online(&server, 9, &format!("carol@{d}"), "Carol", 0).await;
    let dave = online(&server, 9, &format!("dave@{d}"), "Dave", 0).await;

    let mut a_sb = open_chat(&server, &mut alice).await;
    let mut expect_error = async |target: &str, code: &str| {
        let t = a_sb.next();
        a_sb.send(&format!("CAL {t} {target}")).await;
        a_sb.expect(&format!("{code} {t}")).await;
    };
    for target in ["offline", "nobody", "hidden", "blocker", "nochg"] {
        expect_error(&format!("{target}@{d}"), "217").await;
    }
    // Calling someone who blocks you again and again: 713 after a few 217s.
    expect_error(&format!("blocker@{d}"), "217").await;
    expect_error(&format!("blocker@{d}"), "217").await;
    expect_error(&format!("blocker@{d}"), "713").await;
    expect_error(&format!("blocker@{d}"), "713").await;
    expect_error(&format!("offline@{d}"), "217").await; // others still get 217
    expect_error(&alice.handle, "215").await; // self
    expect_error(&alice.handle.to_uppercase(), "215").await;
    expect_error("not-an-address", "208").await;
    expect_error("bob@", "208").await;

    let (mut b_sb, _) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    a_sb.expect(&format!("JOI {}", fields(&bob, 9))).await;
    let t = a_sb.next();
    a_sb.send(&format!("CAL {t} {}", bob.handle)).await;
    a_sb.expect(&format!("215 {t}")).await; // already in the session
    // Still 215, not 217, once bob is invisible on the NS: the 215 checks come first.
    set_status(&mut bob.ns, 9, "HDN", 0).await;
    let t = a_sb.next();
    a_sb.send(&format!("CAL {t} {}", bob.handle)).await;
    a_sb.expect(&format!("215 {t}")).await;
    // carol is invited (pending) — the session is then full (3 = 2 in + 1 invited).
    let session = call(&mut b_sb, &carol.handle).await;
    let t = a_sb.next();
    a_sb.send(&format!("CAL {t} {}", carol.handle)).await;
    a_sb.expect(&format!("215 {t}")).await; // already invited
    let t = a_sb.next();
    a_sb.send(&format!("CAL {t} {}", dave.handle)).await;
    a_sb.expect(&format!("713 {t}")).await; // too many participants
    assert!(!session.is_empty());
    // A CAL without a handle closes the connection.
    a_sb.send("CAL 99").await;
    assert!(a_sb.expect_closed().await.is_empty());
    b_sb.expect(&format!("BYE {}", alice.handle)).await;
}

#[tokio::test]
async fn bye_on_out_and_on_a_dropped_connection() {
    let server = start().await;
    let mut alice = online(&server, 8, "alice@bye.example.com", "Alice", 0).await;
    let mut bob = online(&server, 8, "bob@bye.example.com", "Bob", 0).await;

    let mut a_sb = open_chat(&server, &mut alice).await;
    let (mut b_sb, _) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    a_sb.expect(&format!("JOI {}", fields(&bob, 8))).await;
    b_sb.send("OUT").await;
    assert!(b_sb.expect_closed().await.is_empty());
    a_sb.expect(&format!("BYE {}", bob.handle)).await;

    let (b_sb, _) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    a_sb.expect(&format!("JOI {}", fields(&bob, 8))).await;
    drop(b_sb);
    a_sb.expect(&format!("BYE {}", bob.handle)).await;
    a_sb.expect_silence(SHORT).await;
}

#[tokio::test]
async fn nak_when_the_only_other_participant_has_disconnected() {
    let server = start().await;
    let mut alice = online(&server, 12, "alice@naklast.example.com", "Alice", 0).await;
    let mut bob = online(&server, 12, "bob@naklast.example.com", "Bob", 0).await;
    let mut a_sb = open_chat(&server, &mut alice).await;
    let (b_sb, _) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    a_sb.expect(&format!("JOI {}", fields(&bob, 12))).await;
    drop(b_sb);
    a_sb.expect(&format!("BYE {}", bob.handle)).await;
    for mode in ["A", "N", "D"] {
        let t = send_msg(&mut a_sb, mode, &text_message("anyone?")).await;
        a_sb.expect(&format!("NAK {t}")).await;
    }
}

/// A numbered text message, so each copy tells which one it is.
fn numbered(n: usize) -> Vec<u8> {
    text_message(&format!("{n:06} {}", "x".repeat(1400)))
}

fn number_of(payload: &[u8]) -> usize {
    let text = String::from_utf8_lossy(payload);
    let body = text.rsplit("\r\n\r\n").next().unwrap_or("");
    body[..6].parse().expect("a numbered message")
}

#[tokio::test]
async fn a_participant_that_stops_reading_is_removed_and_senders_get_nak() {
    // A short write deadline, so the test does not wait a minute for it.
    let server = start_with(|c| c.msn.write_timeout_secs = 2).await;
    let d = "stuck.example.com";
    let mut alice = online(&server, 9, &format!("alice@{d}"), "Alice", 0).await;
    let mut bob = online(&server, 9, &format!("bob@{d}"), "Bob", 0).await;
    let mut carol = online(&server, 9, &format!("carol@{d}"), "Carol", 0).await;
    let mut a_sb = open_chat(&server, &mut alice).await;
    let session = call(&mut a_sb, &bob.handle).await;
    let cookie = ring(&server, &mut bob, &session, &alice).await;
    let small = Client::connect_with_small_window(server.running.switchboard_addr, 4096).await;
    let (mut b_sb, _) = answer_on(small, &bob, &cookie, &session).await;
    a_sb.expect(&format!("JOI {}", fields(&bob, 9))).await;
    let (mut c_sb, _) = invite(&server, &mut a_sb, &alice, &mut carol).await;
    a_sb.expect(&format!("JOI {}", fields(&carol, 9))).await;
    b_sb.expect(&format!("JOI {}", fields(&carol, 9))).await;

    // bob stops reading; carol reads everything. alice sends 4 MiB, far
    // more than bob's queue and socket buffers hold.
    const COUNT: usize = 2800;
    let carol_reads = tokio::spawn(async move {
        let (mut got, mut byes) = (Vec::new(), Vec::new());
        while got.len() < COUNT || byes.is_empty() {
            let cmd = c_sb.recv().await;
            match cmd.name.as_str() {
                "MSG" => got.push(number_of(cmd.payload.as_deref().unwrap_or_default())),
                _ => byes.push(render(&cmd)),
            }
        }
        (got, byes, c_sb)
    });
    let mut stream = a_sb.into_stream();
    let alice_writes = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut read, mut write) = stream.split();
        let sending = async {
            for n in 1..=COUNT {
                let m = numbered(n);
                let mut out = format!("MSG {n} A {}\r\n", m.len()).into_bytes();
                out.extend_from_slice(&m);
                write.write_all(&out).await.expect("alice writes");
            }
        };
        // alice's replies are read meanwhile, so nothing waits on her.
        let mut replies = Vec::new();
        let decoder = msnp::codec::Decoder::server_to_client();
        let mut buf = bytes::BytesMut::new();
        let receiving = async {
            use tokio::io::AsyncReadExt;
            let mut acknowledged = 0;
            while acknowledged < COUNT {
                if let Some(cmd) = decoder.decode(&mut buf).expect("well framed") {
                    if cmd.name == "ACK" || cmd.name == "NAK" {
                        acknowledged += 1;
                    }
                    replies.push(render(&cmd));
                    continue;
                }
                let mut chunk = [0u8; 16384];
                let n = tokio::time::timeout(TIMEOUT, read.read(&mut chunk))
                    .await
                    .expect("a reply for every message")
                    .expect("alice reads");
                assert!(n > 0, "alice's connection closed");
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::join!(sending, receiving);
        replies
    });
    let replies = alice_writes.await.expect("alice's task");
    let (carol_got, carol_byes, mut c_sb) = carol_reads.await.expect("carol's task");

    // bob was removed by the server: both others were told.
    assert_eq!(carol_byes, [format!("BYE {} 1", bob.handle)]);
    let outcome: Vec<&String> = replies.iter().filter(|r| !r.starts_with("BYE")).collect();
    assert!(
        replies.contains(&format!("BYE {} 1", bob.handle)),
        "alice was not told that bob left"
    );
    // One reply per message, in the order sent: ACK while bob took his
    // copies, NAK for those he did not get, ACK again once he was gone.
    let expected_order: Vec<String> = (1..=COUNT).map(|n| n.to_string()).collect();
    let order: Vec<String> = outcome
        .iter()
        .map(|r| r.split(' ').nth(1).unwrap_or("").to_string())
        .collect();
    assert_eq!(order, expected_order, "replies out of order");
    // Everything alice sent reached carol, in order.
    assert_eq!(carol_got, (1..=COUNT).collect::<Vec<_>>());
    // bob's connection was closed: he gets what was written, then EOF.
    let seen = b_sb.expect_closed().await;
    assert!(
        seen.iter().all(|c| c.name == "MSG"),
        "{:?}",
        rendered(&seen[..seen.len().min(3)])
    );
    let bob_got: Vec<usize> = seen
        .iter()
        .map(|c| number_of(c.payload.as_deref().unwrap_or_default()))
        .collect();
    let written = bob_got.len();
    assert_eq!(bob_got, (1..=written).collect::<Vec<_>>());
    // As runs: "ACK×n NAK×m ACK×k".
    let mut runs: Vec<(String, usize)> = Vec::new();
    for r in &outcome {
        match runs.last_mut() {
            Some((kind, n)) if *kind == r[..3] => *n += 1,
            _ => runs.push((r[..3].to_string(), 1)),
        }
    }
    let runs: Vec<String> = runs.iter().map(|(k, n)| format!("{k}×{n}")).collect();
    let naks = outcome.iter().filter(|r| r.starts_with("NAK")).count();
    assert!(
        naks > 0,
        "bob was removed, yet every message was acknowledged: {runs:?}"
    );
    let mut expected = vec![format!("ACK×{written}"), format!("NAK×{naks}")];
    if COUNT > written + naks {
        expected.push(format!("ACK×{}", COUNT - written - naks));
    }
    assert_eq!(
        runs, expected,
        "ACK must mean bob got it; NAK exactly for what he did not get ({written} written)"
    );

    // The server goes on: alice's task closed her connection, carol is
    // told and answered; alice can open a new chat.
    c_sb.expect(&format!("BYE {}", alice.handle)).await;
    next_reply_is(&mut c_sb, "NAK").await;
    let mut a_sb = open_chat(&server, &mut alice).await;
    next_reply_is(&mut a_sb, "NAK").await;
}

#[tokio::test]
async fn idle_participants_are_removed_with_bye_1() {
    // Long enough that each step below has seconds of slack on a loaded
    // machine; every bound is measured from client-side instants taken
    // before the server's own (so none of them needs a fudge factor).
    const IDLE: Duration = Duration::from_secs(4);
    let server = start_with(|c| c.msn.switchboard_idle_timeout_secs = IDLE.as_secs()).await;
    let d = "idle.example.com";
    let mut alice = online(&server, 12, &format!("alice@{d}"), "Alice", 0).await;
    let mut bob = online(&server, 12, &format!("bob@{d}"), "Bob", 0).await;
    let mut carol = online(&server, 7, &format!("carol@{d}"), "Carol", 0).await;
    // alice's last own activity is her USR: no earlier than this.
    let alice_joined = Instant::now();
    let mut a_sb = open_chat(&server, &mut alice).await;
    let (mut b_sb, _) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    a_sb.expect(&format!("JOI {}", fields(&bob, 12))).await;

    // Halfway through alice's idle time bob talks; receiving a message
    // counts as activity for alice too.
    tokio::time::sleep_until((alice_joined + IDLE / 2).into()).await;
    let m = text_message("still here");
    // The server stamps bob's and alice's activity after this instant.
    let last_message = Instant::now();
    send_msg(&mut b_sb, "U", &m).await;
    expect_relayed(&mut a_sb, &bob, &m).await;
    // A third of the timeout later carol joins: she stays active until
    // well after alice and bob go.
    tokio::time::sleep_until((last_message + IDLE / 3).into()).await;
    let (mut c_sb, _) = invite(&server, &mut a_sb, &alice, &mut carol).await;

    // A full timeout after the message, alice and bob are removed by the
    // server: carol sees `BYE x 1` for both. (Were receiving not activity,
    // alice would go half a timeout earlier.)
    let first = render(&c_sb.recv().await);
    assert!(
        last_message.elapsed() >= IDLE,
        "{first} while the conversation was active ({:?} after the last message)",
        last_message.elapsed()
    );
    let mut byes = vec![first, render(&c_sb.recv().await)];
    byes.sort();
    assert_eq!(
        byes,
        [
            format!("BYE {} 1", alice.handle),
            format!("BYE {} 1", bob.handle)
        ]
    );
    for sb in [&mut a_sb, &mut b_sb] {
        let seen = sb.expect_closed().await;
        assert!(
            seen.iter().all(|c| c.name == "JOI" || c.name == "BYE"),
            "{:?}",
            rendered(&seen)
        );
    }
    // carol, alone and idle, is closed too.
    assert!(c_sb.expect_closed().await.is_empty());
}

#[tokio::test]
async fn msnp2_client_chats_with_msnp12_client() {
    let server = start().await;
    let mut old = online(&server, 2, "old@mixed.example.com", "Old Timer", 0).await;
    let mut new = online(&server, 12, "new@mixed.example.com", "New Kid", 2788999228).await;

    // The MSNP12 user starts; the MSNP2 user answers.
    let mut n_sb = open_chat(&server, &mut new).await;
    let (mut o_sb, iro) = invite(&server, &mut n_sb, &new, &mut old).await;
    assert_eq!(iro, [format!("IRO 1 1 1 {} New%20Kid", new.handle)]);
    n_sb.expect(&format!("JOI {} Old%20Timer 0", old.handle))
        .await;
    let m = text_message("hello from 2005");
    let t = send_msg(&mut n_sb, "A", &m).await;
    expect_relayed(&mut o_sb, &new, &m).await;
    n_sb.expect(&format!("ACK {t}")).await;
    let m = b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello from 1999";
    let t = send_msg(&mut o_sb, "A", m).await;
    expect_relayed(&mut n_sb, &old, m).await;
    o_sb.expect(&format!("ACK {t}")).await;
    o_sb.send("OUT").await;
    o_sb.expect_closed().await;
    n_sb.expect(&format!("BYE {}", old.handle)).await;

    // The other way round: MSNP2 starts, MSNP12 answers and sees no caps for the MSNP2 user.
    let mut o_sb = open_chat(&server, &mut old).await;
    let (mut n_sb, iro) = invite(&server, &mut o_sb, &old, &mut new).await;
    assert_eq!(iro, [format!("IRO 1 1 1 {} Old%20Timer 0", old.handle)]);
    o_sb.expect(&format!("JOI {} New%20Kid", new.handle)).await;
    let m = text_message("round two");
    let t = send_msg(&mut o_sb, "A", &m).await;
    expect_relayed(&mut n_sb, &old, &m).await;
    o_sb.expect(&format!("ACK {t}")).await;
}

#[tokio::test]
async fn oversized_msg_closes_the_connection() {
    let server = start().await;
    let mut alice = online(&server, 9, "alice@oversized.example.com", "Alice", 0).await;
    let mut bob = online(&server, 9, "bob@oversized.example.com", "Bob", 0).await;
    let mut a_sb = open_chat(&server, &mut alice).await;
    let (mut b_sb, _) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    a_sb.expect(&format!("JOI {}", fields(&bob, 9))).await;

    // Exactly 1664 bytes is fine.
    let mut max = text_message("");
    max.resize(1664, b'a');
    let t = send_msg(&mut a_sb, "A", &max).await;
    expect_relayed(&mut b_sb, &alice, &max).await;
    a_sb.expect(&format!("ACK {t}")).await;
    // One byte more: closed without a reply, nothing relayed.
    max.push(b'a');
    send_msg(&mut a_sb, "A", &max).await;
    assert!(a_sb.expect_closed().await.is_empty());
    b_sb.expect(&format!("BYE {}", alice.handle)).await;
    // Announcing a huge payload is enough; the server does not wait for it.
    let mut a_sb = open_chat(&server, &mut alice).await;
    a_sb.send("MSG 2 A 100000000").await;
    assert!(a_sb.expect_closed().await.is_empty());
}

#[tokio::test]
async fn relayed_messages_carry_the_senders_current_friendly_name() {
    let server = start().await;
    let mut alice = online(&server, 9, "alice@rename.example.com", "Alice", 0).await;
    let mut bob = online(&server, 9, "bob@rename.example.com", "Bob", 0).await;
    let mut a_sb = open_chat(&server, &mut alice).await;
    let (mut b_sb, _) = invite(&server, &mut a_sb, &alice, &mut bob).await;
    a_sb.expect(&format!("JOI {}", fields(&bob, 9))).await;

    alice
        .ns
        .send(&format!("REA 30 {} Alice%20Away", alice.handle))
        .await;
    assert_eq!(alice.ns.recv_named("REA").await.args[0], "30");
    alice.name = "Alice%20Away".into();
    let m = text_message("brb");
    let t = send_msg(&mut a_sb, "A", &m).await;
    expect_relayed(&mut b_sb, &alice, &m).await;
    a_sb.expect(&format!("ACK {t}")).await;
}
