//! What the responder console (`web::console`) keeps beyond the API's state: its sign-in
//! limit, its event streams and their end, the open mode's CSRF token.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::rate_limit::PerIp;

/// Event streams (`/console/events`) open at once at most.
pub const MAX_STREAMS: usize = 1_000;
/// Sign-in attempts a client IP may make per minute.
pub const SIGN_INS_PER_MINUTE: usize = 10;

pub struct Console {
    /// Sign-in attempts per client IP.
    pub(crate) sign_ins: PerIp,
    /// Open event streams at most ([`MAX_STREAMS`]).
    pub(crate) streams: Arc<Semaphore>,
    /// The forms' CSRF token in the open mode (no tokens, so no sessions): random per
    /// process.
    pub(crate) open_csrf: String,
    /// Cancelled when the server stops: event streams end, so the server need not wait
    /// for them.
    pub(crate) stop: CancellationToken,
}

impl Console {
    pub fn new(stop: CancellationToken) -> Console {
        Console {
            sign_ins: PerIp::per_minute(SIGN_INS_PER_MINUTE),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            open_csrf: super::secret::random(),
            stop,
        }
    }
}
