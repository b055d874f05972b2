//! The posture page: the zone posture of a cluster in a browser, built from the very
//! document `audit -o json` writes.
//!
//! [`document`] is the one function that turns a report into that document; `audit -o json`
//! prints it, `serve --ui` answers `/api/posture` with it, and [`html`] inlines it into the
//! page for `audit -o html`, so the three can never disagree. The page is plain HTML, CSS and
//! JavaScript compiled into the binary (no build step, no CDN, no request at view time other
//! than `serve`'s own `/api/posture`).

use std::sync::LazyLock;

use crate::audit::Report;

const TEMPLATE: &str = include_str!("assets/page.html");
const STYLE: &str = include_str!("assets/page.css");
const SCRIPT: &str = include_str!("assets/page.js");

/// Where the stylesheet, the script and the data go in the template.
const STYLE_MARK: &str = "/*@style*/";
const SCRIPT_MARK: &str = "/*@script*/";
const DATA_MARK: &str = "<!--@data-->";

/// The page with its stylesheet and script inlined, the data slot still empty.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    TEMPLATE
        .replacen(STYLE_MARK, STYLE, 1)
        .replacen(SCRIPT_MARK, SCRIPT, 1)
});

/// The posture document: the audit report as `audit -o json` writes it.
pub fn document(report: &Report) -> String {
    report.to_json()
}

/// [`document`], written to `out` as it is serialised.
pub fn write_document(report: &Report, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    report.write_json(out)
}

/// The page without data: it reads `api/posture` (relative, so that it also works behind
/// `kubectl proxy` or a path-rewriting ingress). `serve --ui` serves it at `/`.
pub fn page() -> String {
    PAGE.replacen(DATA_MARK, "", 1)
}

/// The page with the report's document inlined: one self-contained file that reads nothing.
pub fn html(report: &Report) -> String {
    with_data(&document(report))
}

/// The page with `document` (JSON) inlined in its data block.
pub fn with_data(document: &str) -> String {
    PAGE.replacen(DATA_MARK, &script_safe(document), 1)
}

/// JSON that cannot end its `<script>` element early: `<`, `>` and `&` only occur inside
/// JSON strings, where their `\u` escapes mean the same characters.
fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    for c in json.trim_end().chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_has_every_slot_once() {
        for mark in [STYLE_MARK, SCRIPT_MARK, DATA_MARK] {
            assert_eq!(TEMPLATE.matches(mark).count(), 1, "{mark}");
        }
        for mark in [STYLE_MARK, SCRIPT_MARK, DATA_MARK] {
            assert!(!STYLE.contains(mark) && !SCRIPT.contains(mark), "{mark}");
        }
    }

    #[test]
    fn inlined_json_cannot_close_its_script_and_reads_back_the_same() {
        let json = r#"{"message":"</script><script>alert(1)</script> & <!-- -->"}"#;
        let safe = script_safe(json);
        assert!(!safe.contains('<') && !safe.contains('>'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        let orig: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn the_page_names_no_other_origin() {
        let page = page();
        for url in ["http://", "https://", "//cdn", "@import"] {
            assert!(!page.contains(url), "{url} in the page");
        }
    }
}
