//! The console's Processes pages over real HTTP, against a real SQLite file and a
//! running engine on a manual clock: each step's counts as a lead goes through, the
//! learned response rate and the conversion a booked call brings, the process file with
//! `tend check`'s diagnostics once it is broken on disk, and owners only.

use reqwest::StatusCode;
use tend_store::Role;
use tend_testkit::web::Server;
use tend_testkit::web_console::{ConsoleUser, add_user};

const CONFIG: &str = r#"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 08:00-20:00"
[capacity]
offer_probability = 0.2
[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"
[tasks.outcomes]
booked = "Order Completed"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

const WELCOME: &str = "Subject: Welcome {{ contact.name }}\n\nHello {{ contact.name }}, [leave]({{ unsubscribe_url }}).";

const PROCESS: &str = r#"name = "New inquiry"
enroll = { stage = "lead" }
exit = { stages = ["customer"] }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
[[steps]]
wait = "2d"
task = "Call {{ contact.name }} about the kitchen"
minutes = 20
intent = "offer"
[[steps]]
wait = "3d"
email = "welcome"
intent = "nurture"
"#;

const OWNER: &str = "owner@studio.example";
const STAFF: &str = "staff@studio.example";

async fn server() -> Server {
    let server = Server::start(CONFIG, &[("new-inquiry", PROCESS)], &[("welcome", WELCOME)]).await;
    add_user(&server, OWNER, Role::Owner).await;
    add_user(&server, STAFF, Role::Staff).await;
    server
}

/// The text of the cell `testid` in the `row`-th step row (0-based), tags removed.
fn step_cell(page: &str, row: usize, testid: &str) -> String {
    let start = page
        .match_indices("data-testid=\"step-row\"")
        .nth(row)
        .unwrap_or_else(|| panic!("no step row {row} in {page}"))
        .0;
    let rest = &page[start..];
    let rest = &rest[..rest.find("</tr>").unwrap()];
    let at = rest
        .find(&format!("data-testid=\"{testid}\">"))
        .unwrap_or_else(|| panic!("no {testid} in {rest}"));
    let cell = &rest[at..];
    let cell = &cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()];
    let mut text = String::new();
    let mut in_tag = false;
    for c in cell.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.trim().to_owned()
}

#[tokio::test]
async fn each_step_shows_its_counts_as_a_lead_goes_through_and_a_booked_call_converts() {
    let server = server().await;
    server.lead_ann().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;

    let today = owner.page("/today").await;
    assert!(today.contains("data-testid=\"nav-processes\""));
    let list = owner.page("/processes").await;
    assert!(list.contains("href=\"/processes/new-inquiry\""), "{list}");
    assert!(
        list.contains("data-testid=\"process-enrolled\">1<"),
        "{list}"
    );
    assert!(list.contains("processes/new-inquiry.toml"));
    assert!(list.contains("data-testid=\"duplicate-help\""));

    // The welcome went out; the call waits two days.
    let page = owner.page("/processes/new-inquiry").await;
    assert!(page.contains("data-testid=\"process-name\">New inquiry<"));
    assert_eq!(page.matches("data-testid=\"step-row\"").count(), 3);
    assert_eq!(step_cell(&page, 0, "step-sent"), "1");
    assert_eq!(step_cell(&page, 1, "step-pending"), "1");
    assert_eq!(step_cell(&page, 1, "step-sent"), "0");
    assert_eq!(
        step_cell(&page, 1, "step-response"),
        "0 of 0 answered; 20% (prior 20%)"
    );
    assert_eq!(step_cell(&page, 0, "step-response"), "— (nurture)");
    assert_eq!(step_cell(&page, 2, "step-pending"), "0");
    assert!(page.contains("data-testid=\"check-clean\""), "{page}");
    assert!(
        page.contains("max_gap = &quot;10d&quot;"),
        "the file's text"
    );
    assert!(page.contains("cp processes/new-inquiry.toml"));

    // The call opens on the agenda, is booked, and Ann becomes a customer.
    server.after(49).await;
    let page = owner.page("/processes/new-inquiry").await;
    assert_eq!(step_cell(&page, 1, "step-in-progress"), "1");
    assert_eq!(step_cell(&page, 1, "step-pending"), "0");
    let (_, found) = server.get("/api/contacts?q=ann", &server.admin).await;
    let id = tend_core::ContactId(found["contacts"][0]["id"].as_i64().unwrap());
    let touches = server.engine.store().touches_of(id, 10).await.unwrap();
    let task = touches.iter().find(|t| t.channel == "task").unwrap();
    let done = owner
        .post(
            &format!("/tasks/{}/complete", task.id.0),
            &[("outcome", "booked")],
        )
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    server.engine.run_until_idle().await.unwrap();
    let page = owner.page("/processes/new-inquiry").await;
    assert_eq!(step_cell(&page, 1, "step-sent"), "1", "the call is done");
    assert_eq!(step_cell(&page, 1, "step-conversions"), "1");
    assert_eq!(step_cell(&page, 0, "step-conversions"), "0");
    // One offer answered: the learned rate moves from the prior, (2 + 1) / (10 + 1).
    assert_eq!(
        step_cell(&page, 1, "step-response"),
        "1 of 1 answered; 27.3% (prior 20%)"
    );
    // Ann left the process as a customer: nothing is planned at the last step.
    assert_eq!(step_cell(&page, 2, "step-pending"), "0");
    let list = owner.page("/processes").await;
    assert!(
        list.contains("data-testid=\"process-enrolled\">0<"),
        "{list}"
    );
}

#[tokio::test]
async fn a_process_file_broken_on_disk_shows_its_diagnostics_while_the_loaded_one_runs() {
    let server = server().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let file = server.dir.path().join("processes/new-inquiry.toml");
    std::fs::write(
        &file,
        PROCESS.replace("max_gap = \"10d\"", "max_gap = \"ten days\""),
    )
    .unwrap();
    std::fs::write(
        server.dir.path().join("processes/spring.toml"),
        PROCESS.replace("New inquiry", "Spring"),
    )
    .unwrap();

    let page = owner.page("/processes/new-inquiry").await;
    assert!(page.contains("data-testid=\"diagnostics\""), "{page}");
    let diagnostic = &page[page.find("data-testid=\"diagnostic\"").unwrap()..];
    let diagnostic = &diagnostic[..diagnostic.find("</li>").unwrap()];
    assert!(
        diagnostic.contains("processes/new-inquiry.toml:4:11: "),
        "a diagnostic names path:line:col: {diagnostic}"
    );
    assert!(
        page.contains("max_gap = &quot;ten days&quot;"),
        "the file as it is now"
    );
    // The engine still runs what it loaded: the steps are there.
    assert_eq!(page.matches("data-testid=\"step-row\"").count(), 3);

    let list = owner.page("/processes").await;
    assert!(list.contains("1 in the file now"), "{list}");
    assert!(list.contains("data-testid=\"not-loaded\""), "{list}");
    assert!(list.contains("processes/spring.toml"));

    std::fs::remove_file(&file).unwrap();
    let page = owner.page("/processes/new-inquiry").await;
    assert!(page.contains("is no longer on disk"), "{page}");

    assert_eq!(
        owner.get("/processes/no-such-process").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn staff_cannot_open_processes() {
    let server = server().await;
    let mut staff = ConsoleUser::login(&server, STAFF).await;
    let today = staff.page("/today").await;
    assert!(!today.contains("nav-processes"), "no link for staff");
    for path in ["/processes", "/processes/new-inquiry"] {
        let response = staff.get(path).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("data-testid=\"error\"")
        );
    }
    let anonymous = server
        .client
        .get(format!("{}/processes", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.headers()["location"], "/login");
}
