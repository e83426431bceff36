//! Tend's own pool of SMTP connections, on lettre's connection-level API.
//!
//! lettre's pooled transport writes a message and its closing `\r\n.\r\n` as two
//! writes on a socket without `TCP_NODELAY`: Nagle's algorithm holds the small second
//! write until the server acknowledges the first, and servers delay that ACK by ~40 ms,
//! so each connection managed a couple of dozen messages a second. Every connection
//! here sets `TCP_NODELAY` before lettre sees it; lettre still speaks SMTP (greeting,
//! EHLO, STARTTLS, AUTH, the transaction, QUIT) and reports its errors.
//!
//! The pool follows lettre's: a send takes an idle connection or opens one, puts it
//! back after a success (up to `max_idle`), drops it after any error, closes
//! connections idle for a minute, and says QUIT to the idle ones on shutdown.

use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use rustls::pki_types::{CertificateDer, ServerName};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

/// Longest wait for one TCP connection attempt (per resolved address), within the
/// send's own deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An idle connection older than this is closed rather than reused (lettre's default):
/// servers drop idle clients after a few minutes, and a stale socket wastes a send.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often idle connections are checked for [`IDLE_TIMEOUT`].
const REAP_INTERVAL: Duration = Duration::from_secs(15);

/// An idle connection parked longer than this gets a NOOP round trip before reuse.
/// A busy pool reuses connections within milliseconds, where the free local check
/// ([`Connection::looks_open`]) suffices and a NOOP per message would cost a fifth
/// more round trips; after a pause a NOOP also catches a path that silently died.
const VERIFY_AFTER: Duration = Duration::from_secs(5);

/// How long a polite QUIT may take when a connection is retired; past it the socket
/// is simply closed.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a send through the pool failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    /// lettre's error: a negative reply, a protocol or I/O failure mid-session, or a
    /// message the server cannot carry.
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    /// No TCP connection to the server.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// `host:port`.
        server: String,
        /// The last address's failure.
        source: io::Error,
    },
    /// The implicit-TLS (`smtps://`) handshake failed, e.g. an untrusted certificate.
    #[error("TLS handshake with {server} failed: {source}")]
    Tls {
        /// `host:port`.
        server: String,
        /// rustls' reason, inside an I/O error.
        source: io::Error,
    },
    /// A network step did not finish in time.
    #[error("{step} timed out")]
    TimedOut {
        /// What was under way, e.g. `sending the message to mail.example:587`.
        step: String,
    },
    /// [`SmtpPool::shutdown`] ran; nothing is sent any more.
    #[error("the SMTP connection pool is shut down")]
    ShutDown,
}

/// How a connection is secured, from the URL's scheme and `tls` parameter.
#[derive(Clone)]
enum Security {
    /// `smtp://` without `tls`: plain text throughout.
    None,
    /// `tls=opportunistic`: STARTTLS when the server offers it.
    Opportunistic(TlsParameters),
    /// `tls=required`: STARTTLS or no session (no credentials or mail in the clear).
    Required(TlsParameters),
    /// `smtps://`: TLS from the first byte.
    Implicit {
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    },
}

/// The TLS mode an SMTP URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text.
    None,
    /// STARTTLS when offered.
    Opportunistic,
    /// STARTTLS or fail.
    Required,
    /// TLS from the start (`smtps://`).
    Implicit,
}

/// Where and how to open SMTP connections. Holds the credentials: never printed.
#[derive(Clone)]
pub(crate) struct Endpoint {
    host: String,
    port: u16,
    mode: TlsMode,
    security: Security,
    hello: ClientId,
    credentials: Option<Credentials>,
}

impl Endpoint {
    /// An endpoint for `host:port`; `hello` is the EHLO name (lettre's default when
    /// `None`), `extra_roots` certificates trusted besides the Mozilla roots. Errors
    /// name the problem without any of the inputs, which may come from a secret URL.
    pub(crate) fn new(
        host: &str,
        port: u16,
        mode: TlsMode,
        hello: Option<String>,
        credentials: Option<Credentials>,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Endpoint, String> {
        // An IPv6 literal comes from the URL in brackets; DNS and TLS want it bare.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let security = security(&host, mode, extra_roots)?;
        Ok(Endpoint {
            host,
            port,
            mode,
            security,
            hello: hello.map_or_else(ClientId::default, ClientId::Domain),
            credentials,
        })
    }

    /// The same endpoint also trusting `roots`, e.g. a private relay's CA.
    pub(crate) fn with_extra_roots(
        mut self,
        roots: &[CertificateDer<'static>],
    ) -> Result<Endpoint, String> {
        self.security = security(&self.host, self.mode, roots)?;
        Ok(self)
    }

    /// Host, port, TLS mode, EHLO name and whether there are credentials: what a URL
    /// was read as, for tests.
    #[cfg(test)]
    pub(crate) fn summary(&self) -> (String, u16, TlsMode, String, bool) {
        (
            self.host.clone(),
            self.port,
            self.mode,
            self.hello.to_string(),
            self.credentials.is_some(),
        )
    }

    /// `host:port`, for errors and logs.
    fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// A TCP connection to the first address that answers, with `TCP_NODELAY` set.
    async fn connect_tcp(&self, deadline: Instant) -> Result<TcpStream, PoolError> {
        let server = self.server();
        let addresses: Vec<SocketAddr> = timeout_at(
            deadline,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| PoolError::TimedOut {
            step: format!("resolving {server}"),
        })?
        .map_err(|source| PoolError::Connect {
            server: server.clone(),
            source,
        })?
        .collect();
        let mut last_error =
            io::Error::new(io::ErrorKind::NotFound, "the host has no address to try");
        for address in addresses {
            let attempt = timeout(CONNECT_TIMEOUT, TcpStream::connect(address));
            match timeout_at(deadline, attempt).await {
                Err(_) => {
                    return Err(PoolError::TimedOut {
                        step: format!("connecting to {server}"),
                    });
                }
                Ok(Err(_)) => {
                    last_error = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{address} did not answer within {CONNECT_TIMEOUT:?}"),
                    );
                }
                Ok(Ok(Err(error))) => last_error = error,
                Ok(Ok(Ok(stream))) => {
                    // The reason this module exists: see the module documentation.
                    stream
                        .set_nodelay(true)
                        .map_err(|source| PoolError::Connect {
                            server: server.clone(),
                            source,
                        })?;
                    return Ok(stream);
                }
            }
        }
        Err(PoolError::Connect {
            server,
            source: last_error,
        })
    }

    /// A new session, ready for `MAIL FROM`: connected, greeted, encrypted as asked
    /// and authenticated, the whole of it before `deadline`.
    async fn open(&self, deadline: Instant) -> Result<Connection, PoolError> {
        let server = self.server();
        let tcp = self.connect_tcp(deadline).await?;
        let (tcp, probe) = with_probe(tcp).map_err(|source| PoolError::Connect {
            server: server.clone(),
            source,
        })?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit { config, name } => {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                let tls = timeout_at(deadline, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| PoolError::TimedOut {
                        step: format!("TLS handshake with {server}"),
                    })?
                    .map_err(|source| PoolError::Tls {
                        server: server.clone(),
                        source,
                    })?;
                Box::new(ImplicitTls(tls))
            }
            _ => Box::new(tcp),
        };
        let session = async {
            let mut smtp = AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await?;
            match &self.security {
                Security::Opportunistic(parameters) if smtp.can_starttls() => {
                    smtp.starttls(parameters.clone(), &self.hello).await?;
                }
                // lettre refuses when the server does not offer STARTTLS, before any
                // credentials or mail cross the wire.
                Security::Required(parameters) => {
                    smtp.starttls(parameters.clone(), &self.hello).await?;
                }
                _ => {}
            }
            if let Some(credentials) = &self.credentials {
                smtp.auth(DEFAULT_MECHANISMS, credentials).await?;
            }
            Ok::<_, SmtpError>(smtp)
        };
        let smtp = timeout_at(deadline, session)
            .await
            .map_err(|_| PoolError::TimedOut {
                step: format!("opening an SMTP session with {server}"),
            })??;
        tracing::debug!(%server, "opened an SMTP connection");
        Ok(Connection { smtp, probe })
    }
}

impl Endpoint {
    /// Opens one session as a send would (connect, greeting, EHLO, STARTTLS as the URL
    /// asks, AUTH), says QUIT, and tells what it found.
    pub(crate) async fn probe(&self, deadline: Instant) -> Result<RelayProbe, PoolError> {
        let connection = self.open(deadline).await?;
        let probe = RelayProbe {
            server: self.server(),
            mode: self.mode,
            encrypted: connection.smtp.is_encrypted(),
            offers_starttls: connection.smtp.can_starttls(),
            authenticated: self.credentials.is_some(),
            loopback: matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
                || self.host.starts_with("127."),
        };
        connection.close().await;
        Ok(probe)
    }
}

/// What one trial session with the relay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayProbe {
    /// `host:port`.
    pub server: String,
    /// The TLS mode the URL asks for.
    pub mode: TlsMode,
    /// Whether the session was encrypted (STARTTLS done or implicit TLS).
    pub encrypted: bool,
    /// Whether the server's EHLO offered STARTTLS (false once encrypted).
    pub offers_starttls: bool,
    /// Whether AUTH was done with the URL's credentials.
    pub authenticated: bool,
    /// Whether the relay is on this machine, where plain text never leaves it.
    pub loopback: bool,
}

/// The TLS settings for `mode`: lettre's own for STARTTLS, and for implicit TLS the
/// same stack lettre would use (rustls, the process's crypto provider or ring, the
/// Mozilla roots from `webpki-roots`, TLS 1.2 and 1.3).
fn security(
    host: &str,
    mode: TlsMode,
    extra_roots: &[CertificateDer<'static>],
) -> Result<Security, String> {
    if mode == TlsMode::None {
        return Ok(Security::None);
    }
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| "the host cannot be checked against a TLS certificate".to_owned())?;
    match mode {
        TlsMode::None => Ok(Security::None),
        TlsMode::Opportunistic | TlsMode::Required => {
            let mut builder = TlsParameters::builder(host.to_owned());
            for root in extra_roots {
                let certificate = Certificate::from_der(root.to_vec())
                    .map_err(|e| format!("unusable root certificate: {e}"))?;
                builder = builder.add_root_certificate(certificate);
            }
            let parameters = builder
                .build()
                .map_err(|e| format!("cannot set up TLS: {e}"))?;
            Ok(if mode == TlsMode::Required {
                Security::Required(parameters)
            } else {
                Security::Opportunistic(parameters)
            })
        }
        TlsMode::Implicit => {
            let provider = rustls::crypto::CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
            let mut roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            for root in extra_roots {
                roots
                    .add(root.clone())
                    .map_err(|e| format!("unusable root certificate: {e}"))?;
            }
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(rustls::ALL_VERSIONS)
                .map_err(|e| format!("cannot set up TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Security::Implicit {
                config: Arc::new(config),
                name,
            })
        }
    }
}

/// Splits off a second handle on the socket, so the pool can look at a parked
/// connection lettre owns.
fn with_probe(tcp: TcpStream) -> io::Result<(TcpStream, std::net::TcpStream)> {
    let std = tcp.into_std()?;
    let probe = std.try_clone()?;
    probe.set_nonblocking(true)?;
    Ok((TcpStream::from_std(std)?, probe))
}

/// An implicit-TLS stream in the shape lettre accepts for an existing transport.
struct ImplicitTls(tokio_rustls::client::TlsStream<TcpStream>);

impl fmt::Debug for ImplicitTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ImplicitTls")
            .field(&self.0.get_ref().0)
            .finish()
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// One SMTP session and a second handle on its socket.
struct Connection {
    smtp: AsyncSmtpConnection,
    /// The same socket as lettre's stream, only ever peeked at; both close together.
    probe: std::net::TcpStream,
}

impl Connection {
    /// Whether a parked connection still seems usable, without a round trip. An idle
    /// SMTP client is never owed bytes: anything readable is the server's goodbye (a
    /// `421` before closing, a TLS close, or the end of the stream).
    fn looks_open(&self) -> bool {
        match self.probe.peek(&mut [0u8; 1]) {
            Err(error) => error.kind() == io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    }

    /// QUIT, then close; bounded so a dead server cannot hold the caller.
    async fn close(mut self) {
        let _ = timeout(QUIT_TIMEOUT, self.smtp.abort()).await;
    }
}

/// A connection waiting for its next send.
struct Parked {
    connection: Connection,
    since: Instant,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Parked>,
    shut_down: bool,
    reaper_started: bool,
}

/// A pool of SMTP connections to one endpoint, each with `TCP_NODELAY`.
pub(crate) struct SmtpPool {
    endpoint: Endpoint,
    max_idle: usize,
    state: Mutex<PoolState>,
}

impl SmtpPool {
    /// A pool keeping up to `max_idle` idle connections; nothing connects, and no
    /// runtime is needed, until the first send.
    pub(crate) fn new(endpoint: Endpoint, max_idle: usize) -> Arc<SmtpPool> {
        Arc::new(SmtpPool {
            endpoint,
            max_idle: max_idle.max(1),
            state: Mutex::new(PoolState::default()),
        })
    }

    /// Where the pool connects.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        // The lock is never held across an await or a panic-prone call; a poisoned
        // one still holds a consistent list.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends one message on a pooled connection, every network step before `deadline`.
    pub(crate) async fn send(
        self: &Arc<Self>,
        envelope: &Envelope,
        message: &[u8],
        deadline: Instant,
    ) -> Result<Response, PoolError> {
        let mut connection = self.checkout(deadline).await?;
        match timeout_at(deadline, connection.smtp.send(envelope, message)).await {
            Ok(Ok(response)) => {
                self.checkin(connection);
                Ok(response)
            }
            Ok(Err(error)) => {
                // lettre has already said QUIT on a connection it marked broken; one
                // it did not (a message refused before any command) is retired too,
                // so no error can leave a connection in an unknown state.
                if !connection.smtp.has_broken() {
                    tokio::spawn(connection.close());
                }
                Err(PoolError::Smtp(error))
            }
            // Dropping the connection mid-transaction closes it: the server discards
            // a message whose final `.` it never got.
            Err(_) => Err(PoolError::TimedOut {
                step: format!("sending the message to {}", self.endpoint.server()),
            }),
        }
    }

    /// A healthy idle connection, or a new one.
    async fn checkout(self: &Arc<Self>, deadline: Instant) -> Result<Connection, PoolError> {
        loop {
            let parked = {
                let mut state = self.state();
                if state.shut_down {
                    return Err(PoolError::ShutDown);
                }
                // The most recently used first: the likeliest to be alive, and the
                // others age out.
                state.idle.pop()
            };
            let Some(Parked {
                mut connection,
                since,
            }) = parked
            else {
                break;
            };
            let idle_for = since.elapsed();
            if idle_for >= IDLE_TIMEOUT {
                tokio::spawn(connection.close());
                continue;
            }
            if !connection.looks_open() {
                tracing::debug!("dropping an SMTP connection the server closed");
                continue;
            }
            if idle_for >= VERIFY_AFTER {
                let alive = timeout_at(deadline, connection.smtp.test_connected())
                    .await
                    .map_err(|_| PoolError::TimedOut {
                        step: format!("checking a connection to {}", self.endpoint.server()),
                    })?;
                if !alive {
                    tracing::debug!("dropping an SMTP connection that failed NOOP");
                    continue;
                }
            }
            return Ok(connection);
        }
        self.endpoint.open(deadline).await
    }

    /// Parks a connection after a successful send, or closes it when the pool is full
    /// or shut down.
    fn checkin(self: &Arc<Self>, connection: Connection) {
        if connection.smtp.has_broken() {
            return;
        }
        let mut state = self.state();
        if state.shut_down || state.idle.len() >= self.max_idle {
            drop(state);
            tokio::spawn(connection.close());
            return;
        }
        state.idle.push(Parked {
            connection,
            since: Instant::now(),
        });
        if !state.reaper_started {
            state.reaper_started = true;
            tokio::spawn(reap(Arc::downgrade(self)));
        }
    }

    /// Takes out the idle connections older than [`IDLE_TIMEOUT`].
    fn take_expired(&self) -> Vec<Connection> {
        let mut state = self.state();
        let (expired, fresh): (Vec<Parked>, Vec<Parked>) = std::mem::take(&mut state.idle)
            .into_iter()
            .partition(|parked| parked.since.elapsed() >= IDLE_TIMEOUT);
        state.idle = fresh;
        expired
            .into_iter()
            .map(|parked| parked.connection)
            .collect()
    }

    /// Says QUIT on every idle connection and refuses sends from now on. A connection
    /// still sending is closed when its send ends.
    pub(crate) async fn shutdown(&self) {
        let idle = {
            let mut state = self.state();
            state.shut_down = true;
            std::mem::take(&mut state.idle)
        };
        let mut closing = tokio::task::JoinSet::new();
        for parked in idle {
            closing.spawn(parked.connection.close());
        }
        while closing.join_next().await.is_some() {}
    }
}

/// Closes connections idle too long, until the pool is dropped or shut down. Holds
/// the pool weakly so a dropped pool is not kept alive by its own cleaner.
async fn reap(pool: Weak<SmtpPool>) {
    loop {
        tokio::time::sleep(REAP_INTERVAL).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        if pool.state().shut_down {
            return;
        }
        for connection in pool.take_expired() {
            tokio::spawn(connection.close());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::Message;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// What an in-process SMTP server saw.
    #[derive(Default)]
    struct Seen {
        connections: AtomicUsize,
        messages: AtomicUsize,
        quits: AtomicUsize,
    }

    /// A minimal SMTP server accepting every message. With `hang_up_after_message`
    /// it closes each connection right after accepting a message, as a server with
    /// a per-connection limit would.
    async fn sink(hang_up_after_message: bool) -> (u16, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let counters = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counters.connections.fetch_add(1, Ordering::SeqCst);
                let counters = Arc::clone(&counters);
                tokio::spawn(async move {
                    // The server side replies in single writes; its own Nagle does
                    // not matter here.
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read);
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let mut line = String::new();
                    let mut in_data = false;
                    loop {
                        line.clear();
                        if !matches!(lines.read_line(&mut line).await, Ok(n) if n > 0) {
                            return;
                        }
                        if in_data {
                            if line == ".\r\n" {
                                in_data = false;
                                counters.messages.fetch_add(1, Ordering::SeqCst);
                                let _ = write.write_all(b"250 2.0.0 queued\r\n").await;
                                if hang_up_after_message {
                                    let _ = write.write_all(b"421 4.7.0 enough\r\n").await;
                                    return;
                                }
                            }
                            continue;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                in_data = true;
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => {
                                counters.quits.fetch_add(1, Ordering::SeqCst);
                                let _ = write.write_all(b"221 bye\r\n").await;
                                return;
                            }
                            _ => b"250 OK\r\n",
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, seen)
    }

    fn pool(port: u16, max_idle: usize) -> Arc<SmtpPool> {
        let endpoint = Endpoint::new("127.0.0.1", port, TlsMode::None, None, None, &[]).unwrap();
        SmtpPool::new(endpoint, max_idle)
    }

    fn message(i: usize) -> Message {
        Message::builder()
            .from("Tend <tend@studio.example>".parse().unwrap())
            .to(format!("person{i}@example.com").parse().unwrap())
            .subject("Hello")
            .body(format!("A short note, number {i}.\r\n"))
            .unwrap()
    }

    async fn send(pool: &Arc<SmtpPool>, i: usize) -> Result<Response, PoolError> {
        let message = message(i);
        let deadline = Instant::now() + Duration::from_secs(30);
        pool.send(message.envelope(), &message.formatted(), deadline)
            .await
    }

    fn idle_count(pool: &SmtpPool) -> usize {
        pool.state().idle.len()
    }

    /// Waits for a spawned QUIT to reach the server.
    async fn eventually(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "never happened: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn pooled_connections_have_nodelay_and_are_reused() {
        let (port, seen) = sink(false).await;
        let pool = pool(port, 4);
        for i in 0..3 {
            send(&pool, i).await.unwrap();
        }
        assert_eq!(seen.messages.load(Ordering::SeqCst), 3);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
        let state = pool.state();
        assert_eq!(state.idle.len(), 1);
        assert!(state.idle[0].connection.probe.nodelay().unwrap());
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_without_failing_a_send() {
        let (port, seen) = sink(true).await;
        let pool = pool(port, 4);
        send(&pool, 0).await.unwrap();
        // Let the server's goodbye arrive at the parked connection.
        eventually("the server hung up", || {
            pool.state()
                .idle
                .first()
                .is_some_and(|parked| !parked.connection.looks_open())
        })
        .await;
        send(&pool, 1).await.unwrap();
        assert_eq!(seen.messages.load(Ordering::SeqCst), 2);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_long_idle_connection_is_checked_with_noop() {
        let (port, seen) = sink(false).await;
        let pool = pool(port, 4);
        send(&pool, 0).await.unwrap();
        pool.state().idle[0].since -= VERIFY_AFTER;
        send(&pool, 1).await.unwrap();
        assert_eq!(seen.messages.load(Ordering::SeqCst), 2);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn idle_connections_beyond_the_limit_or_too_old_get_quit() {
        let (port, seen) = sink(false).await;
        let pool = pool(port, 1);
        // Two sends at once need two connections; only one stays parked.
        let (a, b) = tokio::join!(send(&pool, 0), send(&pool, 1));
        a.unwrap();
        b.unwrap();
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
        assert_eq!(idle_count(&pool), 1);
        eventually("QUIT on the surplus connection", || {
            seen.quits.load(Ordering::SeqCst) == 1
        })
        .await;

        pool.state().idle[0].since -= IDLE_TIMEOUT;
        for connection in pool.take_expired() {
            connection.close().await;
        }
        assert_eq!(idle_count(&pool), 0);
        assert_eq!(seen.quits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn shutdown_says_quit_and_refuses_later_sends() {
        let (port, seen) = sink(false).await;
        let pool = pool(port, 4);
        let (a, b) = tokio::join!(send(&pool, 0), send(&pool, 1));
        a.unwrap();
        b.unwrap();
        assert_eq!(idle_count(&pool), 2);
        pool.shutdown().await;
        assert_eq!(seen.quits.load(Ordering::SeqCst), 2);
        assert!(matches!(send(&pool, 2).await, Err(PoolError::ShutDown)));
    }

    #[tokio::test]
    async fn a_server_that_never_greets_times_out_by_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let pool = pool(port, 1);
        let message = message(0);
        let deadline = Instant::now() + Duration::from_millis(200);
        let error = pool
            .send(message.envelope(), &message.formatted(), deadline)
            .await
            .unwrap_err();
        match error {
            PoolError::TimedOut { step } => assert!(step.contains("session"), "{step}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets() {
        let endpoint = Endpoint::new("[::1]", 25, TlsMode::Required, None, None, &[]).unwrap();
        assert_eq!(endpoint.host, "::1");
        assert_eq!(endpoint.server(), "[::1]:25");
    }
}
