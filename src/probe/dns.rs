//! The DNS probe: one query to one server over UDP (TCP when the answer is truncated), with
//! hickory-proto's message types. The result: the response code (`[DNS_RCODE]`) and the
//! answers' data, one per line (`[BODY]`). Any response — NXDOMAIN and SERVFAIL too — is
//! `connected: true`: the server answered; rules judge the answer.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout_at;

use super::body_text;
use crate::config::DnsProbe;
use crate::domain::observation::Observation;

/// The EDNS payload size DNS Flag Day 2020 recommends: no IP fragmentation.
const EDNS_PAYLOAD: u16 = 1232;

pub async fn run(probe: &DnsProbe, timeout: Duration, at: DateTime<Utc>) -> Observation {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let outcome = match query(probe) {
        Ok(request) => exchange(probe.server, &request, timeout, deadline).await,
        Err(error) => Err(error),
    };
    let mut observation = Observation::new(at);
    observation.response_time = started.elapsed();
    match outcome {
        Ok(response) => {
            observation.connected = true;
            observation.dns_rcode = Some(rcode_name(response.response_code));
            let answers: Vec<String> = response
                .answers
                .iter()
                .map(|record| record.data.to_string())
                .collect();
            observation.body = Some(body_text(answers.join("\n").as_bytes()));
        }
        Err(error) => observation.error = Some(error),
    }
    observation
}

/// The query message; the config loader has checked the name and the record type.
fn query(probe: &DnsProbe) -> Result<Message, String> {
    let name = Name::from_ascii(&probe.name).map_err(|e| format!("dns: invalid name: {e}"))?;
    let record = RecordType::from_str(&probe.record)
        .map_err(|_| format!("dns: unknown record type {}", probe.record))?;
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, record));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    message.set_edns(edns);
    Ok(message)
}

/// Sends the query and returns the matching response.
async fn exchange(
    server: SocketAddr,
    request: &Message,
    timeout: std::time::Duration,
    deadline: tokio::time::Instant,
) -> Result<Message, String> {
    let bytes = request.to_vec().map_err(|e| format!("dns: {e}"))?;
    let mut ignored = Ignored::default();
    let id = request.metadata.id;
    let response = match timeout_at(deadline, udp(server, id, &bytes, &mut ignored)).await {
        Ok(result) => result?,
        Err(_) => {
            let waited = super::timed_out(timeout, "waiting for the answer");
            return Err(match ignored.describe() {
                Some(ignored) => format!("{waited}; {ignored}"),
                None => waited,
            });
        }
    };
    if !response.metadata.truncation {
        return Ok(response);
    }
    // RFC 7766: a truncated UDP answer is asked again over TCP.
    match timeout_at(deadline, tcp(server, id, &bytes)).await {
        Ok(result) => result,
        Err(_) => Err(super::timed_out(
            timeout,
            "waiting for the answer over TCP (the UDP answer was truncated)",
        )),
    }
}

/// The datagrams a query's socket received that were not its answer, kept to say why the
/// probe timed out when no answer came.
#[derive(Default)]
struct Ignored {
    count: usize,
    /// Why the last one was not the answer.
    last: Option<String>,
}

impl Ignored {
    fn add(&mut self, why: String) {
        self.count += 1;
        self.last = Some(why);
    }

    fn describe(&self) -> Option<String> {
        let last = self.last.as_deref()?;
        let plural = if self.count == 1 { "" } else { "s" };
        Some(format!(
            "{} datagram{plural} ignored, the last {last}",
            self.count
        ))
    }
}

async fn udp(
    server: SocketAddr,
    id: u16,
    request: &[u8],
    ignored: &mut Ignored,
) -> Result<Message, String> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("dns: {e}"))?;
    // Connected: datagrams from any other address are dropped by the kernel.
    socket
        .connect(server)
        .await
        .map_err(|e| format!("connection failed: {e}"))?;
    socket
        .send(request)
        .await
        .map_err(|e| format!("sending failed: {e}"))?;
    let mut buffer = vec![0u8; 4096];
    loop {
        let len = socket
            .recv(&mut buffer)
            .await
            .map_err(|e| format!("connection failed: {e}"))?;
        // Anything that does not parse or answers another id (a late answer to an
        // earlier query, a spoofing attempt) is skipped; the deadline bounds the wait.
        match Message::from_vec(&buffer[..len]) {
            Ok(response)
                if response.metadata.id == id
                    && response.metadata.message_type == MessageType::Response =>
            {
                return Ok(response);
            }
            Ok(response) if response.metadata.id != id => {
                ignored.add(format!(
                    "an answer to another query (id {})",
                    response.metadata.id
                ));
            }
            Ok(_) => ignored.add("a query, not an answer".to_owned()),
            Err(error) => ignored.add(format!("not a DNS answer ({error})")),
        }
    }
}

async fn tcp(server: SocketAddr, id: u16, request: &[u8]) -> Result<Message, String> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| format!("connection failed: {e}"))?;
    let len = u16::try_from(request.len()).map_err(|_| "dns: query too long".to_owned())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| format!("sending failed: {e}"))?;
    let len = stream
        .read_u16()
        .await
        .map_err(|e| format!("dns: reading the TCP answer failed: {e}"))?;
    let mut buffer = vec![0u8; usize::from(len)];
    stream
        .read_exact(&mut buffer)
        .await
        .map_err(|e| format!("dns: reading the TCP answer failed: {e}"))?;
    let response = Message::from_vec(&buffer).map_err(|e| format!("dns: invalid answer: {e}"))?;
    if response.metadata.id != id {
        return Err("dns: the TCP answer has another id".to_owned());
    }
    Ok(response)
}

/// The mnemonic of a response code, as `dig` prints it (`NOERROR`, `NXDOMAIN`, …).
pub fn rcode_name(code: ResponseCode) -> String {
    let name = match u16::from(code) {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        other => return format!("RCODE{other}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcode_names_are_the_mnemonics() {
        assert_eq!(rcode_name(ResponseCode::NoError), "NOERROR");
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode_name(ResponseCode::Refused), "REFUSED");
        assert_eq!(rcode_name(ResponseCode::from(250, 0)), "RCODE4000");
    }

    #[test]
    fn every_configurable_record_type_is_known_to_hickory() {
        for record in crate::config::DNS_RECORD_TYPES {
            assert!(RecordType::from_str(record).is_ok(), "{record}");
        }
    }
}
