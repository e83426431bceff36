//! The Python peers (`peers/*.py`): each binds port 0 and prints `port N` first, so a
//! port is never chosen here and then taken by another test before the peer binds it.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::process::Guarded;
use crate::python::{PIP_PACKAGES, python, require_python_module};
use crate::{STARTUP, peer_file};

/// Starts `peers/{script} --port 0 args…` and reads the port it bound.
fn start_peer(script: &str, args: &[&str], stdin: Stdio) -> (Guarded, u16) {
    let path = peer_file(script);
    let child = Command::new(python())
        .arg(&path)
        .args(["--port", "0"])
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} with `{}`: {e}; pip install {PIP_PACKAGES}",
                path.display(),
                python()
            )
        });
    let mut peer = Guarded::new(script, child);
    let line = peer.next_line(STARTUP, || "see its output above".to_owned());
    let port = line
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{script} printed {line:?}, not its port"));
    (peer, port)
}

/// aiosmtpd storing every accepted message in a folder (`peers/smtp_sink.py` says
/// how); killed on drop.
pub struct SmtpSink {
    peer: Guarded,
    /// Where it listens.
    pub port: u16,
}

impl SmtpSink {
    /// Starts the sink storing into `folder`, with `smtp_sink.py`'s further options
    /// (`--rcpt`, `--data`, `--auth`, `--delay-ms`, `--tls`…); returns once it listens.
    pub fn start(folder: &Path, args: &[&str]) -> SmtpSink {
        let mut sink = SmtpSink::refusing(folder, args);
        sink.listen();
        sink
    }

    /// The sink with its port bound but refusing connections, as during an outage,
    /// until [`SmtpSink::listen`]. Nobody else can take the port meanwhile.
    pub fn refusing(folder: &Path, args: &[&str]) -> SmtpSink {
        require_python_module("aiosmtpd");
        let folder = folder.to_str().expect("a UTF-8 folder path");
        let mut all = vec!["--folder", folder, "--listen-on-stdin"];
        all.extend_from_slice(args);
        let (peer, port) = start_peer("smtp_sink.py", &all, Stdio::piped());
        SmtpSink { peer, port }
    }

    /// Ends the outage: returns once the sink accepts connections.
    pub fn listen(&mut self) {
        let stdin = self.peer.child_mut().stdin.as_mut().expect("piped stdin");
        stdin
            .write_all(b"listen\n")
            .expect("tell the sink to listen");
        stdin.flush().expect("flush the sink's stdin");
        let line = self
            .peer
            .next_line(STARTUP, || "see its output above".to_owned());
        assert_eq!(line, "listening", "the SMTP sink said {line:?}");
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

/// The Standard Webhooks receiver (`peers/webhook_receiver.py`), verifying with the
/// reference library and recording each request as a JSON line; killed on drop.
pub struct WebhookReceiver {
    _peer: Guarded,
    /// Where it listens.
    pub port: u16,
}

impl WebhookReceiver {
    /// Starts the receiver with `secret`, recording into `record`, with its further
    /// options (`--tls-cert`, `--tls-key`); returns once it listens.
    pub fn start(secret: &str, record: &Path, args: &[&str]) -> WebhookReceiver {
        require_python_module("standardwebhooks");
        let record = record.to_str().expect("a UTF-8 record path");
        let mut all = vec!["--secret", secret, "--record", record];
        all.extend_from_slice(args);
        let (peer, port) = start_peer("webhook_receiver.py", &all, Stdio::null());
        WebhookReceiver { _peer: peer, port }
    }
}

/// A loopback port held bound but not listening: connecting to it is refused, and
/// nothing else can take it while this lives.
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    /// The port.
    pub port: u16,
}

impl ClosedPort {
    /// Binds a fresh loopback port without listening on it.
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(([127, 0, 0, 1], 0).into())
            .expect("bind an ephemeral port");
        let port = socket.local_addr().expect("local address").port();
        ClosedPort {
            _socket: socket,
            port,
        }
    }
}

impl Default for ClosedPort {
    fn default() -> ClosedPort {
        ClosedPort::new()
    }
}
