//! A template file and a contact: the template is checked as `tend check` does and
//! rendered; the contact's data, interpolated into a fixed template, must come out as
//! text inside the author's one paragraph and must not break the
//! message's headers. Input: template text, a NUL, then the contact's name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tend_core::template::{RenderContext, Template};
use tend_engine::email::{OutgoingEmail, build_message};
use tend_engine::markdown::{to_html, to_text};

/// Header names a message may carry.
const HEADERS: [&str; 10] = [
    "From:",
    "To:",
    "Subject:",
    "Message-ID:",
    "Date:",
    "List-Unsubscribe:",
    "List-Unsubscribe-Post:",
    "MIME-Version:",
    "Content-Type:",
    "Content-Transfer-Encoding:",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (source, name) = text.split_once('\0').unwrap_or((text, "Ann"));
    let mut context = RenderContext::sample();
    context.contact.name = Some(name.to_owned());
    context.contact.first_name = tend_core::template::first_name_of(name);
    context.contact.attributes = serde_json::json!({ "note": name });
    let context = context.to_value();

    if let Ok(template) = Template::parse("templates/fuzz.md", source)
        && let Ok(rendered) = template.render(&context)
    {
        let _ = to_html(&rendered.body);
        let _ = to_text(&rendered.body);
    }

    let fixed = Template::new(
        "fixed",
        "Hi {{ contact.first_name }} {{ contact.name }}",
        "Dear {{ contact.name }}, *{{ contact.attributes.note }}* [book](https://studio.example/book).",
    );
    let rendered = fixed.render(&context).expect("the fixed template renders");
    let html = to_html(&rendered.body);
    let without_author_link =
        html.replacen("<a href=\"https://studio.example/book\">book</a>", "", 1);
    // One paragraph of text around the author's emphasis and link, nothing else.
    let stripped = without_author_link
        .replacen("<p>", "", 1)
        .replacen("</p>", "", 1)
        .replace("<em>", "")
        .replace("</em>", "");
    assert!(!stripped.contains('<'), "markup from {name:?}: {html}");

    let from = tend_core::config::Mailbox {
        name: Some("Studio Rossi".into()),
        email: tend_core::Email::parse("hello@studio.example").unwrap(),
    };
    let email = OutgoingEmail {
        touch_id: 1,
        to_email: "ann@example.com",
        to_name: Some(name),
        subject: &rendered.subject,
        markdown_body: &rendered.body,
        unsubscribe_url: "https://tend.example.com/unsubscribe/t",
        unsubscribe_mailto: "",
    };
    let message = build_message(&from, &email, "studio.example").expect("a message");
    let formatted = message.formatted();
    let head_end = formatted
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&formatted[..head_end]);
    for line in head.split("\r\n") {
        assert!(
            line.starts_with([' ', '\t']) || HEADERS.iter().any(|h| line.starts_with(h)),
            "header line {line:?} from {name:?}"
        );
    }
});
