//! `tend init [DIR]`: write a starter business that passes `tend check` as is.

use anyhow::Context;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Embeds the starter files at `crates/tend/starter/<path>` under their project path.
macro_rules! starter_files {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../starter/", $path)))),*]
    };
}

/// Every file `tend init` writes, by path relative to the project folder.
pub const STARTER: &[(&str, &str)] = starter_files![
    "tend.toml",
    "scenario.toml",
    "processes/new-inquiry.toml",
    "processes/customer.toml",
    "processes/evergreen.toml",
    "templates/welcome.md",
    "templates/how-we-work.md",
    "templates/free-visit.md",
    "templates/project-story.md",
    "templates/budget-tips.md",
    "templates/book-a-slot.md",
    "templates/common-questions.md",
    "templates/materials-guide.md",
    "templates/seasonal-ideas.md",
    "templates/visit-this-month.md",
    "templates/before-after.md",
    "templates/planning-checklist.md",
    "templates/small-jobs.md",
    "templates/still-interested.md",
    "templates/door-open.md",
    "templates/keep-warm.md",
    "templates/thank-you.md",
    "templates/settling-in.md",
    "templates/review-request.md",
    "templates/care-tips.md",
    "templates/seasonal-check-in.md",
    "templates/referral.md",
    "templates/anniversary.md",
    "templates/evergreen-news.md",
    "templates/evergreen-idea.md",
    "templates/evergreen-offer.md",
];

/// Writes the starter project into `dir`, creating it if needed. Refuses, writing
/// nothing, if any of the files already exists.
pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    // Check everything before writing anything, so a refusal leaves no trace.
    let existing: Vec<PathBuf> = STARTER
        .iter()
        .map(|(path, _)| dir.join(path))
        .filter(|path| fs::symlink_metadata(path).is_ok())
        .collect();
    if !existing.is_empty() {
        let listed: Vec<String> = existing
            .iter()
            .map(|p| format!("  {}", p.display()))
            .collect();
        anyhow::bail!(
            "refusing to overwrite existing file{}; nothing was written:\n{}",
            if existing.len() == 1 { "" } else { "s" },
            listed.join("\n")
        );
    }

    let mut written = Vec::new();
    if let Err(err) = write_all(dir, &mut written) {
        // Leave no half-written project behind.
        for path in written.iter().rev() {
            let _ = fs::remove_file(path);
        }
        return Err(err);
    }

    println!("Created a starter Tend project in {}:", dir.display());
    for path in &written {
        println!("  {}", path.display());
    }
    let config = dir.join("tend.toml");
    let steps = [
        (
            format!("tend check --config {}", config.display()),
            "validate everything",
        ),
        (
            format!(
                "tend token create --name website --config {}",
                config.display()
            ),
            "a token for your website or CRM",
        ),
        (
            format!("tend simulate {}", dir.join("scenario.toml").display()),
            "a year of it, simulated three ways",
        ),
        (
            format!("tend serve --config {}", config.display()),
            "run the engine and its HTTP API",
        ),
    ];
    let width = steps.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    println!();
    println!(
        "Next steps: make {} and the emails in {} yours, then",
        config.display(),
        dir.join("templates").display()
    );
    for (command, why) in &steps {
        println!("  {command:<width$}   # {why}");
    }
    println!(
        "Until smtp_url is set, emails are written to {} instead of being sent.",
        dir.join("outbox").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_all(dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for (relative, text) in STARTER {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        // create_new: never clobber a file that appeared since the check above.
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        // `tend.toml` is where SMTP passwords and webhook secrets go: the owner's only.
        #[cfg(unix)]
        if *relative == "tend.toml" {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        let mut file = options
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        written.push(path.clone());
        file.write_all(text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tend_core::check::{ProjectSources, SourceFile, check_project};
    use tend_core::process::{Enroll, Intent, StepChannel};

    fn starter_project() -> tend_core::check::Project {
        let file = |prefix: &str| -> Vec<SourceFile> {
            STARTER
                .iter()
                .filter(|(p, _)| p.starts_with(prefix))
                .map(|(p, t)| SourceFile::new(*p, *t))
                .collect()
        };
        let sources = ProjectSources {
            config: SourceFile::new("tend.toml", STARTER[0].1),
            processes: file("processes/"),
            templates: file("templates/"),
        };
        check_project(&sources).unwrap_or_else(|diags| {
            let listed: Vec<String> = diags.iter().map(ToString::to_string).collect();
            panic!("starter has problems:\n{}", listed.join("\n"))
        })
    }

    #[test]
    fn starter_passes_check_and_keeps_email_local() {
        let project = starter_project();
        assert_eq!(project.config.business.name, "Studio Rossi");
        assert_eq!(project.config.database_url, "sqlite://tend.db");
        assert!(project.config.channels.email.smtp_url.is_none());
        assert!(project.config.channels.email.from.is_some());
    }

    #[test]
    fn acquisition_process_is_long_mixed_and_guarded() {
        let project = starter_project();
        let p = project.process("new-inquiry").expect("new-inquiry process");
        assert!(p.steps.len() >= 9, "{} touches", p.steps.len());
        let total: u64 = p.steps.iter().map(|s| s.wait.as_secs()).sum();
        assert!(total >= 8 * 7 * 86_400, "spans {total}s");
        assert!(p.steps.iter().any(|s| s.intent == Intent::Offer));
        assert!(p.steps.iter().any(|s| s.intent == Intent::Nurture));
        assert!(
            p.steps
                .iter()
                .any(|s| matches!(s.channel, StepChannel::Task { .. }))
        );
        assert!(p.keep_warm.is_some());
        assert!(p.enrolls_on_stage("lead"));
        assert!(p.exits_on_event("Order Completed"));
        assert!(p.exits_on_stage("customer"));
        let customer = project.process("customer").expect("customer process");
        assert_eq!(
            customer.enroll,
            Enroll::Stage(tend_core::StageName::new("customer"))
        );
    }

    #[test]
    fn every_template_is_personal_and_can_unsubscribe() {
        let project = starter_project();
        for template in project.templates.values() {
            assert!(
                template.body.contains("{{ unsubscribe_url }}"),
                "{} has no unsubscribe link",
                template.name
            );
            assert!(
                template.body.contains("contact.first_name"),
                "{} is not personalised",
                template.name
            );
        }
    }

    #[test]
    fn every_starter_key_in_tend_toml_has_a_comment() {
        let config = STARTER[0].1;
        let lines: Vec<&str> = config.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
                continue;
            }
            assert!(
                i > 0 && lines[i - 1].trim_start().starts_with('#'),
                "line {} `{t}` has no comment above it",
                i + 1
            );
        }
    }
}
