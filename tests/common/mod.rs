//! Test harness: the real server on loopback ports, and a minimal MSN
//! client that speaks the wire protocol over real TCP.
#![allow(dead_code)]

use bytes::BytesMut;
use msngate::config::Config;
use msnp::codec::{Command, Decoder};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for something that must happen (a reply, a close,
/// a state change). Generous: CI runs on slow, loaded machines, and waiting
/// longer only delays a failure, it never hides one.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `check` until it holds; panics after [`TIMEOUT`] naming `what`.
/// For effects the test cannot wait for on the wire (gauges, a bridge's
/// state), instead of sleeping a fixed time and hoping.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    eventually_async(what, async || check()).await
}

/// [`eventually`] with an async check.
pub async fn eventually_async(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A server with its own SQLite database in a temporary folder.
pub struct TestServer {
    pub running: msngate::app::Running,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub fn ns(&self) -> SocketAddr {
        self.running.notification_addr
    }
    pub fn http(&self) -> SocketAddr {
        self.running.http_addr
    }
    pub fn hub(&self) -> &msngate::core::hub::Hub {
        &self.running.hub
    }
    pub async fn add_user(&self, handle: &str, password: &str, nickname: &str) {
        self.hub()
            .accounts
            .create(handle, password, Some(nickname))
            .await
            .expect("create account");
    }
}

/// The database for one test server: a SQLite file in `dir`, or, when
/// `MSNGATE_TEST_BACKEND=postgres`, a fresh database created on the
/// PostgreSQL server named by `MSNGATE_TEST_POSTGRES_URL` (so tests never
/// share state, even running in parallel).
pub fn database_url(dir: &std::path::Path) -> String {
    if std::env::var("MSNGATE_TEST_BACKEND").as_deref() != Ok("postgres") {
        return format!("sqlite://{}/msngate.db", dir.display());
    }
    let admin = std::env::var("MSNGATE_TEST_POSTGRES_URL")
        .expect("MSNGATE_TEST_BACKEND=postgres needs MSNGATE_TEST_POSTGRES_URL");
    let name = format!("msngate_t_{}", msngate::core::tickets::random_hex());
    let admin_c = admin.clone();
    let name_c = name.clone();
    // Its own runtime on its own thread: callers may be sync or async.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin_c)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name_c}")))
                .execute(&pool)
                .await
                .expect("create database");
            pool.close().await;
        })
    })
    .join()
    .expect("create database thread");
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("MSNGATE_TEST_POSTGRES_URL must end in /database"),
    }
}

/// Configuration for tests: loopback, any free ports, cheap password hashing.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    c.msn.listen = any;
    c.msn.switchboard_listen = any;
    c.http.listen = any;
    c.msn.public_host = "127.0.0.1".into();
    c.msn.challenges = false;
    c.database.url = database_url(dir);
    c.auth.argon2_memory_kib = 1024;
    c.auth.argon2_iterations = 1;
    c
}

pub async fn start_with(edit: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    edit(&mut config);
    let running = msngate::app::start(config).await.expect("server starts");
    // http.public_url must name the real port for the nexus.
    TestServer { running, dir }
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
    pub trid: u32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::server_to_client(),
            trid: 0,
        }
    }

    /// Connects with a receive buffer of about `bytes`, set before the
    /// handshake so the window the server sees stays small: a client that
    /// stops reading then fills up after a few kilobytes.
    pub async fn connect_with_small_window(addr: SocketAddr, bytes: u32) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        let stream = socket.connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::server_to_client(),
            trid: 0,
        }
    }

    /// The socket itself, for tests that read and write it on their own
    /// (nothing may be buffered by the client yet).
    pub fn into_stream(self) -> TcpStream {
        assert!(
            self.buf.is_empty(),
            "bytes already buffered: {:?}",
            self.buf
        );
        self.stream
    }

    /// Reads the server's stream as `dialect` frames it (MSNP13+ have more
    /// payload commands), from the next command on.
    pub fn use_dialect(&mut self, dialect: u8) {
        let dialect = msnp::dialect::Dialect::new(dialect).expect("known dialect");
        self.decoder = Decoder::server_to_client_for(dialect);
    }

    /// The next transaction id.
    pub fn next(&mut self) -> u32 {
        self.trid += 1;
        self.trid
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_payload(&mut self, head: &str, payload: &[u8]) {
        let mut out = format!("{head} {}\r\n", payload.len()).into_bytes();
        out.extend_from_slice(payload);
        self.send_raw(&out).await;
    }

    /// The next command, or `None` on EOF. Panics after [`TIMEOUT`].
    pub async fn recv_opt(&mut self) -> Option<Command> {
        self.recv_within(TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("timed out waiting for a command"))
    }

    /// `Some(Some(cmd))`, `Some(None)` on EOF, `None` on timeout.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Option<Command>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(cmd) = self
                .decoder
                .decode(&mut self.buf)
                .expect("server sent a well-framed stream")
            {
                return Some(Some(cmd));
            }
            let mut chunk = vec![0u8; 16384];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(None),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub async fn recv(&mut self) -> Command {
        self.recv_opt()
            .await
            .expect("connection closed while a command was expected")
    }

    /// Receives one command and checks its rendered line (payload excluded).
    pub async fn expect(&mut self, line: &str) -> Command {
        let cmd = self.recv().await;
        assert_eq!(render(&cmd), line, "unexpected command");
        cmd
    }

    /// Receives commands until one named `name` arrives; returns it.
    pub async fn recv_named(&mut self, name: &str) -> Command {
        loop {
            let cmd = self.recv().await;
            if cmd.name == name {
                return cmd;
            }
        }
    }

    /// Asserts the server closes the connection (after any lines it sends first).
    pub async fn expect_closed(&mut self) -> Vec<Command> {
        let mut seen = Vec::new();
        loop {
            match self.recv_within(TIMEOUT).await {
                Some(None) => return seen,
                Some(Some(cmd)) => seen.push(cmd),
                None => panic!(
                    "connection not closed; got {:?}",
                    seen.iter().map(render).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Asserts nothing arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(got) = self.recv_within(wait).await {
            panic!("expected silence, got {:?}", got.as_ref().map(render));
        }
    }
}

/// A command's line without its payload, as on the wire.
pub fn render(cmd: &Command) -> String {
    let mut s = cmd.name.clone();
    for a in &cmd.args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

pub fn dialect_name(n: u8) -> String {
    format!("MSNP{n}")
}

/// Full MD5 sign-in (MSNP2–7) on the notification server. Returns the
/// client after `USR OK` and the profile message.
pub async fn sign_in_md5(ns: SocketAddr, dialect: u8, handle: &str, password: &str) -> Client {
    sign_in_md5_on(Client::connect(ns).await, dialect, handle, password).await
}

/// [`sign_in_md5`] on a connection the caller opened.
pub async fn sign_in_md5_on(mut c: Client, dialect: u8, handle: &str, password: &str) -> Client {
    let t = c.next();
    c.send(&format!("VER {t} MSNP{dialect} CVR0")).await;
    c.expect(&format!("VER {t} MSNP{dialect}")).await;
    let t = c.next();
    c.send(&format!("INF {t}")).await;
    c.expect(&format!("INF {t} MD5")).await;
    let t = c.next();
    c.send(&format!("USR {t} MD5 I {handle}")).await;
    let challenge = c.recv().await;
    assert_eq!(
        &challenge.args[..3],
        [t.to_string(), "MD5".into(), "S".into()]
    );
    let salt = challenge.args[3].clone();
    let t = c.next();
    c.send(&format!(
        "USR {t} MD5 S {}",
        msnp::auth::md5_login_hash(&salt, password)
    ))
    .await;
    let ok = c.recv().await;
    assert_eq!(
        ok.name,
        "USR",
        "sign-in of {handle} refused: {}",
        render(&ok)
    );
    assert_eq!(ok.args[1], "OK");
    let profile = c.recv().await;
    assert_eq!(
        render(&profile).split(' ').take(3).collect::<Vec<_>>(),
        ["MSG", "Hotmail", "Hotmail"]
    );
    c
}

/// Passport 1.4 login over HTTP: returns the ticket (`from-PP`) or the status line.
pub async fn passport_login(
    http: SocketAddr,
    handle: &str,
    password: &str,
) -> Result<String, String> {
    let enc = |s: &str| msnp::urlenc::encode_passport_field(s);
    let request = format!(
        "GET /login2.srf HTTP/1.1\r\nAuthorization: Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in={},pwd={},lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1062764229,kpp=1,kv=5,ver=2.1.0173.1,tpf=43f8a4c8ed940c04e3740be46c4d1619\r\nUser-Agent: MSMSGS\r\nHost: {http}\r\nConnection: close\r\nCache-Control: no-cache\r\n\r\n",
        enc(handle),
        enc(password)
    );
    let mut stream = TcpStream::connect(http).await.expect("connect http");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("http timeout")
        .expect("read");
    let text = String::from_utf8_lossy(&response).to_string();
    match text.find("from-PP='") {
        Some(start) => {
            let rest = &text[start + 9..];
            Ok(rest[..rest.find('\'').expect("closing quote")].to_string())
        }
        None => Err(text.lines().next().unwrap_or("").to_string()),
    }
}

/// Full Passport sign-in (MSNP8–12).
pub async fn sign_in_twn(server: &TestServer, dialect: u8, handle: &str, password: &str) -> Client {
    let mut c = Client::connect(server.ns()).await;
    let t = c.next();
    c.send(&format!("VER {t} MSNP{dialect} CVR0")).await;
    c.expect(&format!("VER {t} MSNP{dialect}")).await;
    let t = c.next();
    c.send(&format!(
        "CVR {t} 0x0409 winnt 5.1 i386 MSNMSGR 7.0.0813 msmsgs {handle}"
    ))
    .await;
    c.expect(&format!(
        "CVR {t} 7.0.0813 7.0.0813 7.0.0813 {}/download {}/info",
        server.running.config.http.public_url, server.running.config.http.public_url
    ))
    .await;
    let t = c.next();
    c.send(&format!("USR {t} TWN I {handle}")).await;
    let challenge = c.recv().await;
    assert_eq!(
        &challenge.args[..3],
        [t.to_string(), "TWN".into(), "S".into()]
    );
    let ticket = passport_login(server.http(), handle, password)
        .await
        .expect("passport login");
    let t = c.next();
    c.send(&format!("USR {t} TWN S {ticket}")).await;
    let ok = c.recv().await;
    assert_eq!(ok.name, "USR", "sign-in refused: {}", render(&ok));
    assert_eq!(ok.args[1], "OK");
    if dialect >= 11 {
        c.expect("SBS 0 null").await;
    }
    let profile = c.recv().await;
    assert_eq!(profile.name, "MSG");
    c
}

/// Signs in with the method of the dialect.
pub async fn sign_in(server: &TestServer, dialect: u8, handle: &str, password: &str) -> Client {
    match dialect {
        ..=7 => sign_in_md5(server.ns(), dialect, handle, password).await,
        8..=12 => sign_in_twn(server, dialect, handle, password).await,
        _ => sign_in_wlm(server, dialect, handle, password).await,
    }
}

/// The token service over plain HTTP (the test server has no TLS): the
/// `t=…&p=…` ticket and base64 proof key of `address`.
pub async fn rst_tokens(
    http: SocketAddr,
    handle: &str,
    password: &str,
    address: &str,
    policy: &str,
) -> (String, String) {
    let body = format!(
        "<Envelope><Header><Security><UsernameToken><Username>{handle}</Username><Password>{}</Password></UsernameToken></Security></Header><Body><RequestMultipleSecurityTokens><RequestSecurityToken Id=\"RST0\"><AppliesTo><EndpointReference><Address>http://Passport.NET/tb</Address></EndpointReference></AppliesTo></RequestSecurityToken><RequestSecurityToken Id=\"RST1\"><AppliesTo><EndpointReference><Address>{address}</Address></EndpointReference></AppliesTo><PolicyReference URI=\"{}\"></PolicyReference></RequestSecurityToken></RequestMultipleSecurityTokens></Body></Envelope>",
        msnp::xml::escape(password),
        msnp::xml::escape(policy)
    );
    let request = format!(
        "POST /RST2.srf HTTP/1.1\r\nHost: login.live.com\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(http).await.expect("connect http");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("http timeout")
        .expect("read");
    let text = String::from_utf8_lossy(&response).to_string();
    let at = text
        .find(&format!("<wsa:Address>{address}</wsa:Address>"))
        .unwrap_or_else(|| panic!("no {address} token: {text}"));
    let field = |element: &str| {
        let rest = &text[at..];
        let open = rest.find(&format!("<{element}")).expect("element");
        let start = open + rest[open..].find('>').expect(">") + 1;
        let end = start + rest[start..].find(&format!("</{element}>")).expect("end");
        rest[start..end].replace("&amp;", "&")
    };
    (field("wsse:BinarySecurityToken"), field("wst:BinarySecret"))
}

/// Full WLM sign-in (MSNP13–14 `USR TWN`, MSNP15+ `USR SSO` with the MBI
/// response and, from MSNP16, a machine GUID), through the profile message.
pub async fn sign_in_wlm(server: &TestServer, dialect: u8, handle: &str, password: &str) -> Client {
    let mut c = Client::connect(server.ns()).await;
    let t = c.next();
    c.send(&format!("VER {t} MSNP{dialect} CVR0")).await;
    c.expect(&format!("VER {t} MSNP{dialect}")).await;
    c.use_dialect(dialect);
    let t = c.next();
    c.send(&format!(
        "CVR {t} 0x0409 winnt 5.1 i386 MSNMSGR 14.0.8064.0206 msmsgs {handle}"
    ))
    .await;
    c.recv_named("CVR").await;
    let t = c.next();
    let sso = dialect >= 15;
    c.send(&format!(
        "USR {t} {} I {handle}",
        if sso { "SSO" } else { "TWN" }
    ))
    .await;
    assert_eq!(c.recv().await.name, "GCF");
    let challenge = c.recv().await;
    assert_eq!(challenge.args[2], "S", "challenge: {}", render(&challenge));
    let t = c.next();
    if sso {
        let nonce = challenge.args[4].clone();
        let (ticket, secret) = rst_tokens(
            server.http(),
            handle,
            password,
            "messengerclear.live.com",
            "MBI_KEY_OLD",
        )
        .await;
        let mbi = msnp::sso::mbi_response(&secret, &nonce, [7; 8]).expect("MBI response");
        let guid = if dialect >= 16 {
            " {5d2a1c3e-0b4f-4e6a-9c8d-7e6f5a4b3c2d}"
        } else {
            ""
        };
        c.send(&format!("USR {t} SSO S {ticket} {mbi}{guid}")).await;
    } else {
        let policy = format!("?{}", challenge.args[3]);
        let (ticket, _) = rst_tokens(
            server.http(),
            handle,
            password,
            "messenger.msn.com",
            &policy,
        )
        .await;
        c.send(&format!("USR {t} TWN S {ticket}")).await;
    }
    let ok = c.recv().await;
    assert_eq!(render(&ok), format!("USR {t} OK {handle} 1 0"));
    c.expect("SBS 0 null").await;
    assert_eq!(c.recv().await.name, "MSG");
    if dialect >= 16 {
        assert_eq!(c.recv().await.name, "UBX");
    }
    c
}

/// The real `msngate` binary running as a child process on free loopback ports.
pub struct BinaryServer {
    pub child: std::process::Child,
    pub config_path: std::path::PathBuf,
    pub ns: SocketAddr,
    pub http: SocketAddr,
}

/// A loopback address that nothing listens on, for a server started later.
///
/// Picked in 10000–19999, below the kernel's ephemeral range (32768+ on
/// Linux) and the test services' 20000–28999: a port taken from `bind(0)`
/// and released could be handed to another test's `bind(0)` before the
/// server binds it, which made `serve` exit with "address in use".
pub fn free_port() -> SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Each test binary walks the range from its own start.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(7919) % 10_000;
    for _ in 0..10_000 {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 10_000 + (seed.wrapping_add(step.wrapping_mul(13))) % 10_000;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port in 10000-19999 on 127.0.0.1");
}

/// Writes a config for the binary into `dir` (SQLite there unless
/// `MSNGATE_TEST_DATABASE_URL` is set) and returns its path and the NS/HTTP addresses.
pub fn binary_config(dir: &std::path::Path) -> (std::path::PathBuf, SocketAddr, SocketAddr) {
    let (ns, sb, http) = (free_port(), free_port(), free_port());
    let db = database_url(dir);
    let yaml = format!(
        "msn:\n  listen: {ns}\n  switchboard_listen: {sb}\n  public_host: 127.0.0.1\n  challenges: false\nhttp:\n  listen: {http}\n  public_url: http://{http}\ndatabase:\n  url: {db}\nauth:\n  argon2_memory_kib: 1024\n  argon2_iterations: 1\nlog:\n  level: info\n"
    );
    let path = dir.join("msngate.yaml");
    std::fs::write(&path, yaml).expect("write config");
    (path, ns, http)
}

/// Runs `msngate --config <path> <args…>` to completion; panics on failure.
pub fn run_cli(config_path: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_msngate"))
        .arg("--config")
        .arg(config_path)
        .args(args)
        .output()
        .expect("run msngate");
    assert!(
        out.status.success(),
        "msngate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

impl BinaryServer {
    /// Starts `msngate serve` and waits until the notification port accepts.
    pub async fn spawn(
        config_path: &std::path::Path,
        ns: SocketAddr,
        http: SocketAddr,
    ) -> BinaryServer {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_msngate"))
            .arg("--config")
            .arg(config_path)
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn msngate");
        let deadline = std::time::Instant::now() + TIMEOUT;
        while TcpStream::connect(ns).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "msngate did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        BinaryServer {
            child,
            config_path: config_path.to_path_buf(),
            ns,
            http,
        }
    }

    /// Sends SIGTERM and waits for the exit status (bounded).
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: kill with a valid pid of our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "msngate did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP GET; returns (status line, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect http");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("http timeout")
        .expect("read");
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

impl Client {
    /// Reads exactly `n` raw bytes off the connection (bytes already
    /// buffered first), for checks of the exact wire form.
    pub async fn recv_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while self.buf.len() < n {
            let mut chunk = vec![0u8; 16384];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => panic!("timed out waiting for {n} bytes (have {})", self.buf.len()),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    panic!("connection closed after {} of {n} bytes", self.buf.len())
                }
                Ok(Ok(got)) => self.buf.extend_from_slice(&chunk[..got]),
            }
        }
        self.buf.split_to(n).to_vec()
    }
}

impl Client {
    /// [`Client::send_raw`] that reports a write error instead of panicking:
    /// for probes the server may answer by closing the connection.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Half-closes the connection: the server reads end-of-file, while the
    /// client can still read what the server sends (or see it close).
    pub async fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}
