//! Passport tickets: what the HTTP login hands out and `USR TWN S` redeems.
//!
//! Random (2 × 128 bits), bound to one account, short-lived and single-use.
//! Kept in memory: a restart only makes clients sign in again.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct TicketIssuer {
    lifetime: Duration,
    tickets: Mutex<HashMap<String, (String, Instant)>>,
}

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
        let ticket = format!("t={}&p={}", random_hex(), random_hex());
        let now = Instant::now();
        let mut tickets = self.tickets.lock();
        if tickets.len() > 1024 {
            tickets.retain(|_, (_, expires)| *expires > now);
        }
        tickets.insert(ticket.clone(), (handle.to_string(), now + self.lifetime));
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
        let ticket = ticket.split(['\'', ',']).next().unwrap_or_default();
        let mut tickets = self.tickets.lock();
        let Some((owner, expires)) = tickets.get(ticket) else {
            return Err(TicketError::Unknown);
        };
        if *expires <= Instant::now() {
            tickets.remove(ticket);
            return Err(TicketError::Expired);
        }
        if owner != handle {
            // Not consumed: the rightful owner may still use it.
            return Err(TicketError::WrongAccount);
        }
        tickets.remove(ticket);
        Ok(())
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
}
