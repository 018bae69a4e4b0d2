//! The Prometheus probe: one instant query (`GET {url}/api/v1/query`). Each series of the
//! answer is its own subject — its labels without `__name__`, its sample in
//! [`Observation::value`] — so one rule watches every instance a query returns, as a
//! Prometheus alerting rule does. A scalar is one subject without labels. A query that fails
//! (unreachable, non-2xx, `status: error`) is one result without labels, carrying the error.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::http::Failed;
use super::{Subject, body_text, timed_out};
use crate::config::PrometheusProbe;
use crate::domain::observation::Observation;

/// The largest answer read: a query returning more than this is a mistake, not a probe.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// `{"status": "success"|"error", "data": …, "errorType": …, "error": …}`
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: String,
    data: Option<Data>,
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<Series>),
    Scalar(Sample),
    String(Sample),
    Matrix(IgnoredAny),
}

#[derive(Debug, Deserialize)]
struct Series {
    metric: BTreeMap<String, String>,
    value: Sample,
}

/// `[<unix time>, "<value>"]`: the value is a string so that NaN and ±Inf survive JSON.
#[derive(Debug, Deserialize)]
struct Sample(IgnoredAny, String);

pub async fn run(
    client: &reqwest::Client,
    probe: &PrometheusProbe,
    timeout: Duration,
    at: DateTime<Utc>,
) -> Vec<(Subject, Observation)> {
    let started = Instant::now();
    let mut failed = Observation::new(at);
    let outcome = tokio::time::timeout(timeout, query(client, probe, timeout, &mut failed))
        .await
        .unwrap_or(Err(Failed::Timeout))
        .map_err(|error| match error {
            // An answer began (`connected`): the time ran out in its body.
            Failed::Timeout if failed.connected => {
                format!("prometheus: {}", timed_out(timeout, "reading the answer"))
            }
            Failed::Timeout => format!(
                "prometheus: {}",
                timed_out(timeout, "waiting for the answer")
            ),
            Failed::Error(error) => error,
        });
    let response_time = started.elapsed();
    match outcome {
        Ok(results) => results
            .into_iter()
            .map(|(labels, value, text)| {
                let observation = Observation {
                    connected: true,
                    status: failed.status,
                    response_time,
                    value,
                    body: text,
                    ..Observation::new(at)
                };
                (labels, observation)
            })
            .collect(),
        Err(error) => {
            failed.error = Some(error);
            failed.response_time = response_time;
            vec![(Subject::new(), failed)]
        }
    }
}

/// One subject of the answer: labels, value, and the text of a string result.
type Row = (Subject, Option<f64>, Option<String>);

/// Runs the query; `observation` learns whether Prometheus answered and with what status,
/// for the failure case.
async fn query(
    client: &reqwest::Client,
    probe: &PrometheusProbe,
    timeout: Duration,
    observation: &mut Observation,
) -> Result<Vec<Row>, Failed> {
    let mut url = probe.url.clone();
    let path = format!("{}/api/v1/query", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.query_pairs_mut()
        .append_pair("query", &probe.query)
        // Prometheus stops evaluating when we stop waiting.
        .append_pair("timeout", &format!("{}ms", timeout.as_millis()));
    let mut response = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| failed(&e))?;
    observation.connected = true;
    let status = response.status();
    observation.status = Some(status.as_u16());
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(&e))? {
        if bytes.len() + chunk.len() > MAX_ANSWER {
            return Err(Failed::Error(format!(
                "prometheus: the answer is larger than {} MiB; narrow the query",
                MAX_ANSWER / 1024 / 1024
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let answer: Result<Answer, _> = serde_json::from_slice(&bytes);
    answer_rows(answer, status, &bytes).map_err(Failed::Error)
}

/// The rows of a decoded answer, or what is wrong with it.
fn answer_rows(
    answer: Result<Answer, serde_json::Error>,
    status: reqwest::StatusCode,
    bytes: &[u8],
) -> Result<Vec<Row>, String> {
    match answer {
        // Prometheus answers errors (bad query: 400, timeout: 503, …) with the same JSON.
        Ok(answer) if answer.status == "error" || !status.is_success() => {
            let kind = answer.error_type.unwrap_or_else(|| status.to_string());
            let message = answer.error.unwrap_or_default();
            Err(format!("prometheus: {kind}: {message}"))
        }
        Ok(Answer {
            data: Some(data), ..
        }) => rows(data),
        Ok(_) => Err("prometheus: an answer without data".to_owned()),
        Err(_) if !status.is_success() => {
            let excerpt = body_text(&bytes[..bytes.len().min(200)]);
            Err(format!("prometheus: HTTP {status}: {}", excerpt.trim()))
        }
        Err(error) => Err(format!("prometheus: not a query answer: {error}")),
    }
}

/// A request's failure, as the probe says it.
fn failed(error: &reqwest::Error) -> Failed {
    match Failed::from(error) {
        Failed::Error(error) => Failed::Error(format!("prometheus: {error}")),
        timeout => timeout,
    }
}

fn rows(data: Data) -> Result<Vec<Row>, String> {
    match data {
        Data::Vector(series) => Ok(series
            .into_iter()
            .map(|Series { mut metric, value }| {
                metric.remove("__name__");
                (metric, parse(&value.1), None)
            })
            .collect()),
        Data::Scalar(sample) => Ok(vec![(Subject::new(), parse(&sample.1), None)]),
        Data::String(sample) => Ok(vec![(Subject::new(), None, Some(sample.1))]),
        Data::Matrix(_) => Err(
            "prometheus: the query returns a range vector; use an instant query (e.g. wrap it in last_over_time())"
                .to_owned(),
        ),
    }
}

/// A sample value as Prometheus writes it: a decimal, `NaN`, `+Inf` or `-Inf`.
fn parse(text: &str) -> Option<f64> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> Result<Vec<Row>, String> {
        let answer: Answer = serde_json::from_str(json).unwrap();
        rows(answer.data.unwrap())
    }

    #[test]
    fn vectors_become_subjects_without_their_name() {
        let rows = parsed(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"__name__":"up","job":"a","instance":"x:1"},"value":[1700000000.5,"1"]},
                {"metric":{"job":"b"},"value":[1700000000.5,"NaN"]},
                {"metric":{},"value":[1700000000.5,"+Inf"]}]}}"#,
        )
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| -> Subject {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].0, labels(&[("instance", "x:1"), ("job", "a")]));
        assert_eq!(rows[0].1, Some(1.0));
        assert_eq!(rows[1].0, labels(&[("job", "b")]));
        assert!(rows[1].1.is_some_and(f64::is_nan));
        assert_eq!(rows[2].1, Some(f64::INFINITY));
    }

    #[test]
    fn scalars_strings_and_matrices() {
        let scalar =
            parsed(r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"42.5"]}}"#);
        assert_eq!(scalar, Ok(vec![(Subject::new(), Some(42.5), None)]));
        let string =
            parsed(r#"{"status":"success","data":{"resultType":"string","result":[1.5,"hi"]}}"#);
        assert_eq!(
            string,
            Ok(vec![(Subject::new(), None, Some("hi".to_owned()))])
        );
        let matrix = parsed(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#);
        assert!(matrix.unwrap_err().contains("range vector"));
    }
}
