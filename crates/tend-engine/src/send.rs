//! What every channel's send returns, so the dispatcher can decide between retrying,
//! giving up, and suppressing a bounced address.

/// Why a send failed, classified for the dispatcher (underway's retryable/fatal split).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later with backoff: connection refused, timeouts, SMTP 4xx, HTTP 5xx
    /// and 429.
    #[error("temporary failure: {0}")]
    Retryable(String),
    /// Retrying cannot help: SMTP 5xx not about the recipient, HTTP 4xx, a message
    /// that cannot be built.
    #[error("permanent failure: {0}")]
    Fatal(String),
    /// The receiving server refused the recipient address for good (SMTP 5xx at
    /// `RCPT TO`, or a 5xx naming the mailbox): the contact is marked bounced and no
    /// email goes to it again.
    #[error("recipient refused: {0}")]
    Bounced(String),
}

impl SendError {
    /// Whether the dispatcher should try again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable(_))
    }
}

/// An error and its sources in one line, without repeating text a cause's message
/// already includes: libraries often say only "error sending request" at the top.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
