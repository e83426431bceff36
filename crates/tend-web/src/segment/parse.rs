//! One Segment message, validated into what the store applies; every error names the
//! field it is about.

use super::field;
use crate::AppState;
use crate::error::AppError;
use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use serde_json::{Map, Value};
use tend_core::{Email, TimeZoneName};
use tend_store::{ApiToken, ContactTraits, Identity, IngestMessage};

/// Longest identifier (userId, anonymousId, messageId, event name), in characters,
/// after trimming.
const MAX_ID_CHARS: usize = 256;
/// How far before its receipt a message may say it happened: older history belongs in
/// an import, and year 1 is a client's bug.
const MAX_PAST: SignedDuration = SignedDuration::from_hours(24 * (5 * 365 + 1));
/// How far after its receipt a message may say it happened: clock skew, not the future.
const MAX_FUTURE: SignedDuration = SignedDuration::from_hours(24);

/// What a message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl Kind {
    /// The `type` values a batch item may have, for error messages.
    pub const NAMES: &str = "identify, track, page, screen, group or alias";

    /// A batch item's `type`.
    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "identify" => Kind::Identify,
            "track" => Kind::Track,
            "page" => Kind::Page,
            "screen" => Kind::Screen,
            "group" => Kind::Group,
            "alias" => Kind::Alias,
            _ => return None,
        })
    }
}

/// The value as a JSON object, or a 400 naming `path`.
pub fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, AppError> {
    value
        .as_object()
        .ok_or_else(|| AppError::invalid(path, "must be a JSON object"))
}

/// Validates one message sent with `token`, received at `now`.
pub fn parse_message(
    state: &AppState,
    kind: Kind,
    object: &Map<String, Value>,
    path: &str,
    now: Timestamp,
    token: &ApiToken,
) -> Result<IngestMessage, AppError> {
    let identity = Identity {
        user_id: identifier(object, "userId", path)?,
        anonymous_id: identifier(object, "anonymousId", path)?,
    };
    let message_id = message_id(object, path, token)?;
    let at = timestamp(object, path, now)?;
    if kind == Kind::Alias {
        let previous_id = identifier(object, "previousId", path)?
            .ok_or_else(|| AppError::invalid(field(path, "previousId"), "required"))?;
        let user_id = identity
            .user_id
            .ok_or_else(|| AppError::invalid(field(path, "userId"), "required"))?;
        return Ok(IngestMessage::Alias {
            message_id,
            previous_id,
            user_id,
            at,
        });
    }
    if identity.user_id.is_none() && identity.anonymous_id.is_none() {
        return Err(AppError::invalid(
            field(path, "userId"),
            "required: userId or anonymousId",
        ));
    }
    match kind {
        Kind::Identify => {
            let traits = optional_object(object, "traits", path)?;
            Ok(IngestMessage::Identify {
                message_id,
                identity,
                traits: parse_traits(traits, &field(path, "traits"))?,
                at,
            })
        }
        Kind::Group => {
            let group_id = identifier(object, "groupId", path)?
                .ok_or_else(|| AppError::invalid(field(path, "groupId"), "required"))?;
            let traits = optional_object(object, "traits", path)?;
            let mut attributes = Map::new();
            attributes.insert("groupId".into(), Value::String(group_id));
            attributes.insert("group".into(), Value::Object(traits));
            Ok(IngestMessage::Identify {
                message_id,
                identity,
                traits: ContactTraits {
                    attributes,
                    ..ContactTraits::default()
                },
                at,
            })
        }
        Kind::Track | Kind::Page | Kind::Screen => {
            let mut properties = optional_object(object, "properties", path)?;
            let event = match kind {
                Kind::Track => {
                    if let Some(Value::Number(_)) = object.get("event") {
                        return Err(AppError::invalid(field(path, "event"), "must be a string"));
                    }
                    identifier(object, "event", path)?.ok_or_else(|| {
                        AppError::invalid(field(path, "event"), "required: the event name")
                    })?
                }
                Kind::Page | Kind::Screen => {
                    for key in ["name", "category"] {
                        match object.get(key) {
                            None | Some(Value::Null) => {}
                            Some(Value::String(text)) => {
                                properties
                                    .entry(key)
                                    .or_insert_with(|| Value::String(text.trim().to_owned()));
                            }
                            Some(_) => {
                                return Err(AppError::invalid(
                                    field(path, key),
                                    "must be a string",
                                ));
                            }
                        }
                    }
                    if kind == Kind::Page {
                        "Page Viewed"
                    } else {
                        "Screen Viewed"
                    }
                    .to_owned()
                }
                Kind::Identify | Kind::Group | Kind::Alias => unreachable!("handled above"),
            };
            let stage_change = state.rules.stage_for_event(&event).cloned();
            Ok(IngestMessage::Track {
                message_id,
                identity,
                event,
                properties,
                at,
                stage_change,
            })
        }
        Kind::Alias => unreachable!("handled above"),
    }
}

/// The message's id as the store keys it: scoped to the write key that sent it, so one
/// integration's ids can never hide another's events. A message without an id gets a
/// random one, as Segment's own API assigns: two identical events both count.
fn message_id(
    object: &Map<String, Value>,
    path: &str,
    token: &ApiToken,
) -> Result<String, AppError> {
    let sent = match object.get("messageId") {
        Some(Value::Number(_)) => {
            return Err(AppError::invalid(
                field(path, "messageId"),
                "must be a string",
            ));
        }
        _ => identifier(object, "messageId", path)?,
    };
    let id = sent.unwrap_or_else(|| {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("tend-{hex}")
    });
    Ok(format!("k{}/{id}", token.id))
}

fn timestamp(
    object: &Map<String, Value>,
    path: &str,
    now: Timestamp,
) -> Result<Timestamp, AppError> {
    let name = field(path, "timestamp");
    let at = match object.get("timestamp") {
        None | Some(Value::Null) => return Ok(now),
        Some(Value::String(text)) => text.parse::<Timestamp>().map_err(|_| {
            AppError::invalid(
                name.clone(),
                format!("`{text}` is not an ISO-8601 timestamp with an offset"),
            )
        })?,
        Some(_) => return Err(AppError::invalid(name, "must be an ISO-8601 string")),
    };
    let earliest = now.saturating_sub(MAX_PAST).unwrap_or(now);
    let latest = now.saturating_add(MAX_FUTURE).unwrap_or(now);
    if at < earliest || at > latest {
        return Err(AppError::invalid(
            name,
            format!(
                "`{at}` is outside the accepted range: from 5 years before the time it is \
                 received to 1 day after ({earliest} to {latest})"
            ),
        ));
    }
    Ok(at)
}

/// An identifier: a string (or, for ids, a number, which some clients send), trimmed;
/// empty means absent; at most [`MAX_ID_CHARS`] characters and no control characters.
fn identifier(
    object: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Option<String>, AppError> {
    let text = match object.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(AppError::invalid(field(path, name), "must be a string")),
    };
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_ID_CHARS {
        return Err(AppError::invalid(
            field(path, name),
            format!("must be at most {MAX_ID_CHARS} characters"),
        ));
    }
    if let Some((at, c)) = text.char_indices().find(|(_, c)| c.is_control()) {
        return Err(AppError::invalid(
            field(path, name),
            format!(
                "must not contain control characters (U+{:04X} at byte {at})",
                u32::from(c)
            ),
        ));
    }
    Ok(Some(text))
}

fn optional_object(
    object: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Map<String, Value>, AppError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(AppError::invalid(
            field(path, name),
            "must be a JSON object",
        )),
    }
}

fn parse_traits(mut traits: Map<String, Value>, path: &str) -> Result<ContactTraits, AppError> {
    let email = match traits.remove("email") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            Email::parse(&text)
                .map_err(|e| AppError::invalid(field(path, "email"), e.to_string()))?,
        ),
        Some(_) => return Err(AppError::invalid(field(path, "email"), "must be a string")),
    };
    let timezone = match traits.remove("timezone") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            TimeZoneName::parse(&text)
                .map_err(|e| AppError::invalid(field(path, "timezone"), e))?,
        ),
        Some(_) => {
            return Err(AppError::invalid(
                field(path, "timezone"),
                "must be a string",
            ));
        }
    };
    let text_trait =
        |traits: &mut Map<String, Value>, key: &str| -> Result<Option<String>, AppError> {
            match traits.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
                Some(_) => Err(AppError::invalid(field(path, key), "must be a string")),
            }
        };
    let name = text_trait(&mut traits, "name")?;
    let first = text_trait(&mut traits, "firstName")?;
    let last = text_trait(&mut traits, "lastName")?;
    // Segment's spec allows a full name or first/last names; Tend keeps one name.
    let name = name.or_else(|| match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    });
    Ok(ContactTraits {
        email,
        name,
        timezone,
        attributes: traits,
    })
}
