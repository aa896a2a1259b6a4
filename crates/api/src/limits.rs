//! Rate limits (`[api.rate_limits]`): a token bucket per caller and endpoint group, refilled at
//! `per_second` up to `burst`. Over the limit, 429 `rate_limited` with `Retry-After` (whole seconds until a
//! request would pass). Buckets live in this process: with several replicas, each applies the limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use gemgate_config::{RateLimit, RateLimits};

/// Which limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Read,
    Transact,
    Relay,
    Admin,
    Anonymous,
}

impl Group {
    fn name(self) -> &'static str {
        match self {
            Group::Read => "read",
            Group::Transact => "transact",
            Group::Relay => "relay",
            Group::Admin => "admin",
            Group::Anonymous => "anonymous",
        }
    }
}

/// When a bucket map grows past this, full (idle) buckets are forgotten: they would pass anyway.
const PRUNE_AT: usize = 10_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of one process.
#[derive(Debug, Default)]
pub struct RateLimiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<(Group, String), Bucket>>,
}

/// Refused: the message for the client and the seconds to wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    pub message: String,
    pub retry_after: u64,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self { limits, buckets: Mutex::default() }
    }

    fn limit(&self, group: Group) -> Option<RateLimit> {
        match group {
            Group::Read => self.limits.read,
            Group::Transact => self.limits.transact,
            Group::Relay => self.limits.relay,
            Group::Admin => self.limits.admin,
            Group::Anonymous => self.limits.anonymous,
        }
    }

    /// Takes a token from `who`'s bucket of `group`, at `now`.
    pub fn check(&self, group: Group, who: &str, now: Instant) -> Result<(), Limited> {
        let Some(limit) = self.limit(group) else { return Ok(()) };
        let burst = f64::from(limit.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|(g, _), b| {
                let rate = self.limit(*g).map_or(f64::INFINITY, |l| l.per_second);
                b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry((group, who.to_string())).or_insert(Bucket { tokens: burst, at: now });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * limit.per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / limit.per_second;
        Err(Limited {
            message: format!(
                "over the {} rate limit ({} requests a second, bursts of {}); retry later",
                group.name(),
                limit.per_second,
                limit.burst
            ),
            retry_after: wait.ceil().max(1.0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_passes_its_burst_then_refills_at_its_rate_per_caller_and_group() {
        let limits =
            RateLimits { read: Some(RateLimit { per_second: 2.0, burst: 3 }), ..RateLimits::default() };
        let limiter = RateLimiter::new(limits);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(Group::Read, "a", t0), Ok(()));
        }
        let refused = limiter.check(Group::Read, "a", t0).unwrap_err();
        assert_eq!(refused.retry_after, 1);
        assert_eq!(limiter.check(Group::Read, "b", t0), Ok(()), "another caller has its own bucket");
        assert_eq!(limiter.check(Group::Admin, "a", t0), Ok(()), "an unconfigured group is unlimited");
        assert_eq!(
            limiter.check(Group::Read, "a", t0 + Duration::from_millis(500)),
            Ok(()),
            "one token in 0.5 s"
        );
        assert!(limiter.check(Group::Read, "a", t0 + Duration::from_millis(500)).is_err());
    }
}
