//! Password hashing (argon2id) on a fixed set of low-priority threads.
//!
//! Why not `spawn_blocking`: a sign-in storm would run as many 16 MiB hashes
//! at once as the blocking pool has threads, every one at the runtime's
//! priority, and the allocator may keep the freed memory. Here `threads`
//! hashes run at once, each thread reuses one preallocated block buffer for
//! its whole life, and the threads run at nice 19 so switchboards and
//! presence keep their latency while a storm queues up.
//!
//! The queue is fair: waiting jobs are taken round-robin by source address,
//! and within one address round-robin by account, so a flood of guesses
//! from one address (or at one account) delays another user's sign-in by
//! about one hash per thread, not by the whole flood.

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
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

/// Whose turn a hash belongs to: the source address (none for local work
/// such as `user add`) and the account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HashTurn {
    pub source: Option<IpAddr>,
    pub account: String,
}

/// Jobs of one source address, by account.
#[derive(Default)]
struct SourceJobs {
    accounts: HashMap<String, VecDeque<Job>>,
    order: VecDeque<String>,
}

/// Waiting jobs, taken round-robin by source, then by account.
#[derive(Default)]
struct FairQueue {
    sources: HashMap<Option<IpAddr>, SourceJobs>,
    order: VecDeque<Option<IpAddr>>,
    closed: bool,
}

impl FairQueue {
    fn push(&mut self, turn: HashTurn, job: Job) {
        let source = self.sources.entry(turn.source).or_insert_with(|| {
            self.order.push_back(turn.source);
            SourceJobs::default()
        });
        let jobs = source
            .accounts
            .entry(turn.account.clone())
            .or_insert_with(|| {
                source.order.push_back(turn.account);
                VecDeque::new()
            });
        jobs.push_back(job);
    }

    fn pop(&mut self) -> Option<Job> {
        let address = self.order.pop_front()?;
        let source = self.sources.get_mut(&address)?;
        let account = source.order.pop_front()?;
        let jobs = source.accounts.get_mut(&account)?;
        let job = jobs.pop_front();
        if jobs.is_empty() {
            source.accounts.remove(&account);
        } else {
            source.order.push_back(account);
        }
        if source.accounts.is_empty() {
            self.sources.remove(&address);
        } else {
            self.order.push_back(address);
        }
        job
    }
}

struct Shared {
    queue: Mutex<FairQueue>,
    ready: Condvar,
}

/// Stops the threads once the last [`PasswordHasher`] clone is gone.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.queue.lock().closed = true;
        self.0.ready.notify_all();
    }
}

/// Handle to the hashing threads. Cloning shares the same threads.
#[derive(Clone)]
pub struct PasswordHasher {
    owner: Arc<Owner>,
}

impl PasswordHasher {
    pub fn new(
        threads: usize,
        memory_kib: u32,
        iterations: u32,
    ) -> Result<PasswordHasher, HashError> {
        let params = Params::new(memory_kib, iterations, 1, Some(OUTPUT_LEN))
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(FairQueue::default()),
            ready: Condvar::new(),
        });
        for index in 0..threads.max(1) {
            let shared = shared.clone();
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("msngate-hash-{index}"))
                .spawn(move || worker(&shared, params))
                .map_err(|e| HashError::Failed(e.to_string()))?;
        }
        Ok(PasswordHasher {
            owner: Arc::new(Owner(shared)),
        })
    }

    fn submit(&self, turn: HashTurn, job: Job) {
        let shared = &self.owner.0;
        shared.queue.lock().push(turn, job);
        shared.ready.notify_one();
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=…`).
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let (reply, rx) = oneshot::channel();
        let job = Job::Hash {
            password: password.to_string(),
            reply,
        };
        self.submit(HashTurn::default(), job);
        rx.await.map_err(|_| HashError::Stopped)?
    }

    /// Checks `password` against a stored PHC string, in `turn`'s place
    /// in the fair queue.
    pub async fn verify(&self, password: &str, phc: &str, turn: HashTurn) -> bool {
        let (reply, rx) = oneshot::channel();
        let job = Job::Verify {
            password: password.to_string(),
            phc: phc.to_string(),
            reply,
        };
        self.submit(turn, job);
        rx.await.unwrap_or(false)
    }
}

fn next_job(shared: &Shared) -> Option<Job> {
    let mut queue = shared.queue.lock();
    loop {
        if let Some(job) = queue.pop() {
            return Some(job);
        }
        if queue.closed {
            return None;
        }
        shared.ready.wait(&mut queue);
    }
}

fn worker(shared: &Shared, params: Params) {
    lower_thread_priority();
    let mut memory = vec![Block::default(); params.block_count()];
    while let Some(job) = next_job(shared) {
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
        let turn = HashTurn::default;
        assert!(hasher.verify("s3cret!", &phc, turn()).await);
        assert!(!hasher.verify("s3cret", &phc, turn()).await);
        assert!(!hasher.verify("s3cret!", "garbage", turn()).await);
        // A hash made under other parameters still verifies.
        let other = PasswordHasher::new(1, 2048, 1).unwrap();
        assert!(other.verify("s3cret!", &phc, turn()).await);
    }

    /// A job told apart by its password; nobody waits for its reply.
    fn verify_job(tag: &str) -> Job {
        Job::Verify {
            password: tag.to_string(),
            phc: String::new(),
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn the_queue_takes_turns_by_source_then_by_account() {
        let mut queue = FairQueue::default();
        let turn = |ip: u8, account: &str| HashTurn {
            source: Some([192, 0, 2, ip].into()),
            account: account.into(),
        };
        for n in 0..3 {
            queue.push(turn(1, "victim"), verify_job(&format!("flood{n}")));
        }
        queue.push(turn(1, "other"), verify_job("same-source"));
        queue.push(turn(2, "user"), verify_job("user"));
        let order: Vec<String> = std::iter::from_fn(|| queue.pop())
            .map(|job| match job {
                Job::Verify { password, .. } | Job::Hash { password, .. } => password,
            })
            .collect();
        assert_eq!(order, ["flood0", "user", "same-source", "flood1", "flood2"]);
    }
}
