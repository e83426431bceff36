//! The real `tend` binary: a business made by `tend init` in a temporary folder, and
//! `tend serve` over it on port 0, its address read from the line it prints.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::process::Guarded;
use crate::{POLL, STARTUP};

/// Runs `bin args…` in `dir` to the end.
pub fn run(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}

/// A business from `tend init`, in a temporary folder removed when this drops.
pub struct Business {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    bin: PathBuf,
    servers_started: Cell<u32>,
}

impl Business {
    /// `tend init studio` in a fresh temporary folder, with the binary at `bin` (a test
    /// of the `tend` crate passes `env!("CARGO_BIN_EXE_tend")`).
    pub fn init(bin: &str) -> Business {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let bin = PathBuf::from(bin);
        let init = run(&bin, tmp.path(), &["init", "studio"]);
        assert!(
            init.status.success(),
            "tend init: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        Business {
            dir: tmp.path().join("studio"),
            tmp,
            bin,
            servers_started: Cell::new(0),
        }
    }

    /// The business folder (`tend.toml`, `processes/`, `templates/`, `tend.db`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The temporary folder around the business, for the test's own files.
    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    /// Runs `tend args…` in the business folder.
    pub fn tend(&self, args: &[&str]) -> Output {
        run(&self.bin, &self.dir, args)
    }

    /// Runs `tend args…` in the business folder with `input` on its standard input.
    pub fn tend_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(&self.bin)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin.display()));
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &input);
        });
        let output = child.wait_with_output().expect("wait for tend");
        let _ = writer.join();
        output
    }

    /// `tend user add EMAIL --role ROLE` with `password` typed on standard input.
    pub fn user_add(&self, email: &str, role: &str, password: &str) {
        let out = self.tend_with_input(
            &["user", "add", email, "--role", role],
            format!("{password}\n").as_bytes(),
        );
        assert!(
            out.status.success(),
            "tend user add {email}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Replaces `tend.toml` with `config` (the starter's processes and templates stay)
    /// and checks it with `tend check`.
    pub fn configure(&self, config: &str) {
        std::fs::write(self.dir.join("tend.toml"), config).expect("write tend.toml");
        let check = self.tend(&["check"]);
        assert!(
            check.status.success(),
            "the test's tend.toml does not pass tend check: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }

    /// `tend token create --name SCOPE --scope SCOPE`: the token, the only line printed.
    pub fn token(&self, scope: &str) -> String {
        let out = self.tend(&["token", "create", "--name", scope, "--scope", scope]);
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            printed.lines().count(),
            1,
            "only the token is printed: {printed:?}"
        );
        printed.trim().to_owned()
    }

    /// `tend serve --listen 127.0.0.1:0`; returns once it printed its address.
    pub fn serve(&self) -> Serve {
        self.serve_with(&[], &[])
    }

    /// [`Business::serve`] with more arguments (`--log-format json`) and environment
    /// variables (`TEND_SMTP_URL`, `RUST_LOG`).
    pub fn serve_with(&self, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let (mut process, log) = self.spawn_serve(args, env);
        let line = process.next_line(STARTUP, || format!("its log:\n{}", read_log(&log)));
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from tend serve: {line:?}"))
            .to_owned();
        Serve { process, base, log }
    }

    /// A `tend serve` expected to refuse to start: its exit status and its log, or a
    /// panic if it is still running after `within`.
    pub fn serve_expecting_exit(&self, within: Duration) -> (ExitStatus, String) {
        let (mut process, log) = self.spawn_serve(&[], &[]);
        let status = process.wait_exit(within, || {
            format!("it kept running; its log:\n{}", read_log(&log))
        });
        (status, read_log(&log))
    }

    fn spawn_serve(&self, args: &[&str], env: &[(&str, &str)]) -> (Guarded, PathBuf) {
        let started = self.servers_started.get() + 1;
        self.servers_started.set(started);
        let log = self.tmp.path().join(format!("serve-{started}.log"));
        let stderr = std::fs::File::create(&log).expect("create the server log");
        let child = Command::new(&self.bin)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(&self.dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start tend serve");
        (Guarded::new("tend serve", child), log)
    }
}

/// A business from `tend init` with the test's own `tend.toml`, a write key and an admin
/// token, whose email goes to an [`crate::SmtpSink`].
pub struct Studio {
    /// The business.
    pub business: Business,
    /// The Segment write key.
    pub write_key: String,
    /// A bearer token for `/api/`.
    pub admin: String,
}

impl Studio {
    /// `tend init` with `bin`, `config` as `tend.toml` (checked), then the two tokens.
    pub fn new(bin: &str, config: &str) -> Studio {
        let business = Business::init(bin);
        business.configure(config);
        Studio {
            write_key: business.token("write"),
            admin: business.token("admin"),
            business,
        }
    }

    /// The business folder.
    pub fn dir(&self) -> &Path {
        self.business.dir()
    }

    /// Where an SMTP sink may store what it accepts.
    pub fn mail_folder(&self) -> PathBuf {
        self.business.scratch().join("mail")
    }

    /// `tend serve` sending to the SMTP server on loopback `smtp_port`, logging at `info`.
    pub fn serve(&self, smtp_port: u16) -> Serve {
        self.serve_with(smtp_port, &[])
    }

    /// [`Studio::serve`] with more arguments to `tend serve`.
    pub fn serve_with(&self, smtp_port: u16, args: &[&str]) -> Serve {
        let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
        self.business
            .serve_with(args, &[("TEND_SMTP_URL", &smtp_url), ("RUST_LOG", "info")])
    }

    /// A client of `server` with this business's tokens.
    pub fn api(&self, server: &Serve) -> Api {
        server.api(&self.write_key, &self.admin)
    }
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// A running `tend serve`; SIGKILLed on drop if still running.
pub struct Serve {
    process: Guarded,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: PathBuf,
}

impl Serve {
    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// What the server logged so far (its stderr).
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill_hard(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, as a service manager stops it.
    pub fn sigterm(&self) {
        self.process.sigterm();
    }

    /// Waits for the process to exit, at most `within`; panics with its log if not.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let log = self.log.clone();
        self.process
            .wait_exit(within, || format!("its log:\n{}", read_log(&log)))
    }

    /// SIGTERM, then waits for the process to exit, at most `within`, without
    /// blocking the test's async runtime.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.sigterm();
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.process.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < end,
                "tend serve did not exit within {within:?} of SIGTERM; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// A client for this server's Segment ingest and admin API.
    pub fn api(&self, write_key: &str, admin: &str) -> Api {
        Api::new(&self.base, write_key, admin)
    }
}
