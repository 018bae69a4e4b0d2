//! Certificate expiry: the `notAfter` of DER certificates, as the http and tls probes report
//! it (`[CERTIFICATE_EXPIRATION]`, `incidentd_probe_cert_expiry_timestamp_seconds`).

use chrono::{DateTime, Utc};

/// The `notAfter` of one DER certificate; `None` when it does not parse (a probe then
/// reports no expiry rather than failing: the connection itself worked).
pub fn not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    DateTime::from_timestamp(certificate.validity().not_after.timestamp(), 0)
}

/// The earliest `notAfter` over a presented chain: the chain stops working when its first
/// certificate expires, whichever that is (blackbox_exporter's
/// `probe_ssl_earliest_cert_expiry`).
pub fn earliest_not_after<'a>(chain: impl IntoIterator<Item = &'a [u8]>) -> Option<DateTime<Utc>> {
    chain.into_iter().filter_map(not_after).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(year: i32, month: u8, day: u8) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_not_after_and_takes_the_earliest_of_a_chain() {
        let later = certificate(2031, 6, 1);
        let sooner = certificate(2030, 1, 2);
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(not_after(&later), Some(at("2031-06-01T00:00:00Z")));
        assert_eq!(
            earliest_not_after([&later[..], &sooner[..]]),
            Some(at("2030-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn garbage_has_no_expiry() {
        assert_eq!(not_after(b"not a certificate"), None);
        assert_eq!(earliest_not_after([&b""[..], &b"x"[..]]), None);
    }
}
