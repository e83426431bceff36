use super::*;

fn errors(text: &str) -> Vec<String> {
    match Template::parse("templates/t.md", text) {
        Ok(_) => vec![],
        Err(diags) => diags.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn parses_subject_and_body() {
    let t = Template::parse(
        "templates/welcome.md",
        "Subject: Hi {{ contact.first_name }}\n\nHello!\n",
    )
    .unwrap();
    assert_eq!(t.name, "welcome");
    assert_eq!(t.subject, "Hi {{ contact.first_name }}");
    assert_eq!(t.body, "Hello!\n");
}

#[test]
fn crlf_files_work() {
    let t = Template::parse("t.md", "Subject: Hi\r\n\r\nBody\r\n").unwrap();
    assert_eq!(t.subject, "Hi");
    assert_eq!(t.body, "Body\r\n");
}

#[test]
fn layout_errors_point_at_the_line() {
    assert_eq!(
        errors("Hello\n\nbody"),
        [
            "templates/t.md:1:1: the first line must be the subject, e.g. `Subject: Welcome, {{ contact.first_name }}`"
        ]
    );
    assert_eq!(
        errors("Subject: x\nnot blank\nbody"),
        [
            "templates/t.md:2:1: the second line must be blank: the subject line, a blank line, then the body"
        ]
    );
    assert_eq!(
        errors("Subject: x\n\n   \n"),
        ["templates/t.md:3:1: the body is empty"]
    );
    assert_eq!(
        errors("Subject:\n\nbody"),
        ["templates/t.md:1:9: the subject is empty"]
    );
    assert_eq!(
        errors(""),
        ["templates/t.md:1:1: empty template; expected `Subject: …`, a blank line, then the body"]
    );
}

#[test]
fn syntax_errors_are_placed_in_the_file() {
    // Line 4 of the file is line 2 of the body.
    let errs = errors("Subject: Hi\n\nHello\nthere {{ contact.name + }}\n");
    assert_eq!(
        errs,
        ["templates/t.md:4:25: template syntax: unexpected end of variable block"]
    );
    // In the subject, columns count from the start of the `Subject:` line.
    let errs = errors("Subject: Hi {% if x %}\n\nbody");
    assert_eq!(
        errs,
        ["templates/t.md:1:21: template syntax: unexpected end of input, expected end of block"]
    );
}

#[test]
fn unknown_variables_point_at_the_variable() {
    let errs = errors(
        "Subject: Hi {{ contact.nmae }}\n\nDear {{ contact.first_name }},\n  see {{ buisness.name }} and {{ contact.attributes.size }}\n",
    );
    assert_eq!(
        errs,
        [
            "templates/t.md:1:16: unknown variable `contact.nmae`; did you mean `contact.name`?",
            "templates/t.md:4:10: unknown variable `buisness.name`; did you mean `business.name`?",
        ]
    );
}

#[test]
fn locals_globals_and_filters_are_fine() {
    assert!(
        errors(
            "Subject: {{ contact.first_name | default(\"there\") | title }}\n\n\
                 {% set greeting = \"Hi\" %}{{ greeting }}\n\
                 {% for i in range(3) %}{{ loop.index }}{{ i }}{% endfor %}\n\
                 {# {{ nothing.here }} #}{{ \"contact.nmae\" }}\n\
                 {{ unsubscribe_url }} {{ business.name }} {{ contact.attributes.a.b }}\n"
        )
        .is_empty()
    );
}

#[test]
fn deeper_fields_of_plain_text_are_rejected() {
    assert_eq!(
        errors("Subject: x\n\n{{ contact.name.first }}"),
        [
            "templates/t.md:3:4: unknown variable `contact.name.first`: `contact.name` is plain text and has no `first`"
        ]
    );
}

#[test]
fn unknown_filters_are_reported_at_the_filter() {
    let errs = errors("Subject: x\n\nHi {{ contact.name | shout }}");
    assert_eq!(
        errs,
        ["templates/t.md:3:22: template: filter shout is unknown"]
    );
}

#[test]
fn renders_with_a_context() {
    let t = Template::parse(
        "t.md",
        "Subject: Hi {{ contact.first_name | default(\"there\") }}\n  again\n\nFrom {{ business.name }}: {{ contact.attributes.missing.deep }}.\n{{ unsubscribe_url }}",
    );
    // A subject spanning two lines is a layout error, so build one directly.
    assert!(t.is_err());
    let t = Template::new(
        "t",
        "Hi {{ contact.first_name | default(\"there\") }}\n again",
        "From {{ business.name }}: {{ contact.attributes.missing.deep }}.\n{{ unsubscribe_url }}",
    );
    let mut ctx = RenderContext::sample();
    ctx.contact.first_name = None;
    let out = t.render(&ctx.to_value()).unwrap();
    assert_eq!(out.subject, "Hi there again");
    assert_eq!(
        out.body,
        "From Example Business: .\nhttps://example.com/unsubscribe/sample"
    );
}

#[test]
fn a_template_compiled_once_renders_each_contact_its_own_way() {
    let t = Template::new("t", "Hi {{ contact.name }}", "{{ contact.email }}");
    let mut ann = RenderContext::sample();
    let first = t.render(&ann.to_value()).unwrap();
    ann.contact.name = Some("Bo".into());
    ann.contact.email = "bo@example.com".into();
    let copy = t.clone();
    let second = copy.render(&ann.to_value()).unwrap();
    assert_eq!(first.subject, "Hi Ann Example");
    assert_eq!(
        (second.subject.as_str(), second.body.as_str()),
        ("Hi Bo", "bo\\@example\\.com")
    );
    // A part that does not compile fails each render the same way, naming the part.
    let broken = Template::new("b", "ok", "{% if %}");
    for _ in 0..2 {
        let err = broken.render(&ann.to_value()).unwrap_err();
        assert_eq!(err.what, "b body");
        assert!(!err.message.is_empty());
    }
}

#[test]
fn render_errors_name_the_part() {
    let t = Template::new("t", "ok", "{{ 1 + contact }}");
    let err = t.render(&RenderContext::sample().to_value()).unwrap_err();
    assert_eq!(err.what, "t body");
}

#[test]
fn contact_data_in_a_body_is_escaped_text_and_the_author_s_markup_is_not() {
    let t = Template::new(
        "t",
        "Hi {{ contact.name }}",
        "**Hi** {{ contact.name }}, [book]({{ unsubscribe_url }}) <{{ unsubscribe_url }}> \
             {{ contact.attributes.note | upper }} {{ contact.first_name | default(\"[x](y)\") }}",
    );
    let mut ctx = RenderContext::sample();
    ctx.contact.name = Some("[Click here](https://evil.example)".into());
    ctx.contact.first_name = None;
    ctx.contact.attributes = serde_json::json!({ "note": "<script>_a_ & ![p](q)" });
    let out = t.render(&ctx.to_value()).unwrap();
    assert_eq!(
        out.body,
        "**Hi** \\[Click here\\]\\(https\\:\\/\\/evil\\.example\\), \
             [book](https://example.com/unsubscribe/sample) <https://example.com/unsubscribe/sample> \
             \\<SCRIPT\\>\\_A\\_ \\& \\!\\[P\\]\\(Q\\) \\[x\\]\\(y\\)"
    );
    // The subject is one plain line, not Markdown: nothing to escape there.
    assert_eq!(out.subject, "Hi [Click here](https://evil.example)");
}

#[test]
fn every_way_of_printing_a_value_in_a_body_escapes_it() {
    let mut ctx = RenderContext::sample();
    ctx.contact.name = Some("*x*".into());
    ctx.contact.attributes = serde_json::json!({ "tags": ["[a]", "<b>"] });
    let render = |body: &str| {
        Template::new("t", "s", body)
            .render(&ctx.to_value())
            .unwrap()
            .body
    };
    assert_eq!(render("{{ contact.name | e }}"), "\\*x\\*");
    assert_eq!(
        render("{% set n %}{{ contact.name }}{% endset %}{{ n }}"),
        "\\*x\\*"
    );
    assert_eq!(
        render("{% for t in contact.attributes.tags %}{{ t }} {% endfor %}"),
        "\\[a\\] \\<b\\> "
    );
    assert_eq!(render("{{ contact.name ~ '!' }}"), "\\*x\\*\\!");
    assert_eq!(
        render("{{ contact.attributes.tags | join(', ') }}"),
        "\\[a\\]\\, \\<b\\>"
    );
    assert_eq!(
        render("{{ 3 }} {{ none }} {{ contact.missing }}."),
        "3 None ."
    );
}

#[test]
fn a_value_cannot_end_the_author_s_line_or_paragraph() {
    // Found by the `template` fuzz target: a name ending in a line break turned the
    // author's closing `*` into a list bullet.
    let t = Template::new(
        "t",
        "s",
        "Dear {{ contact.name }}* [book](https://x.example).",
    );
    let mut ctx = RenderContext::sample();
    ctx.contact.name = Some("  \0&{ x }}*e }}*,\n\n{.\n".into());
    let body = t.render(&ctx.to_value()).unwrap().body;
    assert_eq!(
        body,
        "Dear \\&\\{ x \\}\\}\\*e \\}\\}\\*\\, \\{\\.* [book](https://x.example)."
    );
    assert_eq!(escape_markdown("a\r\n\r\n    b\u{2028}c "), "a b c");
    assert_eq!(escape_markdown("a\tb\u{1b}[31m\0"), "a b\\[31m");
}

#[test]
fn escaped_markdown_keeps_every_character() {
    assert_eq!(escape_markdown("Ann O'Brien"), "Ann O\\'Brien");
    assert_eq!(escape_markdown("Zoë 東京 \\"), "Zoë 東京 \\\\");
}

#[test]
fn titles_render_on_one_line() {
    let ctx = RenderContext::sample().to_value();
    assert_eq!(
        render_text("Call {{ contact.name }}\nnow", &ctx).unwrap(),
        "Call Ann Example now"
    );
}

#[test]
fn first_names_come_from_full_names() {
    assert_eq!(first_name_of("  Ann  Example "), Some("Ann".into()));
    assert_eq!(first_name_of(" "), None);
}

#[test]
fn expression_names_skip_strings_and_attributes() {
    let names = expression_names("a {{ x.y | f(\"q.r\") }} {% if z . w %}{{ (a).b }}{% endif %}");
    let just: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(just, ["x.y", "f", "if", "z.w", "a", "endif"]);
    assert_eq!(names[0].1, 5);
}
