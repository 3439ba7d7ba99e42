//! The notification server for Windows Live Messenger dialects (MSNP13–18).
//!
//! Only what differs from MSNP12 lives here: `USR TWN`/`USR SSO` with the
//! RST token service and the MBI check, the `ADL`/`RML`/`FQY` subscriptions
//! that replace `SYN`/`ADC`/`REM`, `CHG` with `caps:extcaps`, the extra `UUX`
//! documents, and presence lines in each dialect's handle form. The lists
//! themselves are the same roster the older dialects edit, so a WLM user and
//! an MSNP2–12 user on the same accounts see each other.
//!
//! MPOP (several endpoints per account) is not offered: a second sign-in
//! ends the first with `OUT OTH`, as in MSNP12, and the profile says
//! `MPOPEnabled: 0`.

mod lists;
mod login;
mod presence;

use super::{Flow, NsConnection};
use msnp::codec::Command;

/// Network id of every contact msngate knows: local accounts and bridged
/// users alike appear as Passport (WLM) contacts.
pub(super) const NETWORK_PASSPORT: u32 = 1;

impl NsConnection {
    /// Commands whose meaning changed in MSNP13+. `None`: handled as in
    /// MSNP12 (`BLP`, `PRP`, `QRY`, `XFR`, `URL`, `PNG`, …).
    pub(super) async fn dispatch_wlm(&mut self, trid: u32, cmd: &Command) -> Option<Flow> {
        let name = cmd.name.as_str();
        if msnp::dialect::LEGACY_LIST_COMMANDS.contains(&name) {
            tracing::info!(peer = %self.conn.peer, command = %name, dialect = %self.dialect,
                "closing: list command removed in MSNP13");
            return Some(Flow::Close);
        }
        Some(match name {
            "ADL" => self.adl(trid, cmd).await,
            "RML" => self.rml(trid, cmd).await,
            "FQY" if self.dialect.has_fqy() => self.fqy(trid, cmd).await,
            "CHG" => self.wlm_chg(trid, cmd).await,
            "UUX" => self.wlm_uux(trid, cmd).await,
            "BLP" => self.wlm_blp(trid, cmd).await,
            // Notifications to another user's endpoints (sign-out requests,
            // P2P bootstrap data) and messages over the notification
            // connection are not relayed yet: answered as "not reachable".
            "UUN" | "UUM" => self.reply_error(msnp::error::ErrorCode::NotOnline, trid),
            _ => return None,
        })
    }

    /// `BLP trid AL|BL`: as in MSNP12, except that the mode already in
    /// force is echoed, not refused with 218 (clients send it before every
    /// initial ADL, wlm/notification.md §7).
    async fn wlm_blp(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(session) = self.session.clone() else {
            return Flow::Close;
        };
        let current = self
            .ctx
            .hub
            .with_roster(&session, |r| r.privacy.as_stored())
            .await;
        match (current, cmd.arg(1)) {
            (Ok(current), Some(asked)) if current == asked => {
                self.conn.send_line(&format!("BLP {trid} {asked}"));
                Flow::Continue
            }
            _ => self.blp(trid, cmd).await,
        }
    }

    /// An error reply in the form MSNP13+ clients read: the codes MSNPSharp
    /// always reads a payload after go out as `NNN trid 0`.
    pub(super) fn send_wlm_error(&mut self, code: u16, trid: u32) {
        if msnp::codec::WLM_ERRORS_WITH_PAYLOAD.contains(&code) {
            self.conn.send_payload(&format!("{code} {trid}"), b"");
        } else {
            self.conn.send_line(&format!("{code} {trid}"));
        }
    }
}
