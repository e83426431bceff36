//! What one message in the bounce/unsubscribe mailbox means, read without IO: a bounce
//! report (RFC 3464), a complaint (RFC 5965 ARF), an unsubscribe request sent to the
//! `List-Unsubscribe` mailto address, a reply to a touch, or nothing Tend acts on.
//!
//! Everything that would suppress an address must carry a token Tend signed: the
//! envelope sender's touch token for reports ([`crate::envelope`]), the unsubscribe
//! token in the mailto subject ([`crate::unsubscribe`]). A reply is matched by the
//! `Message-ID` Tend gave the touch and counts only from the address it was mailed to
//! (checked by the caller, who knows that address).

use crate::envelope::BounceTokens;
use crate::unsubscribe::{UnsubscribeSigner, UnsubscribeTarget};
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};

/// What a message is, as far as Tend is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A delivery status report about a touch's email.
    Bounce {
        /// The touch the report's envelope token names.
        touch: i64,
        /// A permanent failure (`Action: failed`, status 5.x.x); otherwise transient.
        hard: bool,
        /// The RFC 3463 status, e.g. `5.1.1`, for the log.
        status: String,
    },
    /// A complaint (a person marked the email as spam) about a touch's email.
    Complaint {
        /// The touch the report's envelope token names.
        touch: i64,
        /// The `Feedback-Type`, e.g. `abuse`.
        feedback_type: String,
    },
    /// An unsubscribe request sent to the `List-Unsubscribe` mailto address.
    Unsubscribe(UnsubscribeTarget),
    /// A person's answer to a touch.
    Reply {
        /// The touch it answers.
        touch: i64,
        /// The address it came from (lowercase), to check against the touch's.
        from: String,
        /// The reply's own subject, kept on the event.
        subject: String,
    },
    /// Something Tend does not act on, and why (for the log).
    Other(String),
}

/// What classifying needs to know about this install.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// Checks envelope tokens.
    pub bounce_tokens: &'a BounceTokens,
    /// `[channels.email] bounce_address`; without it no report names a touch.
    pub bounce_address: Option<&'a str>,
    /// Checks unsubscribe tokens.
    pub unsubscribe: &'a UnsubscribeSigner,
    /// The right-hand side of Tend's `Message-ID`s.
    pub message_id_domain: &'a str,
}

/// Reads one raw message.
pub fn classify(raw: &[u8], context: &Context<'_>) -> Inbound {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Inbound::Other("not a readable message".into());
    };
    let report_type = message
        .content_type()
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    match report_type.as_deref() {
        Some("delivery-status") => return bounce(&message, context),
        Some("feedback-report") => return complaint(&message, context),
        _ => {}
    }
    if let Some(target) = unsubscribe_request(&message, context) {
        return Inbound::Unsubscribe(target);
    }
    reply(&message, context)
}

/// A delivery status report: the first recipient's action and status decide.
fn bounce(message: &Message<'_>, context: &Context<'_>) -> Inbound {
    let Some(touch) = report_touch(message, context) else {
        return Inbound::Other("a bounce report without a genuine envelope token".into());
    };
    let Some(fields) = report_part(message, "delivery-status") else {
        return Inbound::Other("a bounce report without a delivery-status part".into());
    };
    // Per-message fields come first, then one group per recipient.
    let groups = field_groups(&fields);
    let Some(recipient) = groups
        .iter()
        .skip(1)
        .chain(groups.first())
        .find(|group| field(group, "action").is_some())
    else {
        return Inbound::Other("a bounce report naming no recipient's action".into());
    };
    let action = field(recipient, "action")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let status = field(recipient, "status")
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    match action.as_str() {
        "failed" => Inbound::Bounce {
            touch,
            hard: !status.starts_with('4'),
            status,
        },
        "delayed" => Inbound::Bounce {
            touch,
            hard: false,
            status,
        },
        other => Inbound::Other(format!("a delivery report saying `{other}`")),
    }
}

/// An ARF complaint.
fn complaint(message: &Message<'_>, context: &Context<'_>) -> Inbound {
    let Some(fields) = report_part(message, "feedback-report") else {
        return Inbound::Other("a feedback report without its feedback-report part".into());
    };
    let groups = field_groups(&fields);
    let feedback_type = groups
        .first()
        .and_then(|g| field(g, "feedback-type"))
        .unwrap_or_default()
        .to_ascii_lowercase();
    // `Original-Mail-From` carries the envelope sender; the returned message's
    // `Return-Path` too.
    let touch = context.bounce_address.and_then(|bounce| {
        groups
            .iter()
            .flat_map(|g| g.iter())
            .filter(|(name, _)| name == "original-mail-from")
            .find_map(|(_, value)| context.bounce_tokens.find_in(bounce, value))
    });
    let Some(touch) = touch.or_else(|| report_touch(message, context)) else {
        return Inbound::Other("a complaint without a genuine envelope token".into());
    };
    match feedback_type.as_str() {
        "abuse" | "fraud" | "virus" | "other" | "" => Inbound::Complaint {
            touch,
            feedback_type: if feedback_type.is_empty() {
                "abuse".into()
            } else {
                feedback_type
            },
        },
        other => Inbound::Other(format!("a feedback report of type `{other}`")),
    }
}

/// The touch named by an envelope token in the report's own recipient headers or in
/// the `Return-Path` of the message it returns.
fn report_touch(message: &Message<'_>, context: &Context<'_>) -> Option<i64> {
    let bounce = context.bounce_address?;
    let find = |text: &str| context.bounce_tokens.find_in(bounce, text);
    for name in [
        "To",
        "Delivered-To",
        "X-Original-To",
        "Envelope-To",
        "X-Envelope-To",
    ] {
        for value in header_texts(message, name) {
            if let Some(touch) = find(&value) {
                return Some(touch);
            }
        }
    }
    // The returned message (message/rfc822) or its headers (text/rfc822-headers).
    for part in message.parts.iter().skip(1) {
        let returned = match &part.body {
            PartType::Message(inner) => header_texts(inner, "Return-Path").join("\n"),
            _ if is_type(part, "text", "rfc822-headers") => {
                String::from_utf8_lossy(part.contents()).into_owned()
            }
            _ => continue,
        };
        for line in returned.lines() {
            let lower = line.to_ascii_lowercase();
            if (lower.starts_with("return-path:") || !lower.contains(':'))
                && let Some(touch) = find(line)
            {
                return Some(touch);
            }
        }
    }
    None
}

/// The text of the report's machine-readable part, `message/<subtype>`.
fn report_part(message: &Message<'_>, subtype: &str) -> Option<String> {
    message
        .parts
        .iter()
        .find(|part| is_type(part, "message", subtype))
        .map(|part| String::from_utf8_lossy(part.contents()).into_owned())
}

fn is_type(part: &mail_parser::MessagePart<'_>, ctype: &str, subtype: &str) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(ctype)
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
    })
}

/// Header-style fields in groups separated by blank lines (RFC 3464 §2.1), names
/// lowercased, continuation lines joined.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut group: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Every value of a header, as text (addresses written out).
fn header_texts(message: &Message<'_>, name: &str) -> Vec<String> {
    message
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| match &h.value {
            HeaderValue::Address(address) => addresses(address).join(", "),
            HeaderValue::Text(text) => text.to_string(),
            HeaderValue::TextList(list) => list.join(", "),
            _ => String::new(),
        })
        .collect()
}

fn addresses(address: &Address<'_>) -> Vec<String> {
    address
        .iter()
        .filter_map(|a| a.address.as_deref().map(str::to_owned))
        .collect()
}

/// A message to the mailto address: the subject is `unsubscribe <token>` (any case,
/// `Re:` and the like before it allowed).
fn unsubscribe_request(message: &Message<'_>, context: &Context<'_>) -> Option<UnsubscribeTarget> {
    let subject = message.subject()?;
    let mut words = subject.split_whitespace();
    while let Some(word) = words.next() {
        if word.eq_ignore_ascii_case("unsubscribe") {
            return words.next().and_then(|t| context.unsubscribe.verify(t));
        }
    }
    None
}

/// A reply: its `In-Reply-To` or `References` name one of Tend's `Message-ID`s.
fn reply(message: &Message<'_>, context: &Context<'_>) -> Inbound {
    let ids: Vec<String> = [message.in_reply_to(), message.references()]
        .into_iter()
        .flat_map(|value| match value {
            HeaderValue::Text(id) => vec![id.to_string()],
            HeaderValue::TextList(ids) => ids.iter().rev().map(|id| id.to_string()).collect(),
            _ => Vec::new(),
        })
        .collect();
    let Some(touch) = ids
        .iter()
        .find_map(|id| touch_of_message_id(id, context.message_id_domain))
    else {
        return Inbound::Other("neither a report nor a reply to a Tend email".into());
    };
    if let Some(auto) = message.header_raw("Auto-Submitted")
        && !auto.trim().eq_ignore_ascii_case("no")
    {
        return Inbound::Other(format!(
            "an automatic reply (Auto-Submitted: {})",
            auto.trim()
        ));
    }
    let Some(from) = message
        .from()
        .and_then(|from| from.first())
        .and_then(|addr| addr.address.as_deref())
    else {
        return Inbound::Other("a reply without a From address".into());
    };
    Inbound::Reply {
        touch,
        from: from.trim().to_lowercase(),
        subject: message.subject().unwrap_or_default().to_owned(),
    }
}

/// The touch of `tend.touch.<id>@<domain>` (angle brackets optional).
pub fn touch_of_message_id(id: &str, domain: &str) -> Option<i64> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, right) = id.rsplit_once('@')?;
    if !right.eq_ignore_ascii_case(domain) {
        return None;
    }
    let digits = local.strip_prefix("tend.touch.")?;
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests;
