//! Wiring: configuration → store → hub → listeners. Used by `msngate serve`
//! and by the integration tests, which run the real server in-process.

use crate::config::Config;
use crate::core::accounts::Accounts;
use crate::core::hashing::PasswordHasher;
use crate::core::hub::{Hub, HubSettings};
use crate::server::{self, Context, Role};
use crate::store::Store;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Opens the store and builds the hub (no listeners): what the `user`
/// commands need as well as the server.
pub async fn build_hub(config: &Config) -> anyhow::Result<Arc<Hub>> {
    let store = Store::connect_with(
        &config.database.url,
        config.database.max_connections,
        config.database.sqlite_journal,
    )
    .await
    .with_context(|| {
        format!(
            "cannot open the database at {}",
            redact(&config.database.url)
        )
    })?;
    let hasher = PasswordHasher::new(
        config.auth.max_concurrent_hashes,
        config.auth.argon2_memory_kib,
        config.auth.argon2_iterations,
    )?;
    let accounts = Accounts::new(store.clone(), hasher, config.auth.legacy_md5_login)
        .with_limits(&config.signin_limits);
    let settings = HubSettings {
        max_queued_events: config.msn.max_queued_events,
        max_queued_bytes: config.msn.max_queued_bytes,
        max_contacts: config.msn.max_contacts,
        ticket_lifetime: Duration::from_secs(config.auth.ticket_lifetime_secs),
        cookie_lifetime: Duration::from_secs(config.msn.cookie_lifetime_secs),
        max_participants: config.msn.max_participants,
    };
    Ok(Arc::new(Hub::new(store, accounts, settings)))
}

/// Hides the password in a database URL for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***@{}", &url[..scheme], &url[at + 1..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A running server.
pub struct Running {
    pub hub: Arc<Hub>,
    pub config: Arc<Config>,
    pub notification_addr: SocketAddr,
    pub dispatch_addr: Option<SocketAddr>,
    pub switchboard_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub irc: Option<Arc<crate::bridge::irc::IrcBridge>>,
    pub matrix: Option<Arc<crate::bridge::matrix::MatrixBridge>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, tells every client (`OUT SSD`), and waits up to
    /// `grace` for connections to finish.
    pub async fn shutdown(self, grace: Duration) {
        // Bridges first: their queues drain while their connections still
        // run (the shutdown signal makes them quit).
        if let Some(irc) = &self.irc
            && !irc.flush(grace / 3).await
        {
            tracing::warn!(
                "IRC bridge queue not empty at shutdown; it is kept in the database for the next start"
            );
        }
        if let Some(matrix) = &self.matrix
            && !matrix.flush(grace / 3).await
        {
            tracing::warn!(
                "Matrix bridge queue not empty at shutdown; it is kept in the database for the next start"
            );
        }
        let _ = self.shutdown.send(true);
        for session in self.hub.sessions() {
            let _ = session
                .outbox
                .push_last(crate::core::events::SessionEvent::Disconnect(
                    crate::core::events::DisconnectReason::ServerShutdown,
                ));
        }
        // The accept loops end once every connection they started has ended,
        // so waiting for them waits for the whole drain.
        let deadline = tokio::time::Instant::now() + grace;
        for task in self.tasks {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
    }
}

/// Reads the files the configuration names (TLS certificates, keys, CAs),
/// so that a bad one stops the start with its key's name instead of leaving
/// a listener that fails later.
pub fn check_files(config: &Config) -> anyhow::Result<()> {
    if let Some(tls) = &config.http.tls {
        if !tls.uses_generated() {
            server::passport::tls_server_config(tls)?;
        } else {
            // msngate's own files: checked when present; `serve` makes or
            // renews them, so their absence is not a refusal.
            let files = crate::certs::TlsFiles::in_data_dir(&config.data_dir);
            if files.server_certificate.exists() {
                server::passport::tls_server_config(&files.tls_config(tls))?;
            }
        }
    }
    for (i, network) in config.irc.networks.iter().enumerate() {
        if network.tls {
            let key = format!("irc.networks[{i}].tls_ca_file");
            crate::tls::client_config(network.tls_ca_file.as_deref(), &key)?;
        }
    }
    Ok(())
}

/// Binds every listener and starts serving. Port 0 in the configuration
/// means "any free port"; the addresses clients are told use the bound ports.
pub async fn start(mut config: Config) -> anyhow::Result<Running> {
    check_files(&config)?;
    // `http.tls: {}`: make or renew msngate's own certificate before the
    // listener loads it.
    let http_tls = match crate::certs::resolve_http_tls(&config)? {
        Some((tls, report)) => {
            if let Some(report) = report {
                log_certificate_report(&report);
            }
            server::passport::tls_server_config(&tls)?;
            Some(tls)
        }
        None => None,
    };
    let hub = build_hub(&config).await?;
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))
    };
    let main_listener = bind(config.msn.listen).await?;
    let main_addr = main_listener.local_addr()?;
    config.msn.listen = main_addr;
    let notification_listener = match config.msn.notification_listen {
        Some(addr) if config.msn.dispatch_redirect => {
            let l = bind(addr).await?;
            config.msn.notification_listen = Some(l.local_addr()?);
            Some(l)
        }
        _ => None,
    };
    let sb_listener = bind(config.msn.switchboard_listen).await?;
    config.msn.switchboard_listen = sb_listener.local_addr()?;
    let http_listener = std::net::TcpListener::bind(config.http.listen)
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    http_listener.set_nonblocking(true)?;
    let http_bound = http_listener.local_addr()?;
    if config.http.listen.port() == 0 {
        // "Any free port": advertise the one we got.
        let scheme = if config.http.tls.is_some() {
            "https"
        } else {
            "http"
        };
        config.http.public_url = format!(
            "{scheme}://{}:{}",
            config.msn.public_host,
            http_bound.port()
        );
    }
    config.http.listen = http_bound;
    let plain_http_listener = match config.http.plain_listen {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr} (http.plain_listen)"))?;
            listener.set_nonblocking(true)?;
            config.http.plain_listen = Some(listener.local_addr()?);
            Some(listener)
        }
        None => None,
    };

    let config = Arc::new(config);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let ctx = Context {
        config: config.clone(),
        hub: hub.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown_rx.clone(),
    };
    let mut tasks = Vec::new();
    // One budget of connections for every MSN listener together.
    let slots = Arc::new(tokio::sync::Semaphore::new(config.msn.max_connections));

    let irc = if config.irc.networks.is_empty() {
        None
    } else {
        let tuning = crate::bridge::irc::Tuning {
            presence_interval: Duration::from_secs(config.irc.presence_interval_secs),
            burst: config.irc.send_burst,
            line_interval: Duration::from_millis(config.irc.send_interval_ms),
            max_concurrent_connects: config.irc.max_concurrent_connects,
            hold_absent: Duration::from_secs(config.irc.hold_absent_secs),
            ..Default::default()
        };
        let bridge = crate::bridge::irc::start_with(
            &config.irc,
            tuning,
            hub.clone(),
            metrics.clone(),
            shutdown_rx.clone(),
        )
        .await
        .context("cannot start the IRC bridge")?;
        Some(Arc::new(bridge))
    };

    // The Matrix bridge starts before the MSN listeners accept anyone: it
    // renames stored contacts to the current handle form, and a client
    // signing in before that would get its list in the old form.
    let matrix = match &config.matrix {
        Some(m) => Some(Arc::new(
            crate::bridge::matrix::start(m, hub.clone(), metrics.clone(), shutdown_rx.clone())
                .await
                .context("cannot start the Matrix bridge")?,
        )),
        None => None,
    };

    let (notification_addr, dispatch_addr) = match notification_listener {
        Some(ns) => {
            let ns_addr = ns.local_addr()?;
            tasks.push(tokio::spawn(server::accept_loop(
                main_listener,
                ctx.clone(),
                slots.clone(),
                |s, p, c| server::notification::handle(s, p, c, Role::Dispatch),
            )));
            tasks.push(tokio::spawn(server::accept_loop(
                ns,
                ctx.clone(),
                slots.clone(),
                |s, p, c| server::notification::handle(s, p, c, Role::Notification),
            )));
            (ns_addr, Some(main_addr))
        }
        None => {
            tasks.push(tokio::spawn(server::accept_loop(
                main_listener,
                ctx.clone(),
                slots.clone(),
                |s, p, c| server::notification::handle(s, p, c, Role::Notification),
            )));
            (main_addr, None)
        }
    };
    let switchboard_addr = config.msn.switchboard_listen;
    tasks.push(tokio::spawn(server::accept_loop(
        sb_listener,
        ctx.clone(),
        slots,
        server::switchboard::handle,
    )));

    let http_addr = config.http.listen;
    let mut readiness: Vec<crate::server::ops::Probe> = Vec::new();
    if let Some(matrix) = &matrix {
        let matrix = matrix.clone();
        readiness.push(("matrix", Arc::new(move || matrix.is_ready())));
    }
    if let Some(irc) = &irc {
        let irc = irc.clone();
        readiness.push(("irc", Arc::new(move || irc.is_ready())));
    }
    let router =
        server::passport::router_with_metrics(hub.clone(), config.clone(), metrics.clone())
            .merge(server::soap::router(hub.clone(), config.clone()))
            .merge(server::ops::router(hub.clone(), metrics.clone(), readiness))
            .merge(server::setup::router(&config));
    if let Some(listener) = plain_http_listener {
        // The same routes without TLS: Passport and SOAP for patched clients
        // and TLS-terminating front ends, the setup page before the CA is trusted.
        let router = router.clone();
        let mut stopped = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.changed().await;
            };
            if let Err(e) = server::passport::serve(listener, router, None, stop).await {
                tracing::error!(error = %e, "plain HTTP listener (http.plain_listen) failed");
            }
        }));
    }
    let mut http_shutdown = shutdown_rx.clone();
    let tls = http_tls;
    tasks.push(tokio::spawn(async move {
        let stop = async move {
            let _ = http_shutdown.changed().await;
        };
        if let Err(e) = server::passport::serve(http_listener, router, tls.as_ref(), stop).await {
            tracing::error!(error = %e, "HTTP listener failed");
        }
    }));

    tracing::info!(%notification_addr, ?dispatch_addr, %switchboard_addr, %http_addr,
        advertised_switchboard = %config.switchboard_address(), "msngate listening");
    Ok(Running {
        hub,
        config,
        notification_addr,
        dispatch_addr,
        switchboard_addr,
        http_addr,
        metrics,
        irc,
        matrix,
        shutdown: shutdown_tx,
        tasks,
    })
}

/// Tells the operator what `serve` did with msngate's own certificate.
fn log_certificate_report(report: &crate::certs::Report) {
    if report.ca_created {
        tracing::warn!(
            ca = %report.files.ca_download.display(),
            "made a new local CA: clients must import it (see `msngate client-setup`)"
        );
    }
    if report.ca_expires - time::OffsetDateTime::now_utc() < crate::certs::RENEW_BEFORE {
        tracing::warn!(
            expires = %report.ca_expires,
            dir = %report.files.dir.display(),
            "the local CA expires soon; msngate does not replace it by itself (clients would have to import the new one)"
        );
    }
    match &report.issued_because {
        Some(reason) => tracing::info!(
            certificate = %report.files.server_certificate.display(),
            expires = %report.server_expires,
            "issued the server certificate again: {reason}"
        ),
        None => tracing::info!(
            certificate = %report.files.server_certificate.display(),
            expires = %report.server_expires,
            "server certificate is current"
        ),
    }
}
