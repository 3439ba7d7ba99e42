//! `msngate`: the server and its administration commands.

mod password_input;

use clap::{Parser, Subcommand};
use msngate::config::{Config, LogFormat};
use password_input::PasswordArgs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "msngate",
    version,
    about = "MSN Messenger gateway to Matrix and IRC"
)]
struct Cli {
    /// YAML configuration file; without it the built-in defaults apply.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the MSN network (dispatch, notification, switchboard, Passport HTTP).
    Serve,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Load and validate the configuration, then exit.
    CheckConfig,
    /// Matrix bridge administration.
    #[command(subcommand)]
    Matrix(MatrixCommand),
    /// IRC bridge administration.
    #[command(subcommand)]
    Irc(IrcCommand),
    /// msngate's own certificates for the names clients dial.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Print what each client machine needs: hosts-file lines, the CA to
    /// import, and per client family what else to set (also served at /setup).
    ClientSetup,
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Make the local CA (once; kept in data_dir/tls) and a server
    /// certificate for every name clients dial; issue it again when it is
    /// missing, expires within 30 days or misses a name.
    Init,
}

#[derive(Subcommand)]
enum IrcCommand {
    /// Per-user IRC credentials (SASL PLAIN or NickServ), used at the next connect.
    #[command(subcommand)]
    Credentials(IrcCredentialsCommand),
}

#[derive(Subcommand)]
enum IrcCredentialsCommand {
    /// Store credentials for an MSN user on one network.
    Set {
        email: String,
        #[arg(long)]
        network: String,
        #[arg(long)]
        account: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Identify with NickServ after connecting instead of SASL PLAIN.
        #[arg(long)]
        nickserv: bool,
    },
    /// Remove an MSN user's credentials for one network.
    Del {
        email: String,
        #[arg(long)]
        network: String,
    },
    /// List stored credentials (without passwords).
    List,
}

#[derive(Subcommand)]
enum MatrixCommand {
    /// Write the appservice registration for the homeserver to load
    /// (matrix.registration); tokens are generated once and kept.
    Registration,
    /// Double puppeting: let an MSN user's messages come from their own Matrix
    /// account. The access token is read from standard input (so it never shows
    /// in the process list) unless --token is given.
    Puppet {
        email: String,
        #[arg(long)]
        token: Option<String>,
        /// Unlink instead: messages come from the ghost again.
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account.
    Add {
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long)]
        nickname: Option<String>,
    },
    /// Change an account's password.
    Passwd {
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Delete an account.
    Del { email: String },
    /// List accounts.
    List,
}

fn main() -> ExitCode {
    explain_sigbus();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("msngate: configuration refused: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Command::CheckConfig | Command::Serve)
        && let Err(e) = msngate::app::check_files(&config)
    {
        eprintln!("msngate: configuration refused: {e:#}");
        return ExitCode::from(2);
    }
    if let Command::CheckConfig = cli.command {
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    // Files and text only: no logging, runtime or database needed.
    match cli.command {
        Command::Tls(TlsCommand::Init) => return tls_init(&config),
        Command::ClientSetup => {
            print!(
                "{}",
                msngate::client_setup::Setup::for_config(&config).to_text(&config)
            );
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    // PostgreSQL's notices ("relation ... already exists, skipping" at every
    // start) are not news to an operator; MSNGATE_LOG can still ask for them.
    let filter = tracing_subscriber::EnvFilter::try_from_env("MSNGATE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{},sqlx::postgres::notice=warn",
            config.log.level
        ))
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        // Escape codes belong on a terminal, not in a file or a journal.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // `message` at the top level, next to `level`, as shippers expect.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("msngate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("msngate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `msngate tls init`: says what it made, kept or renewed, and what the
/// clients must import.
fn tls_init(config: &Config) -> ExitCode {
    let report = match msngate::certs::ensure(config) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("msngate: tls init: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let files = &report.files;
    if report.ca_created {
        println!(
            "CA: made {} (valid until {})",
            files.ca_certificate.display(),
            report.ca_expires.date()
        );
    } else {
        println!(
            "CA: kept {} (valid until {})",
            files.ca_certificate.display(),
            report.ca_expires.date()
        );
    }
    match &report.issued_because {
        Some(reason) => println!(
            "server certificate: issued {} ({reason}), valid until {}",
            files.server_certificate.display(),
            report.server_expires.date()
        ),
        None => println!(
            "server certificate: kept {}, valid until {}",
            files.server_certificate.display(),
            report.server_expires.date()
        ),
    }
    println!("names: {}", report.names.join(" "));
    println!(
        "import on each client machine: {} (see `msngate client-setup`)",
        files.ca_download.display()
    );
    match &config.http.tls {
        Some(tls) if tls.uses_generated() => {}
        Some(_) => println!(
            "note: http.tls names its own certificate and key; set `http.tls: {{}}` to serve these"
        ),
        None => println!("note: http.tls is not set; set `http.tls: {{}}` to serve these"),
    }
    ExitCode::SUCCESS
}

/// A memory-mapped file cut short under the process ends it with SIGBUS,
/// and the kernel says nothing. The only such mapping msngate has is
/// SQLite's `-shm` file with `database.sqlite_journal: wal`
/// (docs/database.md), so the operator gets one line saying so first.
fn explain_sigbus() {
    extern "C" fn on_sigbus(_: libc::c_int) {
        const LINE: &[u8] = b"msngate: fatal: SIGBUS: a memory-mapped file was truncated under \
            the process (with database.sqlite_journal: wal, the SQLite -shm file; see \
            docs/database.md)\n";
        // SAFETY: write(2) and raise(3) are async-signal-safe; LINE is static.
        // SA_RESETHAND restored the default action, so the raised signal
        // (delivered when this returns) ends the process as before.
        unsafe {
            libc::write(2, LINE.as_ptr().cast(), LINE.len());
            libc::raise(libc::SIGBUS);
        }
    }
    // SAFETY: a zeroed sigaction is valid; the handler above only calls
    // async-signal-safe functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::User(cmd) => {
            // The password is asked for before the database is opened, so a
            // refusal (or a prompt) is not preceded by migration work or logs.
            let password = match &cmd {
                UserCommand::Add { password, .. } | UserCommand::Passwd { password, .. } => {
                    Some(password.clone().read()?)
                }
                UserCommand::Del { .. } | UserCommand::List => None,
            };
            let hub = msngate::app::build_hub(&config).await?;
            match cmd {
                UserCommand::Add {
                    email, nickname, ..
                } => {
                    let password = password.unwrap_or_default();
                    let account = hub
                        .accounts
                        .create(&email, &password, nickname.as_deref())
                        .await?;
                    println!("created {} ({})", account.handle, account.friendly_name);
                }
                UserCommand::Passwd { email, .. } => {
                    let password = password.unwrap_or_default();
                    hub.accounts.set_password(&email, &password).await?;
                    println!("password changed for {email}");
                }
                UserCommand::Del { email } => {
                    hub.accounts.delete(&email).await?;
                    println!("deleted {email}");
                }
                UserCommand::List => {
                    for a in hub.accounts.list().await? {
                        println!("{}\t{}", a.handle, a.friendly_name);
                    }
                }
            }
            Ok(())
        }
        Command::CheckConfig | Command::Tls(_) | Command::ClientSetup => Ok(()),
        Command::Irc(IrcCommand::Credentials(cmd)) => irc_credentials(&config, cmd).await,
        Command::Matrix(MatrixCommand::Puppet {
            email,
            token,
            remove,
        }) => {
            let matrix = config
                .matrix
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("the configuration has no matrix section"))?;
            let handle = msngate::core::handle::normalize(&email)
                .ok_or_else(|| anyhow::anyhow!("{email} is not a valid handle"))?;
            let hub = msngate::app::build_hub(&config).await?;
            if remove {
                if msngate::bridge::matrix::unlink_double_puppet(hub.store(), &handle).await? {
                    println!("{handle}: double puppeting removed");
                } else {
                    anyhow::bail!("{handle} has no linked Matrix account");
                }
                return Ok(());
            }
            let token = match token {
                Some(t) => t,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim().to_string()
                }
            };
            if token.is_empty() {
                anyhow::bail!("no access token given (pass --token or write it to standard input)");
            }
            let mxid =
                msngate::bridge::matrix::link_double_puppet(matrix, hub.store(), &handle, &token)
                    .await?;
            println!("{handle}: messages now come from {mxid}");
            Ok(())
        }
        Command::Matrix(MatrixCommand::Registration) => {
            let matrix = config
                .matrix
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("the configuration has no matrix section (matrix.homeserver_url, matrix.server_name, matrix.registration)"))?;
            let registration = msngate::bridge::matrix::registration::write(matrix)?;
            println!(
                "wrote {} (appservice id {}, url {})",
                matrix.registration.display(),
                registration.id,
                registration.url
            );
            Ok(())
        }
    }
}

async fn irc_credentials(config: &Config, cmd: IrcCredentialsCommand) -> anyhow::Result<()> {
    use msngate::bridge::irc::db::{self, Credentials};
    // As for `user add`: the secret first, then the database.
    let secret = match &cmd {
        IrcCredentialsCommand::Set { password, .. } => Some(password.clone().read()?),
        _ => None,
    };
    let hub = msngate::app::build_hub(config).await?;
    let pool = hub.store().pool();
    let known_network = |name: &str| -> anyhow::Result<()> {
        if config.irc.networks.iter().any(|n| n.name == name) {
            Ok(())
        } else {
            anyhow::bail!("no IRC network named {name} in irc.networks")
        }
    };
    let account = |email: &str| {
        msngate::core::handle::normalize(email)
            .ok_or_else(|| anyhow::anyhow!("{email} is not a valid handle"))
    };
    match cmd {
        IrcCredentialsCommand::Set {
            email,
            network,
            account: login,
            password: _,
            nickserv,
        } => {
            known_network(&network)?;
            let password = secret.unwrap_or_default();
            let handle = account(&email)?;
            if hub.accounts.find(&handle).await?.is_none() {
                anyhow::bail!("no account {handle}");
            }
            let credentials = if nickserv {
                Credentials::NickServ {
                    account: login,
                    password,
                }
            } else {
                Credentials::Sasl {
                    account: login,
                    password,
                }
            };
            db::set_credentials(pool, &handle, &network, &credentials).await?;
            println!(
                "stored {} credentials for {handle} on {network}",
                if nickserv { "NickServ" } else { "SASL" }
            );
        }
        IrcCredentialsCommand::Del { email, network } => {
            let handle = account(&email)?;
            if db::delete_credentials(pool, &handle, &network).await? {
                println!("removed credentials for {handle} on {network}");
            } else {
                anyhow::bail!("no credentials for {handle} on {network}");
            }
        }
        IrcCredentialsCommand::List => {
            for e in db::list_credentials(pool).await? {
                println!("{}\t{}\t{}\t{}", e.handle, e.network, e.method, e.account);
            }
        }
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if let Some(warning) = config.public_host_warning() {
        tracing::warn!("{warning}");
    }
    let running = msngate::app::start(config).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    running.shutdown(Duration::from_secs(10)).await;
    tracing::info!("stopped");
    Ok(())
}
