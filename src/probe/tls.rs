//! The TLS probe: a TCP connection and a TLS handshake (rustls with aws-lc-rs, the crypto
//! reqwest already uses), reporting the earliest `notAfter` of the chain the server
//! presented.
//!
//! The chain is recorded by the certificate verifier itself, before it decides, so an
//! expired or untrusted certificate still has its expiry reported next to the handshake
//! error. Semantics, as in Gatus: TCP connected but the handshake failed is
//! `connected: false` with `error: "tls: …"`, since the service behind TLS is unreachable.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use super::cert;
use crate::config::{TlsProbe, split_host_port};
use crate::domain::observation::Observation;

/// What every TLS probe shares: the crypto provider and the two verifiers, made once
/// (the platform verifier reads the system's roots).
pub struct TlsSetup {
    provider: Arc<CryptoProvider>,
    platform: OnceLock<Result<Arc<dyn ServerCertVerifier>, String>>,
}

impl Default for TlsSetup {
    fn default() -> Self {
        TlsSetup {
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            platform: OnceLock::new(),
        }
    }
}

impl TlsSetup {
    fn verifier(&self, verify: bool) -> Result<Arc<dyn ServerCertVerifier>, String> {
        if !verify {
            return Ok(Arc::new(AcceptAny {
                provider: self.provider.clone(),
            }));
        }
        self.platform
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new(self.provider.clone())
                    .map(|verifier| Arc::new(verifier) as Arc<dyn ServerCertVerifier>)
                    .map_err(|e| format!("tls: no certificate verifier: {e}"))
            })
            .clone()
    }

    /// A client config for one handshake, recording the chain into `chain`. A fresh config
    /// per run also means a fresh session cache: a resumed TLS 1.3 handshake would not
    /// show the certificates at all.
    fn client_config(
        &self,
        verify: bool,
        chain: Arc<Recorded>,
    ) -> Result<rustls::ClientConfig, String> {
        let inner = self.verifier(verify)?;
        let config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Recording { inner, chain }))
            .with_no_client_auth();
        Ok(config)
    }
}

pub async fn run(
    setup: &TlsSetup,
    probe: &TlsProbe,
    timeout: Duration,
    at: DateTime<Utc>,
) -> Observation {
    let started = Instant::now();
    let chain = Arc::new(Recorded::default());
    let outcome = handshake(setup, probe, timeout, chain.clone()).await;
    Observation {
        connected: outcome.is_ok(),
        error: outcome.err(),
        response_time: started.elapsed(),
        certificate_expiry: chain.earliest_not_after(),
        ..Observation::new(at)
    }
}

async fn handshake(
    setup: &TlsSetup,
    probe: &TlsProbe,
    timeout: Duration,
    chain: Arc<Recorded>,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let host = split_host_port(&probe.address).map_or("", |(host, _)| host);
    let name = probe.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_owned())
        .map_err(|_| format!("tls: invalid server name `{name}`"))?;
    let config = setup.client_config(probe.verify, chain)?;
    let tcp = match timeout_at(deadline, TcpStream::connect(&probe.address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(format!("connection failed: {error}")),
        Err(_) => return Err(super::timed_out(timeout, "connecting")),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut stream = match timeout_at(deadline, connector.connect(server_name, tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(format!("tls: {error}")),
        Err(_) => return Err(super::timed_out(timeout, "in the TLS handshake")),
    };
    // close_notify, politely and within the deadline; the result is in already.
    let _ = timeout_at(deadline, stream.shutdown()).await;
    Ok(())
}

/// The chain a server presented, as DER.
#[derive(Debug, Default)]
struct Recorded(Mutex<Vec<CertificateDer<'static>>>);

impl Recorded {
    fn earliest_not_after(&self) -> Option<DateTime<Utc>> {
        let chain = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cert::earliest_not_after(chain.iter().map(|der| der.as_ref()))
    }
}

/// Records the presented chain, then lets `inner` decide.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    chain: Arc<Recorded>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        {
            let mut chain = self
                .chain
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            chain.clear();
            chain.extend(
                std::iter::once(end_entity)
                    .chain(intermediates)
                    .map(|der| der.clone().into_owned()),
            );
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `verify: false`: any certificate is accepted (self-signed, expired, another name), but
/// the handshake signatures are still checked, so the peer does hold the certificate's key.
#[derive(Debug)]
struct AcceptAny {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
