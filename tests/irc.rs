//! The IRC bridge against a real IRC server (ngircd, started by
//! scripts/test.sh: `MSNGATE_TEST_IRC_ADDR`), with real MSN clients over TCP
//! on one side and a raw IRC client on the other. What is asserted is what
//! the users see: MSN protocol lines and IRC lines.
//!
//! Without `MSNGATE_TEST_IRC_ADDR` these tests skip, except under `CI`, where
//! its absence is a failure. The SASL tests need no IRC server: they run a
//! small scripted one in the test.

mod common;
use common::*;
use msngate::bridge::irc::{self, IrcBridge, Tuning};
use msngate::config::{IrcConfig, IrcNetworkConfig};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const PW: &str = "s3cret!";
const CAPS: u32 = 0x4000_0000;

/// The test IRC server, or `None` (skip) outside CI.
fn irc_addr() -> Option<SocketAddr> {
    match std::env::var("MSNGATE_TEST_IRC_ADDR") {
        Ok(a) => Some(a.parse().expect("MSNGATE_TEST_IRC_ADDR is host:port")),
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must provide an IRC server (scripts/test.sh starts ngircd)"
            );
            eprintln!(
                "MSNGATE_TEST_IRC_ADDR not set: IRC bridge test not run (run scripts/test.sh)"
            );
            None
        }
    }
}

fn fast() -> Tuning {
    Tuning {
        presence_interval: Duration::from_millis(300),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(800),
        max_concurrent_connects: 4,
        burst: 5,
        line_interval: Duration::from_millis(100),
        register_timeout: Duration::from_secs(10),
        keepalive: Duration::from_secs(60),
        hold_absent: Duration::from_secs(3600),
    }
}

/// An msngate server with the IRC bridge on one network called `test`.
struct Fixture {
    server: TestServer,
    bridge: IrcBridge,
    stop: tokio::sync::watch::Sender<bool>,
}

fn network(addr: SocketAddr, edit: impl FnOnce(&mut IrcNetworkConfig)) -> IrcConfig {
    let mut n = IrcNetworkConfig {
        name: "test".into(),
        server: addr.ip().to_string(),
        port: addr.port(),
        tls: false,
        tls_ca_file: None,
        nick_template: "{local}|msn".into(),
        channels: vec![],
        stay_connected: false,
    };
    edit(&mut n);
    IrcConfig {
        networks: vec![n],
        ..Default::default()
    }
}

impl Fixture {
    async fn start(config: IrcConfig) -> Fixture {
        Fixture::start_tuned(config, fast()).await
    }

    async fn start_tuned(config: IrcConfig, tuning: Tuning) -> Fixture {
        // A permissive server: third-party clients send text longer than
        // the 1664 bytes official ones are limited to.
        let server = start_with(|c| c.msn.max_message_bytes = 8192).await;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let bridge = irc::start_with(
            &config,
            tuning,
            server.running.hub.clone(),
            server.running.metrics.clone(),
            rx,
        )
        .await
        .expect("bridge starts");
        assert!(bridge.is_ready());
        Fixture {
            server,
            bridge,
            stop,
        }
    }

    /// Creates the account, signs in (MSNP11) and goes online.
    async fn msn(&self, handle: &str) -> Client {
        self.server
            .add_user(handle, PW, handle.split('@').next().unwrap())
            .await;
        let mut c = sign_in(&self.server, 11, handle, PW).await;
        // As real clients do: the list first (reverse-list notices need it), then online.
        c.send("SYN 3 0 0").await;
        c.send("CHG 5 NLN 0").await;
        ns_expect(&mut c, "CHG echo", |l| l == "CHG 5 NLN 0").await;
        c.trid = 5;
        c
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A raw IRC client.
struct Irc {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    nick: String,
}

impl Irc {
    async fn connect(addr: SocketAddr, nick: &str) -> Irc {
        let s = TcpStream::connect(addr).await.expect("connect to IRC");
        let (r, w) = s.into_split();
        let mut irc = Irc {
            r: BufReader::new(r),
            w,
            nick: nick.into(),
        };
        irc.send(&format!("NICK {nick}")).await;
        irc.send(&format!(
            "USER {} 0 * :test user",
            nick.replace(['|', '[', ']'], "")
        ))
        .await;
        irc.expect("welcome", |l| l.split(' ').nth(1) == Some("001"))
            .await;
        irc
    }

    async fn send(&mut self, line: &str) {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("IRC write");
    }

    /// The next line (PINGs answered), `None` on timeout.
    async fn line(&mut self, within: Duration) -> Option<String> {
        loop {
            let mut buf = String::new();
            match tokio::time::timeout(within, self.r.read_line(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) => panic!("IRC server closed the test client's connection"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("IRC read: {e}"),
            }
            let line = buf.trim_end().to_string();
            if let Some(token) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {token}")).await;
                continue;
            }
            return Some(line);
        }
    }

    /// Reads until a line satisfies `pred`; panics after [`TIMEOUT`] with what was seen.
    async fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.line(left).await {
                Some(l) if pred(&l) => return l,
                Some(l) => seen.push(l),
                None => panic!("{}: no line with {what}; got {seen:#?}", self.nick),
            }
        }
    }

    /// The text of the next PRIVMSG from `from` to `to`.
    async fn privmsg(&mut self, from: &str, to: &str) -> String {
        let head = format!(":{from}!");
        let cmd = format!(" PRIVMSG {to} :");
        let line = self
            .expect(&format!("PRIVMSG from {from} to {to}"), |l| {
                l.starts_with(&head) && l.contains(&cmd)
            })
            .await;
        let text = line.split_once(&cmd).unwrap().1.to_string();
        assert!(line.len() + 2 <= 512, "line over 512 bytes: {}", line.len());
        text
    }

    /// After our JOIN: waits until `nick` is in `chan` too (in the names
    /// list, or joining after us).
    async fn wait_in_channel(&mut self, chan: &str, nick: &str) {
        let join = format!(":{nick}!");
        self.expect(&format!("{nick} in {chan}"), |l| {
            (l.contains(" 353 ")
                && l.contains(chan)
                && l.split([' ', ':', '@', '+']).any(|w| w == nick))
                || (l.starts_with(&join) && l.contains(" JOIN ") && l.contains(chan))
        })
        .await;
    }

    /// Polls ISON until `nick` is on the server.
    async fn wait_for(&mut self, nick: &str) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            self.send(&format!("ISON {nick}")).await;
            let l = self
                .expect("ISON reply", |l| l.split(' ').nth(1) == Some("303"))
                .await;
            if l.rsplit(':')
                .next()
                .unwrap_or("")
                .split(' ')
                .any(|n| n.eq_ignore_ascii_case(nick))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{nick} did not appear on IRC within {TIMEOUT:?}");
    }
}

/// The text of a switchboard MSG.
fn msg_text(cmd: &msnp::codec::Command) -> String {
    let payload = cmd.payload.as_ref().expect("MSG has a payload");
    let m = msnp::mime::MimeMessage::parse(payload).expect("MIME payload");
    msnp::mime::text_body(&m).expect("text/plain")
}

/// Waits for an NS line satisfying `pred`.
async fn ns_expect(
    c: &mut Client,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> msnp::codec::Command {
    let mut seen = Vec::new();
    loop {
        match c.recv_within(TIMEOUT).await {
            Some(Some(cmd)) if pred(&render(&cmd)) => return cmd,
            Some(Some(cmd)) => seen.push(render(&cmd)),
            Some(None) => panic!("NS closed while waiting for {what}; got {seen:#?}"),
            None => panic!("no {what}; got {seen:#?}"),
        }
    }
}

/// Answers the next `RNG` from `from`: the switchboard client after `ANS OK`.
async fn answer_ring(ns: &mut Client, me: &str, from: &str) -> Client {
    let rng = ns_expect(ns, &format!("RNG from {from}"), |l| {
        l.starts_with("RNG ") && l.contains(&format!(" {from} "))
    })
    .await;
    let (session, addr, cookie) = (
        rng.args[0].clone(),
        rng.args[1].clone(),
        rng.args[3].clone(),
    );
    let mut sb = Client::connect(addr.parse().unwrap()).await;
    sb.send(&format!("ANS 1 {me} {cookie} {session}")).await;
    let iro = sb.recv().await;
    assert_eq!(iro.name, "IRO", "{}", render(&iro));
    assert_eq!(iro.args[3], from);
    sb.expect("ANS 1 OK").await;
    sb
}

/// Next switchboard MSG (skipping typing and other non-text payloads).
async fn sb_text(sb: &mut Client, from: &str) -> String {
    loop {
        let cmd = sb.recv().await;
        if cmd.name == "MSG"
            && cmd
                .payload
                .as_ref()
                .is_some_and(|p| msnp::mime::classify(p) == msnp::mime::PayloadKind::Text)
        {
            assert_eq!(cmd.args[0], from, "sender");
            return msg_text(&cmd);
        }
    }
}

async fn sb_send(sb: &mut Client, trid: u32, text: &str) {
    sb.send_payload(
        &format!("MSG {trid} A"),
        &msnp::mime::text_message(text, None),
    )
    .await;
    sb.expect(&format!("ACK {trid}")).await;
}

/// Opens a switchboard from `me` and invites `contact` (`CAL`).
async fn call(ns: &mut Client, me: &str, contact: &str) -> Client {
    let t = ns.next();
    ns.send(&format!("XFR {t} SB")).await;
    let xfr = ns_expect(ns, "XFR", |l| l.starts_with(&format!("XFR {t} SB"))).await;
    let mut sb = Client::connect(xfr.args[2].parse().unwrap()).await;
    sb.send(&format!("USR 1 {me} {}", xfr.args[4])).await;
    assert_eq!(sb.recv().await.args[1], "OK");
    sb.send(&format!("CAL 2 {contact}")).await;
    let cal = sb.recv().await;
    assert_eq!(&cal.args[..2], ["2", "RINGING"], "{}", render(&cal));
    let joi = sb.recv().await;
    assert_eq!((joi.name.as_str(), joi.args[0].as_str()), ("JOI", contact));
    sb
}

async fn add_contact(ns: &mut Client, handle: &str) {
    let t = ns.next();
    ns.send(&format!("ADC {t} FL N={handle} F={handle}")).await;
    ns_expect(ns, "ADC reply", |l| {
        l.starts_with(&format!("ADC {t} FL N={handle}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_both_ways() {
    let Some(addr) = irc_addr() else { return };
    let fx = Fixture::start(network(addr, |_| {})).await;
    let mut bob = Irc::connect(addr, "d_bob").await;
    let mut alice = fx.msn("d-alice@example.com").await;
    bob.wait_for("d-alice|msn").await;
    add_contact(&mut alice, "d_bob@test.irc").await;
    ns_expect(&mut alice, "bob online", |l| {
        l.contains("NLN d_bob@test.irc d_bob ")
    })
    .await;

    // IRC → MSN opens a chat; colour and bold codes are stripped.
    bob.send("PRIVMSG d-alice|msn :hello \x02from\x02 \x0304,01irc\x03")
        .await;
    let mut sb = answer_ring(&mut alice, "d-alice@example.com", "d_bob@test.irc").await;
    assert_eq!(sb_text(&mut sb, "d_bob@test.irc").await, "hello from irc");
    // MSN → IRC in the same chat, plain and as an emote both ways.
    sb_send(&mut sb, 2, "hi bob").await;
    assert_eq!(bob.privmsg("d-alice|msn", "d_bob").await, "hi bob");
    sb_send(&mut sb, 3, "/me waves").await;
    assert_eq!(
        bob.privmsg("d-alice|msn", "d_bob").await,
        "\x01ACTION waves\x01"
    );
    bob.send("PRIVMSG d-alice|msn :\x01ACTION dances\x01").await;
    assert_eq!(sb_text(&mut sb, "d_bob@test.irc").await, "* d_bob dances");
    // Bold in the MSN font becomes IRC bold.
    let bold = msnp::mime::ImFormat {
        bold: true,
        ..Default::default()
    };
    sb.send_payload("MSG 4 A", &msnp::mime::text_message("strong", Some(&bold)))
        .await;
    sb.expect("ACK 4").await;
    assert_eq!(bob.privmsg("d-alice|msn", "d_bob").await, "\x02strong");
    // CTCP VERSION is answered.
    bob.send("PRIVMSG d-alice|msn :\x01VERSION\x01").await;
    let v = bob
        .expect("VERSION reply", |l| {
            l.contains("NOTICE d_bob :\x01VERSION msngate")
        })
        .await;
    assert!(v.starts_with(":d-alice|msn!"));
    // A file transfer cannot go to IRC: the MSN user gets NAK, the
    // invitation's decline (so the client stops waiting) and a note why.
    let invite = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\nApplication-Name: File Transfer\r\nInvitation-Command: INVITE\r\nInvitation-Cookie: 777\r\n\r\n";
    sb.send_payload("MSG 5 A", invite).await;
    let mut nak = false;
    let mut declined = false;
    let mut told = false;
    while !(nak && declined && told) {
        let cmd = sb.recv().await;
        match cmd.name.as_str() {
            "NAK" => nak = cmd.args == ["5"],
            "MSG" => {
                let body = cmd.payload.clone().unwrap_or_default();
                let m = msnp::mime::MimeMessage::parse(&body).expect("MIME payload");
                if m.body_field("Invitation-Command") == Some("CANCEL") {
                    assert_eq!(m.body_field("Invitation-Cookie"), Some("777"));
                    assert_eq!(m.body_field("Cancel-Code"), Some("REJECT_NOT_INSTALLED"));
                    declined = true;
                } else {
                    assert!(
                        msg_text(&cmd).starts_with("[msngate] Cannot send file transfers"),
                        "{}",
                        msg_text(&cmd)
                    );
                    told = true;
                }
            }
            _ => panic!("unexpected {}", render(&cmd)),
        }
    }

    // The MSN user starts a chat (CAL) in a new switchboard.
    sb.send("OUT").await;
    let mut sb2 = call(&mut alice, "d-alice@example.com", "d_bob@test.irc").await;
    sb_send(&mut sb2, 3, "second window").await;
    assert_eq!(bob.privmsg("d-alice|msn", "d_bob").await, "second window");
    bob.send("PRIVMSG d-alice|msn :got it").await;
    assert_eq!(sb_text(&mut sb2, "d_bob@test.irc").await, "got it");
    assert!(fx.bridge.flush(TIMEOUT).await, "queue drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_away_and_nick_change() {
    let Some(addr) = irc_addr() else { return };
    let fx = Fixture::start(network(addr, |_| {})).await;
    let mut alice = fx.msn("p-alice@example.com").await;
    add_contact(&mut alice, "p_bob@test.irc").await;
    add_contact(&mut alice, "pchan.c@test.irc").await;

    // Bob comes online: ISON polling sees him.
    let mut bob = Irc::connect(addr, "p_bob").await;
    ns_expect(&mut alice, "NLN for bob", |l| {
        l == format!("NLN NLN p_bob@test.irc p_bob {CAPS}")
    })
    .await;
    // Away and back (USERHOST away flags).
    bob.send("AWAY :lunch").await;
    ns_expect(&mut alice, "AWY for bob", |l| {
        l == format!("NLN AWY p_bob@test.irc p_bob {CAPS}")
    })
    .await;
    bob.send("AWAY").await;
    ns_expect(&mut alice, "back online", |l| {
        l == format!("NLN NLN p_bob@test.irc p_bob {CAPS}")
    })
    .await;

    // A nick change seen in a shared channel: the contact follows the person.
    bob.wait_for("p-alice|msn").await;
    bob.send("JOIN #pchan").await;
    bob.wait_in_channel("#pchan", "p-alice|msn").await;
    bob.send("NICK p_bob2").await;
    ns_expect(&mut alice, "rename", |l| {
        l == format!("NLN NLN p_bob@test.irc p_bob2 {CAPS}")
    })
    .await;
    bob.nick = "p_bob2".into();
    bob.send("PRIVMSG p-alice|msn :new name, same me").await;
    let mut sb = answer_ring(&mut alice, "p-alice@example.com", "p_bob@test.irc").await;
    assert_eq!(
        sb_text(&mut sb, "p_bob@test.irc").await,
        "new name, same me"
    );
    sb_send(&mut sb, 2, "noted").await;
    assert_eq!(bob.privmsg("p-alice|msn", "p_bob2").await, "noted");

    // Leaving IRC: offline.
    bob.send("QUIT :bye").await;
    ns_expect(&mut alice, "FLN for bob", |l| l == "FLN p_bob@test.irc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_both_ways() {
    let Some(addr) = irc_addr() else { return };
    let fx = Fixture::start(network(addr, |n| n.channels = vec!["#c-offered".into()])).await;
    let mut alice = fx.msn("c-alice@example.com").await;
    // A configured channel is offered: it puts itself on the reverse list.
    ns_expect(&mut alice, "offer", |l| {
        l.starts_with("ADC 0 RL N=c-offered.c@test.irc")
    })
    .await;
    add_contact(&mut alice, "c-room.c@test.irc").await;
    ns_expect(&mut alice, "channel online", |l| {
        l.contains(" NLN c-room.c@test.irc %23c-room ")
    })
    .await;

    let mut carol = Irc::connect(addr, "c_carol").await;
    carol.send("JOIN #c-room").await;
    carol.wait_in_channel("#c-room", "c-alice|msn").await;
    carol.send("PRIVMSG #c-room :hello channel").await;
    let mut sb = answer_ring(&mut alice, "c-alice@example.com", "c-room.c@test.irc").await;
    assert_eq!(
        sb_text(&mut sb, "c-room.c@test.irc").await,
        "c_carol: hello channel"
    );
    carol.send("PRIVMSG #c-room :\x01ACTION waves\x01").await;
    assert_eq!(
        sb_text(&mut sb, "c-room.c@test.irc").await,
        "* c_carol waves"
    );
    sb_send(&mut sb, 2, "hello from MSN").await;
    assert_eq!(
        carol.privmsg("c-alice|msn", "#c-room").await,
        "hello from MSN"
    );

    // The MSN user can also start the channel chat.
    sb.send("OUT").await;
    let mut sb2 = call(&mut alice, "c-alice@example.com", "c-room.c@test.irc").await;
    sb_send(&mut sb2, 3, "again").await;
    assert_eq!(carol.privmsg("c-alice|msn", "#c-room").await, "again");
    carol.send("PRIVMSG #c-room :seen").await;
    assert_eq!(
        sb_text(&mut sb2, "c-room.c@test.irc").await,
        "c_carol: seen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_message_arrives_whole() {
    let Some(addr) = irc_addr() else { return };
    let fx = Fixture::start(network(addr, |_| {})).await;
    let mut bob = Irc::connect(addr, "l_bob").await;
    let mut alice = fx.msn("l-alice@example.com").await;
    bob.wait_for("l-alice|msn").await;
    let mut sb = call(&mut alice, "l-alice@example.com", "l_bob@test.irc").await;
    // 2,000 characters of words, some of them multi-byte.
    let mut text = String::new();
    let mut i = 0;
    while text.chars().count() < 2000 {
        text.push_str(&format!("wörd{i} "));
        i += 1;
    }
    let text: String = text
        .chars()
        .take(2000)
        .collect::<String>()
        .trim_end()
        .to_string();
    assert!(text.chars().count() >= 1999);
    sb_send(&mut sb, 2, &text).await;
    let mut got = Vec::new();
    while got.join(" ").len() < text.len() {
        got.push(bob.privmsg("l-alice|msn", "l_bob").await);
    }
    assert!(got.len() >= 4, "split into {} lines", got.len());
    assert_eq!(got.join(" "), text);
}

/// A private ngircd that the test may kill and start again.
struct PrivateIrcd {
    _dir: tempfile::TempDir,
    conf: std::path::PathBuf,
    port: u16,
    /// The TLS port and the CA file a client must trust, when started with TLS.
    tls: Option<(u16, std::path::PathBuf)>,
    child: Option<std::process::Child>,
}

impl PrivateIrcd {
    fn start() -> Option<PrivateIrcd> {
        PrivateIrcd::start_with(false)
    }

    /// With `tls`, the server also listens with a self-signed certificate
    /// for 127.0.0.1.
    fn start_with(tls: bool) -> Option<PrivateIrcd> {
        let (Ok(bin), Ok(template)) = (
            std::env::var("MSNGATE_TEST_NGIRCD_BIN"),
            std::env::var("MSNGATE_TEST_NGIRCD_CONF"),
        ) else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must provide MSNGATE_TEST_NGIRCD_BIN and MSNGATE_TEST_NGIRCD_CONF"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = free_port().port();
        let conf = dir.path().join("ngircd.conf");
        let text: String = std::fs::read_to_string(&template)
            .expect("read the ngircd config")
            .lines()
            .map(|l| match l.trim_start() {
                t if t.starts_with("Ports") => format!("\tPorts = {port}"),
                t if t.starts_with("PidFile") => {
                    format!("\tPidFile = {}/ngircd.pid", dir.path().display())
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let mut text = text;
        let mut tls_setup = None;
        if tls {
            let certified =
                rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            std::fs::write(&cert, certified.cert.pem()).unwrap();
            std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
            for f in [&cert, &key] {
                std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
            let tls_port = free_port().port();
            text.push_str(&format!(
                "\n[SSL]\n\tCertFile = {}\n\tKeyFile = {}\n\tPorts = {tls_port}\n",
                cert.display(),
                key.display()
            ));
            tls_setup = Some((tls_port, cert));
        }
        std::fs::write(&conf, text).unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut me = PrivateIrcd {
            _dir: dir,
            conf,
            port,
            tls: tls_setup,
            child: None,
        };
        me.spawn(&bin);
        Some(me)
    }

    fn spawn(&mut self, bin: &str) {
        // SAFETY: getuid has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        let mut cmd = if root {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", bin]);
            c
        } else {
            std::process::Command::new(bin)
        };
        cmd.args(["-n", "-f"])
            .arg(&self.conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        self.child = Some(cmd.spawn().expect("start ngircd"));
        let deadline = std::time::Instant::now() + TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "private ngircd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for PrivateIrcd {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_loses_nothing() {
    if irc_addr().is_none() {
        return;
    }
    let Some(mut ircd) = PrivateIrcd::start() else {
        return;
    };
    let bin = std::env::var("MSNGATE_TEST_NGIRCD_BIN").unwrap();
    let addr = ircd.addr();
    let fx = Fixture::start(network(addr, |_| {})).await;
    let mut bob = Irc::connect(addr, "r_bob").await;
    let mut alice = fx.msn("r-alice@example.com").await;
    bob.wait_for("r-alice|msn").await;
    let mut sb = call(&mut alice, "r-alice@example.com", "r_bob@test.irc").await;
    sb_send(&mut sb, 2, "before").await;
    assert_eq!(bob.privmsg("r-alice|msn", "r_bob").await, "before");

    // The IRC server dies mid-conversation; the MSN user keeps writing.
    ircd.kill();
    drop(bob);
    for (i, t) in ["during one", "during two", "during three"]
        .iter()
        .enumerate()
    {
        sb_send(&mut sb, 3 + i as u32, t).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    ircd.spawn(&bin);
    let mut bob = Irc::connect(addr, "r_bob").await;
    for t in ["during one", "during two", "during three"] {
        assert_eq!(bob.privmsg("r-alice|msn", "r_bob").await, t);
    }
    // And the other way, in the same MSN window. Had the bridge reconnected
    // before bob, it held the messages for him and said so in the chat.
    bob.send("PRIVMSG r-alice|msn :back again").await;
    loop {
        let text = sb_text(&mut sb, "r_bob@test.irc").await;
        if text == "back again" {
            break;
        }
        assert!(
            text.starts_with("[msngate] ") && text.contains(" is not on IRC right now;"),
            "unexpected message before \"back again\": {text:?}"
        );
    }
    assert!(fx.bridge.flush(TIMEOUT).await);
    assert!(
        fx.server
            .running
            .metrics
            .bridge_reconnects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_wait_for_a_signed_out_user() {
    let Some(addr) = irc_addr() else { return };
    let fx = Fixture::start(network(addr, |n| n.stay_connected = true)).await;
    let mut bob = Irc::connect(addr, "o_bob").await;
    let mut alice = fx.msn("o-alice@example.com").await;
    bob.wait_for("o-alice|msn").await;
    alice.send("OUT").await;
    alice.expect_closed().await;
    let hub = fx.server.hub();
    eventually("alice's session to end", || hub.online_count() == 0).await;
    // The connection stays (stay_connected) and is marked away.
    bob.send("PRIVMSG o-alice|msn :are you there?").await;
    let notice = bob
        .expect("offline notice", |l| l.contains("NOTICE o_bob :"))
        .await;
    assert!(notice.contains("not on MSN right now"), "{notice}");
    let mut alice = sign_in(&fx.server, 11, "o-alice@example.com", PW).await;
    alice.send("CHG 5 NLN 0").await;
    let mut sb = answer_ring(&mut alice, "o-alice@example.com", "o_bob@test.irc").await;
    assert_eq!(sb_text(&mut sb, "o_bob@test.irc").await, "are you there?");
}

/// A scripted IRC server for one connection: SASL PLAIN and a nick collision.
async fn scripted_sasl_server(
    listener: tokio::net::TcpListener,
    fail_first: bool,
) -> (Vec<String>, Vec<String>) {
    let (s, _) = listener.accept().await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut seen = Vec::new();
    let mut payload = Vec::new();
    let mut lines = Vec::new();
    macro_rules! read {
        () => {{
            let mut l = String::new();
            tokio::time::timeout(TIMEOUT, r.read_line(&mut l))
                .await
                .expect("bridge line in time")
                .unwrap();
            let l = l.trim_end().to_string();
            lines.push(l.clone());
            l
        }};
    }
    assert_eq!(read!(), "CAP LS 302");
    let nick = read!();
    assert!(nick.starts_with("NICK "), "{nick}");
    assert!(read!().starts_with("USER "));
    w.write_all(b":irc.script 433 * s-alice|msn :Nickname is already in use\r\n")
        .await
        .unwrap();
    assert_eq!(read!(), "NICK s-alice|msn1");
    w.write_all(
        b":irc.script CAP * LS * :multi-prefix\r\n:irc.script CAP * LS :sasl away-notify\r\n",
    )
    .await
    .unwrap();
    assert_eq!(read!(), "CAP REQ :sasl away-notify");
    w.write_all(b":irc.script CAP * ACK :sasl away-notify\r\n")
        .await
        .unwrap();
    assert_eq!(read!(), "AUTHENTICATE PLAIN");
    w.write_all(b"AUTHENTICATE +\r\n").await.unwrap();
    loop {
        let l = read!();
        let chunk = l
            .strip_prefix("AUTHENTICATE ")
            .expect("AUTHENTICATE chunk")
            .to_string();
        assert!(chunk.len() <= 400);
        if chunk != "+" {
            payload.push(chunk.clone());
        }
        if chunk.len() < 400 {
            break;
        }
    }
    if fail_first {
        w.write_all(b":irc.script 904 s-alice|msn1 :SASL authentication failed\r\n")
            .await
            .unwrap();
    } else {
        w.write_all(b":irc.script 900 s-alice|msn1 s-alice|msn1!u@h acct :You are now logged in\r\n:irc.script 903 s-alice|msn1 :SASL authentication successful\r\n").await.unwrap();
    }
    assert_eq!(read!(), "CAP END");
    w.write_all(b":irc.script 001 s-alice|msn1 :Welcome s-alice|msn1!u@h\r\n")
        .await
        .unwrap();
    // The connection is usable: a queued message comes through and is confirmed.
    loop {
        let l = read!();
        if let Some(token) = l.strip_prefix("PING ") {
            w.write_all(format!(":irc.script PONG irc.script {token}\r\n").as_bytes())
                .await
                .unwrap();
        }
        if l.starts_with("PRIVMSG ") {
            seen.push(l);
            break;
        }
    }
    loop {
        let l = read!();
        if let Some(token) = l.strip_prefix("PING ") {
            w.write_all(format!(":irc.script PONG irc.script {token}\r\n").as_bytes())
                .await
                .unwrap();
            if token.contains("msngate-ack") {
                break;
            }
        }
    }
    (payload, seen)
}

async fn sasl_case(fail: bool) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let script = tokio::spawn(scripted_sasl_server(listener, fail));
    let fx = Fixture::start(network(addr, |_| {})).await;
    let password = "p".repeat(350); // over 400 bytes of base64: two pieces
    msngate::bridge::irc::db::set_credentials(
        fx.server.running.hub.store().pool(),
        "s-alice@example.com",
        "test",
        &msngate::bridge::irc::db::Credentials::Sasl {
            account: "acct".into(),
            password: password.clone(),
        },
    )
    .await
    .unwrap();
    let mut alice = fx.msn("s-alice@example.com").await;
    let mut sb = call(&mut alice, "s-alice@example.com", "someone@test.irc").await;
    sb_send(&mut sb, 2, "authenticated hello").await;
    let (payload, seen) = tokio::time::timeout(Duration::from_secs(20), script)
        .await
        .expect("script finished")
        .expect("script passed");
    use base64::Engine as _;
    assert_eq!(payload.len(), 2, "split at 400 bytes");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(payload.concat())
        .unwrap();
    assert_eq!(decoded, format!("acct\0acct\0{password}").as_bytes());
    assert_eq!(seen, ["PRIVMSG someone :authenticated hello"]);
    assert!(fx.bridge.flush(TIMEOUT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_with_nick_collision() {
    sasl_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_failure_still_connects() {
    sasl_case(true).await;
}

/// One connection to a scripted IRC server: lines from the bridge, and a
/// way to answer.
struct Scripted {
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    w: OwnedWriteHalf,
}

impl Scripted {
    async fn accept(listener: &tokio::net::TcpListener) -> Scripted {
        let (s, _) = tokio::time::timeout(TIMEOUT, listener.accept())
            .await
            .expect("bridge connects")
            .unwrap();
        let (r, w) = s.into_split();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(r);
            loop {
                let mut l = String::new();
                match r.read_line(&mut l).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if tx.send(l.trim_end().to_string()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Scripted { lines, w }
    }

    async fn send(&mut self, line: &str) {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads until a line satisfies `pred`, answering PINGs on the way.
    async fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut seen = Vec::new();
        loop {
            let l = match tokio::time::timeout(TIMEOUT, self.lines.recv()).await {
                Ok(Some(l)) => l,
                _ => panic!("scripted server: no {what}; got {seen:#?}"),
            };
            if pred(&l) {
                return l;
            }
            if let Some(token) = l.strip_prefix("PING ") {
                self.send(&format!(":irc.script PONG irc.script {token}"))
                    .await;
            }
            seen.push(l);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_presence_against_scripted_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fx = Fixture::start(network(addr, |_| {})).await;
    let mut alice = fx.msn("m-alice@example.com").await;
    let mut irc = Scripted::accept(&listener).await;
    irc.expect("USER", |l| l.starts_with("USER ")).await;
    irc.send(":irc.script CAP * LS :multi-prefix").await;
    irc.expect("CAP END (nothing to request)", |l| l == "CAP END")
        .await;
    irc.send(":irc.script 001 m-alice|msn :Welcome").await;
    irc.send(":irc.script 005 m-alice|msn MONITOR=100 NICKLEN=30 :are supported by this server")
        .await;
    add_contact(&mut alice, "m_bob@test.irc").await;
    irc.expect("MONITOR +", |l| l == "MONITOR + m_bob").await;
    irc.send(":irc.script 730 m-alice|msn :m_bob!b@host").await;
    ns_expect(&mut alice, "online", |l| {
        l == format!("NLN NLN m_bob@test.irc m_bob {CAPS}")
    })
    .await;
    irc.send(":irc.script 302 m-alice|msn :m_bob=-b@host").await;
    ns_expect(&mut alice, "away", |l| {
        l == format!("NLN AWY m_bob@test.irc m_bob {CAPS}")
    })
    .await;
    irc.send(":irc.script 731 m-alice|msn :m_bob").await;
    ns_expect(&mut alice, "offline", |l| l == "FLN m_bob@test.irc").await;
    // Never ISON on a MONITOR server.
    irc.send("PING :done").await;
    let l = irc
        .expect("PONG", |l| l.starts_with("PONG") || l.starts_with("ISON"))
        .await;
    assert!(l.starts_with("PONG"), "{l}");
}

/// Lines for a nick that left IRC wait for it: delivered when it is back,
/// reported to the MSN sender when it stays away longer than the hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_for_an_absent_nick_wait_then_are_reported() {
    let Some(addr) = irc_addr() else { return };
    let tuning = Tuning {
        hold_absent: Duration::from_secs(2),
        ..fast()
    };
    let fx = Fixture::start_tuned(network(addr, |_| {}), tuning).await;
    let mut bob = Irc::connect(addr, "h_bob").await;
    let mut alice = fx.msn("h-alice@example.com").await;
    bob.wait_for("h-alice|msn").await;
    add_contact(&mut alice, "h_bob@test.irc").await;
    ns_expect(&mut alice, "bob online", |l| {
        l.contains("NLN h_bob@test.irc h_bob ")
    })
    .await;
    let mut sb = call(&mut alice, "h-alice@example.com", "h_bob@test.irc").await;
    sb_send(&mut sb, 2, "hello").await;
    assert_eq!(bob.privmsg("h-alice|msn", "h_bob").await, "hello");

    // bob leaves; what alice writes now waits for him.
    bob.send("QUIT :brb").await;
    drop(bob);
    ns_expect(&mut alice, "FLN for bob", |l| l == "FLN h_bob@test.irc").await;
    sb_send(&mut sb, 3, "still there?").await;
    let note = sb_text(&mut sb, "h_bob@test.irc").await;
    assert!(note.contains("not on IRC right now"), "{note}");
    let mut bob = Irc::connect(addr, "h_bob").await;
    assert_eq!(bob.privmsg("h-alice|msn", "h_bob").await, "still there?");

    // Away for longer than the hold: alice learns it was not delivered.
    bob.send("QUIT :gone").await;
    drop(bob);
    ns_expect(&mut alice, "FLN for bob", |l| l == "FLN h_bob@test.irc").await;
    sb_send(&mut sb, 4, "hello?").await;
    let note = sb_text(&mut sb, "h_bob@test.irc").await;
    assert!(note.contains("not on IRC right now"), "{note}");
    let note = sb_text(&mut sb, "h_bob@test.irc").await;
    assert!(
        note.contains("Not delivered to h_bob: they did not come back to IRC within 2 seconds")
            && note.ends_with("Undelivered text: hello?"),
        "{note}"
    );
    // And it is not sent later: bob comes back to nothing.
    let mut bob = Irc::connect(addr, "h_bob").await;
    bob.wait_for("h-alice|msn").await;
    sb_send(&mut sb, 5, "welcome back").await;
    assert_eq!(bob.privmsg("h-alice|msn", "h_bob").await, "welcome back");
}

/// A TLS network whose server has its own certificate, trusted through
/// `tls_ca_file`: the puppet connects and a message goes through; without
/// the file the certificate is refused and nothing connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_certificate() {
    let Some(ircd) = PrivateIrcd::start_with(true) else {
        return;
    };
    let (tls_port, ca) = ircd.tls.clone().expect("started with TLS");
    // The plain port is for the IRC user in the test.
    let plain = ircd.addr();
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], tls_port));
    let fx = Fixture::start(network(tls_addr, |n| {
        n.tls = true;
        n.tls_ca_file = Some(ca.clone());
    }))
    .await;
    let mut bob = Irc::connect(plain, "t_bob").await;
    let mut alice = fx.msn("t-alice@example.com").await;
    bob.wait_for("t-alice|msn").await;
    let mut sb = call(&mut alice, "t-alice@example.com", "t_bob@test.irc").await;
    sb_send(&mut sb, 2, "over TLS").await;
    assert_eq!(bob.privmsg("t-alice|msn", "t_bob").await, "over TLS");
    drop(fx);

    // The public roots alone do not trust it.
    let fx = Fixture::start(network(tls_addr, |n| n.tls = true)).await;
    let _carol = fx.msn("t-carol@example.com").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    bob.send("ISON t-carol|msn").await;
    let ison = bob.expect("ISON reply", |l| l.contains(" 303 ")).await;
    assert!(!ison.contains("t-carol|msn"), "{ison}");
}

/// The next `UBX` for `handle` whose personal message is `psm`.
async fn expect_psm(ns: &mut Client, handle: &str, psm: &str) {
    let want = format!("<Data><PSM>{psm}</PSM><CurrentMedia></CurrentMedia></Data>");
    let mut seen = Vec::new();
    loop {
        match ns.recv_within(TIMEOUT).await {
            Some(Some(cmd))
                if cmd.name == "UBX" && cmd.args.first().map(String::as_str) == Some(handle) =>
            {
                let got = String::from_utf8_lossy(cmd.payload.as_deref().unwrap_or_default())
                    .into_owned();
                if got == want {
                    return;
                }
                seen.push(got);
            }
            Some(Some(cmd)) => seen.push(render(&cmd)),
            Some(None) => panic!("NS closed while waiting for {want}; got {seen:#?}"),
            None => panic!("no {want}; got {seen:#?}"),
        }
    }
}

/// A channel contact's personal message is the channel's topic, kept up
/// to date (IRC formatting stripped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_topic_is_the_contacts_personal_message() {
    let Some(addr) = irc_addr() else { return };
    let fx = Fixture::start(network(addr, |_| {})).await;
    let mut carol = Irc::connect(addr, "p_carol").await;
    carol.send("JOIN #p-room").await;
    carol.send("TOPIC #p-room :first topic").await;
    carol
        .expect("the topic set", |l| {
            l.contains(" TOPIC #p-room :first topic")
        })
        .await;
    let mut alice = fx.msn("p-alice@example.com").await;
    add_contact(&mut alice, "p-room.c@test.irc").await;
    // Joining the channel brings its topic.
    expect_psm(&mut alice, "p-room.c@test.irc", "first topic").await;
    carol.wait_in_channel("#p-room", "p-alice|msn").await;
    carol.send("TOPIC #p-room :\x02second\x02 topic").await;
    expect_psm(&mut alice, "p-room.c@test.irc", "second topic").await;
}
