//! MSNP13+ sign-in (wlm/login-sso.md): `USR TWN` (MSNP13–14) and
//! `USR SSO` with the MBI response to a nonce (MSNP15+), both redeeming a
//! ticket from the RST token service.

use super::super::{Flow, LoginMethod, LoginState, NsConnection};
use super::NETWORK_PASSPORT;
use crate::core::handle;
use crate::server::Role;
use base64::Engine as _;
use msnp::codec::Command;
use msnp::error::ErrorCode;

/// The policy document sent as `GCF 0` before the `USR … S` challenge: the
/// MSNP11 "deny nothing" Shields configuration inside the MSNP13
/// `<Policies>` wrapper (login-sso.md §6; clients ignore the body).
const POLICIES_XML: &str = "<Policies><Policy type=\"SHIELDS\"><config><shield><cli maj=\"7\" min=\"0\" minbld=\"0\" maxbld=\"9999\" deny=\" \" /></shield><block></block></config></Policy></Policies>";

/// The MSNP13–14 `USR … TWN S` string, the policy WLM 8 asks the token
/// service with (login-sso.md §2).
const TWN_POLICY: &str = "ct=1,rver=1,wp=FS_40SEC_0_COMPACT,lc=1,id=1";

impl NsConnection {
    /// `USR` before sign-in in MSNP13+: `TWN` in MSNP13–14, `SSO` from
    /// MSNP15; the other package closes the connection (login-sso.md §2).
    pub(in crate::server::notification) async fn wlm_usr(
        &mut self,
        trid: u32,
        cmd: &Command,
    ) -> Flow {
        let (Some(package), Some(stage)) = (cmd.arg(1), cmd.arg(2)) else {
            return self.refuse(cmd, "USR with missing fields");
        };
        let method = match package {
            "SSO" if self.dialect.uses_sso_login() => LoginMethod::Sso,
            "TWN" if !self.dialect.uses_sso_login() => LoginMethod::Passport,
            _ => return self.refuse(cmd, "USR with a security package not valid in this dialect"),
        };
        match stage {
            "I" => match cmd.arg(3) {
                Some(raw_handle) => self.wlm_usr_initial(trid, method, raw_handle),
                None => self.refuse(cmd, "USR I without a handle"),
            },
            "S" => match std::mem::replace(&mut self.state, LoginState::Versioned) {
                LoginState::Challenged {
                    handle,
                    method: expected,
                    nonce,
                    ..
                } if expected == method => {
                    self.wlm_usr_subsequent(trid, method, &handle, nonce.as_deref(), cmd)
                        .await
                }
                _ => self.refuse(cmd, "USR S without USR I"),
            },
            _ => self.refuse(cmd, "USR with unknown stage"),
        }
    }

    fn wlm_usr_initial(&mut self, trid: u32, method: LoginMethod, raw_handle: &str) -> Flow {
        let Some(handle) = handle::normalize(raw_handle) else {
            tracing::info!(peer = %self.conn.peer, "sign-in refused: malformed handle");
            return self.reply_error(ErrorCode::AuthFailed, trid);
        };
        if self.role == Role::Dispatch {
            return self.refer_to_notification_server(trid, &handle);
        }
        self.conn.send_payload("GCF 0", POLICIES_XML.as_bytes());
        let nonce = match method {
            LoginMethod::Sso => {
                let mut random = [0u8; msnp::sso::NONCE_RANDOM_BYTES];
                rand::fill(&mut random);
                let nonce = msnp::sso::new_nonce(&random);
                self.conn.send_line(&format!(
                    "USR {trid} SSO S {} {nonce}",
                    msnp::sso::MBI_POLICY
                ));
                Some(nonce.into_boxed_str())
            }
            _ => {
                self.conn
                    .send_line(&format!("USR {trid} TWN S {TWN_POLICY}"));
                None
            }
        };
        self.state = LoginState::Challenged {
            handle,
            method,
            account: None,
            nonce,
        };
        Flow::Continue
    }

    /// `USR trid TWN S <ticket>` or `USR trid SSO S <ticket> <mbi> [{guid}]`.
    /// Any failure is `911` and the connection closes (login-sso.md §3).
    async fn wlm_usr_subsequent(
        &mut self,
        trid: u32,
        method: LoginMethod,
        handle: &str,
        nonce: Option<&str>,
        cmd: &Command,
    ) -> Flow {
        let checked = self.check_wlm_credentials(method, handle, nonce, cmd);
        let account = match checked {
            Ok(()) => match self.ctx.hub.accounts.find(handle).await {
                Ok(Some(account)) => Ok(account),
                Ok(None) => Err("account no longer exists".to_string()),
                Err(e) => Err(e.to_string()),
            },
            Err(reason) => Err(reason),
        };
        match account {
            Ok(account) => self.complete_sign_in(trid, method, account).await,
            Err(reason) => {
                // Counted and throttled like any wrong password, then closed:
                // WLM clients start over with a new connection.
                let _ = self.refuse_credentials(trid, handle, &reason);
                Flow::Close
            }
        }
    }

    /// Redeems the ticket (single use, bound to `handle`) and, for SSO,
    /// checks the MBI response against the ticket's proof key.
    fn check_wlm_credentials(
        &mut self,
        method: LoginMethod,
        handle: &str,
        nonce: Option<&str>,
        cmd: &Command,
    ) -> Result<(), String> {
        let ticket = cmd.arg(3).ok_or("no ticket")?;
        let mbi = cmd.arg(4);
        if method == LoginMethod::Sso && self.dialect.has_mpop() {
            // P16+ clients always name their machine (Escargot refuses a
            // login without it); only its form is checked until MPOP exists.
            match cmd.arg(5).map(msnp::endpoint::MachineGuid::parse) {
                Some(Some(_)) => {}
                Some(None) => return Err("malformed machine GUID".into()),
                None => return Err("no machine GUID".into()),
            }
        }
        let proof_key = self
            .ctx
            .hub
            .tickets
            .redeem_with_proof(ticket, handle)
            .map_err(|e| format!("ticket refused: {e}"))?;
        if method != LoginMethod::Sso {
            return Ok(());
        }
        let Some(mbi) = mbi else {
            // Only MSNP15 may omit it (patched WLM 8.x clients).
            if self.dialect.requires_mbi_response() {
                return Err("no MBI response".into());
            }
            return Ok(());
        };
        let (Some(proof_key), Some(nonce)) = (proof_key, nonce) else {
            return Err("ticket has no proof key for the MBI response".into());
        };
        let secret = base64::engine::general_purpose::STANDARD.encode(proof_key);
        msnp::sso::verify_mbi_response(&secret, nonce, mbi)
            .map_err(|e| format!("MBI response refused: {e}"))
    }

    /// The profile message with `MPOPEnabled: 0` (one endpoint per account),
    /// and from MSNP16 the empty `UBX` about oneself that the Microsoft
    /// service sent (login-sso.md §7). MSNP13+ clients take their lists
    /// from the address book, so reverse-list notices may flow from now on.
    pub(in crate::server::notification) fn send_wlm_profile(
        &mut self,
        mut profile: Vec<u8>,
        own_handle: &str,
    ) {
        if profile.ends_with(b"\r\n\r\n") {
            profile.truncate(profile.len() - 2);
        }
        profile.extend_from_slice(b"MPOPEnabled: 0\r\n\r\n");
        self.conn.send_payload("MSG Hotmail Hotmail", &profile);
        if self.dialect.has_mpop() {
            let me = self.dialect.presence_handle(own_handle, NETWORK_PASSPORT);
            self.conn.send_payload(&format!("UBX {me}"), b"");
        }
        self.synced = true;
    }
}
