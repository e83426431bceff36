//! Tend's public pages in a real browser (headless Debian Chromium via Playwright):
//! the unsubscribe page a contact opens from an email, at desktop and phone width, on
//! the real `tend serve` over a SQLite file. Screenshots go to the target folder's
//! `browser-artifacts/` (the test prints where).
//!
//! Needs `chromium` and `pip install playwright`; fails without them in CI (`CI` set),
//! skips loudly elsewhere.

use serde_json::json;
use std::time::Duration;
use tend_testkit::browser_checks::page_bytes;
use tend_testkit::{Browser, Studio, wait_for};

/// Email at any hour (CI runs at any time of day), into the outbox folder.
const CONFIG: &str = r#"database_url = "sqlite://tend.db"
public_url = "https://tend.example.com"

[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 00:00-24:00"

[limits]
quiet_hours = "none"

[stages]
order = ["prospect", "lead", "customer", "loyal", "lapsed"]

[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"

[channels.email]
from = "Studio Rossi <hello@example.com>"
"#;

/// Widths people use: a desktop and a 375-px phone.
const VIEWPORTS: [(&str, u32, u32); 2] = [("desktop", 1280, 800), ("phone", 375, 740)];

/// The unsubscribe link in the first email written to `outbox`, if any.
fn unsubscribe_link(outbox: &std::path::Path) -> Result<String, String> {
    let entries = std::fs::read_dir(outbox).map_err(|e| format!("no outbox yet ({e})"))?;
    for entry in entries {
        let text = std::fs::read_to_string(entry.map_err(|e| e.to_string())?.path())
            .map_err(|e| e.to_string())?;
        if let Some(start) = text.find("https://tend.example.com/unsubscribe/") {
            return Ok(text[start..]
                .chars()
                .take_while(|c| !matches!(c, '>' | ',' | '"' | ')' | '\r' | '\n' | ' '))
                .collect());
        }
    }
    Err("no email with an unsubscribe link yet".into())
}

#[tokio::test]
async fn a_contact_unsubscribes_from_a_phone_and_the_page_fits_works_by_keyboard_and_stays_home() {
    let Some(browser) = Browser::launch("unsubscribe_page") else {
        return;
    };
    let studio = Studio::new(env!("CARGO_BIN_EXE_tend"), CONFIG);
    let server = studio.business.serve();
    let api = studio.api(&server);
    api.segment(
        "identify",
        &json!({ "userId": "u-ann", "traits": { "email": "ann@example.com", "name": "Ann Smith" } }),
    )
    .await;
    api.segment(
        "track",
        &json!({ "userId": "u-ann", "event": "Inquiry Received" }),
    )
    .await;
    let outbox = studio.dir().join("outbox");
    let link = wait_for(
        "the welcome email in the outbox",
        Duration::from_secs(20),
        async || unsubscribe_link(&outbox),
    )
    .await;
    let path = link
        .strip_prefix("https://tend.example.com")
        .expect("a link to public_url")
        .to_owned();

    for (name, width, height) in VIEWPORTS {
        let page = browser.page(&server.base, width, height);
        assert_eq!(page.goto(&path), 200, "{name}");
        let heading = page.text("h1").unwrap_or_default();
        assert!(
            heading.contains("Unsubscribe from Studio Rossi"),
            "{heading}"
        );
        page.screenshot(&format!("unsubscribe-{name}"));
        let what = format!("the unsubscribe page at {width}px");
        page.assert_no_horizontal_overflow(&what);
        page.assert_controls_labelled(&what);
        page.assert_focus_visible(&what, 5);
        let bytes = page_bytes(&page);
        assert!(bytes < 100_000, "{what} weighs {bytes} bytes");
        page.assert_same_origin_only(&what);
    }

    // On the phone, by keyboard alone: Tab to the button, Enter.
    let phone = browser.page(&server.base, 375, 740);
    phone.goto(&path);
    phone.key("Tab");
    assert_eq!(
        phone.eval("document.activeElement.textContent"),
        "Unsubscribe"
    );
    phone.key("Enter");
    let done = wait_for("the confirmation", Duration::from_secs(10), async || {
        let heading = phone.text("h1").unwrap_or_default();
        if heading.contains("You are unsubscribed") {
            Ok(heading)
        } else {
            Err(heading)
        }
    })
    .await;
    assert!(done.contains("unsubscribed"));
    phone.screenshot("unsubscribed-phone");
    phone.assert_no_horizontal_overflow("the confirmation at 375px");
    phone.assert_same_origin_only("the unsubscribe pages");

    let found = api.get("/api/contacts?q=ann").await;
    assert!(
        !found["contacts"][0]["suppressed_at"].is_null(),
        "Ann is not suppressed after unsubscribing: {found}"
    );
}
