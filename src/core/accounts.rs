//! Accounts: creation, passwords, and the checks behind every sign-in path.

use crate::core::handle;
use crate::core::hashing::{HashTurn, PasswordHasher, constant_time_eq};
use crate::core::throttle::SigninThrottle;
use crate::store::{AccountRow, Change, Store, StoreError, now_millis};
use std::net::IpAddr;
use std::sync::Arc;

pub const MAX_PASSWORD_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("not a valid handle (an e-mail address such as alice@example.com)")]
    InvalidHandle,
    #[error("the password must be 1 to {MAX_PASSWORD_LEN} bytes")]
    InvalidPassword,
    #[error("an account with that handle exists")]
    Exists,
    #[error("that domain is reserved for bridged Matrix and IRC users")]
    ReservedDomain,
    #[error("no such account")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] crate::core::hashing::HashError),
}

/// Why a sign-in was refused; logged, never shown in more detail to the client.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("unknown account")]
    UnknownAccount,
    #[error("wrong password")]
    WrongPassword,
    #[error("legacy (MD5) sign-in is disabled for this account")]
    LegacyDisabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Accounts {
    store: Store,
    hasher: PasswordHasher,
    legacy_md5: bool,
    /// Salts handed to unknown handles are derived from this, so probing
    /// `USR MD5 I` does not reveal which accounts exist. Read from the
    /// database on first use (created there once), so a restart does not
    /// change the decoys while real salts stay.
    decoy_secret: Arc<tokio::sync::OnceCell<String>>,
    /// Delays after wrong passwords, shared by the MD5 and Passport paths.
    throttle: Arc<SigninThrottle>,
}

const DECOY_SECRET_NAME: &str = "md5_decoy";

/// The decoy key kept in `server_secrets`, created by whichever process
/// first needs it; a concurrent creator's row wins and both read it back.
async fn load_decoy_secret(store: &Store) -> Result<String, StoreError> {
    let mut fresh = [0u8; 16];
    rand::fill(&mut fresh);
    sqlx::query(
        "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(DECOY_SECRET_NAME)
    .bind(hex::encode(fresh))
    .execute(store.pool())
    .await?;
    let stored =
        sqlx::query_scalar::<_, String>("SELECT value FROM server_secrets WHERE name = $1")
            .bind(DECOY_SECRET_NAME)
            .fetch_one(store.pool())
            .await?;
    Ok(stored)
}

impl Accounts {
    pub fn new(store: Store, hasher: PasswordHasher, legacy_md5: bool) -> Accounts {
        Accounts {
            store,
            hasher,
            legacy_md5,
            decoy_secret: Default::default(),
            throttle: Default::default(),
        }
    }

    /// Replaces the default sign-in limits (`signin_limits`).
    pub fn with_limits(mut self, limits: &crate::config::SigninLimitsConfig) -> Accounts {
        self.throttle = Arc::new(SigninThrottle::new(limits));
        self
    }

    pub fn throttle(&self) -> &SigninThrottle {
        &self.throttle
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn create(
        &self,
        raw_handle: &str,
        password: &str,
        nickname: Option<&str>,
    ) -> Result<AccountRow, AccountError> {
        let handle = handle::normalize(raw_handle).ok_or(AccountError::InvalidHandle)?;
        if handle::is_bridged(&handle) {
            return Err(AccountError::ReservedDomain);
        }
        check_password(password)?;
        let password_hash = self.hasher.hash(password).await?;
        let (legacy_salt, legacy_digest) = self.legacy_pair(password);
        let account = AccountRow {
            id: (rand::random::<u64>() >> 11) as i64,
            friendly_name: nickname
                .filter(|n| !n.is_empty())
                .unwrap_or(&handle)
                .to_string(),
            handle,
            password_hash,
            legacy_salt,
            legacy_digest,
            blp: "AL".into(),
            gtc: "A".into(),
            list_version: 1,
            personal_message: String::new(),
            created_at: now_millis(),
        };
        match self.store.create_account(&account).await {
            Ok(()) => Ok(account),
            Err(StoreError::Conflict) => Err(AccountError::Exists),
            Err(e) => Err(e.into()),
        }
    }

    fn legacy_pair(&self, password: &str) -> (Option<String>, Option<String>) {
        if !self.legacy_md5 {
            return (None, None);
        }
        let salt = new_salt();
        let digest = msnp::auth::md5_login_hash(&salt, password);
        (Some(salt), Some(digest))
    }

    pub async fn set_password(&self, raw_handle: &str, password: &str) -> Result<(), AccountError> {
        check_password(password)?;
        let account = self.find(raw_handle).await?.ok_or(AccountError::NotFound)?;
        let hash = self.hasher.hash(password).await?;
        let (salt, digest) = self.legacy_pair(password);
        self.store
            .apply(&[
                Change::SetField {
                    account_id: account.id,
                    field: crate::store::AccountField::PasswordHash,
                    value: hash,
                },
                Change::SetLegacyDigest {
                    account_id: account.id,
                    salt,
                    digest,
                },
            ])
            .await?;
        Ok(())
    }

    pub async fn delete(&self, raw_handle: &str) -> Result<(), AccountError> {
        let handle = handle::normalize(raw_handle).ok_or(AccountError::InvalidHandle)?;
        if self.store.delete_account(&handle).await? {
            Ok(())
        } else {
            Err(AccountError::NotFound)
        }
    }

    pub async fn list(&self) -> Result<Vec<AccountRow>, AccountError> {
        Ok(self.store.list_accounts().await?)
    }

    pub async fn find(&self, raw_handle: &str) -> Result<Option<AccountRow>, StoreError> {
        match handle::normalize(raw_handle) {
            Some(h) => self.store.account_by_handle(&h).await,
            None => Ok(None),
        }
    }

    /// Password check for Passport (HTTP) sign-in from `source`: waits its
    /// turn after earlier failures, then hashes on the hashing threads.
    pub async fn verify_password(
        &self,
        raw_handle: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<AccountRow, SignInError> {
        let key = handle::normalize(raw_handle).unwrap_or_else(|| raw_handle.to_ascii_lowercase());
        self.throttle.wait_turn(&key, source).await;
        let turn = HashTurn {
            source: Some(source),
            account: key.clone(),
        };
        let result = match self.find(raw_handle).await? {
            Some(account)
                if self
                    .hasher
                    .verify(password, &account.password_hash, turn.clone())
                    .await =>
            {
                Ok(account)
            }
            Some(_) => Err(SignInError::WrongPassword),
            None => {
                // Spend the same time as a real check so timing does not reveal the account.
                let _ = self.hasher.verify(password, DUMMY_HASH, turn).await;
                Err(SignInError::UnknownAccount)
            }
        };
        self.note_outcome(&key, source, result.is_ok());
        result
    }

    fn note_outcome(&self, key: &str, source: IpAddr, succeeded: bool) {
        if succeeded {
            self.throttle.succeeded(key);
        } else {
            self.throttle.failed(key, source);
        }
    }

    /// `USR MD5 I`: the salt to hand out (the account's fixed salt, or a
    /// stable decoy for handles without legacy sign-in), and the account,
    /// kept by the caller for [`Accounts::check_legacy`].
    pub async fn legacy_challenge(
        &self,
        raw_handle: &str,
    ) -> Result<(String, Option<AccountRow>), StoreError> {
        let account = self.find(raw_handle).await?;
        let salt = match account.as_ref().and_then(|a| a.legacy_salt.as_ref()) {
            Some(salt) if self.legacy_md5 => salt.clone(),
            _ => self.decoy_salt(raw_handle).await?,
        };
        Ok((salt, account))
    }

    async fn decoy_salt(&self, raw_handle: &str) -> Result<String, StoreError> {
        let secret = self
            .decoy_secret
            .get_or_try_init(|| load_decoy_secret(&self.store))
            .await?;
        let mut input = secret.as_bytes().to_vec();
        input.extend_from_slice(raw_handle.to_ascii_lowercase().as_bytes());
        let digest = msnp::auth::md5_hex(&input);
        let a = u64::from_str_radix(digest.get(..8).unwrap_or("0"), 16).unwrap_or(0);
        let b = u64::from_str_radix(digest.get(8..12).unwrap_or("0"), 16).unwrap_or(0);
        Ok(format!(
            "{}.{}",
            1_000_000_000 + a % 1_000_000_000,
            b % 100_000
        ))
    }

    /// Checks an MSNP2-7 `USR MD5 S` response, hex MD5(salt || password),
    /// against the account [`Accounts::legacy_challenge`] found for
    /// `handle` (canonical), after waiting its turn like Passport sign-in.
    pub async fn check_legacy(
        &self,
        handle: &str,
        account: Option<AccountRow>,
        response: &str,
        source: IpAddr,
    ) -> Result<AccountRow, SignInError> {
        self.throttle.wait_turn(handle, source).await;
        let result = self.compare_legacy(account, response);
        self.note_outcome(handle, source, result.is_ok());
        result
    }

    fn compare_legacy(
        &self,
        account: Option<AccountRow>,
        response: &str,
    ) -> Result<AccountRow, SignInError> {
        let account = account.ok_or(SignInError::UnknownAccount)?;
        if !self.legacy_md5 {
            return Err(SignInError::LegacyDisabled);
        }
        let Some(digest) = account.legacy_digest.as_deref() else {
            return Err(SignInError::LegacyDisabled);
        };
        if constant_time_eq(digest.as_bytes(), response.to_ascii_lowercase().as_bytes()) {
            Ok(account)
        } else {
            Err(SignInError::WrongPassword)
        }
    }
}

/// A valid argon2id hash of a random password, for constant-time refusals.
const DUMMY_HASH: &str = "$argon2id$v=19$m=16384,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$wZ4q0bqfHqS3mYdJvO1o2m0m5yQ2bD7b7bqfHqS3mYc";

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        return Err(AccountError::InvalidPassword);
    }
    Ok(())
}

/// A salt in the shape the Microsoft service used (`1056561624.17795`).
fn new_salt() -> String {
    format!(
        "{}.{}",
        1_000_000_000 + rand::random::<u32>() % 1_000_000_000,
        rand::random::<u32>() % 100_000
    )
}
