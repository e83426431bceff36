//! A real IMAP server for the tests: Dovecot from Debian (`dovecot-imapd`), started with
//! its configuration, state, a passwd-file user and a Maildir in a temp folder, as a
//! service of the test alone (no system-wide Dovecot is needed or touched).
//!
//! Dovecot cannot bind port 0 and report it, so a port is chosen just before it starts;
//! should another test take that port meanwhile, Dovecot exits and is started again on
//! another.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The mailbox user and password.
pub const USER: &str = "bounces";
pub const PASSWORD: &str = "s3cret-pass";

/// One running Dovecot.
pub struct Dovecot {
    child: Child,
    /// Plain IMAP.
    pub port: u16,
    /// IMAP over TLS, when started with [`Dovecot::start_tls`].
    pub tls_port: Option<u16>,
    pub dir: tempfile::TempDir,
    /// Who owns the Maildir: the test's user, or Dovecot's own when running as root
    /// (Dovecot will not serve mail as root).
    owner: (u32, u32),
}

/// Skips loudly (panics with the fix) when Dovecot is not installed.
fn require_dovecot() -> PathBuf {
    for candidate in ["/usr/sbin/dovecot", "/usr/bin/dovecot"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("Dovecot is missing: apt-get install dovecot-imapd (the tests start their own)");
}

/// `id FLAG [USER]` as a number: the current user's without one.
fn id_of(flag: &str, user: Option<&str>) -> u32 {
    let out = Command::new("id")
        .arg(flag)
        .args(user)
        .output()
        .expect("run id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no user {user:?}"))
}

impl Dovecot {
    /// Writes `messages` (raw RFC 5322 bytes) into the Maildir's `new/` folder, then
    /// starts Dovecot and waits until it answers.
    pub fn start(messages: &[Vec<u8>]) -> Dovecot {
        Dovecot::start_with(messages, None)
    }

    /// [`Dovecot::start`], also serving IMAP over TLS (`imaps`) with this certificate
    /// chain and key (PEM files).
    pub fn start_tls(messages: &[Vec<u8>], tls: &TestCertificates) -> Dovecot {
        Dovecot::start_with(messages, Some(tls))
    }

    /// [`Dovecot::start`], with a server that does not offer IDLE (its capability
    /// list leaves it out), as some mail hosts do.
    pub fn start_without_idle(messages: &[Vec<u8>]) -> Dovecot {
        Dovecot::start_with_config(
            messages,
            None,
            "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS MOVE\n",
        )
    }

    fn start_with(messages: &[Vec<u8>], tls: Option<&TestCertificates>) -> Dovecot {
        Dovecot::start_with_config(messages, tls, "")
    }

    /// Starts with `extra` appended to the configuration's top level.
    fn start_with_config(
        messages: &[Vec<u8>],
        tls: Option<&TestCertificates>,
        extra: &str,
    ) -> Dovecot {
        for _ in 0..5 {
            if let Some(dovecot) = Dovecot::try_start(messages, tls, extra) {
                return dovecot;
            }
        }
        panic!("Dovecot could not bind a port in five tries");
    }

    /// One try: `None` if Dovecot exited (its port was taken).
    fn try_start(
        messages: &[Vec<u8>],
        tls: Option<&TestCertificates>,
        extra: &str,
    ) -> Option<Dovecot> {
        let binary = require_dovecot();
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        set_mode(root, 0o755);
        let running_as_root = id_of("-u", None) == 0;
        let (login_user, internal_user, owner) = if running_as_root {
            (
                "dovenull".to_owned(),
                "dovecot".to_owned(),
                (id_of("-u", Some("dovecot")), id_of("-g", Some("dovecot"))),
            )
        } else {
            let me = String::from_utf8_lossy(
                &Command::new("id")
                    .arg("-un")
                    .output()
                    .expect("id -un")
                    .stdout,
            )
            .trim()
            .to_owned();
            (me.clone(), me, (id_of("-u", None), id_of("-g", None)))
        };
        let maildir = root.join("mail/Maildir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        for (i, message) in messages.iter().enumerate() {
            std::fs::write(
                maildir.join(format!("new/{}.M{i}P1.tend-test", 1_700_000_000 + i)),
                message,
            )
            .expect("write message");
        }
        chown_tree(&root.join("mail"), owner);
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port()
        };
        let port = free_port();
        let tls_port = tls.map(|_| free_port());
        let ssl = match tls {
            // The key stays where the test made it; Dovecot's master reads it as us.
            Some(files) => format!(
                "ssl = yes\nssl_cert = <{}\nssl_key = <{}\n",
                files.server_chain.display(),
                files.server_key.display()
            ),
            None => "ssl = no\n".to_owned(),
        };
        let config = format!(
            "base_dir = {root}/run\n\
             state_dir = {root}/state\n\
             log_path = {root}/dovecot.log\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             {ssl}\
             {extra}\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             mail_location = maildir:{root}/mail/Maildir\n\
             default_login_user = {login_user}\n\
             default_internal_user = {internal_user}\n\
             first_valid_uid = 1\n\
             first_valid_gid = 1\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {root}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={root}/mail\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = {imaps_port}\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n",
            root = root.display(),
            uid = owner.0,
            gid = owner.1,
            imaps_port = tls_port.unwrap_or(0),
        );
        std::fs::write(root.join("dovecot.conf"), config).expect("config");
        std::fs::write(root.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n"))
            .expect("passwd");
        let child = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        let mut dovecot = Dovecot {
            child,
            port,
            tls_port,
            dir,
            owner,
        };
        dovecot.wait_for_greeting().then_some(dovecot)
    }

    /// Whether Dovecot answers; `false` if it exited first.
    fn wait_for_greeting(&mut self) -> bool {
        use std::io::Read;
        let deadline = Instant::now() + crate::STARTUP;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut buf = [0u8; 64];
                if matches!(stream.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"* OK")) {
                    return true;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Dovecot did not answer on port {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(crate::POLL);
        }
    }

    /// `imap://bounces:…@127.0.0.1:PORT/INBOX`.
    pub fn url(&self) -> String {
        format!("imap://{USER}:{PASSWORD}@127.0.0.1:{}/INBOX", self.port)
    }

    /// `imaps://bounces:…@127.0.0.1:TLS_PORT/INBOX`; panics without TLS.
    pub fn imaps_url(&self) -> String {
        let port = self.tls_port.expect("started with start_tls");
        format!("imaps://{USER}:{PASSWORD}@127.0.0.1:{port}/INBOX")
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        // Dovecot's processes log through its master: give the last lines a moment.
        std::thread::sleep(Duration::from_millis(500));
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// The Maildir flags (`S`, `T`, keyword letters…) of every message in `folder`
    /// (`""` for INBOX, `".Tend"` for a subfolder), by the file's original name.
    pub fn flags(&self, folder: &str) -> Vec<(String, String)> {
        let base = self.dir.path().join("mail/Maildir").join(folder);
        let mut found = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(base.join(sub)) else {
                continue;
            };
            for entry in entries {
                let name = entry.unwrap().file_name().into_string().unwrap();
                let (stem, flags) = name.split_once(":2,").unwrap_or((name.as_str(), ""));
                let stem = stem.split(',').next().unwrap_or(stem).to_owned();
                found.push((stem, flags.to_owned()));
            }
        }
        found.sort();
        found
    }

    /// Whether Dovecot's keyword list for INBOX names `$TendHandled`.
    pub fn keywords(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mail/Maildir/dovecot-keywords"))
            .unwrap_or_default()
    }

    /// Delivers one more message into INBOX while the server runs, as a local
    /// delivery agent would.
    pub fn deliver(&self, message: &[u8]) {
        let maildir = self.dir.path().join("mail/Maildir");
        let name = format!("{}.M{}P2.tend-test", 1_800_000_000, std::process::id());
        let temp = maildir.join("tmp").join(&name);
        std::fs::write(&temp, message).expect("write message");
        chown_tree(&temp, self.owner);
        std::fs::rename(&temp, maildir.join("new").join(&name)).expect("deliver");
    }

    /// Appends one message to INBOX over IMAP (`APPEND`), as another mail client
    /// would: a session idling on INBOX hears of it at once.
    pub fn append(&self, message: &[u8]) {
        use std::io::{BufRead, BufReader, Write};
        let stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        // Reads lines until one starts with `prefix`; panics on a NO or BAD.
        let mut until = |prefix: &str| loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("read from Dovecot");
            assert!(n > 0, "Dovecot closed the connection: {}", self.log());
            if let Some(rest) = line.strip_prefix(prefix) {
                assert!(
                    !rest.starts_with(" NO") && !rest.starts_with(" BAD"),
                    "{line}"
                );
                return;
            }
        };
        until("* OK");
        write!(writer, "a1 LOGIN \"{USER}\" \"{PASSWORD}\"\r\n").unwrap();
        until("a1");
        write!(writer, "a2 APPEND INBOX {{{}}}\r\n", message.len()).unwrap();
        until("+");
        writer.write_all(message).unwrap();
        writer.write_all(b"\r\n").unwrap();
        until("a2");
        write!(writer, "a3 LOGOUT\r\n").unwrap();
        until("a3");
    }

    /// Stops Dovecot, which drops every client's connection, and starts it again on
    /// the same ports with the same mail.
    pub fn restart(&mut self) {
        self.stop();
        let binary = require_dovecot();
        self.child = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        assert!(
            self.wait_for_greeting(),
            "Dovecot did not start again: {}",
            self.log()
        );
    }

    /// Stops Dovecot and its processes, and waits until its master has exited.
    fn stop(&mut self) {
        // Dovecot's master stops most of its children on SIGTERM, but an `imap`
        // process serving a client outlives it (its connection stays up): those are
        // ended too, so a stop drops every client as a crash or reboot would.
        let processes = descendants(self.child.id());
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut exited = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let alive: Vec<String> = processes
            .iter()
            .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
            .map(u32::to_string)
            .collect();
        if !alive.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(&alive)
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The processes under `pid` (children, theirs…), from `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((child, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown_tree(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir") {
            chown_tree(&entry.expect("entry").path(), (uid, gid));
        }
    }
}

/// A certificate authority made for one test, and a server certificate it signed for
/// 127.0.0.1, as PEM files in a temp folder (by the `openssl` command).
pub struct TestCertificates {
    /// The authority's certificate: what a client must be told to trust.
    pub ca: PathBuf,
    /// The server's certificate followed by the authority's.
    pub server_chain: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCertificates {
    /// Makes a fresh authority and server certificate, valid for two days.
    pub fn make() -> TestCertificates {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl runs (apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca_args = vec!["req", "-x509"];
        ca_args.extend(ec);
        ca_args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Tend test CA",
        ]);
        openssl(&ca_args);
        let mut request_args = vec!["req"];
        request_args.extend(ec);
        request_args.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(&request_args);
        std::fs::write(
            path("server.ext"),
            "basicConstraints = CA:FALSE\nsubjectAltName = IP:127.0.0.1\n\
             extendedKeyUsage = serverAuth\n",
        )
        .expect("extensions");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        let chain = [
            std::fs::read_to_string(path("server.pem")).expect("server.pem"),
            std::fs::read_to_string(path("ca.pem")).expect("ca.pem"),
        ]
        .concat();
        std::fs::write(path("server-chain.pem"), chain).expect("chain");
        // Dovecot, running as another user under root, must read the key.
        set_mode(&path("server.key"), 0o644);
        set_mode(dir.path(), 0o755);
        TestCertificates {
            ca: path("ca.pem"),
            server_chain: path("server-chain.pem"),
            server_key: path("server.key"),
            _dir: dir,
        }
    }
}
