//! A valid business every target can lean on: its config, a process, a template.
#![allow(dead_code)] // each target uses a different part

use tend_core::check::{Project, ProjectSources, SourceFile, check_project};

pub const CONFIG: &str = r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Fri 09:00-18:00"
[capacity]
per_week = 8
[stages]
order = ["prospect", "lead", "customer", "loyal", "lapsed"]
[stages.on_event]
"Inquiry Received" = "lead"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

pub const PROCESS: &str = r#"
name = "New inquiry"
enroll = { stage = "lead" }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
[[steps]]
wait = "2d"
task = "Call {{ contact.name }}"
minutes = 15
intent = "offer"
"#;

pub const TEMPLATE: &str = "Subject: Hi {{ contact.first_name }}\n\nDear {{ contact.name }}.\n";

/// Checks a project built from these three files, rendering every diagnostic, as
/// `tend check` does.
pub fn check(config: &str, process: &str, template: &str) -> Option<Project> {
    let sources = ProjectSources {
        config: SourceFile::new("tend.toml", config),
        processes: vec![SourceFile::new("processes/p.toml", process)],
        templates: vec![SourceFile::new("templates/welcome.md", template)],
    };
    match check_project(&sources) {
        Ok(project) => Some(project),
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                let _ = diagnostic.to_string();
            }
            None
        }
    }
}

/// The valid project.
pub fn project() -> Project {
    check(CONFIG, PROCESS, TEMPLATE).expect("the fuzz project is valid")
}
