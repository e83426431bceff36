//! Email bodies from Markdown: an HTML part and a plain-text part.
//!
//! Templates interpolate contact data (names, notes, anything a contact typed into a
//! form). MiniJinja escapes each interpolated value for Markdown
//! ([`tend_core::template::escape_markdown`]), so it reaches here as literal text;
//! as a second line of defence raw HTML is shown as text, never passed through, and
//! links may only use schemes a mail client can follow safely.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// Options shared by both renderings, so the text part says what the HTML part says.
fn parser(markdown: &str) -> Parser<'_> {
    Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH)
}

/// Renders Markdown as an HTML fragment, with any raw HTML escaped and links to
/// unsafe schemes (`javascript:`, `data:` …) reduced to their text.
pub fn to_html(markdown: &str) -> String {
    // One flag per open link or image: whether its Start was dropped, so the matching
    // End is dropped too and the tags stay balanced.
    let mut dropped: Vec<bool> = Vec::new();
    let events = parser(markdown).filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        // An HTML block becomes a paragraph of escaped text instead of vanishing.
        Event::Start(Tag::HtmlBlock) => Some(Event::Start(Tag::Paragraph)),
        Event::End(TagEnd::HtmlBlock) => Some(Event::End(TagEnd::Paragraph)),
        Event::Start(Tag::Link { ref dest_url, .. } | Tag::Image { ref dest_url, .. }) => {
            let safe = is_safe_url(dest_url);
            dropped.push(!safe);
            safe.then_some(event)
        }
        Event::End(TagEnd::Link | TagEnd::Image) => match dropped.pop() {
            Some(true) => None,
            _ => Some(event),
        },
        other => Some(other),
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// Renders Markdown as readable plain text: blank lines between paragraphs, `- item`
/// lists, links as `text (url)`, emphasis markers dropped.
pub fn to_text(markdown: &str) -> String {
    let mut writer = TextWriter::default();
    for event in parser(markdown) {
        writer.event(event);
    }
    writer.finish()
}

/// Whether the Markdown has a link (not an image, not bare text) whose target is
/// exactly `url`: a template that already links its own unsubscribe URL needs no
/// second footer.
pub fn links_to(markdown: &str, url: &str) -> bool {
    parser(markdown).any(|event| {
        matches!(event, Event::Start(Tag::Link { ref dest_url, .. }) if dest_url.as_ref() == url)
    })
}

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether a link target is harmless in a mail client: relative, or one of the
/// schemes people actually put in marketing email.
fn is_safe_url(url: &str) -> bool {
    // A scheme is whatever precedes the first `:` when no `/`, `?` or `#` comes first;
    // anything else is a relative reference.
    let scheme_end = url.find([':', '/', '?', '#']);
    match scheme_end {
        Some(end) if url[end..].starts_with(':') => {
            let scheme = url[..end].to_ascii_lowercase();
            matches!(scheme.as_str(), "http" | "https" | "mailto" | "tel")
        }
        _ => true,
    }
}

/// One level of nesting that shapes how continuation lines start.
#[derive(Debug)]
enum Container {
    /// A block quote: lines start with `> `.
    Quote,
    /// A list item whose marker is this wide: continuation lines are indented to match.
    Item(usize),
}

/// Turns the event stream into text, tracking just enough structure for line prefixes
/// and block separation.
#[derive(Debug, Default)]
struct TextWriter {
    out: String,
    containers: Vec<Container>,
    /// Next number of each open list; `None` for bullet lists.
    lists: Vec<Option<u64>>,
    /// Per open link or image: where its text starts in `out`, and its target.
    links: Vec<(usize, String)>,
    /// Right after a list item's marker, where the item's first block must not start a
    /// new line.
    at_item_start: bool,
}

impl TextWriter {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) | Event::Code(text) | Event::InlineMath(text) => {
                self.write(&text);
            }
            Event::DisplayMath(text) | Event::Html(text) | Event::InlineHtml(text) => {
                self.write(&text);
            }
            Event::FootnoteReference(label) => {
                self.write(&format!("[{label}]"));
            }
            Event::SoftBreak | Event::HardBreak => self.newline(),
            Event::Rule => {
                self.begin_block();
                self.write("---");
            }
            Event::TaskListMarker(done) => self.write(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph
            | Tag::Heading { .. }
            | Tag::CodeBlock(_)
            | Tag::HtmlBlock
            | Tag::Table(_)
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::MetadataBlock(_) => self.begin_block(),
            Tag::BlockQuote(_) => {
                self.begin_block();
                self.containers.push(Container::Quote);
                self.out.push_str("> ");
            }
            Tag::List(first) => {
                // A list nested in an item continues right under the item's text; a
                // top-level list is a block of its own.
                if self.in_item() && !self.at_item_start {
                    self.newline();
                } else {
                    self.begin_block();
                }
                self.lists.push(first);
                self.at_item_start = true;
            }
            Tag::Item => {
                if !self.at_item_start {
                    self.newline();
                }
                let marker = match self.lists.last_mut() {
                    Some(Some(number)) => {
                        let marker = format!("{number}. ");
                        *number += 1;
                        marker
                    }
                    _ => "- ".to_owned(),
                };
                self.out.push_str(&marker);
                self.containers.push(Container::Item(marker.len()));
                self.at_item_start = true;
            }
            Tag::DefinitionListTitle | Tag::DefinitionListDefinition | Tag::TableRow => {
                self.newline();
            }
            Tag::TableHead => self.begin_block(),
            Tag::TableCell => {
                if !self.out.ends_with('\n') && !self.out.ends_with(' ') {
                    self.out.push_str(" | ");
                }
            }
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                self.links.push((self.out.len(), dest_url.into_string()));
            }
            Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::BlockQuote(_) => {
                self.containers.pop();
            }
            TagEnd::Item => {
                self.containers.pop();
                self.at_item_start = false;
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.at_item_start = false;
            }
            TagEnd::Link | TagEnd::Image => {
                if let Some((start, url)) = self.links.pop() {
                    let text = &self.out[start..];
                    let same = text == url || url.strip_prefix("mailto:") == Some(text);
                    if text.is_empty() {
                        self.out.push_str(&url);
                    } else if !same {
                        self.out.push_str(&format!(" ({url})"));
                    }
                }
            }
            _ => {}
        }
    }

    fn in_item(&self) -> bool {
        matches!(self.containers.last(), Some(Container::Item(_)))
    }

    /// The characters every new line starts with at the current nesting.
    fn prefix(&self) -> String {
        let mut prefix = String::new();
        for container in &self.containers {
            match container {
                Container::Quote => prefix.push_str("> "),
                Container::Item(width) => prefix.push_str(&" ".repeat(*width)),
            }
        }
        prefix
    }

    fn newline(&mut self) {
        let prefix = self.prefix();
        self.out.push('\n');
        self.out.push_str(&prefix);
    }

    /// Separates a new block from what came before by one blank line, unless it is the
    /// first thing in its list item or quote.
    fn begin_block(&mut self) {
        if self.at_item_start {
            self.at_item_start = false;
            return;
        }
        if self.out.is_empty() || self.out.ends_with("> ") && self.quote_just_opened() {
            return;
        }
        let prefix = self.prefix();
        self.out.push('\n');
        self.out.push_str(prefix.trim_end());
        self.out.push('\n');
        self.out.push_str(&prefix);
    }

    /// Whether the text so far ends exactly at a freshly written quote marker.
    fn quote_just_opened(&self) -> bool {
        let prefix = self.prefix();
        let line_start = self.out.rfind('\n').map_or(0, |i| i + 1);
        self.out[line_start..] == prefix
    }

    fn write(&mut self, text: &str) {
        self.at_item_start = false;
        // Code and HTML blocks carry their own line breaks, ending with one.
        let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
        if let Some(first) = lines.next() {
            self.out.push_str(first);
        }
        for line in lines {
            self.newline();
            self.out.push_str(line);
        }
    }

    fn finish(self) -> String {
        // Trailing spaces from line prefixes would otherwise linger on blank lines.
        let lines: Vec<&str> = self.out.lines().map(str::trim_end).collect();
        lines.join("\n").trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_renders_markdown() {
        assert_eq!(
            to_html("Hello **Ada**, see [the menu](https://example.com/menu)."),
            "<p>Hello <strong>Ada</strong>, see <a href=\"https://example.com/menu\">the menu</a>.</p>\n"
        );
    }

    #[test]
    fn html_escapes_inline_html() {
        let html = to_html("Hi <script>alert(1)</script> there");
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }

    #[test]
    fn html_escapes_html_blocks() {
        let html = to_html("<div onclick=\"x()\">\n<script>alert(1)</script>\n</div>\n\nAfter");
        assert!(!html.contains("<div"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;div onclick=\"x()\"&gt;"), "{html}");
        assert!(html.contains("<p>After</p>"), "{html}");
    }

    #[test]
    fn html_escapes_html_comments_and_processing_instructions() {
        let html = to_html("<!-- hidden -->\n\n<?php echo 1; ?>");
        assert!(!html.contains("<!--"), "{html}");
        assert!(!html.contains("<?php"), "{html}");
    }

    #[test]
    fn html_drops_unsafe_link_schemes_but_keeps_their_text() {
        for url in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,x",
            "vbscript:x",
        ] {
            let html = to_html(&format!("[click]({url})"));
            assert_eq!(html, "<p>click</p>\n", "{url}");
        }
        let html = to_html("![pixel](javascript:alert(1))");
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn html_keeps_safe_links() {
        for url in [
            "https://a.example/x?y=1#z",
            "http://a.example",
            "mailto:a@b.example",
            "tel:+3906",
            "/relative",
            "#top",
        ] {
            let html = to_html(&format!("[x]({url})"));
            assert!(html.contains("<a href="), "{url}: {html}");
        }
    }

    #[test]
    fn safe_url_rules() {
        assert!(is_safe_url("https://x"));
        assert!(is_safe_url("path/with:colon"));
        assert!(!is_safe_url("java\tscript:x"));
        assert!(!is_safe_url("file:///etc/passwd"));
    }

    #[test]
    fn escape_html_escapes_the_five_characters() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn text_separates_paragraphs_with_a_blank_line() {
        assert_eq!(
            to_text("First line\nsame paragraph.\n\n\n\nSecond."),
            "First line\nsame paragraph.\n\nSecond."
        );
    }

    #[test]
    fn text_renders_bullet_lists_with_dashes() {
        assert_eq!(
            to_text("Intro:\n\n* one\n* two\n+ three"),
            "Intro:\n\n- one\n- two\n\n- three"
        );
        assert_eq!(to_text("- a\n- b\n\nAfter"), "- a\n- b\n\nAfter");
    }

    #[test]
    fn text_numbers_ordered_lists_and_indents_nested_ones() {
        assert_eq!(to_text("3. c\n4. d"), "3. c\n4. d");
        assert_eq!(
            to_text("- a\n  - a1\n  - a2\n- b"),
            "- a\n  - a1\n  - a2\n- b"
        );
    }

    #[test]
    fn text_renders_loose_list_items() {
        assert_eq!(to_text("- a\n\n  more a\n- b"), "- a\n\n  more a\n- b");
    }

    #[test]
    fn text_renders_links_as_text_and_url() {
        assert_eq!(
            to_text("See [the menu](https://example.com/menu)."),
            "See the menu (https://example.com/menu)."
        );
        assert_eq!(to_text("<https://example.com>"), "https://example.com");
        assert_eq!(
            to_text("[https://example.com](https://example.com)"),
            "https://example.com"
        );
        assert_eq!(to_text("<hello@example.com>"), "hello@example.com");
        assert_eq!(
            to_text("![logo](https://example.com/l.png)"),
            "logo (https://example.com/l.png)"
        );
    }

    #[test]
    fn text_drops_emphasis_markers() {
        assert_eq!(to_text("*a* **b** _c_ __d__ ~~e~~ `f`"), "a b c d e f");
    }

    #[test]
    fn text_renders_headings_as_their_text() {
        assert_eq!(
            to_text("# Welcome\n\nBody\n\n## Next *step*\nMore"),
            "Welcome\n\nBody\n\nNext step\n\nMore"
        );
        assert_eq!(to_text("Title\n====="), "Title");
    }

    #[test]
    fn text_keeps_raw_html_as_literal_text() {
        assert_eq!(to_text("Hi <b>Ada</b>"), "Hi <b>Ada</b>");
    }

    #[test]
    fn text_renders_quotes_code_and_rules() {
        assert_eq!(
            to_text("> quoted\n> line\n\nafter"),
            "> quoted\n> line\n\nafter"
        );
        assert_eq!(
            to_text("```\nlet x = 1;\nlet y = 2;\n```"),
            "let x = 1;\nlet y = 2;"
        );
        assert_eq!(to_text("a\n\n---\n\nb"), "a\n\n---\n\nb");
        assert_eq!(to_text("line  \nbreak"), "line\nbreak");
    }

    #[test]
    fn text_that_looks_like_an_attribute_is_text() {
        // From the `markdown` fuzz target, whose first check mistook this for a link.
        let html = to_html("Some *text* an\u{11}\0href=\"data:\0d **bold**, [a link](h#t ");
        assert_eq!(
            html,
            "<p>Some <em>text</em> an\u{11}\0href=\"data:\0d <strong>bold</strong>, [a link](h#t</p>\n"
        );
    }

    /// What a template body holds once MiniJinja has interpolated a contact's value.
    fn interpolated(value: &str) -> String {
        tend_core::template::escape_markdown(value)
    }

    #[test]
    fn interpolated_contact_data_is_never_a_link_image_or_html() {
        let html = to_html(&format!(
            "Hi {}, welcome.",
            interpolated(
                "[Click here](https://evil.example) ![x](https://evil.example/p.gif) <script>"
            )
        ));
        assert_eq!(
            html,
            "<p>Hi [Click here](https://evil.example) ![x](https://evil.example/p.gif) &lt;script&gt;, welcome.</p>\n"
        );
    }

    proptest::proptest! {
        /// Whatever a contact typed, interpolated between the author's words it stays
        /// inside the author's one paragraph, as text; the plain-text part reads it
        /// as typed, on one line, tabs as spaces.
        #[test]
        fn interpolated_text_renders_as_itself(value in "[ -~\\n\\r\\t\\u{a0}é東]{0,40}") {
            let markdown = format!("Dear {}* [book](https://x.example).", interpolated(&value));
            let html = to_html(&markdown);
            let stripped = html
                .replacen("<p>", "", 1)
                .replacen("<a href=\"https://x.example\">book</a>", "", 1)
                .replacen("</p>", "", 1);
            proptest::prop_assert!(!stripped.contains('<'), "{value:?} gave {html}");
            let one_line: Vec<&str> = value
                .split(['\n', '\r'])
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let typed = format!("Dear {}", one_line.join(" ").replace('\t', " "));
            let text = to_text(&format!("Dear {}", interpolated(&value)));
            proptest::prop_assert_eq!(text.as_str(), typed.trim_end());
        }
    }

    #[test]
    fn text_of_empty_input_is_empty() {
        assert_eq!(to_text(""), "");
        assert_eq!(to_html(""), "");
    }
}
