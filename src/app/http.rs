//! The HTTP server's connections, so that idle or silent clients cannot lock the service out
//! (`axum::serve` has no header-read timeout and no connection limit):
//!
//! - at most `max_connections` connections are served at once: the accept loop takes a
//!   permit before it accepts, so the others wait in the kernel's listen backlog, costing
//!   no file descriptor here; hitting the limit is logged, at most once per [`LOG_EVERY`];
//! - HTTP/1 only, with hyper's `header_read_timeout`: a connection that does not send a
//!   request's head in time is closed — a new one that stays silent, a slow one, and a
//!   kept-alive one waiting for its next request (hyper starts the same timer then);
//! - `idle_timeout`: a connection on which nothing is read or written for that long is
//!   closed whatever it is doing (a stalled body, say);
//! - the open-files limit: [`raise_open_files_limit`] at start, and [`connection_limit`]
//!   keeps `max_connections` below it with room for the store, probes and webhooks, so the
//!   accept loop never meets "Too many open files".
//!
//! Graceful shutdown as `axum::serve` does it: stop accepting, let each connection finish
//! its request in flight, then wait for them all (the app bounds the wait).

use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpConfig;

/// A repeated warning (the connection limit, a failing accept) is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How long the accept loop waits after an error that is not about one connection (out of
/// file descriptors): the error would come back at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);
/// File descriptors kept for everything but HTTP connections, beyond one per probe run in
/// flight: the store, webhook deliveries, DNS, logs.
const FD_HEADROOM: u64 = 128;

/// Raises the soft limit on open files to the hard one (the soft default, often 1,024, is
/// what a thousand silent connections exhausted). Logs what it did; a failure only warns.
pub fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let below = match (limit.current, limit.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !below {
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(
            from = ?limit.current,
            to = ?limit.maximum,
            "raised the open-files limit (RLIMIT_NOFILE) to its hard limit"
        ),
        Err(error) => tracing::warn!(
            %error,
            soft = ?limit.current,
            hard = ?limit.maximum,
            "cannot raise the open-files limit (RLIMIT_NOFILE)"
        ),
    }
}

/// `configured` connections, or fewer if the open-files limit cannot hold them beside
/// `probe_sockets` (probe runs in flight) and [`FD_HEADROOM`] (at least 1).
pub fn connection_limit(configured: usize, probe_sockets: usize) -> usize {
    let Some(files) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current else {
        return configured;
    };
    let room = files.saturating_sub(probe_sockets as u64 + FD_HEADROOM);
    let room = usize::try_from(room).unwrap_or(usize::MAX).max(1);
    if configured > room {
        tracing::warn!(
            configured,
            max_connections = room,
            open_files_limit = files,
            "http.max_connections lowered to what the open-files limit leaves for connections"
        );
        return room;
    }
    configured
}

/// Serves `router` on `listener` until `stop`, then waits for the connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    http: HttpConfig,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let connections = TaskTracker::new();
    let mut at_limit = Every::new(LOG_EVERY);
    let mut accept_failing = Every::new(LOG_EVERY);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(suppressed) = at_limit.due() {
                    tracing::warn!(
                        max_connections,
                        suppressed,
                        "connection limit reached: new connections wait in the listen backlog until one closes"
                    );
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => {
                        permit.expect("the semaphore is never closed")
                    }
                    () = stop.cancelled() => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_about_one_connection(&error) => continue,
                Err(error) => {
                    if let Some(suppressed) = accept_failing.due() {
                        tracing::error!(%error, suppressed, "cannot accept connections");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        () = stop.cancelled() => break,
                    }
                }
            },
            () = stop.cancelled() => break,
        };
        // The peer's address for the routes that limit per client (subscription sign-ups).
        let router = router
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        connections.spawn(connection(stream, router, http, stop.clone(), permit));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// One connection, holding its permit until it closes.
async fn connection(
    stream: TcpStream,
    router: Router,
    http: HttpConfig,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_read_timeout);
    let mut served = pin!(builder.serve_connection(io, TowerToHyperService::new(router)));
    let mut idle = pin!(activity.idle_for(http.idle_timeout));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "HTTP connection ended with an error");
                }
                break;
            }
            () = &mut idle => {
                tracing::debug!(idle_timeout = ?http.idle_timeout, "closing an idle HTTP connection");
                break;
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Errors of one connection that came and went before it was accepted.
fn is_about_one_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// When a connection last read or wrote a byte.
struct Activity {
    start: Instant,
    /// Milliseconds since `start`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(elapsed, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// Completes once nothing was read or written for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.last();
            tokio::time::sleep_until(last + timeout).await;
            if self.last() == last {
                return;
            }
        }
    }
}

/// A TCP stream that records its activity.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A rate limit for a repeated log line: due at most once per period, counting the
/// occurrences it suppressed meanwhile.
struct Every {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Every {
    fn new(period: Duration) -> Every {
        Every {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(occurrences suppressed since the last one)` when due.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now - last < self.period) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_repeated_warning_is_due_once_per_period() {
        let mut every = Every::new(Duration::from_secs(10));
        assert_eq!(every.due(), Some(0));
        assert_eq!(every.due(), None);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(every.due(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(every.due(), Some(2));
        assert_eq!(every.due(), None);
    }
}
