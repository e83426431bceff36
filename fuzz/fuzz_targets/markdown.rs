//! Markdown to the HTML and text parts of an email, with the HTML's safety promises
//! checked: raw HTML never passes, links never use script schemes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tend_engine::markdown::{to_html, to_text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let html = to_html(text);
    let _ = to_text(text);
    // Text is escaped, so `<` only opens an element pulldown-cmark wrote: never raw
    // HTML, and links and images only with safe schemes.
    let lower = html.to_ascii_lowercase();
    for forbidden in ["<script", "<iframe", "<style", "<div", "<!--", "<?"] {
        assert!(
            !lower.contains(forbidden),
            "{forbidden} in {html:?} from {text:?}"
        );
    }
    for opener in ["<a href=\"", "<img src=\""] {
        for (at, _) in lower.match_indices(opener) {
            let url = &lower[at + opener.len()..];
            for scheme in ["javascript:", "data:", "vbscript:", "file:"] {
                assert!(
                    !url.starts_with(scheme),
                    "{scheme} link in {html:?} from {text:?}"
                );
            }
        }
    }
});
