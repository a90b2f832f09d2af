//! Strings that match a regular expression, for JSON Schema `pattern`s in
//! forced-tool answers. Walks the pattern's syntax tree (regex-syntax, the
//! parser the `regex` crate uses) choosing random branches, classes and
//! repetition counts, then checks the candidate with the real matcher, so a
//! string we return always matches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use regex_syntax::hir::{Class, Hir, HirKind};

use super::schema::Rng;

/// Characters preferred when a class allows them: a negated class such as
/// `[^,]` spans most of Unicode, and answers should still look like text.
const NICE: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Next best, for classes of no letter or digit (XSD's `\W`, `[^a-zA-Z0-9]`).
/// No `_`: XSD's `\W` has it (a connector punctuation), and Python's
/// xmlschema, reading `\w` as Python does, refuses it there.
const PUNCTUATION: &str = " .,-:;!?()/+*#@&=~'%";

/// Whether `c` may stand in an answer: a character XML 1.0 can carry (the
/// answer becomes XML), and no control or private-use character (the C0
/// and C1 controls, noncharacters, surrogates, private use areas).
fn writable(c: char) -> bool {
    let u = u32::from(c);
    matches!(c, '\t' | '\n' | '\r')
        || (matches!(u, 0x20..=0x7E | 0xA0..=0xD7FF | 0xF900..=0xFDCF | 0xFDF0..=0xFFFD | 0x1_0000..=0xE_FFFF)
            && (u & 0xFFFE) != 0xFFFE)
}

/// How many compiled patterns the emulator keeps; a forced tool's schema
/// has a handful, and a script rarely more than a few dozen.
const CACHED_PATTERNS: usize = 256;

/// A pattern's syntax tree (to generate from) and matcher (to check with).
type Compiled = (Hir, regex::Regex);

/// The syntax tree and matcher of `pattern`, compiled once per pattern:
/// building a matcher costs far more than generating a string from it.
/// `None` when the pattern does not compile.
fn compiled(pattern: &str) -> Option<Arc<Compiled>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Compiled>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    // The map stays whole whatever panicked while holding it.
    let lock = || cache.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(hit) = lock().get(pattern) {
        return Some(hit.clone());
    }
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .ok()?;
    let matcher = regex::Regex::new(pattern).ok()?;
    let entry = Arc::new((hir, matcher));
    let mut cache = lock();
    if cache.len() >= CACHED_PATTERNS {
        cache.clear();
    }
    cache.insert(pattern.to_owned(), entry.clone());
    Some(entry)
}

/// A string matching `pattern` whose length in characters lies within
/// `min_len..=max_len`, or `None` when none was found (the pattern uses
/// syntax the `regex` crate lacks, such as look-around or back-references,
/// or it cannot meet the lengths).
pub(crate) fn matching_string(
    pattern: &str,
    min_len: usize,
    max_len: Option<usize>,
    rng: &mut Rng,
) -> Option<String> {
    let compiled = compiled(pattern)?;
    let (hir, matcher) = (&compiled.0, &compiled.1);
    let fits = |s: &str| {
        let n = s.chars().count();
        n >= min_len && max_len.is_none_or(|m| n <= m)
    };
    for attempt in 0..64u32 {
        // Unbounded repetitions (`+`, `*`, `{n,}`) get a little slack at
        // first, then enough to reach a required minimum length.
        let slack = if attempt % 2 == 0 {
            3
        } else {
            u32::try_from(min_len).unwrap_or(u32::MAX).max(8)
        } + attempt / 8;
        let mut out = String::new();
        generate(hir, rng, slack, &mut out);
        if fits(&out) && matcher.is_match(&out) {
            return Some(out);
        }
        // The pattern is unanchored in JSON Schema: padding a too-short
        // match with more of itself keeps it matching.
        if out.chars().count() < min_len && matcher.is_match(&out) {
            let mut padded = out.clone();
            while padded.chars().count() < min_len && !out.is_empty() {
                padded.push_str(&out);
            }
            let padded: String = match max_len {
                Some(m) => padded.chars().take(m).collect(),
                None => padded,
            };
            if fits(&padded) && matcher.is_match(&padded) {
                return Some(padded);
            }
        }
    }
    None
}

/// Beyond this a candidate is abandoned: nested counted repetitions such as
/// `(a{4000}){4000}` must not eat the emulator's memory.
const MAX_OUTPUT: usize = 64 * 1024;

fn generate(hir: &Hir, rng: &mut Rng, slack: u32, out: &mut String) {
    if out.len() > MAX_OUTPUT {
        return;
    }
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(lit) => out.push_str(&String::from_utf8_lossy(&lit.0)),
        HirKind::Class(Class::Unicode(class)) => {
            let ranges = class.ranges();
            let within = |c: &char| ranges.iter().any(|r| r.start() <= *c && *c <= r.end());
            let nice: Vec<char> = NICE.chars().filter(within).collect();
            let punctuation: Vec<char> = PUNCTUATION.chars().filter(within).collect();
            if !nice.is_empty() {
                out.push(nice[rng.below(nice.len())]);
            } else if !punctuation.is_empty() {
                out.push(punctuation[rng.below(punctuation.len())]);
            } else if !ranges.is_empty() {
                // Anything of the class XML can carry; when a few draws
                // find nothing, the candidate fails the matcher and is
                // drawn again.
                for _ in 0..16 {
                    let r = &ranges[rng.below(ranges.len())];
                    let (lo, hi) = (u32::from(r.start()), u32::from(r.end()));
                    let span = usize::try_from(hi - lo).unwrap_or(0);
                    let pick = lo + u32::try_from(rng.below(span + 1)).unwrap_or(0);
                    if let Some(c) = char::from_u32(pick).filter(|c| writable(*c)) {
                        out.push(c);
                        break;
                    }
                }
            }
        }
        HirKind::Class(Class::Bytes(class)) => {
            let ascii: Vec<u8> = class
                .ranges()
                .iter()
                .flat_map(|r| r.start()..=r.end())
                .filter(u8::is_ascii)
                .collect();
            if !ascii.is_empty() {
                out.push(char::from(ascii[rng.below(ascii.len())]));
            }
        }
        HirKind::Repetition(rep) => {
            let span = match rep.max {
                Some(max) => max.saturating_sub(rep.min),
                None => slack,
            }
            .min(64);
            let count =
                rep.min.min(4096) + u32::try_from(rng.below(span as usize + 1)).unwrap_or(0);
            for _ in 0..count {
                generate(&rep.sub, rng, slack, out);
            }
        }
        HirKind::Capture(cap) => generate(&cap.sub, rng, slack, out),
        HirKind::Concat(parts) => {
            for part in parts {
                generate(part, rng, slack, out);
            }
        }
        HirKind::Alternation(branches) => {
            if !branches.is_empty() {
                generate(&branches[rng.below(branches.len())], rng, slack, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_strings_match_their_patterns() {
        let patterns = [
            r"^[A-Z]{3}-\d{4}$",
            r"^(INV|CRN)[0-9]{6}$",
            r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,4}$",
            r"^\d{4}-\d{2}-\d{2}$",
            r"[^,]+",
            r"^(?:yes|no|maybe)$",
            r"^\p{Lu}\p{Ll}+$",
            r"^[A-Z]{2}\d{2}[A-Z0-9]{1,30}$",
        ];
        for (i, pattern) in patterns.iter().enumerate() {
            let mut rng = Rng::new(i as u64);
            let s = matching_string(pattern, 0, None, &mut rng).expect(pattern);
            assert!(
                regex::Regex::new(pattern).unwrap().is_match(&s),
                "{pattern}: {s}"
            );
        }
    }

    /// A class of no letter or digit (XSD's `\W`, translated) gives
    /// punctuation, never a control character XML cannot carry (`\u{1f}`
    /// came out of `[^a-zA-Z0-9]`).
    #[test]
    fn classes_without_letters_give_characters_xml_can_carry() {
        let patterns = [
            r"^(?:[^a-zA-Z0-9]{3})$",
            r"^(?:[^\p{L}\p{M}\p{N}\p{S}]+)$",
            r"^(?:[^\p{L}\p{N}\p{P}\p{Zs}]{2})$",
        ];
        for pattern in patterns {
            for seed in 0..32 {
                let mut rng = Rng::new(seed);
                let s = matching_string(pattern, 0, None, &mut rng).expect(pattern);
                assert!(s.chars().all(writable), "{pattern}: {s:?}");
                assert!(
                    s.chars()
                        .all(|c| !c.is_control() && !(0xE000..=0xF8FF).contains(&u32::from(c))),
                    "{pattern}: {s:?}"
                );
            }
        }
    }

    #[test]
    fn lengths_are_honoured_together_with_the_pattern() {
        let mut rng = Rng::new(7);
        let s = matching_string("^[A-Z]+$", 12, Some(15), &mut rng).unwrap();
        assert!((12..=15).contains(&s.len()), "{s}");
    }

    #[test]
    fn unsupported_syntax_gives_none_not_a_panic() {
        let mut rng = Rng::new(1);
        assert_eq!(matching_string(r"^(a)\1$", 0, None, &mut rng), None);
        assert_eq!(matching_string(r"^[a-z]{3}$", 5, None, &mut rng), None);
        assert_eq!(
            matching_string(r"^(a{4000}){4000}$", 0, None, &mut rng),
            None
        );
    }
}
