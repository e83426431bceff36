use super::*;

const BOUNCE_ADDRESS: &str = "bounces@studio.example";
const DOMAIN: &str = "abc123.studio.example";

fn tokens() -> BounceTokens {
    BounceTokens::new(b"0123456789abcdef0123456789abcdef")
}

fn signer() -> UnsubscribeSigner {
    UnsubscribeSigner::new(b"0123456789abcdef0123456789abcdef")
}

fn read(raw: &str) -> Inbound {
    let tokens = tokens();
    let signer = signer();
    classify(
        raw.as_bytes(),
        &Context {
            bounce_tokens: &tokens,
            bounce_address: Some(BOUNCE_ADDRESS),
            unsubscribe: &signer,
            message_id_domain: DOMAIN,
        },
    )
}

/// A Postfix-style bounce report to `to`, with `action` and `status`.
fn dsn(to: &str, action: &str, status: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example (Mail Delivery System)\r\n\
         To: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <dsn.1@mx.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
         \r\n\
         --B\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not be delivered.\r\n\
         --B\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example\r\n\
         \r\n\
         Final-Recipient: rfc822; ann@example.com\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\
         --B\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         Message-ID: <tend.touch.7@{DOMAIN}>\r\n\
         Subject: Welcome\r\n\
         --B--\r\n"
    )
}

#[test]
fn a_failed_report_to_a_genuine_token_is_a_hard_bounce() {
    let to = tokens().envelope_sender(BOUNCE_ADDRESS, 7);
    assert_eq!(
        read(&dsn(&to, "failed", "5.1.1")),
        Inbound::Bounce {
            touch: 7,
            hard: true,
            status: "5.1.1".into()
        }
    );
    assert_eq!(
        read(&dsn(&to, "delayed", "4.2.2")),
        Inbound::Bounce {
            touch: 7,
            hard: false,
            status: "4.2.2".into()
        }
    );
}

#[test]
fn a_report_without_a_genuine_token_names_nothing() {
    let forged = tokens()
        .envelope_sender(BOUNCE_ADDRESS, 7)
        .replacen("+7-", "+8-", 1);
    assert!(matches!(
        read(&dsn(&forged, "failed", "5.1.1")),
        Inbound::Other(_)
    ));
    assert!(matches!(
        read(&dsn(BOUNCE_ADDRESS, "failed", "5.1.1")),
        Inbound::Other(_)
    ));
}

#[test]
fn replies_name_the_touch_they_answer() {
    let raw = format!(
        "From: Ann <Ann@Example.com>\r\nTo: hello@studio.example\r\nSubject: Re: Welcome\r\n\
         In-Reply-To: <tend.touch.12@{DOMAIN}>\r\nReferences: <x@y> <tend.touch.12@{DOMAIN}>\r\n\
         Message-ID: <r1@example.com>\r\n\r\nYes please!\r\n"
    );
    assert_eq!(
        read(&raw),
        Inbound::Reply {
            touch: 12,
            from: "ann@example.com".into(),
            subject: "Re: Welcome".into()
        }
    );
    // Another installation's Message-ID, and an out-of-office answer, are not replies.
    let other = raw.replace(DOMAIN, "zzz.studio.example");
    assert!(matches!(read(&other), Inbound::Other(_)));
    let auto = raw.replace("Message-ID", "Auto-Submitted: auto-replied\r\nMessage-ID");
    assert!(matches!(read(&auto), Inbound::Other(_)));
}

#[test]
fn a_mailto_unsubscribe_needs_a_genuine_token() {
    let key = [9u8; 32];
    let token = signer().token(&key);
    let raw = format!(
        "From: ann@example.com\r\nTo: hello@studio.example\r\nSubject: unsubscribe {token}\r\n\r\n"
    );
    assert_eq!(
        read(&raw),
        Inbound::Unsubscribe(UnsubscribeTarget::Address(key))
    );
    let forged = raw.replace(&token[..4], "AAAA");
    assert!(matches!(read(&forged), Inbound::Other(_)));
}

#[test]
fn message_ids_are_read_strictly() {
    assert_eq!(
        touch_of_message_id(&format!("<tend.touch.5@{DOMAIN}>"), DOMAIN),
        Some(5)
    );
    for bad in [
        format!("<tend.touch.@{DOMAIN}>"),
        format!("<tend.touch.5x@{DOMAIN}>"),
        "<tend.touch.5@other.example>".to_owned(),
        format!("<other.5@{DOMAIN}>"),
    ] {
        assert_eq!(touch_of_message_id(&bad, DOMAIN), None, "{bad}");
    }
}

#[test]
fn garbage_is_left_alone() {
    for raw in [
        "",
        "\r\n\r\n",
        "not a message at all",
        "Content-Type: multipart/report\r\n\r\n--",
    ] {
        assert!(matches!(read(raw), Inbound::Other(_)), "{raw:?}");
    }
}
