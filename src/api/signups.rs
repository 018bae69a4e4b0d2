//! What the status page's sign-up routes (`web::subscribe`) need beyond the API's state:
//! whether email is taken, the services one may choose, and the per-IP rate limit.

use std::net::IpAddr;
use std::time::Instant;

use super::rate_limit::PerIp;

/// Sign-ups a client IP may make per minute.
pub const PER_MINUTE: usize = 5;

/// What the routes need beyond the API's state.
pub struct Signups {
    /// Whether `mail:` is configured (email subscriptions are taken).
    pub mail: bool,
    limiter: PerIp,
}

impl Signups {
    pub fn new(mail: bool) -> Signups {
        Signups {
            mail,
            limiter: PerIp::per_minute(PER_MINUTE),
        }
    }

    /// `Err(seconds to wait)` when `ip` made [`PER_MINUTE`] sign-ups this minute.
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        self.limiter.admit(ip, now)
    }
}
