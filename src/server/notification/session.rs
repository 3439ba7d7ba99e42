//! Commands of a signed-in user other than list edits and presence.

use super::{Flow, NsConnection};
use crate::core::conversation::CookiePurpose;
use msnp::codec::Command;
use msnp::error::ErrorCode;

/// The "deny nothing" client policy document for `GCF Shields.xml`.
const SHIELDS_XML: &str = "<?xml version= \"1.0\" encoding=\"utf-8\" ?><config><shield><cli maj=\"7\" min=\"0\" minbld=\"0\" maxbld=\"9999\" deny=\" \" /></shield><block></block></config>";

impl NsConnection {
    pub(super) async fn dispatch_session(&mut self, cmd: Command) -> Flow {
        // Commands without a TrID.
        match cmd.name.as_str() {
            "PNG" => {
                let line = if self.dialect.has_msn_objects() {
                    "QNG 50"
                } else {
                    "QNG"
                };
                self.conn.send_line(line);
                return Flow::Continue;
            }
            "OUT" => return Flow::Close,
            _ => {}
        }
        let Some(trid) = cmd.trid() else {
            tracing::info!(peer = %self.conn.peer, command = %cmd.name, "closing: command without transaction id");
            return Flow::Close;
        };
        let d = self.dialect;
        if d.has_soap_address_book()
            && let Some(flow) = self.dispatch_wlm(trid, &cmd).await
        {
            return flow;
        }
        match cmd.name.as_str() {
            "USR" => self.reply_error(ErrorCode::AlreadyLoggedIn, trid),
            "CVR" => self.cvr(trid, &cmd),
            "SYN" => self.syn(trid, &cmd).await,
            "LST" if !d.has_capabilities() => self.list_request(trid, &cmd).await,
            "LSG" if d.has_groups() && !d.has_capabilities() => self.list_request(trid, &cmd).await,
            "CHG" => self.chg(trid, &cmd).await,
            "ADD" if !d.uses_guids() => self.add(trid, &cmd).await,
            "ADC" if d.uses_guids() => self.adc(trid, &cmd).await,
            "REM" => self.rem(trid, &cmd).await,
            "ADG" if d.has_groups() => self.adg(trid, &cmd).await,
            "RMG" if d.has_groups() => self.rmg(trid, &cmd).await,
            "REG" if d.has_groups() => self.reg(trid, &cmd).await,
            "REA" if d.uses_guids() => self.reply_error(ErrorCode::CommandDisabled, trid),
            "REA" => self.rea(trid, &cmd).await,
            "PRP" => self.prp(trid, &cmd).await,
            "SBP" if d.uses_guids() => self.sbp(trid, &cmd).await,
            "BLP" => self.blp(trid, &cmd).await,
            "GTC" => self.gtc(trid, &cmd).await,
            "UUX" if d.has_personal_message() => self.uux(trid, &cmd).await,
            "QRY" if d.has_challenges() => self.qry(trid, &cmd),
            "XFR" => self.xfr(trid, &cmd),
            "URL" => {
                let base = self
                    .ctx
                    .config
                    .http
                    .public_url
                    .trim_end_matches('/')
                    .to_string();
                self.conn
                    .send_line(&format!("URL {trid} /cgi-bin/HoTMaiL {base}/ 2"));
                Flow::Continue
            }
            // E-mail invitations to people without an account: msngate sends
            // no mail, but a malformed address is still the client's error.
            "SND" if !d.has_phone_properties() => self.invite_by_mail("SND", trid, &cmd),
            "SDC" if d.has_phone_properties() => self.invite_by_mail("SDC", trid, &cmd),
            "GCF" if d.has_personal_message() => {
                if !self.synced {
                    return self.reply_error(ErrorCode::NotExpected, trid);
                }
                let file = cmd.arg(1).unwrap_or("Shields.xml").to_string();
                self.conn
                    .send_payload(&format!("GCF {trid} {file}"), SHIELDS_XML.as_bytes());
                Flow::Continue
            }
            "IMS" => match cmd.arg(1) {
                Some(mode @ ("ON" | "OFF")) => {
                    self.conn.send_line(&format!("IMS {trid} 0 {mode}"));
                    Flow::Continue
                }
                _ => self.reply_error(ErrorCode::NotExpected, trid),
            },
            // Member directory search, switched off by Microsoft in 2003.
            "FND" => self.reply_error(ErrorCode::CommandDisabled, trid),
            other => {
                tracing::info!(peer = %self.conn.peer, command = %other, dialect = %d, "closing: unknown command");
                Flow::Close
            }
        }
    }

    fn invite_by_mail(&mut self, name: &str, trid: u32, cmd: &Command) -> Flow {
        match cmd.arg(1).and_then(crate::core::handle::normalize) {
            Some(_) => {
                self.conn.send_line(&format!("{name} {trid} OK"));
                Flow::Continue
            }
            None => self.reply_error(ErrorCode::InvalidParameter, trid),
        }
    }

    fn xfr(&mut self, trid: u32, cmd: &Command) -> Flow {
        if cmd.arg(1) != Some("SB") {
            return self.reply_error(ErrorCode::InvalidParameter, trid);
        }
        let Some(session) = self.session.clone() else {
            return Flow::Close;
        };
        if !self.presence_started || !session.presence().status.is_visible() {
            return self.reply_error(ErrorCode::NotAllowedWhenOffline, trid);
        }
        if !self.rate.allow() {
            return self.reply_error(ErrorCode::RateLimited, trid);
        }
        let cookie = self.ctx.hub.conversations.issue_cookie(
            session.handle.clone(),
            CookiePurpose::Create,
            u32::from(self.dialect.number()),
        );
        let address = self.ctx.config.switchboard_address();
        // MSNP13+ name the authentication scheme (and from MSNP14 a flag).
        let tail = match self.dialect.number() {
            ..=12 => "",
            13 => " U messenger.msn.com",
            _ => " U messenger.msn.com 1",
        };
        self.conn
            .send_line(&format!("XFR {trid} SB {address} CKI {cookie}{tail}"));
        Flow::Continue
    }
}
