//! The core's bridge interface seen from MSN clients: a remote contact on a
//! list, its presence, a chat the MSN user starts with it, a chat it starts,
//! and the reverse list. The bridge here is a small in-test `Network` (the
//! real Matrix and IRC bridges have their own suites against real servers);
//! the MSN side is the real server over TCP.

mod common;
use bytes::Bytes;
use common::*;
use msngate::core::conversation::{Conversation, ConversationEvent, ParticipantInfo, Receipts};
use msngate::core::hub::{Hub, Unreachable};
use msngate::core::outbox::Outbox;
use msngate::core::presence::{Presence, Status};
use msngate::core::remote::{BoxFuture, Network};
use parking_lot::Mutex;
use std::sync::{Arc, Weak};

const PW: &str = "s3cret!";
const KNOWN: &str = "known@test.bridge";

struct EchoNetwork {
    hub: Mutex<Weak<Hub>>,
    watched: Mutex<Vec<(String, String, bool)>>,
    local: Mutex<Vec<Arc<Presence>>>,
}

fn presence(handle: &str, status: Status, name: &str) -> Arc<Presence> {
    Arc::new(Presence {
        handle: handle.into(),
        status,
        friendly_name: name.into(),
        capabilities: 0x4000_0000,
        avatar: None,
        personal_message: "".into(),
        now_playing: None,
    })
}

impl EchoNetwork {
    /// Joins `conversation` as `KNOWN` and answers every text with "echo: …",
    /// except texts starting "undeliverable", which it refuses to take.
    fn join_and_echo(
        self: &Arc<Self>,
        conversation: Arc<Conversation>,
        hub: Arc<Hub>,
    ) -> Arc<ParticipantInfo> {
        let me = Arc::new(ParticipantInfo {
            handle: KNOWN.into(),
            friendly_name: "Known Remote".into(),
            capabilities: 0x4000_0000,
        });
        let outbox = Arc::new(Outbox::new(1000));
        let endpoint = hub.conversations.new_endpoint_id();
        conversation
            .join(
                endpoint,
                me.clone(),
                outbox.clone(),
                Receipts::Custodian,
                false,
            )
            .expect("join");
        let me2 = me.clone();
        tokio::spawn(async move {
            loop {
                outbox.notified().await;
                let mut events = Vec::new();
                outbox.drain_into(&mut events);
                for e in events {
                    if let ConversationEvent::Message {
                        payload, custody, ..
                    } = e
                    {
                        let text = msnp::mime::MimeMessage::parse(&payload)
                            .and_then(|m| msnp::mime::text_body(&m))
                            .unwrap_or_default();
                        if text.starts_with("undeliverable") {
                            // Dropped unanswered: that must mean NAK.
                            continue;
                        }
                        if let Some(custody) = custody {
                            custody.accept();
                        }
                        if text.is_empty() {
                            continue; // typing notices and the like
                        }
                        let reply =
                            Bytes::from(msnp::mime::text_message(&format!("echo: {text}"), None));
                        conversation.relay(endpoint, &me2, &reply, None);
                    }
                }
                if outbox.is_closed() {
                    return;
                }
            }
        });
        me
    }
}

impl Network for EchoNetwork {
    fn name(&self) -> &str {
        "echo"
    }
    fn owns(&self, handle: &str) -> bool {
        handle.ends_with("@test.bridge")
    }
    fn resolve<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Option<Arc<Presence>>> {
        Box::pin(async move {
            (handle == KNOWN).then(|| presence(KNOWN, Status::Online, "Known Remote"))
        })
    }
    fn watch(&self, local: &str, remote: &str, watching: bool) {
        self.watched
            .lock()
            .push((local.into(), remote.into(), watching));
    }
    fn invite<'a>(
        &'a self,
        conversation: Arc<Conversation>,
        _inviter: Arc<ParticipantInfo>,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<(), Unreachable>> {
        Box::pin(async move {
            if remote != KNOWN {
                return Err(Unreachable);
            }
            let hub = self.hub.lock().upgrade().ok_or(Unreachable)?;
            let this = Arc::new(EchoNetwork {
                hub: Mutex::new(Arc::downgrade(&hub)),
                watched: Mutex::new(vec![]),
                local: Mutex::new(vec![]),
            });
            this.join_and_echo(conversation, hub);
            Ok(())
        })
    }
    fn local_presence(&self, presence: Arc<Presence>) {
        self.local.lock().push(presence);
    }
}

#[tokio::test]
async fn remote_contacts_presence_and_chats_both_ways() {
    let server = start().await;
    let hub = server.running.hub.clone();
    let network = Arc::new(EchoNetwork {
        hub: Mutex::new(Arc::downgrade(&hub)),
        watched: Mutex::new(vec![]),
        local: Mutex::new(vec![]),
    });
    hub.register_network(network.clone());
    server.add_user("rn-alice@example.com", PW, "Alice").await;

    let mut alice = sign_in(&server, 11, "rn-alice@example.com", PW).await;
    alice.send("SYN 4 0 0").await;
    while !render(&alice.recv().await).starts_with("PRP MFN") {}
    alice.send("CHG 5 NLN 0").await;
    alice.expect("CHG 5 NLN 0").await;
    // The bridge hears that the MSN user is online.
    eventually("the bridge to hear that alice is online", || {
        network
            .local
            .lock()
            .iter()
            .any(|p| &*p.handle == "rn-alice@example.com" && p.status == Status::Online)
    })
    .await;

    // A remote handle the bridge knows can be added; an unknown one cannot.
    alice.send(&format!("ADC 6 FL N={KNOWN} F=Known")).await;
    let adc = alice.recv().await;
    assert_eq!(
        &render(&adc)[..render(&adc).find(" C=").unwrap()],
        format!("ADC 6 FL N={KNOWN} F=Known")
    );
    // Blank phone data (BPR) comes first, as after adding any contact.
    let iln = alice.recv_named("ILN").await;
    assert_eq!(
        render(&iln),
        format!("ILN 6 NLN {KNOWN} Known%20Remote {}", 0x4000_0000u32)
    );
    assert_eq!(
        network.watched.lock().last().cloned(),
        Some(("rn-alice@example.com".into(), KNOWN.into(), true))
    );
    alice.send("ADC 7 FL N=nobody@test.bridge").await;
    alice.expect("208 7").await;

    // Remote presence reaches the MSN user at once.
    hub.remote_presence(presence(KNOWN, Status::Away, "Known Remote"));
    alice
        .expect(&format!(
            "NLN AWY {KNOWN} Known%20Remote {}",
            0x4000_0000u32
        ))
        .await;
    hub.remote_presence(presence(KNOWN, Status::Offline, "Known Remote"));
    alice.expect(&format!("FLN {KNOWN}")).await;
    hub.remote_presence(presence(KNOWN, Status::Online, "Known Remote"));
    alice.recv_named("NLN").await;

    // The MSN user starts a chat with the remote contact.
    alice.send("XFR 8 SB").await;
    let xfr = alice.recv().await;
    let sb_addr: std::net::SocketAddr = xfr.args[2].parse().unwrap();
    let cookie = xfr.args[4].clone();
    let mut sb = Client::connect(sb_addr).await;
    sb.send(&format!("USR 1 rn-alice@example.com {cookie}"))
        .await;
    sb.expect("USR 1 OK rn-alice@example.com Alice").await;
    sb.send(&format!("CAL 2 {KNOWN}")).await;
    let cal = sb.recv().await;
    assert_eq!(&cal.args[..2], ["2", "RINGING"]);
    sb.expect(&format!("JOI {KNOWN} Known%20Remote")).await;
    sb.send(&format!("CAL 3 {KNOWN}")).await;
    sb.expect("215 3").await;
    sb.send("CAL 4 nobody@test.bridge").await;
    sb.expect("217 4").await;
    let hello = msnp::mime::text_message("héllo ✓", None);
    sb.send_payload("MSG 5 A", &hello).await;
    let mut got_ack = false;
    let mut echo = None;
    while !(got_ack && echo.is_some()) {
        let cmd = sb.recv().await;
        match cmd.name.as_str() {
            "ACK" => got_ack = true,
            "MSG" => echo = cmd.payload.clone(),
            other => panic!("unexpected {other}"),
        }
    }
    let echo = echo.unwrap();
    let parsed = msnp::mime::MimeMessage::parse(&echo).unwrap();
    assert_eq!(
        msnp::mime::text_body(&parsed).as_deref(),
        Some("echo: héllo ✓")
    );
    // What the bridge does not take is NAKed, in modes A and N; a plain
    // N message the bridge took gets no reply, so the next reply is 7's.
    let lost = msnp::mime::text_message("undeliverable, sorry", None);
    sb.send_payload("MSG 6 A", &lost).await;
    sb.expect("NAK 6").await;
    sb.send_payload("MSG 7 N", &hello).await;
    sb.recv_named("MSG").await; // the echo
    sb.send_payload("MSG 8 N", &lost).await;
    sb.expect("NAK 8").await;

    // The remote side starts a chat: the MSN client is rung and joins.
    let conversation = hub.conversations.create();
    let remote = network.join_and_echo(conversation.clone(), hub.clone());
    hub.invite_local(&conversation, remote.clone(), "rn-alice@example.com")
        .await
        .expect("ring");
    let rng = alice.recv_named("RNG").await;
    assert_eq!(rng.args[0], conversation.id.to_string());
    assert_eq!(&rng.args[2..3], ["CKI"]);
    assert_eq!(&rng.args[4..6], [KNOWN, "Known%20Remote"]);
    let mut sb2 = Client::connect(rng.args[1].parse().unwrap()).await;
    sb2.send(&format!(
        "ANS 1 rn-alice@example.com {} {}",
        rng.args[3], rng.args[0]
    ))
    .await;
    sb2.expect(&format!("IRO 1 1 1 {KNOWN} Known%20Remote"))
        .await;
    sb2.expect("ANS 1 OK").await;
    conversation.relay(
        999_999,
        &remote,
        &Bytes::from(msnp::mime::text_message("from afar", None)),
        None,
    );
    let msg = sb2.recv_named("MSG").await;
    assert_eq!(&msg.args[..2], [KNOWN, "Known%20Remote"]);

    // An offline or unknown MSN user cannot be rung.
    let conversation = hub.conversations.create();
    let remote = network.join_and_echo(conversation.clone(), hub.clone());
    assert!(
        hub.invite_local(&conversation, remote, "nobody@example.com")
            .await
            .is_err()
    );

    // A remote user adding the MSN user puts them on the reverse list.
    hub.remote_added_local("fan@test.bridge", "A Fan", "rn-alice@example.com")
        .await
        .unwrap();
    alice.expect("ADC 0 RL N=fan@test.bridge F=A%20Fan").await;
    assert_eq!(
        hub.watchers_of(KNOWN).await.unwrap(),
        ["rn-alice@example.com"]
    );

    // Signing out tells the bridge.
    alice.send("OUT").await;
    alice.expect_closed().await;
    eventually("the bridge to hear that alice went offline", || {
        network.local.lock().last().map(|p| p.status) == Some(Status::Offline)
    })
    .await;
    assert!(
        network
            .local
            .lock()
            .last()
            .is_some_and(|p| &*p.handle == "rn-alice@example.com")
    );
}
