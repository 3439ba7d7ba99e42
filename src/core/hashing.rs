//! Password hashing (argon2id) on a fixed set of low-priority threads.
//!
//! Why not `spawn_blocking`: a sign-in storm would run as many 16 MiB hashes
//! at once as the blocking pool has threads, every one at the runtime's
//! priority, and the allocator may keep the freed memory. Here `threads`
//! hashes run at once, each thread reuses one preallocated block buffer for
//! its whole life, and the threads run at nice 19 so switchboards and
//! presence keep their latency while a storm queues up.

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::mpsc;
use tokio::sync::oneshot;

const OUTPUT_LEN: usize = 32;

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String, HashError>>,
    },
    Verify {
        password: String,
        phc: String,
        reply: oneshot::Sender<bool>,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Failed(String),
    #[error("the hashing pool has stopped")]
    Stopped,
}

/// Handle to the hashing threads. Cloning shares the same threads.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: mpsc::Sender<Job>,
}

impl PasswordHasher {
    pub fn new(
        threads: usize,
        memory_kib: u32,
        iterations: u32,
    ) -> Result<PasswordHasher, HashError> {
        let params = Params::new(memory_kib, iterations, 1, Some(OUTPUT_LEN))
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(parking_lot::Mutex::new(rx));
        for index in 0..threads.max(1) {
            let rx = rx.clone();
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("msngate-hash-{index}"))
                .spawn(move || worker(rx, params))
                .map_err(|e| HashError::Failed(e.to_string()))?;
        }
        Ok(PasswordHasher { jobs: tx })
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=…`).
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Hash {
                password: password.to_string(),
                reply,
            })
            .map_err(|_| HashError::Stopped)?;
        rx.await.map_err(|_| HashError::Stopped)?
    }

    /// Checks `password` against a stored PHC string.
    pub async fn verify(&self, password: &str, phc: &str) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .jobs
            .send(Job::Verify {
                password: password.to_string(),
                phc: phc.to_string(),
                reply,
            })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

fn worker(rx: std::sync::Arc<parking_lot::Mutex<mpsc::Receiver<Job>>>, params: Params) {
    lower_thread_priority();
    let mut memory = vec![Block::default(); params.block_count()];
    loop {
        let job = {
            let guard = rx.lock();
            guard.recv()
        };
        let Ok(job) = job else { return };
        match job {
            Job::Hash { password, reply } => {
                let _ = reply.send(hash_with(&params, &password, &mut memory));
            }
            Job::Verify {
                password,
                phc,
                reply,
            } => {
                let _ = reply.send(verify_with(&params, &password, &phc, &mut memory));
            }
        }
    }
}

fn hash_with(params: &Params, password: &str, memory: &mut [Block]) -> Result<String, HashError> {
    let mut salt_bytes = [0u8; 16];
    rand::fill(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError::Failed(e.to_string()))?;
    let mut out = [0u8; OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt_bytes, &mut out, &mut *memory)
        .map_err(|e| HashError::Failed(e.to_string()))?;
    let output =
        argon2::password_hash::Output::new(&out).map_err(|e| HashError::Failed(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: params
            .try_into()
            .map_err(|e: argon2::password_hash::Error| HashError::Failed(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

fn verify_with(params: &Params, password: &str, phc: &str, memory: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Some(expected) = parsed.hash else {
        return false;
    };
    let Ok(stored_params) = Params::try_from(&parsed) else {
        return false;
    };
    let Some(salt) = parsed.salt else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, stored_params.clone());
    let result = if stored_params.block_count() == params.block_count() {
        argon.hash_password_into_with_memory(
            password.as_bytes(),
            salt_bytes,
            &mut out,
            &mut *memory,
        )
    } else {
        // Hashed under other settings: pay for a one-off buffer.
        argon.hash_password_into(password.as_bytes(), salt_bytes, &mut out)
    };
    result.is_ok() && constant_time_eq(&out, expected.as_bytes())
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// nice 19 for the calling thread (Linux gives each thread its own nice value).
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take no pointers; failure only leaves the priority as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_and_verifies() {
        let hasher = PasswordHasher::new(1, 1024, 1).unwrap();
        let phc = hasher.hash("s3cret!").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(hasher.verify("s3cret!", &phc).await);
        assert!(!hasher.verify("s3cret", &phc).await);
        assert!(!hasher.verify("s3cret!", "garbage").await);
        // A hash made under other parameters still verifies.
        let other = PasswordHasher::new(1, 2048, 1).unwrap();
        assert!(other.verify("s3cret!", &phc).await);
    }
}
