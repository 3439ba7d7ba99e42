//! Durability: the real `msngate` binary is killed with SIGKILL right after
//! it acknowledged a change, restarted on the same database, and must still
//! have every acknowledged change.
//!
//! The database is the harness's (`common::database_url`): SQLite in a
//! temporary folder, or with `MSNGATE_TEST_BACKEND=postgres` a PostgreSQL
//! database of its own. Every restart uses the same one, on fresh ports.

mod common;
use common::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PW: &str = "durable-pw";

/// One running `msngate serve` process.
struct Gate {
    child: Child,
    ns: SocketAddr,
    log: PathBuf,
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    dir: tempfile::TempDir,
    db_url: String,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_url = database_url(dir.path());
        Setup { dir, db_url }
    }

    /// Writes a configuration with fresh ports and returns its path and the
    /// notification address.
    fn config(&self) -> (PathBuf, SocketAddr) {
        let (ns, sb, http) = (free_port(), free_port(), free_port());
        let path = self.dir.path().join("msngate.yaml");
        let yaml = format!(
            "msn:\n  listen: {ns}\n  switchboard_listen: {sb}\n  public_host: 127.0.0.1\n  challenges: false\n\
             http:\n  listen: {http}\n  public_url: http://{http}\n\
             database:\n  url: \"{}\"\n\
             auth:\n  argon2_memory_kib: 1024\n  argon2_iterations: 1\n\
             log:\n  level: info\n",
            self.db_url
        );
        std::fs::write(&path, yaml).expect("write config");
        (path, ns)
    }

    fn msngate(&self, config: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_msngate"));
        cmd.arg("--config").arg(config).stdin(Stdio::null());
        cmd
    }

    fn add_user(&self, handle: &str, nickname: &str) {
        let (config, _) = self.config();
        let out = self
            .msngate(&config)
            .args([
                "user",
                "add",
                handle,
                "--password",
                PW,
                "--nickname",
                nickname,
            ])
            .output()
            .expect("run msngate user add");
        assert!(
            out.status.success(),
            "user add {handle}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `msngate serve` and waits until it accepts connections.
    async fn start(&self, round: usize) -> Gate {
        let (config, ns) = self.config();
        let log = self.dir.path().join(format!("serve-{round}.log"));
        let child = self
            .msngate(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn msngate serve");
        let gate = Gate { child, ns, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(ns).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "msngate did not start: {}",
                std::fs::read_to_string(&gate.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gate
    }
}

impl Gate {
    /// SIGKILL, no chance to flush or shut down.
    fn kill(mut self) {
        self.child.kill().expect("kill -9");
        let status = self.child.wait().expect("wait");
        assert!(
            !status.success(),
            "msngate exited by itself before the kill: {status}"
        );
    }
}

/// A request, the reply that acknowledges it, and its effect on the lists.
type Round = (String, String, Box<dyn Fn(&mut Expected)>);

/// What alice's lists should hold, rendered as an MSNP7 `SYN` dump.
#[derive(Clone, Default)]
struct Expected {
    version: i64,
    blp: &'static str,
    groups: Vec<(i64, String)>,
    /// (list, handle, stored name, groups)
    entries: Vec<(&'static str, String, String, &'static str)>,
}

impl Expected {
    fn dump(&self, t: u32) -> Vec<String> {
        let v = self.version;
        let mut out = vec![
            format!("SYN {t} {v}"),
            format!("GTC {t} {v} A"),
            format!("BLP {t} {v} {}", self.blp),
        ];
        let total = self.groups.len() + 1;
        out.push(format!("LSG {t} {v} 1 {total} 0 Other%20Contacts 0"));
        for (i, (n, name)) in self.groups.iter().enumerate() {
            out.push(format!("LSG {t} {v} {} {total} {n} {name} 0", i + 2));
        }
        for list in ["FL", "AL", "BL", "RL"] {
            let members: Vec<_> = self.entries.iter().filter(|e| e.0 == list).collect();
            if members.is_empty() {
                out.push(format!("LST {t} {list} {v} 0 0"));
            }
            for (i, (_, handle, name, groups)) in members.iter().enumerate() {
                let mut line = format!(
                    "LST {t} {list} {v} {} {} {handle} {name}",
                    i + 1,
                    members.len()
                );
                if list == "FL" {
                    line.push_str(&format!(" {groups}"));
                }
                out.push(line);
            }
        }
        out
    }
}

/// Reads lines until the `QNG` that answers a `PNG` sent after `SYN`.
async fn dump(c: &mut Client) -> (u32, Vec<String>) {
    let t = c.next();
    c.send(&format!("SYN {t} 0")).await;
    c.send("PNG").await;
    let mut lines = Vec::new();
    loop {
        let cmd = c.recv().await;
        if cmd.name == "QNG" {
            return (t, lines);
        }
        lines.push(render(&cmd));
    }
}

#[tokio::test]
async fn acknowledged_list_changes_survive_kill_9() {
    let setup = Setup::new();
    let [alice, bob, carol] =
        ["alice", "bob", "carol"].map(|w| format!("{w}.durability@example.com"));
    setup.add_user(&alice, "Alice");
    setup.add_user(&bob, "Bob");
    setup.add_user(&carol, "Carol");

    let mut expected = Expected {
        version: 1,
        blp: "AL",
        ..Default::default()
    };
    // Each round: sign in, check everything acknowledged so far is there,
    // make one change, and kill the server the moment its reply arrives.
    let entry = |list: &'static str, handle: &str, groups: &'static str| {
        let handle = handle.to_string();
        move |e: &mut Expected| {
            e.entries
                .push((list, handle.clone(), handle.clone(), groups))
        }
    };
    let rounds: Vec<Round> = vec![
        (
            "ADG {t} Friends 0".into(),
            "ADG {t} 2 Friends 1 0".into(),
            Box::new(|e: &mut Expected| e.groups.push((1, "Friends".into()))),
        ),
        (
            format!("ADD {{t}} FL {bob} {bob} 1"),
            format!("ADD {{t}} FL 3 {bob} {bob} 1"),
            Box::new(entry("FL", &bob, "1")),
        ),
        (
            format!("ADD {{t}} AL {bob} {bob}"),
            format!("ADD {{t}} AL 4 {bob} {bob}"),
            Box::new(entry("AL", &bob, "")),
        ),
        (
            format!("ADD {{t}} BL {carol} {carol}"),
            format!("ADD {{t}} BL 5 {carol} {carol}"),
            Box::new(entry("BL", &carol, "")),
        ),
        (
            "ADG {t} Work 0".into(),
            "ADG {t} 6 Work 2 0".into(),
            Box::new(|e: &mut Expected| e.groups.push((2, "Work".into()))),
        ),
        (
            "REG {t} 1 Best%20Friends 0".into(),
            "REG {t} 7 1 Best%20Friends 0".into(),
            Box::new(|e: &mut Expected| e.groups[0].1 = "Best%20Friends".into()),
        ),
        (
            format!("ADD {{t}} FL {bob} {bob} 2"),
            format!("ADD {{t}} FL 8 {bob} {bob} 2"),
            Box::new(|e: &mut Expected| e.entries[0].3 = "1,2"),
        ),
        (
            format!("REA {{t}} {bob} Bobby"),
            format!("REA {{t}} 9 {bob} Bobby"),
            Box::new(|e: &mut Expected| {
                for entry in e.entries.iter_mut().filter(|x| x.1.starts_with("bob.")) {
                    entry.2 = "Bobby".into();
                }
            }),
        ),
        (
            format!("REA {{t}} {alice} Alice%20Renamed"),
            format!("REA {{t}} 10 {alice} Alice%20Renamed"),
            Box::new(|_: &mut Expected| {}),
        ),
        (
            "BLP {t} BL".into(),
            "BLP {t} 11 BL".into(),
            Box::new(|e: &mut Expected| e.blp = "BL"),
        ),
        (
            "RMG {t} 2".into(),
            "RMG {t} 12 2".into(),
            Box::new(|e: &mut Expected| {
                e.groups.pop();
                e.entries[0].3 = "1";
            }),
        ),
    ];
    for (round, (request, reply, effect)) in rounds.iter().enumerate() {
        let gate = setup.start(round).await;
        let mut a = sign_in_md5(gate.ns, 7, &alice, PW).await;
        let (t, got) = dump(&mut a).await;
        assert_eq!(
            got,
            expected.dump(t),
            "round {round}: state before `{request}`"
        );
        let t = a.next();
        a.send(&request.replace("{t}", &t.to_string())).await;
        a.expect(&reply.replace("{t}", &t.to_string())).await;
        gate.kill();
        expected.version += 1;
        effect(&mut expected);
    }

    let gate = setup.start(rounds.len()).await;
    let mut a = sign_in_md5(gate.ns, 7, &alice, PW).await;
    let (t, got) = dump(&mut a).await;
    assert_eq!(got, expected.dump(t), "after the last round");
    // The own name, and the other side of the forward-list change.
    let mut c = Client::connect(gate.ns).await;
    c.send("VER 1 MSNP7").await;
    c.recv().await;
    c.send(&format!("USR 2 MD5 I {alice}")).await;
    let salt = c.recv().await.args[3].clone();
    c.send(&format!(
        "USR 3 MD5 S {}",
        msnp::auth::md5_login_hash(&salt, PW)
    ))
    .await;
    c.expect(&format!("USR 3 OK {alice} Alice%20Renamed 1"))
        .await;
    let mut b = sign_in_md5(gate.ns, 7, &bob, PW).await;
    let (t, got) = dump(&mut b).await;
    assert_eq!(
        got.last().map(String::as_str),
        Some(format!("LST {t} RL 2 1 1 {alice} Alice").as_str()),
        "{got:?}"
    );
}

/// A numbered text message of about 1.5 KB.
fn numbered(n: usize) -> Vec<u8> {
    format!(
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n{n:06} {}",
        "x".repeat(1400)
    )
    .into_bytes()
}

fn number_of(payload: &[u8]) -> usize {
    let text = String::from_utf8_lossy(payload);
    let body = text.rsplit("\r\n\r\n").next().unwrap_or("");
    body[..6].parse().expect("a numbered message")
}

async fn go_online(c: &mut Client) {
    let t = c.next();
    c.send(&format!("CHG {t} NLN")).await;
    c.recv_named("CHG").await;
}

#[tokio::test]
async fn acknowledged_messages_reach_the_recipient_despite_kill_9() {
    const COUNT: usize = 300;
    let setup = Setup::new();
    let [alice, bob] = ["alice", "bob"].map(|w| format!("{w}.ack-durability@example.com"));
    setup.add_user(&alice, "Alice");
    setup.add_user(&bob, "Bob");
    for round in 0..3 {
        let gate = setup.start(round).await;
        let mut a = sign_in_md5(gate.ns, 7, &alice, PW).await;
        let mut b = sign_in_md5(gate.ns, 7, &bob, PW).await;
        go_online(&mut a).await;
        go_online(&mut b).await;
        let t = a.next();
        a.send(&format!("XFR {t} SB")).await;
        let xfr = a.recv_named("XFR").await;
        let sb: SocketAddr = xfr.args[2].parse().expect("switchboard address");
        let mut a_sb = Client::connect(sb).await;
        a_sb.send(&format!("USR 1 {alice} {}", xfr.args[4])).await;
        assert_eq!(a_sb.recv().await.args[1], "OK");
        a_sb.send(&format!("CAL 2 {bob}")).await;
        assert_eq!(a_sb.recv().await.args[1], "RINGING");
        let rng = b.recv_named("RNG").await;
        // bob reads slowly through a small window: his copies lag behind.
        let mut b_sb = Client::connect_with_small_window(sb, 4096).await;
        b_sb.send(&format!("ANS 1 {bob} {} {}", rng.args[3], rng.args[0]))
            .await;
        assert_eq!(render(&b_sb.recv_named("ANS").await), "ANS 1 OK");
        a_sb.recv_named("JOI").await;
        let bob_reads = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut stream = b_sb.into_stream();
            let decoder = msnp::codec::Decoder::server_to_client();
            let (mut buf, mut got) = (bytes::BytesMut::new(), Vec::new());
            loop {
                while let Ok(Some(cmd)) = decoder.decode(&mut buf) {
                    if cmd.name == "MSG" {
                        got.push(number_of(cmd.payload.as_deref().unwrap_or_default()));
                    }
                }
                let mut chunk = [0u8; 2048];
                match tokio::time::timeout(TIMEOUT, stream.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return got,
                    Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                    Err(_) => panic!("bob's connection neither delivered nor closed"),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });

        // alice sends every message at once and reads the replies; the
        // server is killed the moment the last one is acknowledged.
        let (mut replies, mut sending) = a_sb.into_stream().into_split();
        let alice_sends = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for n in 1..=COUNT {
                let m = numbered(n);
                let mut out = format!("MSG {} A {}\r\n", n + 2, m.len()).into_bytes();
                out.extend_from_slice(&m);
                if sending.write_all(&out).await.is_err() {
                    break;
                }
            }
            // Dropping the half would end the session (EOF): keep it.
            sending
        });
        let decoder = msnp::codec::Decoder::server_to_client();
        let mut buf = bytes::BytesMut::new();
        let mut acknowledged = 0;
        'replies: loop {
            use tokio::io::AsyncReadExt;
            while let Some(cmd) = decoder.decode(&mut buf).expect("well framed") {
                assert_eq!(cmd.name, "ACK", "round {round}: {}", render(&cmd));
                acknowledged += 1;
                if acknowledged == COUNT {
                    break 'replies;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(TIMEOUT, replies.read(&mut chunk))
                .await
                .expect("replies")
                .expect("read replies");
            assert!(
                n > 0,
                "round {round}: alice's switchboard connection closed: {}",
                std::fs::read_to_string(&gate.log).unwrap_or_default()
            );
            buf.extend_from_slice(&chunk[..n]);
        }
        gate.kill();
        drop(alice_sends.await.expect("alice's task"));
        let got = bob_reads.await.expect("bob's task");
        assert_eq!(
            got.len(),
            COUNT,
            "round {round}: {COUNT} messages acknowledged, bob got {} before the connection ended",
            got.len()
        );
        assert_eq!(got, (1..=COUNT).collect::<Vec<_>>(), "round {round}");
    }
}
