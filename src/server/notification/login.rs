//! Sign-in: VER, CVR, INF, USR (MD5 for MSNP2–7, Passport for MSNP8–12), XFR NS.

use super::{Flow, LoginMethod, LoginState, NsConnection, encoded};
use crate::core::handle;
use crate::server::Role;
use crate::store::AccountRow;
use msnp::codec::Command;
use msnp::dialect::Dialect;
use msnp::error::ErrorCode;
use std::time::{SystemTime, UNIX_EPOCH};

impl NsConnection {
    /// Commands before `USR … OK`: anything but the sign-in commands closes
    /// the connection, as the real service did.
    pub(super) async fn dispatch_login(&mut self, cmd: Command) -> Flow {
        let Some(trid) = cmd.trid() else {
            if cmd.name == "OUT" {
                return Flow::Close;
            }
            return self.refuse(&cmd, "command without transaction id before sign-in");
        };
        match (cmd.name.as_str(), &self.state) {
            ("VER", LoginState::Fresh) => self.ver(trid, &cmd),
            (_, LoginState::Fresh) => self.refuse(&cmd, "command before VER"),
            ("VER", _) => self.refuse(&cmd, "second VER"),
            ("CVR", _) => self.cvr(trid, &cmd),
            ("INF", _) if self.dialect.uses_md5_login() => {
                self.conn.send_line(&format!("INF {trid} MD5"));
                Flow::Continue
            }
            ("USR", _) => self.usr(trid, &cmd).await,
            _ => self.refuse(&cmd, "command not allowed before sign-in"),
        }
    }

    /// 911 for wrong credentials; after `signin_limits.failures_per_connection`
    /// of them the connection is closed too.
    pub(super) fn refuse_credentials(&mut self, trid: u32, handle: &str, reason: &str) -> Flow {
        crate::metrics::Metrics::inc(&self.ctx.metrics.refusals_bad_credentials);
        tracing::info!(peer = %self.conn.peer, user = %handle, dialect = %self.dialect, reason, "sign-in refused");
        let flow = self.reply_error(ErrorCode::AuthFailed, trid);
        self.login_failures += 1;
        let throttle = self.ctx.hub.accounts.throttle();
        if self.login_failures >= throttle.failures_per_connection {
            throttle
                .stats
                .connections_closed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(peer = %self.conn.peer, failures = self.login_failures,
                "closing connection after repeated wrong passwords");
            return Flow::Close;
        }
        flow
    }

    pub(super) fn refuse(&mut self, cmd: &Command, reason: &'static str) -> Flow {
        crate::metrics::Metrics::inc(&self.ctx.metrics.refusals_protocol);
        tracing::info!(peer = %self.conn.peer, command = %cmd.name, reason, "closing connection");
        Flow::Close
    }

    fn ver(&mut self, trid: u32, cmd: &Command) -> Flow {
        let offered = cmd.args.iter().skip(1).map(String::as_str);
        match Dialect::negotiate_up_to(offered, Dialect::MSNP18) {
            Some(dialect) => {
                self.dialect = dialect;
                self.state = LoginState::Versioned;
                // Payload commands (ADL, UUN, …) and the size limit depend on the dialect.
                let decoder = self.conn.decoder_mut();
                decoder.set_dialect(dialect);
                if dialect.has_soap_address_book() {
                    decoder.set_max_payload(msnp::codec::MAX_WLM_NOTIFICATION_PAYLOAD);
                }
                self.conn.send_line(&format!("VER {trid} {dialect}"));
                Flow::Continue
            }
            None => {
                self.conn.send_line(&format!("VER {trid} 0"));
                tracing::info!(peer = %self.conn.peer, offered = ?cmd.args.get(1..), "refused: no common dialect");
                Flow::Close
            }
        }
    }

    /// Echoes the client's own version as recommended and minimum, so no
    /// official client is told to upgrade.
    pub(super) fn cvr(&mut self, trid: u32, cmd: &Command) -> Flow {
        let version = cmd
            .arg(6)
            .filter(|v| !v.is_empty() && v.len() < 32)
            .unwrap_or("1.0.0000");
        let base = self.ctx.config.http.public_url.trim_end_matches('/');
        self.conn.send_line(&format!(
            "CVR {trid} {version} {version} {version} {base}/download {base}/info"
        ));
        Flow::Continue
    }

    async fn usr(&mut self, trid: u32, cmd: &Command) -> Flow {
        if matches!(self.state, LoginState::SignedIn) {
            return self.reply_error(ErrorCode::AlreadyLoggedIn, trid);
        }
        if self.dialect.has_soap_address_book() {
            return self.wlm_usr(trid, cmd).await;
        }
        let (Some(package), Some(stage), Some(value)) = (cmd.arg(1), cmd.arg(2), cmd.arg(3)) else {
            return self.refuse(cmd, "USR with missing fields");
        };
        let method = match package {
            "MD5" if self.dialect.uses_md5_login() => LoginMethod::Md5,
            "TWN" if !self.dialect.uses_md5_login() => LoginMethod::Passport,
            _ => return self.refuse(cmd, "USR with a security package not valid in this dialect"),
        };
        match stage {
            "I" => self.usr_initial(trid, method, value).await,
            "S" => match std::mem::replace(&mut self.state, LoginState::Versioned) {
                LoginState::Challenged {
                    handle,
                    method: expected,
                    account,
                    ..
                } if expected == method => {
                    self.usr_subsequent(trid, method, &handle, account, value)
                        .await
                }
                _ => self.refuse(cmd, "USR S without USR I"),
            },
            _ => self.refuse(cmd, "USR with unknown stage"),
        }
    }

    /// The dispatch server's whole answer to `USR … I`: where the
    /// notification server is.
    pub(super) fn refer_to_notification_server(&mut self, trid: u32, handle: &str) -> Flow {
        let ns = self.ctx.config.notification_address();
        let current = format!(
            "{}:{}",
            self.ctx.config.msn.public_host,
            self.ctx.config.msn.listen.port()
        );
        let line = match self.dialect.number() {
            2 => format!("XFR {trid} NS {ns}"),
            3..=6 => format!("XFR {trid} NS {ns} 0"),
            7..=12 => format!("XFR {trid} NS {ns} 0 {current}"),
            _ => format!("XFR {trid} NS {ns} U D"),
        };
        self.conn.send_line(&line);
        tracing::info!(peer = %self.conn.peer, user = %handle, to = %ns, "dispatch: referred to notification server");
        Flow::Close
    }

    async fn usr_initial(&mut self, trid: u32, method: LoginMethod, raw_handle: &str) -> Flow {
        let Some(handle) = handle::normalize(raw_handle) else {
            tracing::info!(peer = %self.conn.peer, "sign-in refused: malformed handle");
            return self.reply_error(ErrorCode::AuthFailed, trid);
        };
        if self.role == Role::Dispatch {
            return self.refer_to_notification_server(trid, &handle);
        }
        let (challenge, account) = match method {
            LoginMethod::Md5 => match self.ctx.hub.accounts.legacy_challenge(&handle).await {
                Ok((salt, account)) => (format!("USR {trid} MD5 S {salt}"), account.map(Box::new)),
                Err(e) => {
                    tracing::error!(error = %e, "sign-in failed: database");
                    return self.reply_error(ErrorCode::InternalError, trid);
                }
            },
            LoginMethod::Passport | LoginMethod::Sso => {
                (format!("USR {trid} TWN S {}", passport_challenge()), None)
            }
        };
        self.conn.send_line(&challenge);
        self.state = LoginState::Challenged {
            handle,
            method,
            account,
            nonce: None,
        };
        Flow::Continue
    }

    async fn usr_subsequent(
        &mut self,
        trid: u32,
        method: LoginMethod,
        handle: &str,
        account: Option<Box<AccountRow>>,
        response: &str,
    ) -> Flow {
        let hub = self.ctx.hub.clone();
        let account = match method {
            LoginMethod::Md5 => hub
                .accounts
                .check_legacy(handle, account.map(|a| *a), response, self.conn.peer.ip())
                .await
                .map_err(|e| e.to_string()),
            LoginMethod::Passport | LoginMethod::Sso => {
                match hub.tickets.redeem(response, handle) {
                    Ok(()) => match hub.accounts.find(handle).await {
                        Ok(Some(account)) => Ok(account),
                        Ok(None) => Err("account no longer exists".to_string()),
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) => Err(format!("ticket refused: {e}")),
                }
            }
        };
        let account = match account {
            Ok(account) => account,
            Err(reason) => return self.refuse_credentials(trid, handle, &reason),
        };
        self.complete_sign_in(trid, method, account).await
    }

    /// `USR … OK` and what follows it, once the credentials are good.
    pub(super) async fn complete_sign_in(
        &mut self,
        trid: u32,
        method: LoginMethod,
        account: AccountRow,
    ) -> Flow {
        let hub = self.ctx.hub.clone();
        let handle = account.handle.as_str();
        let session = match hub.sign_in(&account).await {
            Ok(session) => session,
            Err(e) => {
                tracing::error!(user = %handle, error = %e, "sign-in failed");
                return self.reply_error(ErrorCode::InternalError, trid);
            }
        };
        let name = encoded(&session.presence().friendly_name);
        let line = match self.dialect.number() {
            2..=5 => format!("USR {trid} OK {} {name}", account.handle),
            6..=7 => format!("USR {trid} OK {} {name} 1", account.handle),
            8..=9 => format!("USR {trid} OK {} {name} 1 0", account.handle),
            _ => format!("USR {trid} OK {} 1 0", account.handle),
        };
        self.conn.send_line(&line);
        if self.dialect.has_personal_message() {
            self.conn.send_line("SBS 0 null");
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let peer_ip = self.conn.peer.ip().to_string();
        let mspauth = crate::core::tickets::random_hex();
        let profile = msnp::mime::profile_message(&msnp::mime::Profile {
            login_time: now,
            email: &account.handle,
            member_id: account.id as u64,
            mspauth: &mspauth,
            client_ip: &peer_ip,
            client_port: self.conn.peer.port(),
            abch_migrated: self.dialect.uses_guids(),
        });
        if self.dialect.has_soap_address_book() {
            self.send_wlm_profile(profile, &account.handle);
        } else {
            self.conn.send_payload("MSG Hotmail Hotmail", &profile);
        }
        crate::metrics::Metrics::inc(match method {
            LoginMethod::Md5 => &self.ctx.metrics.signins_md5,
            LoginMethod::Passport | LoginMethod::Sso => &self.ctx.metrics.signins_passport,
        });
        if let Some(gauge) = self.ctx.metrics.session_gauge(self.dialect.number()) {
            gauge.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        session.client_tag.store(
            u32::from(self.dialect.number()),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.state = LoginState::SignedIn;
        self.session = Some(session);
        tracing::info!(peer = %self.conn.peer, user = %account.handle, dialect = %self.dialect,
            method = ?method, "signed in");
        Flow::Continue
    }
}

/// The opaque string after `USR … TWN S`, with every key old clients read.
fn passport_challenge() -> String {
    let ct = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct={ct},kpp=1,kv=5,ver=2.1.0173.1,tpf={}",
        crate::core::tickets::random_hex()
    )
}
