//! Polling with deadlines: every wait in the e2e tests names what it waits for and fails with
//! the last thing it saw. Nothing sleeps and hopes.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(50);

/// A deadline for one condition.
pub struct Deadline {
    what: String,
    start: Instant,
    end: Instant,
}

impl Deadline {
    pub fn new(limit: Duration, what: &str) -> Deadline {
        let start = Instant::now();
        Deadline {
            what: what.to_owned(),
            start,
            end: start + limit,
        }
    }

    /// Time since the deadline was set.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Panics once the deadline has passed, naming the last observation; sleeps one poll
    /// interval otherwise.
    pub fn tick(&mut self, last: &str) {
        self.check(last);
        std::thread::sleep(POLL);
    }

    /// [`Deadline::tick`] for async code.
    pub async fn tick_async(&mut self, last: &str) {
        self.check(last);
        tokio::time::sleep(POLL).await;
    }

    fn check(&self, last: &str) {
        if Instant::now() >= self.end {
            panic!(
                "timed out after {:.1}s waiting for {}; last seen: {last}",
                self.elapsed().as_secs_f64(),
                self.what
            );
        }
    }
}

/// Polls `probe` until it returns `Ok`, or panics at the deadline with the last `Err`.
pub async fn until<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let mut deadline = Deadline::new(limit, what);
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => deadline.tick_async(&last).await,
        }
    }
}

/// Runs a future to completion on `runtime` from any context (also from inside another
/// runtime, where `block_on` itself would panic), on a scoped thread.
pub fn block_on<F>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(future))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Waits until the Deployment `name`'s `replicas` pods exist and each is bound or found
/// unschedulable by the scheduler; returns them.
pub async fn settled(
    client: &kube::Client,
    ns: &str,
    name: &str,
    replicas: usize,
) -> Vec<serde_json::Value> {
    until(
        Duration::from_secs(120),
        &format!("{replicas} pods of {ns}/{name} settled"),
        || async {
            let pods = super::api::pods(client, ns).await;
            let mine = super::objects::named(&pods, &format!("{name}-"));
            let settled = super::objects::bound(&mine) + super::objects::unschedulable(&mine);
            if mine.len() == replicas && settled == replicas {
                Ok(mine.into_iter().cloned().collect())
            } else {
                Err(format!("{} pods, {settled} settled", mine.len()))
            }
        },
    )
    .await
}
