//! The HTTP probe: one request, its status and total time. A target that cannot be reached
//! is an [`Observation`] with `connected: false` and the reason, never an error.

use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::config::HttpProbe;
use crate::domain::observation::Observation;

pub async fn run(
    client: &reqwest::Client,
    probe: &HttpProbe,
    timeout: std::time::Duration,
    at: DateTime<Utc>,
) -> Observation {
    let started = Instant::now();
    let mut request = client
        .request(probe.method.clone(), probe.url.clone())
        .timeout(timeout);
    for (name, value) in &probe.headers {
        request = request.header(name, value);
    }
    let result = request.send().await;
    // The body is part of the response time; read it (it is discarded until rules can
    // look at it).
    let outcome = match result {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(_) => Ok(status),
                Err(error) => Err(describe(&error)),
            }
        }
        Err(error) => Err(describe(&error)),
    };
    let response_time = started.elapsed();
    match outcome {
        Ok(status) => Observation {
            connected: true,
            status: Some(status),
            response_time,
            ..Observation::new(at)
        },
        Err(error) => Observation {
            response_time,
            error: Some(error),
            ..Observation::new(at)
        },
    }
}

/// The reason a request failed, short and without the URL (the probe is named elsewhere).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    // The innermost cause is the useful part ("Connection refused (os error 111)").
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    let cause = source.to_string();
    if cause == error.to_string() || error.is_timeout() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}
