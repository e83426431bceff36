//! DKIM signing of outgoing mail (RFC 6376, relaxed/relaxed canonicalization), with an
//! RSA key (`rsa-sha256`) or an Ed25519 key (`ed25519-sha256`, RFC 8463).
//!
//! Signing works on the finished message bytes, so the signature covers exactly what
//! the relay receives. The keys are used through `ring`, already compiled for TLS;
//! lettre's own `dkim` feature would add the `rsa` and `ed25519-dalek` crates (and
//! their big-number and curve code) and reads RSA keys only in PKCS#1 form, while
//! OpenSSL 3 writes PKCS#8 by default.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};

/// The headers signed when present, in this order. `From` is listed once more than it
/// appears (over-signing), so a second `From` added on the way breaks the signature.
const SIGNED_HEADERS: &[&str] = &[
    "from",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

/// Why a DKIM key cannot be used; the message names the file and never its contents.
#[derive(Debug, thiserror::Error)]
pub enum DkimKeyError {
    /// The file could not be read.
    #[error("cannot read the DKIM key file {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file holds no key Tend can sign with.
    #[error("the DKIM key file {} {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The private key a signature is made with.
enum SigningKey {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// Signs outgoing messages for one domain and selector.
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: SigningKey,
    rng: SystemRandom,
}

impl fmt::Debug for DkimSigner {
    /// Names the domain, selector and algorithm; the key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl DkimSigner {
    /// Reads the PEM key in `path` (PKCS#8 RSA or Ed25519, or PKCS#1 RSA).
    pub fn from_file(path: &Path, domain: &str, selector: &str) -> Result<Self, DkimKeyError> {
        let pem = std::fs::read(path).map_err(|source| DkimKeyError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        DkimSigner::from_pem(&pem, domain, selector).map_err(|reason| DkimKeyError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// A signer from PEM text; the error says what is wrong, without the key.
    pub fn from_pem(pem: &[u8], domain: &str, selector: &str) -> Result<Self, String> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
            "holds no PEM private key (expected `-----BEGIN PRIVATE KEY-----` or \
             `-----BEGIN RSA PRIVATE KEY-----`)"
                .to_owned()
        })?;
        let key = match &der {
            PrivateKeyDer::Pkcs1(der) => SigningKey::Rsa(
                RsaKeyPair::from_der(der.secret_pkcs1_der()).map_err(|e| rsa_problem(&e))?,
            ),
            PrivateKeyDer::Pkcs8(der) => {
                let bytes = der.secret_pkcs8_der();
                match RsaKeyPair::from_pkcs8(bytes) {
                    Ok(key) => SigningKey::Rsa(key),
                    Err(rsa_error) => match Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes) {
                        Ok(key) => SigningKey::Ed25519(key),
                        Err(_) => return Err(rsa_problem(&rsa_error)),
                    },
                }
            }
            _ => {
                return Err(
                    "holds an EC key; DKIM signs with RSA (2048 bits or more) or Ed25519".into(),
                );
            }
        };
        Ok(DkimSigner {
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            key,
            rng: SystemRandom::new(),
        })
    }

    /// `rsa-sha256` or `ed25519-sha256`.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            SigningKey::Rsa(_) => "rsa-sha256",
            SigningKey::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// The TXT record to publish at `<selector>._domainkey.<domain>`: its name and value.
    pub fn dns_record(&self) -> (String, String) {
        let (k, public) = match &self.key {
            SigningKey::Rsa(key) => ("rsa", rsa_subject_public_key_info(key)),
            SigningKey::Ed25519(key) => ("ed25519", key.public_key().as_ref().to_vec()),
        };
        (
            format!("{}._domainkey.{}", self.selector, self.domain),
            format!("v=DKIM1; k={k}; p={}", BASE64.encode(public)),
        )
    }

    /// `message` (headers, a blank line, the body; CRLF line ends) with a
    /// `DKIM-Signature` header in front.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let (headers, body) = split_message(message);
        let body_hash = BASE64.encode(Sha256::digest(relaxed_body(body)));
        let fields = header_fields(headers);
        let mut names = Vec::new();
        let mut hashed = Vec::new();
        for &name in SIGNED_HEADERS {
            // Instances of one name are signed from the bottom up (RFC 6376 5.4.2).
            let instances: Vec<&[u8]> = fields
                .iter()
                .rev()
                .filter(|field| field_name(field).eq_ignore_ascii_case(name.as_bytes()))
                .copied()
                .collect();
            for field in &instances {
                names.push(name);
                hashed.extend_from_slice(&relaxed_header(field));
                hashed.extend_from_slice(b"\r\n");
            }
            if name == "from" && !instances.is_empty() {
                names.push(name);
            }
        }
        let unsigned = format!(
            "DKIM-Signature: v=1; a={}; c=relaxed/relaxed; d={}; s={};\r\n\th={};\r\n\tbh={};\r\n\tb=",
            self.algorithm(),
            self.domain,
            self.selector,
            names.join(":"),
            body_hash,
        );
        hashed.extend_from_slice(&relaxed_header(unsigned.as_bytes()));
        let signature = self.signature(&hashed);
        let mut signed = unsigned.into_bytes();
        for (i, chunk) in BASE64.encode(signature).as_bytes().chunks(72).enumerate() {
            if i > 0 {
                signed.extend_from_slice(b"\r\n\t");
            }
            signed.extend_from_slice(chunk);
        }
        signed.extend_from_slice(b"\r\n");
        signed.extend_from_slice(message);
        signed
    }

    /// The signature over the canonical headers.
    fn signature(&self, data: &[u8]) -> Vec<u8> {
        match &self.key {
            SigningKey::Rsa(key) => {
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &self.rng, data, &mut out)
                    .unwrap_or_else(|_| unreachable!("the output fits the modulus"));
                out
            }
            // RFC 8463: Ed25519 signs the SHA-256 digest of the data.
            SigningKey::Ed25519(key) => key.sign(&Sha256::digest(data)).as_ref().to_vec(),
        }
    }
}

/// ring's reasons for refusing an RSA key, in words a person can act on.
fn rsa_problem(error: &ring::error::KeyRejected) -> String {
    match error.to_string().as_str() {
        "TooSmall" => "holds an RSA key shorter than 2048 bits; make a new one with \
             `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`"
            .into(),
        "TooLarge" => "holds an RSA key longer than 8192 bits".into(),
        "WrongAlgorithm" => {
            "holds a key that is neither RSA nor Ed25519; DKIM signs with one of those".into()
        }
        other => format!("holds a private key that cannot be used ({other})"),
    }
}

/// The DER SubjectPublicKeyInfo of an RSA key, as DKIM's `p=` tag carries it.
fn rsa_subject_public_key_info(key: &RsaKeyPair) -> Vec<u8> {
    // ring gives the PKCS#1 RSAPublicKey; wrap it with the rsaEncryption algorithm.
    let public = key.public().as_ref();
    let algorithm: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(public);
    let mut inner = algorithm.to_vec();
    inner.extend(der_element(0x03, &bit_string));
    der_element(0x30, &inner)
}

/// One DER element: tag, definite length, contents.
fn der_element(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// The header section (each field ending in CRLF) and the body after the blank line.
fn split_message(message: &[u8]) -> (&[u8], &[u8]) {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (&message[..at + 2], &message[at + 4..]),
        None => (message, &[]),
    }
}

/// The header fields, each with its continuation lines and without its final CRLF.
fn header_fields(headers: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < headers.len() {
        let line_end = headers[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(headers.len(), |p| at + p);
        let next = (line_end + 2).min(headers.len());
        let continues = headers.get(next).is_some_and(|&b| b == b' ' || b == b'\t');
        if !continues {
            if line_end > start {
                fields.push(&headers[start..line_end]);
            }
            start = next;
        }
        at = next;
    }
    fields
}

/// A field's name as written, before its colon.
fn field_name(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == b':').unwrap_or(field.len());
    trim_wsp(&field[..end])
}

fn trim_wsp(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// RFC 6376 3.4.2: the name in lower case, the value unfolded with runs of
/// whitespace made one space and trimmed, no space around the colon.
fn relaxed_header(field: &[u8]) -> Vec<u8> {
    let colon = field.iter().position(|&b| b == b':').unwrap_or(field.len());
    let mut out: Vec<u8> = trim_wsp(&field[..colon]).to_ascii_lowercase();
    out.push(b':');
    let value = field.get(colon + 1..).unwrap_or_default();
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => pending_space = true,
            _ => {
                if pending_space && started {
                    out.push(b' ');
                }
                pending_space = false;
                started = true;
                out.push(b);
            }
        }
    }
    out
}

/// RFC 6376 3.4.4: runs of whitespace made one space, none at line ends, no empty
/// lines at the end, and a final CRLF unless the body is empty.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut blank_lines = 0;
    let text = body.strip_suffix(b"\r\n").unwrap_or(body);
    if body.is_empty() {
        return out;
    }
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut canonical = Vec::with_capacity(line.len());
        let mut pending_space = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                pending_space = true;
            } else {
                if pending_space {
                    canonical.push(b' ');
                }
                pending_space = false;
                canonical.push(b);
            }
        }
        if canonical.is_empty() {
            blank_lines += 1;
            continue;
        }
        for _ in 0..blank_lines {
            out.extend_from_slice(b"\r\n");
        }
        blank_lines = 0;
        out.extend_from_slice(&canonical);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_canonicalized_as_the_rfc_examples_show() {
        // RFC 6376 3.4.5.
        assert_eq!(relaxed_header(b"A: X"), b"a:X");
        assert_eq!(relaxed_header(b"B : Y\t\r\n\tZ  "), b"b:Y Z");
        assert_eq!(relaxed_header(b"Subject:  Re:  news"), b"subject:Re: news");
        let fields = header_fields(b"A: X\r\nB : Y\t\r\n\tZ  \r\n");
        assert_eq!(fields, vec![&b"A: X"[..], &b"B : Y\t\r\n\tZ  "[..]]);
    }

    #[test]
    fn bodies_are_canonicalized_as_the_rfc_examples_show() {
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
        assert_eq!(relaxed_body(b"a\r\n\r\nb"), b"a\r\n\r\nb\r\n");
    }

    #[test]
    fn a_file_that_is_not_a_key_is_named_and_not_repeated() {
        let error = DkimSigner::from_pem(b"hunter2 not a key", "example.com", "s1").unwrap_err();
        assert!(error.contains("no PEM private key"), "{error}");
        assert!(!error.contains("hunter2"));
    }
}
