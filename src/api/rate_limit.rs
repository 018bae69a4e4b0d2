//! A fixed-window rate limit per key, bounded in memory: the status page's sign-ups and the
//! console's sign-in attempts (per client IP), the reporters' comments (per link).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Client IPs remembered at most by a per-IP limit (the windows that ended are dropped first).
const MAX_CLIENTS: usize = 10_000;

/// At most `per` admissions per key in each `window`, for at most `max_keys` keys at once
/// (memory stays bounded: when full, keys whose window is over are forgotten, and a new
/// key waits until one is).
pub struct RateLimit<K> {
    per: usize,
    window: Duration,
    max_keys: usize,
    keys: Mutex<HashMap<K, (Instant, usize)>>,
}

/// A limit per client IP and minute.
pub type PerIp = RateLimit<IpAddr>;

impl PerIp {
    /// At most `per_minute` admissions per client IP and minute, for 10,000 IPs at once.
    pub fn per_minute(per_minute: usize) -> PerIp {
        RateLimit::new(per_minute, Duration::from_secs(60), MAX_CLIENTS)
    }
}

impl<K: Hash + Eq> RateLimit<K> {
    pub fn new(per: usize, window: Duration, max_keys: usize) -> RateLimit<K> {
        RateLimit {
            per,
            window,
            max_keys,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when `key` was admitted `per` times in its current window
    /// (or when `max_keys` others are in their window).
    pub fn admit(&self, key: K, now: Instant) -> Result<(), u64> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= self.max_keys && !keys.contains_key(&key) {
            keys.retain(|_, (start, _)| now.duration_since(*start) < self.window);
            if keys.len() >= self.max_keys {
                return Err(self.window.as_secs().max(1));
            }
        }
        let (start, count) = keys.entry(key).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        if *count >= self.per {
            let left = self.window.saturating_sub(now.duration_since(*start));
            return Err(left.as_secs().max(1));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_per_ip() {
        let limit = PerIp::per_minute(5);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let now = Instant::now();
        for _ in 0..5 {
            assert!(limit.admit(ip, now).is_ok());
        }
        assert_eq!(limit.admit(ip, now), Err(60));
        assert!(limit.admit(IpAddr::from([127, 0, 0, 2]), now).is_ok());
        assert!(limit.admit(ip, now + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn a_full_limit_forgets_only_windows_that_are_over() {
        let limit = RateLimit::new(1, Duration::from_secs(60), 2);
        let now = Instant::now();
        assert!(limit.admit(1, now).is_ok());
        assert!(limit.admit(2, now).is_ok());
        assert_eq!(limit.admit(3, now), Err(60), "full: a new key waits");
        assert!(limit.admit(3, now + Duration::from_secs(60)).is_ok());
    }
}
