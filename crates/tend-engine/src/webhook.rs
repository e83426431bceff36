//! The webhook channel: a signed JSON POST per touch, following Standard Webhooks
//! (<https://www.standardwebhooks.com/>) so receivers can verify it with any of that
//! project's libraries.
//!
//! Each request carries `webhook-id` (the touch's idempotency key: a retried touch
//! repeats it, so receivers drop duplicates), `webhook-timestamp` and, with a secret,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

use crate::send::{SendError, error_chain};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use sha2::Sha256;
use std::fmt;
use std::time::Duration;

/// How long to wait for a TCP (and TLS) connection by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request, answer included, may take by default.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
/// The most of an answer's body that is read; receivers have nothing to tell us beyond
/// a status, and an endless body must not hold a dispatcher slot.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of an error answer's body is quoted in the error, for the operator.
const QUOTED_BODY_CHARS: usize = 200;
/// The prefix Standard Webhooks puts before a base64 secret.
const SECRET_PREFIX: &str = "whsec_";

/// Why a [`WebhookSender`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    /// The secret is not `whsec_` + base64 (or bare base64); the value is not repeated
    /// here so it cannot leak into logs.
    #[error("webhook secret is invalid: expected `whsec_` followed by base64 key bytes")]
    InvalidSecret,
    /// A PEM root certificate could not be read.
    #[error("webhook root certificate is invalid: {0}")]
    InvalidCertificate(String),
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
}

/// Installs ring as rustls' process-wide crypto provider, which reqwest needs because
/// it is built without one; safe to call any number of times.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A fresh random signing secret in Standard Webhooks form (`whsec_…`).
pub fn generate_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The Standard Webhooks signature of one request: base64 of HMAC-SHA256 over
/// `"{id}.{timestamp}.{body}"`, without the `v1,` prefix.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Key bytes that `Debug` never prints.
#[derive(Clone)]
struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Sends signed webhooks over one pooled HTTP client.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    key: Option<SigningKey>,
    connect_timeout: Duration,
    total_timeout: Duration,
    roots: Vec<reqwest::Certificate>,
}

impl WebhookSender {
    /// A sender that signs with `secret` (`whsec_…` or bare base64), or sends unsigned
    /// requests when there is none.
    pub fn new(secret: Option<&str>) -> Result<WebhookSender, WebhookSetupError> {
        let key = secret.map(parse_secret).transpose()?;
        Ok(WebhookSender {
            client: build_client(DEFAULT_CONNECT_TIMEOUT, DEFAULT_TOTAL_TIMEOUT, &[])?,
            key,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            roots: Vec::new(),
        })
    }

    /// The same sender with other timeouts: `connect` for the connection, `total` for
    /// the whole request including the answer.
    pub fn with_timeouts(
        mut self,
        connect: Duration,
        total: Duration,
    ) -> Result<WebhookSender, WebhookSetupError> {
        self.connect_timeout = connect;
        self.total_timeout = total;
        self.client = build_client(self.connect_timeout, self.total_timeout, &self.roots)?;
        Ok(self)
    }

    /// The same sender also trusting the PEM certificate(s) in `pem` as roots, for
    /// receivers behind a private certificate authority.
    pub fn with_root_certificates(
        mut self,
        pem: &[u8],
    ) -> Result<WebhookSender, WebhookSetupError> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| WebhookSetupError::InvalidCertificate(e.to_string()))?;
        if certs.is_empty() {
            return Err(WebhookSetupError::InvalidCertificate(
                "no PEM certificate found".into(),
            ));
        }
        self.roots.extend(certs);
        self.client = build_client(self.connect_timeout, self.total_timeout, &self.roots)?;
        Ok(self)
    }

    /// Whether requests carry a `webhook-signature`.
    pub fn is_signing(&self) -> bool {
        self.key.is_some()
    }

    /// POSTs `body` to `url` as webhook `webhook_id` sent at `at`, and classifies the
    /// outcome: 2xx is success; 429, 5xx, timeouts and network errors are retryable;
    /// other answers are fatal.
    pub async fn send(
        &self,
        url: &str,
        webhook_id: &str,
        body: &serde_json::Value,
        at: jiff::Timestamp,
    ) -> Result<(), SendError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| SendError::Fatal(format!("invalid webhook URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SendError::Fatal(format!(
                "webhook URL must be http or https, not `{}:`",
                parsed.scheme()
            )));
        }
        let shown = display_url(&parsed);
        let id = HeaderValue::from_str(webhook_id).map_err(|_| {
            SendError::Fatal(format!(
                "webhook id {webhook_id:?} cannot be an HTTP header value"
            ))
        })?;
        let payload = serde_json::to_vec(body)
            .map_err(|e| SendError::Fatal(format!("cannot serialize webhook body: {e}")))?;
        let timestamp = at.as_second();

        let mut request = self
            .client
            .post(parsed)
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp)
            .header(CONTENT_TYPE, "application/json");
        if let Some(key) = &self.key {
            let signature = sign(&key.0, webhook_id, timestamp, &payload);
            request = request.header("webhook-signature", format!("v1,{signature}"));
        }

        let mut response = request.body(payload).send().await.map_err(|e| {
            let builder_error = e.is_builder();
            let reason = error_chain(&e.without_url());
            if builder_error {
                SendError::Fatal(format!("webhook to {shown}: {reason}"))
            } else {
                SendError::Retryable(format!("webhook to {shown} failed: {reason}"))
            }
        })?;

        let status = response.status();
        let answer = read_bounded(&mut response).await;
        // Dropping the response here closes the connection if the body was cut short.
        drop(response);
        if status.is_success() {
            return Ok(());
        }
        let message = format!(
            "webhook to {shown} answered {status}{}",
            quote_body(&answer)
        );
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(SendError::Retryable(message))
        } else {
            Err(SendError::Fatal(message))
        }
    }
}

/// One HTTP client per sender, so connections to a receiver are reused.
fn build_client(
    connect_timeout: Duration,
    total_timeout: Duration,
    roots: &[reqwest::Certificate],
) -> Result<reqwest::Client, WebhookSetupError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("tend/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .timeout(total_timeout)
        // A redirect is the receiver's configuration problem; following it would
        // also send the signed payload somewhere nobody configured.
        .redirect(reqwest::redirect::Policy::none());
    for root in roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder
        .build()
        .map_err(|e| WebhookSetupError::Client(error_chain(&e)))
}

/// Decodes `whsec_<base64>` or bare base64 into key bytes.
fn parse_secret(secret: &str) -> Result<SigningKey, WebhookSetupError> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
    match STANDARD.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(SigningKey(key)),
        _ => Err(WebhookSetupError::InvalidSecret),
    }
}

/// Reads at most [`MAX_RESPONSE_BYTES`] of the answer; errors just end the reading,
/// since the status already says what happened.
async fn read_bounded(response: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// `: <start of the body>` for an error message, or nothing for an empty body.
fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(QUOTED_BODY_CHARS)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// The URL without credentials, query or fragment, which may hold tokens that must not
/// reach logs.
fn display_url(url: &reqwest::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_matches_a_known_vector() {
        // Computed independently with Python's hmac module.
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_with_and_without_prefix_are_the_same_key() {
        let a = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(a.0, b.0);
    }

    #[test]
    fn bad_secrets_are_rejected_without_echoing_them() {
        for (bad, private_part) in [
            ("whsec_not base64!!", "not base64"),
            ("whsec_", "whsec_ "),
            ("%%%", "%%%"),
        ] {
            let error = WebhookSender::new(Some(bad)).unwrap_err();
            assert!(matches!(error, WebhookSetupError::InvalidSecret));
            assert!(!error.to_string().contains(private_part), "{error}");
        }
    }

    #[test]
    fn generated_secrets_parse() {
        let secret = generate_secret();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(parse_secret(&secret).unwrap().0.len(), 32);
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let sender = WebhookSender::new(Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        let debug = format!("{sender:?}");
        assert!(!debug.contains("MfKQ9r8"), "{debug}");
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(!debug.contains(&format!("{key:?}")), "{debug}");
    }

    #[test]
    fn display_url_hides_credentials_and_query() {
        let url = reqwest::Url::parse("https://user:pw@hooks.example.com:8443/a/b?token=s3cret#x")
            .unwrap();
        assert_eq!(display_url(&url), "https://hooks.example.com:8443/a/b");
    }

    #[test]
    fn quoted_bodies_are_short_and_single_line() {
        assert_eq!(quote_body(b""), "");
        assert_eq!(quote_body(b"  nope\r\n"), ": nope");
        assert_eq!(quote_body(&[b'x'; 1000]).len(), 2 + QUOTED_BODY_CHARS);
    }

    #[tokio::test]
    async fn invalid_urls_are_fatal() {
        let sender = WebhookSender::new(None).unwrap();
        let at = jiff::Timestamp::UNIX_EPOCH;
        for url in ["not a url", "ftp://example.com/x", "file:///etc/passwd"] {
            let error = sender
                .send(url, "id", &serde_json::json!({}), at)
                .await
                .unwrap_err();
            assert!(matches!(error, SendError::Fatal(_)), "{url}: {error:?}");
        }
        let error = sender
            .send("http://127.0.0.1:9/", "bad\nid", &serde_json::json!({}), at)
            .await
            .unwrap_err();
        assert!(matches!(error, SendError::Fatal(_)), "{error:?}");
    }
}
