use super::*;
use tend_core::Email;

fn from() -> Mailbox {
    Mailbox {
        name: Some("Studio Rossi".into()),
        email: Email::parse("hello@studio.example").unwrap(),
    }
}

fn outgoing<'a>(to: &'a str, body: &'a str) -> OutgoingEmail<'a> {
    OutgoingEmail {
        touch_id: 42,
        to_email: to,
        to_name: Some("Ada"),
        subject: "Hello",
        markdown_body: body,
        unsubscribe_url: "https://tend.example/unsubscribe/tok",
        unsubscribe_mailto: "mailto:unsubscribe@studio.example?subject=unsubscribe",
        envelope_from: None,
    }
}

/// The message as text, with folded header lines joined back.
fn formatted(message: &Message) -> String {
    String::from_utf8(message.formatted())
        .unwrap()
        .replace("\r\n ", " ")
}

#[test]
fn message_id_is_stable_per_touch() {
    assert_eq!(
        message_id(42, "studio.example"),
        "<tend.touch.42@studio.example>"
    );
    assert_eq!(message_id(42, "d"), message_id(42, "d"));
    assert_ne!(message_id(42, "d"), message_id(43, "d"));
}

#[test]
fn message_has_headers_and_both_parts() {
    let message = build_message(
        &from(),
        &outgoing("ada@example.com", "Hi **Ada**"),
        "studio.example",
    )
    .unwrap();
    let text = formatted(&message);
    assert!(
        text.contains("Message-ID: <tend.touch.42@studio.example>"),
        "{text}"
    );
    assert!(
            text.contains("List-Unsubscribe: <https://tend.example/unsubscribe/tok>, <mailto:unsubscribe@studio.example?subject=unsubscribe>"),
            "{text}"
        );
    assert!(
        text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{text}"
    );
    assert!(text.contains("Date: "), "{text}");
    assert!(text.contains("multipart/alternative"), "{text}");
    assert!(text.contains("text/plain"), "{text}");
    assert!(text.contains("text/html"), "{text}");
    assert!(text.contains("<strong>Ada</strong>"), "{text}");
}

#[test]
fn bad_recipient_is_fatal_and_named() {
    let error = build_message(&from(), &outgoing("not-an-address", "x"), "d.example").unwrap_err();
    match error {
        SendError::Fatal(message) => assert!(message.contains("not-an-address"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_injection_through_subject_or_name_is_neutralized() {
    let mut email = outgoing("ada@example.com", "x");
    email.subject = "Hi\r\nBcc: victim@example.com";
    email.to_name = Some("Ada\r\nBcc: victim@example.com");
    let text = formatted(&build_message(&from(), &email, "d.example").unwrap());
    assert!(!text.contains("\r\nBcc:"), "{text}");
}

#[test]
fn unsafe_unsubscribe_links_are_fatal() {
    for url in [
        "javascript:x",
        "https://a.example/x>, <https://evil",
        "https://a\r\nX: y",
    ] {
        let mut email = outgoing("ada@example.com", "x");
        email.unsubscribe_url = url;
        assert!(
            matches!(
                build_message(&from(), &email, "d").unwrap_err(),
                SendError::Fatal(_)
            ),
            "{url}"
        );
    }
    let mut email = outgoing("ada@example.com", "x");
    email.unsubscribe_mailto = "https://not-mailto";
    assert!(matches!(
        build_message(&from(), &email, "d").unwrap_err(),
        SendError::Fatal(_)
    ));
}

#[test]
fn plain_http_unsubscribe_omits_one_click() {
    let mut email = outgoing("ada@example.com", "x");
    email.unsubscribe_url = "http://localhost:8080/unsubscribe/tok";
    email.unsubscribe_mailto = "";
    let text = formatted(&build_message(&from(), &email, "d").unwrap());
    assert!(
        text.contains("List-Unsubscribe: <http://localhost:8080/unsubscribe/tok>\r\n"),
        "{text}"
    );
    assert!(!text.contains("List-Unsubscribe-Post"), "{text}");
}

#[test]
fn html_document_escapes_subject_and_link() {
    let html = html_document("<b>", "<p>x</p>\n", Some("https://a.example/?a=1&b=\"2\""));
    assert!(html.contains("<title>&lt;b&gt;</title>"), "{html}");
    assert!(
        html.contains("href=\"https://a.example/?a=1&amp;b=&quot;2&quot;\""),
        "{html}"
    );
}

#[test]
fn env_smtp_url_wins() {
    assert_eq!(
        smtp_url_from(Some("smtp://a"), Some("smtp://b".into())).as_deref(),
        Some("smtp://b")
    );
    assert_eq!(
        smtp_url_from(Some("smtp://a"), None).as_deref(),
        Some("smtp://a")
    );
    assert_eq!(
        smtp_url_from(Some("smtp://a"), Some("  ".into())).as_deref(),
        Some("smtp://a")
    );
    assert_eq!(smtp_url_from(None, None), None);
    assert_eq!(smtp_url_from(Some(""), None), None);
}

fn config(smtp_url: Option<&str>) -> EmailConfig {
    EmailConfig {
        from: from(),
        smtp_url: smtp_url.map(str::to_owned),
        outbox_dir: PathBuf::from("/tmp/outbox"),
        message_id_domain: "studio.example".into(),
        pool_size: 4,
        dkim: None,
    }
}

#[test]
fn describe_hides_credentials() {
    let sender = EmailSender::new(config(Some(
        "smtp://user:s3cret@mail.example:2525?tls=required",
    )))
    .unwrap();
    assert_eq!(sender.describe(), "smtp://mail.example:2525?tls=required");
    assert!(!format!("{sender:?}").contains("s3cret"));
    assert!(!format!("{:?}", config(Some("smtps://u:s3cret@mail.example"))).contains("s3cret"));
    let outbox = EmailSender::new(config(None)).unwrap();
    assert_eq!(outbox.describe(), "outbox /tmp/outbox");
}

#[test]
fn every_smtp_url_form_builds() {
    for url in [
        "smtp://127.0.0.1:2525",
        "smtp://mail.example?tls=required",
        "smtps://u:p%40ss@mail.example:465",
    ] {
        EmailSender::new(config(Some(url))).unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[test]
fn smtp_urls_are_read_as_lettre_reads_them() {
    let read = |url: &str| match EmailSender::new(config(Some(url))).unwrap().transport {
        Transport::Smtp(smtp) => smtp.pool.endpoint().summary(),
        Transport::Outbox(_) => panic!("{url}: no SMTP"),
    };
    let tls = TlsMode::Implicit;
    assert_eq!(
        read("smtp://mail.example"),
        (
            "mail.example".into(),
            25,
            TlsMode::None,
            // lettre's default EHLO name: the address literal for 127.0.0.1.
            "[127.0.0.1]".into(),
            false
        )
    );
    assert_eq!(read("smtp://u:p@mail.example?tls=required").1, 587);
    assert_eq!(
        read("smtp://mail.example?tls=opportunistic").2,
        TlsMode::Opportunistic
    );
    assert_eq!(
        read("smtps://u:p%40ss@mail.example/client.example"),
        (
            "mail.example".into(),
            465,
            tls,
            "client.example".into(),
            true
        )
    );
    // A user without a password does not authenticate, as with lettre.
    assert!(!read("smtp://u@mail.example:2525").4);
    assert_eq!(read("smtp://[::1]:2525").0, "::1");
}

#[test]
fn malformed_smtp_urls_are_rejected_without_printing_the_password() {
    for url in [
        "http://user:s3cret@mail.example",
        "smtp://user:s3cret@",
        "smtp://user:s3cret@mail.example?tls=sometimes",
        "smtp://:s3cret@mail.example",
        "user:s3cret@mail.example",
        "smtp//user:s3cret@mail.example",
    ] {
        let error = EmailSender::new(config(Some(url))).unwrap_err();
        assert!(
            matches!(error, EmailSetupError::InvalidSmtpUrl(_)),
            "{url}: {error:?}"
        );
        assert!(!error.to_string().contains("s3cret"), "{url}: {error}");
        assert!(!format!("{error:?}").contains("s3cret"), "{url}: {error:?}");
    }
}

#[test]
fn bad_message_id_domain_is_rejected() {
    let mut config = config(None);
    config.message_id_domain = "bad domain>".into();
    assert!(matches!(
        EmailSender::new(config).unwrap_err(),
        EmailSetupError::InvalidMessageIdDomain(_)
    ));
}

#[test]
fn transient_replies_are_retryable() {
    assert!(classify_reply(421, "4.3.2 shutting down").is_retryable());
    assert!(classify_reply(451, "4.3.0 try again later").is_retryable());
    assert!(classify_reply(452, "4.2.2 mailbox full").is_retryable());
}

#[test]
fn recipient_rejections_are_bounces() {
    for (code, reply) in [
        (
            550,
            "5.1.1 <bob@example.com>: Recipient address rejected: User unknown",
        ),
        (550, "Requested action not taken: mailbox unavailable"),
        (551, "User not local"),
        (553, "Requested action not taken: mailbox name not allowed"),
        (
            550,
            "5.2.1 The email account that you tried to reach is disabled",
        ),
        (556, "5.1.10 Recipient address has null MX"),
    ] {
        assert!(
            matches!(classify_reply(code, reply), SendError::Bounced(_)),
            "{code} {reply}"
        );
    }
}

#[test]
fn other_permanent_replies_are_fatal() {
    for (code, reply) in [
        (554, "5.7.1 Message rejected as spam"),
        (550, "5.7.1 Relaying denied"),
        (550, "Relaying denied"),
        (553, "5.1.8 Sender address rejected: Domain not found"),
        (553, "sender address rejected"),
        (552, "5.3.4 Message size exceeds fixed limit"),
        (552, "5.2.2 Mailbox full"),
        (554, "Transaction failed"),
        (500, "5.5.1 Syntax error"),
    ] {
        assert!(
            matches!(classify_reply(code, reply), SendError::Fatal(_)),
            "{code} {reply}"
        );
    }
}

#[test]
fn authentication_failures_wait_for_a_fix() {
    assert!(classify_reply(535, "5.7.8 Authentication credentials invalid").is_retryable());
    assert!(classify_reply(530, "5.7.0 Must issue a STARTTLS command first").is_retryable());
}

#[test]
fn enhanced_status_parsing() {
    assert_eq!(enhanced_status("5.1.1 User unknown"), Some((5, 1, 1)));
    assert_eq!(enhanced_status("5.1.10 null MX"), Some((5, 1, 10)));
    assert_eq!(enhanced_status("User unknown"), None);
    assert_eq!(enhanced_status(""), None);
}

/// The decoded text and HTML parts of a built message, as a mail client shows them.
fn parts_of(message: &Message) -> (String, String) {
    let raw = message.formatted();
    let parsed = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("a parseable message");
    let text = parsed.body_text(0).expect("a text part").into_owned();
    let html = parsed.body_html(0).expect("an HTML part").into_owned();
    (text, html)
}

#[test]
fn a_template_without_an_unsubscribe_link_gets_the_footer_in_both_parts() {
    let email = outgoing("ada@example.com", "Hi Ada,\n\nSee you soon.");
    let (text, html) = parts_of(&build_message(&from(), &email, "d").unwrap());
    let url = email.unsubscribe_url;
    assert_eq!(text.matches(url).count(), 1, "{text}");
    assert!(text.contains("To stop receiving these emails"), "{text}");
    assert_eq!(
        html.matches(&format!("href=\"{url}\"")).count(),
        1,
        "{html}"
    );
    assert!(html.contains("To stop receiving these emails"), "{html}");
}

#[test]
fn a_template_that_links_its_unsubscribe_url_gets_no_second_footer() {
    let body = "Hi Ada,\n\n---\n\nRather not hear from us? \
                [Unsubscribe](https://tend.example/unsubscribe/tok): one click.";
    let email = outgoing("ada@example.com", body);
    let (text, html) = parts_of(&build_message(&from(), &email, "d").unwrap());
    let url = email.unsubscribe_url;
    assert_eq!(text.matches(url).count(), 1, "{text}");
    assert!(
        text.contains("Unsubscribe (https://tend.example/unsubscribe/tok)"),
        "{text}"
    );
    assert!(!text.contains("To stop receiving these emails"), "{text}");
    assert_eq!(
        html.matches(&format!("href=\"{url}\"")).count(),
        1,
        "{html}"
    );
    assert!(!html.contains("To stop receiving these emails"), "{html}");
}

#[test]
fn an_unsubscribe_url_only_as_text_or_another_link_still_gets_the_footer() {
    // Bare text is not clickable in the HTML part, and a link to some other page is
    // not a way out: both still need the footer.
    for body in [
        "Unsubscribe at https://tend.example/unsubscribe/tok",
        "[Unsubscribe](https://tend.example/unsubscribe/other)",
        "![logo](https://tend.example/unsubscribe/tok)",
    ] {
        let email = outgoing("ada@example.com", body);
        let (text, html) = parts_of(&build_message(&from(), &email, "d").unwrap());
        assert!(
            text.contains("To stop receiving these emails"),
            "{body}: {text}"
        );
        assert!(
            html.contains("To stop receiving these emails"),
            "{body}: {html}"
        );
    }
}
