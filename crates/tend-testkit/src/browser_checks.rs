//! What every page must do for people, checked in the browser: fit a phone's width,
//! fetch nothing from another origin, label every control, show where the keyboard
//! focus is, and weigh little.

use crate::browser::Page;

/// The whole weight of a page as loaded: the document and everything it fetched,
/// decoded, in bytes.
pub fn page_bytes(page: &Page) -> u64 {
    page.eval(
        "(() => { const n = performance.getEntriesByType('navigation')[0];
          const r = performance.getEntriesByType('resource');
          return (n ? n.decodedBodySize : 0) + r.reduce((s, e) => s + e.decodedBodySize, 0); })()",
    )
    .as_u64()
    .expect("a byte count")
}

impl Page {
    /// Nothing is wider than the viewport: the page does not scroll sideways (a wide
    /// table may scroll inside its own box). Names the elements that stick out.
    pub fn assert_no_horizontal_overflow(&self, what: &str) {
        let found = self.eval(
            "(() => { const w = document.documentElement.clientWidth;
              // Inside a box that scrolls or clips on its own (a wide table in an
              // overflow-x: auto block), sticking out does not move the page. Boxes
              // nest (an SVG clips, inside a table that scrolls): any of them inside
              // the viewport contains it.
              const contained = e => {
                for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
                  if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(a).overflowX)
                      && a.getBoundingClientRect().right <= w + 1)
                    return true;
                }
                return false;
              };
              const wide = [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > w + 1 && !contained(e))
                .slice(0, 5)
                .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                  + (e.className && typeof e.className === 'string' ? '.' + e.className : '')
                  + ' ' + Math.round(e.getBoundingClientRect().right) + 'px');
              return { scroll: document.documentElement.scrollWidth, width: w, wide }; })()",
        );
        let scroll = found["scroll"].as_u64().unwrap_or(0);
        let width = found["width"].as_u64().unwrap_or(0);
        assert!(
            scroll <= width && found["wide"].as_array().is_none_or(|w| w.is_empty()),
            "{what} scrolls sideways at {width}px (content {scroll}px wide): {}",
            found["wide"]
        );
    }

    /// Every request the page made went to the site under test.
    pub fn assert_same_origin_only(&self, what: &str) {
        let elsewhere: Vec<String> = self
            .requests()
            .into_iter()
            .filter(|url| !url.starts_with(&format!("{}/", self.base)) && url != &self.base)
            .collect();
        assert!(
            elsewhere.is_empty(),
            "{what} made requests outside {}: {elsewhere:?}",
            self.base
        );
    }

    /// Every input, select and textarea has a label (a `<label>`, `aria-label` or
    /// `aria-labelledby`) and every button and link has a name.
    pub fn assert_controls_labelled(&self, what: &str) {
        let unlabelled = self.eval(
            "[...document.querySelectorAll('input, select, textarea, button, a[href]')]
              .filter(e => e.type !== 'hidden')
              .filter(e => {
                if (e.getAttribute('aria-label') || e.getAttribute('aria-labelledby')) return false;
                if (e.tagName === 'BUTTON' || e.tagName === 'A') return !e.innerText.trim();
                if (e.type === 'submit' || e.type === 'button') return !e.value;
                return !(e.labels && e.labels.length);
              })
              .map(e => e.outerHTML.slice(0, 120))",
        );
        assert!(
            unlabelled.as_array().is_some_and(|u| u.is_empty()),
            "{what} has controls without a label: {unlabelled}"
        );
    }

    /// Tabbing through the page reaches its controls, and each shows a visible focus
    /// indicator (an outline or a box shadow). Checks at most `stops` tab stops.
    pub fn assert_focus_visible(&self, what: &str, stops: usize) {
        let reached = self.tab_through(what, stops);
        assert!(reached > 0, "{what}: the Tab key reaches no control");
    }

    /// Tabbing reaches every visible control of the page (links, buttons, fields,
    /// summaries) and each shows a visible focus indicator.
    pub fn assert_focus_visible_on_every_control(&self, what: &str) {
        // A group of radio buttons is one tab stop: the arrow keys move within it.
        let controls = self
            .eval(
                "(() => { const groups = new Set();
                  return [...document.querySelectorAll('a[href], button, \
                    input:not([type=hidden]), select, textarea, summary, \
                    [tabindex]:not([tabindex=\"-1\"])')]
                  .filter(e => !e.disabled && e.getClientRects().length)
                  .filter(e => {
                    if (e.type !== 'radio' || !e.name) return true;
                    if (groups.has(e.name)) return false;
                    groups.add(e.name);
                    return true;
                  }).length; })()",
            )
            .as_u64()
            .unwrap_or(0) as usize;
        // A box that scrolls (a wide table) is a tab stop of its own in Chromium.
        let reached = self.tab_through(what, controls + 32);
        assert!(
            reached >= controls,
            "{what}: the Tab key reaches {reached} of {controls} controls"
        );
    }

    /// Presses Tab from the top of the page until the focus leaves it, comes back to
    /// where it started or `stops` are made, checking each stop; how many it made.
    fn tab_through(&self, what: &str, stops: usize) -> usize {
        self.eval("document.activeElement && document.activeElement.blur()");
        self.eval("window.__tendSeen = new Set()");
        let mut reached = 0;
        for _ in 0..stops {
            self.key("Tab");
            let focused = self.eval(
                "(() => { const e = document.activeElement;
                  if (!e || e === document.body) return null;
                  if (window.__tendSeen.has(e)) return 'again';
                  window.__tendSeen.add(e);
                  const s = getComputedStyle(e);
                  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
                  return { html: e.outerHTML.slice(0, 120),
                           visible: outline || (s.boxShadow && s.boxShadow !== 'none') }; })()",
            );
            if focused.is_null() || focused == "again" {
                break;
            }
            reached += 1;
            assert_eq!(
                focused["visible"], true,
                "{what}: the keyboard focus is invisible on {}",
                focused["html"]
            );
        }
        reached
    }
}
