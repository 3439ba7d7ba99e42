//! Background loops that outlive a panic.
//!
//! A loop spawned with `tokio::spawn` that panics is gone for good, silently:
//! the bridge would keep running without, say, its presence fan-out. Each
//! long-lived loop is instead started through [`supervise`], which logs the
//! panic, counts it on `/metrics` and starts the loop again after a pause
//! that grows while it keeps failing. A loop that returns normally (for
//! example at shutdown) is not restarted.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Pause before the first restart; doubles after each quick failure.
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);
/// A loop that ran this long before panicking starts again at `FIRST_PAUSE`.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Runs `start()` until it returns, starting it again whenever it panics,
/// until `shutdown` flips. Returns the supervising task.
pub fn supervise<F, Fut>(
    name: &'static str,
    metrics: Arc<crate::metrics::Metrics>,
    mut shutdown: watch::Receiver<bool>,
    mut start: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = FIRST_PAUSE;
        loop {
            let began = tokio::time::Instant::now();
            match tokio::spawn(start()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    crate::metrics::Metrics::inc(&metrics.task_panics);
                    if began.elapsed() >= HEALTHY_RUN {
                        pause = FIRST_PAUSE;
                    }
                    tracing::error!(task = name, error = %e, restart_in_ms = pause.as_millis() as u64,
                        "a background task panicked; starting it again");
                }
                // Cancelled: the runtime is going away.
                Err(_) => return,
            }
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_panicking_loop_is_started_again_and_a_finished_one_is_not() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (_stop, shutdown) = watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let task = supervise("test", metrics.clone(), shutdown, move || {
            let counter = counter.clone();
            async move {
                // Panics twice, then finishes normally.
                if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("boom");
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the supervisor ends once the loop returns")
            .expect("the supervisor itself does not panic");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(metrics.task_panics.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn shutdown_stops_the_restarts() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (stop, shutdown) = watch::channel(false);
        let _ = stop.send(true);
        let task = supervise("test", metrics, shutdown, || async { panic!("boom") });
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("no restart after shutdown")
            .expect("the supervisor itself does not panic");
    }
}
