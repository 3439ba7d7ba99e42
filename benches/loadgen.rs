//! msngate-bench: a load generator that speaks real MSNP over TCP.
//!
//! By default it starts msngate in-process on its **own** tokio runtime
//! (its own threads), with a temporary SQLite database, creates its users
//! through `Accounts::create`, and drives it from a second runtime. With
//! `--spawn` it runs the real `msngate` binary as a child process instead
//! (the `memory` scenario always does: only a separate process gives an
//! honest resident-memory figure), and with `--ns/--http/--database` it
//! loads a server that is already running. Loopback only; every loop is
//! bounded in count and time.
//!
//! ```text
//! cargo run --release --bin msngate-bench -- all
//! cargo run --release --bin msngate-bench -- relay --switchboards 1000 --inflight 16
//! ```

use anyhow::{Context as _, anyhow, bail};
use bytes::{Buf, BytesMut};
use clap::{Parser, ValueEnum};
use msngate::config::Config;
use msngate::core::accounts::Accounts;
use msngate::core::hashing::PasswordHasher;
use msnp::codec::{Command, Decoder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

const PASSWORD: &str = "bench-password-1";
/// Upper bound for any single reply during setup.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// MSNP7 challenge product (MD5 scheme) and MSNP11 product.
const P7_PRODUCT: (&str, &str) = ("PROD0061VRRZH@4F", "JXQ6J@TUOGYV@N0M");
const P11_PRODUCT: (&str, &str) = ("PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL");

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// MD5 (MSNP7) sign-ins per second and latency.
    SigninMd5,
    /// Passport (MSNP11, HTTP ticket) sign-ins per second and latency.
    SigninPassport,
    /// One status change seen by W watchers: time until all got NLN.
    Fanout,
    /// Relayed messages per second across S switchboards, K in flight each.
    Relay,
    /// Delivery latency at a fixed message rate.
    Rate,
    /// Server RSS per idle signed-in connection (separate server process).
    Memory,
    /// Switchboard latency while 500 Passport sign-ins storm in.
    Storm,
    /// Heap bytes the in-process server holds per idle signed-in
    /// connection, by allocation size (where the memory goes).
    Heap,
    /// One Passport sign-in's latency alone, then during a flood of wrong
    /// passwords from 16 connections of another address (127.0.0.2).
    SigninFlood,
    /// Server RSS while switchboard receivers stop reading and their
    /// senders keep sending (separate server process).
    Stuck,
    /// Everything above, in that order.
    All,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "msngate-bench",
    about = "Load generator for msngate (real MSNP over loopback TCP)"
)]
struct Args {
    scenario: Scenario,
    /// Concurrent clients signing in (sign-in scenarios).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// MD5 sign-ins to perform.
    #[arg(long, default_value_t = 20_000)]
    md5_signins: usize,
    /// Passport sign-ins to perform (each costs an argon2id verification).
    #[arg(long, default_value_t = 200)]
    passport_signins: usize,
    /// Watchers of the user whose status changes (fanout).
    #[arg(long, default_value_t = 200)]
    watchers: usize,
    /// Status changes to time (fanout).
    #[arg(long, default_value_t = 200)]
    repeats: usize,
    /// Concurrent switchboards, each with one sender and one receiver (relay).
    #[arg(long, default_value_t = 1000)]
    switchboards: usize,
    /// Messages each sender keeps in flight (relay).
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    /// Seconds of measurement per relay/rate run (after 1 s warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Messages per second for the fixed-rate run.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Switchboards for the fixed-rate and storm runs.
    #[arg(long, default_value_t = 200)]
    rate_switchboards: usize,
    /// Switchboard receivers that stop reading (stuck).
    #[arg(long, default_value_t = 8)]
    stuck_readers: usize,
    /// Idle signed-in connections for the memory scenario.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Passport sign-ins in the storm.
    #[arg(long, default_value_t = 500)]
    storm: usize,
    /// Background message rate during the storm.
    #[arg(long, default_value_t = 5_000)]
    storm_rate: u64,
    /// MSG payload size in bytes (relay, rate, storm).
    #[arg(long, default_value_t = 160)]
    size: usize,
    /// Worker threads of the in-process server runtime.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Worker threads of the client runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Run the real binary as a child process (path, or `auto` for the
    /// `msngate` next to this executable) instead of in-process.
    #[arg(long)]
    spawn: Option<String>,
    /// A running server: notification address (needs --http and --database).
    #[arg(long)]
    ns: Option<SocketAddr>,
    /// A running server: Passport HTTP address.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// A running server's database URL (users are created there).
    #[arg(long)]
    database: Option<String>,
    /// Whether the server sends CHL challenges (the default configuration does).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    challenges: bool,
}

// ---------------------------------------------------------------- heap accounting

/// Counts live heap bytes allocated and freed on the in-process server's
/// threads (the `heap` scenario), by 16-byte size class. Off unless enabled;
/// the check is one relaxed load per allocation.
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    pub struct Counting;
    pub static ENABLED: AtomicBool = AtomicBool::new(false);
    pub const CLASSES: usize = 512;
    pub static LIVE: [AtomicI64; CLASSES] = [const { AtomicI64::new(0) }; CLASSES];
    pub static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
    thread_local! {
        pub static SERVER_THREAD: Cell<bool> = const { Cell::new(false) };
    }

    fn record(size: usize, sign: i64) {
        if ENABLED.load(Ordering::Relaxed) && SERVER_THREAD.try_with(|s| s.get()).unwrap_or(false) {
            LIVE_BYTES.fetch_add(sign * size as i64, Ordering::Relaxed);
            LIVE[(size / 16).min(CLASSES - 1)].fetch_add(sign, Ordering::Relaxed);
        }
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            record(layout.size(), 1);
            // SAFETY: forwarded unchanged to the system allocator.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            record(layout.size(), -1);
            // SAFETY: forwarded unchanged to the system allocator.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            record(layout.size(), -1);
            record(new_size, 1);
            // SAFETY: forwarded unchanged to the system allocator.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    pub fn snapshot() -> (i64, Vec<i64>) {
        (
            LIVE_BYTES.load(Ordering::Relaxed),
            LIVE.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
        )
    }
}

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

// ---------------------------------------------------------------- timing

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}

/// Latency samples in nanoseconds.
#[derive(Default, Clone)]
struct Samples(Vec<u64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_nanos() as u64);
    }
    fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }
    fn pct(&mut self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 * q) as usize).min(self.0.len() - 1);
        Duration::from_nanos(self.0[i])
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------- results table

struct Row {
    scenario: String,
    metric: String,
    value: String,
    target: String,
    ok: Option<bool>,
}

#[derive(Default)]
struct Report(Vec<Row>);

impl Report {
    fn add(&mut self, scenario: &str, metric: &str, value: String, target: &str, ok: Option<bool>) {
        println!("  {scenario:<16} {metric:<44} {value}");
        self.0.push(Row {
            scenario: scenario.into(),
            metric: metric.into(),
            value,
            target: target.into(),
            ok,
        });
    }
    fn print(&self) {
        let w =
            |f: &dyn Fn(&Row) -> usize, h: usize| self.0.iter().map(f).max().unwrap_or(0).max(h);
        let (a, b, c, d) = (
            w(&|r| r.scenario.len(), 8),
            w(&|r| r.metric.len(), 6),
            w(&|r| r.value.len(), 5),
            w(&|r| r.target.len(), 6),
        );
        println!();
        println!(
            "| {:<a$} | {:<b$} | {:>c$} | {:<d$} | met |",
            "scenario", "metric", "value", "target"
        );
        println!(
            "|{}|{}|{}|{}|-----|",
            "-".repeat(a + 2),
            "-".repeat(b + 2),
            "-".repeat(c + 2),
            "-".repeat(d + 2)
        );
        for r in &self.0 {
            let met = match r.ok {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            println!(
                "| {:<a$} | {:<b$} | {:>c$} | {:<d$} | {met:<3} |",
                r.scenario, r.metric, r.value, r.target
            );
        }
    }
}

// ---------------------------------------------------------------- the server under test

struct Target {
    ns: SocketAddr,
    http: SocketAddr,
    /// Accounts with the server's own (production) password hashing: Passport users.
    accounts: Accounts,
    /// Same store, cheap argon2 parameters: bulk users that sign in with MD5
    /// (their argon2 hash is never used on that path).
    bulk_accounts: Accounts,
    /// Runs store work on the runtime that owns the database pool.
    store_rt: tokio::runtime::Handle,
    server_pid: Option<u32>,
    what: String,
    _keep: Keep,
}

#[allow(dead_code)]
enum Keep {
    InProcess {
        running: msngate::app::Running,
        runtime: tokio::runtime::Runtime,
    },
    Child {
        child: std::process::Child,
        runtime: tokio::runtime::Runtime,
    },
    External {
        runtime: tokio::runtime::Runtime,
    },
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Keep::Child { child, .. } = &mut self._keep {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn bench_config(dir: &std::path::Path, challenges: bool) -> Config {
    let mut c = Config::default();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    c.msn.listen = any;
    c.msn.switchboard_listen = any;
    c.http.listen = any;
    c.msn.public_host = "127.0.0.1".into();
    c.msn.challenges = challenges;
    // The fan-out scenario changes status hundreds of times in seconds.
    c.msn.rate_limit_changes = 1_000_000;
    c.database.url = format!("sqlite://{}/bench.db", dir.display());
    c
}

fn store_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-store")
        .enable_all()
        .build()?)
}

fn bulk(accounts: &Accounts) -> anyhow::Result<Accounts> {
    Ok(Accounts::new(
        accounts.store().clone(),
        PasswordHasher::new(2, 64, 1)?,
        true,
    ))
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn start_target(args: &Args, dir: &std::path::Path, spawn: Option<&str>) -> anyhow::Result<Target> {
    if let (Some(ns), Some(http)) = (args.ns, args.http) {
        let url = args
            .database
            .clone()
            .ok_or_else(|| anyhow!("--ns needs --database (to create users)"))?;
        let runtime = store_runtime()?;
        let mut config = Config::default();
        config.database.url = url;
        let hub = runtime.block_on(msngate::app::build_hub(&config))?;
        let accounts = hub.accounts.clone();
        return Ok(Target {
            ns,
            http,
            bulk_accounts: bulk(&accounts)?,
            accounts,
            store_rt: runtime.handle().clone(),
            server_pid: None,
            what: format!("external server {ns}"),
            _keep: Keep::External { runtime },
        });
    }
    let config = bench_config(dir, args.challenges);
    if let Some(path) = spawn {
        let path = if path == "auto" {
            std::env::current_exe()?
                .parent()
                .ok_or_else(|| anyhow!("no exe dir"))?
                .join("msngate")
        } else {
            path.into()
        };
        let (ns, sb, http) = (free_port()?, free_port()?, free_port()?);
        // Users first, from this process, before the server opens the file.
        let runtime = store_runtime()?;
        let hub = runtime.block_on(msngate::app::build_hub(&config))?;
        let accounts = hub.accounts.clone();
        let child = std::process::Command::new(&path)
            .arg("serve")
            .env("MSNGATE__MSN__LISTEN", ns.to_string())
            .env("MSNGATE__MSN__SWITCHBOARD_LISTEN", sb.to_string())
            .env("MSNGATE__HTTP__LISTEN", http.to_string())
            .env("MSNGATE__HTTP__PUBLIC_URL", format!("http://{http}"))
            .env("MSNGATE__MSN__PUBLIC_HOST", "127.0.0.1")
            .env("MSNGATE__MSN__CHALLENGES", args.challenges.to_string())
            .env("MSNGATE__MSN__RATE_LIMIT_CHANGES", "1000000")
            .env("MSNGATE__DATABASE__URL", &config.database.url)
            .env("MSNGATE_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run {} (build it: cargo build --release --bin msngate)",
                    path.display()
                )
            })?;
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(ns).is_err() {
            if Instant::now() > deadline {
                bail!("{} did not start listening on {ns}", path.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        return Ok(Target {
            ns,
            http,
            bulk_accounts: bulk(&accounts)?,
            accounts,
            store_rt: runtime.handle().clone(),
            server_pid: Some(pid),
            what: format!("child process {} (pid {pid})", path.display()),
            _keep: Keep::Child { child, runtime },
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .thread_name("msngate-server")
        .on_thread_start(|| heap::SERVER_THREAD.with(|s| s.set(true)))
        .enable_all()
        .build()?;
    let running = runtime.block_on(msngate::app::start(config))?;
    let accounts = running.hub.accounts.clone();
    Ok(Target {
        ns: running.notification_addr,
        http: running.http_addr,
        bulk_accounts: bulk(&accounts)?,
        accounts,
        store_rt: runtime.handle().clone(),
        server_pid: None,
        what: format!(
            "in-process, own runtime with {} worker threads",
            args.server_threads
        ),
        _keep: Keep::InProcess { running, runtime },
    })
}

/// Creates `count` users named `{prefix}-{run}-{i}@bench.example.com`; returns the handles.
async fn create_users(
    target: &Target,
    prefix: &str,
    count: usize,
    passport: bool,
) -> anyhow::Result<Vec<String>> {
    // A tag per run, so runs against one database do not collide.
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| format!("{:x}", rand::random::<u32>()));
    let handles: Vec<String> = (0..count)
        .map(|i| format!("{prefix}-{run}-{i}@bench.example.com"))
        .collect();
    let accounts = if passport {
        target.accounts.clone()
    } else {
        target.bulk_accounts.clone()
    };
    let list = handles.clone();
    target
        .store_rt
        .spawn(async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(16));
            let mut set = tokio::task::JoinSet::new();
            for h in list {
                let accounts = accounts.clone();
                let permit = sem.clone().acquire_owned().await?;
                set.spawn(async move {
                    let _permit = permit;
                    let nick = h.split('@').next().unwrap_or("user").to_string();
                    accounts.create(&h, PASSWORD, Some(&nick)).await.map(|_| ())
                });
            }
            while let Some(r) = set.join_next().await {
                r??;
            }
            anyhow::Ok(())
        })
        .await??;
    Ok(handles)
}

// ---------------------------------------------------------------- a plain MSNP client

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
    trid: u32,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::server_to_client(),
            trid: 0,
        })
    }

    fn next(&mut self) -> u32 {
        self.trid += 1;
        self.trid
    }

    async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let mut out = Vec::with_capacity(line.len() + 2);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.stream.write_all(&out).await?;
        Ok(())
    }

    async fn send_payload(&mut self, head: &str, payload: &[u8]) -> anyhow::Result<()> {
        let mut out = format!("{head} {}\r\n", payload.len()).into_bytes();
        out.extend_from_slice(payload);
        self.stream.write_all(&out).await?;
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<Command> {
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        loop {
            if let Some(cmd) = self.decoder.decode(&mut self.buf)? {
                return Ok(cmd);
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| anyhow!("timed out waiting for the server"))??;
            if n == 0 {
                bail!("connection closed by the server");
            }
        }
    }

    /// Receives until a command named `name`; an error code is an error.
    async fn expect(&mut self, name: &str) -> anyhow::Result<Command> {
        loop {
            let cmd = self.recv().await?;
            if cmd.name == name {
                return Ok(cmd);
            }
            if cmd.is_error() {
                bail!(
                    "server answered {} {:?} while {name} was expected",
                    cmd.name,
                    cmd.args
                );
            }
        }
    }
}

/// MSNP7 MD5 sign-in; returns the connection after `USR OK` and the profile.
async fn sign_in_md5(ns: SocketAddr, handle: &str) -> anyhow::Result<Conn> {
    let mut c = Conn::connect(ns).await?;
    c.send("VER 1 MSNP7 MSNP6 CVR0").await?;
    c.expect("VER").await?;
    c.send("INF 2").await?;
    c.expect("INF").await?;
    c.send(&format!("USR 3 MD5 I {handle}")).await?;
    let challenge = c.expect("USR").await?;
    let salt = challenge
        .arg(3)
        .ok_or_else(|| anyhow!("no salt"))?
        .to_string();
    c.send(&format!(
        "USR 4 MD5 S {}",
        msnp::auth::md5_login_hash(&salt, PASSWORD)
    ))
    .await?;
    let ok = c.expect("USR").await?;
    if ok.arg(1) != Some("OK") {
        bail!("sign-in refused: {:?}", ok.args);
    }
    c.expect("MSG").await?;
    c.trid = 4;
    Ok(c)
}

/// Passport 1.4 over HTTP: the `from-PP` ticket.
async fn passport_ticket(http: SocketAddr, handle: &str) -> anyhow::Result<String> {
    passport_login(http, handle, PASSWORD, None).await
}

/// Passport 1.4 login with `password`, from `source` (a loopback address
/// of its own) when given: the `from-PP` ticket, or an error with the status.
async fn passport_login(
    http: SocketAddr,
    handle: &str,
    password: &str,
    source: Option<std::net::IpAddr>,
) -> anyhow::Result<String> {
    let enc = msnp::urlenc::encode_passport_field;
    let request = format!(
        "GET /login2.srf HTTP/1.1\r\nAuthorization: Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in={},pwd={},lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1062764229,kpp=1,kv=5,ver=2.1.0173.1,tpf=43f8a4c8ed940c04e3740be46c4d1619\r\nUser-Agent: MSMSGS\r\nHost: {http}\r\nConnection: close\r\n\r\n",
        enc(handle),
        enc(password)
    );
    let mut stream = match source {
        Some(ip) => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(http).await?
        }
        None => TcpStream::connect(http).await?,
    };
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(REPLY_TIMEOUT, stream.read_to_end(&mut response)).await??;
    let text = String::from_utf8_lossy(&response);
    let start = text
        .find("from-PP='")
        .ok_or_else(|| anyhow!("login refused: {}", text.lines().next().unwrap_or("")))?
        + 9;
    let end = text[start..]
        .find('\'')
        .ok_or_else(|| anyhow!("bad from-PP"))?;
    Ok(text[start..start + end].to_string())
}

/// MSNP11 Passport sign-in; returns after `USR OK`, `SBS` and the profile.
async fn sign_in_passport(ns: SocketAddr, http: SocketAddr, handle: &str) -> anyhow::Result<Conn> {
    let mut c = Conn::connect(ns).await?;
    c.send("VER 1 MSNP11 CVR0").await?;
    c.expect("VER").await?;
    c.send(&format!(
        "CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 7.5.0324 msmsgs {handle}"
    ))
    .await?;
    c.expect("CVR").await?;
    c.send(&format!("USR 3 TWN I {handle}")).await?;
    c.expect("USR").await?;
    let ticket = passport_ticket(http, handle).await?;
    c.send(&format!("USR 4 TWN S {ticket}")).await?;
    let ok = c.expect("USR").await?;
    if ok.arg(1) != Some("OK") {
        bail!("sign-in refused: {:?}", ok.args);
    }
    c.expect("MSG").await?;
    c.trid = 4;
    Ok(c)
}

/// `CHG NLN` (P7 form, or P11 with capabilities) and the challenge that follows.
async fn go_online(c: &mut Conn, dialect: u8, challenges: bool) -> anyhow::Result<()> {
    let t = c.next();
    if dialect >= 8 {
        c.send(&format!("CHG {t} NLN 1342177280")).await?;
    } else {
        c.send(&format!("CHG {t} NLN")).await?;
    }
    c.expect("CHG").await?;
    if challenges {
        let chl = c.expect("CHL").await?;
        answer_challenge(c, &chl, dialect).await?;
        c.expect("QRY").await?;
    }
    Ok(())
}

async fn answer_challenge(c: &mut Conn, chl: &Command, dialect: u8) -> anyhow::Result<()> {
    let challenge = chl.arg(1).ok_or_else(|| anyhow!("CHL without challenge"))?;
    let t = c.next();
    let (id, answer) = if dialect >= 11 {
        (
            P11_PRODUCT.0,
            msnp::auth::challenge_msnp11(challenge, P11_PRODUCT.0, P11_PRODUCT.1),
        )
    } else {
        (
            P7_PRODUCT.0,
            msnp::auth::challenge_md5(challenge, P7_PRODUCT.1),
        )
    };
    c.send_payload(&format!("QRY {t} {id}"), answer.as_bytes())
        .await
}

// ---------------------------------------------------------------- sign-in scenarios

async fn signin_run(
    target: &Target,
    users: &[String],
    total: usize,
    clients: usize,
    passport: bool,
) -> anyhow::Result<(f64, Samples, usize)> {
    let (ns, http) = (target.ns, target.http);
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..clients.min(users.len()) {
        let (next, failures) = (next.clone(), failures.clone());
        // Each worker signs its own users in, so no sign-in replaces another's session.
        let mine: Vec<String> = users.iter().skip(w).step_by(clients).cloned().collect();
        set.spawn(async move {
            let mut samples = Samples::default();
            let mut i = 0usize;
            while (next.fetch_add(1, Ordering::Relaxed) as usize) < total
                && Instant::now() < deadline
            {
                let handle = &mine[i % mine.len()];
                i += 1;
                let t0 = Instant::now();
                let result = if passport {
                    sign_in_passport(ns, http, handle).await
                } else {
                    sign_in_md5(ns, handle).await
                };
                match result {
                    Ok(mut c) => {
                        samples.push(t0.elapsed());
                        let _ = c.send("OUT").await;
                    }
                    Err(e) => {
                        if failures.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("sign-in failed: {e:#}");
                        }
                    }
                }
            }
            samples
        });
    }
    let mut all = Samples::default();
    while let Some(s) = set.join_next().await {
        all.extend(s?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok((
        all.len() as f64 / elapsed,
        all,
        failures.load(Ordering::Relaxed) as usize,
    ))
}

async fn scenario_signin_md5(
    args: &Args,
    target: &Target,
    report: &mut Report,
) -> anyhow::Result<()> {
    println!(
        "== MD5 sign-ins (MSNP7): {} sign-ins, {} concurrent clients",
        args.md5_signins, args.clients
    );
    let users = create_users(target, "md5s", args.clients * 4, false).await?;
    // Warm-up (first roster loads, connection pool).
    signin_run(target, &users, args.clients * 2, args.clients, false).await?;
    let (rate, mut s, failed) =
        signin_run(target, &users, args.md5_signins, args.clients, false).await?;
    let n = format!("N={}", args.clients);
    report.add(
        "signin-md5",
        &format!("sign-ins/s ({n})"),
        format!("{rate:.0}"),
        ">= 5000",
        Some(rate >= 5000.0),
    );
    report.add(
        "signin-md5",
        "latency p50 (connect..USR OK)",
        ms(s.pct(0.50)),
        "",
        None,
    );
    report.add("signin-md5", "latency p99", ms(s.pct(0.99)), "", None);
    report.add(
        "signin-md5",
        "failed",
        failed.to_string(),
        "0",
        Some(failed == 0),
    );
    Ok(())
}

async fn scenario_signin_passport(
    args: &Args,
    target: &Target,
    report: &mut Report,
) -> anyhow::Result<()> {
    let clients = args.clients.min(args.passport_signins);
    println!(
        "== Passport sign-ins (MSNP11 + HTTP ticket): {} sign-ins, {clients} concurrent clients",
        args.passport_signins
    );
    let users = create_users(target, "pps", clients, true).await?;
    let (rate, mut s, failed) =
        signin_run(target, &users, args.passport_signins, clients, true).await?;
    let n = format!("N={clients}");
    report.add(
        "signin-passport",
        &format!("sign-ins/s ({n}, argon2id 16 MiB x2)"),
        format!("{rate:.1}"),
        "",
        None,
    );
    report.add(
        "signin-passport",
        "latency p50 (connect..USR OK)",
        ms(s.pct(0.50)),
        "",
        None,
    );
    report.add("signin-passport", "latency p99", ms(s.pct(0.99)), "", None);
    report.add(
        "signin-passport",
        "failed",
        failed.to_string(),
        "0",
        Some(failed == 0),
    );
    Ok(())
}

// ---------------------------------------------------------------- sign-in during a wrong-password flood

async fn scenario_signin_flood(target: &Target, report: &mut Report) -> anyhow::Result<()> {
    const FLOODERS: usize = 16;
    const SAMPLES: usize = 20;
    println!(
        "== Passport sign-in latency, alone and during a {FLOODERS}-connection wrong-password flood"
    );
    let users = create_users(target, "flood", 2, true).await?;
    let (legit, victim) = (&users[..1], users[1].clone());
    let (_, mut alone, failed_alone) = signin_run(target, legit, SAMPLES, 1, true).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for n in 0..FLOODERS {
        let (stop, answered, victim, http) =
            (stop.clone(), answered.clone(), victim.clone(), target.http);
        flood.spawn(async move {
            let source = std::net::IpAddr::from([127, 0, 0, 2]);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Half at one account, half spread over unknown ones.
                let handle = if i.is_multiple_of(2) {
                    victim.clone()
                } else {
                    format!("nobody{n}-{i}@bench.example.com")
                };
                i += 1;
                if passport_login(http, &handle, "wrong-guess", Some(source))
                    .await
                    .is_err()
                {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    // Let the flood reach the hashing queue first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flood_started = Instant::now();
    let before = answered.load(Ordering::Relaxed);
    let (_, mut during, failed_during) = signin_run(target, legit, SAMPLES, 1, true).await?;
    let flood_rate =
        (answered.load(Ordering::Relaxed) - before) as f64 / flood_started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    flood.abort_all();
    let (p50_alone, p50_during) = (alone.pct(0.50), during.pct(0.50));
    report.add("signin-flood", "sign-in p50 alone", ms(p50_alone), "", None);
    report.add(
        "signin-flood",
        "sign-in p50 during flood",
        ms(p50_during),
        "",
        None,
    );
    report.add(
        "signin-flood",
        "sign-in p99 during flood",
        ms(during.pct(0.99)),
        "",
        None,
    );
    let factor = p50_during.as_secs_f64() / p50_alone.as_secs_f64().max(1e-6);
    report.add(
        "signin-flood",
        "slowdown (p50 during / alone)",
        format!("{factor:.1}x"),
        "<= 3x",
        Some(factor <= 3.0),
    );
    report.add(
        "signin-flood",
        "wrong passwords answered/s (flood)",
        format!("{flood_rate:.1}"),
        "",
        None,
    );
    let failed = failed_alone + failed_during;
    report.add(
        "signin-flood",
        "failed",
        failed.to_string(),
        "0",
        Some(failed == 0),
    );
    Ok(())
}

// ---------------------------------------------------------------- presence fan-out

async fn scenario_fanout(args: &Args, target: &Target, report: &mut Report) -> anyhow::Result<()> {
    let w = args.watchers;
    println!(
        "== Presence fan-out: 1 user, {w} watchers, {} status changes",
        args.repeats
    );
    let star = create_users(target, "star", 1, false).await?.remove(0);
    let watchers = create_users(target, "watcher", w, false).await?;
    // Watchers sign in (MSNP7), put the star on their forward list, go online.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut readers = Vec::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut set = tokio::task::JoinSet::new();
    for (i, h) in watchers.iter().enumerate() {
        let (h, star, ns, ch, sem) = (
            h.clone(),
            star.clone(),
            target.ns,
            args.challenges,
            sem.clone(),
        );
        set.spawn(async move {
            let _p = sem.acquire_owned().await?;
            let mut c = sign_in_md5(ns, &h).await?;
            let t = c.next();
            c.send(&format!("ADD {t} FL {star} star 0")).await?;
            c.expect("ADD").await?;
            go_online(&mut c, 7, ch).await?;
            anyhow::Ok((i, c))
        });
    }
    while let Some(r) = set.join_next().await {
        let (i, c) = r??;
        let tx = tx.clone();
        let star = star.clone();
        readers.push(tokio::spawn(async move {
            let mut c = c;
            // NLN <status> <handle> <name>: report when the star's status arrives.
            while let Ok(cmd) = c.recv().await {
                if cmd.name == "NLN"
                    && cmd.arg(1) == Some(star.as_str())
                    && tx.send((i, Instant::now())).is_err()
                {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let mut s = sign_in_md5(target.ns, &star).await?;
    go_online(&mut s, 7, args.challenges).await?;
    // The first NLN (coming online) reaches everyone: drain it.
    let mut got = 0;
    while got < w {
        tokio::time::timeout(REPLY_TIMEOUT, rx.recv())
            .await?
            .ok_or_else(|| anyhow!("watchers gone"))?;
        got += 1;
    }
    let mut all = Samples::default();
    let mut last = Samples::default();
    for r in 0..args.repeats {
        let status = if r % 2 == 0 { "AWY" } else { "NLN" };
        let t = s.next();
        let t0 = Instant::now();
        s.send(&format!("CHG {t} {status}")).await?;
        let mut latest = t0;
        for _ in 0..w {
            let (_, at) = tokio::time::timeout(REPLY_TIMEOUT, rx.recv())
                .await?
                .ok_or_else(|| anyhow!("watchers gone"))?;
            latest = latest.max(at);
            all.push(at - t0);
        }
        last.push(latest - t0);
        s.expect("CHG").await?;
    }
    for r in readers {
        r.abort();
    }
    report.add(
        "fanout",
        &format!("all {w} watchers have NLN: p50"),
        ms(last.pct(0.50)),
        "",
        None,
    );
    let p99 = last.pct(0.99);
    report.add(
        "fanout",
        &format!("all {w} watchers have NLN: p99"),
        ms(p99),
        "< 10 ms",
        Some(p99 < Duration::from_millis(10)),
    );
    report.add(
        "fanout",
        "single watcher NLN p50 / p99",
        format!("{} / {}", ms(all.pct(0.5)), ms(all.pct(0.99))),
        "",
        None,
    );
    Ok(())
}

// ---------------------------------------------------------------- switchboards

/// A switchboard with a sender (A) and a receiver (B), set up the way real
/// clients do: XFR SB, USR, CAL, RNG, ANS, IRO, JOI.
struct Pair {
    a_sb: Conn,
    b_sb: Conn,
    _ns: (Conn, Conn),
}

async fn make_pairs(
    target: &Target,
    prefix: &str,
    count: usize,
    challenges: bool,
) -> anyhow::Result<Vec<Pair>> {
    let users = create_users(target, prefix, count * 2, false).await?;
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..count {
        let (a, b) = (users[2 * i].clone(), users[2 * i + 1].clone());
        let sem = sem.clone();
        let ns = target.ns;
        set.spawn(async move {
            let _p = sem.acquire_owned().await?;
            make_pair(ns, &a, &b, challenges).await
        });
    }
    let mut pairs = Vec::with_capacity(count);
    while let Some(r) = set.join_next().await {
        pairs.push(r??);
    }
    println!(
        "   {count} switchboards set up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(pairs)
}

async fn make_pair(ns: SocketAddr, a: &str, b: &str, challenges: bool) -> anyhow::Result<Pair> {
    let mut a_ns = sign_in_md5(ns, a).await?;
    go_online(&mut a_ns, 7, challenges).await?;
    let mut b_ns = sign_in_md5(ns, b).await?;
    go_online(&mut b_ns, 7, challenges).await?;
    let t = a_ns.next();
    a_ns.send(&format!("XFR {t} SB")).await?;
    let xfr = a_ns.expect("XFR").await?;
    let sb: SocketAddr = xfr
        .arg(2)
        .ok_or_else(|| anyhow!("XFR without address"))?
        .parse()?;
    let cookie = xfr
        .arg(4)
        .ok_or_else(|| anyhow!("XFR without cookie"))?
        .to_string();
    let mut a_sb = Conn::connect(sb).await?;
    a_sb.send(&format!("USR 1 {a} {cookie}")).await?;
    a_sb.expect("USR").await?;
    a_sb.send(&format!("CAL 2 {b}")).await?;
    a_sb.expect("CAL").await?;
    let rng = b_ns.expect("RNG").await?;
    let (session, cookie) = (
        rng.arg(0).unwrap_or("").to_string(),
        rng.arg(3).unwrap_or("").to_string(),
    );
    let mut b_sb = Conn::connect(sb).await?;
    b_sb.send(&format!("ANS 1 {b} {cookie} {session}")).await?;
    b_sb.expect("ANS").await?;
    a_sb.expect("JOI").await?;
    a_sb.trid = 2;
    Ok(Pair {
        a_sb,
        b_sb,
        _ns: (a_ns, b_ns),
    })
}

/// The text message sent in the switchboard runs: a real text/plain MSG
/// whose body starts with the send time.
fn message(size: usize, sent_ns: u64) -> Vec<u8> {
    let mut m = format!(
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Arial; EF=; CO=0; CS=0; PF=22\r\n\r\nt={sent_ns};"
    )
    .into_bytes();
    while m.len() < size {
        m.push(b'x');
    }
    m
}

fn sent_at(payload: &[u8]) -> Option<u64> {
    let start = payload.windows(6).position(|w| w == b"\r\n\r\nt=")? + 6;
    let end = payload[start..].iter().position(|&b| b == b';')? + start;
    std::str::from_utf8(&payload[start..end]).ok()?.parse().ok()
}

/// Reads relayed `MSG`s off a receiver's connection and records their
/// latency (send → here) while `record` says so. Returns on EOF or `stop`.
async fn receive(
    mut rd: OwnedReadHalf,
    record_from: u64,
    stop: Arc<AtomicBool>,
    credit: Option<Arc<tokio::sync::Semaphore>>,
) -> (Samples, u64) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut samples = Samples::default();
    let mut count = 0u64;
    loop {
        // Frame: a line; MSG lines carry a payload whose length is the last token.
        while let Some(lf) = buf.iter().position(|&b| b == b'\n') {
            let line = &buf[..lf];
            if line.starts_with(b"MSG ") {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let len: usize = line
                    .rsplit(|&b| b == b' ')
                    .next()
                    .and_then(|t| std::str::from_utf8(t).ok())
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                if buf.len() < lf + 1 + len {
                    break;
                }
                let payload = &buf[lf + 1..lf + 1 + len];
                if let Some(sent) = sent_at(payload) {
                    let now = now_ns();
                    if sent >= record_from && !stop.load(Ordering::Relaxed) {
                        samples.0.push(now.saturating_sub(sent));
                        count += 1;
                    }
                }
                if let Some(c) = &credit {
                    c.add_permits(1);
                }
                buf.advance(lf + 1 + len);
            } else {
                buf.advance(lf + 1);
            }
        }
        if stop.load(Ordering::Relaxed) {
            return (samples, count);
        }
        match tokio::time::timeout(Duration::from_millis(200), rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (samples, count),
            Ok(Ok(_)) | Err(_) => {}
        }
    }
}

/// Drains a sender's replies (ACK/NAK); counts NAKs.
async fn drain_acks(mut rd: OwnedReadHalf, naks: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        while let Some(lf) = buf.iter().position(|&b| b == b'\n') {
            if buf.starts_with(b"NAK ") {
                naks.fetch_add(1, Ordering::Relaxed);
            }
            buf.advance(lf + 1);
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match tokio::time::timeout(Duration::from_millis(200), rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            _ => {}
        }
    }
}

struct SbResult {
    delivered: u64,
    seconds: f64,
    samples: Samples,
    naks: u64,
    /// CPU (in cores) that other processes on the machine used meanwhile.
    others: f64,
}

/// Busy CPU time of the whole machine and of this process (plus a
/// spawned server), in clock ticks: their difference over a run is what
/// other processes took from the benchmark.
fn cpu_ticks(server_pid: Option<u32>) -> (u64, u64) {
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<u64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal. irq and softirq
            // count: without IRQ time accounting the kernel also charges them
            // to the task that was interrupted (e.g. this process's loopback TCP).
            Some(f.iter().take(8).sum::<u64>() - f.get(3)? - f.get(4)?)
        })
        .unwrap_or(0);
    let process = |pid: String| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                // utime and stime are fields 14 and 15 of the line (11 and 12
                // counted from the state field that follows the name).
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    };
    let own = process("self".into()) + server_pid.map(|p| process(p.to_string())).unwrap_or(0);
    (machine, own)
}

/// Cores used by other processes between two [`cpu_ticks`] readings.
fn others_cores(before: (u64, u64), after: (u64, u64), seconds: f64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let machine = after.0.saturating_sub(before.0) as f64;
    let own = after.1.saturating_sub(before.1) as f64;
    ((machine - own) / hz / seconds.max(0.001)).max(0.0)
}

/// How senders pace themselves.
#[derive(Clone, Copy)]
enum Pace {
    /// Keep this many messages in flight per switchboard.
    Window(usize),
    /// This many messages per second in all, released round-robin to the
    /// senders by a pacing thread every 200 µs (tokio timers tick per ms,
    /// which would send in bursts).
    Rate(u64),
}

/// Runs traffic over the pairs for `warmup + seconds`; latency and counts
/// cover the measured part only. `during` runs concurrently after warm-up
/// (the storm); the measurement then lasts until both are done.
async fn run_switchboards<F>(
    server_pid: Option<u32>,
    pairs: Vec<Pair>,
    pace: Pace,
    size: usize,
    seconds: f64,
    during: F,
) -> anyhow::Result<SbResult>
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let naks = Arc::new(AtomicU64::new(0));
    let warmup = Duration::from_secs(1);
    let record_from = now_ns() + warmup.as_nanos() as u64;
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    let mut keep = Vec::new();
    let mut credits = Vec::new();
    for p in pairs {
        let Pair { a_sb, b_sb, _ns } = p;
        let (a_rd, mut a_wr) = a_sb.stream.into_split();
        let (b_rd, b_wr) = b_sb.stream.into_split();
        keep.push((b_wr, _ns));
        let credit = Arc::new(tokio::sync::Semaphore::new(match pace {
            Pace::Window(k) => k,
            Pace::Rate(_) => 0,
        }));
        credits.push(credit.clone());
        let refill = matches!(pace, Pace::Window(_)).then(|| credit.clone());
        receivers.push(tokio::spawn(receive(
            b_rd,
            record_from,
            stop.clone(),
            refill,
        )));
        tokio::spawn(drain_acks(a_rd, naks.clone(), stop.clone()));
        let stop = stop.clone();
        senders.push(tokio::spawn(async move {
            let mut trid = a_sb.trid;
            let mut out = Vec::with_capacity(64 * 1024);
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok(permit)) =
                    tokio::time::timeout(Duration::from_millis(200), credit.acquire()).await
                else {
                    continue;
                };
                permit.forget();
                let mut n = 1;
                while let Ok(p) = credit.try_acquire() {
                    p.forget();
                    n += 1;
                }
                out.clear();
                let body = message(size, now_ns());
                for _ in 0..n {
                    trid += 1;
                    out.extend_from_slice(format!("MSG {trid} A {}\r\n", body.len()).as_bytes());
                    out.extend_from_slice(&body);
                }
                if a_wr.write_all(&out).await.is_err() {
                    break;
                }
            }
            a_wr
        }));
    }
    if let Pace::Rate(rate) = pace {
        let (stop, credits) = (stop.clone(), credits.clone());
        std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || {
                let started = Instant::now();
                let mut released = 0u64;
                let mut next = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                    while released < due {
                        credits[next].add_permits(1);
                        next = (next + 1) % credits.len();
                        released += 1;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            })?;
    }
    tokio::time::sleep(warmup).await;
    let measured_from = Instant::now();
    let cpu_before = cpu_ticks(server_pid);
    let background = tokio::spawn(during);
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    background.await??;
    let measured = measured_from.elapsed().as_secs_f64();
    let others = others_cores(cpu_before, cpu_ticks(server_pid), measured);
    stop.store(true, Ordering::Relaxed);
    let mut samples = Samples::default();
    let mut delivered = 0;
    for r in receivers {
        let (s, c) = r.await?;
        samples.extend(s);
        delivered += c;
    }
    for s in senders {
        let _ = s.await;
    }
    drop(keep);
    Ok(SbResult {
        delivered,
        seconds: measured,
        others,
        samples,
        naks: naks.load(Ordering::Relaxed),
    })
}

async fn scenario_relay(args: &Args, target: &Target, report: &mut Report) -> anyhow::Result<()> {
    let s = args.switchboards;
    println!(
        "== Relay: {s} switchboards, {} messages in flight each, {} s",
        args.inflight, args.seconds
    );
    let pairs = make_pairs(target, "relay", s, args.challenges).await?;
    let mut r = run_switchboards(
        target.server_pid,
        pairs,
        Pace::Window(args.inflight),
        args.size,
        args.seconds as f64,
        async { Ok(()) },
    )
    .await?;
    let rate = r.delivered as f64 / r.seconds;
    let label = format!(
        "relayed msgs/s (S={s}, K={}, {} B)",
        args.inflight, args.size
    );
    report.add(
        "relay",
        &label,
        format!("{rate:.0}"),
        ">= 200000",
        Some(rate >= 200_000.0),
    );
    report.add(
        "relay",
        "round trip send->receiver p50",
        ms(r.samples.pct(0.50)),
        "",
        None,
    );
    report.add(
        "relay",
        "round trip send->receiver p99",
        ms(r.samples.pct(0.99)),
        "",
        None,
    );
    report.add("relay", "NAKs", r.naks.to_string(), "0", Some(r.naks == 0));
    report.add(
        "relay",
        "CPU taken by other processes meanwhile",
        format!("{:.2} cores", r.others),
        "",
        None,
    );
    Ok(())
}

async fn scenario_rate(args: &Args, target: &Target, report: &mut Report) -> anyhow::Result<()> {
    let s = args.rate_switchboards;
    println!(
        "== Fixed rate: {} msgs/s over {s} switchboards, {} s",
        args.rate, args.seconds
    );
    let pairs = make_pairs(target, "rate", s, args.challenges).await?;
    let mut r = run_switchboards(
        target.server_pid,
        pairs,
        Pace::Rate(args.rate),
        args.size,
        args.seconds as f64,
        async { Ok(()) },
    )
    .await?;
    let achieved = r.delivered as f64 / r.seconds;
    report.add(
        "rate",
        &format!("achieved msgs/s (asked {})", args.rate),
        format!("{achieved:.0}"),
        "",
        None,
    );
    report.add("rate", "delivery p50", ms(r.samples.pct(0.50)), "", None);
    let p99 = r.samples.pct(0.99);
    report.add(
        "rate",
        &format!("delivery p99 at {} msgs/s", args.rate),
        ms(p99),
        "< 0.5 ms",
        Some(p99 < Duration::from_micros(500)),
    );
    report.add(
        "rate",
        "delivery p99.9 / max",
        format!("{} / {}", ms(r.samples.pct(0.999)), ms(r.samples.pct(1.0))),
        "",
        None,
    );
    report.add(
        "rate",
        "CPU taken by other processes meanwhile",
        format!("{:.2} cores", r.others),
        "",
        None,
    );
    Ok(())
}

async fn scenario_storm(args: &Args, target: &Target, report: &mut Report) -> anyhow::Result<()> {
    let s = args.rate_switchboards;
    println!(
        "== Storm: {} Passport sign-ins while {s} switchboards carry {} msgs/s",
        args.storm, args.storm_rate
    );
    let stormers = create_users(target, "storm", args.storm, true).await?;
    let pairs = make_pairs(target, "calm", s, args.challenges).await?;
    // Baseline.
    let mut base = run_switchboards(
        target.server_pid,
        pairs,
        Pace::Rate(args.storm_rate),
        args.size,
        3.0,
        async { Ok(()) },
    )
    .await?;
    let pairs = make_pairs(target, "calm2", s, args.challenges).await?;
    let (ns, http) = (target.ns, target.http);
    let storm_stats = Arc::new(parking_lot::Mutex::new((0usize, 0usize, 0f64)));
    let stats = storm_stats.clone();
    let storm = async move {
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for h in stormers {
            set.spawn(async move {
                sign_in_passport(ns, http, &h)
                    .await
                    .map(|mut c| async move {
                        let _ = c.send("OUT").await;
                    })
            });
        }
        let (mut ok, mut failed) = (0, 0);
        while let Some(r) = set.join_next().await {
            match r? {
                Ok(out) => {
                    out.await;
                    ok += 1;
                }
                Err(e) => {
                    if failed < 3 {
                        eprintln!("storm sign-in failed: {e:#}");
                    }
                    failed += 1;
                }
            }
        }
        *stats.lock() = (ok, failed, started.elapsed().as_secs_f64());
        anyhow::Ok(())
    };
    let mut during = run_switchboards(
        target.server_pid,
        pairs,
        Pace::Rate(args.storm_rate),
        args.size,
        0.0,
        storm,
    )
    .await?;
    let (ok, failed, secs) = *storm_stats.lock();
    report.add(
        "storm",
        "switchboard p99 before the storm",
        ms(base.samples.pct(0.99)),
        "",
        None,
    );
    let p99 = during.samples.pct(0.99);
    report.add(
        "storm",
        &format!("switchboard p99 during {} Passport sign-ins", args.storm),
        ms(p99),
        "< 20 ms",
        Some(p99 < Duration::from_millis(20)),
    );
    report.add(
        "storm",
        "switchboard max during the storm",
        ms(during.samples.pct(1.0)),
        "",
        None,
    );
    report.add(
        "storm",
        "storm: signed in / failed / seconds",
        format!("{ok} / {failed} / {secs:.1}"),
        "",
        Some(failed == 0),
    );
    report.add(
        "storm",
        "CPU taken by other processes meanwhile",
        format!("{:.2} cores", during.others),
        "",
        None,
    );
    Ok(())
}

// ---------------------------------------------------------------- memory

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("bad VmRSS"))?
        .parse()?)
}

fn raise_fd_limit(want: u64) {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = want.min(lim.rlim_max);
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

async fn scenario_memory(args: &Args, target: &Target, report: &mut Report) -> anyhow::Result<()> {
    let Some(pid) = target.server_pid else {
        bail!(
            "the memory scenario needs the server in its own process (it is started with --spawn auto when not given)"
        );
    };
    let n = args.connections;
    println!("== Memory: {n} idle signed-in MSNP7 connections, server pid {pid}");
    let users = create_users(target, "idle", n, false).await?;
    // Warm the server up with a few sign-ins so one-off allocations are not counted.
    let mut warm = Vec::new();
    for h in users.iter().take(50) {
        let mut c = sign_in_md5(target.ns, h).await?;
        go_online(&mut c, 7, args.challenges).await?;
        warm.push(c);
    }
    drop(warm);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cold = rss_kib(pid)?;
    // The database's page cache (SQLite: cache_size per pooled connection)
    // fills as the accounts are first read. Warm it with one `USR MD5 I`
    // per account (an account lookup, no session), so what is measured next
    // is what a signed-in connection holds, not a cache that stops growing.
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut set = tokio::task::JoinSet::new();
    for h in users.clone() {
        let (ns, sem) = (target.ns, sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await?;
            let mut c = Conn::connect(ns).await?;
            c.send("VER 1 MSNP7 CVR0").await?;
            c.expect("VER").await?;
            c.send(&format!("USR 2 MD5 I {h}")).await?;
            c.expect("USR").await?;
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid)?;
    let started = Instant::now();
    let conns = connect_idle(target, users, args.challenges).await?;
    println!(
        "   {n} connections signed in in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid)?;
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    let mib = |k: u64| k as f64 / 1024.0;
    report.add(
        "memory",
        "server RSS: idle / +lookups of all accounts / +signed in (MiB)",
        format!("{:.1} / {:.1} / {:.1}", mib(cold), mib(before), mib(after)),
        "",
        None,
    );
    report.add(
        "memory",
        "RSS for the account lookups (database cache), per account",
        format!(
            "{:.0} B",
            before.saturating_sub(cold) as f64 * 1024.0 / n as f64
        ),
        "",
        None,
    );
    report.add(
        "memory",
        &format!("RSS per idle signed-in connection (n={n})"),
        format!("{per:.0} B"),
        "<= 4096 B",
        Some(per <= 4096.0),
    );
    report.add(
        "memory",
        "the same without warming the cache first",
        format!(
            "{:.0} B",
            after.saturating_sub(cold) as f64 * 1024.0 / n as f64
        ),
        "",
        None,
    );
    drop(conns);
    Ok(())
}

/// Receivers that stop reading while their senders send 1.5 KB messages as
/// fast as the server takes them: how much memory do they cost the server?
async fn scenario_stuck(args: &Args, target: &Target, report: &mut Report) -> anyhow::Result<()> {
    let Some(pid) = target.server_pid else {
        bail!("the stuck scenario needs the server in its own process (--spawn)");
    };
    let n = args.stuck_readers;
    println!(
        "== Stuck readers: {n} switchboard receivers stop reading; their senders send for {} s, server pid {pid}",
        args.seconds
    );
    let mut pairs = make_pairs(target, "stuck", n, args.challenges).await?;
    let m = message(1500, 0);
    // Warm-up with readers that read, so one-off allocations are not counted.
    for p in &mut pairs {
        for _ in 0..100 {
            let t = p.a_sb.next();
            p.a_sb.send_payload(&format!("MSG {t} A"), &m).await?;
            p.b_sb.expect("MSG").await?;
            p.a_sb.expect("ACK").await?;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(pid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, naks) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut keep = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for p in pairs {
        let Pair { a_sb, b_sb, _ns } = p;
        // The receiver never reads again; its connection stays open.
        keep.push((b_sb, _ns));
        let (rd, mut wr) = a_sb.stream.into_split();
        tasks.spawn(drain_acks(rd, naks.clone(), stop.clone()));
        let (stop, sent, m) = (stop.clone(), sent.clone(), m.clone());
        let mut trid = a_sb.trid;
        tasks.spawn(async move {
            let mut batch = Vec::with_capacity(64 * 1600);
            while !stop.load(Ordering::Relaxed) {
                batch.clear();
                for _ in 0..64 {
                    trid += 1;
                    batch.extend_from_slice(format!("MSG {trid} A {}\r\n", m.len()).as_bytes());
                    batch.extend_from_slice(&m);
                }
                // A paused sender (the server stopped reading it) waits here.
                match tokio::time::timeout(Duration::from_millis(200), wr.write_all(&batch)).await {
                    Ok(Ok(())) => {
                        sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                    Ok(Err(_)) => return,
                    Err(_) => {}
                }
            }
        });
    }
    let started = Instant::now();
    let mut peak = idle;
    while started.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_kib(pid)?);
    }
    let end = rss_kib(pid)?;
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let mib = |k: u64| k as f64 / 1024.0;
    report.add(
        "stuck",
        &format!("server RSS: idle / peak / after {} s (MiB)", args.seconds),
        format!("{:.1} / {:.1} / {:.1}", mib(idle), mib(peak), mib(end)),
        "",
        None,
    );
    let growth = peak.saturating_sub(idle);
    report.add(
        "stuck",
        &format!("RSS growth with {n} stuck readers"),
        format!("{:.1} MiB", mib(growth)),
        "<= 8 MiB",
        Some(growth <= 8 * 1024),
    );
    report.add(
        "stuck",
        "sent by the senders / NAKs received",
        format!(
            "{:.1} MiB / {}",
            sent.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
            naks.load(Ordering::Relaxed)
        ),
        "",
        None,
    );
    drop(keep);
    Ok(())
}

async fn connect_idle(
    target: &Target,
    users: Vec<String>,
    challenges: bool,
) -> anyhow::Result<Vec<Conn>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut set = tokio::task::JoinSet::new();
    for h in users {
        let (ns, sem) = (target.ns, sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await?;
            let mut c = sign_in_md5(ns, &h).await?;
            go_online(&mut c, 7, challenges).await?;
            anyhow::Ok(c)
        });
    }
    let mut conns = Vec::new();
    while let Some(r) = set.join_next().await {
        conns.push(r??);
    }
    Ok(conns)
}

async fn scenario_heap(args: &Args, target: &Target, report: &mut Report) -> anyhow::Result<()> {
    if target.server_pid.is_some() || args.ns.is_some() {
        bail!(
            "the heap scenario counts the in-process server's allocations; run it without --spawn/--ns"
        );
    }
    let n = args.connections;
    println!("== Heap: {n} idle signed-in MSNP7 connections, allocations on the server's threads");
    let users = create_users(target, "heap", n + 100, false).await?;
    drop(connect_idle(target, users[n..].to_vec(), args.challenges).await?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    heap::ENABLED.store(true, Ordering::Relaxed);
    let (before, classes_before) = heap::snapshot();
    let conns = connect_idle(target, users[..n].to_vec(), args.challenges).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, classes_after) = heap::snapshot();
    heap::ENABLED.store(false, Ordering::Relaxed);
    let _ = (before, after); // totals mix in frees of other threads' blocks; the size classes do not
    let per: f64 = classes_after
        .iter()
        .zip(&classes_before)
        .enumerate()
        .map(|(class, (a, b))| ((a - b).max(0) * (class as i64 * 16 + 8)) as f64)
        .sum::<f64>()
        / n as f64;
    report.add(
        "heap",
        &format!("server heap per idle connection (n={n})"),
        format!("{per:.0} B"),
        "",
        None,
    );
    let mut by_class: Vec<(usize, i64)> = classes_after
        .iter()
        .zip(&classes_before)
        .map(|(a, b)| a - b)
        .enumerate()
        .collect();
    by_class.sort_by_key(|&(class, count)| -(count * (class as i64 * 16 + 8)));
    for (class, count) in by_class.into_iter().take(12).filter(|&(_, c)| c > 0) {
        let per_conn = count as f64 / n as f64;
        let bytes = format!("{}-{} B", class * 16, class * 16 + 15);
        report.add(
            "heap",
            &format!("  blocks of {bytes}"),
            format!("{per_conn:.2} per connection"),
            "",
            None,
        );
    }
    drop(conns);
    Ok(())
}

// ---------------------------------------------------------------- main

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    base();
    raise_fd_limit(1 << 20);
    let dir = tempfile_dir()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let mut report = Report::default();
    let scenarios: Vec<Scenario> = match args.scenario {
        Scenario::All => vec![
            Scenario::SigninMd5,
            Scenario::SigninPassport,
            Scenario::Fanout,
            Scenario::Relay,
            Scenario::Rate,
            Scenario::Storm,
            Scenario::Memory,
        ],
        s => vec![s],
    };
    let external = args.ns.is_some();
    let mut shared: Option<Target> = None;
    for scenario in scenarios {
        // The memory scenario needs a separate server process; the others
        // share one server (a fresh one per run of this program).
        let own_process = matches!(scenario, Scenario::Memory | Scenario::Stuck);
        let target = if own_process && !external && args.spawn.is_none() {
            let sub = dir.join(format!("{scenario:?}").to_lowercase());
            std::fs::create_dir_all(&sub)?;
            Some(start_target(&args, &sub, Some("auto"))?)
        } else {
            None
        };
        let t = match &target {
            Some(t) => t,
            None => {
                if shared.is_none() {
                    shared = Some(start_target(&args, &dir, args.spawn.as_deref())?);
                    if let Some(t) = &shared {
                        println!("server under test: {}", t.what);
                    }
                }
                shared.as_ref().ok_or_else(|| anyhow!("no server"))?
            }
        };
        if target.is_some() {
            println!("server under test: {}", t.what);
        }
        let (cpu_before, started) = (cpu_ticks(t.server_pid), Instant::now());
        let result = client_rt.block_on(async {
            match scenario {
                Scenario::SigninMd5 => scenario_signin_md5(&args, t, &mut report).await,
                Scenario::SigninPassport => scenario_signin_passport(&args, t, &mut report).await,
                Scenario::Fanout => scenario_fanout(&args, t, &mut report).await,
                Scenario::Relay => scenario_relay(&args, t, &mut report).await,
                Scenario::Rate => scenario_rate(&args, t, &mut report).await,
                Scenario::Memory => scenario_memory(&args, t, &mut report).await,
                Scenario::Storm => scenario_storm(&args, t, &mut report).await,
                Scenario::Heap => scenario_heap(&args, t, &mut report).await,
                Scenario::SigninFlood => scenario_signin_flood(t, &mut report).await,
                Scenario::Stuck => scenario_stuck(&args, t, &mut report).await,
                Scenario::All => Ok(()),
            }
        });
        if matches!(
            scenario,
            Scenario::SigninMd5 | Scenario::SigninPassport | Scenario::Fanout
        ) {
            let others = others_cores(
                cpu_before,
                cpu_ticks(t.server_pid),
                started.elapsed().as_secs_f64(),
            );
            let name = format!("{scenario:?}").to_lowercase();
            report.add(
                &name,
                "CPU taken by other processes (whole scenario)",
                format!("{others:.2} cores"),
                "",
                None,
            );
        }
        if let Err(e) = result {
            eprintln!("scenario {scenario:?} failed: {e:#}");
            report.add(
                &format!("{scenario:?}").to_lowercase(),
                "FAILED",
                format!("{e:#}"),
                "",
                Some(false),
            );
        }
    }
    println!(
        "\nmsngate-bench on {} cores; clients on {} threads; {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        args.client_threads,
        shared.as_ref().map(|t| t.what.as_str()).unwrap_or("")
    );
    report.print();
    drop(shared);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("msngate-bench-{}-{}", std::process::id(), now_ns()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
