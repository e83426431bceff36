//! Headers every response carries, and the Content-Security-Policy of HTML pages.

use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The one stylesheet Tend's own pages use, inline; the policy allows it by its hash, so
/// no other inline style or script can run.
pub const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;\
margin:4rem auto;padding:0 1rem;line-height:1.5}button{font-size:1rem;padding:.5rem 1.25rem}";

/// Nothing from anywhere, except the page's own style, forms posted back to this server,
/// and no framing by any site.
static HTML_POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(PAGE_STYLE));
    HeaderValue::try_from(format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    ))
    .expect("the policy is ASCII")
});

/// Adds the headers every response carries: no MIME sniffing, no Referer leaking a URL
/// with a token in it, and for HTML pages the Content-Security-Policy and framing ban.
pub async fn headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    let html = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        if !headers.contains_key(CONTENT_SECURITY_POLICY) {
            headers.insert(CONTENT_SECURITY_POLICY, HTML_POLICY.clone());
        }
        set(headers, "x-frame-options", "DENY");
    }
    response
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &'static str) {
    headers.insert(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    );
}
