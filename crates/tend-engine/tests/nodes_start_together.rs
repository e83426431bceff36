//! Several `tend serve` nodes started at the same moment on one fresh PostgreSQL
//! database (a deployment rolling out, or a cluster restarting): every node starts, each
//! process is stored once, and the contacts already in a process's stage are enrolled
//! once. Against the server `TEND_TEST_DATABASE_URL` names, else 127.0.0.1:5432; fails,
//! never skips, without one.

mod harness;

use harness::{CONFIG, CUSTOMER, INQUIRY, monday_morning, project};
use serde_json::Map;
use std::sync::Arc;
use tend_core::{Email, StageName};
use tend_engine::{ChannelDelivery, Engine, EngineSettings, ManualClock};
use tend_store::{ImportEnrollment, ImportRow, Store};
use tend_store_postgres::PostgresStore;
use tend_testkit::ScratchDatabase;

const LEADS: usize = 40;

async fn start_node(url: &str, dir: &tempfile::TempDir) -> Result<Engine, String> {
    let store: Arc<dyn Store> =
        Arc::new(PostgresStore::open(url).await.map_err(|e| e.to_string())?);
    let processes = [
        ("inquiry".to_owned(), INQUIRY.to_owned()),
        ("customer".to_owned(), CUSTOMER.to_owned()),
    ];
    let project = project(CONFIG, &processes);
    let delivery =
        Arc::new(ChannelDelivery::new(&project.config, dir.path(), None, "test").unwrap());
    Engine::start(
        store,
        Arc::new(project),
        Arc::new(ManualClock::new(monday_morning())),
        delivery,
        EngineSettings::default(),
    )
    .await
    .map(|(engine, _)| engine)
    .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_store_each_process_once_and_enroll_its_stage_once() {
    // A race shows only when it is lost, so it is run several times.
    for round in 0..5 {
        let database = ScratchDatabase::fresh().await;
        let url = database.url().to_owned();
        {
            // Leads already on file before any process was ever loaded.
            let store = PostgresStore::open(&url).await.unwrap();
            let rows: Vec<ImportRow> = (0..LEADS)
                .map(|i| ImportRow {
                    email: Email::parse(&format!("lead{i}@example.com")).unwrap(),
                    name: Some(format!("Lead {i}")),
                    stage: Some(StageName::new("lead")),
                    timezone: None,
                    attributes: Map::new(),
                })
                .collect();
            store
                .import_contacts(
                    &rows,
                    &StageName::new("prospect"),
                    monday_morning(),
                    ImportEnrollment::Now,
                )
                .await
                .unwrap();
        }
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let (a, b, c) = tokio::join!(
            start_node(&url, &dirs[0]),
            start_node(&url, &dirs[1]),
            start_node(&url, &dirs[2]),
        );
        for (node, started) in [("a", &a), ("b", &b), ("c", &c)] {
            if let Err(error) = started {
                panic!("round {round}: node {node} did not start: {error}");
            }
        }
        assert_eq!(
            database.query_i64("SELECT COUNT(*) FROM processes").await,
            2,
            "round {round}"
        );
        assert_eq!(
            database
                .query_i64(
                    "SELECT COUNT(*) FROM enrollments e JOIN processes p ON p.id = e.process_id \
                     WHERE p.key = 'inquiry'"
                )
                .await,
            LEADS as i64,
            "round {round}: each lead enrolled once"
        );
        assert_eq!(
            database
                .query_i64("SELECT COUNT(*) FROM touches WHERE step = 0")
                .await,
            LEADS as i64,
            "round {round}: one welcome planned per lead"
        );
    }
}
