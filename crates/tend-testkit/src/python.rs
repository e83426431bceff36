//! The Python interpreter the peers run on, and the modules they need.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Every Python package the test suite uses, as `pip install` takes them.
pub const PIP_PACKAGES: &str = "aiosmtpd standardwebhooks icalendar segment-analytics-python \
     prometheus-client playwright openapi-spec-validator schemathesis dkimpy pynacl cryptography";

/// The Python interpreter: `TEND_TEST_PYTHON` or `python3`.
pub fn python() -> String {
    std::env::var("TEND_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Fails the test, loudly, when `module` cannot be imported: these tests must never
/// pass by skipping.
pub fn require_python_module(module: &str) {
    match Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
    {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "Python module `{module}` is missing ({}); run: pip install {PIP_PACKAGES}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        ),
        Err(error) => panic!(
            "cannot run `{}` ({error}); install Python 3, then: pip install {PIP_PACKAGES}",
            python()
        ),
    }
}

/// Runs `python -c script args…` with `stdin` written to it; its whole output.
pub fn run_python(script: &str, args: &[&str], stdin: &[u8]) -> Output {
    spawn(Command::new(python()), script, args, stdin)
}

/// [`run_python`] in the folder `dir` (for tools that leave caches where they run)
/// with environment variables added (for secrets a command line would show to every
/// user of the machine).
pub fn run_python_in(
    dir: &Path,
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &[u8],
) -> Output {
    let mut command = Command::new(python());
    command.current_dir(dir).envs(env.iter().copied());
    spawn(command, script, args, stdin)
}

fn spawn(mut command: Command, script: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = command
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{}` ({e}); install Python 3", python()));
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_vec();
    // Written from a thread, so a script that prints much before reading all its input
    // cannot deadlock; one that exits without reading it all closes the pipe: not an error.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().expect("wait for python");
    let _ = writer.join();
    output
}

/// Verifies the DKIM signature of `message` with dkimpy (`peers/dkim_verify.py`), an
/// implementation independent of Tend's, the TXT record `record` answering for `name`
/// (`<selector>._domainkey.<domain>`): `Err` carries dkimpy's reason for a failure.
pub fn dkim_verify(message: &[u8], name: &str, record: &str) -> Result<(), String> {
    require_python_module("dkim");
    // Ed25519 signatures need PyNaCl under dkimpy.
    require_python_module("nacl");
    let mut child = Command::new(python())
        .arg(crate::peer_file("dkim_verify.py"))
        .args([name, record])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{}` ({e}); install Python 3", python()));
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(message).expect("message to dkim_verify.py");
    drop(input);
    let output = child.wait_with_output().expect("wait for dkim_verify.py");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        output.status.success(),
        "dkim_verify.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    if stdout == "pass" {
        Ok(())
    } else {
        Err(stdout)
    }
}
