//! The XSD 1.0 built-in simple types: their names and derivation chain, the
//! whitespace rule each one applies, hand-written lexical checks (no regex,
//! no allocation: this runs on every value of every request), and value
//! comparison for range facets and enumerations. Decimals are compared by
//! digit strings, never through floating point, so `0.1 + 0.2`-style error
//! cannot creep into a `maxInclusive` check.

use std::cmp::Ordering;

use super::model::WhiteSpace;
use crate::xml::NsScope;

macro_rules! builtins {
    ($($v:ident = $n:literal : $base:expr),* $(,)?) => {
        /// A built-in simple type of XSD 1.0 (`xsd:anyType` is complex and
        /// not listed here).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Builtin { $($v),* }

        impl Builtin {
            pub const ALL: &'static [Builtin] = &[$(Builtin::$v),*];

            /// The local name in the XSD namespace.
            pub fn name(self) -> &'static str {
                match self { $(Builtin::$v => $n),* }
            }

            pub fn from_name(name: &str) -> Option<Builtin> {
                match name { $($n => Some(Builtin::$v),)* _ => None }
            }

            /// The built-in this one restricts; `None` for `anySimpleType`
            /// (whose base is `anyType`).
            pub fn base(self) -> Option<Builtin> {
                match self { $(Builtin::$v => $base),* }
            }
        }
    };
}

use Builtin as B;

builtins! {
    AnySimpleType = "anySimpleType": None,
    String = "string": Some(B::AnySimpleType),
    NormalizedString = "normalizedString": Some(B::String),
    Token = "token": Some(B::NormalizedString),
    Language = "language": Some(B::Token),
    Name = "Name": Some(B::Token),
    NCName = "NCName": Some(B::Name),
    Id = "ID": Some(B::NCName),
    IdRef = "IDREF": Some(B::NCName),
    IdRefs = "IDREFS": Some(B::AnySimpleType),
    Entity = "ENTITY": Some(B::NCName),
    Entities = "ENTITIES": Some(B::AnySimpleType),
    NmToken = "NMTOKEN": Some(B::Token),
    NmTokens = "NMTOKENS": Some(B::AnySimpleType),
    QName = "QName": Some(B::AnySimpleType),
    Notation = "NOTATION": Some(B::AnySimpleType),
    AnyUri = "anyURI": Some(B::AnySimpleType),
    Boolean = "boolean": Some(B::AnySimpleType),
    Decimal = "decimal": Some(B::AnySimpleType),
    Integer = "integer": Some(B::Decimal),
    NonPositiveInteger = "nonPositiveInteger": Some(B::Integer),
    NegativeInteger = "negativeInteger": Some(B::NonPositiveInteger),
    Long = "long": Some(B::Integer),
    Int = "int": Some(B::Long),
    Short = "short": Some(B::Int),
    Byte = "byte": Some(B::Short),
    NonNegativeInteger = "nonNegativeInteger": Some(B::Integer),
    UnsignedLong = "unsignedLong": Some(B::NonNegativeInteger),
    UnsignedInt = "unsignedInt": Some(B::UnsignedLong),
    UnsignedShort = "unsignedShort": Some(B::UnsignedInt),
    UnsignedByte = "unsignedByte": Some(B::UnsignedShort),
    PositiveInteger = "positiveInteger": Some(B::NonNegativeInteger),
    Float = "float": Some(B::AnySimpleType),
    Double = "double": Some(B::AnySimpleType),
    Duration = "duration": Some(B::AnySimpleType),
    DateTime = "dateTime": Some(B::AnySimpleType),
    Time = "time": Some(B::AnySimpleType),
    Date = "date": Some(B::AnySimpleType),
    GYearMonth = "gYearMonth": Some(B::AnySimpleType),
    GYear = "gYear": Some(B::AnySimpleType),
    GMonthDay = "gMonthDay": Some(B::AnySimpleType),
    GDay = "gDay": Some(B::AnySimpleType),
    GMonth = "gMonth": Some(B::AnySimpleType),
    HexBinary = "hexBinary": Some(B::AnySimpleType),
    Base64Binary = "base64Binary": Some(B::AnySimpleType),
}

/// How values of a type are ordered, for range facets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    Decimal,
    Float,
    DateTime,
    Duration,
    None,
}

/// What a length facet counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LengthUnit {
    Chars,
    HexOctets,
    Base64Octets,
    /// QName and NOTATION: length facets are not applicable (XSD 1.0 says
    /// they are, but every processor ignores them).
    Ignored,
}

impl Builtin {
    /// The item type of the three built-in list types.
    pub fn list_item(self) -> Option<Builtin> {
        match self {
            B::IdRefs => Some(B::IdRef),
            B::Entities => Some(B::Entity),
            B::NmTokens => Some(B::NmToken),
            _ => None,
        }
    }

    /// True when this type is `self` or derives from `other`.
    pub fn derives_from(self, other: Builtin) -> bool {
        let mut t = Some(self);
        while let Some(b) = t {
            if b == other {
                return true;
            }
            t = b.base();
        }
        false
    }

    /// The whitespace rule the type applies (before any `whiteSpace` facet
    /// of a user type).
    pub fn white_space(self) -> WhiteSpace {
        match self {
            B::String | B::AnySimpleType => WhiteSpace::Preserve,
            B::NormalizedString => WhiteSpace::Replace,
            _ => WhiteSpace::Collapse,
        }
    }

    pub(crate) fn order(self) -> Order {
        if self.derives_from(B::Decimal) {
            return Order::Decimal;
        }
        match self {
            B::Float | B::Double => Order::Float,
            B::DateTime
            | B::Date
            | B::Time
            | B::GYear
            | B::GYearMonth
            | B::GMonth
            | B::GMonthDay
            | B::GDay => Order::DateTime,
            B::Duration => Order::Duration,
            _ => Order::None,
        }
    }

    pub(crate) fn length_unit(self) -> LengthUnit {
        match self {
            B::HexBinary => LengthUnit::HexOctets,
            B::Base64Binary => LengthUnit::Base64Octets,
            B::QName | B::Notation => LengthUnit::Ignored,
            _ => LengthUnit::Chars,
        }
    }

    /// Check a whitespace-normalized value against the lexical space (and,
    /// for the integer types, the value range). `scope` resolves QName
    /// prefixes.
    pub(crate) fn check(self, v: &str, scope: &NsScope) -> bool {
        match self {
            B::AnySimpleType | B::String => true,
            B::NormalizedString => !v.contains(['\t', '\n', '\r']),
            B::Token => is_token(v),
            B::Language => is_language(v),
            B::Name => is_name(v),
            B::NCName | B::Id | B::IdRef | B::Entity => is_ncname(v),
            B::NmToken => is_nmtoken(v),
            B::IdRefs | B::Entities => !v.is_empty() && v.split(' ').all(is_ncname),
            B::NmTokens => !v.is_empty() && v.split(' ').all(is_nmtoken),
            B::QName | B::Notation => match v.split_once(':') {
                Some((p, l)) => is_ncname(p) && is_ncname(l) && scope.resolve(p).is_some(),
                None => is_ncname(v),
            },
            B::AnyUri => v.matches('#').count() <= 1,
            B::Boolean => matches!(v, "true" | "false" | "1" | "0"),
            B::Decimal => Dec::parse(v).is_some(),
            B::Float | B::Double => is_float(v),
            B::Duration => parse_duration(v).is_some(),
            B::DateTime
            | B::Date
            | B::Time
            | B::GYear
            | B::GYearMonth
            | B::GMonth
            | B::GMonthDay
            | B::GDay => parse_temporal(self, v).is_some(),
            B::HexBinary => v.len().is_multiple_of(2) && v.bytes().all(|b| b.is_ascii_hexdigit()),
            B::Base64Binary => base64_octets(v).is_some(),
            _ => match integer_range(self) {
                Some((lo, hi)) => match Dec::parse_integer(v) {
                    Some(d) => {
                        lo.is_none_or(|lo| d.cmp(&dec_const(lo)) != Ordering::Less)
                            && hi.is_none_or(|hi| d.cmp(&dec_const(hi)) != Ordering::Greater)
                    }
                    None => false,
                },
                None => true,
            },
        }
    }
}

/// Value range of the integer built-ins, as decimal literals.
fn integer_range(b: Builtin) -> Option<(Option<&'static str>, Option<&'static str>)> {
    Some(match b {
        B::Integer => (None, None),
        B::NonPositiveInteger => (None, Some("0")),
        B::NegativeInteger => (None, Some("-1")),
        B::Long => (Some("-9223372036854775808"), Some("9223372036854775807")),
        B::Int => (Some("-2147483648"), Some("2147483647")),
        B::Short => (Some("-32768"), Some("32767")),
        B::Byte => (Some("-128"), Some("127")),
        B::NonNegativeInteger => (Some("0"), None),
        B::PositiveInteger => (Some("1"), None),
        B::UnsignedLong => (Some("0"), Some("18446744073709551615")),
        B::UnsignedInt => (Some("0"), Some("4294967295")),
        B::UnsignedShort => (Some("0"), Some("65535")),
        B::UnsignedByte => (Some("0"), Some("255")),
        _ => return None,
    })
}

fn dec_const(s: &'static str) -> Dec<'static> {
    // The constants above are well-formed; fall back to zero rather than
    // panic should one ever be mistyped.
    Dec::parse(s).unwrap_or(Dec {
        neg: false,
        int: "",
        frac: "",
    })
}

/// Apply a whitespace rule. Borrows when nothing changes (the common case).
pub(crate) fn normalize_ws(v: &str, ws: WhiteSpace) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let is_ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    match ws {
        WhiteSpace::Preserve => Cow::Borrowed(v),
        WhiteSpace::Replace => {
            if v.contains(['\t', '\n', '\r']) {
                Cow::Owned(v.replace(['\t', '\n', '\r'], " "))
            } else {
                Cow::Borrowed(v)
            }
        }
        WhiteSpace::Collapse => {
            let t = v.trim_matches(is_ws);
            let needs = t.contains(['\t', '\n', '\r']) || t.contains("  ");
            if !needs {
                return Cow::Borrowed(t);
            }
            let mut out = String::with_capacity(t.len());
            for part in t.split(is_ws).filter(|p| !p.is_empty()) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(part);
            }
            Cow::Owned(out)
        }
    }
}

fn is_token(v: &str) -> bool {
    !v.contains(['\t', '\n', '\r']) && !v.starts_with(' ') && !v.ends_with(' ') && !v.contains("  ")
}

fn is_language(v: &str) -> bool {
    let mut parts = v.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// XML 1.0 (5th edition) NameStartChar.
pub(crate) fn is_name_start(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 (5th edition) NameChar.
pub(crate) fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

fn is_name(v: &str) -> bool {
    let mut cs = v.chars();
    cs.next().is_some_and(is_name_start) && cs.all(is_name_char)
}

pub(crate) fn is_ncname(v: &str) -> bool {
    !v.contains(':') && is_name(v)
}

fn is_nmtoken(v: &str) -> bool {
    !v.is_empty() && v.chars().all(is_name_char)
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_float(v: &str) -> bool {
    // XSD 1.0 writes positive infinity INF only (`+INF` is XSD 1.1's).
    if matches!(v, "INF" | "-INF" | "NaN") {
        return true;
    }
    let (mantissa, exp) = match v.find(['e', 'E']) {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let m = mantissa.strip_prefix(['+', '-']).unwrap_or(mantissa);
    let m_ok = match m.split_once('.') {
        Some((i, f)) => {
            (i.is_empty() || digits(i))
                && (f.is_empty() || digits(f))
                && !(i.is_empty() && f.is_empty())
        }
        None => digits(m),
    };
    let e_ok = exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    m_ok && e_ok
}

pub(crate) fn parse_float(v: &str) -> f64 {
    match v {
        "INF" | "+INF" => f64::INFINITY,
        "-INF" => f64::NEG_INFINITY,
        _ => v.parse().unwrap_or(f64::NAN),
    }
}

/// Octet count of a base64Binary value, or `None` if it is not valid.
/// Whitespace is allowed anywhere (line-wrapped MIME style is common).
pub(crate) fn base64_octets(v: &str) -> Option<u64> {
    let mut n = 0u64;
    let mut pad = 0u64;
    let mut before_pad = 0u8;
    for b in v.bytes() {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => continue,
            b'=' => pad += 1,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' if pad == 0 => before_pad = b,
            _ => return None,
        }
        n += 1;
    }
    if !n.is_multiple_of(4) || pad > 2 {
        return None;
    }
    // The bits beyond the last full octet must be zero (canonical base64).
    let ok_last = match pad {
        0 => true,
        1 => b"AEIMQUYcgkosw048".contains(&before_pad),
        _ => b"AQgw".contains(&before_pad),
    };
    ok_last.then_some(n / 4 * 3 - pad)
}

/// A decimal value as digit strings: `int` without leading zeros, `frac`
/// without trailing zeros. Zero is `int == "" && frac == ""`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dec<'a> {
    neg: bool,
    int: &'a str,
    frac: &'a str,
}

impl<'a> Dec<'a> {
    pub(crate) fn parse(v: &'a str) -> Option<Dec<'a>> {
        let (neg, body) = match v.as_bytes().first() {
            Some(b'-') => (true, &v[1..]),
            Some(b'+') => (false, &v[1..]),
            _ => (false, v),
        };
        let (i, f) = body.split_once('.').unwrap_or((body, ""));
        if i.is_empty() && f.is_empty() {
            return None;
        }
        if !i.bytes().all(|b| b.is_ascii_digit()) || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Dec {
            neg,
            int: i.trim_start_matches('0'),
            frac: f.trim_end_matches('0'),
        })
    }

    fn parse_integer(v: &'a str) -> Option<Dec<'a>> {
        if v.contains('.') {
            return None;
        }
        Dec::parse(v)
    }

    fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.is_empty()
    }

    /// XSD counts digits in the value space: a value is `i * 10^-n` with
    /// `|i| < 10^totalDigits`, so `00012.3400` (1234 * 10^-2) has 4 and
    /// `0.05` (5 * 10^-2) has 1.
    pub(crate) fn total_digits(&self) -> u32 {
        if self.is_zero() {
            return 1;
        }
        if self.int.is_empty() {
            return self.frac.trim_start_matches('0').len() as u32;
        }
        (self.int.len() + self.frac.len()) as u32
    }

    pub(crate) fn fraction_digits(&self) -> u32 {
        self.frac.len() as u32
    }

    fn cmp_abs(&self, other: &Dec<'_>) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(other.int))
            .then_with(|| self.frac.cmp(other.frac))
    }

    pub(crate) fn cmp(&self, other: &Dec<'_>) -> Ordering {
        let a_neg = self.neg && !self.is_zero();
        let b_neg = other.neg && !other.is_zero();
        match (a_neg, b_neg) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_abs(other),
            (true, true) => other.cmp_abs(self),
        }
    }
}

/// A date/time value reduced to a comparable number of seconds. For order
/// (the range facets), values without a timezone are taken as UTC (XSD's
/// partial order makes comparisons within 14 hours of a timezoned value
/// indeterminate; treating them as UTC is what users expect). For
/// equality (enumeration, fixed) XSD is followed exactly: a value with a
/// timezone never equals one without.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Temporal {
    seconds: f64,
    zoned: bool,
}

impl Temporal {
    pub(crate) fn cmp(&self, other: &Temporal) -> Option<Ordering> {
        self.seconds.partial_cmp(&other.seconds)
    }

    /// The same point in the value space.
    fn same(&self, other: &Temporal) -> bool {
        self.zoned == other.zoned && self.seconds == other.seconds
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Exactly `n` digits.
    fn fixed(&mut self, n: usize) -> Option<u32> {
        let d = self.s.get(self.i..self.i + n)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += n;
        Some(d.iter().fold(0u32, |a, b| a * 10 + u32::from(b - b'0')))
    }

    /// One or more digits (saturating).
    fn number(&mut self) -> Option<u64> {
        let start = self.i;
        let mut v = 0u64;
        while let Some(b) = self.s.get(self.i).filter(|b| b.is_ascii_digit()) {
            v = v.saturating_mul(10).saturating_add(u64::from(b - b'0'));
            self.i += 1;
        }
        (self.i > start).then_some(v)
    }

    fn done(&self) -> bool {
        self.i == self.s.len()
    }

    fn year(&mut self) -> Option<i64> {
        let neg = self.eat(b'-');
        let start = self.i;
        let v = self.number()?;
        let len = self.i - start;
        if len < 4 || (len > 4 && self.s.get(start) == Some(&b'0')) || v == 0 || len > 18 {
            return None;
        }
        let v = i64::try_from(v).ok()?;
        Some(if neg { -v } else { v })
    }

    /// `hh:mm:ss(.s+)?` as seconds of the day.
    fn time(&mut self) -> Option<f64> {
        let h = self.fixed(2)?;
        if !self.eat(b':') {
            return None;
        }
        let m = self.fixed(2)?;
        if !self.eat(b':') {
            return None;
        }
        let s = self.fixed(2)?;
        let mut frac = 0.0;
        let mut frac_nonzero = false;
        if self.eat(b'.') {
            let start = self.i;
            self.number()?;
            let txt = std::str::from_utf8(&self.s[start..self.i]).ok()?;
            frac_nonzero = txt.bytes().any(|b| b != b'0');
            frac = format!("0.{txt}").parse().unwrap_or(0.0);
        }
        let end_of_day = h == 24 && m == 0 && s == 0 && !frac_nonzero;
        if (h > 23 && !end_of_day) || m > 59 || s > 59 {
            return None;
        }
        Some(f64::from(h * 3600 + m * 60 + s) + frac)
    }

    /// Optional `Z` or `(+|-)hh:mm`, as an offset in seconds.
    fn tz(&mut self) -> Option<f64> {
        if self.done() {
            return Some(0.0);
        }
        if self.eat(b'Z') {
            return Some(0.0);
        }
        let sign = if self.eat(b'+') {
            1.0
        } else if self.eat(b'-') {
            -1.0
        } else {
            return None;
        };
        let h = self.fixed(2)?;
        if !self.eat(b':') {
            return None;
        }
        let m = self.fixed(2)?;
        if m > 59 || h > 14 || (h == 14 && m != 0) {
            return None;
        }
        Some(sign * f64::from(h * 3600 + m * 60))
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar. In i128 so
/// that no year a value can spell overflows.
fn days_from_civil(y: i64, m: u32, d: u32) -> i128 {
    let y = i128::from(if m <= 2 { y - 1 } else { y });
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i128::from(m);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i128::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parse any of the date/time types. Fields a type lacks default to a leap
/// reference year and the first month/day, so values of one type compare
/// correctly with each other.
pub(crate) fn parse_temporal(ty: Builtin, v: &str) -> Option<Temporal> {
    let mut c = Cursor {
        s: v.as_bytes(),
        i: 0,
    };
    let (mut year, mut month, mut day, mut secs) = (2000i64, 1u32, 1u32, 0.0f64);
    match ty {
        B::DateTime | B::Date => {
            year = c.year()?;
            if !c.eat(b'-') {
                return None;
            }
            month = c.fixed(2)?;
            if !c.eat(b'-') {
                return None;
            }
            day = c.fixed(2)?;
            if ty == B::DateTime {
                if !c.eat(b'T') {
                    return None;
                }
                secs = c.time()?;
            }
        }
        B::Time => secs = c.time()?,
        B::GYear => year = c.year()?,
        B::GYearMonth => {
            year = c.year()?;
            if !c.eat(b'-') {
                return None;
            }
            month = c.fixed(2)?;
        }
        B::GMonth => {
            if !(c.eat(b'-') && c.eat(b'-')) {
                return None;
            }
            month = c.fixed(2)?;
        }
        B::GMonthDay => {
            if !(c.eat(b'-') && c.eat(b'-')) {
                return None;
            }
            month = c.fixed(2)?;
            if !c.eat(b'-') {
                return None;
            }
            day = c.fixed(2)?;
        }
        B::GDay => {
            if !(c.eat(b'-') && c.eat(b'-') && c.eat(b'-')) {
                return None;
            }
            day = c.fixed(2)?;
        }
        _ => return None,
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let zoned = !c.done();
    let tz = c.tz()?;
    if !c.done() {
        return None;
    }
    let seconds = days_from_civil(year, month, day) as f64 * 86_400.0 + secs - tz;
    Some(Temporal { seconds, zoned })
}

/// A duration as (months, seconds), the two independent axes of XSD's
/// duration value space.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Duration {
    months: f64,
    seconds: f64,
}

impl Duration {
    /// `None` when the order is indeterminate (e.g. P1M vs P30D).
    pub(crate) fn cmp(&self, other: &Duration) -> Option<Ordering> {
        let m = self.months.partial_cmp(&other.months)?;
        let s = self.seconds.partial_cmp(&other.seconds)?;
        match (m, s) {
            (Ordering::Equal, o) | (o, Ordering::Equal) => Some(o),
            (a, b) if a == b => Some(a),
            _ => None,
        }
    }
}

pub(crate) fn parse_duration(v: &str) -> Option<Duration> {
    let mut c = Cursor {
        s: v.as_bytes(),
        i: 0,
    };
    let neg = c.eat(b'-');
    if !c.eat(b'P') {
        return None;
    }
    let (mut months, mut seconds) = (0.0f64, 0.0f64);
    let mut any = false;
    let mut in_time = false;
    let mut time_any = false;
    // Designators must come in this order; each at most once.
    let date_order = [b'Y', b'M', b'D'];
    let time_order = [b'H', b'M', b'S'];
    let mut next = 0usize;
    while !c.done() {
        if !in_time && c.eat(b'T') {
            in_time = true;
            next = 0;
            continue;
        }
        let n = c.number()? as f64;
        let mut frac = 0.0;
        if c.eat(b'.') {
            let start = c.i;
            c.number()?;
            let txt = std::str::from_utf8(&c.s[start..c.i]).ok()?;
            frac = format!("0.{txt}").parse().unwrap_or(0.0);
            if !(in_time && c.s.get(c.i) == Some(&b'S')) {
                return None;
            }
        }
        let d = *c.s.get(c.i)?;
        c.i += 1;
        let order: &[u8] = if in_time { &time_order } else { &date_order };
        let pos = order.iter().skip(next).position(|&x| x == d)? + next;
        next = pos + 1;
        any = true;
        time_any |= in_time;
        match (in_time, d) {
            (false, b'Y') => months += n * 12.0,
            (false, b'M') => months += n,
            (false, _) => seconds += n * 86_400.0,
            (true, b'H') => seconds += n * 3600.0,
            (true, b'M') => seconds += n * 60.0,
            (true, _) => seconds += n + frac,
        }
    }
    if !any || (in_time && !time_any) {
        return None;
    }
    let sign = if neg { -1.0 } else { 1.0 };
    Some(Duration {
        months: sign * months,
        seconds: sign * seconds,
    })
}

/// Compare two lexically valid values of a type by value. `None` when the
/// type is unordered or the order is indeterminate.
pub(crate) fn compare(b: Builtin, x: &str, y: &str) -> Option<Ordering> {
    match b.order() {
        Order::Decimal => Some(Dec::parse(x)?.cmp(&Dec::parse(y)?)),
        Order::Float => parse_float(x).partial_cmp(&parse_float(y)),
        Order::DateTime => parse_temporal(b, x)?.cmp(&parse_temporal(b, y)?),
        Order::Duration => parse_duration(x)?.cmp(&parse_duration(y)?),
        Order::None => None,
    }
}

/// Equality in the value space where it differs from string equality
/// (`1.0` = `1`, `true` = `1`, `0F` = `0f`), for enumeration and fixed.
pub(crate) fn equal(b: Builtin, x: &str, y: &str) -> bool {
    if x == y {
        return true;
    }
    match b.order() {
        Order::DateTime => match (parse_temporal(b, x), parse_temporal(b, y)) {
            (Some(a), Some(c)) => a.same(&c),
            _ => false,
        },
        Order::Decimal | Order::Duration => compare(b, x, y) == Some(Ordering::Equal),
        Order::Float => {
            let (a, c) = (parse_float(x), parse_float(y));
            a == c || (a.is_nan() && c.is_nan())
        }
        Order::None => match b {
            B::Boolean => matches!(
                (x, y),
                ("true", "1") | ("1", "true") | ("false", "0") | ("0", "false")
            ),
            B::HexBinary => x.eq_ignore_ascii_case(y),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(b: Builtin, v: &str) -> bool {
        b.check(v, &NsScope::new())
    }

    #[test]
    fn a_date_with_a_timezone_never_equals_one_without() {
        assert!(!equal(B::Date, "2024-01-01", "2024-01-01Z"));
        assert!(!equal(
            B::DateTime,
            "2024-01-01T10:00:00",
            "2024-01-01T10:00:00Z"
        ));
        assert!(equal(B::Date, "2024-01-01Z", "2024-01-01+00:00"));
        assert!(equal(
            B::DateTime,
            "2024-01-01T10:00:00Z",
            "2024-01-01T12:00:00+02:00"
        ));
        assert!(equal(B::Time, "10:00:00.0", "10:00:00"));
    }

    #[test]
    fn integers_have_ranges() {
        assert!(ok(B::Byte, "127") && !ok(B::Byte, "128") && ok(B::Byte, "-128"));
        assert!(ok(B::UnsignedLong, "18446744073709551615"));
        assert!(!ok(B::UnsignedLong, "18446744073709551616"));
        assert!(!ok(B::PositiveInteger, "0") && ok(B::PositiveInteger, "+0001"));
        assert!(ok(B::NonPositiveInteger, "-0") && !ok(B::NegativeInteger, "0"));
        assert!(!ok(B::Int, "1.0") && !ok(B::Integer, "") && !ok(B::Integer, "-"));
    }

    #[test]
    fn decimals_compare_without_float_error() {
        let c = |a, b| Dec::parse(a).map(|x| Dec::parse(b).map(|y| x.cmp(&y)));
        assert_eq!(
            c("0.30000000000000001", "0.3"),
            Some(Some(Ordering::Greater))
        );
        assert_eq!(c("-0", "0.000"), Some(Some(Ordering::Equal)));
        assert_eq!(c("-1.5", "-1.25"), Some(Some(Ordering::Less)));
        assert_eq!(c("100", "99.999"), Some(Some(Ordering::Greater)));
        assert!(Dec::parse("12,5").is_none() && Dec::parse(".").is_none());
        let d = Dec::parse("00012.3400");
        assert_eq!(
            d.map(|d| (d.total_digits(), d.fraction_digits())),
            Some((4, 2))
        );
    }

    #[test]
    fn dates_check_calendar() {
        assert!(ok(B::Date, "2024-02-29") && !ok(B::Date, "2023-02-29"));
        assert!(ok(B::Date, "2000-02-29") && !ok(B::Date, "1900-02-29"));
        assert!(ok(B::DateTime, "2024-01-31T23:59:59.5+14:00"));
        assert!(
            ok(B::DateTime, "2024-01-31T24:00:00Z") && !ok(B::DateTime, "2024-01-31T24:00:01Z")
        );
        assert!(!ok(B::DateTime, "2024-01-31") && !ok(B::Date, "2024-1-31"));
        assert!(ok(B::GMonthDay, "--02-29") && !ok(B::GMonthDay, "--04-31"));
        assert!(ok(B::GDay, "---31") && ok(B::GMonth, "--12") && ok(B::GYear, "-0044"));
        assert!(!ok(B::GYear, "0000") && !ok(B::Time, "12:60:00"));
        assert_eq!(
            compare(
                B::DateTime,
                "2024-01-01T10:00:00+02:00",
                "2024-01-01T08:00:00Z"
            ),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn durations() {
        assert!(ok(B::Duration, "P1Y2M3DT4H5M6.7S") && ok(B::Duration, "-PT0S"));
        assert!(!ok(B::Duration, "P") && !ok(B::Duration, "PT") && !ok(B::Duration, "P1S"));
        assert!(!ok(B::Duration, "P1M1Y") && !ok(B::Duration, "P1.5D"));
        assert_eq!(compare(B::Duration, "P1M", "P30D"), None);
        assert_eq!(
            compare(B::Duration, "P1D", "PT23H"),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn floats_names_binary() {
        assert!(ok(B::Double, "-INF") && ok(B::Float, "1.5e-3") && ok(B::Float, ".5"));
        assert!(!ok(B::Double, "inf") && !ok(B::Double, "1e") && !ok(B::Double, "."));
        assert!(ok(B::NCName, "a-b.c") && !ok(B::NCName, "a:b") && !ok(B::Name, "1a"));
        assert!(ok(B::Language, "en-US") && !ok(B::Language, "englishxx-US"));
        assert_eq!(base64_octets("SGVsbG8="), Some(5));
        assert_eq!(base64_octets("SGVs\n bG8h"), Some(6));
        assert_eq!(base64_octets("SGVsbG8"), None);
        assert_eq!(base64_octets("SGVsbG9="), None);
        assert!(ok(B::HexBinary, "0aFF") && !ok(B::HexBinary, "0aF"));
        assert!(!ok(B::QName, "x:y") && ok(B::QName, "y"));
        assert!(equal(B::Decimal, "1.0", "01") && equal(B::Boolean, "1", "true"));
    }

    #[test]
    fn whitespace() {
        assert_eq!(normalize_ws("  a \t b\n", WhiteSpace::Collapse), "a b");
        assert_eq!(normalize_ws("a\tb", WhiteSpace::Replace), "a b");
        assert!(matches!(
            normalize_ws(" ab ", WhiteSpace::Collapse),
            std::borrow::Cow::Borrowed("ab")
        ));
    }
}
