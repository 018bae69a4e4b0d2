//! A per-client-IP rate limit over fixed one-minute windows, bounded in memory: the
//! status page's sign-ups and the console's sign-in attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Client IPs remembered at most (the windows that ended are dropped first).
const MAX_CLIENTS: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

/// At most `per_minute` admissions per client IP and minute.
pub struct PerIp {
    per_minute: usize,
    clients: Mutex<HashMap<IpAddr, (Instant, usize)>>,
}

impl PerIp {
    pub fn new(per_minute: usize) -> PerIp {
        PerIp {
            per_minute,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when `ip` was admitted `per_minute` times this minute (or
    /// when [`MAX_CLIENTS`] others are in their window).
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&ip) {
            clients.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if clients.len() >= MAX_CLIENTS {
                return Err(WINDOW.as_secs());
            }
        }
        let (start, count) = clients.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        if *count >= self.per_minute {
            let left = WINDOW.saturating_sub(now.duration_since(*start));
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
        let limit = PerIp::new(5);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let now = Instant::now();
        for _ in 0..5 {
            assert!(limit.admit(ip, now).is_ok());
        }
        assert_eq!(limit.admit(ip, now), Err(60));
        assert!(limit.admit(IpAddr::from([127, 0, 0, 2]), now).is_ok());
        assert!(limit.admit(ip, now + Duration::from_secs(61)).is_ok());
    }
}
