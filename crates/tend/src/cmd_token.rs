//! `tend token create`: a new API token, printed once and stored only as a hash.

use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use tend_store::{TokenScope, tokens};

/// Creates a token and prints it alone on stdout.
pub fn create(config_path: &Path, name: &str, scope: &str) -> anyhow::Result<ExitCode> {
    let scope = TokenScope::parse(scope).with_context(|| {
        format!("unknown scope `{scope}`: use write, admin, calendar or metrics")
    })?;
    let name = name.trim();
    anyhow::ensure!(!name.is_empty(), "--name must not be empty");
    let project = crate::project::load_valid_project(config_path)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = crate::open_store(config_path, &project.config).await?;
        let token = tokens::generate_token();
        store
            .create_token(
                name,
                scope,
                &tokens::hash_token(&token),
                jiff::Timestamp::now(),
            )
            .await
            .context("storing the token")?;
        println!("{token}");
        eprintln!(
            "created {} token `{name}`; it is shown only now, so keep it somewhere safe",
            scope.as_str()
        );
        Ok(ExitCode::SUCCESS)
    })
}
