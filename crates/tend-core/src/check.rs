//! Validation of a whole project (`tend.toml`, `processes/*.toml`, `templates/*.md`)
//! given as in-memory sources, reporting every problem as `path:line:col: message`.
//!
//! Files are walked as span-carrying TOML trees rather than deserialized with serde,
//! because serde stops at the first error and we promise to report all of them.

use crate::config::{self, Config};
use crate::process::{self, Process};
use crate::template::Template;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One problem in a project file, pointing at the offending key or value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// The file, as the caller named it (e.g. `processes/new-inquiry.toml`).
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.col, self.message
        )
    }
}

/// A file's path and text; the caller does the reading so validation stays pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path to show in diagnostics; its file stem names the process or template.
    pub path: String,
    /// The whole file.
    pub text: String,
}

impl SourceFile {
    /// Pairs a path with its text.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The file name without folder and extension: a process id or template name.
    pub fn stem(&self) -> String {
        Path::new(&self.path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.clone())
    }
}

/// Everything `tend check` looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSources {
    /// `tend.toml`.
    pub config: SourceFile,
    /// `processes/*.toml`, in the order they should be listed.
    pub processes: Vec<SourceFile>,
    /// `templates/*.md`.
    pub templates: Vec<SourceFile>,
}

/// A project that passed every check: typed config, processes and templates.
#[derive(Debug, Clone)]
pub struct Project {
    /// The business's `tend.toml`.
    pub config: Config,
    /// One per process file, in source order; `Process::id` is the file stem.
    pub processes: Vec<Process>,
    /// By name (the file stem, as steps refer to them).
    pub templates: BTreeMap<String, Template>,
    /// What is worth fixing but valid, e.g. an http `public_url`; `warning: …` messages.
    pub warnings: Vec<Diagnostic>,
}

impl Project {
    /// The process with this id (file stem).
    pub fn process(&self, id: &str) -> Option<&Process> {
        self.processes.iter().find(|p| p.id == id)
    }

    /// The template with this name (file stem).
    pub fn template(&self, name: &str) -> Option<&Template> {
        self.templates.get(name)
    }

    /// Total steps across all processes, for summaries.
    pub fn step_count(&self) -> usize {
        self.processes.iter().map(|p| p.steps.len()).sum()
    }
}

/// Validates every file, returning the typed project or every diagnostic found,
/// sorted by path then position.
pub fn check_project(sources: &ProjectSources) -> Result<Project, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();

    let mut config_report = Report::new(&sources.config);
    let config_parts =
        parse_toml(&mut config_report).map(|doc| config::read(&mut config_report, doc.get_ref()));
    let config_ok = config_report.is_clean();
    let warnings = config_report.take_warnings();
    diagnostics.extend(config_report.finish());
    let stages = config_parts.as_ref().and_then(|parts| parts.stages.clone());
    let config = config_parts
        .and_then(|parts| parts.config)
        .filter(|_| config_ok);

    let template_names: BTreeSet<String> = sources.templates.iter().map(|t| t.stem()).collect();
    let mut templates = BTreeMap::new();
    for file in &sources.templates {
        match Template::parse(&file.path, &file.text) {
            Ok(t) => {
                templates.insert(t.name.clone(), t);
            }
            Err(errs) => diagnostics.extend(errs),
        }
    }

    let process_names: BTreeSet<String> = sources.processes.iter().map(|p| p.stem()).collect();
    let known = process::Known {
        stages: stages.as_deref(),
        templates: &template_names,
        processes: &process_names,
    };
    let mut processes = Vec::new();
    let mut seen_names: BTreeMap<String, String> = BTreeMap::new();
    for file in &sources.processes {
        let mut report = Report::new(file);
        if let Some(doc) = parse_toml(&mut report)
            && let Some(p) = process::read(&mut report, doc.get_ref(), &file.stem(), &known)
            && report.is_clean()
        {
            if let Some(other) = seen_names.insert(p.name.clone(), file.path.clone()) {
                report.error(
                    0,
                    format!(
                        "process name `{}` is already used by {other}; names must be unique",
                        p.name
                    ),
                );
            } else {
                processes.push(p);
            }
        }
        diagnostics.extend(report.finish());
    }

    if let Some(config) = &config {
        let sends_email = processes
            .iter()
            .any(|p| p.keep_warm.is_some() || p.steps.iter().any(|s| s.channel.is_email()));
        if sends_email && config.channels.email.from.is_none() {
            let mut report = Report::new(&sources.config);
            report.error(
                0,
                "processes send email but [channels.email] has no `from` address \
                 (e.g. `from = \"Studio Rossi <hello@example.com>\"`)",
            );
            diagnostics.extend(report.finish());
        }
    }

    if diagnostics.is_empty()
        && let Some(config) = config
    {
        return Ok(Project {
            config,
            processes,
            templates,
            warnings,
        });
    }
    diagnostics.sort();
    diagnostics.dedup();
    Err(diagnostics)
}

/// Parses TOML text, reporting syntax errors; `None` when the file is not valid TOML,
/// since checking keys of a half-parsed document would report nonsense.
pub(crate) fn parse_toml<'i>(report: &mut Report<'i>) -> Option<Spanned<DeTable<'i>>> {
    let (doc, errors) = DeTable::parse_recoverable(report.text);
    if errors.is_empty() {
        return Some(doc);
    }
    // The parser recovers and keeps going, which can cascade one mistake into many
    // errors on the same line; the first per line is the one worth reading.
    let mut last_line = 0;
    for error in errors {
        let offset = error.span().map_or(0, |s| s.start);
        let (line, _) = line_col(report.text, offset);
        if line != last_line {
            last_line = line;
            report.error(offset, format!("TOML syntax: {}", error.message().trim()));
        }
    }
    None
}

/// Converts a byte offset into a 1-based line and character column.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Collects diagnostics for one file, turning byte offsets into line and column.
pub(crate) struct Report<'i> {
    path: &'i str,
    pub(crate) text: &'i str,
    diagnostics: Vec<Diagnostic>,
    /// Things worth fixing that do not make the project invalid.
    warnings: Vec<Diagnostic>,
}

impl<'i> Report<'i> {
    pub(crate) fn new(file: &'i SourceFile) -> Self {
        Report::from_parts(&file.path, &file.text)
    }

    pub(crate) fn from_parts(path: &'i str, text: &'i str) -> Self {
        Report {
            path,
            text,
            diagnostics: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Records a problem at a byte offset into the file.
    pub(crate) fn error(&mut self, offset: usize, message: impl Into<String>) {
        let diagnostic = self.at(offset, message.into());
        self.diagnostics.push(diagnostic);
    }

    /// Records a warning at a byte offset into the file; its message says `warning:`.
    pub(crate) fn warn(&mut self, offset: usize, message: impl fmt::Display) {
        let diagnostic = self.at(offset, format!("warning: {message}"));
        self.warnings.push(diagnostic);
    }

    fn at(&self, offset: usize, message: String) -> Diagnostic {
        let (line, col) = line_col(self.text, offset);
        Diagnostic {
            path: self.path.to_owned(),
            line,
            col,
            message,
        }
    }

    /// The warnings recorded so far, leaving none behind.
    pub(crate) fn take_warnings(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.warnings)
    }

    /// The 1-based line and column of a byte offset into the file.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        line_col(self.text, offset)
    }

    pub(crate) fn is_clean(&self) -> bool {
        self.diagnostics.is_empty()
    }

    pub(crate) fn error_count(&self) -> usize {
        self.diagnostics.len()
    }

    pub(crate) fn finish(self) -> Vec<Diagnostic> {
        self.diagnostics
    }
}

/// A spanned TOML value, as the walkers see it.
pub(crate) type Item<'i> = Spanned<DeValue<'i>>;

/// The keys of one TOML table, read with type checks that report instead of failing.
pub(crate) struct Fields<'a, 'i> {
    table: &'a DeTable<'i>,
    /// Where "missing key" errors point: the table's header or opening brace.
    at: usize,
    /// How the table is named in messages, e.g. `[business]` or `this step`.
    place: String,
}

impl<'a, 'i> Fields<'a, 'i> {
    /// Reads a table and reports every key not in `allowed`.
    pub(crate) fn new(
        report: &mut Report<'_>,
        table: &'a DeTable<'i>,
        at: usize,
        place: impl Into<String>,
        allowed: &[&str],
    ) -> Self {
        let place = place.into();
        let mut unknown: Vec<_> = table
            .iter()
            .filter(|(k, _)| !allowed.contains(&k.get_ref().as_ref()))
            .map(|(k, _)| k)
            .collect();
        unknown.sort_by_key(|k| k.span().start);
        for key in unknown {
            report.error(
                key.span().start,
                unknown_key_message(key.get_ref(), &place, allowed),
            );
        }
        Fields { table, at, place }
    }

    /// Reads a table value (inline or header) under `key` of a parent.
    pub(crate) fn nested(
        report: &mut Report<'_>,
        item: &'a Item<'i>,
        place: impl Into<String>,
        allowed: &[&str],
    ) -> Option<Self> {
        let place = place.into();
        match item.get_ref() {
            DeValue::Table(table) => Some(Fields::new(
                report,
                table,
                item.span().start,
                place,
                allowed,
            )),
            other => {
                report.error(
                    item.span().start,
                    format!("{place} must be a table, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// The place name used in messages.
    pub(crate) fn place(&self) -> &str {
        &self.place
    }

    /// Where this table starts.
    pub(crate) fn at(&self) -> usize {
        self.at
    }

    /// The raw value under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Item<'i>> {
        self.table.get(key)
    }

    /// Whether `key` is present.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// The span of the key itself.
    pub(crate) fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.table.get_key_value(key).map(|(k, _)| k.span())
    }

    /// Entries sorted by their position in the file.
    pub(crate) fn entries(&self) -> Vec<(&'a Spanned<std::borrow::Cow<'i, str>>, &'a Item<'i>)> {
        let mut entries: Vec<_> = self.table.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        entries
    }

    /// Reports that a required key is absent.
    pub(crate) fn missing(&self, report: &mut Report<'_>, key: &str, hint: &str) {
        report.error(
            self.at,
            format!("{} is missing `{key}`{}", self.place, hint_suffix(hint)),
        );
    }

    /// A string value; wrong types are reported and give `None`.
    pub(crate) fn str(&self, report: &mut Report<'_>, key: &str) -> Option<Spanned<&'a str>> {
        let item = self.get(key)?;
        expect_str(report, item, key)
    }

    /// A string value that must be present and non-empty.
    pub(crate) fn required_str(
        &self,
        report: &mut Report<'_>,
        key: &str,
        hint: &str,
    ) -> Option<Spanned<&'a str>> {
        if !self.has(key) {
            self.missing(report, key, hint);
            return None;
        }
        let value = self.str(report, key)?;
        if value.get_ref().trim().is_empty() {
            report.error(value.span().start, format!("`{key}` must not be empty"));
            return None;
        }
        Some(value)
    }

    /// A string parsed by `parse`; parse errors point at the value.
    pub(crate) fn parsed<T, E: fmt::Display>(
        &self,
        report: &mut Report<'_>,
        key: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Option<Spanned<T>> {
        let text = self.str(report, key)?;
        match parse(text.get_ref()) {
            Ok(value) => Some(Spanned::new(text.span(), value)),
            Err(err) => {
                report.error(text.span().start, format!("`{key}`: {err}"));
                None
            }
        }
    }

    /// A number (integer or float).
    pub(crate) fn number(&self, report: &mut Report<'_>, key: &str) -> Option<Spanned<f64>> {
        let item = self.get(key)?;
        expect_number(report, item, key)
    }

    /// A non-negative integer that fits in `u32`.
    pub(crate) fn count(&self, report: &mut Report<'_>, key: &str) -> Option<Spanned<u32>> {
        let item = self.get(key)?;
        let bad = |report: &mut Report<'_>| {
            report.error(
                item.span().start,
                format!(
                    "`{key}` must be a whole number from 0 to {}, found {}",
                    u32::MAX,
                    describe(item.get_ref())
                ),
            );
        };
        let DeValue::Integer(int) = item.get_ref() else {
            bad(report);
            return None;
        };
        match i64::from_str_radix(int.as_str(), int.radix())
            .ok()
            .and_then(|n| u32::try_from(n).ok())
        {
            Some(n) => Some(Spanned::new(item.span(), n)),
            None => {
                bad(report);
                None
            }
        }
    }

    /// A boolean.
    pub(crate) fn bool(&self, report: &mut Report<'_>, key: &str) -> Option<Spanned<bool>> {
        let item = self.get(key)?;
        match item.get_ref() {
            DeValue::Boolean(b) => Some(Spanned::new(item.span(), *b)),
            other => {
                report.error(
                    item.span().start,
                    format!("`{key}` must be true or false, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// An array of strings; elements of other types are reported and dropped.
    pub(crate) fn str_list(
        &self,
        report: &mut Report<'_>,
        key: &str,
    ) -> Option<Vec<Spanned<&'a str>>> {
        let item = self.get(key)?;
        let DeValue::Array(array) = item.get_ref() else {
            report.error(
                item.span().start,
                format!(
                    "`{key}` must be a list of strings, found {}",
                    describe(item.get_ref())
                ),
            );
            return None;
        };
        Some(
            array
                .iter()
                .filter_map(|element| expect_str(report, element, key))
                .collect(),
        )
    }
}

/// Reads a value as a string, reporting any other type.
pub(crate) fn expect_str<'a>(
    report: &mut Report<'_>,
    item: &'a Item<'_>,
    key: &str,
) -> Option<Spanned<&'a str>> {
    match item.get_ref() {
        DeValue::String(s) => Some(Spanned::new(item.span(), s.as_ref())),
        other => {
            report.error(
                item.span().start,
                format!("`{key}` must be a string, found {}", describe(other)),
            );
            None
        }
    }
}

/// Reads a value as a finite number, reporting any other type.
pub(crate) fn expect_number(
    report: &mut Report<'_>,
    item: &Item<'_>,
    key: &str,
) -> Option<Spanned<f64>> {
    let number = match item.get_ref() {
        DeValue::Integer(int) => i64::from_str_radix(int.as_str(), int.radix())
            .ok()
            .map(|n| n as f64),
        DeValue::Float(float) => float.as_str().parse::<f64>().ok(),
        _ => None,
    };
    match number.filter(|n| n.is_finite()) {
        Some(n) => Some(Spanned::new(item.span(), n)),
        None => {
            report.error(
                item.span().start,
                format!(
                    "`{key}` must be a number, found {}",
                    describe(item.get_ref())
                ),
            );
            None
        }
    }
}

/// A value's type and, for short scalars, the value, for "found …" in messages.
pub(crate) fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("the string \"{s}\""),
        DeValue::Integer(i) => format!("the integer {i}"),
        DeValue::Float(f) => format!("the number {f}"),
        DeValue::Boolean(b) => format!("{b}"),
        other => format!("a {}", other.type_str()),
    }
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(" ({hint})")
    }
}

fn unknown_key_message(key: &str, place: &str, allowed: &[&str]) -> String {
    let mut message = format!("unknown key `{key}` in {place}");
    if let Some(near) = closest(key, allowed) {
        message.push_str(&format!("; did you mean `{near}`?"));
    } else if allowed.is_empty() {
        message.push_str("; it takes no keys");
    } else {
        let list: Vec<String> = allowed.iter().map(|k| format!("`{k}`")).collect();
        message.push_str(&format!("; expected one of {}", list.join(", ")));
    }
    message
}

/// The candidate within a small edit distance of `word`, to suggest a fix for typos.
pub(crate) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of two neighbours as one edit, the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests;
