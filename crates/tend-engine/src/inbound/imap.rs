//! The IMAP side of the inbound mailbox: log in, list new messages by UID, fetch one,
//! mark or move the handled ones, and wait in IDLE for the next. Every step but the
//! wait runs under a timeout.

use super::{AfterHandling, InboundError, MAX_MESSAGE_BYTES};
use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response};
use futures_util::TryStreamExt as _;
use rustls::pki_types::{CertificateDer, ServerName};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long one IMAP step (connecting, a command and its answer) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// The keyword handled messages carry.
const HANDLED_KEYWORD: &str = "$TendHandled";

/// `imaps://user:password@host[:port]/MAILBOX`, parsed; never printed with its password.
#[derive(Clone)]
pub struct ImapUrl {
    tls: bool,
    host: String,
    port: u16,
    user: String,
    password: String,
    mailbox: String,
}

/// Why the inbound URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("inbound is invalid: {0}")]
pub struct InboundSetupError(String);

impl ImapUrl {
    /// Parses the URL; the error never repeats it, since it holds a password.
    pub fn parse(url: &str) -> Result<ImapUrl, InboundSetupError> {
        let bad = |why: &str| InboundSetupError(why.to_owned());
        let parsed = reqwest::Url::parse(url.trim()).map_err(|_| bad("not a URL"))?;
        let tls = match parsed.scheme() {
            "imaps" => true,
            "imap" => false,
            _ => return Err(bad("the scheme must be imaps:// or imap://")),
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| bad("the user or password is not UTF-8 once decoded"))
        };
        let user = decode(parsed.username())?;
        let password = decode(parsed.password().unwrap_or_default())?;
        if user.is_empty() || password.is_empty() {
            return Err(bad("give the mailbox's user and password"));
        }
        let mailbox = decode(parsed.path().trim_start_matches('/'))?;
        Ok(ImapUrl {
            tls,
            port: parsed.port().unwrap_or(if tls { 993 } else { 143 }),
            host,
            user,
            password,
            mailbox: if mailbox.is_empty() {
                "INBOX".to_owned()
            } else {
                mailbox
            },
        })
    }

    /// `imaps://host:port/MAILBOX`, for logs.
    pub fn describe(&self) -> String {
        let scheme = if self.tls { "imaps" } else { "imap" };
        format!("{scheme}://{}:{}/{}", self.host, self.port, self.mailbox)
    }
}

impl fmt::Debug for ImapUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Any connection async-imap can talk over.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Connection for T {}

/// One fetched message.
pub(super) enum Fetched {
    /// Its bytes.
    Message(Vec<u8>),
    /// Larger than [`MAX_MESSAGE_BYTES`]: not downloaded.
    TooLarge(u32),
    /// Expunged meanwhile.
    Gone,
}

/// How an IDLE ended.
pub(super) enum AfterIdle {
    /// The server announced new messages (`EXISTS`): read them now.
    NewMessages(Session),
    /// The period ran out with nothing new: poll anyway, then idle again.
    PeriodOver(Session),
    /// Shutdown was asked for; the session is closed.
    Shutdown,
}

/// How long ending IDLE and logging out may take on shutdown: a server that does not
/// answer must not hold the process up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A logged-in session with the mailbox selected.
pub(super) struct Session {
    inner: async_imap::Session<Box<dyn Connection>>,
    uid_validity: u32,
}

fn imap_error(step: &str, error: impl fmt::Display) -> InboundError {
    InboundError::Imap(format!("{step}: {error}"))
}

/// Runs one step under the step timeout.
async fn step<T, E: fmt::Display>(
    name: &str,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, InboundError> {
    match tokio::time::timeout(STEP_TIMEOUT, future).await {
        Ok(result) => result.map_err(|e| imap_error(name, e)),
        Err(_) => Err(imap_error(name, "timed out")),
    }
}

impl Session {
    /// Connects, logs in and selects the mailbox; over TLS the server's certificate
    /// must chain to `trusted` when given, else to the public roots.
    pub(super) async fn open(
        url: &ImapUrl,
        trusted: Option<&[CertificateDer<'static>]>,
    ) -> Result<Session, InboundError> {
        let tcp = step(
            "connecting",
            TcpStream::connect((url.host.as_str(), url.port)),
        )
        .await?;
        let connection: Box<dyn Connection> = if url.tls {
            let name = ServerName::try_from(url.host.clone()).map_err(|_| {
                imap_error("TLS", "the host cannot be checked against a certificate")
            })?;
            let connector = tokio_rustls::TlsConnector::from(tls_config(trusted)?);
            Box::new(step("TLS handshake", connector.connect(name, tcp)).await?)
        } else {
            Box::new(tcp)
        };
        let mut client = async_imap::Client::new(connection);
        step("greeting", async {
            match client.read_response().await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("the server closed the connection".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
        let mut inner = step("logging in", async {
            client
                .login(&url.user, &url.password)
                .await
                .map_err(|(error, _)| error)
        })
        .await?;
        let mailbox = step("selecting the mailbox", inner.select(&url.mailbox)).await?;
        Ok(Session {
            inner,
            uid_validity: mailbox.uid_validity.unwrap_or(0),
        })
    }

    /// The mailbox's UIDVALIDITY: UIDs from another one mean nothing.
    pub(super) fn uid_validity(&self) -> u32 {
        self.uid_validity
    }

    /// The UIDs above `last`, ascending.
    pub(super) async fn uids_after(&mut self, last: u32) -> Result<Vec<u32>, InboundError> {
        let query = format!("UID {}:*", last.saturating_add(1));
        let found = step("searching", self.inner.uid_search(&query)).await?;
        // `n:*` always matches the newest message, even below n.
        let mut uids: Vec<u32> = found.into_iter().filter(|uid| *uid > last).collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// One message's bytes, unless it is too large.
    pub(super) async fn fetch(&mut self, uid: u32) -> Result<Fetched, InboundError> {
        let uid_text = uid.to_string();
        let sizes = step("reading a message's size", async {
            self.inner
                .uid_fetch(&uid_text, "(UID RFC822.SIZE)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        let Some(size) = sizes
            .iter()
            .find(|f| f.uid == Some(uid))
            .and_then(|f| f.size)
        else {
            return Ok(Fetched::Gone);
        };
        if size > MAX_MESSAGE_BYTES {
            return Ok(Fetched::TooLarge(size));
        }
        let fetched = step("reading a message", async {
            self.inner
                .uid_fetch(&uid_text, "(UID BODY.PEEK[])")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        Ok(fetched
            .iter()
            .find(|f| f.uid == Some(uid))
            .and_then(|f| f.body())
            .map_or(Fetched::Gone, |body| Fetched::Message(body.to_vec())))
    }

    /// Flags replies as handled, leaving them unread for people.
    pub(super) async fn mark_replies(&mut self, uids: &[u32]) -> Result<(), InboundError> {
        self.store_flags(uids, &format!("+FLAGS.SILENT ({HANDLED_KEYWORD})"))
            .await
    }

    /// Flags, moves or deletes handled reports.
    pub(super) async fn finish_reports(
        &mut self,
        uids: &[u32],
        after: &AfterHandling,
    ) -> Result<(), InboundError> {
        if uids.is_empty() {
            return Ok(());
        }
        self.store_flags(uids, &format!("+FLAGS.SILENT (\\Seen {HANDLED_KEYWORD})"))
            .await?;
        let set = uid_set(uids);
        match after {
            AfterHandling::Flag => Ok(()),
            AfterHandling::Move(mailbox) => {
                // Creating a mailbox that exists fails; that is fine.
                let _ = step("creating the mailbox", self.inner.create(mailbox)).await;
                step("moving handled messages", self.inner.uid_mv(&set, mailbox)).await
            }
            AfterHandling::Delete => {
                self.store_flags(uids, "+FLAGS.SILENT (\\Deleted)").await?;
                step("expunging handled messages", async {
                    self.inner
                        .uid_expunge(&set)
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await
                .map(drop)
            }
        }
    }

    async fn store_flags(&mut self, uids: &[u32], query: &str) -> Result<(), InboundError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        step("flagging handled messages", async {
            self.inner
                .uid_store(&set, query)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await
        .map(drop)
    }

    /// Whether the server offers IDLE (RFC 2177), from its capabilities.
    pub(super) async fn offers_idle(&mut self) -> Result<bool, InboundError> {
        let capabilities = step("reading capabilities", self.inner.capabilities()).await?;
        Ok(capabilities.has_str("IDLE"))
    }

    /// Whether the server said, in untagged answers to earlier commands, that messages
    /// arrived (`EXISTS`): a message that lands between a poll's search and the next
    /// IDLE is announced there, not in the IDLE. Forgets what it read.
    pub(super) fn take_arrivals(&mut self) -> bool {
        let mut arrived = false;
        while let Ok(response) = self.inner.unsolicited_responses.try_recv() {
            arrived |= matches!(response, async_imap::types::UnsolicitedResponse::Exists(_));
        }
        arrived
    }

    /// Holds the connection in IDLE until the server announces new messages, `period`
    /// passes, or `shutdown`. Keep-alives (`* OK Still here`) and other mailbox news
    /// (flags, expunges) keep it waiting. An error means the connection is gone.
    pub(super) async fn idle(
        self,
        period: Duration,
        shutdown: &CancellationToken,
    ) -> Result<AfterIdle, InboundError> {
        let Session {
            inner,
            uid_validity,
        } = self;
        let mut handle = inner.idle();
        step("starting IDLE", handle.init()).await?;
        let deadline = tokio::time::Instant::now() + period;
        let new_messages = loop {
            // `interrupt` stops the wait when dropped: it lives as long as the wait.
            let (wait, interrupt) = handle.wait_with_timeout(period);
            let waited = tokio::select! {
                () = shutdown.cancelled() => None,
                waited = tokio::time::timeout_at(deadline, wait) => Some(waited),
            };
            match waited {
                None => {
                    drop(interrupt);
                    // A polite DONE and LOGOUT, but not at the cost of a prompt exit.
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
                        if let Ok(mut session) = handle.done().await {
                            let _ = session.logout().await;
                        }
                    })
                    .await;
                    return Ok(AfterIdle::Shutdown);
                }
                // async-imap's own timeout restarts at each keep-alive; the deadline
                // does not, so IDLE is re-issued at least every `period`.
                Some(Err(_) | Ok(Ok(IdleResponse::Timeout))) => break false,
                Some(Ok(Ok(IdleResponse::NewData(data)))) => {
                    if matches!(
                        data.parsed(),
                        Response::MailboxData(MailboxDatum::Exists(_))
                    ) {
                        break true;
                    }
                }
                // The wait's stream ended: the server closed the connection.
                Some(Ok(Ok(IdleResponse::ManualInterrupt))) => {
                    return Err(imap_error("idling", "the server closed the connection"));
                }
                Some(Ok(Err(error))) => return Err(imap_error("idling", error)),
            }
        };
        let inner = step("ending IDLE", handle.done()).await?;
        let session = Session {
            inner,
            uid_validity,
        };
        Ok(if new_messages {
            AfterIdle::NewMessages(session)
        } else {
            AfterIdle::PeriodOver(session)
        })
    }

    /// Logs out politely; a failure here changes nothing.
    pub(super) async fn logout(mut self) {
        let _ = tokio::time::timeout(STEP_TIMEOUT, self.inner.logout()).await;
    }
}

/// The certificates in a PEM file (`inbound_ca_file`): at least one, each usable as a
/// root.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, InboundSetupError> {
    use rustls::pki_types::pem::PemObject;
    let bad = |why: String| InboundSetupError(format!("inbound_ca_file {}: {why}", path.display()));
    let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(bad("holds no `BEGIN CERTIFICATE` block".into()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for certificate in &certificates {
        roots
            .add(certificate.clone())
            .map_err(|e| bad(format!("a certificate cannot be used: {e}")))?;
    }
    Ok(certificates)
}

/// `1,5,7` for these UIDs.
fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// rustls with Mozilla's roots, as the SMTP side uses, or only `trusted`.
fn tls_config(
    trusted: Option<&[CertificateDer<'static>]>,
) -> Result<Arc<rustls::ClientConfig>, InboundError> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let roots = match trusted {
        Some(certificates) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in certificates {
                roots
                    .add(certificate.clone())
                    .map_err(|e| imap_error("TLS: inbound_ca_file", e))?;
            }
            roots
        }
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| imap_error("TLS", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_never_shown_with_their_password() {
        let url =
            ImapUrl::parse("imaps://bounces%40studio.example:s3cr%2Ft@mail.example/Tend").unwrap();
        assert_eq!(url.user, "bounces@studio.example");
        assert_eq!(url.password, "s3cr/t");
        assert_eq!(url.port, 993);
        assert_eq!(url.mailbox, "Tend");
        assert_eq!(format!("{url:?}"), "imaps://mail.example:993/Tend");
        let plain = ImapUrl::parse("imap://u:p@127.0.0.1:1143").unwrap();
        assert_eq!(
            (plain.tls, plain.port, plain.mailbox.as_str()),
            (false, 1143, "INBOX")
        );
        for bad in [
            "http://u:p@h/",
            "imaps://h/INBOX",
            "imaps://u@h/",
            "nonsense",
        ] {
            let error = ImapUrl::parse(bad).unwrap_err().to_string();
            assert!(!error.contains("p@"), "{error}");
        }
    }

    #[test]
    fn uid_sets_list_each_uid() {
        assert_eq!(uid_set(&[1, 5, 7]), "1,5,7");
    }
}
