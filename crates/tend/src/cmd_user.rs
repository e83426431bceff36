//! `tend user add EMAIL --role owner|staff`: the people who log in to the console.

use anyhow::Context;
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use tend_store::Role;

/// Shortest password accepted.
const MIN_PASSWORD_CHARS: usize = 10;

/// Adds a person, or sets the role and password of the one with that address (which
/// ends their open sessions).
pub fn add(config_path: &Path, email: &str, role: &str) -> anyhow::Result<ExitCode> {
    let role =
        Role::parse(role).with_context(|| format!("unknown role `{role}`: use owner or staff"))?;
    let email = tend_core::Email::parse(email.trim())
        .map_err(|e| anyhow::anyhow!("`{email}` is not an email address: {e}"))?;
    let email = email.as_str().to_lowercase();
    let password = read_password()?;
    let chars = password.chars().count();
    anyhow::ensure!(
        chars >= MIN_PASSWORD_CHARS,
        "the password has {chars} characters; use at least {MIN_PASSWORD_CHARS}"
    );
    let hash = tend_web::console::hash_password(&password)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    crate::cmd_token::with_store(config_path, |store| async move {
        let (user, created) = store
            .upsert_user(&email, role, &hash, jiff::Timestamp::now())
            .await
            .context("storing the person")?;
        let verb = if created {
            "added"
        } else {
            "updated (their sessions ended)"
        };
        eprintln!(
            "{} {} {verb}; open the console at the server's address, e.g. http://127.0.0.1:7070/",
            user.role.as_str(),
            user.email
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// The password: asked twice at a terminal, else the first line of standard input.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again = rpassword::prompt_password("Again: ").context("reading the password")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}
