//! How production registries differ from a quiet loopback one, for the fault proxy to
//! play in front of a real `docker-registry`:
//!
//! - **write rates** (Amazon ECR): each kind of write ([`Op`]) allows N requests a second
//!   (a token bucket holding one second's worth); past that the answer is `429
//!   TOOMANYREQUESTS: Rate exceeded` with the distribution error body and no `Retry-After`,
//!   as ECR answers;
//! - **a pull quota** (Docker Hub): N manifest GETs per window, counted from the window's
//!   first GET; every manifest GET and HEAD answer carries `ratelimit-limit: N;w=SECONDS`
//!   and `ratelimit-remaining: R;w=SECONDS`; HEADs are not counted; past the quota a GET
//!   gets `429 TOOMANYREQUESTS` ("You have reached your pull rate limit"), again without
//!   `Retry-After`; the next window starts afresh;
//! - **distance**: a round trip added to every request, and another to the first request
//!   of each new connection (the TCP and TLS handshakes a remote registry costs).
//!
//! What it refused is counted, for tests to bound.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::Method;

/// A kind of request a registry may rate-limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `PUT /v2/<name>/manifests/<ref>`: ECR's `PutImage`.
    ManifestPut,
    /// `POST /v2/<name>/blobs/uploads/`: ECR's `InitiateLayerUpload`.
    UploadStart,
    /// `PUT` (or `PATCH`) of an upload session: `CompleteLayerUpload`/`UploadLayerPart`.
    UploadFinish,
    /// `GET /v2/<name>/manifests/<ref>`.
    ManifestGet,
    /// `HEAD /v2/<name>/manifests/<ref>`.
    ManifestHead,
    BlobGet,
    BlobHead,
    Other,
}

impl Op {
    pub fn of(method: &Method, path: &str) -> Op {
        let path = path.split('?').next().unwrap_or(path);
        let manifests = path.contains("/manifests/");
        let uploads = path.contains("/blobs/uploads/");
        let blobs = !uploads && path.contains("/blobs/");
        match *method {
            Method::PUT if manifests => Op::ManifestPut,
            Method::GET if manifests => Op::ManifestGet,
            Method::HEAD if manifests => Op::ManifestHead,
            Method::POST if uploads => Op::UploadStart,
            Method::PUT | Method::PATCH if uploads => Op::UploadFinish,
            Method::GET if blobs => Op::BlobGet,
            Method::HEAD if blobs => Op::BlobHead,
            _ => Op::Other,
        }
    }
}

/// The behaviours to play; all off by default.
#[derive(Debug, Clone, Default)]
pub struct Production {
    /// Requests a second allowed, by kind.
    pub rates: Vec<(Op, f64)>,
    /// Manifest GETs allowed per window.
    pub pull_quota: Option<(u64, Duration)>,
    /// Added to every request: the round trip to a distant registry.
    pub round_trip: Duration,
    /// Added to the first request of each connection.
    pub connect: Duration,
}

impl Production {
    /// A registry `round_trip` away (and as far again for each new connection's handshake).
    pub fn at_distance(round_trip: Duration) -> Production {
        Production {
            round_trip,
            connect: round_trip,
            ..Production::default()
        }
    }

    pub fn rate(mut self, op: Op, per_second: f64) -> Production {
        self.rates.push((op, per_second));
        self
    }

    pub fn pull_quota(mut self, gets: u64, window: Duration) -> Production {
        self.pull_quota = Some((gets, window));
        self
    }
}

/// What the proxy refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refused {
    /// Over a rate, by kind.
    pub rate: HashMap<Op, usize>,
    /// Manifest GETs over the pull quota.
    pub quota: usize,
}

impl Refused {
    pub fn of(&self, op: Op) -> usize {
        self.rate.get(&op).copied().unwrap_or(0)
    }
}

struct Bucket {
    per_second: f64,
    tokens: f64,
    at: Instant,
}

struct Window {
    limit: u64,
    length: Duration,
    started: Option<Instant>,
    used: u64,
}

impl Window {
    fn roll(&mut self, now: Instant) {
        if self
            .started
            .is_some_and(|s| now.duration_since(s) >= self.length)
        {
            self.started = None;
            self.used = 0;
        }
    }

    fn headers(&self) -> Vec<(String, String)> {
        let w = self.length.as_secs().max(1);
        vec![
            ("ratelimit-limit".into(), format!("{};w={w}", self.limit)),
            (
                "ratelimit-remaining".into(),
                format!("{};w={w}", self.limit.saturating_sub(self.used)),
            ),
        ]
    }
}

/// The behaviours' state, inside the proxy.
pub(crate) struct Shaper {
    settings: Production,
    buckets: Mutex<HashMap<Op, Bucket>>,
    window: Mutex<Option<Window>>,
    connections: Mutex<HashSet<SocketAddr>>,
    refused: Mutex<Refused>,
}

/// What the shaper decided for one request.
pub(crate) enum Verdict {
    /// Forward it, and add these headers to the answer.
    Forward(Vec<(String, String)>),
    /// Answer `429` with these headers and body, without forwarding.
    Refuse {
        headers: Vec<(String, String)>,
        body: String,
    },
}

impl Shaper {
    pub fn new(settings: Production) -> Shaper {
        let now = Instant::now();
        let buckets = settings
            .rates
            .iter()
            .map(|&(op, per_second)| {
                (
                    op,
                    Bucket {
                        per_second,
                        tokens: per_second.max(1.0),
                        at: now,
                    },
                )
            })
            .collect();
        let window = settings.pull_quota.map(|(limit, length)| Window {
            limit,
            length,
            started: None,
            used: 0,
        });
        Shaper {
            settings,
            buckets: Mutex::new(buckets),
            window: Mutex::new(window),
            connections: Mutex::new(HashSet::new()),
            refused: Mutex::new(Refused::default()),
        }
    }

    /// The delay before this request is looked at: distance, and a new connection's
    /// handshake.
    pub fn delay(&self, peer: Option<SocketAddr>) -> Duration {
        let new_connection = peer.is_some_and(|p| self.connections.lock().unwrap().insert(p));
        self.settings.round_trip
            + if new_connection {
                self.settings.connect
            } else {
                Duration::ZERO
            }
    }

    pub fn judge(&self, op: Op) -> Verdict {
        let now = Instant::now();
        if let Some(bucket) = self.buckets.lock().unwrap().get_mut(&op) {
            let refill = now.duration_since(bucket.at).as_secs_f64() * bucket.per_second;
            bucket.tokens = (bucket.tokens + refill).min(bucket.per_second.max(1.0));
            bucket.at = now;
            if bucket.tokens < 1.0 {
                *self.refused.lock().unwrap().rate.entry(op).or_default() += 1;
                return Verdict::Refuse {
                    headers: Vec::new(),
                    body: error_body("TOOMANYREQUESTS", "Rate exceeded"),
                };
            }
            bucket.tokens -= 1.0;
        }
        let mut window = self.window.lock().unwrap();
        let Some(window) = window.as_mut() else {
            return Verdict::Forward(Vec::new());
        };
        window.roll(now);
        match op {
            Op::ManifestHead => Verdict::Forward(window.headers()),
            Op::ManifestGet if window.used < window.limit => {
                window.started.get_or_insert(now);
                window.used += 1;
                Verdict::Forward(window.headers())
            }
            Op::ManifestGet => {
                self.refused.lock().unwrap().quota += 1;
                Verdict::Refuse {
                    headers: window.headers(),
                    body: error_body(
                        "TOOMANYREQUESTS",
                        "You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit",
                    ),
                }
            }
            _ => Verdict::Forward(Vec::new()),
        }
    }

    pub fn refused(&self) -> Refused {
        self.refused.lock().unwrap().clone()
    }
}

fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"errors": [{"code": code, "message": message, "detail": {}}]}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests_by_kind() {
        let cases = [
            (Method::PUT, "/v2/a/manifests/1", Op::ManifestPut),
            (Method::GET, "/v2/a/manifests/1", Op::ManifestGet),
            (
                Method::HEAD,
                "/v2/a/b/manifests/sha256:00",
                Op::ManifestHead,
            ),
            (
                Method::POST,
                "/v2/a/blobs/uploads/?mount=x&from=b",
                Op::UploadStart,
            ),
            (
                Method::PUT,
                "/v2/a/blobs/uploads/123?digest=sha256:00",
                Op::UploadFinish,
            ),
            (Method::GET, "/v2/a/blobs/sha256:00", Op::BlobGet),
            (Method::GET, "/v2/a/tags/list", Op::Other),
        ];
        for (method, path, op) in cases {
            assert_eq!(Op::of(&method, path), op, "{method} {path}");
        }
    }

    #[test]
    fn a_rate_allows_a_seconds_worth_then_refuses() {
        let shaper = Shaper::new(Production::default().rate(Op::ManifestPut, 3.0));
        let allowed = (0..5)
            .filter(|_| matches!(shaper.judge(Op::ManifestPut), Verdict::Forward(_)))
            .count();
        assert_eq!(allowed, 3);
        assert_eq!(shaper.refused().of(Op::ManifestPut), 2);
        assert!(matches!(shaper.judge(Op::UploadStart), Verdict::Forward(_)));
    }

    #[test]
    fn a_quota_counts_gets_not_heads_and_resets_with_its_window() {
        let shaper = Shaper::new(Production::default().pull_quota(2, Duration::from_millis(50)));
        for _ in 0..3 {
            assert!(matches!(
                shaper.judge(Op::ManifestHead),
                Verdict::Forward(_)
            ));
        }
        assert!(matches!(shaper.judge(Op::ManifestGet), Verdict::Forward(_)));
        let Verdict::Forward(headers) = shaper.judge(Op::ManifestGet) else {
            panic!("second GET refused")
        };
        assert!(headers.contains(&("ratelimit-remaining".into(), "0;w=1".into())));
        assert!(matches!(
            shaper.judge(Op::ManifestGet),
            Verdict::Refuse { .. }
        ));
        assert_eq!(shaper.refused().quota, 1);
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(shaper.judge(Op::ManifestGet), Verdict::Forward(_)));
    }
}
