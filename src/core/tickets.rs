//! Passport tickets: what the HTTP login hands out and `USR TWN S` /
//! `USR SSO S` redeem.
//!
//! Random (2 × 128 bits), bound to one account, short-lived and single-use.
//! A ticket issued by the SSO token service (MSNP15+) also carries its proof
//! key, the secret the client's MBI response to the nonce is checked with.
//! Kept in memory: a restart only makes clients sign in again.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub struct TicketIssuer {
    lifetime: Duration,
    tickets: Mutex<HashMap<String, Issued>>,
    services: Mutex<ServiceTokens>,
}

/// How long a SOAP service token (address book, sharing, storage) is good
/// for: clients send the same one with every request of a session and ask
/// the token service again once it has expired.
pub const SERVICE_TOKEN_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Live service tokens kept per account; a newer one pushes out the oldest.
const SERVICE_TOKENS_PER_ACCOUNT: usize = 32;

#[derive(Default)]
struct ServiceTokens {
    by_token: HashMap<String, (String, Instant)>,
    by_owner: HashMap<String, VecDeque<String>>,
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
            services: Mutex::new(ServiceTokens::default()),
        }
    }

    /// Issues a token for the SOAP services (`contacts.msn.com`,
    /// `storage.msn.com`, …) in the same `t=…&p=…` shape. Unlike a sign-in
    /// ticket it is reusable until it expires ([`SERVICE_TOKEN_LIFETIME`]).
    pub fn issue_service_token(&self, handle: &str) -> String {
        let token = format!("t={}&p={}", random_hex(), random_hex());
        let expires = Instant::now() + SERVICE_TOKEN_LIFETIME;
        let mut services = self.services.lock();
        let ServiceTokens { by_token, by_owner } = &mut *services;
        let owned = by_owner.entry(handle.to_string()).or_default();
        owned.retain(|t| by_token.get(t).is_some_and(|(_, e)| *e > Instant::now()));
        while owned.len() >= SERVICE_TOKENS_PER_ACCOUNT {
            if let Some(oldest) = owned.pop_front() {
                by_token.remove(&oldest);
            }
        }
        owned.push_back(token.clone());
        by_token.insert(token.clone(), (handle.to_string(), expires));
        token
    }

    /// The account a service token was issued to, while it is valid. The
    /// token may arrive XML-escaped (`&amp;p=`) or followed by the rest of a
    /// header, as with sign-in tickets.
    pub fn service_token_owner(&self, token: &str) -> Option<String> {
        let token = token.replace("&amp;", "&");
        let token = token.split(['\'', ',']).next().unwrap_or_default();
        let mut services = self.services.lock();
        let (owner, expires) = services.by_token.get(token)?.clone();
        if expires <= Instant::now() {
            services.by_token.remove(token);
            if let Some(owned) = services.by_owner.get_mut(&owner) {
                owned.retain(|t| t != token);
            }
            return None;
        }
        Some(owner)
    }

    /// Ends every service token of `handle` (its password changed, or the
    /// account was deleted).
    pub fn revoke_service_tokens(&self, handle: &str) {
        let mut services = self.services.lock();
        if let Some(owned) = services.by_owner.remove(handle) {
            for token in owned {
                services.by_token.remove(&token);
            }
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

    #[test]
    fn service_tokens_are_reusable_bound_and_capped() {
        let issuer = TicketIssuer::new(Duration::from_secs(60));
        let token = issuer.issue_service_token("alice@example.com");
        for _ in 0..3 {
            assert_eq!(
                issuer.service_token_owner(&token).as_deref(),
                Some("alice@example.com")
            );
        }
        let escaped = token.replace('&', "&amp;");
        assert_eq!(
            issuer.service_token_owner(&escaped).as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(issuer.service_token_owner("t=forged&p=forged"), None);
        // Not a sign-in ticket.
        assert_eq!(
            issuer.redeem(&token, "alice@example.com"),
            Err(TicketError::Unknown)
        );
        let later: Vec<String> = (0..SERVICE_TOKENS_PER_ACCOUNT)
            .map(|_| issuer.issue_service_token("alice@example.com"))
            .collect();
        assert_eq!(
            issuer.service_token_owner(&token),
            None,
            "oldest pushed out"
        );
        assert!(
            later
                .iter()
                .all(|t| issuer.service_token_owner(t).is_some())
        );
        issuer.revoke_service_tokens("alice@example.com");
        assert!(
            later
                .iter()
                .all(|t| issuer.service_token_owner(t).is_none())
        );
    }
}
