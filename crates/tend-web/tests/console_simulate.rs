//! The console's Simulate page over real HTTP, against a real SQLite file and a
//! running engine: the form's defaults from scenario.toml and tend.toml, its errors
//! naming the field, one run at a time, cancelling, a small run's report in the page
//! with the live database untouched, the run stopped when the server shuts down, and
//! owners only.

use reqwest::StatusCode;
use tend_store::Role;
use tend_testkit::web::Server;
use tend_testkit::web_console::{ConsoleUser, add_user};
use tend_web::console::RunStatus;

const CONFIG: &str = r#"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Fri 09:00-18:00"
[capacity]
per_week = 6
[budget]
emails = { per_day = 40, per_week = 150 }
[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"
[tasks.outcomes]
booked = "Order Completed"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

const TEMPLATE: &str =
    "Subject: Hello {{ contact.name }}\n\nHello, [leave]({{ unsubscribe_url }}).";

const PROCESS: &str = r#"name = "New inquiry"
enroll = { stage = "lead" }
exit = { stages = ["customer"] }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
[[steps]]
wait = "1d"
task = "Call {{ contact.name }}"
minutes = 15
intent = "offer"
[[steps]]
wait = "2d"
email = "offer"
intent = "offer"
"#;

/// Leads and seed differ from the simulator's defaults, so the form shows they came
/// from here; two weeks long.
const SCENARIO: &str = r#"name = "Studio Rossi, two weeks"
[simulation]
days = 14
seed = 3
[population]
leads_per_week = 7
"#;

const OWNER: &str = "owner@studio.example";
const STAFF: &str = "staff@studio.example";

async fn server() -> Server {
    let server = Server::start(
        CONFIG,
        &[("new-inquiry", PROCESS)],
        &[("welcome", TEMPLATE), ("offer", TEMPLATE)],
    )
    .await;
    std::fs::write(server.dir.path().join("scenario.toml"), SCENARIO).unwrap();
    add_user(&server, OWNER, Role::Owner).await;
    add_user(&server, STAFF, Role::Staff).await;
    server
}

/// The `value` of the input `id` on `page`.
fn input_value(page: &str, id: &str) -> String {
    let at = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no input {id}"));
    let tag = &page[at..at + page[at..].find('>').unwrap()];
    let value = &tag[tag.find("value=\"").unwrap_or_else(|| panic!("{tag}")) + 7..];
    value[..value.find('"').unwrap()].to_owned()
}

fn run_path(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/simulate/runs/"), "{to}");
    to
}

const SMALL: [(&str, &str); 6] = [
    ("leads_per_week", "12"),
    ("capacity_per_week", "4"),
    ("budget-emails-per_day", "30"),
    ("budget-emails-per_week", "120"),
    ("years", "0.02"),
    ("seeds", "5"),
];

/// Long enough to be cancelled, or stopped by the server, well before it ends.
fn long_run() -> Vec<(&'static str, &'static str)> {
    let mut long = SMALL.to_vec();
    long[0] = ("leads_per_week", "300");
    long[4] = ("years", "3");
    long
}

#[tokio::test]
async fn the_form_starts_from_the_business_and_a_small_run_shows_its_report_in_the_page() {
    let server = server().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let form = owner.page("/simulate").await;
    assert!(form.contains("data-testid=\"nav-simulate\""));
    assert_eq!(
        input_value(&form, "leads_per_week"),
        "7",
        "from scenario.toml"
    );
    assert_eq!(
        input_value(&form, "capacity_per_week"),
        "6",
        "from tend.toml"
    );
    assert_eq!(input_value(&form, "budget-emails-per_day"), "40");
    assert_eq!(input_value(&form, "budget-emails-per_week"), "150");
    assert_eq!(input_value(&form, "years"), "0.038", "14 days");
    assert_eq!(input_value(&form, "seeds"), "3");

    let started = owner.post("/simulate", &SMALL).await;
    let path = run_path(&started);
    let simulations = server.simulations.clone();
    simulations.wait_until_ended().await;
    assert_eq!(simulations.last_status(), Some(RunStatus::Finished));
    let report = owner.page(&path).await;
    assert!(report.contains("data-testid=\"sim-report\""), "{report}");
    assert!(
        !report.contains("http-equiv=\"refresh\""),
        "a finished run stays put"
    );
    assert!(
        report.contains("12 leads a week, capacity 4 work items a week, emails per day 30, emails per week 120, 0.02 years (7 days), seed 5"),
        "{report}"
    );
    assert!(report.matches("<svg viewBox").count() >= 8, "the charts");
    for strategy in ["background", "campaign", "unthrottled"] {
        assert!(report.contains(strategy), "{strategy}");
    }
    // The form lists the last run.
    assert!(
        owner
            .page("/simulate")
            .await
            .contains("data-testid=\"sim-last\"")
    );

    // Simulated leads never reach the live database.
    let (_, contacts) = server.get("/api/contacts", &server.admin).await;
    assert_eq!(contacts["contacts"], serde_json::json!([]), "{contacts}");
}

#[tokio::test]
async fn a_wrong_field_comes_back_on_the_form_by_name_with_what_was_typed() {
    let server = server().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    owner.page("/simulate").await;
    let mut fields = SMALL.to_vec();
    fields[0] = ("leads_per_week", "-3");
    fields[4] = ("years", "9");
    fields[2] = ("budget-emails-per_day", "lots");
    fields[5] = ("seeds", "4..1");
    let response = owner.post("/simulate", &fields).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("data-testid=\"form-error\""), "{page}");
    for (field, what) in [
        ("leads_per_week", "a number of leads from 0 to 1,000"),
        ("years", "from 0.003 (one day) to 3"),
        ("budget-emails-per_day", "a number from 0 to 1,000,000,000"),
        (
            "seeds",
            "`4..1` is empty: the last seed comes before the first",
        ),
    ] {
        assert!(
            page.contains(&format!("{field}: ")),
            "{field} named: {page}"
        );
        assert!(page.contains(what), "{what}");
        assert!(page.contains(&format!("data-testid=\"error-{field}\"")));
    }
    assert!(!page.contains("data-testid=\"error-capacity_per_week\""));
    assert_eq!(input_value(&page, "years"), "9", "what was typed stays");
    assert_eq!(input_value(&page, "budget-emails-per_day"), "lots");
    assert!(page.contains("aria-invalid=\"true\""));
    assert_eq!(server.simulations.last_status(), None, "nothing started");

    // Several seeds are fine, up to eight years of simulated time in all.
    let mut many = SMALL.to_vec();
    many[4] = ("years", "2");
    many[5] = ("seeds", "1..5");
    let response = owner.post("/simulate", &many).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("years: 5 seeds of 2 years is 10 years to simulate; at most 8"),
        "{page}"
    );
    many[5] = ("seeds", "1..9");
    let page = owner.post("/simulate", &many).await.text().await.unwrap();
    assert!(
        page.contains("seeds: `1..9` has more than 8 seeds"),
        "{page}"
    );
    assert_eq!(server.simulations.last_status(), None, "nothing started");
}

#[tokio::test]
async fn several_seeds_make_one_report_with_their_ranges() {
    let server = server().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    owner.page("/simulate").await;
    let mut fields = SMALL.to_vec();
    fields[5] = ("seeds", "2..3");
    let path = run_path(&owner.post("/simulate", &fields).await);
    server.simulations.wait_until_ended().await;
    assert_eq!(server.simulations.last_status(), Some(RunStatus::Finished));
    let report = owner.page(&path).await;
    assert!(report.contains("2 seeds, 2–3"), "{report}");
    assert!(
        report.contains("seeds 2–3"),
        "the report covers both: {report}"
    );
}

#[tokio::test]
async fn one_run_at_a_time_and_a_run_can_be_cancelled() {
    let server = server().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    owner.page("/simulate").await;
    let path = run_path(&owner.post("/simulate", &long_run()).await);

    let running = owner.page(&path).await;
    assert!(running.contains("data-testid=\"sim-running\""), "{running}");
    assert!(
        running.contains("<meta http-equiv=\"refresh\" content=\"2\">"),
        "the page reloads itself without script"
    );
    assert!(
        running.contains("<progress id=\"sim-progress\" max=\"3285\""),
        "{running}"
    );

    let second = owner.post("/simulate", &SMALL).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let busy = second.text().await.unwrap();
    assert!(busy.contains("data-testid=\"sim-busy\""), "{busy}");
    assert!(busy.contains(&format!("href=\"{path}\"")));

    let cancelled = owner.post(&format!("{path}/cancel"), &[]).await;
    assert_eq!(cancelled.status(), StatusCode::SEE_OTHER);
    server.simulations.wait_until_ended().await;
    assert_eq!(server.simulations.last_status(), Some(RunStatus::Stopped));
    let stopped = owner.page(&path).await;
    assert!(
        stopped.contains(&format!("cancelled by {OWNER}")),
        "{stopped}"
    );

    // Another may start now.
    let next = run_path(&owner.post("/simulate", &SMALL).await);
    assert_ne!(next, path);
    assert_eq!(
        owner.get(&path).await.status(),
        StatusCode::NOT_FOUND,
        "only the last run is kept"
    );
    server.simulations.wait_until_ended().await;
}

#[tokio::test]
async fn a_run_stops_when_the_server_shuts_down() {
    let server = server().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    owner.page("/simulate").await;
    run_path(&owner.post("/simulate", &long_run()).await);
    drop(owner);
    let Server {
        simulations,
        _shutdown,
        ..
    } = server;
    drop(_shutdown);
    simulations.wait_until_ended().await;
    assert_eq!(simulations.last_status(), Some(RunStatus::Stopped));
}

#[tokio::test]
async fn staff_cannot_simulate() {
    let server = server().await;
    let mut staff = ConsoleUser::login(&server, STAFF).await;
    assert!(!staff.page("/today").await.contains("nav-simulate"));
    assert_eq!(staff.get("/simulate").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        staff.post("/simulate", &SMALL).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        staff.get("/simulate/runs/1").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(server.simulations.last_status(), None);
}
