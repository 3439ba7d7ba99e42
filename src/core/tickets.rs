//! Passport tickets: what the HTTP login hands out and `USR TWN S` /
//! `USR SSO S` redeem.
//!
//! Random (2 × 128 bits), bound to one account, short-lived and single-use.
//! A ticket issued by the SSO token service (MSNP15+) also carries its proof
//! key, the secret the client's MBI response to the nonce is checked with.
//! Kept in memory: a restart only makes clients sign in again.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct TicketIssuer {
    lifetime: Duration,
    tickets: Mutex<HashMap<String, Issued>>,
}

struct Issued {
    owner: String,
    expires: Instant,
    proof_key: Option<ProofKey>,
}

/// The 24 random bytes sent as a token's `BinarySecret`.
pub type ProofKey = [u8; 24];

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("unknown or already used ticket")]
    Unknown,
    #[error("ticket expired")]
    Expired,
    #[error("ticket issued to another account")]
    WrongAccount,
}

impl TicketIssuer {
    pub fn new(lifetime: Duration) -> TicketIssuer {
        TicketIssuer {
            lifetime,
            tickets: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a ticket for `handle` (canonical form), in the `t=…&p=…` shape
    /// clients expect: no spaces, commas or quotes.
    pub fn issue(&self, handle: &str) -> String {
        self.insert(handle, None)
    }

    /// Issues a ticket with a fresh proof key (the SSO token of
    /// `messengerclear.live.com`); [`TicketIssuer::redeem_with_proof`] gives
    /// the key back to the notification server.
    pub fn issue_with_proof(&self, handle: &str) -> (String, ProofKey) {
        let mut key = [0u8; 24];
        rand::fill(&mut key);
        (self.insert(handle, Some(key)), key)
    }

    fn insert(&self, handle: &str, proof_key: Option<ProofKey>) -> String {
        let ticket = format!("t={}&p={}", random_hex(), random_hex());
        let now = Instant::now();
        let mut tickets = self.tickets.lock();
        if tickets.len() > 1024 {
            tickets.retain(|_, issued| issued.expires > now);
        }
        tickets.insert(
            ticket.clone(),
            Issued {
                owner: handle.to_string(),
                expires: now + self.lifetime,
                proof_key,
            },
        );
        ticket
    }

    /// Consumes `ticket` if it was issued to `handle` and has not expired.
    ///
    /// Some client libraries send everything after `from-PP='` in the
    /// `Authentication-Info` header, so the ticket may arrive followed by
    /// `',ru=…` or `,ru=…`. Issued tickets never contain `'` or `,`, so the
    /// ticket is what comes before the first of them; a forged prefix still
    /// finds nothing.
    pub fn redeem(&self, ticket: &str, handle: &str) -> Result<(), TicketError> {
        self.redeem_with_proof(ticket, handle).map(|_| ())
    }

    /// As [`TicketIssuer::redeem`], also returning the proof key the ticket
    /// was issued with (`None` for a Passport 1.4 / RST ticket).
    pub fn redeem_with_proof(
        &self,
        ticket: &str,
        handle: &str,
    ) -> Result<Option<ProofKey>, TicketError> {
        let ticket = ticket.split(['\'', ',']).next().unwrap_or_default();
        let mut tickets = self.tickets.lock();
        let Some(issued) = tickets.get(ticket) else {
            return Err(TicketError::Unknown);
        };
        if issued.expires <= Instant::now() {
            tickets.remove(ticket);
            return Err(TicketError::Expired);
        }
        if issued.owner != handle {
            // Not consumed: the rightful owner may still use it.
            return Err(TicketError::WrongAccount);
        }
        Ok(tickets.remove(ticket).and_then(|issued| issued.proof_key))
    }
}

pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use_bound_and_expiring() {
        let issuer = TicketIssuer::new(Duration::from_secs(60));
        let t = issuer.issue("alice@example.com");
        assert!(t.starts_with("t=") && t.contains("&p=") && !t.contains([' ', ',', '\'']));
        assert_eq!(
            issuer.redeem(&t, "bob@example.com"),
            Err(TicketError::WrongAccount)
        );
        assert_eq!(issuer.redeem(&t, "alice@example.com"), Ok(()));
        assert_eq!(
            issuer.redeem(&t, "alice@example.com"),
            Err(TicketError::Unknown)
        );
        let t = issuer.issue("alice@example.com");
        let tailed = format!("{t}',ru=http://messenger.msn.com");
        assert_eq!(issuer.redeem(&tailed, "alice@example.com"), Ok(()));
        assert_eq!(
            issuer.redeem(&tailed, "alice@example.com"),
            Err(TicketError::Unknown)
        );
        let short = TicketIssuer::new(Duration::from_millis(0));
        let t = short.issue("alice@example.com");
        assert_eq!(
            short.redeem(&t, "alice@example.com"),
            Err(TicketError::Expired)
        );
    }

    #[test]
    fn an_sso_ticket_gives_back_its_proof_key_once() {
        let issuer = TicketIssuer::new(Duration::from_secs(60));
        let (t, key) = issuer.issue_with_proof("alice@example.com");
        let (other, other_key) = issuer.issue_with_proof("alice@example.com");
        assert_ne!(key, other_key);
        assert_eq!(
            issuer.redeem_with_proof(&t, "alice@example.com"),
            Ok(Some(key))
        );
        assert_eq!(
            issuer.redeem_with_proof(&t, "alice@example.com"),
            Err(TicketError::Unknown)
        );
        let plain = issuer.issue("alice@example.com");
        assert_eq!(
            issuer.redeem_with_proof(&plain, "alice@example.com"),
            Ok(None)
        );
        assert_eq!(
            issuer.redeem_with_proof(&other, "alice@example.com"),
            Ok(Some(other_key))
        );
    }
}
