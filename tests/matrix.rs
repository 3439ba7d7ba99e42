//! The Matrix bridge against a real Synapse (scripts/services/synapse.sh):
//! MSN clients over TCP on one side, a real Matrix user driven over
//! Synapse's client-server API on the other.
//!
//! Needs `MSNGATE_TEST_SYNAPSE_URL` and friends (`MSNGATE_TEST_SYNAPSE=1
//! scripts/test.sh`). Without them the tests skip, except under CI, where
//! that is a failure. The registration Synapse loaded sends transactions to
//! 127.0.0.1:29320, so the tests take turns on that port.

mod common;

use common::*;
use msngate::bridge::matrix::{self, ids};
use msngate::config::MatrixConfig;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const PW: &str = "s3cret!";
/// Synapse delivers within ~0.1 s, but a loaded CI machine can take far
/// longer; the queue backs off for up to 30 s after a homeserver restart
/// (the waits for that use twice this).
const MATRIX_WAIT: Duration = Duration::from_secs(30);

/// One test at a time owns the appservice port.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct SynapseEnv {
    url: String,
    dir: String,
    secret: String,
    server_name: String,
    python: String,
    registration: String,
}

fn synapse_env() -> Option<SynapseEnv> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("MSNGATE_TEST_SYNAPSE_URL"),
        get("MSNGATE_TEST_SYNAPSE_DIR"),
        get("MSNGATE_TEST_SYNAPSE_SHARED_SECRET"),
        get("MSNGATE_TEST_AS_REGISTRATION"),
        get("MSNGATE_TEST_SYNAPSE_PYTHON"),
    ) {
        (Some(url), Some(dir), Some(secret), Some(registration), Some(python)) => {
            Some(SynapseEnv {
                url,
                dir,
                secret,
                server_name: get("MSNGATE_TEST_SYNAPSE_SERVER_NAME")
                    .unwrap_or_else(|| "localhost".into()),
                python,
                registration,
            })
        }
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "CI must run the Matrix tests: MSNGATE_TEST_SYNAPSE_* is not set (run them with MSNGATE_TEST_SYNAPSE=1 scripts/test.sh)"
            )
        }
        _ => {
            eprintln!(
                "skipped: no Synapse (MSNGATE_TEST_SYNAPSE_URL unset); run with MSNGATE_TEST_SYNAPSE=1 scripts/test.sh"
            );
            None
        }
    }
}

fn suffix() -> String {
    msngate::core::tickets::random_hex()[..8].to_string()
}

fn bridge_config(env: &SynapseEnv) -> MatrixConfig {
    MatrixConfig {
        homeserver_url: env.url.clone(),
        server_name: env.server_name.clone(),
        registration: env.registration.clone().into(),
        listen: "127.0.0.1:29320".parse().expect("address"),
        appservice_url: None,
        ghost_localpart_template: "_msn_{handle}".into(),
        bot_localpart: "_msn_bot".into(),
        appservice_limits: Default::default(),
    }
}

/// msngate with its Matrix bridge.
struct World {
    server: TestServer,
    bridge: matrix::MatrixBridge,
    stop: watch::Sender<bool>,
    server_name: String,
}

impl World {
    /// Starts msngate after creating `users` (handle, nickname), so their
    /// ghosts are registered at bridge start.
    async fn start(env: &SynapseEnv, users: &[(&str, &str)]) -> World {
        World::start_on(env, None, users).await
    }

    /// Starts msngate on database `db` (a fresh one when `None`).
    async fn start_on(env: &SynapseEnv, db: Option<String>, users: &[(&str, &str)]) -> World {
        if let Ok(filter) = std::env::var("RUST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let server = match db {
            Some(url) => start_with(|c| c.database.url = url).await,
            None => start().await,
        };
        for (handle, nick) in users {
            server.add_user(handle, PW, nick).await;
        }
        let (stop, rx) = watch::channel(false);
        let bridge = matrix::start(
            &bridge_config(env),
            server.running.hub.clone(),
            server.running.metrics.clone(),
            rx,
        )
        .await
        .expect("bridge starts");
        let deadline = Instant::now() + MATRIX_WAIT;
        while !bridge.is_ready() {
            assert!(
                Instant::now() < deadline,
                "bridge not ready: {:?}",
                bridge.problem()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        World {
            server,
            bridge,
            stop,
            server_name: env.server_name.clone(),
        }
    }

    fn ghost(&self, handle: &str) -> String {
        format!("@_msn_{}:{}", handle.replace('@', "=40"), self.server_name)
    }

    async fn stop(self) {
        self.stop_keeping_data().await;
    }

    /// Stops msngate but keeps its scratch directory (a SQLite database
    /// lives there) until the returned directory is dropped.
    async fn stop_keeping_data(self) -> tempfile::TempDir {
        assert!(
            self.bridge.flush(TIMEOUT).await,
            "every Matrix request was sent"
        );
        let _ = self.stop.send(true);
        self.bridge.stopped().await;
        self.server.running.shutdown(Duration::from_secs(5)).await;
        self.server.dir
    }
}

// ---------------------------------------------------------------- Matrix side

/// A real Matrix user, over the client-server API.
struct MxUser {
    id: String,
    token: String,
    base: String,
    http: reqwest::Client,
    since: Option<String>,
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = http.request(method, url);
    if let Some(t) = token {
        r = r.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        r = r
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let response = r.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

impl MxUser {
    /// Registers through the shared-secret admin API.
    async fn register(env: &SynapseEnv, name: &str) -> MxUser {
        use hmac::{KeyInit, Mac};
        let http = http();
        let url = format!("{}/_synapse/admin/v1/register", env.url);
        let (_, nonce) = request(&http, reqwest::Method::GET, &url, None, None).await;
        let nonce = nonce["nonce"].as_str().expect("nonce").to_string();
        let password = "mxpass-1";
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(env.secret.as_bytes()).expect("key");
        mac.update(format!("{nonce}\0{name}\0{password}\0notadmin").as_bytes());
        let mac = hex::encode(mac.finalize().into_bytes());
        let (status, body) = request(&http, reqwest::Method::POST, &url, None, Some(json!({"nonce": nonce, "username": name, "password": password, "admin": false, "mac": mac}))).await;
        assert_eq!(status, 200, "register {name}: {body}");
        MxUser {
            id: body["user_id"].as_str().expect("user_id").into(),
            token: body["access_token"].as_str().expect("token").into(),
            base: env.url.clone(),
            http,
            since: None,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        request(
            &self.http,
            method,
            &format!("{}{path}", self.base),
            Some(&self.token),
            body,
        )
        .await
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    fn handle(&self) -> String {
        ids::contact_handle(&self.id).expect("contact handle")
    }

    async fn set_presence(&self, presence: &str, status_msg: &str) {
        self.ok(
            reqwest::Method::PUT,
            &format!("/_matrix/client/v3/presence/{}/status", enc(&self.id)),
            Some(json!({"presence": presence, "status_msg": status_msg})),
        )
        .await;
    }

    async fn set_name(&self, name: &str) {
        self.ok(
            reqwest::Method::PUT,
            &format!("/_matrix/client/v3/profile/{}/displayname", enc(&self.id)),
            Some(json!({"displayname": name})),
        )
        .await;
    }

    async fn presence_of(&self, user: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!("/_matrix/client/v3/presence/{}/status", enc(user)),
            None,
        )
        .await
        .1
    }

    async fn name_of(&self, user: &str) -> Option<String> {
        let (status, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/_matrix/client/v3/profile/{}/displayname", enc(user)),
                None,
            )
            .await;
        (status == 200)
            .then(|| v["displayname"].as_str().map(str::to_string))
            .flatten()
    }

    async fn join(&self, room: &str) {
        self.ok(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/join", enc(room)),
            Some(json!({})),
        )
        .await;
    }

    async fn invite(&self, room: &str, user: &str) {
        self.ok(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(room)),
            Some(json!({"user_id": user})),
        )
        .await;
    }

    async fn create_room(&self, invite: &str, direct: bool) -> String {
        let body = if direct {
            json!({"invite": [invite], "is_direct": true, "preset": "trusted_private_chat"})
        } else {
            json!({"invite": [invite], "name": "Party", "preset": "private_chat"})
        };
        self.ok(
            reqwest::Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(body),
        )
        .await["room_id"]
            .as_str()
            .expect("room")
            .to_string()
    }

    async fn send(&self, room: &str, content: Value) -> String {
        let txn = suffix();
        let v = self
            .ok(
                reqwest::Method::PUT,
                &format!(
                    "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
                    enc(room)
                ),
                Some(content),
            )
            .await;
        v["event_id"].as_str().expect("event id").to_string()
    }

    async fn typing(&self, room: &str, typing: bool) {
        self.ok(
            reqwest::Method::PUT,
            &format!(
                "/_matrix/client/v3/rooms/{}/typing/{}",
                enc(room),
                enc(&self.id)
            ),
            Some(json!({"typing": typing, "timeout": 20000})),
        )
        .await;
    }

    /// Messages in `room`, oldest first.
    async fn messages(&self, room: &str) -> Vec<Value> {
        let v = self
            .ok(
                reqwest::Method::GET,
                &format!(
                    "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
                    enc(room)
                ),
                None,
            )
            .await;
        let mut events: Vec<Value> = v["chunk"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["type"] == "m.room.message")
            .collect();
        events.reverse();
        events
    }

    /// Polls `room` until `pred` holds for its messages.
    async fn wait_messages(
        &self,
        room: &str,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + MATRIX_WAIT * 2;
        loop {
            let m = self.messages(room).await;
            if pred(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "Matrix never showed {what}; messages: {m:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn sync(&mut self) -> Value {
        let mut path = "/_matrix/client/v3/sync?timeout=1000".to_string();
        if let Some(s) = &self.since {
            path.push_str(&format!("&since={}", enc(s)));
        }
        let v = self.ok(reqwest::Method::GET, &path, None).await;
        self.since = v["next_batch"].as_str().map(str::to_string);
        v
    }

    /// Syncs until `find` returns something.
    async fn sync_until<T>(&mut self, what: &str, find: impl Fn(&Value) -> Option<T>) -> T {
        let deadline = Instant::now() + MATRIX_WAIT;
        loop {
            let v = self.sync().await;
            if let Some(t) = find(&v) {
                return t;
            }
            assert!(Instant::now() < deadline, "sync never showed {what}");
        }
    }

    /// Waits for an invitation from `inviter` and accepts it; returns the room.
    async fn accept_invite_from(&mut self, inviter: &str) -> String {
        let inviter = inviter.to_string();
        let room = self
            .sync_until("an invitation", |v| {
                v["rooms"]["invite"]
                    .as_object()?
                    .iter()
                    .find_map(|(room, r)| {
                        r["invite_state"]["events"]
                            .as_array()?
                            .iter()
                            .any(|e| {
                                e["type"] == "m.room.member" && e["sender"] == inviter.as_str()
                            })
                            .then(|| room.clone())
                    })
            })
            .await;
        self.join(&room).await;
        room
    }
}

async fn poll<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + MATRIX_WAIT;
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------- MSN side

/// Signs in, synchronises the lists and goes online.
async fn msn_online(world: &World, handle: &str, dialect: u8) -> Client {
    let mut c = sign_in(&world.server, dialect, handle, PW).await;
    let t = c.next();
    c.send(&format!(
        "SYN {t} {}",
        if dialect >= 10 { "0 0" } else { "0" }
    ))
    .await;
    // The server answers in order: everything before the QNG is the list.
    c.send("PNG").await;
    while c.recv().await.name != "QNG" {}
    let t = c.next();
    c.send(&format!("CHG {t} NLN 0")).await;
    c.expect(&format!("CHG {t} NLN 0")).await;
    c
}

/// Receives until a command named `name` whose first argument is `arg0`.
async fn recv_for(c: &mut Client, name: &str, arg0: &str) -> msnp::codec::Command {
    loop {
        let cmd = c.recv().await;
        if cmd.name == name && cmd.args.first().map(String::as_str) == Some(arg0) {
            return cmd;
        }
    }
}

/// Opens a switchboard session and calls `contact` into it.
async fn chat_with(c: &mut Client, me: &str, contact: &str) -> Client {
    let t = c.next();
    c.send(&format!("XFR {t} SB")).await;
    let xfr = c.recv_named("XFR").await;
    let mut sb = Client::connect(xfr.args[2].parse().expect("sb address")).await;
    sb.send(&format!("USR 1 {me} {}", xfr.args[4])).await;
    assert_eq!(sb.recv().await.args[1], "OK");
    sb.send(&format!("CAL 2 {contact}")).await;
    let cal = sb.recv().await;
    assert_eq!(
        (cal.name.as_str(), cal.args[1].as_str()),
        ("CAL", "RINGING"),
        "{}",
        render(&cal)
    );
    let joi = sb.recv_named("JOI").await;
    assert_eq!(joi.args[0], contact);
    sb
}

/// Answers an `RNG` and returns the switchboard connection after `ANS OK`
/// and the participants (`IRO`).
async fn answer(c: &mut Client, me: &str) -> (Client, Vec<String>) {
    let rng = c.recv_named("RNG").await;
    let mut sb = Client::connect(rng.args[1].parse().expect("sb address")).await;
    sb.send(&format!("ANS 1 {me} {} {}", rng.args[3], rng.args[0]))
        .await;
    let mut iro = Vec::new();
    loop {
        let cmd = sb.recv().await;
        match cmd.name.as_str() {
            "IRO" => iro.push(cmd.args[3].clone()),
            "ANS" => return (sb, iro),
            other => panic!("unexpected {other} before ANS OK"),
        }
    }
}

/// The next text message on a switchboard: (sender, text, format header).
async fn next_text(sb: &mut Client) -> (String, String, String) {
    loop {
        let cmd = sb.recv_named("MSG").await;
        let payload = cmd.payload.clone().expect("payload");
        let Some(m) = msnp::mime::MimeMessage::parse(&payload) else {
            continue;
        };
        if let Some(text) = msnp::mime::text_body(&m) {
            return (
                cmd.args[0].clone(),
                text,
                m.header("X-MMS-IM-Format").unwrap_or("").to_string(),
            );
        }
    }
}

async fn send_text(sb: &mut Client, trid: u32, text: &str, format: Option<&msnp::mime::ImFormat>) {
    sb.send_payload(
        &format!("MSG {trid} A"),
        &msnp::mime::text_message(text, format),
    )
    .await;
    let ack = sb.recv().await;
    assert_eq!(
        render(&ack),
        format!("ACK {trid}"),
        "message {text:?} accepted"
    );
}

/// An MSN user adds a Matrix user; the Matrix user accepts the direct chat.
async fn befriend(c: &mut Client, mx: &mut MxUser, ghost: &str) -> String {
    let handle = mx.handle();
    let t = c.next();
    c.send(&format!("ADC {t} FL N={handle} F={handle}")).await;
    let reply = c.recv_named("ADC").await;
    assert_eq!(
        &reply.args[..3],
        [t.to_string(), "FL".into(), format!("N={handle}")]
    );
    mx.accept_invite_from(ghost).await
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn presence_and_names_both_ways() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let alice = format!("alice{}@example.com", suffix());
    let world = World::start(&env, &[(&alice, "Alice")]).await;
    let ghost = world.ghost(&alice);
    let mut bob = MxUser::register(&env, &format!("bob{}", suffix())).await;

    // The ghost exists from the start, named like the MSN user.
    poll("the ghost's name", async || {
        (bob.name_of(&ghost).await.as_deref() == Some("Alice")).then_some(())
    })
    .await;

    let mut a = msn_online(&world, &alice, 11).await;
    befriend(&mut a, &mut bob, &ghost).await;
    let bob_handle = bob.handle();
    let caps = ids::MATRIX_CAPABILITIES.to_string();

    // Matrix → MSN: presence, status message, display name.
    bob.set_presence("online", "at work").await;
    let nln = recv_for(&mut a, "NLN", "NLN").await;
    assert_eq!(
        nln.args[1..],
        [
            bob_handle.clone(),
            bob.id[1..bob.id.find(':').unwrap()].to_string(),
            caps.clone()
        ]
    );
    let ubx = a.recv_named("UBX").await;
    assert!(
        String::from_utf8_lossy(ubx.payload.as_deref().unwrap_or_default())
            .contains("<PSM>at work</PSM>"),
        "{ubx:?}"
    );
    bob.set_presence("unavailable", "").await;
    recv_for(&mut a, "NLN", "AWY").await;
    bob.set_name("Bobby ✓").await;
    let nln = a.recv_named("NLN").await;
    assert_eq!(nln.args[2], msnp::urlenc::encode("Bobby ✓"));

    // A Matrix user who signs off is FLN (Synapse also does this by itself
    // for users who stop syncing).
    bob.set_presence("offline", "").await;
    recv_for(&mut a, "FLN", &bob_handle).await;

    // MSN → Matrix: status, personal message, friendly name.
    let presence = async |want: &str, msg: Option<&str>| {
        poll(&format!("ghost presence {want} {msg:?}"), async || {
            let p = bob.presence_of(&ghost).await;
            (p["presence"] == want && p["status_msg"].as_str() == msg).then_some(())
        })
        .await
    };
    presence("online", None).await;
    let t = a.next();
    a.send(&format!("CHG {t} AWY 0")).await;
    a.recv_named("CHG").await;
    presence("unavailable", None).await;
    let t = a.next();
    a.send_payload(
        &format!("UUX {t}"),
        b"<Data><PSM>lunch \xe2\x9c\x93</PSM><CurrentMedia></CurrentMedia></Data>",
    )
    .await;
    a.recv_named("UUX").await;
    presence("unavailable", Some("lunch ✓")).await;
    let t = a.next();
    a.send(&format!("CHG {t} BSY 0")).await;
    a.recv_named("CHG").await;
    presence("unavailable", Some("Busy — lunch ✓")).await;
    // The refresh keeps the ghost's status past Synapse's 30 s sync timeout
    // (checked once: the second, PostgreSQL pass runs the same bridge code).
    if std::env::var("MSNGATE_TEST_BACKEND").as_deref() != Ok("postgres") {
        tokio::time::sleep(Duration::from_secs(35)).await;
        presence("unavailable", Some("Busy — lunch ✓")).await;
    }
    let t = a.next();
    a.send(&format!("CHG {t} NLN 0")).await;
    a.recv_named("CHG").await;
    presence("online", Some("lunch ✓")).await;
    let t = a.next();
    a.send(&format!("PRP {t} MFN Alicia%20%E2%9C%93")).await;
    a.recv_named("PRP").await;
    poll("the ghost's new name", async || {
        (bob.name_of(&ghost).await.as_deref() == Some("Alicia ✓")).then_some(())
    })
    .await;

    // Signing out: the ghost goes offline.
    a.send("OUT").await;
    presence("offline", None).await;

    // An account created while the bridge runs gets its ghost.
    let frank = format!("frank{}@example.com", suffix());
    world.server.add_user(&frank, PW, "Frank").await;
    let frank_ghost = world.ghost(&frank);
    let deadline = Instant::now() + Duration::from_secs(30);
    while bob.name_of(&frank_ghost).await.as_deref() != Some("Frank") {
        assert!(Instant::now() < deadline, "ghost of a new account");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    world.stop().await;
}

#[tokio::test]
async fn chat_messages_formatting_typing_and_nudges_both_ways() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let alice = format!("alice{}@example.com", suffix());
    let world = World::start(&env, &[(&alice, "Alice")]).await;
    let ghost = world.ghost(&alice);
    let mut bob = MxUser::register(&env, &format!("bob{}", suffix())).await;
    let mut a = msn_online(&world, &alice, 12).await;
    let room = befriend(&mut a, &mut bob, &ghost).await;
    let bob_handle = bob.handle();

    let mut sb = chat_with(&mut a, &alice, &bob_handle).await;

    // The room is the ghost's direct chat with bob (m.direct, as Matrix clients file it).
    let as_token = matrix::registration::load(std::path::Path::new(&env.registration))
        .expect("registration")
        .as_token;
    let url = format!(
        "{}/_matrix/client/v3/user/{}/account_data/m.direct?user_id={}",
        env.url,
        enc(&ghost),
        enc(&ghost)
    );
    let (status, direct) =
        request(&http(), reqwest::Method::GET, &url, Some(&as_token), None).await;
    assert_eq!(
        (status, &direct[&bob.id]),
        (200, &json!([room])),
        "{direct}"
    );

    // MSN → Matrix, formatted, into the direct chat; how long it takes.
    let format = msnp::mime::ImFormat {
        font: "Comic Sans MS".into(),
        bold: true,
        color_rgb: (255, 0, 0),
        ..Default::default()
    };
    let sent = Instant::now();
    let sent_ms = msngate::store::now_millis();
    send_text(&mut sb, 3, "héllo Bob ✓ 🎉\r\nline two", Some(&format)).await;
    let m = bob
        .wait_messages(&room, "alice's message", |m| {
            m.iter().any(|e| e["sender"] == ghost.as_str())
        })
        .await;
    let latency = sent.elapsed();
    let e = m.iter().find(|e| e["sender"] == ghost.as_str()).unwrap();
    // Synapse stamps the event when it stores it: MSN send → stored on Matrix.
    let stored_after = e["origin_server_ts"].as_i64().unwrap_or(0) - sent_ms;
    assert_eq!(e["content"]["body"], "héllo Bob ✓ 🎉\nline two");
    let html = e["content"]["formatted_body"].as_str().expect("formatted");
    assert!(
        html.contains("<strong>")
            && html.contains("#ff0000")
            && html.contains("Comic Sans MS")
            && html.contains("<br>"),
        "{html}"
    );
    eprintln!(
        "MSN → Matrix message latency: stored by Synapse after {stored_after} ms, seen by the Matrix user's poll after {latency:?}"
    );

    // MSN typing → the ghost types.
    sb.send_payload("MSG 4 U", &msnp::mime::typing_message(&alice))
        .await;
    let g = ghost.clone();
    let r = room.clone();
    bob.sync_until("the ghost typing", |v| {
        v["rooms"]["join"][&r]["ephemeral"]["events"]
            .as_array()?
            .iter()
            .find(|e| {
                e["type"] == "m.typing"
                    && e["content"]["user_ids"]
                        .as_array()
                        .is_some_and(|u| u.iter().any(|u| *u == g.as_str()))
            })?;
        Some(())
    })
    .await;

    // A nudge arrives as an emote.
    sb.send_payload("MSG 5 N", &msnp::mime::nudge_message())
        .await;
    bob.wait_messages(&room, "the nudge", |m| {
        m.iter()
            .any(|e| e["content"]["msgtype"] == "m.emote" && e["sender"] == ghost.as_str())
    })
    .await;

    // Matrix → MSN: formatting, Unicode, line breaks.
    let sent = Instant::now();
    bob.send(&room, json!({"msgtype": "m.text", "body": "héllo ✓ 🎉\nsecond", "format": "org.matrix.custom.html", "formatted_body": "<em>héllo ✓ 🎉<br>second</em>"})).await;
    let (from, text, fmt) = next_text(&mut sb).await;
    eprintln!("Matrix → MSN message latency: {:?}", sent.elapsed());
    assert_eq!(
        (from.as_str(), text.as_str()),
        (bob_handle.as_str(), "héllo ✓ 🎉\r\nsecond")
    );
    assert!(fmt.contains("EF=I;"), "{fmt}");

    // Latency figures over a burst of ten messages each way.
    let mut stamps = Vec::new();
    for i in 0..10u32 {
        stamps.push(msngate::store::now_millis());
        send_text(&mut sb, 10 + i, &format!("burst {i}"), None).await;
    }
    let m = bob
        .wait_messages(&room, "the burst", |m| {
            m.iter()
                .filter(|e| {
                    e["content"]["body"]
                        .as_str()
                        .is_some_and(|b| b.starts_with("burst "))
                })
                .count()
                == 10
        })
        .await;
    let mut to_matrix: Vec<i64> = m
        .iter()
        .filter_map(|e| {
            let i: usize = e["content"]["body"]
                .as_str()?
                .strip_prefix("burst ")?
                .parse()
                .ok()?;
            Some(e["origin_server_ts"].as_i64()? - stamps[i])
        })
        .collect();
    to_matrix.sort();
    let mut to_msn = Vec::new();
    for i in 0..10 {
        let t = Instant::now();
        bob.send(
            &room,
            json!({"msgtype": "m.text", "body": format!("reply {i}")}),
        )
        .await;
        assert_eq!(next_text(&mut sb).await.1, format!("reply {i}"));
        to_msn.push(t.elapsed().as_millis() as i64);
    }
    to_msn.sort();
    eprintln!(
        "latency over 10 messages, median/max ms: MSN → stored on Matrix {}/{}, Matrix send → MSN client {}/{}",
        to_matrix[5], to_matrix[9], to_msn[5], to_msn[9]
    );

    // Matrix typing → MSN typing notices, repeated while it lasts. (Taken
    // before the request: the bridge hears of it, and starts its repeat
    // timer, only after this instant.)
    let start = Instant::now();
    bob.typing(&room, true).await;
    let mut seen = 0;
    while seen < 2 {
        let cmd = sb.recv_named("MSG").await;
        let p = cmd.payload.unwrap();
        let m = msnp::mime::MimeMessage::parse(&p).unwrap();
        assert_eq!(msnp::mime::classify(&p), msnp::mime::PayloadKind::Typing);
        assert_eq!(m.header("TypingUser"), Some(bob_handle.as_str()));
        seen += 1;
    }
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "repeated every ~4 s"
    );
    bob.typing(&room, false).await;

    // An emote.
    bob.send(&room, json!({"msgtype": "m.emote", "body": "waves"}))
        .await;
    let (_, text, _) = next_text(&mut sb).await;
    assert_eq!(
        text,
        "* Bob waves".replace("Bob", &bob.id[1..bob.id.find(':').unwrap()])
    );
    world.stop().await;
}

#[tokio::test]
async fn matrix_user_starts_a_direct_chat() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let carol = format!("carol{}@example.com", suffix());
    let world = World::start(&env, &[(&carol, "Carol")]).await;
    let ghost = world.ghost(&carol);
    let bob = MxUser::register(&env, &format!("bob{}", suffix())).await;
    let mut c = msn_online(&world, &carol, 11).await;

    // A direct chat with the ghost puts bob on carol's reverse list.
    let room = bob.create_room(&ghost, true).await;
    let rl = c.recv_named("ADC").await;
    assert_eq!(
        &rl.args[..3],
        ["0".to_string(), "RL".into(), format!("N={}", bob.handle())]
    );

    // bob writes: carol's client rings, joins and reads it.
    bob.send(&room, json!({"msgtype": "m.text", "body": "hi carol ✓"}))
        .await;
    let (mut sb, iro) = answer(&mut c, &carol).await;
    assert_eq!(iro, [bob.handle()]);
    let (from, text, _) = next_text(&mut sb).await;
    assert_eq!((from, text.as_str()), (bob.handle(), "hi carol ✓"));

    // carol answers into the same room.
    send_text(&mut sb, 2, "hello bob", None).await;
    bob.wait_messages(&room, "carol's reply", |m| {
        m.iter()
            .any(|e| e["sender"] == ghost.as_str() && e["content"]["body"] == "hello bob")
    })
    .await;
    world.stop().await;
}

#[tokio::test]
async fn room_invitation_rings_the_msn_user() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let dave = format!("dave{}@example.com", suffix());
    let world = World::start(&env, &[(&dave, "Dave")]).await;
    let ghost = world.ghost(&dave);
    let bob = MxUser::register(&env, &format!("bob{}", suffix())).await;
    let mut d = msn_online(&world, &dave, 9).await;

    let room = bob.create_room(&ghost, false).await;
    let (mut sb, iro) = answer(&mut d, &dave).await;
    assert_eq!(iro, [bob.handle()]);
    bob.wait_messages(&room, "nothing yet", |_| true).await;
    bob.send(
        &room,
        json!({"msgtype": "m.text", "body": "welcome to the party"}),
    )
    .await;
    let (from, text, _) = next_text(&mut sb).await;
    assert_eq!(
        (from, text.as_str()),
        (bob.handle(), "welcome to the party")
    );
    send_text(&mut sb, 2, "thanks!", None).await;
    bob.wait_messages(&room, "dave's reply", |m| {
        m.iter()
            .any(|e| e["sender"] == ghost.as_str() && e["content"]["body"] == "thanks!")
    })
    .await;
    world.stop().await;
}

#[tokio::test]
async fn messages_wait_for_an_offline_msn_user() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let erin = format!("erin{}@example.com", suffix());
    let world = World::start(&env, &[(&erin, "Erin")]).await;
    let ghost = world.ghost(&erin);
    let bob = MxUser::register(&env, &format!("bob{}", suffix())).await;

    let room = bob.create_room(&ghost, true).await;
    bob.send(&room, json!({"msgtype": "m.text", "body": "one"}))
        .await;
    bob.send(&room, json!({"msgtype": "m.text", "body": "two ✓"}))
        .await;
    // The bridge keeps them for erin while she is away.
    let db = matrix::db::Db::open(world.server.hub().store().pool().clone())
        .await
        .expect("bridge tables");
    eventually_async("the bridge to keep both messages for erin", async || {
        db.inbox_for(&erin)
            .await
            .expect("inbox")
            .iter()
            .filter(|r| r.kind == "message")
            .count()
            == 2
    })
    .await;

    let mut e = msn_online(&world, &erin, 12).await;
    let (mut sb, _) = answer(&mut e, &erin).await;
    assert_eq!(next_text(&mut sb).await.1, "one");
    assert_eq!(next_text(&mut sb).await.1, "two ✓");
    world.stop().await;
}

/// Stops Synapse; starts it again when dropped (also when the test fails,
/// so later tests find it running).
struct SynapseDown<'a> {
    env: &'a SynapseEnv,
    up: bool,
}

impl<'a> SynapseDown<'a> {
    fn stop(env: &'a SynapseEnv) -> SynapseDown<'a> {
        // The process whose command line names this run's config (docs/testing.md).
        let config = format!("{}/homeserver.yaml", env.dir);
        let pid: i32 = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("synapse.app.homeserver") && c.contains(&config)
                })
            })
            .expect("a running Synapse");
        // SAFETY: signalling a process by pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // A copy restarted by an earlier test is our child: reap it (no-op otherwise).
            // SAFETY: waitpid with WNOHANG on a pid, no status wanted.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()));
            let refused =
                std::net::TcpStream::connect(env.url.trim_start_matches("http://")).is_err();
            if matches!(state, None | Some(Some('Z'))) && refused {
                break;
            }
            assert!(Instant::now() < deadline, "Synapse did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        SynapseDown { env, up: false }
    }

    // The restarted Synapse outlives the test; a later `stop` reaps it (waitpid).
    #[allow(clippy::zombie_processes)]
    fn start(&mut self) {
        if self.up {
            return;
        }
        self.up = true;
        let config = format!("{}/homeserver.yaml", self.env.dir);
        let log = std::fs::File::create(format!("{}/restart.log", self.env.dir)).expect("log");
        // Not waited for: it runs on for the other tests; scripts/test.sh stops it.
        std::process::Command::new(&self.env.python)
            .args(["-m", "synapse.app.homeserver", "-c", &config])
            .current_dir(&self.env.dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("restart Synapse");
        let url = format!("{}/_matrix/client/versions", self.env.url);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = std::process::Command::new("curl")
                .args(["-sf", "-o", "/dev/null", &url])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "Synapse did not come back");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SynapseDown<'_> {
    fn drop(&mut self) {
        self.start();
    }
}

#[tokio::test]
async fn synapse_restart_mid_conversation_loses_nothing() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let alice = format!("alice{}@example.com", suffix());
    let world = World::start(&env, &[(&alice, "Alice")]).await;
    let ghost = world.ghost(&alice);
    let mut bob = MxUser::register(&env, &format!("bob{}", suffix())).await;
    let mut a = msn_online(&world, &alice, 11).await;
    let room = befriend(&mut a, &mut bob, &ghost).await;
    let mut sb = chat_with(&mut a, &alice, &bob.handle()).await;
    send_text(&mut sb, 3, "before", None).await;
    bob.wait_messages(&room, "the first message", |m| {
        m.iter().any(|e| e["content"]["body"] == "before")
    })
    .await;

    // The homeserver goes away mid-conversation; the MSN user keeps writing.
    let mut down = SynapseDown::stop(&env);
    for (i, text) in ["during 1", "during 2 ✓", "during 3"].iter().enumerate() {
        send_text(&mut sb, 4 + i as u32, text, None).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    down.start();

    // Everything arrives, in order, once it is back.
    let m = bob
        .wait_messages(&room, "the messages sent while Synapse was down", |m| {
            m.iter().filter(|e| e["sender"] == ghost.as_str()).count() >= 4
        })
        .await;
    let bodies: Vec<&str> = m
        .iter()
        .filter(|e| e["sender"] == ghost.as_str())
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies, ["before", "during 1", "during 2 ✓", "during 3"]);

    // And the other way round, after the restart (Synapse numbers its transactions from 1 again).
    bob.send(&room, json!({"msgtype": "m.text", "body": "back again"}))
        .await;
    let (_, text, _) = next_text(&mut sb).await;
    assert_eq!(text, "back again");
    world.stop().await;
}

#[tokio::test]
async fn self_check_says_what_is_wrong() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let server = start().await;

    // Nothing listens at the homeserver address.
    let mut config = bridge_config(&env);
    config.listen = free_port();
    config.homeserver_url = format!("http://{}", free_port());
    let (stop, rx) = watch::channel(false);
    let bridge = matrix::start(
        &config,
        server.running.hub.clone(),
        server.running.metrics.clone(),
        rx.clone(),
    )
    .await
    .expect("starts anyway");
    assert!(!bridge.is_ready());
    let problem = bridge.problem().expect("a problem");
    assert!(
        problem.contains("cannot reach the Matrix homeserver"),
        "{problem}"
    );
    let _ = stop.send(true);
    bridge.stopped().await;

    // A registration the homeserver never loaded.
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(&env.registration)
        .expect("registration")
        .replace("as_token_for_tests", "as_token_not_loaded");
    let wrong = dir.path().join("registration.yaml");
    std::fs::write(&wrong, text).expect("write");
    let mut config = bridge_config(&env);
    config.listen = free_port();
    config.registration = wrong;
    let (stop, rx) = watch::channel(false);
    let bridge = matrix::start(
        &config,
        server.running.hub.clone(),
        server.running.metrics.clone(),
        rx,
    )
    .await
    .expect("starts anyway");
    let problem = bridge.problem().expect("a problem");
    assert!(
        problem.contains("rejected the appservice token")
            && problem.contains("app_service_config_files"),
        "{problem}"
    );
    let _ = stop.send(true);
    bridge.stopped().await;
    server.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn multi_party_chat_gets_a_room_of_its_own() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let (alice, carol) = (
        format!("alice{}@example.com", suffix()),
        format!("carol{}@example.com", suffix()),
    );
    let world = World::start(&env, &[(&alice, "Alice"), (&carol, "Carol")]).await;
    let (ghost_a, ghost_c) = (world.ghost(&alice), world.ghost(&carol));
    let mut bob = MxUser::register(&env, &format!("bob{}", suffix())).await;
    let bob_handle = bob.handle();
    let mut a = msn_online(&world, &alice, 11).await;
    let mut c = msn_online(&world, &carol, 11).await;
    let dm = befriend(&mut a, &mut bob, &ghost_a).await;

    // alice chats with bob, then calls carol in: a three-way chat.
    let mut sb_a = chat_with(&mut a, &alice, &bob_handle).await;
    sb_a.send(&format!("CAL 3 {carol}")).await;
    assert_eq!(sb_a.recv().await.args[1], "RINGING");
    let (mut sb_c, iro) = answer(&mut c, &carol).await;
    assert_eq!(iro, [alice.clone(), bob_handle.clone()]);
    sb_a.recv_named("JOI").await;

    // It moves to a new room with both ghosts; bob is invited there.
    let group = bob.accept_invite_from(&ghost_a).await;
    assert_ne!(group, dm);
    send_text(&mut sb_a, 4, "hello everyone", None).await;
    assert_eq!(next_text(&mut sb_c).await.1, "hello everyone");
    send_text(&mut sb_c, 2, "hi from carol", None).await;
    assert_eq!(next_text(&mut sb_a).await.1, "hi from carol");
    let m = bob
        .wait_messages(&group, "both MSN users' messages", |m| {
            m.iter().any(|e| {
                e["sender"] == ghost_a.as_str() && e["content"]["body"] == "hello everyone"
            }) && m
                .iter()
                .any(|e| e["sender"] == ghost_c.as_str() && e["content"]["body"] == "hi from carol")
        })
        .await;
    assert!(
        !bob.messages(&dm)
            .await
            .iter()
            .any(|e| e["content"]["body"] == "hello everyone"),
        "not in the direct chat"
    );
    drop(m);

    // bob's answer reaches both, once each.
    bob.send(&group, json!({"msgtype": "m.text", "body": "hi both"}))
        .await;
    assert_eq!(
        next_text(&mut sb_a).await,
        (bob_handle.clone(), "hi both".to_string(), next_format())
    );
    assert_eq!(next_text(&mut sb_c).await.1, "hi both");
    sb_a.expect_silence(Duration::from_millis(500)).await;
    world.stop().await;
}

/// The format header the bridge gives plain Matrix text.
fn next_format() -> String {
    msnp::mime::ImFormat {
        font: "Segoe UI".into(),
        ..Default::default()
    }
    .to_header()
}

#[tokio::test]
async fn undeliverable_messages_are_reported_both_ways() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let (alice, dave, carol) = (
        format!("alice{}@example.com", suffix()),
        format!("dave{}@example.com", suffix()),
        format!("carol{}@example.com", suffix()),
    );
    let world = World::start(
        &env,
        &[(&alice, "Alice"), (&dave, "Dave"), (&carol, "Carol")],
    )
    .await;
    let mut bob = MxUser::register(&env, &format!("bob{}", suffix())).await;
    let bob_handle = bob.handle();

    // bob leaves the direct chat: he leaves the MSN chat too, and what alice
    // writes next is refused (NAK).
    let mut a = msn_online(&world, &alice, 11).await;
    let dm = befriend(&mut a, &mut bob, &world.ghost(&alice)).await;
    let mut sb = chat_with(&mut a, &alice, &bob_handle).await;
    bob.ok(
        reqwest::Method::POST,
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(&dm)),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        render(&sb.recv_named("BYE").await),
        format!("BYE {bob_handle}")
    );
    sb.send_payload("MSG 3 A", &msnp::mime::text_message("anyone?", None))
        .await;
    assert_eq!(render(&sb.recv().await), "NAK 3");

    // dave is banned from a room: his next message there comes back as a notice.
    let mut d = msn_online(&world, &dave, 11).await;
    let room = bob.create_room(&world.ghost(&dave), false).await;
    let (mut sb_d, _) = answer(&mut d, &dave).await;
    bob.ok(
        reqwest::Method::POST,
        &format!("/_matrix/client/v3/rooms/{}/ban", enc(&room)),
        Some(json!({"user_id": world.ghost(&dave)})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    send_text(&mut sb_d, 2, "are you there", None).await;
    let (from, text, _) = next_text(&mut sb_d).await;
    assert_eq!(from, bob_handle);
    assert!(
        text.contains("could not deliver your message \u{201c}are you there\u{201d}"),
        "{text}"
    );

    // A Matrix message for an account that is gone: the sender gets a notice.
    let carol_ghost = world.ghost(&carol);
    let room = bob.create_room(&carol_ghost, true).await;
    poll("the ghost to join", async || {
        let v = bob
            .ok(
                reqwest::Method::GET,
                &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)),
                None,
            )
            .await;
        v["joined"].get(&carol_ghost).map(|_| ())
    })
    .await;
    world
        .server
        .hub()
        .accounts
        .delete(&carol)
        .await
        .expect("delete");
    bob.send(&room, json!({"msgtype": "m.text", "body": "still there?"}))
        .await;
    bob.wait_messages(&room, "the notice", |m| {
        m.iter().any(|e| {
            e["sender"] == carol_ghost.as_str()
                && e["content"]["msgtype"] == "m.notice"
                && e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("no longer has an MSN account"))
        })
    })
    .await;
    assert!(
        world
            .server
            .running
            .metrics
            .bridge_delivery_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    world.stop().await;
}

#[tokio::test]
async fn queued_requests_survive_an_msngate_restart() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let alice = format!("alice{}@example.com", suffix());
    let world = World::start(&env, &[(&alice, "Alice")]).await;
    let ghost = world.ghost(&alice);
    let mut bob = MxUser::register(&env, &format!("bob{}", suffix())).await;
    let mut a = msn_online(&world, &alice, 11).await;
    let room = befriend(&mut a, &mut bob, &ghost).await;
    let mut sb = chat_with(&mut a, &alice, &bob.handle()).await;

    // Synapse is down; alice's messages are accepted and queued; msngate stops.
    let mut down = SynapseDown::stop(&env);
    send_text(&mut sb, 3, "queued one", None).await;
    send_text(&mut sb, 4, "queued two", None).await;
    let db = world.server.running.config.database.url.clone();
    let World {
        server,
        bridge,
        stop,
        ..
    } = world;
    assert!(!bridge.flush(Duration::from_millis(500)).await);
    assert_eq!(bridge.queue_len(), 2, "still waiting for the homeserver");
    let _ = stop.send(true);
    bridge.stopped().await;
    server.running.shutdown(Duration::from_secs(5)).await;

    // A new msngate on the same database sends them once Synapse is back.
    let server = start_with(|c| c.database.url = db).await;
    let (stop, rx) = watch::channel(false);
    let bridge = matrix::start(
        &bridge_config(&env),
        server.running.hub.clone(),
        server.running.metrics.clone(),
        rx,
    )
    .await
    .expect("bridge starts");
    down.start();
    let m = bob
        .wait_messages(&room, "the queued messages", |m| {
            m.iter().filter(|e| e["sender"] == ghost.as_str()).count() >= 2
        })
        .await;
    let bodies: Vec<&str> = m
        .iter()
        .filter(|e| e["sender"] == ghost.as_str())
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies, ["queued one", "queued two"]);
    assert!(bridge.flush(TIMEOUT).await);
    let _ = stop.send(true);
    bridge.stopped().await;
    server.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn double_puppet_sends_from_the_real_matrix_account() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let alice = format!("alice{}@example.com", suffix());
    let world = World::start(&env, &[(&alice, "Alice")]).await;
    let ghost = world.ghost(&alice);
    let mut bob = MxUser::register(&env, &format!("bob{}", suffix())).await;
    let alice_mx = MxUser::register(&env, &format!("alicemx{}", suffix())).await;

    // A token that does not work is refused; alice's own one is linked.
    let config = bridge_config(&env);
    let store = world.server.hub().store();
    assert!(
        matrix::link_double_puppet(&config, store, &alice, "not-a-token")
            .await
            .is_err()
    );
    let linked = matrix::link_double_puppet(&config, store, &alice, &alice_mx.token)
        .await
        .expect("link");
    assert_eq!(linked, alice_mx.id);

    let mut a = msn_online(&world, &alice, 11).await;
    let room = befriend(&mut a, &mut bob, &ghost).await;
    let mut sb = chat_with(&mut a, &alice, &bob.handle()).await;
    send_text(&mut sb, 3, "from my own account", None).await;
    let m = bob
        .wait_messages(&room, "alice's message", |m| {
            m.iter()
                .any(|e| e["content"]["body"] == "from my own account")
        })
        .await;
    let e = m
        .iter()
        .find(|e| e["content"]["body"] == "from my own account")
        .unwrap();
    assert_eq!(
        e["sender"],
        alice_mx.id.as_str(),
        "sent by her real Matrix ID"
    );
    // Now that her account is in the room, her typing comes from it too.
    sb.send_payload("MSG 5 U", &msnp::mime::typing_message(&alice))
        .await;
    let (r, me) = (room.clone(), alice_mx.id.clone());
    bob.sync_until("alice's own account typing", |v| {
        v["rooms"]["join"][&r]["ephemeral"]["events"]
            .as_array()?
            .iter()
            .find(|e| {
                e["type"] == "m.typing"
                    && e["content"]["user_ids"]
                        .as_array()
                        .is_some_and(|u| u.iter().any(|u| *u == me.as_str()))
            })?;
        Some(())
    })
    .await;
    // Her own message does not come back to her on MSN; bob's answer does.
    bob.send(&room, json!({"msgtype": "m.text", "body": "I see you"}))
        .await;
    assert_eq!(next_text(&mut sb).await.1, "I see you");

    assert!(
        matrix::unlink_double_puppet(store, &alice)
            .await
            .expect("unlink")
    );
    send_text(&mut sb, 4, "as the ghost again", None).await;
    bob.wait_messages(&room, "the ghost's message", |m| {
        m.iter()
            .any(|e| e["sender"] == ghost.as_str() && e["content"]["body"] == "as the ghost again")
    })
    .await;
    world.stop().await;
}

/// The handle a Matrix user had before handles lost their `=`: every `:`
/// written `=3a` (the test users' IDs hold nothing else to escape).
fn old_form_handle(user_id: &str) -> String {
    let raw = &user_id[1..];
    assert!(
        raw.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-:".contains(&b)),
        "{user_id}"
    );
    format!("{}@{}", raw.replace(':', "=3a"), ids::CONTACT_DOMAIN)
}

/// Matrix contact handles hold no `=` (some client libraries split fields
/// on it): an MSN client adds and chats with the current form, the old
/// `=3a` form still resolves to the same contact, and contacts stored under
/// the old form are renamed when msngate starts (once: a second start
/// changes nothing).
#[tokio::test]
async fn matrix_handles_have_no_equals_sign_and_old_ones_still_work() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let (alice, carol, dave) = (
        format!("alice{}@example.com", suffix()),
        format!("carol{}@example.com", suffix()),
        format!("dave{}@example.com", suffix()),
    );
    let world = World::start(
        &env,
        &[(&alice, "Alice"), (&carol, "Carol"), (&dave, "Dave")],
    )
    .await;
    let ghost = world.ghost(&alice);
    let mut bob = MxUser::register(&env, &format!("bob{}", suffix())).await;
    let handle = bob.handle();
    let old = old_form_handle(&bob.id);
    assert_eq!(
        handle,
        format!(
            "{}@{}",
            bob.id[1..].replace(':', "_3a"),
            ids::CONTACT_DOMAIN
        )
    );

    // The current form: added and chatted with like any contact.
    let mut a = msn_online(&world, &alice, 11).await;
    let t = a.next();
    a.send(&format!("ADC {t} FL N={handle}")).await;
    let reply = render(&a.recv_named("ADC").await);
    assert_eq!(
        reply.rsplit_once(' ').unwrap().0,
        format!("ADC {t} FL N={handle}")
    );
    let room = bob.accept_invite_from(&ghost).await;
    let mut sb = chat_with(&mut a, &alice, &handle).await;
    send_text(&mut sb, 3, "hi bob", None).await;
    bob.wait_messages(&room, "alice's message", |m| {
        m.iter()
            .any(|e| e["sender"] == ghost.as_str() && e["content"]["body"] == "hi bob")
    })
    .await;
    bob.send(&room, json!({"msgtype": "m.text", "body": "hi alice"}))
        .await;
    let (from, text, _) = next_text(&mut sb).await;
    assert_eq!(
        (from.as_str(), text.as_str()),
        (handle.as_str(), "hi alice")
    );

    // The old form, as a client that stored it sends it: the same contact.
    let mut c = sign_in(&world.server, 7, &carol, PW).await;
    let t = c.next();
    c.send(&format!("CHG {t} NLN")).await;
    c.expect(&format!("CHG {t} NLN")).await;
    let t = c.next();
    c.send(&format!("ADD {t} FL {old} Bob 0")).await;
    let reply = c.recv_named("ADD").await;
    let version = reply.args[2].clone();
    assert_eq!(render(&reply), format!("ADD {t} FL {version} {old} Bob 0"));
    let t = c.next();
    c.send(&format!("SYN {t} 0")).await;
    let lst = loop {
        let cmd = c.recv().await;
        if cmd.name == "LST" && cmd.args.get(1).map(String::as_str) == Some("FL") {
            break render(&cmd);
        }
    };
    assert_eq!(lst, format!("LST {t} FL {version} 1 1 {handle} Bob 0"));
    let t = c.next();
    c.send(&format!("XFR {t} SB")).await;
    let xfr = c.recv_named("XFR").await;
    let mut sb_c = Client::connect(xfr.args[2].parse().expect("sb address")).await;
    sb_c.send(&format!("USR 1 {carol} {}", xfr.args[4])).await;
    assert_eq!(sb_c.recv().await.args[1], "OK");
    sb_c.send(&format!("CAL 2 {old}")).await;
    assert_eq!(sb_c.recv().await.args[1], "RINGING");
    assert_eq!(sb_c.recv_named("JOI").await.args[0], handle);

    // A contact stored under the old form (by an older msngate) ...
    let store = world.server.running.hub.store().clone();
    let account = store.account_by_handle(&dave).await.unwrap().unwrap();
    store
        .apply(&[msngate::store::Change::AddLists {
            account_id: account.id,
            handle: old.clone(),
            guid: "3f2504e0-4f89-41d3-9a0c-0305e82c3301".into(),
            stored_name: "Bob".into(),
            bits: 1 | 2,
        }])
        .await
        .unwrap();
    let db = world.server.running.config.database.url.clone();
    drop((sb, sb_c, a, c));
    let _first_data = world.stop_keeping_data().await;

    // ... is renamed at the next start, and its list version moves on.
    let world = World::start_on(&env, Some(db.clone()), &[]).await;
    let mut d = sign_in(&world.server, 11, &dave, PW).await;
    let t = d.next();
    d.send(&format!("SYN {t} 0 0")).await;
    let lst = render(&d.recv_named("LST").await);
    assert_eq!(
        lst,
        format!("LST N={handle} F=Bob C=3f2504e0-4f89-41d3-9a0c-0305e82c3301 3")
    );
    let store = world.server.running.hub.store().clone();
    let renamed = store.account_by_handle(&dave).await.unwrap().unwrap();
    assert_eq!(renamed.list_version, account.list_version + 1);
    drop(d);
    let _second_data = world.stop_keeping_data().await;

    // A second start finds nothing left to rename.
    let world = World::start_on(&env, Some(db), &[]).await;
    let store = world.server.running.hub.store().clone();
    let again = store.account_by_handle(&dave).await.unwrap().unwrap();
    assert_eq!(again.list_version, renamed.list_version);
    let rows = store.load_roster(again.id).await.unwrap();
    let handles: Vec<&str> = rows.contacts.iter().map(|c| c.handle.as_str()).collect();
    assert_eq!(handles, [handle.as_str()]);
    world.stop().await;
}

/// A room with several Matrix members rings an MSN user: `IRO` lists every
/// member already joined, not only the inviter, and a member who joins
/// later arrives as `JOI` at once, before saying anything.
#[tokio::test]
async fn room_ring_lists_every_member_and_later_joins_arrive_as_joi() {
    let Some(env) = synapse_env() else { return };
    let _turn = TURN.lock().await;
    let dave = format!("dave{}@example.com", suffix());
    let world = World::start(&env, &[(&dave, "Dave")]).await;
    let ghost = world.ghost(&dave);
    let bob = MxUser::register(&env, &format!("bob{}", suffix())).await;
    let erin = MxUser::register(&env, &format!("erin{}", suffix())).await;
    let frank = MxUser::register(&env, &format!("frank{}", suffix())).await;
    let mut d = msn_online(&world, &dave, 9).await;

    // bob and erin are in the room before dave's ghost is invited.
    let room = bob.create_room(&erin.id, false).await;
    erin.join(&room).await;
    bob.invite(&room, &ghost).await;
    let (mut sb, mut iro) = answer(&mut d, &dave).await;
    iro.sort();
    let mut expected = [bob.handle(), erin.handle()];
    expected.sort();
    assert_eq!(iro, expected);

    // frank joins later: JOI as soon as he joins.
    bob.invite(&room, &frank.id).await;
    frank.join(&room).await;
    let joi = sb.recv_named("JOI").await;
    assert_eq!(joi.args[0], frank.handle());
    frank
        .send(&room, json!({"msgtype": "m.text", "body": "frank here"}))
        .await;
    let (from, text, _) = next_text(&mut sb).await;
    assert_eq!((from, text.as_str()), (frank.handle(), "frank here"));
    // erin, in the chat from the start, speaks without a JOI first.
    erin.send(&room, json!({"msgtype": "m.text", "body": "erin too"}))
        .await;
    let msg = sb.recv().await;
    assert_eq!(msg.name, "MSG", "{}", render(&msg));
    assert_eq!(msg.args[0], erin.handle());
    world.stop().await;
}
