//! Pacing requests to a registry: how many a second of each kind, how many in flight, and
//! how many bytes a second, shared by every image of the process.
//!
//! Production registries cap writes (ECR: 10 `PutImage` a second per account and region)
//! and answer past the cap with `429` and often no `Retry-After`. A client that retries each
//! refused request on its own backoff keeps hitting the cap from many images at once and
//! fails images that nothing was wrong with. Here each (registry, [`RequestKind`]) has one
//! pace that every request of that kind waits for:
//!
//! - a rate (requests a second), unknown until the registry first throttles unless the
//!   configuration or a built-in starting value ([`RegistryLimits::builtin`]) gives one;
//!   it is cut to [`DECREASE`] of itself (the first time, of what the registry answered in
//!   the second before and was still answering) on a throttle and grows by [`INCREASE_PER_SECOND`] of itself per second
//!   while requests wait for it and none is throttled: additive increase, multiplicative
//!   decrease, so it settles just under what the registry allows;
//! - a window of requests in flight, unbounded until the first throttle, then halved on
//!   each one and widened by one for every window's worth of successes;
//! - one reaction per throttle event: refusals of requests sent before the last cut are
//!   answers to load that was already cut, and do not cut again.
//!
//! A configured rate is the fleet's (see [`Limits::fleet_size`]): each process paces to its
//! share of it, and never above. A learnt rate is the process's own.
//!
//! It does not retry: [`super::retry`] decides that, and this module only tells it how long
//! the registry wants it to wait.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A kind of registry request, paced on its own: registries meter them apart (ECR has a
/// quota per API action behind each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    ManifestHead,
    ManifestGet,
    /// ECR's `PutImage`.
    ManifestPut,
    /// ECR's `BatchCheckLayerAvailability`.
    BlobHead,
    /// ECR's `GetDownloadUrlForLayer`.
    BlobGet,
    /// Opening an upload session or asking for a mount: ECR's `InitiateLayerUpload`.
    UploadStart,
    /// Sending a blob and closing its session: ECR's `UploadLayerPart` and
    /// `CompleteLayerUpload`.
    UploadFinish,
    /// Tag lists, the catalog, referrers lists.
    List,
}

impl RequestKind {
    pub const ALL: [RequestKind; 8] = [
        RequestKind::ManifestHead,
        RequestKind::ManifestGet,
        RequestKind::ManifestPut,
        RequestKind::BlobHead,
        RequestKind::BlobGet,
        RequestKind::UploadStart,
        RequestKind::UploadFinish,
        RequestKind::List,
    ];

    /// The name the configuration uses (`requests_per_second: {manifest_put: 10}`).
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::ManifestHead => "manifest_head",
            RequestKind::ManifestGet => "manifest_get",
            RequestKind::ManifestPut => "manifest_put",
            RequestKind::BlobHead => "blob_head",
            RequestKind::BlobGet => "blob_get",
            RequestKind::UploadStart => "upload_start",
            RequestKind::UploadFinish => "upload_finish",
            RequestKind::List => "list",
        }
    }

    pub fn from_name(name: &str) -> Option<RequestKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).expect("listed")
    }
}

/// What the configuration (or ferry's built-in facts) says about one registry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryLimits {
    /// Requests a second the registry allows, by kind, for the whole fleet.
    pub requests_per_second: BTreeMap<RequestKind, f64>,
    /// Requests in flight at once to this registry, all kinds together, per process.
    pub concurrency: Option<usize>,
    /// Bytes a second across all of the process's transfers to or from the registry.
    pub bytes_per_second: Option<u64>,
}

impl RegistryLimits {
    /// Starting values for hosts whose quotas are published: Amazon ECR's default
    /// per-account, per-region rates for the API actions behind each kind of push request
    /// (AWS's "Amazon ECR service quotas" page). Reads are left to be learnt: their quotas
    /// are far above what one copy asks.
    pub fn builtin(host: &str) -> RegistryLimits {
        let mut limits = RegistryLimits::default();
        if crate::ecr_host::EcrHost::is_ecr(host) {
            limits.requests_per_second = BTreeMap::from([
                (RequestKind::ManifestPut, 10.0),
                (RequestKind::UploadStart, 100.0),
                (RequestKind::UploadFinish, 100.0),
            ]);
        }
        limits
    }

    /// `self` over `base`: a kind or setting `self` gives wins.
    fn over(&self, base: RegistryLimits) -> RegistryLimits {
        let mut merged = base;
        merged
            .requests_per_second
            .extend(self.requests_per_second.iter().map(|(k, v)| (*k, *v)));
        merged.concurrency = self.concurrency.or(merged.concurrency);
        merged.bytes_per_second = self.bytes_per_second.or(merged.bytes_per_second);
        merged
    }
}

/// Limits for every registry a process talks to.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Host → what the configuration says of it.
    pub registries: HashMap<String, RegistryLimits>,
    /// How many processes share each registry's configured rates and bandwidth (the
    /// copier function's maximum concurrency); each paces to its share.
    pub fleet_size: u32,
    /// How long one request may go on being throttled before it fails `rate_limited`.
    pub throttle_patience: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            registries: HashMap::new(),
            fleet_size: 1,
            throttle_patience: Duration::from_secs(300),
        }
    }
}

impl Limits {
    /// This process's limits for `host`: configured over built-in, rates and bandwidth
    /// divided among the fleet.
    pub fn for_host(&self, host: &str) -> RegistryLimits {
        let configured = self
            .registries
            .get(&crate::auth::normalize_host(host))
            .cloned()
            .unwrap_or_default();
        let mut limits = configured.over(RegistryLimits::builtin(host));
        let fleet = self.fleet_size.max(1);
        for rate in limits.requests_per_second.values_mut() {
            *rate /= fleet as f64;
        }
        if let Some(b) = limits.bytes_per_second.as_mut() {
            *b = (*b / fleet as u64).max(1);
        }
        limits
    }
}

/// The cut on a throttle: to this fraction of the rate in force (TCP CUBIC's factor; a
/// halving wastes more of the registry's allowance than one refusal costs).
pub const DECREASE: f64 = 0.7;
/// The growth of a rate that requests are waiting for, per second, as a fraction of it.
pub const INCREASE_PER_SECOND: f64 = 0.05;
/// No rate is cut below this many requests a second: a registry that refuses everything
/// is still asked now and then, until the request's patience runs out.
pub const MIN_RATE: f64 = 0.2;
/// What a learnt rate is measured over when the first throttle comes.
const OBSERVED_OVER: Duration = Duration::from_secs(1);

/// One registry's pacing: a pace per kind, a registry-wide cap on requests in flight, and
/// a bandwidth bucket.
pub struct RegistryPace {
    kinds: Vec<KindPace>,
    /// Requests in flight, all kinds (the configured `concurrency`).
    all: Option<Arc<tokio::sync::Semaphore>>,
    bandwidth: Option<Mutex<Bucket>>,
}

struct KindPace {
    state: Mutex<KindState>,
    /// Woken when a place in the window frees or the window widens.
    freed: Notify,
}

struct KindState {
    /// Requests a second; `None` until known.
    rate: Option<f64>,
    /// The most this process may pace to (its share of a configured rate).
    ceiling: Option<f64>,
    /// When the next request may go.
    next_slot: Instant,
    last_increase: Instant,
    last_decrease: Option<Instant>,
    /// When recent requests succeeded (the last [`OBSERVED_OVER`]).
    successes: VecDeque<Instant>,
    in_flight: usize,
    /// Requests allowed in flight; `None` until the first throttle.
    window: Option<usize>,
    /// Successes since the window last widened.
    since_widened: usize,
    /// Refusals seen, for logs and tests.
    throttled: u64,
    /// Answers still owed by the requests in flight when the first throttle came; once
    /// they are in, the rate is learnt again from what the registry then accepted.
    first_burst: usize,
}

/// What became of a paced request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The registry did the work.
    Done,
    /// It refused for load (`429`, `503 Slow Down`), asking for this pause if it said.
    Throttled(Option<Duration>),
    /// Anything else (an error of the request's own): says nothing about load.
    Other,
}

/// A request's place in its kind's pace, held while it is in flight.
pub struct Ticket {
    pace: Arc<RegistryPace>,
    kind: RequestKind,
    sent_at: Instant,
    /// Whether the request waited for the rate (the rate, not demand, was the limit).
    waited: bool,
    _all: Option<tokio::sync::OwnedSemaphorePermit>,
    settled: bool,
}

impl RegistryPace {
    pub fn new(limits: &RegistryLimits) -> Arc<RegistryPace> {
        let now = Instant::now();
        let kinds = RequestKind::ALL
            .iter()
            .map(|kind| {
                let rate = limits.requests_per_second.get(kind).copied();
                KindPace {
                    state: Mutex::new(KindState {
                        rate,
                        ceiling: rate,
                        next_slot: now,
                        last_increase: now,
                        last_decrease: None,
                        successes: VecDeque::new(),
                        in_flight: 0,
                        window: None,
                        since_widened: 0,
                        throttled: 0,
                        first_burst: 0,
                    }),
                    freed: Notify::new(),
                }
            })
            .collect();
        Arc::new(RegistryPace {
            kinds,
            all: limits
                .concurrency
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1)))),
            bandwidth: limits.bytes_per_second.map(|b| Mutex::new(Bucket::new(b))),
        })
    }

    /// Wait until a request of `kind` may go: a place in the windows, then its slot in the
    /// rate.
    pub async fn admit(self: &Arc<Self>, kind: RequestKind) -> Ticket {
        let all = match &self.all {
            Some(s) => Some(s.clone().acquire_owned().await.expect("never closed")),
            None => None,
        };
        let pace = &self.kinds[kind.index()];
        loop {
            // Registered before the check, so a place freed in between is not missed.
            let freed = pace.freed.notified();
            {
                let mut s = pace.state.lock().expect("pace poisoned");
                if s.window.is_none_or(|w| s.in_flight < w) {
                    s.in_flight += 1;
                    break;
                }
            }
            freed.await;
        }
        let (slot, waited) = {
            let mut s = pace.state.lock().expect("pace poisoned");
            let now = Instant::now();
            let slot = s.next_slot.max(now);
            if let Some(rate) = s.rate {
                s.next_slot = slot + Duration::from_secs_f64(1.0 / rate);
            }
            (slot, slot > now)
        };
        if waited {
            tokio::time::sleep_until(slot).await;
        }
        Ticket {
            pace: self.clone(),
            kind,
            sent_at: Instant::now(),
            waited,
            _all: all,
            settled: false,
        }
    }

    /// Wait until `bytes` more may pass to or from this registry (at once if it has no cap).
    pub async fn transfer(&self, bytes: u64) {
        let Some(bucket) = &self.bandwidth else {
            return;
        };
        let wait = bucket.lock().expect("bucket poisoned").take(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Whether this registry's transfers are capped.
    pub fn caps_bandwidth(&self) -> bool {
        self.bandwidth.is_some()
    }

    /// The rate of `kind` in force, if there is one.
    pub fn rate(&self, kind: RequestKind) -> Option<f64> {
        self.kinds[kind.index()].state.lock().expect("pace").rate
    }

    /// Refusals of `kind` seen so far.
    pub fn throttled(&self, kind: RequestKind) -> u64 {
        self.kinds[kind.index()]
            .state
            .lock()
            .expect("pace")
            .throttled
    }
}

impl Ticket {
    /// Tell the pace what the registry answered.
    pub fn settle(mut self, answer: Answer) {
        self.settled = true;
        let pace = &self.pace.kinds[self.kind.index()];
        let now = Instant::now();
        let mut s = pace.state.lock().expect("pace poisoned");
        s.in_flight -= 1;
        // A success counts before the burst it ends is judged; a refusal after, so that the
        // first one does not count itself among the burst it starts.
        match answer {
            Answer::Done => {
                s.succeeded(now, self.waited);
                s.answered(now, self.sent_at);
            }
            Answer::Throttled(asked) => {
                s.answered(now, self.sent_at);
                s.throttled(now, self.sent_at, asked, self.kind);
            }
            Answer::Other => s.answered(now, self.sent_at),
        }
        drop(s);
        pace.freed.notify_waiters();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled {
            // The request was abandoned (its future dropped, or an error before an answer).
            let pace = &self.pace.kinds[self.kind.index()];
            let mut s = pace.state.lock().expect("pace poisoned");
            s.in_flight -= 1;
            s.answered(Instant::now(), self.sent_at);
            drop(s);
            pace.freed.notify_waiters();
        }
    }
}

impl KindState {
    /// Successes in the last [`OBSERVED_OVER`] before `now`.
    fn recent_successes(&self, now: Instant) -> usize {
        self.successes
            .iter()
            .filter(|t| now.duration_since(**t) <= OBSERVED_OVER)
            .count()
    }

    /// A request sent at `sent_at` has its answer. The last of the first throttle's burst
    /// sets the rate from what the registry accepted of it: the estimate made when the
    /// refusal came first had to guess how many of the rest it would take.
    fn answered(&mut self, now: Instant, sent_at: Instant) {
        if self.first_burst == 0 || self.last_decrease.is_none_or(|cut| sent_at > cut) {
            return;
        }
        self.first_burst -= 1;
        if self.first_burst == 0 {
            let learnt = (self.recent_successes(now) as f64 * DECREASE).max(MIN_RATE);
            self.rate = Some(self.rate.map_or(learnt, |r| r.min(learnt)));
        }
    }

    fn succeeded(&mut self, now: Instant, waited: bool) {
        self.successes.push_back(now);
        while self
            .successes
            .front()
            .is_some_and(|t| now.duration_since(*t) > OBSERVED_OVER)
        {
            self.successes.pop_front();
        }
        if let Some(w) = self.window {
            self.since_widened += 1;
            if self.since_widened >= w {
                self.window = Some(w + 1);
                self.since_widened = 0;
            }
        }
        match self.rate {
            // Grow only while the rate is what holds requests back: a rate that demand does
            // not reach would grow without being tried, then let a burst through.
            Some(rate) if waited => {
                let elapsed = now.duration_since(self.last_increase).as_secs_f64();
                let grown = rate * (1.0 + INCREASE_PER_SECOND * elapsed.min(1.0));
                self.rate = Some(self.ceiling.map_or(grown, |c| grown.min(c)));
                self.last_increase = now;
            }
            _ => self.last_increase = now,
        }
    }

    fn throttled(
        &mut self,
        now: Instant,
        sent_at: Instant,
        asked: Option<Duration>,
        kind: RequestKind,
    ) {
        self.throttled += 1;
        if let Some(pause) = asked {
            self.next_slot = self.next_slot.max(now + pause);
        }
        if self.last_decrease.is_some_and(|cut| sent_at <= cut) {
            return;
        }
        // The first time, what the registry was taking: the requests it answered in the
        // last second and those it is still answering. Answers to a burst come back in any
        // order, so the successes alone can be a handful when the refusal is the first
        // answer back; an estimate too high is cut again at the next refusal.
        let observed = self.recent_successes(now) + self.in_flight;
        if self.rate.is_none() {
            self.first_burst = self.in_flight;
        }
        let base = self.rate.unwrap_or((observed as f64).max(1.0));
        let rate = (base * DECREASE).max(MIN_RATE);
        self.rate = Some(rate);
        self.window = Some((self.window.unwrap_or(self.in_flight + 1) / 2).max(1));
        self.since_widened = 0;
        self.last_decrease = Some(now);
        // The next request waits a whole interval of the new rate: the registry just said
        // the last ones came too fast.
        self.next_slot = self
            .next_slot
            .max(now + Duration::from_secs_f64(1.0 / rate));
        tracing::info!(
            kind = kind.name(),
            rate = format!("{rate:.2}"),
            window = self.window,
            "registry throttled; slowing down"
        );
    }
}

/// A token bucket of bytes: up to a second's worth at once, refilled at the rate. Takers
/// go into debt and wait it off, so a chunk larger than the bucket still passes, late.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(bytes_per_second: u64) -> Bucket {
        Bucket {
            rate: bytes_per_second as f64,
            tokens: bytes_per_second as f64,
            at: Instant::now(),
        }
    }

    /// Take `bytes`; how long the taker must wait for them.
    fn take(&mut self, bytes: u64) -> Duration {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.at = now;
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(kind: RequestKind, rate: f64) -> RegistryLimits {
        RegistryLimits {
            requests_per_second: BTreeMap::from([(kind, rate)]),
            ..RegistryLimits::default()
        }
    }

    #[test]
    fn ecr_hosts_start_from_the_published_write_quotas() {
        let ecr = RegistryLimits::builtin("123456789012.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(
            ecr.requests_per_second.get(&RequestKind::ManifestPut),
            Some(&10.0)
        );
        assert_eq!(
            ecr.requests_per_second.get(&RequestKind::UploadStart),
            Some(&100.0)
        );
        assert!(RegistryLimits::builtin("registry.gitlab.com")
            .requests_per_second
            .is_empty());
    }

    #[test]
    fn configured_limits_win_and_the_fleet_shares_them() {
        let host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
        let mut configured = limits(RequestKind::ManifestPut, 20.0);
        configured.bytes_per_second = Some(1000);
        let all = Limits {
            registries: HashMap::from([(host.to_string(), configured)]),
            fleet_size: 4,
            ..Limits::default()
        };
        let mine = all.for_host(host);
        assert_eq!(mine.requests_per_second[&RequestKind::ManifestPut], 5.0);
        // Built-in values the configuration leaves alone stay, shared too.
        assert_eq!(mine.requests_per_second[&RequestKind::UploadStart], 25.0);
        assert_eq!(mine.bytes_per_second, Some(250));
        assert!(all.for_host("other.example").requests_per_second.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_known_rate_spaces_requests() {
        let pace = RegistryPace::new(&limits(RequestKind::ManifestPut, 4.0));
        let start = Instant::now();
        for _ in 0..5 {
            pace.admit(RequestKind::ManifestPut)
                .await
                .settle(Answer::Done);
        }
        // The first goes at once, each next a quarter second later.
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        // Other kinds are not held back by it.
        let other = Instant::now();
        pace.admit(RequestKind::BlobGet).await.settle(Answer::Done);
        assert_eq!(other.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_learns_a_rate_from_what_got_through() {
        let pace = RegistryPace::new(&RegistryLimits::default());
        for _ in 0..10 {
            pace.admit(RequestKind::ManifestPut)
                .await
                .settle(Answer::Done);
            tokio::time::advance(Duration::from_millis(50)).await;
        }
        assert_eq!(pace.rate(RequestKind::ManifestPut), None);
        pace.admit(RequestKind::ManifestPut)
            .await
            .settle(Answer::Throttled(None));
        // Ten got through in the last second: 7 a second from now on.
        let rate = pace.rate(RequestKind::ManifestPut).unwrap();
        assert!((rate - 7.0).abs() < 1e-9, "{rate}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_first_back_from_a_burst_learns_from_the_burst() {
        let pace = RegistryPace::new(&RegistryLimits::default());
        let burst: Vec<Ticket> =
            futures::future::join_all((0..20).map(|_| pace.admit(RequestKind::UploadStart))).await;
        let mut burst = burst.into_iter();
        burst.next().unwrap().settle(Answer::Throttled(None));
        // Nineteen still being answered: 0.7 × 19 a second, not 0.7 × the none answered yet.
        let rate = pace.rate(RequestKind::UploadStart).unwrap();
        assert!((rate - 13.3).abs() < 1e-9, "{rate}");
        // Twelve of them were accepted, seven refused: once all are in, 0.7 × 12.
        for (i, t) in burst.enumerate() {
            t.settle(match i < 12 {
                true => Answer::Done,
                false => Answer::Throttled(None),
            });
        }
        let rate = pace.rate(RequestKind::UploadStart).unwrap();
        assert!((rate - 8.4).abs() < 1e-9, "{rate}");
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_of_requests_sent_before_a_cut_do_not_cut_again() {
        let pace = RegistryPace::new(&limits(RequestKind::ManifestPut, 10.0));
        let a = pace.admit(RequestKind::ManifestPut).await;
        let b = pace.admit(RequestKind::ManifestPut).await;
        a.settle(Answer::Throttled(None));
        b.settle(Answer::Throttled(None));
        assert_eq!(pace.rate(RequestKind::ManifestPut), Some(7.0));
        assert_eq!(pace.throttled(RequestKind::ManifestPut), 2);
        // A request sent after the cut and refused is a new event.
        pace.admit(RequestKind::ManifestPut)
            .await
            .settle(Answer::Throttled(None));
        let rate = pace.rate(RequestKind::ManifestPut).unwrap();
        assert!((rate - 4.9).abs() < 1e-9, "{rate}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_rate_grows_back_while_requests_wait_but_not_past_the_ceiling() {
        let pace = RegistryPace::new(&limits(RequestKind::ManifestPut, 10.0));
        pace.admit(RequestKind::ManifestPut)
            .await
            .settle(Answer::Throttled(None));
        assert_eq!(pace.rate(RequestKind::ManifestPut), Some(7.0));
        for _ in 0..400 {
            pace.admit(RequestKind::ManifestPut)
                .await
                .settle(Answer::Done);
        }
        let rate = pace.rate(RequestKind::ManifestPut).unwrap();
        assert_eq!(rate, 10.0, "grew back to the configured share and stopped");
    }

    /// Eight workers asking without pause, for two minutes, a registry whose kind is a token
    /// bucket of 10 a second holding a second's worth (ECR's `PutImage`): how many requests
    /// it refused and how many it accepted.
    async fn against_a_token_bucket(pace: Arc<RegistryPace>) -> (u64, u64) {
        use std::sync::atomic::{AtomicU64, Ordering};
        let bucket = Arc::new(Mutex::new((10.0_f64, Instant::now())));
        let accepted = Arc::new(AtomicU64::new(0));
        let end = Instant::now() + Duration::from_secs(120);
        let workers = (0..8).map(|_| {
            let (pace, bucket, accepted) = (pace.clone(), bucket.clone(), accepted.clone());
            tokio::spawn(async move {
                while Instant::now() < end {
                    let ticket = pace.admit(RequestKind::ManifestPut).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let now = Instant::now();
                    let mut b = bucket.lock().unwrap();
                    b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * 10.0).min(10.0);
                    b.1 = now;
                    if b.0 >= 1.0 {
                        b.0 -= 1.0;
                        accepted.fetch_add(1, Ordering::Relaxed);
                        ticket.settle(Answer::Done);
                    } else {
                        ticket.settle(Answer::Throttled(None));
                    }
                }
            })
        });
        futures::future::join_all(workers).await;
        (
            pace.throttled(RequestKind::ManifestPut),
            accepted.load(Ordering::Relaxed),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_learnt_limit_costs_few_refusals_and_little_of_the_allowance() {
        let (refused, accepted) =
            against_a_token_bucket(RegistryPace::new(&RegistryLimits::default())).await;
        // Demand is 400 a second; the registry allows 1,210 in the two minutes. Unpaced,
        // nearly every request would be refused.
        assert!(
            refused * 25 <= accepted,
            "{refused} refused, {accepted} accepted"
        );
        assert!(accepted >= 950, "{refused} refused, {accepted} accepted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_known_limit_is_never_met() {
        let pace = RegistryPace::new(&limits(RequestKind::ManifestPut, 10.0));
        let (refused, accepted) = against_a_token_bucket(pace).await;
        assert_eq!(refused, 0, "{accepted} accepted");
        assert!(accepted >= 1200, "{accepted} accepted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_narrows_the_window_of_requests_in_flight() {
        let pace = RegistryPace::new(&RegistryLimits::default());
        let held: Vec<Ticket> =
            futures::future::join_all((0..8).map(|_| pace.admit(RequestKind::UploadStart))).await;
        let mut held = held.into_iter();
        held.next().unwrap().settle(Answer::Throttled(None));
        // Eight were in flight: four may be from now on; seven still are.
        let waiting = tokio::spawn({
            let pace = pace.clone();
            async move { pace.admit(RequestKind::UploadStart).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "the window is full");
        for t in held.by_ref().take(3) {
            t.settle(Answer::Done);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "four still in flight");
        held.next().unwrap().settle(Answer::Done);
        let admitted = tokio::time::timeout(Duration::from_secs(10), waiting).await;
        assert!(admitted.is_ok(), "a place freed");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_the_kind() {
        let pace = RegistryPace::new(&RegistryLimits::default());
        pace.admit(RequestKind::BlobGet)
            .await
            .settle(Answer::Throttled(Some(Duration::from_secs(3))));
        let start = Instant::now();
        pace.admit(RequestKind::BlobGet).await.settle(Answer::Done);
        assert!(
            start.elapsed() >= Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_bandwidth_cap_holds_transfers_to_its_rate() {
        let pace = RegistryPace::new(&RegistryLimits {
            bytes_per_second: Some(1000),
            ..RegistryLimits::default()
        });
        let start = Instant::now();
        for _ in 0..30 {
            pace.transfer(100).await;
        }
        // The first second's worth passes at once (the bucket starts full), the other
        // 2,000 bytes take two seconds.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
