//! Storage faults against the real `msngate` binary: two processes opening
//! one new database at once, a disk that fills up and is freed again, and
//! the database's `-shm` file truncated under a running server.
//!
//! The database is the harness's (`common::database_url`): SQLite, or with
//! `MSNGATE_TEST_BACKEND=postgres` a fresh PostgreSQL database per server.
//! The disk tests need SQLite on a filesystem the test controls, so they
//! mount a small tmpfs (the tests run as root in CI); they say so and stop
//! on PostgreSQL, whose disk is the database server's.

mod common;
use common::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

const PW: &str = "fault-pw";

/// One `msngate serve` child with its standard error in a file; killed on drop.
struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    /// Starts `serve` without waiting for it.
    fn spawn(config: &Path, log: &Path) -> Serve {
        let child = Command::new(env!("CARGO_BIN_EXE_msngate"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("spawn msngate serve");
        Serve {
            child,
            log: log.to_path_buf(),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process is gone.
    fn assert_alive(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            panic!(
                "msngate serve died {when} ({status}); its log:\n{}",
                self.log_text()
            );
        }
    }

    /// Waits until the notification port accepts; panics with the log if
    /// the process exits first.
    async fn wait_listening(&mut self, ns: SocketAddr) {
        if let Err(status) = self.listening_or_exit(ns).await {
            panic!(
                "msngate serve exited with {status} before listening; its log:\n{}",
                self.log_text()
            );
        }
    }

    /// Waits until the notification port accepts, or the process exits.
    async fn listening_or_exit(&mut self, ns: SocketAddr) -> Result<(), ExitStatus> {
        let mut exited = None;
        eventually_async("msngate serve to listen", async || {
            if let Some(status) = self.child.try_wait().expect("wait") {
                exited = Some(status);
                return true;
            }
            tokio::net::TcpStream::connect(ns).await.is_ok()
        })
        .await;
        exited.map_or(Ok(()), Err)
    }

    /// The free port picked for it was taken by someone else in between
    /// (`common::free_port` can only pick, not hold).
    fn lost_its_port(&self) -> bool {
        self.log_text().contains("Address already in use")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn user_add(config: &Path, handle: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_msngate"));
    cmd.arg("--config")
        .arg(config)
        .args(["user", "add", handle, "--password", PW])
        .stdin(Stdio::null());
    cmd
}

fn on_postgres() -> bool {
    std::env::var("MSNGATE_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// Issue 10: `serve` and `msngate user add` started at the same moment on a
/// database that does not exist yet, 20 times: both succeed every time, and
/// the account the CLI created signs in on the server.
#[tokio::test]
async fn serve_and_user_add_on_one_new_database_at_once_both_succeed() {
    race_on_new_databases(20, None).await;
}

/// The same with `database.sqlite_journal: wal`, whose switch into WAL mode
/// SQLite does not let wait for the busy timeout.
#[tokio::test]
async fn the_race_is_safe_with_a_wal_journal_too() {
    if on_postgres() {
        eprintln!("SKIPPED on PostgreSQL: the journal setting is SQLite's");
        return;
    }
    race_on_new_databases(10, Some("wal")).await;
}

async fn race_on_new_databases(rounds: usize, sqlite_journal: Option<&str>) {
    let mut round = 0;
    let mut port_losses = 0;
    while round < rounds {
        let dir = tempfile::tempdir().unwrap();
        // A fresh database each round: a new SQLite file, or a new
        // PostgreSQL database.
        let (config, ns, _) = binary_config(dir.path());
        if let Some(journal) = sqlite_journal {
            let yaml = std::fs::read_to_string(&config).unwrap().replace(
                "database:\n",
                &format!("database:\n  sqlite_journal: {journal}\n"),
            );
            std::fs::write(&config, yaml).unwrap();
        }
        let handle = format!("race{round}@example.com");
        let add = user_add(&config, &handle)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn user add");
        let mut serve = Serve::spawn(&config, &dir.path().join("serve.log"));
        let added = tokio::task::spawn_blocking(move || add.wait_with_output())
            .await
            .unwrap()
            .expect("wait user add");
        assert!(
            added.status.success(),
            "round {round}: user add failed: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&added.stdout),
            format!("created {handle} ({handle})\n"),
            "round {round}"
        );
        if let Err(status) = serve.listening_or_exit(ns).await {
            // Not the race under test: the round runs again, on new ports
            // and a new database.
            if serve.lost_its_port() && port_losses < 5 {
                port_losses += 1;
                continue;
            }
            panic!(
                "round {round}: msngate serve exited with {status}; its log:\n{}",
                serve.log_text()
            );
        }
        let mut c = sign_in_md5(ns, 7, &handle, PW).await;
        c.send("OUT").await;
        c.expect_closed().await;
        serve.assert_alive(&format!("in round {round}"));
        if sqlite_journal == Some("wal") {
            assert!(
                dir.path().join("msngate.db-wal").exists(),
                "round {round}: the database is not in WAL mode"
            );
        }
        round += 1;
    }
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    /// `None` (with the reason printed) where mounting is impossible.
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(SmallDisk {
                dir: dir.to_path_buf(),
            }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// Writes a file until the disk refuses another byte.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in [65536, 4096, 1] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
        // What a short write kept must be on the disk before the check.
        let _ = file.sync_all();
        assert!(
            std::fs::write(self.dir.join("probe"), b"x").is_err(),
            "the disk still takes writes"
        );
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// `SYN` on MSNP7 followed by `PNG`: every line up to the `QNG`.
async fn dump(c: &mut Client) -> Vec<String> {
    let t = c.next();
    c.send(&format!("SYN {t} 0")).await;
    c.send("PNG").await;
    let mut lines = Vec::new();
    loop {
        let cmd = c.recv().await;
        if cmd.name == "QNG" {
            return lines;
        }
        lines.push(render(&cmd));
    }
}

/// Sends `line` with its `{t}` replaced by a fresh TrID and returns the
/// reply, its TrID written `{t}` again.
async fn request(c: &mut Client, line: &str) -> String {
    let t = c.next().to_string();
    c.send(&line.replace("{t}", &t)).await;
    let mut reply = c.recv().await;
    if reply.args.first() == Some(&t) {
        reply.args[0] = "{t}".into();
    }
    render(&reply)
}

/// Issue 11.1: writes on a full disk get `501` and `/ready` says why; the
/// server keeps signing users in; once space is back the very next write
/// succeeds without a restart, and nothing acknowledged is lost.
#[tokio::test]
async fn a_full_disk_refuses_writes_with_501_and_they_work_again_once_freed() {
    if on_postgres() {
        eprintln!("SKIPPED on PostgreSQL: the disk that fills is the database server's");
        return;
    }
    let outer = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&outer.path().join("disk"), "1m") else {
        return;
    };
    // Configuration and database on the small disk, the log outside it.
    let (config, ns, http) = binary_config(&disk.dir);
    for who in ["alice", "bob"] {
        let out = user_add(&config, &format!("{who}.disk@example.com"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut serve = Serve::spawn(&config, &outer.path().join("serve.log"));
    serve.wait_listening(ns).await;
    let mut alice = sign_in_md5(ns, 7, "alice.disk@example.com", PW).await;
    assert_eq!(
        request(&mut alice, "ADG {t} Friends 0").await,
        "ADG {t} 2 Friends 1 0"
    );

    let filler = disk.fill();
    // Refused with the protocol's database error, the connection kept.
    assert_eq!(request(&mut alice, "ADG {t} Work 0").await, "501 {t}");
    assert_eq!(
        request(&mut alice, "REA {t} alice.disk@example.com Lost").await,
        "501 {t}"
    );
    let (status, body) = http_get(http, "/ready").await;
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "{body}");
    assert!(body.starts_with("not ready\n"), "{body}");
    let database = body
        .lines()
        .find(|l| l.starts_with("database: "))
        .unwrap_or_default();
    assert!(
        database.starts_with("database: writes failing since ")
            && database.ends_with("database or disk is full"),
        "{body}"
    );
    // What does not need the disk goes on: sign-ins and reading lists.
    let mut bob = sign_in_md5(ns, 7, "bob.disk@example.com", PW).await;
    assert!(
        dump(&mut alice)
            .await
            .iter()
            .any(|l| l.ends_with(" 1 Friends 0")),
        "alice's lists while the disk is full"
    );
    let log = serve.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("database or disk is full")),
        "{log}"
    );

    std::fs::remove_file(filler).unwrap();
    // `/ready` tries a write of its own, so it recovers without client traffic.
    let (status, body) = http_get(http, "/ready").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert_eq!(
        request(&mut alice, "ADG {t} Work 0").await,
        "ADG {t} 3 Work 2 0"
    );
    assert_eq!(
        request(&mut bob, "REA {t} bob.disk@example.com Bobby").await,
        "REA {t} 2 bob.disk@example.com Bobby"
    );
    serve.assert_alive("after the disk was freed");

    // After a restart: exactly what was acknowledged.
    drop((alice, bob, serve));
    let mut serve = Serve::spawn(&config, &outer.path().join("serve-2.log"));
    serve.wait_listening(ns).await;
    let mut alice = sign_in_md5(ns, 7, "alice.disk@example.com", PW).await;
    let lines = dump(&mut alice).await;
    let groups: Vec<&String> = lines.iter().filter(|l| l.starts_with("LSG ")).collect();
    assert_eq!(groups.len(), 3, "{lines:?}");
    assert!(groups[1].ends_with(" 1 Friends 0"), "{lines:?}");
    assert!(groups[2].ends_with(" 2 Work 0"), "{lines:?}");
    assert!(
        lines[0].starts_with("SYN ") && lines[0].ends_with(" 3"),
        "{lines:?}"
    );
    let mut c = Client::connect(ns).await;
    c.send("VER 1 MSNP7").await;
    c.recv().await;
    c.send("USR 2 MD5 I bob.disk@example.com").await;
    let salt = c.recv().await.args[3].clone();
    c.send(&format!(
        "USR 3 MD5 S {}",
        msnp::auth::md5_login_hash(&salt, PW)
    ))
    .await;
    c.expect("USR 3 OK bob.disk@example.com Bobby 1").await;
}

/// Issue 11.8: the database's `-shm` file truncated under a running server
/// (a WAL database maps it into memory, and touching the mapping then
/// killed the whole process with SIGBUS). The database starts out in WAL
/// mode, as an earlier msngate left it: the server must survive, keep
/// signing users in and keep every acknowledged change.
#[tokio::test]
async fn a_truncated_shm_file_does_not_kill_the_server() {
    if on_postgres() {
        eprintln!("SKIPPED on PostgreSQL: the -shm file is SQLite's");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (config, ns, _) = binary_config(dir.path());
    let db = dir.path().join("msngate.db");
    {
        // A database in WAL mode, as msngate 0.1 made them.
        use sqlx::{ConnectOptions, Connection, Executor};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        conn.execute("PRAGMA journal_mode = WAL").await.unwrap();
        conn.execute("CREATE TABLE left_by_hand (x INTEGER)")
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    for who in ["alice", "bob"] {
        let out = user_add(&config, &format!("{who}.shm@example.com"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut serve = Serve::spawn(&config, &dir.path().join("serve.log"));
    serve.wait_listening(ns).await;
    let mut alice = sign_in_md5(ns, 7, "alice.shm@example.com", PW).await;
    assert_eq!(
        request(&mut alice, "ADG {t} Friends 0").await,
        "ADG {t} 2 Friends 1 0"
    );
    // The trigger: every file SQLite keeps beside the database, emptied in
    // place while the server has it open.
    let mut truncated = Vec::new();
    for suffix in ["-shm", "-wal"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) {
            file.set_len(0).unwrap();
            truncated.push(suffix);
        }
    }
    eprintln!("truncated: {truncated:?}");
    // Reads and writes right after it, on every pooled connection.
    for round in 0..20 {
        assert_eq!(
            request(&mut alice, &format!("ADG {{t}} G{round} 0")).await,
            format!("ADG {{t}} {} G{round} {} 0", round + 3, round + 2)
        );
        sign_in_md5(ns, 7, "bob.shm@example.com", PW).await;
    }
    serve.assert_alive("after its -shm file was truncated");

    drop((alice, serve));
    let mut serve = Serve::spawn(&config, &dir.path().join("serve-2.log"));
    serve.wait_listening(ns).await;
    let mut alice = sign_in_md5(ns, 7, "alice.shm@example.com", PW).await;
    let lines = dump(&mut alice).await;
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("LSG ")).count(),
        22,
        "{lines:?}"
    );
}

/// PostgreSQL: every connection the server holds is killed on the database
/// server's side (as by a failover or an administrator). Writes may be
/// refused with `501` for a moment, never with a closed client connection,
/// and work again without a restart.
#[tokio::test]
async fn writes_work_again_after_postgresql_drops_every_connection() {
    if !on_postgres() {
        eprintln!("SKIPPED on SQLite: there is no database server connection to lose");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (config, ns, http) = binary_config(dir.path());
    let url = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("url: ").map(str::to_string))
        .expect("database url");
    let out = user_add(&config, "alice.pg@example.com").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut serve = Serve::spawn(&config, &dir.path().join("serve.log"));
    serve.wait_listening(ns).await;
    let mut alice = sign_in_md5(ns, 7, "alice.pg@example.com", PW).await;
    assert_eq!(
        request(&mut alice, "ADG {t} Friends 0").await,
        "ADG {t} 2 Friends 1 0"
    );

    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&url).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(killed > 0, "no server connection to kill");

    let mut replies = Vec::new();
    for attempt in 0..5 {
        let reply = request(&mut alice, &format!("ADG {{t}} Work{attempt} 0")).await;
        let done = reply.starts_with("ADG ");
        replies.push(reply);
        if done {
            break;
        }
    }
    eprintln!("replies after the kill: {replies:?}");
    let last = replies.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("ADG {t} 3 Work")
            && replies[..replies.len() - 1].iter().all(|r| r == "501 {t}"),
        "{replies:?}"
    );
    let (status, body) = http_get(http, "/ready").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    sign_in_md5(ns, 7, "alice.pg@example.com", PW).await;
    serve.assert_alive("after PostgreSQL dropped its connections");
    admin.close().await;
}

/// The cost of `database.sqlite_journal: wal`, kept visible: the same
/// truncation kills the server (SQLite cannot turn it into an error), but
/// the log says what happened instead of nothing.
#[tokio::test]
async fn with_a_wal_journal_a_truncated_shm_file_is_named_in_the_log() {
    use std::os::unix::process::ExitStatusExt;
    if on_postgres() {
        eprintln!("SKIPPED on PostgreSQL: the -shm file is SQLite's");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (config, ns, _) = binary_config(dir.path());
    let yaml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("database:\n", "database:\n  sqlite_journal: wal\n");
    std::fs::write(&config, yaml).unwrap();
    let out = user_add(&config, "alice.wal@example.com").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut serve = Serve::spawn(&config, &dir.path().join("serve.log"));
    serve.wait_listening(ns).await;
    let mut alice = sign_in_md5(ns, 7, "alice.wal@example.com", PW).await;
    assert_eq!(
        request(&mut alice, "ADG {t} Friends 0").await,
        "ADG {t} 2 Friends 1 0"
    );
    let shm = dir.path().join("msngate.db-shm");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shm)
        .expect("a WAL database has a -shm file")
        .set_len(0)
        .unwrap();
    let t = alice.next();
    alice.send(&format!("ADG {t} Work 0")).await;
    let mut status = None;
    eventually("the server to die of the truncated -shm file", || {
        status = serve.child.try_wait().expect("wait");
        status.is_some()
    })
    .await;
    assert_eq!(status.and_then(|s| s.signal()), Some(libc::SIGBUS));
    let log = serve.log_text();
    assert!(
        log.contains("msngate: fatal: SIGBUS: a memory-mapped file was truncated"),
        "{log}"
    );
}
