//! DKIM: mail sent through a real SMTP server (aiosmtpd) carries a signature that an
//! independent verifier (Python's dkimpy) accepts with the DNS record OpenSSL derives
//! from the key, and rejects once the message is altered; keys Tend cannot sign with
//! are refused with the file's name.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tend_core::Email;
use tend_core::check::{ProjectSources, SourceFile, check_project};
use tend_core::config::Mailbox;
use tend_engine::delivery::{DeliverySetupError, dkim_signer};
use tend_engine::dkim::{DkimKeyError, DkimSigner};
use tend_engine::email::{EmailConfig, EmailSender, OutgoingEmail};

const DOMAIN: &str = "studio.example";
const SELECTOR: &str = "tend2026";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dkim")
        .join(name)
}

fn dns_name() -> String {
    format!("{SELECTOR}._domainkey.{DOMAIN}")
}

/// The record a person publishes, from OpenSSL's reading of the key (the README's
/// commands), not Tend's.
fn openssl_record(k: &str, p_file: &str) -> String {
    let p = std::fs::read_to_string(fixture(p_file)).expect("fixture");
    format!("v=DKIM1; k={k}; p={}", p.trim())
}

/// Sends one email through aiosmtpd, signed with `key`, and returns the bytes the
/// relay received.
async fn send_signed(key: &str) -> Vec<u8> {
    let folder = tempfile::tempdir().expect("temp dir");
    let sink = tend_testkit::SmtpSink::start(folder.path(), &[]);
    let outbox = tempfile::tempdir().expect("temp dir");
    let signer = DkimSigner::from_file(&fixture(key), DOMAIN, SELECTOR).expect("usable key");
    let sender = EmailSender::new(EmailConfig {
        from: Mailbox {
            name: Some("Studio Rossi".into()),
            email: Email::parse("hello@studio.example").expect("valid address"),
        },
        smtp_url: Some(sink.url()),
        outbox_dir: outbox.path().to_path_buf(),
        message_id_domain: DOMAIN.into(),
        pool_size: 1,
        dkim: Some(Arc::new(signer)),
    })
    .expect("valid email config");
    sender
        .send(&OutgoingEmail {
            touch_id: 7,
            to_email: "ada@example.com",
            to_name: Some("Ada Lovelace"),
            subject: "Your quote:   the kitchen, ready in May",
            markdown_body: "Hello Ada,\n\nHere is **your quote**  for the kitchen.\t\n\n\
                            - design\n- build\n\nSee you soon.\n\n\n",
            unsubscribe_url: "https://tend.example/unsubscribe/AAAAAAAAAAdzaWduYXR1cmU",
            unsubscribe_mailto: "mailto:hello@studio.example?subject=unsubscribe%20x",
            envelope_from: None,
        })
        .await
        .expect("accepted by the relay");
    sender.shutdown().await;
    drop(sink);
    std::fs::read(folder.path().join("0000.eml")).expect("the relay stored the message")
}

fn replace(message: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(message.to_vec()).expect("ASCII message");
    assert!(text.contains(from), "`{from}` not in the message:\n{text}");
    text.replacen(from, to, 1).into_bytes()
}

async fn signed_mail_verifies_and_tampering_is_caught(key: &str, k: &str, p_file: &str) {
    let received = send_signed(key).await;
    let record = openssl_record(k, p_file);
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("DKIM-Signature: v=1;"),
        "the signature leads the message:\n{text}"
    );
    tend_testkit::dkim_verify(&received, &dns_name(), &record)
        .unwrap_or_else(|reason| panic!("{key}: dkimpy refused the signature: {reason}\n{text}"));

    let tampered_body = replace(&received, "kitchen", "bathroom");
    assert!(
        tend_testkit::dkim_verify(&tampered_body, &dns_name(), &record).is_err(),
        "{key}: a changed body must fail"
    );
    let tampered_subject = replace(&received, "Subject: Your quote", "Subject: Our quote");
    assert!(
        tend_testkit::dkim_verify(&tampered_subject, &dns_name(), &record).is_err(),
        "{key}: a changed subject must fail"
    );
    let second_from = replace(
        &received,
        "Subject:",
        "From: Bank <security@bank.example>\r\nSubject:",
    );
    assert!(
        tend_testkit::dkim_verify(&second_from, &dns_name(), &record).is_err(),
        "{key}: an added From must fail"
    );
}

#[tokio::test]
async fn rsa_signed_mail_verifies_with_dkimpy_and_a_tampered_copy_fails() {
    signed_mail_verifies_and_tampering_is_caught("rsa2048.pem", "rsa", "rsa2048.dns-p").await;
}

#[tokio::test]
async fn an_rsa_key_in_pkcs1_form_signs_too() {
    signed_mail_verifies_and_tampering_is_caught("rsa2048-pkcs1.pem", "rsa", "rsa2048.dns-p").await;
}

#[tokio::test]
async fn ed25519_signed_mail_verifies_with_dkimpy_and_a_tampered_copy_fails() {
    signed_mail_verifies_and_tampering_is_caught("ed25519.pem", "ed25519", "ed25519.dns-p").await;
}

#[test]
fn the_dns_record_tend_prints_is_the_one_openssl_derives() {
    for (key, k, p) in [
        ("rsa2048.pem", "rsa", "rsa2048.dns-p"),
        ("rsa2048-pkcs1.pem", "rsa", "rsa2048.dns-p"),
        ("ed25519.pem", "ed25519", "ed25519.dns-p"),
    ] {
        let signer = DkimSigner::from_file(&fixture(key), DOMAIN, SELECTOR).expect("usable key");
        assert_eq!(
            signer.dns_record(),
            (dns_name(), openssl_record(k, p)),
            "{key}"
        );
    }
}

#[test]
fn keys_tend_cannot_sign_with_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_pem = dir.path().join("notes.txt");
    std::fs::write(&not_pem, "hunter2 is my password").expect("write");
    for (path, says) in [
        (
            dir.path().join("missing.pem"),
            "cannot read the DKIM key file",
        ),
        (not_pem, "no PEM private key"),
        (fixture("rsa1024.pem"), "shorter than 2048 bits"),
        (fixture("p256.pem"), "EC key"),
    ] {
        let error = DkimSigner::from_file(&path, DOMAIN, SELECTOR).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(says), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            matches!(
                error,
                DkimKeyError::Unreadable { .. } | DkimKeyError::Invalid { .. }
            ),
            "{error:?}"
        );
    }
}

#[test]
fn the_key_never_appears_in_debug_output() {
    let signer = DkimSigner::from_file(&fixture("rsa2048.pem"), DOMAIN, SELECTOR).unwrap();
    let shown = format!("{signer:?}");
    assert!(
        shown.contains("rsa-sha256") && shown.contains(SELECTOR),
        "{shown}"
    );
    let pem = std::fs::read_to_string(fixture("rsa2048.pem")).unwrap();
    let body_line = pem.lines().nth(1).unwrap();
    assert!(!shown.contains(body_line), "{shown}");
}

/// The config keys as `tend check` reads them, and the signer the channels build.
#[test]
fn the_config_names_the_key_file_and_the_domain_defaults_to_from() {
    let config = format!(
        "[business]\nname = \"Studio\"\n[channels.email]\nfrom = \"Studio <hello@Studio.example>\"\n\
         dkim_selector = \"{SELECTOR}\"\ndkim_key_file = \"keys/dkim.pem\"\n"
    );
    let sources = ProjectSources {
        config: SourceFile::new("tend.toml", config),
        processes: vec![],
        templates: vec![],
    };
    let project = check_project(&sources).expect("valid config");
    let dkim = project
        .config
        .channels
        .email
        .dkim
        .clone()
        .expect("dkim set");
    assert_eq!(dkim.domain, DOMAIN);
    assert_eq!((dkim.key_file.line, dkim.key_file.col), (6, 17));

    let dir = tempfile::tempdir().expect("temp dir");
    let error = dkim_signer(&project.config, dir.path()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&dir.path().join("keys/dkim.pem").display().to_string()),
        "{error}"
    );
    let setup = tend_engine::delivery::ChannelDelivery::new(&project.config, dir.path(), None, "t");
    assert!(matches!(setup, Err(DeliverySetupError::Dkim(_))));

    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::copy(fixture("ed25519.pem"), dir.path().join("keys/dkim.pem")).unwrap();
    let signer = dkim_signer(&project.config, dir.path())
        .unwrap()
        .expect("signer");
    assert_eq!(signer.algorithm(), "ed25519-sha256");
}
