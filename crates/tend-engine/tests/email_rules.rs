//! Ingest and import check addresses with `tend_core::Email::parse`; the sender parses
//! them again with lettre's `Address`. An address the first accepts and the second
//! refuses would be taken in and then fail at send time, so: every address
//! `Email::parse` accepts, lettre accepts too, and on a corpus of tricky cases the two
//! agree except where `Email::parse` is deliberately narrower.

use lettre::Address;
use proptest::prelude::*;
use tend_core::Email;

/// What the sender does with a stored address (`email::build_message`).
fn lettre_accepts(address: &str) -> bool {
    address.trim().parse::<Address>().is_ok()
}

/// Characters that make addresses tricky: every ASCII punctuation mark, spaces and
/// control characters, letters from other scripts, invisible formatting.
const ALPHABET: &[char] = &[
    'a', 'Z', '0', '9', '.', '.', '.', '-', '-', '_', '+', '@', '!', '#', '$', '%', '&', '\'', '*',
    '/', '=', '?', '^', '`', '{', '|', '}', '~', '"', '(', ')', ',', ':', ';', '<', '>', '[', ']',
    '\\', ' ', '\t', '\n', '\u{0}', '\u{7f}', 'é', 'ß', 'İ', '東', '\u{200B}', '\u{202E}',
    '\u{a0}', '\u{301}', '\u{2028}',
];

fn tricky(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(ALPHABET), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Whatever the text, an address `Email::parse` accepts is one the sender accepts.
    #[test]
    fn every_accepted_address_is_one_the_sender_accepts(
        local in prop_oneof![tricky(12), "[a-z0-9.!#$%&'*+/=?^_`{|}~-]{1,12}"],
        domain in prop_oneof![tricky(12), "[a-z0-9.-]{1,12}"],
        tld in prop_oneof![Just("com".to_owned()), tricky(4)],
    ) {
        for text in [format!("{local}@{domain}.{tld}"), format!("{local}@{domain}"), local.clone()] {
            if let Ok(email) = Email::parse(&text) {
                prop_assert!(
                    lettre_accepts(email.as_str()),
                    "Email::parse accepted {text:?} as {email}, lettre refuses it"
                );
            }
        }
    }
}

#[test]
fn on_tricky_cases_both_agree_or_email_parse_is_deliberately_narrower() {
    // Accepted by both.
    let both = [
        "ann@example.com",
        "  Ann@Example.COM  ",
        "o'brien+news@example.co.uk",
        "a.b.c@sub.example.com",
        "x{y}|z~^`=?/*&%$#!@example.com",
        "josé@exämple.com",
        "用户@例子.广告",
        "a@b.c",
        "a@1.2.3.4",
        "a@xn--bcher-kva.example",
    ];
    // Refused by both.
    let neither = [
        ".dot..x@example.com",
        ".x@example.com",
        "x.@example.com",
        "a..b@example.com",
        "ann",
        "@example.com",
        "ann@",
        "a b@example.com",
        "a@b@example.com",
        "a(comment)@example.com",
        "a,b@example.com",
        "a<b>@example.com",
        "a;b@example.com",
        "a:b@example.com",
        "a[b]@example.com",
        "a\\b@example.com",
        "ann@.example.com",
        "ann@example..com",
        "ann@example.com.",
        "ann@-example.com",
        "ann@example-.com",
        "ann@exa mple.com",
        "\u{0}a@example.com",
    ];
    // Taken by lettre, refused here on purpose: quoted local parts, IP literals,
    // single-label domains, punctuation in domain labels, invisible characters.
    let narrower = [
        "\"a b\"@example.com",
        "\"a\\\"b\"@example.com",
        "a@[127.0.0.1]",
        "a@[2606:4700::1111]",
        "ann@localhost",
        "ann@exa_mple.com",
        "ann@ex!ample.com",
        "a\u{200B}b@example.com",
        "a\u{202E}b@example.com",
        "a\u{a0}b@example.com",
    ];
    let long_local = format!("{}@example.com", "a".repeat(65));
    let long_label = format!("a@{}.com", "b".repeat(64));
    let long_address = format!("a@{}.com", vec!["b".repeat(60); 5].join("."));
    let too_long = [
        long_local.as_str(),
        long_label.as_str(),
        long_address.as_str(),
    ];

    for text in both {
        let email = Email::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(lettre_accepts(email.as_str()), "{text:?}");
    }
    for text in neither.iter().chain(&too_long) {
        assert!(Email::parse(text).is_err(), "{text:?} accepted");
        assert!(
            !lettre_accepts(&text.trim().to_lowercase()),
            "{text:?}: lettre accepts it; move it to `narrower` if refusing it is deliberate"
        );
    }
    for text in narrower {
        assert!(Email::parse(text).is_err(), "{text:?} accepted");
        assert!(lettre_accepts(text), "{text:?}: lettre refuses it too");
    }
}
