//! Operations: /metrics, /health and /ready after real traffic, and a
//! graceful SIGTERM that loses nothing acknowledged.

mod common;
use common::*;

const PW: &str = "s3cret!";

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in:\n{body}"))
}

#[tokio::test]
async fn metrics_health_and_ready_reflect_real_traffic() {
    let server = start().await;
    server.add_user("ops-alice@example.com", PW, "Alice").await;
    server.add_user("ops-bob@example.com", PW, "Bob").await;

    let (status, body) = http_get(server.http(), "/health").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, "ok\n");
    let (status, body) = http_get(server.http(), "/ready").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");

    let _a = sign_in(&server, 7, "ops-alice@example.com", PW).await;
    let _b = sign_in(&server, 11, "ops-bob@example.com", PW).await;
    // One refusal with wrong credentials.
    let mut bad = Client::connect(server.ns()).await;
    bad.send("VER 1 MSNP7").await;
    bad.recv().await;
    bad.send("USR 2 MD5 I ops-alice@example.com").await;
    bad.recv().await;
    bad.send("USR 3 MD5 S 00000000000000000000000000000000")
        .await;
    bad.expect("911 3").await;

    let (status, body) = http_get(server.http(), "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(metric(&body, "msngate_signins_total{method=\"md5\"}"), 1.0);
    assert_eq!(
        metric(&body, "msngate_signins_total{method=\"passport\"}"),
        1.0
    );
    assert_eq!(
        metric(&body, "msngate_passport_logins_total{result=\"success\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &body,
            "msngate_signin_refusals_total{reason=\"credentials\"}"
        ),
        1.0
    );
    assert_eq!(metric(&body, "msngate_sessions{dialect=\"MSNP7\"}"), 1.0);
    assert_eq!(metric(&body, "msngate_sessions{dialect=\"MSNP11\"}"), 1.0);
    assert_eq!(
        metric(&body, "msngate_connections{role=\"notification\"}"),
        3.0
    );
    assert_eq!(metric(&body, "msngate_online_users"), 2.0);
    for name in [
        "msngate_messages_relayed_total",
        "msngate_bridge_queue_depth",
        "msngate_bridge_delivery_failures_total",
        "msngate_bridge_reconnects_total",
    ] {
        metric(&body, name);
    }

    drop(bad);
    drop(_a);
    // The server notices the closed connections on its own time.
    let mut body = String::new();
    eventually_async("the gauges to count the closed connections", async || {
        body = http_get(server.http(), "/metrics").await.1;
        metric(&body, "msngate_connections{role=\"notification\"}") <= 1.0
            && metric(&body, "msngate_online_users") <= 1.0
            && metric(&body, "msngate_sessions{dialect=\"MSNP7\"}") <= 0.0
    })
    .await;
    assert_eq!(metric(&body, "msngate_sessions{dialect=\"MSNP7\"}"), 0.0);
    assert_eq!(metric(&body, "msngate_sessions{dialect=\"MSNP11\"}"), 1.0);
    assert_eq!(
        metric(&body, "msngate_connections{role=\"notification\"}"),
        1.0
    );
    assert_eq!(metric(&body, "msngate_online_users"), 1.0);
}

#[tokio::test]
async fn sigterm_tells_clients_and_keeps_every_acknowledged_change() {
    let dir = tempfile::tempdir().unwrap();
    let (config, ns, http) = binary_config(dir.path());
    run_cli(
        &config,
        &[
            "user",
            "add",
            "term-alice@example.com",
            "--password",
            PW,
            "--nickname",
            "Alice",
        ],
    );
    run_cli(
        &config,
        &["user", "add", "term-bob@example.com", "--password", PW],
    );
    let server = BinaryServer::spawn(&config, ns, http).await;

    let mut alice = sign_in_md5(ns, 7, "term-alice@example.com", PW).await;
    alice.send("SYN 5 0").await;
    let syn = alice.recv().await;
    for _ in 0..(3 + 4) {
        // GTC, BLP, LSG group 0, then one LST line per (empty) list.
        alice.recv().await;
    }
    assert_eq!(syn.name, "SYN");
    alice.send("ADG 6 Friends 0").await;
    let adg = alice.recv().await;
    assert_eq!(adg.name, "ADG", "{}", render(&adg));
    let group = adg.args[3].clone();
    alice
        .send(&format!("ADD 7 FL term-bob@example.com Bob {group}"))
        .await;
    alice.recv_named("ADD").await;
    alice.send("ADD 8 BL term-bob@example.com Bob").await;
    assert_eq!(alice.recv_named("ADD").await.args[0], "8");
    alice
        .send("REA 9 term-alice@example.com Alice%20Renamed")
        .await;
    assert_eq!(alice.recv_named("REA").await.args[0], "9");

    let status = server.terminate().await;
    assert!(status.success(), "msngate exited with {status}");
    let seen = alice.expect_closed().await;
    assert_eq!(seen.iter().map(render).collect::<Vec<_>>(), ["OUT SSD"]);

    let _server = BinaryServer::spawn(&config, ns, http).await;
    let mut alice = Client::connect(ns).await;
    alice.send("VER 1 MSNP7").await;
    alice.recv().await;
    alice.send("USR 2 MD5 I term-alice@example.com").await;
    let salt = alice.recv().await.args[3].clone();
    alice
        .send(&format!(
            "USR 3 MD5 S {}",
            msnp::auth::md5_login_hash(&salt, PW)
        ))
        .await;
    alice
        .expect("USR 3 OK term-alice@example.com Alice%20Renamed 1")
        .await;
    alice.recv().await; // profile
    alice.send("SYN 4 0").await;
    let mut lines = Vec::new();
    loop {
        let cmd = alice.recv().await;
        let done = cmd.name == "LST" && cmd.args[1] == "RL";
        lines.push(render(&cmd));
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    assert!(
        text.contains(&format!("LSG 4 5 2 2 {group} Friends 0")),
        "{text}"
    );
    assert!(
        text.contains(&format!("LST 4 FL 5 1 1 term-bob@example.com Bob {group}")),
        "{text}"
    );
    assert!(
        text.contains("LST 4 BL 5 1 1 term-bob@example.com Bob"),
        "{text}"
    );
}

/// Runs `msngate --config <path> <args…>` with `stdin` piped in; returns
/// (success, stdout, stderr).
fn run_cli_with_stdin(
    config_path: &std::path::Path,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_msngate"))
        .arg("--config")
        .arg(config_path)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn msngate");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("wait msngate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Signs in with MSNP7 (MD5) and returns the server's answer to the final USR.
async fn md5_answer(ns: std::net::SocketAddr, handle: &str, password: &str) -> String {
    let mut c = Client::connect(ns).await;
    c.send("VER 1 MSNP7").await;
    c.recv().await;
    c.send(&format!("USR 2 MD5 I {handle}")).await;
    let salt = c.recv().await.args[3].clone();
    c.send(&format!(
        "USR 3 MD5 S {}",
        msnp::auth::md5_login_hash(&salt, password)
    ))
    .await;
    render(&c.recv().await)
}

#[tokio::test]
async fn passwords_come_from_standard_input_and_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let (config, ns, http) = binary_config(dir.path());
    // Spaces inside are kept; only the line ending goes.
    let first = " first pass";
    let (ok, out, err) = run_cli_with_stdin(
        &config,
        &["user", "add", "stdin-alice@example.com", "--password-stdin"],
        &format!("{first}\n"),
    );
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "created stdin-alice@example.com (stdin-alice@example.com)\n"
    );
    // Neither flag and standard input not a terminal: a plain refusal.
    let (ok, out, err) = run_cli_with_stdin(
        &config,
        &["user", "passwd", "stdin-alice@example.com"],
        "ignored\n",
    );
    assert!(!ok, "{out}");
    assert!(
        err.starts_with("msngate: no password given: use --password-stdin"),
        "{err}"
    );
    let (ok, _, err) = run_cli_with_stdin(
        &config,
        &["user", "add", "stdin-empty@example.com", "--password-stdin"],
        "\n",
    );
    assert!(!ok);
    assert_eq!(err, "msngate: the password must not be empty\n");

    let server = BinaryServer::spawn(&config, ns, http).await;
    assert_eq!(
        md5_answer(ns, "stdin-alice@example.com", first).await,
        "USR 3 OK stdin-alice@example.com stdin-alice@example.com 1"
    );
    assert_eq!(
        passport_login(http, "stdin-alice@example.com", first)
            .await
            .map(|t| t.starts_with("t=")),
        Ok(true)
    );

    let second = "second-pass";
    let (ok, out, err) = run_cli_with_stdin(
        &config,
        &[
            "user",
            "passwd",
            "stdin-alice@example.com",
            "--password-stdin",
        ],
        &format!("{second}\r\n"),
    );
    assert!(ok, "{err}");
    assert_eq!(out, "password changed for stdin-alice@example.com\n");
    assert_eq!(
        md5_answer(ns, "stdin-alice@example.com", first).await,
        "911 3"
    );
    assert_eq!(
        md5_answer(ns, "stdin-alice@example.com", second).await,
        "USR 3 OK stdin-alice@example.com stdin-alice@example.com 1"
    );
    drop(server);
}

#[tokio::test]
async fn irc_credentials_take_the_password_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _, _) = binary_config(dir.path());
    let mut yaml = std::fs::read_to_string(&config).unwrap();
    yaml.push_str("irc:\n  networks:\n    - name: testnet\n      server: 127.0.0.1\n");
    std::fs::write(&config, yaml).unwrap();
    run_cli(
        &config,
        &["user", "add", "irc-alice@example.com", "--password", PW],
    );
    let (ok, out, err) = run_cli_with_stdin(
        &config,
        &[
            "irc",
            "credentials",
            "set",
            "irc-alice@example.com",
            "--network",
            "testnet",
            "--account",
            "alice",
            "--password-stdin",
        ],
        "nick serv pw\n",
    );
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "stored SASL credentials for irc-alice@example.com on testnet\n"
    );
    let yaml = std::fs::read_to_string(&config).unwrap();
    let url = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("url: "))
        .expect("database url")
        .to_string();
    let store = msngate::store::Store::connect(&url, 1).await.unwrap();
    let db = msngate::bridge::irc::db::Db::open(store.pool().clone())
        .await
        .unwrap();
    assert_eq!(
        format!(
            "{:?}",
            db.credentials("irc-alice@example.com", "testnet")
                .await
                .unwrap()
        ),
        format!(
            "{:?}",
            Some(msngate::bridge::irc::db::Credentials::Sasl {
                account: "alice".into(),
                password: "nick serv pw".into(),
            })
        )
    );
}

/// Runs `msngate <args…>` with extra environment; returns (exit code, stderr).
fn run_cli_env(
    config_path: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_msngate"))
        .arg("--config")
        .arg(config_path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run msngate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn refused_configuration_names_the_key_or_variable_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _, _) = binary_config(dir.path());
    let (code, err) = run_cli_env(&config, &["serve"], &[("MSNGATE__MSN__LISTEN", "0.0.0.0")]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err,
        "msngate: configuration refused: MSNGATE__MSN__LISTEN (msn.listen): invalid socket address syntax\n"
    );
    let yaml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("public_host: 127.0.0.1", "public_host: 0.0.0.0");
    std::fs::write(&config, yaml).unwrap();
    let (code, err) = run_cli_env(&config, &["check-config"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("msngate: configuration refused: msn.public_host: is the any-address"),
        "{err}"
    );
}

/// Starts `msngate serve` with standard error written to `log` and waits
/// until the notification port at `ns` accepts.
async fn serve_logging_to(
    config_path: &std::path::Path,
    ns: std::net::SocketAddr,
    log: &std::path::Path,
) -> std::process::Child {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_msngate"))
        .arg("--config")
        .arg(config_path)
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn msngate");
    let mut child = KillOnDrop(Some(child));
    eventually_async("msngate to listen", async || {
        tokio::net::TcpStream::connect(ns).await.is_ok()
    })
    .await;
    child.0.take().expect("child")
}

/// Kills the server if the test fails before it stops it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Listeners on the any-address with `public_host` loopback: exactly one
/// warning line naming the key.
#[tokio::test]
async fn serve_warns_once_when_remote_clients_could_not_open_chats() {
    let dir = tempfile::tempdir().unwrap();
    let (config, ns, _) = binary_config(dir.path());
    let yaml = std::fs::read_to_string(&config).unwrap();
    let sb_port = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("switchboard_listen: 127.0.0.1:"))
        .expect("switchboard_listen")
        .to_string();
    let yaml = yaml.replace(
        "switchboard_listen: 127.0.0.1:",
        "switchboard_listen: 0.0.0.0:",
    );
    std::fs::write(&config, yaml).unwrap();
    let log = dir.path().join("stderr.log");
    let server = KillOnDrop(Some(serve_logging_to(&config, ns, &log).await));
    let text = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains(&format!(
            "msn.public_host is 127.0.0.1 while the MSN listeners accept other machines (0.0.0.0:{sb_port}): remote clients will sign in but fail to open chats"
        )),
        "{text}"
    );
    assert!(
        warnings[0].contains("Set msn.public_host (MSNGATE__MSN__PUBLIC_HOST)"),
        "{text}"
    );
    drop(server);
}

/// Starts `serve` with the given `log.format`, signs a user in (so there are
/// log lines about real traffic), stops it and returns its standard error.
async fn serve_log(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (config, ns, _) = binary_config(dir.path());
    let yaml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{yaml}  format: {format}\n")).unwrap();
    run_cli(
        &config,
        &["user", "add", "log-alice@example.com", "--password", PW],
    );
    let log = dir.path().join("stderr.log");
    let mut server = KillOnDrop(Some(serve_logging_to(&config, ns, &log).await));
    let mut alice = sign_in_md5(ns, 7, "log-alice@example.com", PW).await;
    alice.send("OUT").await;
    alice.expect_closed().await;
    let child = server.0.as_mut().expect("child");
    // SAFETY: kill with the pid of our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    std::fs::read_to_string(&log).unwrap()
}

#[tokio::test]
async fn logs_to_a_file_carry_no_escape_codes() {
    let text = serve_log("text").await;
    assert!(text.lines().count() >= 2, "{text}");
    assert!(text.contains(" INFO "), "{text}");
    assert!(!text.contains('\u{1b}'), "ESC in a log file:\n{text}");
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_level_and_message() {
    let text = serve_log("json").await;
    assert!(text.lines().count() >= 2, "{text}");
    for line in text.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(event["level"].is_string(), "{line}");
        assert!(event["message"].is_string(), "{line}");
    }
    assert!(text.contains(r#""message":"stopped""#), "{text}");
}

#[tokio::test]
async fn past_max_connections_a_new_client_waits_until_one_closes() {
    let server = start_with(|c| c.msn.max_connections = 2).await;
    let mut first = Client::connect(server.ns()).await;
    first.send("VER 1 MSNP8 CVR0").await;
    assert_eq!(render(&first.recv().await), "VER 1 MSNP8");
    let mut second = Client::connect(server.ns()).await;
    second.send("VER 1 MSNP8 CVR0").await;
    assert_eq!(render(&second.recv().await), "VER 1 MSNP8");

    // The third is taken by the kernel's backlog, not by msngate: nothing
    // answers it while both slots are held...
    let mut third = Client::connect(server.ns()).await;
    third.send("VER 1 MSNP8 CVR0").await;
    assert!(
        third
            .recv_within(std::time::Duration::from_millis(500))
            .await
            .is_none(),
        "a connection past msn.max_connections was served"
    );
    // ...and it is served as soon as one of them closes.
    drop(first);
    assert_eq!(render(&third.recv().await), "VER 1 MSNP8");
}

#[test]
fn an_unreadable_tls_certificate_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _, _) = binary_config(dir.path());
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let env = [
        ("MSNGATE__HTTP__TLS__CERTIFICATE", missing),
        ("MSNGATE__HTTP__TLS__PRIVATE_KEY", missing),
    ];
    for command in ["check-config", "serve"] {
        let (code, err) = run_cli_env(&config, &[command], &env);
        assert_eq!(code, 2, "{command}: {err}");
        assert!(
            err.starts_with(&format!(
                "msngate: configuration refused: http.tls.certificate: cannot read {missing}"
            )),
            "{command}: {err}"
        );
    }
}
