//! The `--help` text, rendered from the option definitions in options.rs.

use crate::options::{self, Section, EXIT_STATUS, MODES, OPTIONS};

/// Width of the help text.
const WIDTH: usize = 80;
/// Column where descriptions start.
const DESC_COL: usize = 24;

/// Splits `text` into lines of at most `width` columns (a longer word stands alone).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Like [`wrap`], but never separates an option from the value that follows it.
pub fn wrap_pairs(text: &str, width: usize) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in text.split_whitespace() {
        match words.last_mut() {
            Some(prev)
                if prev.starts_with('-')
                    && !prev.contains('\u{1}')
                    && !w.starts_with(['-', '[']) =>
            {
                prev.push('\u{1}');
                prev.push_str(w);
            }
            _ => words.push(w.to_owned()),
        }
    }
    wrap(&words.join(" "), width)
        .into_iter()
        .map(|l| l.replace('\u{1}', " "))
        .collect()
}

/// Appends a two-column row: `left` at column 2, `desc` wrapped from [`DESC_COL`].
fn row(out: &mut String, left: &str, desc: &str) {
    let mut first = format!("  {left}");
    let desc_lines = wrap(desc, WIDTH - DESC_COL);
    let mut rest = desc_lines.iter();
    if first.len() + 2 <= DESC_COL {
        if let Some(l) = rest.next() {
            first = format!("{first:<DESC_COL$}{l}");
        }
    }
    out.push_str(&first);
    out.push('\n');
    for l in rest {
        out.push_str(&format!("{:DESC_COL$}{l}\n", ""));
    }
}

fn paragraph(out: &mut String, text: &str) {
    for l in wrap(text, WIDTH) {
        out.push_str(&l);
        out.push('\n');
    }
}

/// What `xenguest --help` prints (on stdout, the one exception to "only the result").
pub fn help_text() -> String {
    let mut out = format!("xenguest: {}\n\n", options::SUMMARY);
    let usage = wrap_pairs(&format!("xenguest {}", options::SYNOPSIS), WIDTH - 7);
    for (i, l) in usage.iter().enumerate() {
        let lead = if i == 0 { "Usage: " } else { "         " };
        out.push_str(&format!("{lead}{l}\n"));
    }
    out.push('\n');
    // The parsing rules: the second paragraph of the description.
    if let Some(rules) = options::DESCRIPTION.get(1) {
        paragraph(&mut out, rules);
    }
    out.push_str("\nModes (-mode NAME):\n");
    for m in MODES {
        let desc = if m.supported {
            m.description.to_owned()
        } else {
            format!("{} (not supported yet)", m.description)
        };
        row(&mut out, m.name, &desc);
    }
    for section in [Section::Xenguest, Section::Implementation] {
        out.push_str(&format!("\n{}:\n", section.title()));
        for o in OPTIONS.iter().filter(|o| o.section == section) {
            row(&mut out, &o.synopsis(), o.description);
        }
    }
    out.push('\n');
    for p in options::OUTPUT.iter().take(2) {
        paragraph(&mut out, p);
    }
    out.push_str("\nExit status:\n");
    for (status, meaning) in EXIT_STATUS {
        row(&mut out, status, meaning);
    }
    out.push_str("\nThe manual (files, environment, examples): xenguest --man | man -l -\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_width_and_words() {
        let text = "one two three four five six seven eight nine ten";
        let lines = wrap(text, 12);
        assert!(lines.iter().all(|l| l.len() <= 12), "{lines:?}");
        assert_eq!(lines.join(" "), text);
        assert_eq!(
            wrap("averyveryverylongword x", 5),
            ["averyveryverylongword", "x"]
        );
    }

    #[test]
    fn help_lists_every_option_within_80_columns() {
        let h = help_text();
        for o in OPTIONS {
            assert!(h.contains(&o.synopsis()), "{} missing", o.synopsis());
        }
        for l in h.lines() {
            assert!(l.len() <= WIDTH, "too wide: {l:?}");
        }
    }
}
