//! Pull quotas: registries that count manifest reads (Docker Hub: 100 GETs per 6 hours per
//! address without an account, HEADs free) and say so in `ratelimit-limit: 100;w=21600` and
//! `ratelimit-remaining: 76;w=21600` headers on manifest answers, GET and HEAD alike.
//!
//! A quota is spent in hours and comes back in hours, so there is nothing to retry: the
//! question is only how not to waste it. Per registry this keeps what the last answer said
//! and lets a manifest GET go only while the quota has room for it and for the GETs already
//! in flight, so that a spent quota costs at most those in flight. Answers come back out of
//! order, each telling what was left when the registry counted it: more room than the
//! count kept is believed only from a request sent after that count was learnt (the window
//! turned); from one sent before, it is old news. Once spent, GETs fail at once with [`crate::Error::QuotaExhausted`], naming
//! when the window allows more, without asking, until then. Until a registry has answered
//! once, its GETs go one at a time: the first answer tells whether it meters.
//!
//! Registries that send no such headers are unmetered here; their `429`s are load, paced
//! by [`super::pace`].

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::HeaderMap;
use tokio::sync::Notify;

/// What a registry said of its quota in one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaHeaders {
    pub limit: u64,
    pub remaining: u64,
    pub window: Duration,
    /// `ratelimit-reset` (seconds until the window resets), where a registry sends it.
    pub reset_in: Option<Duration>,
}

impl QuotaHeaders {
    /// The quota headers of an answer, if it has them.
    pub fn parse(headers: &HeaderMap) -> Option<QuotaHeaders> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (limit, limit_window) = count_and_window(get("ratelimit-limit")?)?;
        let (remaining, remaining_window) = count_and_window(get("ratelimit-remaining")?)?;
        let window = remaining_window.or(limit_window)?;
        let reset_in = get("ratelimit-reset")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Some(QuotaHeaders {
            limit,
            remaining,
            window,
            reset_in,
        })
    }
}

/// `100;w=21600` → (100, 6 h). The count alone (no window) is read, the window left unknown.
fn count_and_window(value: &str) -> Option<(u64, Option<Duration>)> {
    let mut parts = value.split(';');
    let count = parts.next()?.trim().parse().ok()?;
    let window = parts
        .filter_map(|p| p.trim().strip_prefix("w="))
        .find_map(|w| w.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Some((count, window))
}

/// Why a manifest GET may not go: the quota is spent until `resets_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub limit: u64,
    pub window: Duration,
    pub resets_at: SystemTime,
}

#[derive(Debug, Clone, Copy)]
enum Metering {
    /// No answer yet.
    Unknown,
    Unmetered,
    Metered {
        limit: u64,
        remaining: u64,
        window: Duration,
    },
}

struct State {
    metering: Metering,
    /// When the count of what is left was last learnt.
    learnt_at: Instant,
    spent: Option<Spent>,
    gets_in_flight: usize,
}

pub struct Quota {
    state: Mutex<State>,
    changed: Notify,
}

/// A manifest GET's place under the quota; freed when dropped.
pub struct GetPermit<'a> {
    quota: &'a Quota,
}

impl Drop for GetPermit<'_> {
    fn drop(&mut self) {
        self.quota
            .state
            .lock()
            .expect("quota poisoned")
            .gets_in_flight -= 1;
        self.quota.changed.notify_waiters();
    }
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            state: Mutex::new(State {
                metering: Metering::Unknown,
                learnt_at: Instant::now(),
                spent: None,
                gets_in_flight: 0,
            }),
            changed: Notify::new(),
        }
    }
}

impl Quota {
    /// Whether the registry has said it meters manifest reads (its answers carry the
    /// quota's headers).
    pub fn meters(&self) -> bool {
        let s = self.state.lock().expect("quota poisoned");
        s.spent.is_some() || matches!(s.metering, Metering::Metered { .. })
    }

    /// Wait for room for one more manifest GET, or say the quota is spent.
    pub async fn admit_get(&self) -> Result<GetPermit<'_>, Spent> {
        loop {
            let changed = self.changed.notified();
            {
                let mut s = self.state.lock().expect("quota poisoned");
                if let Some(spent) = s.spent {
                    if SystemTime::now() < spent.resets_at {
                        return Err(spent);
                    }
                    // The window has passed: the next answer says how much it allows.
                    s.spent = None;
                    s.metering = Metering::Unknown;
                }
                let room = match s.metering {
                    Metering::Unmetered => true,
                    Metering::Unknown => s.gets_in_flight == 0,
                    Metering::Metered { remaining, .. } => (s.gets_in_flight as u64) < remaining,
                };
                if room {
                    s.gets_in_flight += 1;
                    return Ok(GetPermit { quota: self });
                }
                if let Metering::Metered { limit, window, .. } = s.metering {
                    if s.gets_in_flight == 0 {
                        let spent = Spent {
                            limit,
                            window,
                            resets_at: SystemTime::now() + window,
                        };
                        s.spent = Some(spent);
                        return Err(spent);
                    }
                }
            }
            // A GET in flight will say how much is left.
            changed.await;
        }
    }

    /// Learn from an answer to a manifest request (GET or HEAD) sent at `sent_at`. A GET's
    /// answer without the headers leaves the count one lower.
    pub fn observe(&self, headers: &HeaderMap, was_get: bool, sent_at: Instant) {
        let mut s = self.state.lock().expect("quota poisoned");
        match QuotaHeaders::parse(headers) {
            // Spent stays spent until the window is over: late answers from before are no
            // news, and asking again early only burns requests.
            Some(_) if s.spent.is_some() => {}
            Some(q) => {
                let remaining = match s.metering {
                    Metering::Metered { remaining, .. }
                        if q.remaining > remaining && sent_at < s.learnt_at =>
                    {
                        remaining
                    }
                    _ => {
                        s.learnt_at = Instant::now();
                        q.remaining
                    }
                };
                s.metering = Metering::Metered {
                    limit: q.limit,
                    remaining,
                    window: q.window,
                };
                if remaining == 0 {
                    s.spent = Some(Spent {
                        limit: q.limit,
                        window: q.window,
                        resets_at: SystemTime::now() + q.reset_in.unwrap_or(q.window),
                    });
                }
            }
            None => match &mut s.metering {
                Metering::Unknown => s.metering = Metering::Unmetered,
                Metering::Metered { remaining, .. } if was_get => {
                    *remaining = remaining.saturating_sub(1)
                }
                _ => {}
            },
        }
        drop(s);
        self.changed.notify_waiters();
    }

    /// A manifest GET was refused with `429`: whether that was the quota (the registry
    /// meters, or the answer says so), and if so until when.
    pub fn refused(&self, headers: &HeaderMap, message: &str) -> Option<Spent> {
        let told = QuotaHeaders::parse(headers);
        let mut s = self.state.lock().expect("quota poisoned");
        let (limit, window, reset_in) = match (told, s.metering) {
            (Some(q), _) => (q.limit, q.window, q.reset_in),
            (None, Metering::Metered { limit, window, .. }) => (limit, window, None),
            (None, _) if message.to_ascii_lowercase().contains("pull rate limit") => {
                // Docker Hub's wording, from an answer without the headers: its anonymous
                // quota is the one documented.
                (100, Duration::from_secs(6 * 3600), None)
            }
            _ => return None,
        };
        let spent = Spent {
            limit,
            window,
            resets_at: SystemTime::now() + reset_in.unwrap_or(window),
        };
        s.metering = Metering::Metered {
            limit,
            remaining: 0,
            window,
        };
        s.spent = Some(spent);
        drop(s);
        self.changed.notify_waiters();
        Some(spent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn docker_hub(remaining: u64) -> HeaderMap {
        headers(&[
            ("ratelimit-limit", "100;w=21600"),
            ("ratelimit-remaining", &format!("{remaining};w=21600")),
        ])
    }

    #[test]
    fn a_registry_meters_once_its_answers_say_so() {
        let quota = Quota::default();
        assert!(!quota.meters(), "nothing known yet");
        quota.observe(&HeaderMap::new(), false, Instant::now());
        assert!(!quota.meters(), "an answer without the headers");
        let hub = Quota::default();
        hub.observe(&docker_hub(40), false, Instant::now());
        assert!(hub.meters());
    }

    #[test]
    fn reads_docker_hub_headers() {
        assert_eq!(
            QuotaHeaders::parse(&docker_hub(76)),
            Some(QuotaHeaders {
                limit: 100,
                remaining: 76,
                window: Duration::from_secs(21600),
                reset_in: None,
            })
        );
        let with_reset = headers(&[
            ("ratelimit-limit", "12;w=60"),
            ("ratelimit-remaining", "3"),
            ("ratelimit-reset", "17"),
        ]);
        let q = QuotaHeaders::parse(&with_reset).unwrap();
        assert_eq!(
            (q.remaining, q.window, q.reset_in),
            (3, Duration::from_secs(60), Some(Duration::from_secs(17)))
        );
        for bad in [
            headers(&[]),
            headers(&[("ratelimit-limit", "100;w=21600")]),
            headers(&[("ratelimit-limit", "many"), ("ratelimit-remaining", "1")]),
            // No window anywhere: nothing to say when it resets.
            headers(&[("ratelimit-limit", "100"), ("ratelimit-remaining", "1")]),
        ] {
            assert_eq!(QuotaHeaders::parse(&bad), None);
        }
    }

    #[tokio::test]
    async fn gets_go_one_at_a_time_until_the_registry_has_answered() {
        let quota = Quota::default();
        let first = quota.admit_get().await.unwrap();
        let second = tokio::time::timeout(Duration::from_millis(50), quota.admit_get()).await;
        assert!(second.is_err(), "waits for the first answer");
        quota.observe(&HeaderMap::new(), true, Instant::now());
        drop(first);
        // Unmetered: any number at once.
        let _a = quota.admit_get().await.unwrap();
        let _b = quota.admit_get().await.unwrap();
    }

    #[tokio::test]
    async fn no_more_gets_go_than_the_quota_has_room_for() {
        let quota = Quota::default();
        quota.observe(&docker_hub(2), false, Instant::now());
        let a = quota.admit_get().await.unwrap();
        let b = quota.admit_get().await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(50), quota.admit_get()).await;
        assert!(third.is_err(), "two left, two in flight: the third waits");
        quota.observe(&docker_hub(1), true, Instant::now());
        drop(a);
        quota.observe(&docker_hub(0), true, Instant::now());
        drop(b);
        let spent = quota.admit_get().await.err().expect("spent");
        assert_eq!(spent.limit, 100);
        let wait = spent.resets_at.duration_since(SystemTime::now()).unwrap();
        assert!(wait > Duration::from_secs(21000), "{wait:?}");
        // A late answer from before it was spent does not reopen it.
        quota.observe(&docker_hub(1), true, Instant::now());
        assert!(quota.admit_get().await.is_err());
    }

    #[tokio::test]
    async fn late_answers_do_not_raise_the_count_but_a_new_window_does() {
        let quota = Quota::default();
        let short = |remaining: u64| {
            headers(&[
                ("ratelimit-limit", "10;w=1"),
                ("ratelimit-remaining", &format!("{remaining};w=1")),
            ])
        };
        let early = Instant::now();
        quota.observe(&short(4), true, Instant::now());
        // Sent before the answer above, answered after it.
        quota.observe(&short(5), true, early);
        let held: Vec<_> = futures::future::join_all((0..4).map(|_| quota.admit_get()))
            .await
            .into_iter()
            .map(|p| p.unwrap())
            .collect();
        let fifth = tokio::time::timeout(Duration::from_millis(50), quota.admit_get()).await;
        assert!(fifth.is_err(), "four left, four in flight");
        drop(held);
        // More room, from a request sent since: the window turned.
        quota.observe(&short(9), false, Instant::now());
        let many = futures::future::join_all((0..9).map(|_| quota.admit_get())).await;
        assert!(many.iter().all(|p| p.is_ok()));
        drop(many);
        quota.observe(&short(0), true, Instant::now());
        assert!(quota.admit_get().await.is_err(), "spent");
        // Once the window has passed, the next GET asks again.
        std::thread::sleep(Duration::from_millis(1100));
        assert!(quota.admit_get().await.is_ok());
    }

    #[test]
    fn a_429_is_the_quota_only_where_the_registry_meters() {
        let quota = Quota::default();
        assert_eq!(quota.refused(&HeaderMap::new(), "Rate exceeded"), None);
        let spent = quota
            .refused(&HeaderMap::new(), "You have reached your pull rate limit.")
            .unwrap();
        assert_eq!(spent.limit, 100);
        let metered = Quota::default();
        metered.observe(&docker_hub(9), false, Instant::now());
        let spent = metered.refused(&HeaderMap::new(), "").unwrap();
        assert_eq!(spent.window, Duration::from_secs(21600));
    }
}
