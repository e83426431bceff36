//! The console's Import page over real HTTP, against a real SQLite file and a running
//! engine on a manual clock: a preview that writes nothing and lists each kind of row,
//! a confirmation that writes exactly what it showed (once) with the chosen enrollment,
//! a preview gone stale refused, and bad uploads refused with what is wrong.

use reqwest::{Response, StatusCode};
use serde_json::json;
use tend_store::{ContactQuery, Role};
use tend_testkit::web::Server;
use tend_testkit::web_console::{ConsoleUser, add_user};

const CONFIG: &str = r#"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 08:00-20:00"
[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"
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
"#;

const OWNER: &str = "owner@studio.example";
const STAFF: &str = "staff@studio.example";

/// Ann is a lead already and Eve a prospect; the list keeps Ann as she is, moves Eve,
/// adds Bea (a lead) and Cid, and has two bad rows.
const LIST: &str = "email,name,stage,plan\n\
    ann@example.com,Ann Smith,,\n\
    bea@example.com,Bea Rossi,lead,gold\n\
    cid@example.com,Cid,,\n\
    not-an-address,Nobody,,\n\
    eve@example.com,Eve Adams,customer,\n\
    dan@example.com,Dan,wizard,\n";

async fn server() -> Server {
    let server = Server::start(CONFIG, &[("new-inquiry", PROCESS)], &[("welcome", WELCOME)]).await;
    add_user(&server, OWNER, Role::Owner).await;
    add_user(&server, STAFF, Role::Staff).await;
    server.lead_ann().await;
    server
        .post_segment(
            "identify",
            json!({"userId": "u-2", "traits": {"email": "eve@example.com", "name": "Eve"}}),
        )
        .await;
    server
}

/// Every contact as `email stage name`, sorted.
async fn contacts(server: &Server) -> Vec<String> {
    let page = server
        .engine
        .store()
        .list_contacts(&ContactQuery {
            limit: 100,
            ..ContactQuery::default()
        })
        .await
        .unwrap();
    let mut all: Vec<String> = page
        .contacts
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c.email.as_deref().unwrap_or("-"),
                c.stage.as_str(),
                c.name.as_deref().unwrap_or("-")
            )
        })
        .collect();
    all.sort();
    all
}

/// Where a 303 points.
fn location(response: &Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The value of the hidden field `name` on a page.
fn hidden(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no hidden {name} in {page}"))
        + name.len()
        + 15;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// The number in the element `testid` (`<li data-testid=… ><strong>N</strong>`).
fn count(page: &str, testid: &str) -> usize {
    let at = page
        .find(&format!("data-testid=\"{testid}\""))
        .unwrap_or_else(|| panic!("no {testid} in {page}"));
    let rest = &page[at..];
    let start = rest.find("<strong>").unwrap() + 8;
    rest[start..start + rest[start..].find('<').unwrap()]
        .parse()
        .unwrap()
}

async fn error_text(response: Response) -> String {
    response.text().await.unwrap()
}

#[tokio::test]
async fn the_preview_writes_nothing_and_confirming_writes_what_it_showed_once() {
    let server = server().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let form = owner.page("/import").await;
    assert!(form.contains("data-testid=\"upload-form\""));
    assert!(form.contains("enctype=\"multipart/form-data\""));
    let before = contacts(&server).await;
    let mails_before = server.outbox_mails().len();

    let uploaded = owner
        .upload("/import", "list.csv", LIST.as_bytes(), true)
        .await;
    assert_eq!(uploaded.status(), StatusCode::SEE_OTHER);
    let draft = location(&uploaded);
    let preview = owner.page(&draft).await;
    assert_eq!(count(&preview, "preview-new"), 2, "Bea and Cid");
    assert_eq!(count(&preview, "preview-updated"), 1, "Eve");
    assert_eq!(count(&preview, "preview-unchanged"), 1, "Ann");
    assert_eq!(count(&preview, "preview-rejected"), 2);
    assert!(preview.contains("5: "), "{preview}");
    assert!(preview.contains("7: unknown stage `wizard`"), "{preview}");
    assert!(preview.contains("bea@example.com") && preview.contains("eve@example.com"));
    assert!(preview.contains("<strong>lead</strong>, which enrolls them in New inquiry"));
    assert_eq!(contacts(&server).await, before, "a preview writes nothing");

    let all_rejected = owner.get(&format!("{draft}/rejected.txt")).await;
    assert_eq!(all_rejected.status(), StatusCode::OK);
    let text = all_rejected.text().await.unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.starts_with("list.csv:5: "), "{text}");

    let expect = hidden(&preview, "expect");
    let confirm = format!("{draft}/confirm");
    let done = owner
        .post(&confirm, &[("enroll", "none"), ("expect", &expect)])
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done), draft);
    let result = owner.page(&draft).await;
    assert!(result.contains("data-testid=\"import-result\""), "{result}");
    assert!(result.contains("Nobody was enrolled"));
    assert_eq!(
        contacts(&server).await,
        [
            "ann@example.com lead Ann Smith",
            "bea@example.com lead Bea Rossi",
            "cid@example.com prospect Cid",
            "eve@example.com customer Eve Adams",
        ]
    );
    // Confirming again (a second click, a reload) writes nothing more.
    let again = owner
        .post(&confirm, &[("enroll", "now"), ("expect", &expect)])
        .await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    // Bea entered `lead` with enrollment withheld: no welcome goes out to her.
    server.after(1).await;
    assert_eq!(server.outbox_mails().len(), mails_before);
    // Half an hour on, the upload is gone and says so.
    let gone = owner.get(&draft).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert!(error_text(gone).await.contains("upload the file again"));
}

#[tokio::test]
async fn imported_leads_enroll_now_when_chosen() {
    let server = server().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let mails_before = server.outbox_mails().len();
    let list = "email,name,stage\nbea@example.com,Bea,lead\n";
    let draft = location(
        &owner
            .upload("/import", "l.csv", list.as_bytes(), true)
            .await,
    );
    let preview = owner.page(&draft).await;
    let done = owner
        .post(
            &format!("{draft}/confirm"),
            &[("enroll", "now"), ("expect", &hidden(&preview, "expect"))],
        )
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    server.after(1).await;
    let mails = server.outbox_mails();
    assert_eq!(mails.len(), mails_before + 1, "Bea's welcome");
    assert!(mails.iter().any(|m| m.contains("bea@example.com")));
}

#[tokio::test]
async fn a_preview_that_went_stale_is_shown_again_and_nothing_is_written() {
    let server = server().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let list = "email,name\neve@example.com,Eve Adams\n";
    let draft = location(
        &owner
            .upload("/import", "l.csv", list.as_bytes(), true)
            .await,
    );
    let preview = owner.page(&draft).await;
    assert_eq!(count(&preview, "preview-updated"), 1);
    // Meanwhile Eve gives the name the file has: the row would now change nothing.
    server
        .post_segment(
            "identify",
            json!({"userId": "u-2", "traits": {"name": "Eve Adams"}}),
        )
        .await;
    let stale = owner
        .post(
            &format!("{draft}/confirm"),
            &[("enroll", "now"), ("expect", &hidden(&preview, "expect"))],
        )
        .await;
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let shown = stale.text().await.unwrap();
    assert!(shown.contains("data-testid=\"preview-changed\""));
    assert_eq!(count(&shown, "preview-unchanged"), 1);
    // Confirming what is shown now goes through.
    let done = owner
        .post(
            &format!("{draft}/confirm"),
            &[("enroll", "now"), ("expect", &hidden(&shown, "expect"))],
        )
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let result = owner.page(&draft).await;
    assert!(result.contains("<strong data-testid=\"result-unchanged\">1</strong>"));
}

#[tokio::test]
async fn bad_uploads_are_refused_with_what_is_wrong_and_keep_nothing() {
    let server = server().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    owner.page("/import").await;
    let before = contacts(&server).await;

    let too_big = vec![b'a'; 9 * 1024 * 1024];
    let refused = owner.upload("/import", "big.csv", &too_big, true).await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        error_text(refused)
            .await
            .contains("file: larger than 8 MiB")
    );

    let sheet = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00";
    let refused = owner.upload("/import", "list.xlsx", sheet, true).await;
    assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        error_text(refused)
            .await
            .contains("file: `list.xlsx` is not a CSV file")
    );

    let refused = owner
        .upload("/import", "l.csv", b"name,stage\nAnn,lead\n", true)
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        error_text(refused)
            .await
            .contains("file: line 1: missing column `email`")
    );

    let refused = owner.upload("/import", "l.csv", b"", true).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        error_text(refused)
            .await
            .contains("file: choose a CSV file")
    );

    let refused = owner
        .upload("/import", "l.csv", LIST.as_bytes(), false)
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "no CSRF token");

    let plain_form = owner.post("/import", &[("file", "email\na@b.c\n")]).await;
    assert_eq!(plain_form.status(), StatusCode::BAD_REQUEST);

    assert_eq!(contacts(&server).await, before);
}

#[tokio::test]
async fn an_upload_is_its_owners_alone_and_staff_cannot_import() {
    let server = server().await;
    add_user(&server, "second@studio.example", Role::Owner).await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    owner.page("/import").await;
    let draft = location(
        &owner
            .upload("/import", "l.csv", LIST.as_bytes(), true)
            .await,
    );

    let other = ConsoleUser::login(&server, "second@studio.example").await;
    assert_eq!(other.get(&draft).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        other.get("/import/0123456789abcdef").await.status(),
        StatusCode::NOT_FOUND
    );

    let mut staff = ConsoleUser::login(&server, STAFF).await;
    assert_eq!(staff.get("/import").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(staff.get(&draft).await.status(), StatusCode::FORBIDDEN);
    staff.page("/today").await;
    let refused = staff
        .upload("/import", "l.csv", LIST.as_bytes(), true)
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let today = staff.page("/today").await;
    assert!(!today.contains("nav-import"), "staff are not shown Import");
}
