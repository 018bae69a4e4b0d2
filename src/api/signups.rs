//! What the status page's sign-up routes (`web::subscribe`) need beyond the API's state:
//! whether email is taken, the services one may choose, and the per-IP rate limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sign-ups a client IP may make per minute.
pub const PER_MINUTE: usize = 5;
/// Client IPs remembered at most (the oldest window is dropped first).
const MAX_CLIENTS: usize = 10_000;

/// What the routes need beyond the API's state.
pub struct Signups {
    /// Whether `mail:` is configured (email subscriptions are taken).
    pub mail: bool,
    limiter: Mutex<HashMap<IpAddr, (Instant, usize)>>,
}

impl Signups {
    pub fn new(mail: bool) -> Signups {
        Signups {
            mail,
            limiter: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when `ip` made [`PER_MINUTE`] sign-ups this minute.
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut clients = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&ip) {
            clients.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
            if clients.len() >= MAX_CLIENTS {
                return Err(60);
            }
        }
        let (start, count) = clients.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            *start = now;
            *count = 0;
        }
        if *count >= PER_MINUTE {
            let left = Duration::from_secs(60).saturating_sub(now.duration_since(*start));
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
}
