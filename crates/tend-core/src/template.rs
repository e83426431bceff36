//! Email templates (`templates/*.md`): a `Subject: …` line, a blank line, then a
//! Markdown body. Subject, body and task titles are MiniJinja templates over
//! `contact.*`, `business.*` and `unsubscribe_url`. In a body every interpolated value
//! is escaped for Markdown, so contact data is text and only the author writes markup.

use crate::check::{Diagnostic, Report, closest};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// The fields templates may read from `contact`; `attributes.<anything>` is also allowed.
pub const CONTACT_FIELDS: &[&str] = &[
    "id",
    "email",
    "name",
    "first_name",
    "timezone",
    "stage",
    "attributes",
];

/// The fields templates may read from `business`.
pub const BUSINESS_FIELDS: &[&str] = &["name", "timezone"];

/// One parsed email template: subject and body as template sources, compiled on first
/// render and kept for the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Template {
    /// The file stem, as steps and `keep_warm` name it.
    pub name: String,
    /// The subject line's template source.
    pub subject: String,
    /// The Markdown body's template source.
    pub body: String,
    #[serde(skip)]
    compiled: Compiled,
}

/// Subject and body compiled into one environment, shared by the template's clones.
#[derive(Clone, Default)]
struct Compiled(Arc<OnceLock<Environment<'static>>>);

/// Made from the sources, which `Template` already compares and prints.
impl PartialEq for Compiled {
    fn eq(&self, _: &Compiled) -> bool {
        true
    }
}

impl Eq for Compiled {}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "compiled"
        } else {
            "not yet compiled"
        })
    }
}

/// Names of the two parts inside a template's environment.
const SUBJECT: &str = "subject";
const BODY: &str = "body";

/// A template rendered for one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line, whitespace collapsed.
    pub subject: String,
    /// Markdown text.
    pub body: String,
}

/// Why rendering failed (an unknown filter, a type error in an expression, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct RenderError {
    /// `subject`, `body` or `title`, with the template name when there is one.
    pub what: String,
    /// MiniJinja's explanation.
    pub message: String,
}

/// The variables a template sees, as the engine should build them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderContext {
    /// The contact being written to.
    pub contact: ContactVars,
    /// The sending business.
    pub business: BusinessVars,
    /// The signed one-click unsubscribe link for this contact.
    pub unsubscribe_url: String,
}

/// `contact.*` in templates. Absent optional fields are left out rather than `null`,
/// so `{{ contact.first_name | default("there") }}` works.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactVars {
    /// Database id.
    pub id: i64,
    /// Address.
    pub email: String,
    /// Full name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// First word of the name unless given explicitly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// IANA zone name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Current stage.
    pub stage: String,
    /// Free-form attributes (a JSON object).
    pub attributes: serde_json::Value,
}

/// `business.*` in templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BusinessVars {
    /// From `[business] name`.
    pub name: String,
    /// From `[business] timezone`.
    pub timezone: String,
}

impl RenderContext {
    /// The context as the JSON value [`Template::render`] takes.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("plain data serializes")
    }

    /// A made-up contact, used by `tend check` to try templates and by previews.
    pub fn sample() -> Self {
        RenderContext {
            contact: ContactVars {
                id: 1,
                email: "ann.example@example.com".into(),
                name: Some("Ann Example".into()),
                first_name: Some("Ann".into()),
                timezone: Some("Europe/Rome".into()),
                stage: "lead".into(),
                attributes: serde_json::json!({}),
            },
            business: BusinessVars {
                name: "Example Business".into(),
                timezone: "Europe/Rome".into(),
            },
            unsubscribe_url: "https://example.com/unsubscribe/sample".into(),
        }
    }
}

/// The first word of a full name, for `contact.first_name` when none is stored.
pub fn first_name_of(name: &str) -> Option<String> {
    name.split_whitespace().next().map(str::to_owned)
}

impl Template {
    /// A template from its parts, as a file would give them.
    pub fn new(name: &str, subject: &str, body: &str) -> Template {
        Template {
            name: name.to_owned(),
            subject: subject.to_owned(),
            body: body.to_owned(),
            compiled: Compiled::default(),
        }
    }

    /// Parses and validates one template file; the template's name is the file stem.
    pub fn parse(path: &str, text: &str) -> Result<Template, Vec<Diagnostic>> {
        let mut report = Report::from_parts(path, text);
        let name = std::path::Path::new(path)
            .file_stem()
            .map_or_else(|| path.to_owned(), |s| s.to_string_lossy().into_owned());
        let template = read(&mut report, &name);
        match template {
            Some(t) if report.is_clean() => Ok(t),
            _ => Err(report.finish()),
        }
    }

    /// Renders subject and body with a context shaped like [`RenderContext`].
    pub fn render(&self, context: &serde_json::Value) -> Result<RenderedEmail, RenderError> {
        let env = self.compiled.0.get_or_init(|| {
            let mut env = environment();
            // A part that does not compile stays out; rendering it from source below
            // reports the same error as an uncompiled render would.
            let _ = env.add_template_owned(SUBJECT, self.subject.clone());
            let _ = env.add_template_owned(BODY, self.body.clone());
            env
        });
        let ctx = template_context(context);
        let run = |part: &str, source: &str| {
            match env.get_template(part) {
                Ok(template) => template.render(ctx.clone()),
                Err(_) => env.render_str(source, ctx.clone()),
            }
            .map_err(|e| RenderError {
                what: format!("{} {part}", self.name),
                message: describe_error(&e),
            })
        };
        let subject = run(SUBJECT, &self.subject)?;
        let body = run(BODY, &self.body)?;
        Ok(RenderedEmail {
            subject: one_line(&subject),
            body,
        })
    }
}

/// The context as templates see it: everything as given, except `unsubscribe_url`,
/// which the engine builds (the public URL and a signed token) and authors put inside
/// link destinations and `<…>` autolinks, so it is marked as markup, not escaped.
fn template_context(context: &serde_json::Value) -> minijinja::Value {
    let Some(object) = context.as_object() else {
        return minijinja::Value::from(minijinja::value::Serde(context));
    };
    object
        .iter()
        .map(|(key, value)| {
            let value = match (key.as_str(), value) {
                ("unsubscribe_url", serde_json::Value::String(url)) => {
                    minijinja::Value::from_safe_string(url.clone())
                }
                _ => minijinja::Value::from(minijinja::value::Serde(value)),
            };
            (key.clone(), value)
        })
        .collect::<std::collections::BTreeMap<String, minijinja::Value>>()
        .into()
}

/// Renders a one-line template such as a task title.
pub fn render_text(source: &str, context: &serde_json::Value) -> Result<String, RenderError> {
    let env = environment();
    env.render_str(source, template_context(context))
        .map(|s| one_line(&s))
        .map_err(|e| RenderError {
            what: "title".into(),
            message: describe_error(&e),
        })
}

/// Subjects and titles are single header-like lines; collapsing newlines there also
/// stops a contact's data from injecting extra email headers.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Error ranges need debug info, and `tend check` reports positions.
    env.set_debug(true);
    // A missing attribute (`contact.attributes.company`) renders empty instead of
    // failing the touch; `default(...)` still applies.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // Contact data is text. Everything a body interpolates (names, traits, event
    // properties, a `default(...)` literal) goes through `escape_markdown`, so only
    // what the author wrote as template text is Markdown. Escaping at interpolation is
    // chosen over opaque placeholders swapped in after rendering: one formatter sees
    // every `{{ … }}` (filters, loops, macros and `set` blocks included), and a value
    // an author puts inside a link destination still goes through the Markdown link
    // parser and its scheme check, where a placeholder would land unchecked in an
    // `href`. Subjects and titles are not Markdown and are left as they are; header
    // safety is the email builder's job.
    env.set_auto_escape_callback(|name| {
        if name == BODY {
            AutoEscape::Custom(MARKDOWN.into())
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(|out, state, value| {
        if value.is_undefined() {
            return Ok(());
        }
        let text = match value.as_str() {
            Some(text) => std::borrow::Cow::Borrowed(text),
            None => std::borrow::Cow::Owned(value.to_string()),
        };
        let verbatim = value.is_safe()
            || !matches!(state.auto_escape(), AutoEscape::Custom(name) if name == MARKDOWN);
        let written = if verbatim {
            out.write_str(&text)
        } else {
            out.write_str(&escape_markdown(&text))
        };
        written.map_err(minijinja::Error::from)
    });
    env
}

/// The custom auto-escape mode of template bodies.
const MARKDOWN: &str = "markdown";

/// Makes `text` read as itself in CommonMark: every ASCII punctuation character gets
/// a backslash (CommonMark lets any of them be escaped, and only they start markup),
/// so a value cannot open a link, image, emphasis, code span, HTML tag, entity,
/// heading, list or quote. It is also put on one line, trimmed: a line break in a
/// value would let the author's text after it start a line and become a list item or
/// heading, and a blank line or indentation would end the author's paragraph. Tabs
/// become spaces and other control characters (NUL, escape codes), which are no
/// part of any text a person typed and which mail transports refuse, are dropped.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let lines = text
        .split([
            '\n', '\r', '\u{0B}', '\u{0C}', '\u{85}', '\u{2028}', '\u{2029}',
        ])
        .map(str::trim)
        .filter(|line| !line.is_empty());
    for (i, line) in lines.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        for c in line.chars() {
            if c == '\t' {
                out.push(' ');
                continue;
            }
            if c.is_control() {
                continue;
            }
            if c.is_ascii_punctuation() {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

fn describe_error(err: &minijinja::Error) -> String {
    err.detail()
        .map_or_else(|| err.kind().to_string(), str::to_owned)
}

/// Reads a template file, reporting layout problems and template errors.
fn read(report: &mut Report<'_>, name: &str) -> Option<Template> {
    let text = report.text;
    let start = if text.starts_with('\u{feff}') { 3 } else { 0 };
    if text[start..].trim().is_empty() {
        report.error(
            start,
            "empty template; expected `Subject: …`, a blank line, then the body",
        );
        return None;
    }
    let first_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let first_line = text[start..first_end].trim_end_matches('\r');
    let Some(label) = first_line
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("subject:"))
    else {
        report.error(
            start,
            "the first line must be the subject, e.g. `Subject: Welcome, {{ contact.first_name }}`",
        );
        return None;
    };
    let after_label = start + label.len();
    let subject_raw = &text[after_label..start + first_line.len()];
    let subject_offset = after_label + (subject_raw.len() - subject_raw.trim_start().len());
    let subject = subject_raw.trim();
    if subject.is_empty() {
        report.error(after_label, "the subject is empty");
    }

    let (body_offset, body) = if first_end >= text.len() {
        report.error(
            text.len(),
            "expected a blank line after the subject, then the body",
        );
        (text.len(), "")
    } else {
        let second_start = first_end + 1;
        let second_end = text[second_start..]
            .find('\n')
            .map_or(text.len(), |i| second_start + i);
        if !text[second_start..second_end].trim().is_empty() {
            report.error(
                second_start,
                "the second line must be blank: the subject line, a blank line, then the body",
            );
        }
        let body_start = (second_end + 1).min(text.len());
        let body = &text[body_start..];
        if body.trim().is_empty() {
            report.error(body_start, "the body is empty");
        }
        (body_start, body)
    };

    if !subject.is_empty() {
        for issue in check_source(subject) {
            report.error(subject_offset + issue.offset, issue.message);
        }
    }
    if !body.trim().is_empty() {
        for issue in check_source(body) {
            report.error(body_offset + issue.offset, issue.message);
        }
    }
    Some(Template::new(name, subject, body))
}

/// Checks a task title written as a TOML string value at `span` in the file.
pub(crate) fn check_title(report: &mut Report<'_>, title: &str, span: Range<usize>) {
    let issues = check_source(title);
    if issues.is_empty() {
        return;
    }
    // Inside a plain quoted string without escapes, positions in the title map
    // one-to-one onto the file; otherwise point at the start of the value.
    let raw = report.text.get(span.clone()).unwrap_or("");
    let exact = raw.len() == title.len() + 2
        && raw.get(1..raw.len() - 1) == Some(title)
        && (raw.starts_with('"') || raw.starts_with('\''));
    for issue in issues {
        let offset = if exact {
            span.start + 1 + issue.offset
        } else {
            span.start
        };
        report.error(offset, issue.message);
    }
}

/// A problem at a byte offset into one template source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

/// Syntax errors, unknown variables, and errors a trial render with a sample contact
/// turns up (unknown filters, tests and functions).
pub(crate) fn check_source(source: &str) -> Vec<Issue> {
    let env = environment();
    let template = match env.template_from_str(source) {
        Ok(t) => t,
        Err(err) => {
            return vec![Issue {
                offset: error_offset(&err, source),
                message: format!("template syntax: {}", describe_error(&err)),
            }];
        }
    };
    let globals: BTreeSet<String> = env.globals().map(|(name, _)| name.to_owned()).collect();
    let mut unknown: Vec<(String, String)> = template
        .undeclared_variables(true)
        .into_iter()
        .filter_map(|name| variable_problem(&name, &globals).map(|why| (name, why)))
        .collect();
    unknown.sort();
    let mut issues = Vec::new();
    if !unknown.is_empty() {
        let names = expression_names(source);
        for (name, why) in unknown {
            let exact: Vec<usize> = names
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, at)| *at)
                .collect();
            let offsets = if exact.is_empty() {
                let prefix = format!("{name}.");
                let longer: Vec<usize> = names
                    .iter()
                    .filter(|(n, _)| n.starts_with(&prefix))
                    .map(|(_, at)| *at)
                    .collect();
                if longer.is_empty() { vec![0] } else { longer }
            } else {
                exact
            };
            for offset in offsets {
                issues.push(Issue {
                    offset,
                    message: why.clone(),
                });
            }
        }
    }
    let sample = minijinja::Value::from(minijinja::value::Serde(RenderContext::sample()));
    if let Err(err) = template.render(sample) {
        let reportable = matches!(
            err.kind(),
            ErrorKind::UnknownFilter
                | ErrorKind::UnknownTest
                | ErrorKind::UnknownFunction
                | ErrorKind::TemplateNotFound
                | ErrorKind::MissingArgument
                | ErrorKind::TooManyArguments
        );
        if reportable {
            issues.push(Issue {
                offset: error_offset(&err, source),
                message: format!("template: {}", describe_error(&err)),
            });
        }
    }
    issues.sort_by_key(|i| i.offset);
    issues
}

fn error_offset(err: &minijinja::Error, source: &str) -> usize {
    if let Some(range) = err.range() {
        return range.start.min(source.len());
    }
    match err.line() {
        Some(line) if line > 1 => source
            .match_indices('\n')
            .nth(line - 2)
            .map_or(0, |(i, _)| i + 1),
        _ => 0,
    }
}

/// Every known variable path, for "did you mean" suggestions.
fn known_variables() -> Vec<String> {
    let mut all: Vec<String> = CONTACT_FIELDS
        .iter()
        .map(|f| format!("contact.{f}"))
        .collect();
    all.extend(BUSINESS_FIELDS.iter().map(|f| format!("business.{f}")));
    all.push("unsubscribe_url".into());
    all
}

/// Why a variable path (as MiniJinja reports it, e.g. `contact.first_name`) is not
/// one templates can use; `None` if it is fine.
fn variable_problem(name: &str, globals: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let fine = match parts.as_slice() {
        ["contact"] | ["business"] | ["unsubscribe_url"] => true,
        ["contact", "attributes", ..] => true,
        ["contact", field] => CONTACT_FIELDS.contains(field),
        ["business", field] => BUSINESS_FIELDS.contains(field),
        [single] => globals.contains(*single),
        [first, ..] => globals.contains(*first) && !["contact", "business"].contains(first),
        [] => true,
    };
    if fine {
        return None;
    }
    if let ["contact" | "business", field, extra, ..] = parts.as_slice()
        && (CONTACT_FIELDS.contains(field) || BUSINESS_FIELDS.contains(field))
    {
        return Some(format!(
            "unknown variable `{name}`: `{}.{field}` is plain text and has no `{extra}`",
            parts[0]
        ));
    }
    let known = known_variables();
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    let mut message = format!("unknown variable `{name}`");
    if let Some(near) = closest(name, &known_refs) {
        message.push_str(&format!("; did you mean `{near}`?"));
    } else {
        message.push_str(
            "; templates can use contact.id, contact.email, contact.name, contact.first_name, \
             contact.timezone, contact.stage, contact.attributes.<name>, business.name, \
             business.timezone and unsubscribe_url",
        );
    }
    Some(message)
}

/// Every dotted name (`contact.first_name`) inside `{{ … }}` and `{% … %}` with its
/// byte offset, so diagnostics can point at a variable MiniJinja names without a
/// position. Strings, comments and raw blocks are skipped.
fn expression_names(source: &str) -> Vec<(String, usize)> {
    let bytes = source.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'{' || !matches!(bytes[i + 1], b'{' | b'%' | b'#') {
            i += 1;
            continue;
        }
        let kind = bytes[i + 1];
        if kind == b'#' {
            i = source[i + 2..]
                .find("#}")
                .map_or(bytes.len(), |j| i + 2 + j + 2);
            continue;
        }
        let close = if kind == b'{' { "}}" } else { "%}" };
        let inner_start = i + 2;
        if kind == b'%' {
            let inner = source[inner_start..].trim_start_matches(['-', '+', ' ', '\t', '\n']);
            if inner.starts_with("raw") && !inner[3..].starts_with(is_ident_char) {
                i = source[inner_start..]
                    .find("endraw")
                    .map_or(bytes.len(), |j| inner_start + j);
                continue;
            }
        }
        i = scan_expression(source, inner_start, close, &mut names);
    }
    names
}

/// Scans one tag's contents from `start` to its `close`, collecting dotted names;
/// returns the offset after the tag.
fn scan_expression(
    source: &str,
    start: usize,
    close: &str,
    names: &mut Vec<(String, usize)>,
) -> usize {
    let bytes = source.as_bytes();
    let mut i = start;
    let mut after_dot = false;
    while i < bytes.len() {
        if source[i..].starts_with(close) {
            return i + close.len();
        }
        let b = bytes[i];
        match b {
            b'"' | b'\'' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                after_dot = false;
            }
            b'.' => {
                after_dot = true;
                i += 1;
            }
            _ if b.is_ascii_whitespace() => i += 1,
            _ if b.is_ascii_digit() => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                after_dot = false;
            }
            _ if b.is_ascii_alphabetic() || b == b'_' => {
                let at = i;
                let mut chain = String::new();
                loop {
                    let ident_start = i;
                    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_')
                    {
                        i += 1;
                    }
                    chain.push_str(&source[ident_start..i]);
                    let mut j = i;
                    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if j < bytes.len() && bytes[j] == b'.' {
                        let mut k = j + 1;
                        while k < bytes.len() && bytes[k].is_ascii_whitespace() {
                            k += 1;
                        }
                        if k < bytes.len() && (bytes[k].is_ascii_alphabetic() || bytes[k] == b'_') {
                            chain.push('.');
                            i = k;
                            continue;
                        }
                    }
                    break;
                }
                if !after_dot {
                    names.push((chain, at));
                }
                after_dot = false;
            }
            _ => {
                after_dot = false;
                i += 1;
            }
        }
    }
    bytes.len()
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests;
