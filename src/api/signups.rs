//! What the status page's sign-up routes (`web::subscribe`) need beyond the API's state:
//! whether email is taken, the services one may choose, and the per-IP rate limit; and
//! [`RateLimit`], the fixed-window limit those and the reporters' comments share.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sign-ups a client IP may make per minute.
pub const PER_MINUTE: usize = 5;
/// Client IPs remembered at most (the oldest window is dropped first).
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

impl<K: Hash + Eq> RateLimit<K> {
    pub fn new(per: usize, window: Duration, max_keys: usize) -> RateLimit<K> {
        RateLimit {
            per,
            window,
            max_keys,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when `key` was admitted `per` times in its current window.
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

/// What the routes need beyond the API's state.
pub struct Signups {
    /// Whether `mail:` is configured (email subscriptions are taken).
    pub mail: bool,
    limiter: RateLimit<IpAddr>,
}

impl Signups {
    pub fn new(mail: bool) -> Signups {
        Signups {
            mail,
            limiter: RateLimit::new(PER_MINUTE, Duration::from_secs(60), MAX_CLIENTS),
        }
    }

    /// `Err(seconds to wait)` when `ip` made [`PER_MINUTE`] sign-ups this minute.
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        self.limiter.admit(ip, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_per_ip() {
        let signups = Signups::new(true);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let now = Instant::now();
        for _ in 0..PER_MINUTE {
            assert!(signups.admit(ip, now).is_ok());
        }
        assert!(signups.admit(ip, now).is_err());
        assert!(signups.admit(IpAddr::from([127, 0, 0, 2]), now).is_ok());
        assert!(signups.admit(ip, now + Duration::from_secs(61)).is_ok());
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
