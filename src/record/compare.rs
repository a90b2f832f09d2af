//! Field-by-field comparison of two answers to the same request: a recorded
//! one and a candidate's (a replay, or a shadow variant beside the served
//! call). Pure: element trees and strings in, a [`Comparison`] out.
//!
//! Each answer is flattened to its leaves — the element path (local names,
//! `[n]` where a name repeats among siblings on either side, 1-based),
//! `/@name` for an attribute — and the two sides are walked together, so a
//! repeated element is matched by position. A leaf compares as a number when
//! both values are decimals (`1.50` equals `1.5`), within the absolute
//! tolerance [`Tolerances`] gives its path (exact by default); every other
//! value compares as an exact string. Faults compare by code (`fault/code`),
//! and a declared fault's detail element field by field as well.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::xml::{Element, XSI_NS};

/// One side of a comparison: what a call answered.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    /// The response payload: the SOAP Body's children.
    Response(&'a [Element]),
    /// A fault: its code (a declared fault's is `DECLARED_FAULT:<name>`) and, for
    /// a declared fault, its detail element.
    Fault {
        code: &'a str,
        detail: Option<&'a Element>,
    },
}

/// Absolute tolerances for numeric leaves, by path. A path given without
/// indexes (`Order/Line/Amount`) also covers each repetition
/// (`Order/Line[2]/Amount`); an exact path wins over it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tolerances(BTreeMap<String, f64>);

impl Tolerances {
    pub fn new() -> Self {
        Tolerances::default()
    }

    /// Adds `path` within `abs` (made non-negative).
    pub fn with(mut self, path: impl Into<String>, abs: f64) -> Self {
        self.insert(path, abs);
        self
    }

    pub fn insert(&mut self, path: impl Into<String>, abs: f64) {
        self.0.insert(path.into(), abs.abs());
    }

    /// Parses `PATH=ABS` (the command line's `--tolerance`).
    pub fn parse_entry(entry: &str) -> Result<(String, f64), String> {
        let (path, abs) = entry
            .rsplit_once('=')
            .ok_or_else(|| format!("tolerance `{entry}` is not PATH=ABS"))?;
        let path = path.trim().trim_start_matches('/');
        let abs: f64 = abs
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("tolerance `{entry}`: `{abs}` is not a non-negative number"))?;
        if path.is_empty() {
            return Err(format!("tolerance `{entry}` names no path"));
        }
        Ok((path.to_string(), abs))
    }

    /// The tolerance of a leaf's path: its own, else its path without
    /// indexes', else none (exact).
    pub fn for_path(&self, path: &str) -> f64 {
        if let Some(t) = self.0.get(path) {
            return *t;
        }
        self.0.get(&strip_indexes(path)).copied().unwrap_or(0.0)
    }
}

/// How one leaf compares.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FieldStatus {
    Same,
    Differ {
        recorded: String,
        candidate: String,
        /// A word-level diff when either text is more than a few words.
        #[serde(skip_serializing_if = "Option::is_none")]
        diff: Option<String>,
    },
    /// In the recorded answer only.
    Missing {
        recorded: String,
    },
    /// In the candidate's answer only.
    Extra {
        candidate: String,
    },
}

/// One leaf of either answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    pub path: String,
    #[serde(flatten)]
    pub status: FieldStatus,
}

impl Field {
    pub fn agrees(&self) -> bool {
        self.status == FieldStatus::Same
    }
}

/// Every leaf of two answers, in document order (the recorded side's, then
/// what only the candidate has where it appears).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Comparison {
    pub fields: Vec<Field>,
}

impl Comparison {
    /// True when every field agrees.
    pub fn agrees(&self) -> bool {
        self.fields.iter().all(Field::agrees)
    }

    /// The share of fields that agree, 1.0 when there are none.
    pub fn ratio(&self) -> f64 {
        if self.fields.is_empty() {
            return 1.0;
        }
        let same = self.fields.iter().filter(|f| f.agrees()).count();
        same as f64 / self.fields.len() as f64
    }

    /// The fields that do not agree.
    pub fn differences(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| !f.agrees())
    }
}

/// Compares two answers: payloads field by field, faults by code (and
/// detail), a response against a fault as one disagreeing `fault/code`.
pub fn compare(recorded: Answer<'_>, candidate: Answer<'_>, tol: &Tolerances) -> Comparison {
    let mut out = Comparison::default();
    match (recorded, candidate) {
        (Answer::Response(r), Answer::Response(c)) => {
            walk_children(&elements_of(r), &elements_of(c), "", tol, &mut out.fields)
        }
        (
            Answer::Fault {
                code: rc,
                detail: rd,
            },
            Answer::Fault {
                code: cc,
                detail: cd,
            },
        ) => {
            out.fields
                .push(leaf("fault/code", rc, cc, &Tolerances::new()));
            let r: Vec<&Element> = rd.into_iter().collect();
            let c: Vec<&Element> = cd.into_iter().collect();
            walk_children(&r, &c, "fault/detail", tol, &mut out.fields);
        }
        (Answer::Response(_), Answer::Fault { code, .. }) => out.fields.push(Field {
            path: "fault/code".into(),
            status: FieldStatus::Extra {
                candidate: code.to_string(),
            },
        }),
        (Answer::Fault { code, .. }, Answer::Response(_)) => out.fields.push(Field {
            path: "fault/code".into(),
            status: FieldStatus::Missing {
                recorded: code.to_string(),
            },
        }),
    }
    out
}

/// Compares two response payloads field by field.
pub fn compare_payloads(
    recorded: &[Element],
    candidate: &[Element],
    tol: &Tolerances,
) -> Comparison {
    compare(Answer::Response(recorded), Answer::Response(candidate), tol)
}

fn elements_of(payload: &[Element]) -> Vec<&Element> {
    payload.iter().collect()
}

fn child_elements(el: &Element) -> Vec<&Element> {
    el.elements().collect()
}

fn join(prefix: &str, step: &str) -> String {
    if prefix.is_empty() {
        step.to_string()
    } else {
        format!("{prefix}/{step}")
    }
}

/// Walks two lists of sibling elements together: the n-th element of a
/// name on one side meets the n-th of that name on the other.
fn walk_children(
    r: &[&Element],
    c: &[&Element],
    prefix: &str,
    tol: &Tolerances,
    out: &mut Vec<Field>,
) {
    // Names in order of first appearance, the recorded side's first.
    let mut names: Vec<&str> = Vec::new();
    for e in r.iter().chain(c.iter()) {
        let name = e.name.local.as_str();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        let rs: Vec<&Element> = r.iter().copied().filter(|e| e.name.local == name).collect();
        let cs: Vec<&Element> = c.iter().copied().filter(|e| e.name.local == name).collect();
        let n = rs.len().max(cs.len());
        for i in 0..n {
            let step = if n > 1 {
                format!("{name}[{}]", i + 1)
            } else {
                name.to_string()
            };
            let path = join(prefix, &step);
            match (rs.get(i), cs.get(i)) {
                (Some(re), Some(ce)) => walk_element(re, ce, &path, tol, out),
                (Some(re), None) => flatten(re, &path, &mut |p, v| {
                    out.push(Field {
                        path: p,
                        status: FieldStatus::Missing { recorded: v },
                    })
                }),
                (None, Some(ce)) => flatten(ce, &path, &mut |p, v| {
                    out.push(Field {
                        path: p,
                        status: FieldStatus::Extra { candidate: v },
                    })
                }),
                (None, None) => {}
            }
        }
    }
}

fn walk_element(r: &Element, c: &Element, path: &str, tol: &Tolerances, out: &mut Vec<Field>) {
    let ra = attributes(r);
    let ca = attributes(c);
    for (name, rv) in &ra {
        let p = format!("{path}/@{name}");
        match ca.iter().find(|(n, _)| n == name) {
            Some((_, cv)) => out.push(leaf(&p, rv, cv, tol)),
            None => out.push(Field {
                path: p,
                status: FieldStatus::Missing {
                    recorded: rv.clone(),
                },
            }),
        }
    }
    for (name, cv) in &ca {
        if !ra.iter().any(|(n, _)| n == name) {
            out.push(Field {
                path: format!("{path}/@{name}"),
                status: FieldStatus::Extra {
                    candidate: cv.clone(),
                },
            });
        }
    }
    let rk = child_elements(r);
    let ck = child_elements(c);
    if rk.is_empty() && ck.is_empty() {
        out.push(leaf(path, &r.text(), &c.text(), tol));
        return;
    }
    // Mixed content: text beside elements counts only when it is not
    // layout whitespace on either side.
    let (rt, ct) = (r.text(), c.text());
    if !rt.trim().is_empty() || !ct.trim().is_empty() {
        out.push(leaf(&format!("{path}/text()"), &rt, &ct, tol));
    }
    walk_children(&rk, &ck, path, tol, out);
}

/// Every leaf under `el` (attributes, then text or child elements), with
/// the same paths the parallel walk gives when the other side is absent.
fn flatten(el: &Element, path: &str, emit: &mut dyn FnMut(String, String)) {
    for (name, v) in attributes(el) {
        emit(format!("{path}/@{name}"), v);
    }
    let kids = child_elements(el);
    if kids.is_empty() {
        emit(path.to_string(), el.text());
        return;
    }
    let text = el.text();
    if !text.trim().is_empty() {
        emit(format!("{path}/text()"), text);
    }
    let mut names: Vec<&str> = Vec::new();
    for e in &kids {
        if !names.contains(&e.name.local.as_str()) {
            names.push(e.name.local.as_str());
        }
    }
    for name in names {
        let same: Vec<&&Element> = kids.iter().filter(|e| e.name.local == name).collect();
        for (i, e) in same.iter().enumerate() {
            let step = if same.len() > 1 {
                format!("{name}[{}]", i + 1)
            } else {
                name.to_string()
            };
            flatten(e, &join(path, &step), emit);
        }
    }
}

/// An element's attributes as `(name, value)`: a name in no namespace as
/// is, `xsi:` for the schema-instance namespace, else `{ns}local`.
fn attributes(el: &Element) -> Vec<(String, String)> {
    el.attrs
        .iter()
        .map(|a| {
            let name = if a.name.ns.is_empty() {
                a.name.local.clone()
            } else if a.name.ns == XSI_NS {
                format!("xsi:{}", a.name.local)
            } else {
                format!("{{{}}}{}", a.name.ns, a.name.local)
            };
            (name, a.value.clone())
        })
        .collect()
}

/// Compares one leaf's two values.
fn leaf(path: &str, recorded: &str, candidate: &str, tol: &Tolerances) -> Field {
    let same = recorded == candidate
        || match (Decimal::parse(recorded), Decimal::parse(candidate)) {
            (Some(a), Some(b)) => a == b || within(recorded, candidate, tol.for_path(path)),
            _ => false,
        };
    let status = if same {
        FieldStatus::Same
    } else {
        FieldStatus::Differ {
            recorded: recorded.to_string(),
            candidate: candidate.to_string(),
            diff: word_diff(recorded, candidate),
        }
    };
    Field {
        path: path.to_string(),
        status,
    }
}

fn within(a: &str, b: &str, tolerance: f64) -> bool {
    if tolerance <= 0.0 {
        return false;
    }
    match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= tolerance,
        _ => false,
    }
}

/// `Order/Line[2]/Amount` → `Order/Line/Amount`.
fn strip_indexes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut skipping = false;
    for ch in path.chars() {
        match ch {
            '[' => skipping = true,
            ']' if skipping => skipping = false,
            _ if skipping => {}
            _ => out.push(ch),
        }
    }
    out
}

/// A decimal number in canonical form, so that `1.50`, `+1.5` and `15E-1`
/// compare equal exactly, however many digits they have: the value is
/// `digits × 10^exp`, `digits` without leading or trailing zeros (empty
/// for zero, which has no sign).
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: String,
    exp: i64,
}

impl Decimal {
    /// `[+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?`, surrounding whitespace
    /// allowed (XSD collapses it); `None` for anything else.
    fn parse(s: &str) -> Option<Decimal> {
        let s = s.trim();
        let (negative, s) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(at) => (&s[..at], Some(&s[at + 1..])),
            None => (s, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut exp: i64 = match exponent {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty()
                    || digits.len() > 9
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                e.parse().ok()?
            }
        };
        exp -= frac.len() as i64;
        let all = format!("{int}{frac}");
        let trimmed = all.trim_start_matches('0');
        let digits = trimmed.trim_end_matches('0');
        exp += (trimmed.len() - digits.len()) as i64;
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits: String::new(),
                exp: 0,
            });
        }
        Some(Decimal {
            negative,
            digits: digits.to_string(),
            exp,
        })
    }
}

/// Texts of more words than this get a word-level diff.
const DIFF_MIN_WORDS: usize = 4;
/// Unchanged words kept either side of a change; longer runs become `…`.
const DIFF_CONTEXT: usize = 3;
/// Beyond this many cells the middle is shown replaced whole rather than
/// aligned word by word (the alignment is quadratic).
const DIFF_MAX_CELLS: usize = 250_000;

/// A compact word-level diff, `[-removed-]{+added+}` with unchanged runs
/// shortened to a few words of context, when either text is more than a few
/// words; `None` for short values, which the report shows whole.
pub fn word_diff(recorded: &str, candidate: &str) -> Option<String> {
    let a: Vec<&str> = recorded.split_whitespace().collect();
    let b: Vec<&str> = candidate.split_whitespace().collect();
    if a.len().max(b.len()) <= DIFF_MIN_WORDS {
        return None;
    }
    let ops = align(&a, &b);
    Some(render(&ops))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op<'a> {
    Keep(&'a str),
    Del(&'a str),
    Add(&'a str),
}

/// The edit script from `a` to `b`: common prefix and suffix kept, the
/// middle aligned by longest common subsequence (or replaced whole when it
/// is too large to align).
fn align<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops: Vec<Op<'a>> = a[..prefix].iter().map(|w| Op::Keep(w)).collect();
    if am.len().saturating_mul(bm.len()) > DIFF_MAX_CELLS {
        ops.extend(am.iter().map(|w| Op::Del(w)));
        ops.extend(bm.iter().map(|w| Op::Add(w)));
    } else {
        // lcs[i][j]: the common subsequence length of am[i..] and bm[j..].
        let (n, m) = (am.len(), bm.len());
        let mut lcs = vec![0u32; (n + 1) * (m + 1)];
        let at = |i: usize, j: usize| i * (m + 1) + j;
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[at(i, j)] = if am[i] == bm[j] {
                    lcs[at(i + 1, j + 1)] + 1
                } else {
                    lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                ops.push(Op::Keep(am[i]));
                i += 1;
                j += 1;
            } else if j < m && (i == n || lcs[at(i, j + 1)] >= lcs[at(i + 1, j)]) {
                ops.push(Op::Add(bm[j]));
                j += 1;
            } else {
                ops.push(Op::Del(am[i]));
                i += 1;
            }
        }
    }
    ops.extend(a[a.len() - suffix..].iter().map(|w| Op::Keep(w)));
    ops
}

fn render(ops: &[Op<'_>]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        match ops[i] {
            Op::Keep(_) => {
                let start = i;
                while i < ops.len() && matches!(ops[i], Op::Keep(_)) {
                    i += 1;
                }
                let run: Vec<&str> = ops[start..i]
                    .iter()
                    .map(|o| match o {
                        Op::Keep(w) | Op::Del(w) | Op::Add(w) => *w,
                    })
                    .collect();
                let head = if start == 0 { 0 } else { DIFF_CONTEXT };
                let tail = if i == ops.len() { 0 } else { DIFF_CONTEXT };
                if run.len() > head + tail + 1 {
                    parts.extend(run[..head].iter().map(|w| w.to_string()));
                    parts.push("…".to_string());
                    parts.extend(run[run.len() - tail..].iter().map(|w| w.to_string()));
                } else {
                    parts.extend(run.iter().map(|w| w.to_string()));
                }
            }
            Op::Del(_) | Op::Add(_) => {
                let mut del = Vec::new();
                let mut add = Vec::new();
                while i < ops.len() {
                    match ops[i] {
                        Op::Del(w) => del.push(w),
                        Op::Add(w) => add.push(w),
                        Op::Keep(_) => break,
                    }
                    i += 1;
                }
                if !del.is_empty() {
                    parts.push(format!("[-{}-]", del.join(" ")));
                }
                if !add.is_empty() {
                    parts.push(format!("{{+{}+}}", add.join(" ")));
                }
            }
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Limits, read_str};

    /// The Body's children of `xml` (a wrapper element around them).
    fn payload(xml: &str) -> Vec<Element> {
        let doc = read_str(
            &format!("<Body xmlns:xsi='{XSI_NS}'>{xml}</Body>"),
            &Limits::default(),
        )
        .expect("test XML reads");
        doc.root.elements().cloned().collect()
    }

    fn cmp(r: &str, c: &str, tol: &Tolerances) -> Comparison {
        compare_payloads(&payload(r), &payload(c), tol)
    }

    fn differing(c: &Comparison) -> Vec<&str> {
        c.differences().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn the_same_payload_agrees_on_every_leaf() {
        let xml = "<R><Category>billing</Category><Priority>2</Priority></R>";
        let c = cmp(xml, xml, &Tolerances::new());
        assert!(c.agrees());
        assert_eq!(c.ratio(), 1.0);
        let paths: Vec<&str> = c.fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["R/Category", "R/Priority"]);
    }

    #[test]
    fn decimals_compare_by_value_exactly() {
        let c = cmp(
            "<R><A>1.50</A><B>+0012</B><C>-0.0</C><D>1e3</D></R>",
            "<R><A>1.5</A><B>12</B><C>0</C><D>1000.00</D></R>",
            &Tolerances::new(),
        );
        assert!(c.agrees(), "{c:?}");
        // Beyond f64's precision, still exact.
        let c = cmp(
            "<R><A>12345678901234567890.1</A></R>",
            "<R><A>12345678901234567890.2</A></R>",
            &Tolerances::new(),
        );
        assert_eq!(differing(&c), ["R/A"]);
        // Not numbers: exact strings.
        let c = cmp(
            "<R><A>1.5x</A></R>",
            "<R><A>1.50x</A></R>",
            &Tolerances::new(),
        );
        assert_eq!(differing(&c), ["R/A"]);
    }

    #[test]
    fn a_tolerance_applies_to_its_path_and_to_every_repetition() {
        let r = "<R><Score>0.80</Score><Other>0.80</Other></R>";
        let c = "<R><Score>0.83</Score><Other>0.83</Other></R>";
        let exact = cmp(r, c, &Tolerances::new());
        assert_eq!(differing(&exact), ["R/Score", "R/Other"]);
        let tol = Tolerances::new().with("R/Score", 0.05);
        assert_eq!(differing(&cmp(r, c, &tol)), ["R/Other"]);
        let tight = Tolerances::new().with("R/Score", 0.01);
        assert_eq!(differing(&cmp(r, c, &tight)), ["R/Score", "R/Other"]);

        let r = "<R><L><Amt>10</Amt></L><L><Amt>20</Amt></L></R>";
        let c = "<R><L><Amt>10.4</Amt></L><L><Amt>21</Amt></L></R>";
        let tol = Tolerances::new().with("R/L/Amt", 0.5);
        assert_eq!(differing(&cmp(r, c, &tol)), ["R/L[2]/Amt"]);
        let tol = tol.with("R/L[2]/Amt", 1.0);
        assert!(cmp(r, c, &tol).agrees());
    }

    #[test]
    fn repeated_elements_are_matched_by_position() {
        let r = "<R><Tag>a</Tag><Tag>b</Tag><Tag>c</Tag></R>";
        let c = "<R><Tag>a</Tag><Tag>x</Tag></R>";
        let cmp = cmp(r, c, &Tolerances::new());
        assert_eq!(
            cmp.fields,
            vec![
                Field {
                    path: "R/Tag[1]".into(),
                    status: FieldStatus::Same
                },
                Field {
                    path: "R/Tag[2]".into(),
                    status: FieldStatus::Differ {
                        recorded: "b".into(),
                        candidate: "x".into(),
                        diff: None
                    }
                },
                Field {
                    path: "R/Tag[3]".into(),
                    status: FieldStatus::Missing {
                        recorded: "c".into()
                    }
                },
            ]
        );
        assert!((cmp.ratio() - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn attributes_are_fields_of_their_own() {
        let r = "<R><Item code='A' xsi:nil='false'>x</Item></R>";
        let c = "<R><Item code='B' lang='en'>x</Item></R>";
        let cmp = cmp(r, c, &Tolerances::new());
        let got: Vec<(&str, &FieldStatus)> = cmp
            .fields
            .iter()
            .map(|f| (f.path.as_str(), &f.status))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "R/Item/@code",
                    &FieldStatus::Differ {
                        recorded: "A".into(),
                        candidate: "B".into(),
                        diff: None
                    }
                ),
                (
                    "R/Item/@xsi:nil",
                    &FieldStatus::Missing {
                        recorded: "false".into()
                    }
                ),
                (
                    "R/Item/@lang",
                    &FieldStatus::Extra {
                        candidate: "en".into()
                    }
                ),
                ("R/Item", &FieldStatus::Same),
            ]
        );
    }

    #[test]
    fn missing_and_extra_elements_name_every_leaf_under_them() {
        let r = "<R><Keep>1</Keep><Gone><A>x</A><B>y</B></Gone></R>";
        let c = "<R><Keep>1</Keep><New k='v'>z</New></R>";
        let cmp = cmp(r, c, &Tolerances::new());
        let got: Vec<(&str, &FieldStatus)> = cmp
            .fields
            .iter()
            .map(|f| (f.path.as_str(), &f.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("R/Keep", &FieldStatus::Same),
                (
                    "R/Gone/A",
                    &FieldStatus::Missing {
                        recorded: "x".into()
                    }
                ),
                (
                    "R/Gone/B",
                    &FieldStatus::Missing {
                        recorded: "y".into()
                    }
                ),
                (
                    "R/New/@k",
                    &FieldStatus::Extra {
                        candidate: "v".into()
                    }
                ),
                (
                    "R/New",
                    &FieldStatus::Extra {
                        candidate: "z".into()
                    }
                ),
            ]
        );
        assert!(!cmp.agrees());
        assert!((cmp.ratio() - 0.2).abs() < 1e-9);
    }

    #[test]
    fn layout_whitespace_between_elements_is_not_a_field() {
        let r = "<R>\n  <A>1</A>\n</R>";
        let c = "<R><A>1</A></R>";
        let cmp = cmp(r, c, &Tolerances::new());
        assert!(cmp.agrees());
        assert_eq!(cmp.fields.len(), 1);
    }

    #[test]
    fn a_long_text_that_differs_gets_a_word_diff() {
        let r = "<R><Summary>The customer cannot log in since the update of Monday and asks for a reset of the password today</Summary></R>";
        let c = "<R><Summary>The customer cannot log in since the upgrade of Monday and asks for a reset of the password today</Summary></R>";
        let cmp = cmp(r, c, &Tolerances::new());
        let FieldStatus::Differ { diff, .. } = &cmp.fields[0].status else {
            panic!("{cmp:?}")
        };
        assert_eq!(
            diff.as_deref(),
            Some("… in since the [-update-] {+upgrade+} of Monday and …")
        );
        assert_eq!(
            word_diff("a b", "a c"),
            None,
            "short values are shown whole"
        );
        assert_eq!(
            word_diff("one two three four five", "one two four five six").as_deref(),
            Some("one two [-three-] four five {+six+}")
        );
    }

    #[test]
    fn faults_compare_by_code_and_detail() {
        let detail = payload("<NotFound><Id>7</Id></NotFound>");
        let other = payload("<NotFound><Id>8</Id></NotFound>");
        fn f<'a>(code: &'a str, detail: &'a [Element]) -> Answer<'a> {
            Answer::Fault {
                code,
                detail: detail.first(),
            }
        }
        let (detail, other) = (detail.as_slice(), other.as_slice());
        let t = Tolerances::new();

        let same = compare(
            f("DECLARED_FAULT:NotFound", detail),
            f("DECLARED_FAULT:NotFound", detail),
            &t,
        );
        assert!(same.agrees());
        assert_eq!(same.fields.len(), 2, "{same:?}");

        let changed = compare(
            f("DECLARED_FAULT:NotFound", detail),
            f("DECLARED_FAULT:NotFound", other),
            &t,
        );
        assert_eq!(differing(&changed), ["fault/detail/NotFound/Id"]);

        let codes = compare(f("MODEL_TIMEOUT", &[]), f("INVALID_RESPONSE", &[]), &t);
        assert_eq!(
            codes.fields,
            vec![Field {
                path: "fault/code".into(),
                status: FieldStatus::Differ {
                    recorded: "MODEL_TIMEOUT".into(),
                    candidate: "INVALID_RESPONSE".into(),
                    diff: None
                }
            }]
        );
        assert!(compare(f("MODEL_TIMEOUT", &[]), f("MODEL_TIMEOUT", &[]), &t).agrees());
    }

    #[test]
    fn a_declared_fault_against_a_response_disagrees() {
        let response = payload("<R><A>1</A></R>");
        let fault = Answer::Fault {
            code: "DECLARED_FAULT:NotFound",
            detail: None,
        };
        let t = Tolerances::new();
        let got = compare(Answer::Response(&response), fault, &t);
        assert_eq!(
            got.fields,
            vec![Field {
                path: "fault/code".into(),
                status: FieldStatus::Extra {
                    candidate: "DECLARED_FAULT:NotFound".into()
                }
            }]
        );
        let got = compare(fault, Answer::Response(&response), &t);
        assert!(matches!(got.fields[0].status, FieldStatus::Missing { .. }));
        assert_eq!(got.ratio(), 0.0);
    }

    #[test]
    fn tolerance_entries_parse_from_the_command_line() {
        assert_eq!(
            Tolerances::parse_entry("/R/L/Amt=0.5"),
            Ok(("R/L/Amt".to_string(), 0.5))
        );
        assert!(Tolerances::parse_entry("R/L/Amt").is_err());
        assert!(Tolerances::parse_entry("R/L/Amt=-1").is_err());
        assert!(Tolerances::parse_entry("=1").is_err());
    }

    #[test]
    fn the_comparison_serialises_with_its_status() {
        let c = cmp("<R><A>x</A></R>", "<R><A>y</A></R>", &Tolerances::new());
        let json = serde_json::to_value(&c).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({"fields": [
                {"path": "R/A", "status": "differ", "recorded": "x", "candidate": "y"}
            ]})
        );
    }
}
