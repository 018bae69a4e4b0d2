//! The TCP probe: connect to `host:port`, optionally send bytes, optionally read until an
//! expected substring shows up. Without `expect` nothing is read: the probe only proves
//! the port accepts connections (reading until the peer closes would cost every probe its
//! whole timeout against servers that wait for the client).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use super::body_text;
use crate::config::TcpProbe;
use crate::domain::observation::{BODY_LIMIT, Observation};

pub async fn run(probe: &TcpProbe, timeout: Duration, at: DateTime<Utc>) -> Observation {
    let timed_out = |waiting: &str| super::timed_out(timeout, waiting);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut observation = Observation::new(at);
    let mut stream = match timeout_at(deadline, TcpStream::connect(&probe.address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            observation.error = Some(format!("connection failed: {error}"));
            observation.response_time = started.elapsed();
            return observation;
        }
        Err(_) => {
            observation.error = Some(timed_out("connecting"));
            observation.response_time = started.elapsed();
            return observation;
        }
    };
    observation.connected = true;
    observation.error = exchange(&mut stream, probe, deadline, &mut observation.body)
        .await
        .map(|problem| match problem {
            Problem::Timeout(waiting) => timed_out(&waiting),
            Problem::Error(error) => error,
        });
    observation.response_time = started.elapsed();
    observation
}

/// What went wrong in an exchange: the time ran out waiting for something, or the reason.
enum Problem {
    Timeout(String),
    Error(String),
}

/// How reading for the expected bytes ended.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Found,
    /// The peer closed the connection first.
    Closed,
    /// [`BODY_LIMIT`] bytes came without it.
    Limit,
    /// The deadline passed first.
    Deadline,
}

/// Sends and reads what the probe asks for; the problem, if any. `body` gets what was read.
async fn exchange(
    stream: &mut TcpStream,
    probe: &TcpProbe,
    deadline: tokio::time::Instant,
    body: &mut Option<String>,
) -> Option<Problem> {
    if let Some(send) = &probe.send {
        match timeout_at(deadline, stream.write_all(send.as_bytes())).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Some(Problem::Error(format!("sending failed: {error}"))),
            Err(_) => return Some(Problem::Timeout("sending".to_owned())),
        }
    }
    let expect = probe.expect.as_deref()?;
    let mut read = Vec::new();
    let outcome = read_until(stream, expect.as_bytes(), deadline, &mut read).await;
    *body = Some(body_text(&read));
    match outcome {
        Ok(Read::Found) => None,
        Ok(Read::Closed) => Some(Problem::Error(format!(
            "expected `{expect}` not found before the connection closed ({} bytes read)",
            read.len()
        ))),
        Ok(Read::Limit) => Some(Problem::Error(format!(
            "expected `{expect}` not found in the first {} KiB",
            BODY_LIMIT / 1024
        ))),
        Ok(Read::Deadline) => Some(Problem::Timeout(format!(
            "waiting for `{expect}` ({} bytes read)",
            read.len()
        ))),
        Err(error) => Some(Problem::Error(format!("reading failed: {error}"))),
    }
}

/// Reads into `read` until `expect` appears, the peer closes, [`BODY_LIMIT`] bytes were
/// read or the deadline passes.
async fn read_until(
    stream: &mut TcpStream,
    expect: &[u8],
    deadline: tokio::time::Instant,
    read: &mut Vec<u8>,
) -> std::io::Result<Read> {
    let mut chunk = vec![0u8; 8192];
    while read.len() < BODY_LIMIT {
        let room = (BODY_LIMIT - read.len()).min(chunk.len());
        let len = match timeout_at(deadline, stream.read(&mut chunk[..room])).await {
            Ok(result) => result?,
            Err(_) => return Ok(Read::Deadline),
        };
        if len == 0 {
            return Ok(Read::Closed);
        }
        // Only the new bytes, and the ones before them a match could start in.
        let from = read.len().saturating_sub(expect.len().saturating_sub(1));
        read.extend_from_slice(&chunk[..len]);
        if contains(&read[from..], expect) {
            return Ok(Read::Found);
        }
    }
    Ok(Read::Limit)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_finds_substrings() {
        assert!(contains(b"hello world", b"o w"));
        assert!(!contains(b"hello", b"hello!"));
        assert!(contains(b"x", b""));
    }
}
