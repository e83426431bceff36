//! A headless Chromium (Debian's, driven by Playwright for Python through
//! `peers/browser.py`) for the console's tests: pages with their own cookies, every
//! request they make recorded, screenshots saved under the target folder.
//!
//! Without Chromium or Playwright the tests fail when `CI` is set, and otherwise skip
//! with a loud message, so a developer without a browser can still run the rest.

use serde_json::{Value, json};
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::peer_file;
use crate::python::python;

/// How to install what the browser tests need, on Debian.
pub const INSTALL_HINT: &str =
    "apt-get install -y chromium chromium-driver && pip install playwright";

/// Debian's Chromium: `TEND_TEST_CHROMIUM` or `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    std::env::var_os("TEND_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Where the screenshots of test `name` go: `TEND_BROWSER_ARTIFACTS/name`, else
/// `browser-artifacts/name` in the cargo target folder the test runs from.
pub fn artifact_dir(name: &str) -> PathBuf {
    let root = std::env::var_os("TEND_BROWSER_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // The test binary is TARGET/PROFILE/deps/NAME-HASH.
            let exe = std::env::current_exe().expect("the test binary's path");
            exe.ancestors()
                .find(|dir| dir.file_name().is_some_and(|n| n == "deps"))
                .and_then(|deps| deps.parent()?.parent())
                .map(|target| target.join("browser-artifacts"))
                .unwrap_or_else(|| std::env::temp_dir().join("tend-browser-artifacts"))
        });
    root.join(name)
}

/// What is missing to run a browser, if anything.
fn missing() -> Option<String> {
    let chromium = chromium();
    if !chromium.exists() {
        return Some(format!("no Chromium at {}", chromium.display()));
    }
    let playwright = Command::new(python())
        .args(["-c", "import playwright.sync_api"])
        .output();
    match playwright {
        Ok(out) if out.status.success() => None,
        _ => Some(format!("`{}` cannot import playwright", python())),
    }
}

/// Whether this run is CI's (`CI` set to anything but empty, `0` or `false`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

struct Bridge {
    child: Child,
    /// Closed on drop: the bridge then closes Chromium and exits.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Bridge {
    fn call(&mut self, command: Value) -> Result<Value, String> {
        let mut line = command.to_string();
        line.push('\n');
        let stdin = self.stdin.as_mut().expect("open until drop");
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("the browser bridge is gone ({e})"))?;
        read_answer(&mut self.stdout)
    }
}

fn read_answer(stdout: &mut BufReader<ChildStdout>) -> Result<Value, String> {
    let mut answer = String::new();
    match stdout.read_line(&mut answer) {
        Ok(0) | Err(_) => return Err("the browser bridge exited; see its output above".into()),
        Ok(_) => {}
    }
    let mut answer: Value = serde_json::from_str(&answer)
        .map_err(|e| format!("the browser bridge said {answer:?} ({e})"))?;
    match answer.get_mut("ok") {
        Some(value) => Ok(value.take()),
        None => Err(answer["error"].as_str().unwrap_or("?").to_owned()),
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // A killed bridge would leave Playwright's driver and Chromium behind: let it
        // close them, and kill it only if it does not within a few seconds.
        drop(self.stdin.take());
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(crate::POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium; closed when dropped.
pub struct Browser {
    bridge: Rc<RefCell<Bridge>>,
    artifacts: PathBuf,
}

impl Browser {
    /// Starts Chromium for test `name` (its screenshots go to [`artifact_dir`]`(name)`,
    /// emptied first). `None`, after a loud message, when there is no browser here and
    /// this is not CI; in CI a missing browser fails the test.
    pub fn launch(name: &str) -> Option<Browser> {
        if let Some(what) = missing() {
            assert!(
                !in_ci(),
                "the browser tests must run in CI, but {what}: {INSTALL_HINT}"
            );
            eprintln!(
                "\n!!!!!!!! SKIPPED: browser test `{name}`: {what}.\n\
                 !!!!!!!! Install them to run it: {INSTALL_HINT}\n"
            );
            return None;
        }
        let artifacts = artifact_dir(name);
        let _ = std::fs::remove_dir_all(&artifacts);
        std::fs::create_dir_all(&artifacts)
            .unwrap_or_else(|e| panic!("creating {}: {e}", artifacts.display()));
        let mut child = Command::new(python())
            .arg(peer_file("browser.py"))
            .arg("--chromium")
            .arg(chromium())
            .arg("--artifacts")
            .arg(&artifacts)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the browser bridge: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let version = read_answer(&mut stdout)
            .unwrap_or_else(|e| panic!("Chromium did not start: {e}; {INSTALL_HINT}"));
        eprintln!("Chromium {version}; screenshots in {}", artifacts.display());
        Some(Browser {
            bridge: Rc::new(RefCell::new(Bridge {
                child,
                stdin: Some(stdin),
                stdout,
            })),
            artifacts,
        })
    }

    /// Where this test's screenshots go.
    pub fn artifacts(&self) -> &Path {
        &self.artifacts
    }

    /// A fresh page (its own cookies) `width` × `height` CSS pixels, for the site at
    /// `base` (`http://127.0.0.1:PORT`).
    pub fn page(&self, base: &str, width: u32, height: u32) -> Page {
        let id = self
            .bridge
            .borrow_mut()
            .call(json!({ "op": "new_page", "width": width, "height": height }))
            .unwrap_or_else(|e| panic!("opening a page: {e}"));
        Page {
            bridge: Rc::clone(&self.bridge),
            id,
            base: base.trim_end_matches('/').to_owned(),
            artifacts: self.artifacts.clone(),
        }
    }
}

/// One page of the browser. Each method waits for what it does (a navigation, an
/// element) and panics with the browser's own words, and a screenshot, when it fails.
pub struct Page {
    bridge: Rc<RefCell<Bridge>>,
    id: Value,
    /// The site under test.
    pub base: String,
    artifacts: PathBuf,
}

impl Page {
    fn call(&self, op: &str, mut args: Value) -> Value {
        args["op"] = json!(op);
        args["page"] = self.id.clone();
        let described = args.to_string();
        self.bridge
            .borrow_mut()
            .call(args)
            .unwrap_or_else(|e| panic!("browser: {described} failed: {e}"))
    }

    /// Loads `path` (on the site) or a full URL; the HTTP status.
    pub fn goto(&self, path: &str) -> u16 {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        status(self.call("goto", json!({ "url": url })))
    }

    /// The current URL's path and query, on the site.
    pub fn path(&self) -> String {
        let url = self.call("url", json!({}));
        let url = url.as_str().expect("a URL");
        url.strip_prefix(&self.base).unwrap_or(url).to_owned()
    }

    /// Types `value` into the field `selector` names.
    pub fn fill(&self, selector: &str, value: &str) {
        self.call("fill", json!({ "selector": selector, "value": value }));
    }

    /// Chooses `value` in the `<select>` `selector` names.
    pub fn select(&self, selector: &str, value: &str) {
        self.call("select", json!({ "selector": selector, "value": value }));
    }

    /// Presses `key` (`Tab`, `Enter`) in the element `selector` names.
    pub fn press(&self, selector: &str, key: &str) {
        self.call("press", json!({ "selector": selector, "key": key }));
    }

    /// Presses `key` on the keyboard, into whatever has the focus.
    pub fn key(&self, key: &str) {
        self.call("key", json!({ "key": key }));
    }

    /// Chooses the file at `path` in the file input `selector` names.
    pub fn set_file(&self, selector: &str, path: &Path) {
        let path = path.to_str().expect("a UTF-8 path");
        self.call("set_files", json!({ "selector": selector, "path": path }));
    }

    /// Clicks what `selector` names and waits for the page to settle.
    pub fn click(&self, selector: &str) {
        self.call("click", json!({ "selector": selector }));
    }

    /// Clicks what `selector` names, which must load a page; that page's HTTP status
    /// (after redirects).
    pub fn submit(&self, selector: &str) -> u16 {
        status(self.call("submit", json!({ "selector": selector })))
    }

    /// The visible text of the first element `selector` names, if there is one.
    pub fn text(&self, selector: &str) -> Option<String> {
        self.call("text", json!({ "selector": selector }))
            .as_str()
            .map(str::to_owned)
    }

    /// Waits up to `timeout` for an element `selector` names, following the page as it
    /// reloads itself; panics when none appears in time.
    pub fn wait_for_element(&self, selector: &str, timeout: std::time::Duration) {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.call(
            "wait_for",
            json!({ "selector": selector, "timeout_ms": timeout_ms }),
        );
    }

    /// How many elements `selector` names.
    pub fn count(&self, selector: &str) -> usize {
        self.call("count", json!({ "selector": selector }))
            .as_u64()
            .expect("a count") as usize
    }

    /// Evaluates a JavaScript expression in the page; its value as JSON.
    pub fn eval(&self, js: &str) -> Value {
        self.call("eval", json!({ "js": js }))
    }

    /// Resizes the viewport.
    pub fn set_viewport(&self, width: u32, height: u32) {
        self.call("viewport", json!({ "width": width, "height": height }));
    }

    /// Saves a full-page screenshot as `name.png` in the test's artifact folder.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let path = self.artifacts.join(format!("{name}.png"));
        let text = path.to_str().expect("a UTF-8 artifact path");
        self.call("screenshot", json!({ "path": text }));
        path
    }

    /// Every URL this page (and what it loaded) requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.call("requests", json!({}))
            .as_array()
            .expect("a list")
            .iter()
            .map(|url| url.as_str().expect("a URL").to_owned())
            .collect()
    }
}

fn status(value: Value) -> u16 {
    value.as_u64().map_or(0, |s| s as u16)
}
