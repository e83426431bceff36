//! TLS to the server, with libpq's words: `sslmode` (`disable`, `prefer`, `require`,
//! `verify-ca`, `verify-full`) and `sslrootcert` in the URL's query mean what they mean
//! to `psql`, so a URL copied from a provider's dashboard works as it is.
//!
//! The driver itself knows only `disable`, `prefer` and `require` and refuses any other
//! parameter, so the two verifying modes and `sslrootcert` are taken out of the URL
//! here and become the certificate check of the TLS connector instead.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use std::path::PathBuf;
use std::sync::Arc;
use tend_store::StoreError;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector every connection of a store uses (pool and election alike).
pub(crate) type Connector = MakeRustlsConnect;

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Encrypted, not authenticated (libpq's `prefer` and `require` with no root
    /// certificate): protects against eavesdropping, not against an impostor.
    Nothing,
    /// Signed by a trusted root, for any host name (`verify-ca`).
    Chain,
    /// Signed by a trusted root and issued for the host connected to (`verify-full`).
    ChainAndName,
}

impl Check {
    /// The check in words, for `tend doctor`.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Check::Nothing => "certificate not verified",
            Check::Chain => "certificate verified, host name not checked (verify-ca)",
            Check::ChainAndName => "certificate verified for this host (verify-full)",
        }
    }
}

/// What a URL asks of TLS, and the URL left for the driver.
#[derive(Debug)]
pub(crate) struct TlsRequest {
    /// The URL without `sslrootcert`, with a verifying `sslmode` turned into `require`.
    pub driver_url: String,
    /// How the certificate is checked.
    pub check: Check,
    /// The roots to trust: a PEM file, or `None` for the Mozilla roots built in.
    pub roots: Option<PathBuf>,
}

/// Takes the TLS parameters out of a `postgres://` URL.
pub(crate) fn parse(url: &str) -> Result<TlsRequest, StoreError> {
    let bad = |why: String| StoreError::InvalidUrl(format!("postgres://…: {why}"));
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    let mut mode = None;
    let mut roots = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| bad(format!("{key}: not UTF-8")))?
            .into_owned();
        match key {
            "sslmode" => mode = Some(decoded),
            "sslrootcert" => roots = Some(decoded),
            _ => kept.push(pair),
        }
    }
    // libpq: with a root certificate and no stronger mode, `require` verifies the chain.
    let (driver_mode, check) = match mode.as_deref() {
        None | Some("prefer") | Some("require") if roots.is_some() => {
            (mode.as_deref().unwrap_or("prefer"), Check::Chain)
        }
        None => ("prefer", Check::Nothing),
        Some(m @ ("disable" | "prefer" | "require")) => (m, Check::Nothing),
        Some("verify-ca") => ("require", Check::Chain),
        Some("verify-full") => ("require", Check::ChainAndName),
        Some(other) => {
            return Err(bad(format!(
                "sslmode `{other}`: expected disable, prefer, require, verify-ca or verify-full"
            )));
        }
    };
    let roots = match roots.as_deref() {
        // libpq 16's word for the system's trust store; Tend's is Mozilla's, built in.
        None | Some("system") => None,
        Some("") => return Err(bad("sslrootcert is empty".into())),
        Some(path) => Some(PathBuf::from(path)),
    };
    kept.push(match driver_mode {
        "disable" => "sslmode=disable",
        "require" => "sslmode=require",
        _ => "sslmode=prefer",
    });
    Ok(TlsRequest {
        driver_url: format!("{base}?{}", kept.join("&")),
        check,
        roots,
    })
}

/// The connector for a request: rustls with ring, certificates checked as asked.
pub(crate) fn connector(request: &TlsRequest) -> Result<Connector, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("TLS to PostgreSQL: {e}").into()))?;
    let verifier: Arc<dyn ServerCertVerifier> = match request.check {
        Check::Nothing => Arc::new(Unverified(provider.signature_verification_algorithms)),
        Check::Chain | Check::ChainAndName => {
            let roots = trusted_roots(request.roots.as_ref())?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| StoreError::Backend(format!("TLS to PostgreSQL: {e}").into()))?;
            if request.check == Check::Chain {
                Arc::new(AnyName(webpki))
            } else {
                webpki
            }
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The roots a verifying mode trusts: the certificates of `sslrootcert`, or Mozilla's.
fn trusted_roots(file: Option<&PathBuf>) -> Result<RootCertStore, StoreError> {
    let Some(path) = file else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let bad =
        |why: String| StoreError::InvalidUrl(format!("sslrootcert {}: {why}", path.display()));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(roots)
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not compared.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root: any certificate is taken, though the
/// handshake's signatures are still checked against it (so the session key is the
/// certificate holder's), as libpq does.
#[derive(Debug)]
struct Unverified(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unverified {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> (String, Check, Option<PathBuf>) {
        let r = parse(url).unwrap();
        (r.driver_url, r.check, r.roots)
    }

    #[test]
    fn libpq_modes_become_the_drivers_mode_and_a_certificate_check() {
        assert_eq!(
            parsed("postgres://u@h/db"),
            (
                "postgres://u@h/db?sslmode=prefer".into(),
                Check::Nothing,
                None
            )
        );
        assert_eq!(
            parsed("postgres://u@h/db?sslmode=disable&application_name=x").0,
            "postgres://u@h/db?application_name=x&sslmode=disable"
        );
        assert_eq!(
            parsed("postgres://u@h/db?sslmode=verify-full"),
            (
                "postgres://u@h/db?sslmode=require".into(),
                Check::ChainAndName,
                None
            )
        );
        assert_eq!(
            parsed("postgres://u@h/db?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem"),
            (
                "postgres://u@h/db?sslmode=require".into(),
                Check::Chain,
                Some(PathBuf::from("/etc/ca.pem"))
            )
        );
        // libpq: a root certificate makes `require` verify the chain.
        assert_eq!(
            parsed("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem").1,
            Check::Chain
        );
        assert_eq!(
            parsed("postgres://u@h/db?sslmode=verify-full&sslrootcert=system").2,
            None
        );
    }

    #[test]
    fn an_unknown_mode_is_refused_by_name() {
        let error = parse("postgres://u:secret@h/db?sslmode=verify").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("sslmode `verify`"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
