//! The ICMP probe: one echo request and its round-trip time, like `ping -c 1`.
//!
//! It first tries an unprivileged "ping socket" (`SOCK_DGRAM` + `IPPROTO_ICMP`), which Linux
//! grants to the groups in `net.ipv4.ping_group_range`, then a raw socket, which root (or
//! `CAP_NET_RAW`) may always open. [`check_access`] asks the same question at config load, so
//! `incidentd check` tells an operator before `serve` would fail at every probe. socket2 holds
//! the `unsafe` of creating the sockets; this module only builds and matches packets.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::config::{IcmpProbe, IcmpUnavailable};
use crate::domain::observation::Observation;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// ICMP errors that quote our request: destination unreachable, time exceeded.
const ERRORS_V4: [(u8, &str); 2] = [(3, "destination unreachable"), (11, "time exceeded")];
const ERRORS_V6: [(u8, &str); 2] = [(1, "destination unreachable"), (3, "time exceeded")];
/// Random bytes in the payload: how a reply is told from other traffic on a raw socket
/// (which sees every ICMP packet of the host, our own requests on loopback included).
const TOKEN_LEN: usize = 16;
const HEADER_LEN: usize = 8;

/// Whether this process can send ICMP echo requests (a ping socket or a raw one).
pub fn check_access() -> Result<(), IcmpUnavailable> {
    match open(Domain::IPV4) {
        Ok(_) => Ok(()),
        Err(_) => Err(IcmpUnavailable {
            gid: effective_gid(),
        }),
    }
}

/// The effective group id from `/proc/self/status` (std has no safe getegid); 0 when it
/// cannot be read (not Linux: there is no ping_group_range to set either).
fn effective_gid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("Gid:"))?;
            // Gid: real effective saved filesystem
            line.split_whitespace().nth(2)?.parse().ok()
        })
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The kernel owns the identifier and strips the IP header.
    Ping,
    /// We see whole IPv4 packets (not IPv6 ones: the kernel strips that header).
    Raw,
}

/// An ICMP socket of `domain`: a ping socket if allowed, else a raw one. Plain (no
/// runtime needed), so that the config check can ask too.
fn open(domain: Domain) -> io::Result<(Kind, Socket)> {
    let protocol = if domain == Domain::IPV6 {
        Protocol::ICMPV6
    } else {
        Protocol::ICMPV4
    };
    match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(socket) => Ok((Kind::Ping, socket)),
        Err(_) => Ok((Kind::Raw, Socket::new(domain, Type::RAW, Some(protocol))?)),
    }
}

/// [`open`], as a tokio socket: a datagram socket over any fd, so send/recv work on ICMP.
fn open_async(domain: Domain) -> io::Result<(Kind, UdpSocket)> {
    let (kind, socket) = open(domain)?;
    socket.set_nonblocking(true)?;
    Ok((
        kind,
        UdpSocket::from_std(std::net::UdpSocket::from(socket))?,
    ))
}

pub async fn run(probe: &IcmpProbe, timeout: Duration, at: DateTime<Utc>) -> Observation {
    let started = Instant::now();
    let outcome = tokio::time::timeout(timeout, echo(&probe.host))
        .await
        .unwrap_or_else(|_| Err(super::timed_out(timeout, "waiting for the echo reply")));
    match outcome {
        Ok(round_trip) => Observation {
            connected: true,
            response_time: round_trip,
            ..Observation::new(at)
        },
        Err(error) => Observation {
            response_time: started.elapsed(),
            error: Some(error),
            ..Observation::new(at)
        },
    }
}

/// Resolves `host`, sends one echo request and waits for its reply: the round trip from
/// sending to the reply (name resolution excluded, as `ping` reports it).
async fn echo(host: &str) -> Result<Duration, String> {
    let ip = resolve(host).await?;
    let domain = if ip.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let (kind, socket) = open_async(domain).map_err(|e| format!("icmp socket: {e}"))?;
    // Connected: the kernel then hands us only packets from the target.
    socket
        .connect(SocketAddr::new(ip, 0))
        .await
        .map_err(|e| format!("icmp socket: {e}"))?;
    let request = Request {
        v6: ip.is_ipv6(),
        identifier: rand::random(),
        sequence: rand::random(),
        token: rand::random(),
    };
    let sent = Instant::now();
    socket
        .send(&request.packet())
        .await
        .map_err(|e| format!("sending failed: {e}"))?;
    let mut buffer = vec![0u8; 2048];
    loop {
        let len = socket
            .recv(&mut buffer)
            .await
            .map_err(|e| format!("receiving failed: {e}"))?;
        let icmp = match (kind, request.v6) {
            (Kind::Raw, false) => strip_ipv4_header(&buffer[..len]),
            _ => Some(&buffer[..len]),
        };
        match icmp.map(|icmp| request.answer(kind, icmp)) {
            Some(Answer::Reply) => return Ok(sent.elapsed()),
            Some(Answer::Error(reason)) => return Err(reason.to_owned()),
            Some(Answer::Other) | None => {}
        }
    }
}

async fn resolve(host: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    let mut addresses = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| format!("dns: {e}"))?;
    addresses
        .next()
        .map(|address| address.ip())
        .ok_or_else(|| format!("dns: no address for {host}"))
}

/// The ICMP message inside an IPv4 packet (raw sockets deliver the IP header too).
fn strip_ipv4_header(packet: &[u8]) -> Option<&[u8]> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    packet.get(header_len..)
}

struct Request {
    v6: bool,
    identifier: u16,
    sequence: u16,
    token: [u8; TOKEN_LEN],
}

enum Answer {
    Reply,
    /// An ICMP error about our request.
    Error(&'static str),
    /// Someone else's packet.
    Other,
}

impl Request {
    fn packet(&self) -> Vec<u8> {
        let kind = if self.v6 {
            ECHO_REQUEST_V6
        } else {
            ECHO_REQUEST_V4
        };
        let mut packet = vec![kind, 0, 0, 0];
        packet.extend_from_slice(&self.identifier.to_be_bytes());
        packet.extend_from_slice(&self.sequence.to_be_bytes());
        packet.extend_from_slice(&self.token);
        // ICMPv6 checksums cover a pseudo-header the kernel knows and fills in itself;
        // ICMPv4 ones are ours to compute (a ping socket recomputes it anyway).
        if !self.v6 {
            let sum = checksum(&packet);
            packet[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        packet
    }

    /// What an ICMP message (without IP header) says about this request.
    fn answer(&self, kind: Kind, icmp: &[u8]) -> Answer {
        let (reply, errors) = if self.v6 {
            (ECHO_REPLY_V6, ERRORS_V6)
        } else {
            (ECHO_REPLY_V4, ERRORS_V4)
        };
        let Some(&message_type) = icmp.first() else {
            return Answer::Other;
        };
        if message_type == reply && self.is_ours(kind, icmp) {
            return Answer::Reply;
        }
        // An error quotes the offending packet: its IP header, then our first 8 bytes.
        if let Some((_, reason)) = errors.iter().find(|(t, _)| *t == message_type) {
            let quoted = icmp.get(HEADER_LEN..).and_then(|ip| {
                if self.v6 {
                    ip.get(40..)
                } else {
                    strip_ipv4_header(ip)
                }
            });
            if quoted.is_some_and(|quoted| self.quotes_ours(kind, quoted)) {
                return Answer::Error(reason);
            }
        }
        Answer::Other
    }

    fn is_ours(&self, kind: Kind, icmp: &[u8]) -> bool {
        self.quotes_ours(kind, icmp) && icmp.get(HEADER_LEN..) == Some(&self.token[..])
    }

    /// The header matches ours; a ping socket rewrites the identifier, so only a raw one
    /// compares it.
    fn quotes_ours(&self, kind: Kind, icmp: &[u8]) -> bool {
        let field = |at: usize| {
            icmp.get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        field(6) == Some(self.sequence) && (kind == Kind::Ping || field(4) == Some(self.identifier))
    }
}

/// The Internet checksum (RFC 1071): one's complement of the one's complement sum of
/// 16-bit words.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v6: bool) -> Request {
        Request {
            v6,
            identifier: 0x1234,
            sequence: 0xabcd,
            token: [7; TOKEN_LEN],
        }
    }

    #[test]
    fn checksum_of_a_packet_with_its_checksum_is_zero() {
        // RFC 1071's example words sum to 0xddf2; the checksum is its complement.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        let packet = request(false).packet();
        assert_eq!(checksum(&packet), 0);
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn replies_are_matched_by_sequence_token_and_on_raw_sockets_identifier() {
        let ours = request(false);
        let mut reply = ours.packet();
        reply[0] = ECHO_REPLY_V4;
        assert!(matches!(ours.answer(Kind::Raw, &reply), Answer::Reply));
        // Our own request, seen on a raw socket on loopback, is not a reply.
        assert!(matches!(
            ours.answer(Kind::Raw, &ours.packet()),
            Answer::Other
        ));
        // A ping socket rewrites the identifier.
        let mut rewritten = reply.clone();
        rewritten[4] = 0;
        assert!(matches!(ours.answer(Kind::Ping, &rewritten), Answer::Reply));
        assert!(matches!(ours.answer(Kind::Raw, &rewritten), Answer::Other));
        let mut other_token = reply.clone();
        other_token[HEADER_LEN] = 0;
        assert!(matches!(
            ours.answer(Kind::Ping, &other_token),
            Answer::Other
        ));
        assert!(matches!(ours.answer(Kind::Ping, &[]), Answer::Other));
    }

    #[test]
    fn errors_quoting_our_request_end_the_wait() {
        let ours = request(false);
        let mut error = vec![3, 1, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&[0x45; 1]);
        error.extend_from_slice(&[0; 19]); // the rest of a 20-byte IPv4 header
        error.extend_from_slice(&ours.packet()[..8]);
        assert!(matches!(
            ours.answer(Kind::Raw, &error),
            Answer::Error("destination unreachable")
        ));
        let v6 = request(true);
        let mut error = vec![1, 0, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&[0; 40]);
        error.extend_from_slice(&v6.packet()[..8]);
        assert!(matches!(
            v6.answer(Kind::Ping, &error),
            Answer::Error("destination unreachable")
        ));
    }

    #[test]
    fn the_ipv4_header_length_comes_from_ihl() {
        let mut packet = vec![0x46];
        packet.extend_from_slice(&[0; 23]);
        packet.push(ECHO_REPLY_V4);
        assert_eq!(strip_ipv4_header(&packet), Some(&[ECHO_REPLY_V4][..]));
        assert_eq!(strip_ipv4_header(&[]), None);
    }
}
