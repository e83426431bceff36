//! The console over real HTTP: login and logout, sessions, CSRF refusal, the login rate
//! limit, roles, and each page's content and actions against a real SQLite store and a
//! running engine on a manual clock.

use reqwest::StatusCode;
use serde_json::json;
use tend_store::Role;
use tend_testkit::web::Server;
use tend_testkit::web_console::{
    ConsoleUser, PASSWORD, add_user, login_attempt, login_attempt_at, sets_cookie,
};

const CONFIG: &str = r#"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 08:00-20:00"
[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"
[tasks.outcomes]
booked = "Order Completed"
replied = "Replied"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
[channels.webhook]
secret = "whsec_dG9wIHNlY3JldCB0b3Agc2VjcmV0"
"#;

const WELCOME: &str = "Subject: Welcome {{ contact.name }}\n\nHello {{ contact.name }}, [leave]({{ unsubscribe_url }}).";

const PROCESS: &str = r#"
name = "New inquiry"
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

async fn ann_id(server: &Server) -> i64 {
    let (_, body) = server.get("/api/contacts?q=ann", &server.admin).await;
    body["contacts"][0]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn root_leads_to_login_then_today_and_logout_ends_the_session() {
    let server = server().await;
    let anonymous = server
        .client
        .get(format!("{}/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers()["location"], "/login");
    for path in ["/today", "/contacts", "/settings", "/contacts/1"] {
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["location"], "/login", "{path}");
    }

    let wrong = login_attempt(&server, OWNER, "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(!sets_cookie(&wrong, "tend_session"));
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Wrong email or password")
    );

    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let root = owner.get("/").await;
    assert_eq!(root.headers()["location"], "/today");
    let today = owner.page("/today").await;
    assert!(today.contains("data-testid=\"agenda\""));
    assert!(today.contains(OWNER));
    assert!(today.contains("nav-settings"));

    let out = owner.post("/logout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(out.headers()["location"], "/login");
    let after = owner.get("/today").await;
    assert_eq!(
        after.headers()["location"],
        "/login",
        "the session ended on the server"
    );
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let server = server().await;
    server.lead_ann().await;
    let id = ann_id(&server).await;
    let owner = ConsoleUser::login(&server, OWNER).await;
    for token in [
        "",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let response = server
            .client
            .post(format!("{}/contacts/{id}/unsubscribe", server.base))
            .header("cookie", owner.cookie())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([("csrf", token)]).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    let bare = server
        .client
        .post(format!("{}/logout", server.base))
        .header("cookie", owner.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    let contact = server
        .engine
        .store()
        .contact(tend_core::ContactId(id))
        .await
        .unwrap()
        .unwrap();
    assert!(contact.suppressed_at.is_none(), "nothing was done");

    // The login form's token must match its cookie.
    let response = server
        .client
        .post(format!("{}/login", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([("csrf", "x"), ("email", OWNER), ("password", PASSWORD)])
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn failed_logins_are_limited_per_account() {
    let server = server().await;
    for _ in 0..5 {
        let response = login_attempt(&server, STAFF, "guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = login_attempt(&server, STAFF, PASSWORD).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another account from the same address still logs in.
    ConsoleUser::login(&server, OWNER).await;
}

#[tokio::test]
async fn the_login_limit_is_shared_by_every_node_and_right_passwords_do_not_count() {
    let server = server().await;
    // Logging in rightly, however often, never locks anyone out.
    for _ in 0..8 {
        let response = login_attempt(&server, STAFF, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    // Another node on the same database (or this one after a restart) counts the same
    // failures: five guesses spread over both exhaust the account on both.
    let other = server.second_node().await;
    for (i, base) in [&server.base, &other.base]
        .into_iter()
        .cycle()
        .take(5)
        .enumerate()
    {
        let response = login_attempt_at(&server.client, base, STAFF, "guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    for base in [&server.base, &other.base] {
        let blocked = login_attempt_at(&server.client, base, STAFF, PASSWORD).await;
        assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS, "{base}");
    }
}

// Several worker threads, so the guesses are checked at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_parallel_guesses_gets_no_more_tries_than_the_limit() {
    let server = server().await;
    let guesses: Vec<_> = (0..12)
        .map(|_| {
            let (client, base) = (server.client.clone(), server.base.clone());
            tokio::spawn(async move {
                login_attempt_at(&client, &base, STAFF, "guess")
                    .await
                    .status()
            })
        })
        .collect();
    let mut checked = 0;
    for guess in guesses {
        let status = guess.await.unwrap();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
            "{status}"
        );
        checked += usize::from(status == StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        checked, 5,
        "the password is checked five times, not once per guess"
    );
}

#[tokio::test]
async fn staff_see_today_and_contacts_but_not_settings_nor_erase() {
    let server = server().await;
    server.lead_ann().await;
    let id = ann_id(&server).await;
    let mut staff = ConsoleUser::login(&server, STAFF).await;
    let today = staff.page("/today").await;
    assert!(!today.contains("nav-settings"));
    let contact = staff.page(&format!("/contacts/{id}")).await;
    assert!(!contact.contains("erase-form"));
    assert_eq!(staff.get("/settings").await.status(), StatusCode::FORBIDDEN);
    let erase = staff
        .post(
            &format!("/contacts/{id}/erase"),
            &[("confirm", "ann@example.com")],
        )
        .await;
    assert_eq!(erase.status(), StatusCode::FORBIDDEN);
    let token = staff
        .post("/settings/tokens", &[("name", "x"), ("scope", "admin")])
        .await;
    assert_eq!(token.status(), StatusCode::FORBIDDEN);
    assert!(
        server
            .engine
            .store()
            .contact(tend_core::ContactId(id))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_lead_shows_on_today_and_in_contacts_and_its_task_completes_with_an_outcome() {
    let server = server().await;
    server.lead_ann().await;
    let id = ann_id(&server).await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;

    // Before it is due, the task is planned with its rendered title.
    let today = owner.page("/today").await;
    assert!(
        today.contains("Call Ann Smith about the kitchen"),
        "{today}"
    );
    assert!(today.contains("data-testid=\"task-planned\""));

    let contacts = owner.page("/contacts").await;
    assert!(contacts.contains("Ann Smith") && contacts.contains("ann@example.com"));
    assert!(owner.page("/contacts?q=ANN").await.contains("Ann Smith"));
    assert!(
        owner
            .page("/contacts?q=nobody")
            .await
            .contains("contacts-empty")
    );
    assert!(
        owner
            .page("/contacts?stage=lead")
            .await
            .contains("Ann Smith")
    );
    assert!(
        owner
            .page("/contacts?stage=customer")
            .await
            .contains("contacts-empty")
    );
    assert_eq!(
        owner.get("/contacts?stage=nope").await.status(),
        StatusCode::BAD_REQUEST
    );

    server.after(49).await;
    let today = owner.page("/today").await;
    let task = server
        .engine
        .store()
        .touches_of(tend_core::ContactId(id), 10)
        .await
        .unwrap();
    let task = task.iter().find(|t| t.channel == "task").unwrap();
    assert!(
        today.contains(&format!("id=\"task-{}\"", task.id.0)),
        "{today}"
    );
    assert!(today.contains("data-testid=\"complete-booked\""));

    let done = owner
        .post(
            &format!("/tasks/{}/complete", task.id.0),
            &[("outcome", "booked")],
        )
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    server.engine.run_until_idle().await.unwrap();
    let contact = owner.page(&format!("/contacts/{id}")).await;
    assert!(
        contact.contains("data-testid=\"contact-stage\">customer<"),
        "{contact}"
    );
    assert!(contact.contains("event: Order Completed"));
}

#[tokio::test]
async fn contact_actions_land_in_the_timeline_and_erase_needs_the_address() {
    let server = server().await;
    server.lead_ann().await;
    let id = ann_id(&server).await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let page = owner.page(&format!("/contacts/{id}")).await;
    assert!(page.contains("event: Inquiry Received"));
    assert!(page.contains("email new-inquiry (step 1)"), "{page}");

    let enrollment = server
        .engine
        .store()
        .enrollments_of(tend_core::ContactId(id))
        .await
        .unwrap()[0]
        .id;
    let paused = owner
        .post(
            &format!("/contacts/{id}/enrollments/{enrollment}/pause"),
            &[],
        )
        .await;
    assert_eq!(paused.status(), StatusCode::SEE_OTHER);
    // Paused: the task due in two days does not come.
    server.after(72).await;
    assert!(
        server
            .engine
            .store()
            .tasks(jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    let page = owner.page(&format!("/contacts/{id}")).await;
    assert!(
        page.contains("paused new-inquiry by owner@studio.example"),
        "{page}"
    );
    let resumed = owner
        .post(
            &format!("/contacts/{id}/enrollments/{enrollment}/resume"),
            &[],
        )
        .await;
    assert_eq!(resumed.status(), StatusCode::SEE_OTHER);
    server.engine.run_until_idle().await.unwrap();
    assert_eq!(
        server
            .engine
            .store()
            .tasks(jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::MAX)
            .await
            .unwrap()
            .len(),
        1
    );

    let page = owner.page(&format!("/contacts/{id}")).await;
    let staged = owner
        .post(&format!("/contacts/{id}/stage"), &[("stage", "loyal")])
        .await;
    assert_eq!(staged.status(), StatusCode::SEE_OTHER);
    assert!(page.contains("resumed new-inquiry"));
    let unsubscribed = owner
        .post(&format!("/contacts/{id}/unsubscribe"), &[])
        .await;
    assert_eq!(unsubscribed.status(), StatusCode::SEE_OTHER);
    let page = owner.page(&format!("/contacts/{id}")).await;
    assert!(
        page.contains("stage lead → loyal by owner@studio.example"),
        "{page}"
    );
    assert!(page.contains("unsubscribed by owner@studio.example"));
    assert!(page.contains("suppressed since"));
    assert!(
        server
            .engine
            .store()
            .is_email_suppressed(&tend_core::Email::parse("ann@example.com").unwrap())
            .await
            .unwrap()
    );

    let wrong = owner
        .post(
            &format!("/contacts/{id}/erase"),
            &[("confirm", "ann@example")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(
        server
            .engine
            .store()
            .contact(tend_core::ContactId(id))
            .await
            .unwrap()
            .is_some()
    );
    let erased = owner
        .post(
            &format!("/contacts/{id}/erase"),
            &[("confirm", "ann@example.com")],
        )
        .await;
    assert_eq!(erased.status(), StatusCode::SEE_OTHER);
    assert!(
        server
            .engine
            .store()
            .contact(tend_core::ContactId(id))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        owner.get(&format!("/contacts/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn settings_create_list_and_revoke_tokens_set_open_work_and_mask_secrets() {
    let server = server().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let settings = owner.page("/settings").await;
    assert!(settings.contains(OWNER) && settings.contains(STAFF));
    assert!(!settings.contains("whsec_"), "the webhook secret is masked");

    let created = owner
        .post(
            "/settings/tokens",
            &[("name", "zapier"), ("scope", "write")],
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let page = created.text().await.unwrap();
    let at = page.find("data-testid=\"new-token\">").unwrap() + 24;
    let token = &page[at..page[at..].find('<').unwrap() + at];
    server
        .client
        .post(format!("{}/v1/identify", server.base))
        .basic_auth(token, Some(""))
        .json(&json!({"userId": "u-9", "traits": {"email": "bo@example.com"}}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let listed = owner.page("/settings").await;
    assert!(listed.contains("data-testid=\"revoke-zapier\""));
    assert!(!listed.contains(token), "a token is shown only once");

    let revoked = owner
        .post("/settings/tokens/revoke", &[("name", "zapier")])
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let refused = server
        .client
        .post(format!("{}/v1/identify", server.base))
        .basic_auth(token, Some(""))
        .json(&json!({"userId": "u-9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let set = owner
        .post("/settings/capacity", &[("open_work", "3")])
        .await;
    assert_eq!(set.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.engine.pace().await.unwrap().capacity.open_work, 3.0);
    let bad = owner
        .post("/settings/capacity", &[("open_work", "-1")])
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_stylesheet_is_cached_under_its_hash_and_held_lists_answer() {
    let server = server().await;
    server.lead_ann().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let today = owner.page("/today").await;
    let at = today.find("href=\"/static/").unwrap() + 6;
    let path = &today[at..today[at..].find('"').unwrap() + at];
    let css = server
        .client
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let stale = server
        .client
        .get(format!("{}/static/console-000000000000.css", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
    for reason in ["capacity", "quiet_hours"] {
        owner.page(&format!("/held/{reason}")).await;
    }
}

#[tokio::test]
async fn owners_see_deliveries_and_reports_with_charts_and_staff_do_not() {
    let server = server().await;
    server.lead_ann().await;
    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let deliveries = owner.page("/deliveries").await;
    assert!(
        deliveries.contains("data-testid=\"delivery-row\""),
        "{deliveries}"
    );
    assert!(deliveries.contains("ann@example.com"));
    assert!(
        owner
            .page("/deliveries?status=sent")
            .await
            .contains("ann@example.com")
    );
    assert!(
        owner
            .page("/deliveries?status=failed")
            .await
            .contains("deliveries-empty")
    );
    assert_eq!(
        owner.get("/deliveries?status=lost").await.status(),
        StatusCode::BAD_REQUEST
    );
    let reports = owner.page("/reports").await;
    for section in ["report-funnel", "report-conversion", "report-pace"] {
        assert!(reports.contains(section), "{section}");
    }
    assert!(reports.matches("<svg").count() >= 4);
    let staff = ConsoleUser::login(&server, STAFF).await;
    for path in ["/deliveries", "/reports"] {
        assert_eq!(
            staff.get(path).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
}
