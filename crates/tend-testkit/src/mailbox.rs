//! The messages an [`crate::SmtpSink`] stored, as Python's email parser read them.

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// One message as the sink's Python email parser read it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The `Message-ID` header.
    pub message_id: String,
    /// The envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// The whole summary: `content_type`, `headers` (lower-case name → values), `parts`.
    pub summary: Value,
}

impl Mail {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.summary["headers"][name.to_ascii_lowercase()][0].as_str()
    }

    /// The touch id inside a `<tend.touch.{id}@{domain}>` Message-ID.
    pub fn touch_id(&self) -> Option<i64> {
        let rest = self.message_id.strip_prefix("<tend.touch.")?;
        let (id, domain) = rest.strip_suffix('>')?.split_once('@')?;
        let domain_ok = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
        domain_ok.then(|| id.parse().ok()).flatten()
    }
}

/// The messages a sink stored, read incrementally.
pub struct Mailbox {
    folder: PathBuf,
    read: BTreeMap<u32, Mail>,
}

impl Mailbox {
    /// The mail in `folder` (which need not exist yet).
    pub fn new(folder: &Path) -> Mailbox {
        Mailbox {
            folder: folder.to_owned(),
            read: BTreeMap::new(),
        }
    }

    /// Every message stored so far, in arrival order.
    pub fn messages(&mut self) -> Vec<Mail> {
        let entries = match std::fs::read_dir(&self.folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("reading {}: {e}", self.folder.display()),
        };
        for entry in entries {
            let path = entry.expect("a folder entry").path();
            // The sink renames each file into place whole; `.tmp` files are not done.
            let Some(number) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if self.read.contains_key(&number) {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let summary: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            let message_id = summary["headers"]["message-id"][0]
                .as_str()
                .unwrap_or_else(|| panic!("{} has no Message-ID", path.display()))
                .to_owned();
            let rcpt_tos = summary["rcpt_tos"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)))
                .into_iter()
                .flatten()
                .collect();
            self.read.insert(
                number,
                Mail {
                    message_id,
                    rcpt_tos,
                    summary,
                },
            );
        }
        self.read.values().cloned().collect()
    }

    /// How many messages were stored, and how many distinct Message-IDs among them.
    pub fn counts(&mut self) -> (usize, usize) {
        let messages = self.messages();
        let distinct: HashSet<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
        (messages.len(), distinct.len())
    }
}
