//! Starting the Python servers the channel tests talk to: a real SMTP server and a
//! Standard Webhooks receiver.

#![allow(dead_code)] // each test binary uses a different part

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start listening.
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);

/// The Python interpreter: `TEND_TEST_PYTHON` or `python3`.
pub fn python() -> String {
    std::env::var("TEND_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Fails the test, loudly, when `module` cannot be imported: these tests must never
/// pass by skipping.
pub fn require_python_module(module: &str) {
    let output = Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output();
    match output {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "Python module `{module}` is missing ({}); run: pip install aiosmtpd standardwebhooks",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        ),
        Err(error) => panic!(
            "cannot run `{}` ({error}); install Python 3, then: pip install aiosmtpd standardwebhooks",
            python()
        ),
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A script in `tests/support/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// A file in `tests/support/`.
pub fn support_file(name: &str) -> PathBuf {
    script(name)
}

/// A child process killed when the test ends, however it ends.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub port: u16,
}

impl Server {
    /// Runs `python script args…` and waits until it accepts connections on `port`.
    pub fn start(script_name: &str, port: u16, args: &[&str]) -> Server {
        let child = Command::new(python())
            .arg(script(script_name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {script_name} with `{}`: {e}; pip install aiosmtpd standardwebhooks",
                    python()
                )
            });
        let mut server = Server { child, port };
        server.wait_until_listening(script_name);
        server
    }

    fn wait_until_listening(&mut self, name: &str) {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{name} exited before listening ({status}); see its output above");
            }
            if Instant::now() > deadline {
                panic!(
                    "{name} did not listen on port {} within {STARTUP_DEADLINE:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
