//! Facet checks on one whitespace-normalized value, and the wording of the
//! rule a failing value broke (`maxLength=10 (got 12)`). Values are
//! compared in the value space of the type's built-in ancestor (see
//! [`builtin::compare`]); messages are only formatted on failure.

use std::cmp::Ordering;

use super::builtin::{self, Builtin, Dec, LengthUnit};
use super::model::Facets;

/// Keep quoted values in messages short; a violation names the rule, not
/// the whole payload.
pub(crate) fn quote(v: &str) -> String {
    const MAX: usize = 60;
    match v.char_indices().nth(MAX) {
        Some((i, _)) => format!("{:?}...", &v[..i]),
        None => format!("{v:?}"),
    }
}

fn length_of(b: Builtin, v: &str) -> Option<u64> {
    match b.length_unit() {
        LengthUnit::Chars => Some(v.chars().count() as u64),
        LengthUnit::HexOctets => Some(v.len() as u64 / 2),
        LengthUnit::Base64Octets => builtin::base64_octets(v),
        LengthUnit::Ignored => None,
    }
}

/// Length facets, given the measured length (characters, octets or list
/// items).
pub(crate) fn check_length(f: &Facets, len: u64) -> Result<(), String> {
    if let Some(n) = f.length.filter(|&n| n != len) {
        return Err(format!("length={n} (got {len})"));
    }
    if let Some(n) = f.min_length.filter(|&n| len < n) {
        return Err(format!("minLength={n} (got {len})"));
    }
    if let Some(n) = f.max_length.filter(|&n| len > n) {
        return Err(format!("maxLength={n} (got {len})"));
    }
    Ok(())
}

pub(crate) fn check_patterns(f: &Facets, v: &str) -> Result<(), String> {
    for step in &f.patterns {
        if !step.regex.is_match(v) {
            return Err(format!(
                "pattern {} (got {})",
                step.sources.join(" | "),
                quote(v)
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_enumeration(
    f: &Facets,
    v: &str,
    eq: impl Fn(&str, &str) -> bool,
) -> Result<(), String> {
    match &f.enumeration {
        Some(list) if !list.iter().any(|e| eq(v, e)) => Err(format!(
            "enumeration [{}] (got {})",
            list.join(", "),
            quote(v)
        )),
        _ => Ok(()),
    }
}

/// All facets of an atomic type on a value already known to be lexically
/// valid for `b`.
pub(crate) fn check_atomic(b: Builtin, f: &Facets, v: &str) -> Result<(), String> {
    if (f.length.is_some() || f.min_length.is_some() || f.max_length.is_some())
        && let Some(len) = length_of(b, v)
    {
        check_length(f, len)?;
    }
    check_patterns(f, v)?;
    check_enumeration(f, v, |x, y| builtin::equal(b, x, y))?;
    let bounds = [
        (
            "minInclusive",
            &f.min_inclusive,
            [Ordering::Greater, Ordering::Equal],
        ),
        (
            "maxInclusive",
            &f.max_inclusive,
            [Ordering::Less, Ordering::Equal],
        ),
        (
            "minExclusive",
            &f.min_exclusive,
            [Ordering::Greater, Ordering::Greater],
        ),
        (
            "maxExclusive",
            &f.max_exclusive,
            [Ordering::Less, Ordering::Less],
        ),
    ];
    for (facet, bound, ok) in bounds {
        if let Some(bound) = bound {
            match builtin::compare(b, v, bound) {
                Some(o) if ok.contains(&o) => {}
                _ => return Err(format!("{facet}={bound} (got {v})")),
            }
        }
    }
    if (f.total_digits.is_some() || f.fraction_digits.is_some())
        && let Some(d) = Dec::parse(v)
    {
        if let Some(n) = f.total_digits.filter(|&n| d.total_digits() > n) {
            return Err(format!("totalDigits={n} (got {})", d.total_digits()));
        }
        if let Some(n) = f.fraction_digits.filter(|&n| d.fraction_digits() > n) {
            return Err(format!("fractionDigits={n} (got {})", d.fraction_digits()));
        }
    }
    Ok(())
}
