//! The owner's console in a real browser (headless Debian Chromium via Playwright),
//! against the real `tend serve` over a SQLite file: logging in and out, a lead from
//! the Segment API on Today and in Contacts, a task's outcome moving the stage,
//! unsubscribe and erase from a contact's page, a list imported through its preview,
//! CSRF, roles, a 375-px phone, and no request leaving the origin. Every page is saved as a screenshot at desktop and phone
//! width under the target folder's `browser-artifacts/` (the test prints where).
//!
//! Needs `chromium` and `pip install playwright`; fails without them in CI (`CI` set),
//! skips loudly elsewhere.

use serde_json::{Value, json};
use std::time::Duration;
use tend_testkit::browser_checks::page_bytes;
use tend_testkit::{Api, Browser, Page, Serve, Studio, wait_for};

const OWNER: &str = "owner@studio.example";
const STAFF: &str = "staff@studio.example";
const PASSWORD: &str = "correct horse battery staple";

/// A business open all week with no quiet hours (CI runs at any hour), whose leads get
/// a call first and an email two days later; a booked call makes a customer.
const CONFIG: &str = r#"database_url = "sqlite://tend.db"
public_url = "https://tend.example.com"

[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 00:00-24:00"

[capacity]
per_week = 50
target_utilization = 0.85
horizon = "2w"

[limits]
quiet_hours = "none"

[stages]
order = ["prospect", "lead", "customer", "loyal", "lapsed"]

[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"

[tasks.outcomes]
booked = "Order Completed"
"no answer" = "Called"

[channels.email]
from = "Studio Rossi <hello@example.com>"
"#;

const PROCESS: &str = r#"name = "New inquiry"
enroll = { stage = "lead" }
exit = { stages = ["customer"] }
max_gap = "10d"
keep_warm = "keep-warm"

[[steps]]
wait = "0d"
task = "Call {{ contact.name }} about the kitchen"
minutes = 15
intent = "offer"

[[steps]]
wait = "2d"
email = "welcome"
intent = "nurture"
"#;

/// Widths people use: a desktop and a 375-px phone.
const VIEWPORTS: [(&str, u32, u32); 2] = [("desktop", 1280, 800), ("phone", 375, 740)];

/// The business, its server and its people.
struct Console {
    /// Keeps the business's folder until the test ends.
    _studio: Studio,
    server: Serve,
    api: Api,
}

impl Console {
    fn start() -> Console {
        let studio = Studio::new(env!("CARGO_BIN_EXE_tend"), CONFIG);
        let processes = studio.dir().join("processes");
        for entry in std::fs::read_dir(&processes).expect("processes/") {
            std::fs::remove_file(entry.expect("an entry").path()).expect("remove a process");
        }
        std::fs::write(processes.join("new-inquiry.toml"), PROCESS).expect("write a process");
        studio.business.configure(CONFIG);
        studio.business.user_add(OWNER, "owner", PASSWORD);
        studio.business.user_add(STAFF, "staff", PASSWORD);
        let server = studio.business.serve();
        let api = studio.api(&server);
        Console {
            _studio: studio,
            server,
            api,
        }
    }

    /// A lead arriving the way a website sends one: identify, then track.
    async fn lead(&self, user: &str, name: &str, email: &str) -> i64 {
        self.api
            .segment(
                "identify",
                &json!({ "userId": user, "traits": { "email": email, "name": name } }),
            )
            .await;
        self.api
            .segment(
                "track",
                &json!({ "userId": user, "event": "Inquiry Received" }),
            )
            .await;
        let found = self.api.get(&format!("/api/contacts?q={email}")).await;
        found["contacts"][0]["id"].as_i64().expect("the lead's id")
    }

    /// The contact's touches as the API shows them.
    async fn touches(&self, id: i64) -> Vec<Value> {
        let detail = self.api.get(&format!("/api/contacts/{id}")).await;
        detail["touches"].as_array().cloned().unwrap_or_default()
    }

    /// A page logged in as `email`, `width` px wide.
    fn logged_in(&self, browser: &Browser, email: &str, width: u32, height: u32) -> Page {
        let page = browser.page(&self.server.base, width, height);
        assert_eq!(page.goto("/"), 200);
        assert_eq!(page.path(), "/login", "without a session / shows the login");
        page.fill("#email", email);
        page.fill("#password", PASSWORD);
        let status = page.submit("#login");
        assert_eq!(
            (status, page.path().as_str()),
            (200, "/today"),
            "logging in lands on Today; the server's log:\n{}",
            self.server.log()
        );
        page
    }
}

/// Everything a page must do for people, at the page's current width.
fn check_page(page: &Page, what: &str) {
    page.assert_no_horizontal_overflow(what);
    page.assert_controls_labelled(what);
    page.assert_focus_visible_on_every_control(what);
    let bytes = page_bytes(page);
    assert!(bytes < 100_000, "{what} weighs {bytes} bytes, over 100 KB");
    page.assert_same_origin_only(what);
}

/// Opens each of `pages` (path, name) at each width, checks it and saves its screenshot
/// as `name-desktop` and `name-phone`.
fn tour(browser: &Browser, console: &Console, pages: &[(&str, &str)]) {
    for (label, width, height) in VIEWPORTS {
        let login = browser.page(&console.server.base, width, height);
        assert_eq!(login.goto("/login"), 200);
        login.screenshot(&format!("login-{label}"));
        check_page(&login, &format!("/login at {width}px"));
        let page = console.logged_in(browser, OWNER, width, height);
        for (path, name) in pages {
            assert_eq!(page.goto(path), 200, "{path}");
            page.screenshot(&format!("{name}-{label}"));
            check_page(&page, &format!("{path} at {width}px"));
        }
    }
}

#[tokio::test]
async fn an_owner_logs_in_sees_a_new_lead_on_today_and_in_contacts_and_logs_out() {
    let Some(browser) = Browser::launch("console_owner") else {
        return;
    };
    let console = Console::start();
    let ann = console.lead("u-ann", "Ann Smith", "ann@example.com").await;

    let page = browser.page(&console.server.base, 1280, 800);
    assert_eq!(page.goto("/login"), 200);
    page.assert_focus_visible("the login page", 4);
    page.fill("#email", OWNER);
    page.fill("#password", "not the password");
    page.submit("#login");
    assert!(
        page.count("[data-testid=login-error]") == 1,
        "a wrong password is refused"
    );

    let page = console.logged_in(&browser, OWNER, 1280, 800);
    let who = page.text("[data-testid=who]").unwrap_or_default();
    assert!(who.contains(OWNER), "{who}");
    // The lead is on Today once the engine has enrolled her (it runs every second).
    wait_for("Ann on Today", Duration::from_secs(20), async || {
        page.goto("/today");
        let today = page.text("main").unwrap_or_default();
        if today.contains("Ann Smith") {
            Ok(())
        } else {
            Err(today)
        }
    })
    .await;
    page.assert_focus_visible("Today", 6);
    page.goto("/contacts");
    page.fill("#q", "ann");
    assert_eq!(page.submit("#search"), 200);
    let rows = page.text("[data-testid=contact-row]").unwrap_or_default();
    assert!(rows.contains("Ann Smith"), "{rows}");
    assert!(rows.contains("lead"), "{rows}");
    page.goto(&format!("/contacts/{ann}"));
    assert_eq!(
        page.text("[data-testid=contact-email]").as_deref(),
        Some("ann@example.com")
    );

    // Her call is the process's first step: on the agenda, counted on its page.
    page.goto("/processes");
    page.goto("/processes/new-inquiry");
    wait_for("the call counted", Duration::from_secs(20), async || {
        page.goto("/processes/new-inquiry");
        let first = page
            .text("[data-testid=step-row] >> nth=0")
            .unwrap_or_default();
        let in_progress = page
            .text("[data-testid=step-row] >> nth=0 >> [data-testid=step-in-progress]")
            .unwrap_or_default();
        (in_progress == "1").then_some(()).ok_or(first)
    })
    .await;

    tour(
        &browser,
        &console,
        &[
            ("/today", "today"),
            ("/contacts", "contacts"),
            (&format!("/contacts/{ann}"), "contact"),
            ("/processes", "processes"),
            ("/processes/new-inquiry", "process"),
            ("/settings", "settings"),
            ("/held/capacity", "held"),
        ],
    );

    page.submit("#logout");
    assert_eq!(page.path(), "/login");
    page.goto("/today");
    assert_eq!(
        page.path(),
        "/login",
        "after logout Today needs a login again"
    );
    page.assert_same_origin_only("the whole visit");
}

#[tokio::test]
async fn tasks_unsubscribe_and_erase_from_the_console_change_what_the_engine_does() {
    let Some(browser) = Browser::launch("console_actions") else {
        return;
    };
    let console = Console::start();
    let ann = console.lead("u-ann", "Ann Smith", "ann@example.com").await;
    let bob = console.lead("u-bob", "Bob Jones", "bob@example.com").await;
    let page = console.logged_in(&browser, OWNER, 375, 740);

    // Ann's call is on the agenda: "booked" makes her a customer.
    let task = wait_for("Ann's call on Today", Duration::from_secs(20), async || {
        page.goto("/today");
        let selector = "[data-testid=task]:has-text('Ann Smith')".to_owned();
        if page.count(&selector) == 1 {
            Ok(selector)
        } else {
            Err(page.text("[data-testid=agenda]").unwrap_or_default())
        }
    })
    .await;
    page.screenshot("today-with-tasks-phone");
    page.assert_no_horizontal_overflow("Today with tasks at 375px");
    assert_eq!(
        page.submit(&format!("{task} [data-testid=complete-booked]")),
        200
    );
    page.goto(&format!("/contacts/{ann}"));
    assert_eq!(
        page.text("[data-testid=contact-stage]").as_deref(),
        Some("customer"),
        "a booked call makes Ann a customer"
    );

    // Bob's call is skipped: his welcome email is next, two days on.
    let bob_task = "[data-testid=task]:has-text('Bob Jones')".to_owned();
    wait_for("Bob's call on Today", Duration::from_secs(20), async || {
        page.goto("/today");
        (page.count(&bob_task) == 1)
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    page.submit(&format!("{bob_task} [data-testid=skip]"));
    let pending = |touches: &[Value]| {
        touches
            .iter()
            .filter(|t| matches!(t["state"].as_str(), Some("pending" | "queued")))
            .count()
    };
    wait_for("Bob's email planned", Duration::from_secs(20), async || {
        let touches = console.touches(bob).await;
        (pending(&touches) == 1)
            .then_some(())
            .ok_or_else(|| format!("{touches:?}"))
    })
    .await;
    page.goto(&format!("/contacts/{bob}"));
    assert_eq!(page.submit("#unsubscribe"), 200);
    let consent = page
        .text("[data-testid=contact-consent]")
        .unwrap_or_default();
    assert!(consent.contains("suppressed"), "{consent}");
    wait_for(
        "Bob's planned email stopped",
        Duration::from_secs(20),
        async || {
            let touches = console.touches(bob).await;
            (pending(&touches) == 0)
                .then_some(())
                .ok_or_else(|| format!("{touches:?}"))
        },
    )
    .await;
    page.screenshot("contact-unsubscribed-phone");

    // Erase asks for the address: a wrong one is refused and Bob stays.
    page.fill("#confirm", "someone@else.example");
    assert_eq!(page.submit("#erase"), 400);
    assert_eq!(page.count("[data-testid=error]"), 1);
    page.goto(&format!("/contacts/{bob}"));
    page.fill("#confirm", "bob@example.com");
    assert_eq!(page.submit("#erase"), 200);
    assert_eq!(page.path(), "/contacts");
    assert_eq!(page.goto(&format!("/contacts/{bob}")), 404);
    let gone = console.api.get("/api/contacts?q=bob").await;
    assert_eq!(gone["contacts"], json!([]), "{gone}");
    page.assert_same_origin_only("the actions");
}

#[tokio::test]
async fn an_owner_runs_a_small_simulation_and_reads_its_report_in_the_page() {
    let Some(browser) = Browser::launch("console_simulate") else {
        return;
    };
    let console = Console::start();
    let page = console.logged_in(&browser, OWNER, 1280, 800);
    assert_eq!(page.goto("/simulate"), 200);
    // A week of the starter scenario, with the business's own settings.
    page.fill("#years", "0.02");
    assert_eq!(page.submit("#run-simulation"), 200);
    let run = page.path();
    assert!(run.starts_with("/simulate/runs/"), "{run}");
    // Nothing but the page's own meta refresh brings the report in.
    page.wait_for_element(
        "[data-testid=sim-report], [data-testid=sim-failed]",
        Duration::from_secs(180),
    );
    assert_eq!(
        page.count("[data-testid=sim-failed]"),
        0,
        "{:?}",
        page.text("main")
    );
    let report = page.text("[data-testid=sim-report]").unwrap_or_default();
    assert!(report.contains("unthrottled"), "{report}");
    assert!(page.count("[data-testid=sim-report] svg[role=img]") >= 8);

    tour(
        &browser,
        &console,
        &[("/simulate", "simulate"), (&run, "simulation-report")],
    );

    let staff = console.logged_in(&browser, STAFF, 375, 740);
    assert_eq!(staff.count("[data-testid=nav-simulate]"), 0);
    assert_eq!(staff.goto("/simulate"), 403);
    assert_eq!(staff.goto(&run), 403);
    page.assert_same_origin_only("the simulation");
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_and_staff_cannot_open_settings() {
    let Some(browser) = Browser::launch("console_guards") else {
        return;
    };
    let console = Console::start();
    let ann = console.lead("u-ann", "Ann Smith", "ann@example.com").await;

    // A form posted without its token (as a forged cross-site form would be).
    let owner = console.logged_in(&browser, OWNER, 1280, 800);
    owner.goto(&format!("/contacts/{ann}"));
    let removed = owner.eval(
        "(() => { const f = document.querySelector('#unsubscribe').form;
          const t = f.querySelector('input[name=csrf]'); t.remove(); return !!t; })()",
    );
    assert_eq!(removed, true, "the unsubscribe form carries a csrf field");
    assert_eq!(owner.submit("#unsubscribe"), 403);
    owner.goto(&format!("/contacts/{ann}"));
    assert_eq!(
        owner.text("[data-testid=contact-consent]").as_deref(),
        Some("subscribed"),
        "nothing changed"
    );

    // Staff: Today and Contacts, no Settings link, and Settings refused.
    let staff = console.logged_in(&browser, STAFF, 375, 740);
    assert_eq!(staff.count("[data-testid=nav-settings]"), 0);
    assert_eq!(staff.count("[data-testid=nav-contacts]"), 1);
    assert_eq!(staff.goto("/settings"), 403);
    assert_eq!(staff.count("[data-testid=nav-processes]"), 0);
    assert_eq!(staff.goto("/processes"), 403);
    assert_eq!(staff.goto("/processes/new-inquiry"), 403);
    staff.screenshot("settings-refused-staff-phone");
    assert_eq!(staff.goto(&format!("/contacts/{ann}")), 200);
    assert_eq!(
        staff.count("[data-testid=erase-form]"),
        0,
        "erase is the owner's"
    );
    staff.assert_same_origin_only("the staff visit");
}

#[tokio::test]
async fn an_owner_imports_a_list_after_seeing_what_it_would_do() {
    let Some(browser) = Browser::launch("console_import") else {
        return;
    };
    let console = Console::start();
    console.lead("u-ann", "Ann Smith", "ann@example.com").await;
    let list = browser.artifacts().join("customers.csv");
    std::fs::write(
        &list,
        "email,name,stage,plan\n\
         ann@example.com,Ann Smith,customer,gold\n\
         bea@example.com,Bea Rossi,lead,\n\
         not-an-address,Nobody,,\n",
    )
    .expect("write the list");

    for (label, width, height) in VIEWPORTS {
        let page = console.logged_in(&browser, OWNER, width, height);
        page.click("[data-testid=nav-import]");
        assert_eq!(page.path(), "/import");
        page.screenshot(&format!("import-{label}"));
        check_page(&page, &format!("/import at {width}px"));
        page.set_file("#file", &list);
        assert_eq!(page.submit("#upload"), 200);
        assert!(page.path().starts_with("/import/"), "{}", page.path());
        let counts = ["new", "updated", "unchanged", "rejected"].map(|kind| {
            page.text(&format!("[data-testid=preview-{kind}]"))
                .unwrap_or_default()
        });
        assert_eq!(counts, ["1 new", "1 updated", "0 unchanged", "1 rejected"]);
        let rejected = page.text("[data-testid=rejected-row]").unwrap_or_default();
        assert!(rejected.starts_with("4: "), "{rejected}");
        page.screenshot(&format!("import-preview-{label}"));
        check_page(&page, &format!("the import preview at {width}px"));
    }
    let nobody = console.api.get("/api/contacts?q=bea").await;
    assert_eq!(nobody["contacts"], json!([]), "a preview writes nothing");

    // The last preview (on the phone) is confirmed, spread over a week.
    let page = console.logged_in(&browser, OWNER, 375, 740);
    page.goto("/import");
    page.set_file("#file", &list);
    page.submit("#upload");
    page.click("#enroll-spread");
    page.fill("#spread-days", "7");
    assert_eq!(page.submit("#confirm-import"), 200);
    let result = page.text("[data-testid=import-result]").unwrap_or_default();
    assert!(result.contains("1 new, 1 updated, 0 unchanged"), "{result}");
    assert!(result.contains("spread over 7 days"), "{result}");
    page.screenshot("import-result-phone");
    check_page(&page, "the import result at 375px");
    let bea = console.api.get("/api/contacts?q=bea").await;
    assert_eq!(bea["contacts"][0]["stage"], "lead", "{bea}");
    let ann = console.api.get("/api/contacts?q=ann").await;
    assert_eq!(ann["contacts"][0]["stage"], "customer", "{ann}");
    page.assert_same_origin_only("the import");
}
