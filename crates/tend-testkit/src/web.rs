//! Tend's real HTTP server, in-process, with a running engine over a real SQLite file
//! in a temporary folder, the engine driven step by step on a manual clock.

use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use tend_core::check::{ProjectSources, SourceFile, check_project};
use tend_engine::mail_providers::ProviderKeys;
use tend_engine::{ChannelDelivery, Engine, EngineSettings, ManualClock};
use tend_store::{Store, TokenScope, tokens};
use tend_store_sqlite::SqliteStore;
use tend_web::{AppState, IngestRules};

/// Monday 23 November 2026, 10:00 in Rome.
pub fn monday_morning() -> Timestamp {
    "2026-11-23T10:00:00+01:00[Europe/Rome]"
        .parse::<jiff::ZonedDateTime>()
        .unwrap()
        .timestamp()
}

/// The server, its engine and clock, and a token of each scope; stopped on drop.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A Segment write key.
    pub write_key: String,
    /// An admin token for `/api/`.
    pub admin: String,
    /// A calendar token for `/agenda.ics`.
    pub calendar: String,
    /// A client that does not follow redirects.
    pub client: reqwest::Client,
    /// The engine, run with [`Server::after`] or its own methods.
    pub engine: Arc<Engine>,
    /// The engine's clock.
    pub clock: ManualClock,
    /// The folder holding `tend.db` and `outbox/`.
    pub dir: tempfile::TempDir,
    /// The console's simulations, to wait on.
    pub simulations: Arc<tend_web::console::Simulations>,
    /// Dropping it shuts the server down.
    pub _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Writes `tend.toml`, `processes/` and `templates/` into `dir`.
fn write_project(
    dir: &std::path::Path,
    config: &str,
    processes: &[(&str, &str)],
    templates: &[(&str, &str)],
) {
    std::fs::write(dir.join("tend.toml"), config).unwrap();
    for (folder, files, extension) in [
        ("processes", processes, "toml"),
        ("templates", templates, "md"),
    ] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(folder).join(format!("{name}.{extension}")), text).unwrap();
        }
    }
}

/// What ingest applies, from the project.
fn ingest_rules(project: &tend_core::Project) -> IngestRules {
    IngestRules {
        new_contact_stage: project.config.first_stage().clone(),
        on_event: project
            .config
            .stages
            .on_event
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// A second server on the database of a [`Server`]; stopped on drop.
pub struct SecondNode {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Dropping it shuts this server down.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    /// Starts at [`monday_morning`] with `config`, processes and templates by name.
    pub async fn start(
        config: &str,
        processes: &[(&str, &str)],
        templates: &[(&str, &str)],
    ) -> Server {
        Server::start_at(config, processes, templates, monday_morning()).await
    }

    /// [`Server::start`] at `at`.
    pub async fn start_at(
        config: &str,
        processes: &[(&str, &str)],
        templates: &[(&str, &str)],
        at: Timestamp,
    ) -> Server {
        Server::start_with_files(config, processes, templates, &[], at).await
    }

    /// [`Server::start_at`] with more files beside `tend.toml` (secrets the config
    /// names), written before the server reads them.
    pub async fn start_with_files(
        config: &str,
        processes: &[(&str, &str)],
        templates: &[(&str, &str)],
        files: &[(&str, &str)],
        at: Timestamp,
    ) -> Server {
        tend_engine::webhook::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("tend.db"))
                .await
                .unwrap(),
        );
        // The project's files on disk too, as `tend serve` has them: the console shows them.
        write_project(dir.path(), config, processes, templates);
        let project = check_project(&ProjectSources {
            config: SourceFile::new("tend.toml", config),
            processes: processes
                .iter()
                .map(|(k, v)| SourceFile::new(format!("processes/{k}.toml"), *v))
                .collect(),
            templates: templates
                .iter()
                .map(|(k, v)| SourceFile::new(format!("templates/{k}.md"), *v))
                .collect(),
        })
        .unwrap();
        // Secrets from files only: the tests share one process environment.
        let provider_keys = ProviderKeys::read(&project.config, dir.path(), |_| None).unwrap();
        let clock = ManualClock::new(at);
        let delivery =
            Arc::new(ChannelDelivery::new(&project.config, dir.path(), None, "t").unwrap());
        let rules = ingest_rules(&project);
        let processes = serde_json::to_value(&project.processes).unwrap();
        let (engine, _) = Engine::start(
            Arc::clone(&store),
            Arc::new(project),
            Arc::new(clock.clone()),
            delivery,
            EngineSettings::default(),
        )
        .await
        .unwrap();
        let engine = Arc::new(engine);
        let mut keys = Vec::new();
        for scope in [TokenScope::Write, TokenScope::Admin, TokenScope::Calendar] {
            let token = tokens::generate_token();
            store
                .create_token(
                    scope.as_str(),
                    scope,
                    &tokens::hash_token(&token),
                    Timestamp::now(),
                )
                .await
                .unwrap();
            keys.push(token);
        }
        let state = AppState::new(store, rules, processes)
            .with_engine(Arc::clone(&engine))
            .with_mail_providers(provider_keys)
            .with_forecast(dir.path().join("tend.db"))
            .with_config_path(dir.path().join("tend.toml"));
        let simulations = state.simulations();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tend_web::serve(listener, state, async {
            let _ = rx.await;
        }));
        Server {
            base,
            write_key: keys[0].clone(),
            admin: keys[1].clone(),
            calendar: keys[2].clone(),
            // Idle connections go before the server's 10-s keep-alive closes them.
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            engine,
            clock,
            dir,
            simulations,
            _shutdown: tx,
        }
    }

    /// Another HTTP server over the same database file, as a second `tend serve` node
    /// (or this one after a restart) has it: its own store connection and its own
    /// in-memory state, nothing shared with this server's but the engine it drives.
    pub async fn second_node(&self) -> SecondNode {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&self.dir.path().join("tend.db"))
                .await
                .unwrap(),
        );
        let project = self.engine.project();
        let provider_keys = ProviderKeys::read(&project.config, self.dir.path(), |_| None).unwrap();
        let state = AppState::new(
            store,
            ingest_rules(project),
            serde_json::to_value(&project.processes).unwrap(),
        )
        .with_engine(Arc::clone(&self.engine))
        .with_mail_providers(provider_keys);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tend_web::serve(listener, state, async {
            let _ = rx.await;
        }));
        SecondNode {
            base,
            _shutdown: tx,
        }
    }

    /// Posts a Segment call with the write key; asserts 200.
    pub async fn post_segment(&self, route: &str, body: Value) {
        let response = self
            .client
            .post(format!("{}/v1/{route}", self.base))
            .basic_auth(&self.write_key, Some(""))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Ann identifies and asks about a kitchen; the engine sends the welcome.
    pub async fn lead_ann(&self) {
        self.post_segment(
            "identify",
            json!({"userId": "u-1", "traits": {"email": "ann@example.com", "name": "Ann Smith"}}),
        )
        .await;
        self.post_segment(
            "track",
            json!({"userId": "u-1", "event": "Inquiry Received"}),
        )
        .await;
        self.engine.run_until_idle().await.unwrap();
    }

    /// Advances the clock `hours` and runs the engine until idle.
    pub async fn after(&self, hours: i64) {
        self.clock.advance(SignedDuration::from_hours(hours));
        self.engine.run_until_idle().await.unwrap();
    }

    /// `GET path` with `token`: the status and the JSON body (null if none).
    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` with the admin token and a JSON `body`: the status and JSON body.
    pub async fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every `.eml` written to the outbox folder.
    pub fn outbox_mails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("outbox")) else {
            return Vec::new();
        };
        entries
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }
}
