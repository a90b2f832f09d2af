//! Templates: adding each to the operation's environment, reporting syntax
//! errors and unknown variables at their position in the mapping file
//! (block scalars included).

use std::collections::BTreeSet;

use serde_saphyr::Spanned;

use super::Cx;

/// Names minijinja provides itself; a template may use them without an
/// input declaring them.
const TEMPLATE_GLOBALS: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "debug",
    "loop",
    "self",
    "super",
];

impl Cx<'_> {
    /// Add a template and check it refers only to known variables.
    pub(super) fn template(
        &mut self,
        env: &mut minijinja::Environment<'static>,
        name: &str,
        src: &Spanned<String>,
        known: &BTreeSet<String>,
    ) -> bool {
        if let Err(e) = env.add_template_owned(name.to_string(), src.value.clone()) {
            self.template_error(src, &e);
            return false;
        }
        self.check_variables(env, name, src, known)
    }

    pub(super) fn check_variables(
        &mut self,
        env: &minijinja::Environment<'static>,
        name: &str,
        src: &Spanned<String>,
        known: &BTreeSet<String>,
    ) -> bool {
        let Ok(t) = env.get_template(name) else {
            return false;
        };
        let mut unknown: Vec<String> = t
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !known.contains(v) && !TEMPLATE_GLOBALS.contains(&v.as_str()))
            .collect();
        unknown.sort();
        for v in &unknown {
            let line = src
                .value
                .lines()
                .position(|l| contains_word(l, v))
                .map_or(1, |i| i + 1);
            let (l, c) = self.template_pos(src, line);
            let known_list: Vec<&str> = known.iter().map(String::as_str).collect();
            self.error_at(
                l,
                c,
                format!(
                    "unknown template variable {v} (known: {})",
                    known_list.join(", ")
                ),
            );
        }
        unknown.is_empty()
    }

    pub(super) fn template_error(&mut self, src: &Spanned<String>, e: &minijinja::Error) {
        let (l, c) = self.template_pos(src, e.line().unwrap_or(1));
        let message = match e.detail() {
            Some(d) => format!("template syntax error: {d}"),
            None => format!("template syntax error: {}", e.kind()),
        };
        self.error_at(l, c, message);
    }

    /// The file position of line `tline` (1-based) of a template whose value
    /// starts at `src`: a block scalar (`|`, `>`) starts on the next line.
    fn template_pos(&self, src: &Spanned<String>, tline: usize) -> (u64, u64) {
        let at = src.referenced;
        let first_line = self
            .text
            .lines()
            .nth(usize::try_from(at.line()).unwrap_or(1).saturating_sub(1))
            .unwrap_or("");
        let col0 = usize::try_from(at.column()).unwrap_or(1).saturating_sub(1);
        let block = first_line
            .chars()
            .nth(col0)
            .is_some_and(|c| c == '|' || c == '>');
        let offset = u64::try_from(tline.saturating_sub(1)).unwrap_or(0);
        if !block && offset == 0 {
            return (at.line(), at.column());
        }
        let line = at.line() + offset + u64::from(block);
        let indent = self
            .text
            .lines()
            .nth(usize::try_from(line).unwrap_or(1).saturating_sub(1))
            .map_or(0, |l| l.len() - l.trim_start().len());
        (line, indent as u64 + 1)
    }
}

/// True when `word` occurs in `line` as a whole identifier.
fn contains_word(line: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}
