//! A child process that is killed when its guard drops, however the test ends, and
//! whose stdout is read line by line without ever blocking the test.

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::POLL;

/// A running child process; SIGKILLed on drop if still running.
pub struct Guarded {
    child: Child,
    lines: Option<mpsc::Receiver<String>>,
    name: String,
}

impl Guarded {
    /// Guards `child`; if its stdout is piped, a thread reads it line by line, so the
    /// child never blocks on a full pipe and the test never blocks on a silent child.
    pub fn new(name: &str, mut child: Child) -> Guarded {
        let lines = child.stdout.take().map(|stdout| {
            let (send, receive) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
            receive
        });
        Guarded {
            child,
            lines,
            name: name.to_owned(),
        }
    }

    /// The next line the child printed, waiting at most `within`; panics with `context`
    /// (say, its log) when none comes or the child exits first.
    pub fn next_line(&mut self, within: Duration, context: impl Fn() -> String) -> String {
        let lines = self
            .lines
            .as_ref()
            .unwrap_or_else(|| panic!("{}'s stdout is not piped", self.name));
        match lines.recv_timeout(within) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "{} printed nothing within {within:?}; {}",
                self.name,
                context()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().ok();
                panic!(
                    "{} exited ({status:?}) before printing what was expected; {}",
                    self.name,
                    context()
                )
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child itself, for its stdin.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for a child process")
    }

    /// Waits for the process to exit on its own, at most `within`; panics (after
    /// killing it) with `context` if it does not.
    pub fn wait_exit(&mut self, within: Duration, context: impl Fn() -> String) -> ExitStatus {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if Instant::now() > end {
                self.kill();
                panic!(
                    "{} did not exit within {within:?}; {}",
                    self.name,
                    context()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, as a service manager stops a service.
    pub fn sigterm(&self) {
        let pid = self.pid().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
    }

    /// SIGKILL: no chance to finish anything. Reaps the process.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}
