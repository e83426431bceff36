//! `tend token create|list|revoke`: API tokens, printed once at creation and stored only
//! as a hash.

use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tend_store::{Store, StoreError, TokenScope, tokens};

/// Creates a token and prints it alone on stdout; a name already in use is refused.
pub fn create(config_path: &Path, name: &str, scope: &str) -> anyhow::Result<ExitCode> {
    let scope = TokenScope::parse(scope).with_context(|| {
        format!("unknown scope `{scope}`: use write, admin, calendar or metrics")
    })?;
    let name = name.trim();
    anyhow::ensure!(!name.is_empty(), "--name must not be empty");
    with_store(config_path, |store| async move {
        let token = tokens::generate_token();
        match store
            .create_token(
                name,
                scope,
                &tokens::hash_token(&token),
                jiff::Timestamp::now(),
            )
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict(message)) => {
                eprintln!("error: {message}");
                return Ok(ExitCode::FAILURE);
            }
            Err(err) => return Err(err).context("storing the token"),
        }
        println!("{token}");
        eprintln!(
            "created {} token `{name}`; it is shown only now, so keep it somewhere safe",
            scope.as_str()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints every token: name, scope, created, last used (to the minute).
pub fn list(config_path: &Path) -> anyhow::Result<ExitCode> {
    with_store(config_path, |store| async move {
        let tokens = store.list_tokens().await.context("reading the tokens")?;
        let when = |at: Option<jiff::Timestamp>| {
            at.map_or_else(
                || "never".to_owned(),
                |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
            )
        };
        let width = tokens
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        println!(
            "{:width$}  {:8}  {:20}  LAST USED",
            "NAME", "SCOPE", "CREATED"
        );
        for token in &tokens {
            println!(
                "{:width$}  {:8}  {:20}  {}",
                token.name,
                token.scope.as_str(),
                when(Some(token.created_at)),
                when(token.last_used_at),
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Deletes the token of that name; exit 1 if there is none.
pub fn revoke(config_path: &Path, name: &str) -> anyhow::Result<ExitCode> {
    with_store(config_path, |store| async move {
        if store
            .revoke_token(name.trim())
            .await
            .context("revoking the token")?
        {
            eprintln!("revoked token `{}`", name.trim());
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!(
                "error: no token named `{}` (see `tend token list`)",
                name.trim()
            );
            Ok(ExitCode::FAILURE)
        }
    })
}

pub(crate) fn with_store<F, Fut>(config_path: &Path, work: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let project = crate::project::load_valid_project(config_path)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = crate::open_store(config_path, &project.config).await?;
        work(store).await
    })
}
