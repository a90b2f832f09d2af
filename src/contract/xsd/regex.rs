//! XSD pattern syntax (XML Schema Part 2, appendix F) translated to the
//! `regex` crate's syntax. XSD patterns are implicitly anchored, treat `^`
//! and `$` as ordinary characters, have `\i`/`\c` name escapes, `IsBlock`
//! escapes and character-class subtraction, and no backreferences or
//! lookaround. Translation happens once, at load; a pattern we cannot
//! translate is a load error rather than a silently wrong check.

use std::fmt::Write as _;

use regex::Regex;

/// Compile a set of patterns from one derivation step: the value must match
/// one of them as a whole.
pub(crate) fn compile_step(patterns: &[String]) -> Result<Regex, String> {
    let mut out = String::from("^(?:");
    for (i, p) in patterns.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        out.push_str("(?:");
        out.push_str(&translate(p).map_err(|e| format!("pattern {p:?}: {e}"))?);
        out.push(')');
    }
    out.push_str(")$");
    Regex::new(&out).map_err(|e| format!("pattern cannot be compiled: {e}"))
}

/// Translate one XSD pattern (without anchors).
pub(crate) fn translate(xsd: &str) -> Result<String, String> {
    let chars: Vec<char> = xsd.chars().collect();
    let mut p = Parser {
        s: &chars,
        i: 0,
        out: String::with_capacity(xsd.len() * 2),
    };
    p.reg_exp()?;
    if p.i < chars.len() {
        return Err(format!("unbalanced ')' at offset {}", p.i));
    }
    Ok(p.out)
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
    out: String,
}

/// `\i`: XSD 1.0 takes its initial name characters from XML 1.0 (second
/// edition), `Letter | '_' | ':'`, where a letter is a base character or an
/// ideograph. In Unicode's terms that is the cased and other letters plus
/// the ideographic numerals: not digits of any script (Arabic-Indic,
/// Thai…), modifier letters or other letter-numbers, which XML 1.0's fifth
/// edition later let names begin with.
const NAME_START: &str = r":_\p{Lu}\p{Ll}\p{Lt}\p{Lo}\x{3007}\x{3021}-\x{3029}";
/// The further characters `\c` allows: digits, combining characters and
/// XML 1.0's extenders, `.` and `-`.
const NAME_EXTRA: &str = r"\-.\p{Nd}\p{Mn}\p{Mc}\x{B7}\x{2D0}\x{2D1}\x{387}\x{640}\x{E46}\x{EC6}\x{3005}\x{3031}-\x{3035}\x{309D}-\x{309E}\x{30FC}-\x{30FE}";

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn reg_exp(&mut self) -> Result<(), String> {
        self.branch()?;
        while self.peek() == Some('|') {
            self.i += 1;
            self.out.push('|');
            self.branch()?;
        }
        Ok(())
    }

    fn branch(&mut self) -> Result<(), String> {
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            self.atom()?;
            self.quantifier()?;
        }
        Ok(())
    }

    fn quantifier(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(c @ ('?' | '*' | '+')) => {
                self.i += 1;
                self.out.push(c);
            }
            Some('{') => {
                self.i += 1;
                let start = self.i;
                while self.peek().is_some_and(|c| c != '}') {
                    self.i += 1;
                }
                if self.peek() != Some('}') {
                    return Err("unterminated '{' quantifier".into());
                }
                let body: String = self.s[start..self.i].iter().collect();
                self.i += 1;
                let num = |t: &str| {
                    t.parse::<u32>()
                        .map_err(|_| format!("bad quantifier {{{body}}}"))
                };
                match body.split_once(',') {
                    None => {
                        num(&body)?;
                    }
                    Some((a, "")) => {
                        num(a)?;
                    }
                    Some((a, b)) => {
                        if num(a)? > num(b)? {
                            return Err(format!("bad quantifier {{{body}}}: min greater than max"));
                        }
                    }
                }
                let _ = write!(self.out, "{{{body}}}");
            }
            _ => return Ok(()),
        }
        if matches!(self.peek(), Some('?' | '*' | '+' | '{')) {
            return Err(format!("quantifier without an atom at offset {}", self.i));
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<(), String> {
        let Some(c) = self.peek() else { return Ok(()) };
        self.i += 1;
        match c {
            '(' => {
                self.out.push_str("(?:");
                self.reg_exp()?;
                if self.peek() != Some(')') {
                    return Err("unbalanced '('".into());
                }
                self.i += 1;
                self.out.push(')');
            }
            '[' => {
                let class = self.class_expr()?;
                self.out.push_str(&class);
            }
            '.' => self.out.push_str(r"[^\n\r]"),
            '\\' => {
                let e = self.escape()?;
                self.out.push_str(&e);
            }
            '?' | '*' | '+' | '{' => {
                return Err(format!(
                    "quantifier without an atom at offset {}",
                    self.i - 1
                ));
            }
            '}' | ']' => return Err(format!("unescaped '{c}' at offset {}", self.i - 1)),
            _ => push_literal(&mut self.out, c),
        }
        Ok(())
    }

    /// After a backslash: a single-char escape as a literal, or a class.
    fn escape(&mut self) -> Result<String, String> {
        let c = self.peek().ok_or("pattern ends with a backslash")?;
        self.i += 1;
        let mut out = String::new();
        match c {
            'n' => out.push_str(r"\n"),
            'r' => out.push_str(r"\r"),
            't' => out.push_str(r"\t"),
            '\\' | '|' | '.' | '-' | '^' | '?' | '*' | '+' | '{' | '}' | '(' | ')' | '[' | ']' => {
                push_literal(&mut out, c)
            }
            's' => out.push_str(r"[ \t\n\r]"),
            'S' => out.push_str(r"[^ \t\n\r]"),
            'd' => out.push_str(r"\p{Nd}"),
            'D' => out.push_str(r"\P{Nd}"),
            'w' => out.push_str(r"[^\p{P}\p{Z}\p{C}]"),
            'W' => out.push_str(r"[\p{P}\p{Z}\p{C}]"),
            'i' => {
                let _ = write!(out, "[{NAME_START}]");
            }
            'I' => {
                let _ = write!(out, "[^{NAME_START}]");
            }
            'c' => {
                let _ = write!(out, "[{NAME_START}{NAME_EXTRA}]");
            }
            'C' => {
                let _ = write!(out, "[^{NAME_START}{NAME_EXTRA}]");
            }
            'p' | 'P' => {
                if self.peek() != Some('{') {
                    return Err(format!("\\{c} must be followed by {{name}}"));
                }
                let start = self.i + 1;
                let end = self.s[start..]
                    .iter()
                    .position(|&x| x == '}')
                    .map(|n| start + n)
                    .ok_or("unterminated \\p{...}")?;
                let name: String = self.s[start..end].iter().collect();
                self.i = end + 1;
                out.push_str(&category(&name, c == 'P')?);
            }
            _ => return Err(format!("unknown escape \\{c}")),
        }
        Ok(out)
    }

    /// After `[`: a character class expression, possibly negated and with a
    /// subtraction. Produces a regex-crate class (nested classes and `--`).
    fn class_expr(&mut self) -> Result<String, String> {
        let negated = self.peek() == Some('^');
        if negated {
            self.i += 1;
        }
        let mut items = String::new();
        let mut count = 0usize;
        loop {
            let c = self.peek().ok_or("unterminated character class")?;
            match c {
                ']' => {
                    self.i += 1;
                    break;
                }
                '-' if self.s.get(self.i + 1) == Some(&'[') && count > 0 => {
                    self.i += 2;
                    let sub = self.class_expr()?;
                    if self.peek() != Some(']') {
                        return Err("a class subtraction must end its class".into());
                    }
                    self.i += 1;
                    let neg = if negated { "^" } else { "" };
                    return Ok(format!("[[{neg}{items}]--{sub}]"));
                }
                '[' => return Err("'[' must be escaped inside a character class".into()),
                _ => {}
            }
            count += 1;
            let lo = self.class_char()?;
            match lo {
                ClassItem::Char(a) => {
                    // A range, unless the '-' is the last character of the
                    // group or starts a subtraction.
                    if self.peek() == Some('-')
                        && !matches!(self.s.get(self.i + 1), Some(']') | Some('[') | None)
                    {
                        self.i += 1;
                        let hi = match self.class_char()? {
                            ClassItem::Char(b) => b,
                            ClassItem::Class(_) => {
                                return Err("a range cannot end in a class escape".into());
                            }
                        };
                        if hi < a {
                            return Err(format!("range {a}-{hi} is out of order"));
                        }
                        push_literal(&mut items, a);
                        items.push('-');
                        push_literal(&mut items, hi);
                    } else {
                        push_literal(&mut items, a);
                    }
                }
                ClassItem::Class(cls) => items.push_str(&cls),
            }
        }
        if count == 0 {
            return Err("empty character class".into());
        }
        Ok(if negated {
            format!("[^{items}]")
        } else {
            format!("[{items}]")
        })
    }

    fn class_char(&mut self) -> Result<ClassItem, String> {
        let c = self.peek().ok_or("unterminated character class")?;
        self.i += 1;
        if c != '\\' {
            return Ok(ClassItem::Char(c));
        }
        let e = self.peek().ok_or("pattern ends with a backslash")?;
        Ok(match e {
            'n' => {
                self.i += 1;
                ClassItem::Char('\n')
            }
            'r' => {
                self.i += 1;
                ClassItem::Char('\r')
            }
            't' => {
                self.i += 1;
                ClassItem::Char('\t')
            }
            '\\' | '|' | '.' | '-' | '^' | '?' | '*' | '+' | '{' | '}' | '(' | ')' | '[' | ']' => {
                self.i += 1;
                ClassItem::Char(e)
            }
            _ => ClassItem::Class(self.escape()?),
        })
    }
}

enum ClassItem {
    Char(char),
    Class(String),
}

/// Write a character so the regex crate reads it literally, inside or
/// outside a class.
fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || !c.is_ascii() {
        out.push(c);
    } else {
        let _ = write!(out, r"\x{{{:X}}}", c as u32);
    }
}

/// `\p{..}`: a general category (which the regex crate knows) or an
/// `IsBlock` name, mapped to its code point range.
fn category(name: &str, negated: bool) -> Result<String, String> {
    const CATEGORIES: &[&str] = &[
        "L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No", "P", "Pc",
        "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Z", "Zs", "Zl", "Zp", "S", "Sm", "Sc", "Sk", "So",
        "C", "Cc", "Cf", "Co", "Cn",
    ];
    let neg = if negated { "^" } else { "" };
    if CATEGORIES.contains(&name) {
        let p = if negated { 'P' } else { 'p' };
        return Ok(format!(r"\{p}{{{name}}}"));
    }
    if let Some(block) = name.strip_prefix("Is") {
        if let Some(&(_, lo, hi)) = BLOCKS.iter().find(|(n, _, _)| *n == block) {
            return Ok(format!(r"[{neg}\x{{{lo:X}}}-\x{{{hi:X}}}]"));
        }
        return Err(format!("unsupported Unicode block \\p{{{name}}}"));
    }
    Err(format!("unknown character property \\p{{{name}}}"))
}

/// Unicode blocks as XSD 1.0 names them (the Unicode 3.1 block list).
const BLOCKS: &[(&str, u32, u32)] = &[
    ("BasicLatin", 0x0000, 0x007F),
    ("Latin-1Supplement", 0x0080, 0x00FF),
    ("LatinExtended-A", 0x0100, 0x017F),
    ("LatinExtended-B", 0x0180, 0x024F),
    ("IPAExtensions", 0x0250, 0x02AF),
    ("SpacingModifierLetters", 0x02B0, 0x02FF),
    ("CombiningDiacriticalMarks", 0x0300, 0x036F),
    ("Greek", 0x0370, 0x03FF),
    ("Cyrillic", 0x0400, 0x04FF),
    ("Armenian", 0x0530, 0x058F),
    ("Hebrew", 0x0590, 0x05FF),
    ("Arabic", 0x0600, 0x06FF),
    ("Syriac", 0x0700, 0x074F),
    ("Thaana", 0x0780, 0x07BF),
    ("Devanagari", 0x0900, 0x097F),
    ("Bengali", 0x0980, 0x09FF),
    ("Gurmukhi", 0x0A00, 0x0A7F),
    ("Gujarati", 0x0A80, 0x0AFF),
    ("Oriya", 0x0B00, 0x0B7F),
    ("Tamil", 0x0B80, 0x0BFF),
    ("Telugu", 0x0C00, 0x0C7F),
    ("Kannada", 0x0C80, 0x0CFF),
    ("Malayalam", 0x0D00, 0x0D7F),
    ("Sinhala", 0x0D80, 0x0DFF),
    ("Thai", 0x0E00, 0x0E7F),
    ("Lao", 0x0E80, 0x0EFF),
    ("Tibetan", 0x0F00, 0x0FFF),
    ("Myanmar", 0x1000, 0x109F),
    ("Georgian", 0x10A0, 0x10FF),
    ("HangulJamo", 0x1100, 0x11FF),
    ("Ethiopic", 0x1200, 0x137F),
    ("Cherokee", 0x13A0, 0x13FF),
    ("UnifiedCanadianAboriginalSyllabics", 0x1400, 0x167F),
    ("Ogham", 0x1680, 0x169F),
    ("Runic", 0x16A0, 0x16FF),
    ("Khmer", 0x1780, 0x17FF),
    ("Mongolian", 0x1800, 0x18AF),
    ("LatinExtendedAdditional", 0x1E00, 0x1EFF),
    ("GreekExtended", 0x1F00, 0x1FFF),
    ("GeneralPunctuation", 0x2000, 0x206F),
    ("SuperscriptsandSubscripts", 0x2070, 0x209F),
    ("CurrencySymbols", 0x20A0, 0x20CF),
    ("CombiningMarksforSymbols", 0x20D0, 0x20FF),
    ("LetterlikeSymbols", 0x2100, 0x214F),
    ("NumberForms", 0x2150, 0x218F),
    ("Arrows", 0x2190, 0x21FF),
    ("MathematicalOperators", 0x2200, 0x22FF),
    ("MiscellaneousTechnical", 0x2300, 0x23FF),
    ("ControlPictures", 0x2400, 0x243F),
    ("OpticalCharacterRecognition", 0x2440, 0x245F),
    ("EnclosedAlphanumerics", 0x2460, 0x24FF),
    ("BoxDrawing", 0x2500, 0x257F),
    ("BlockElements", 0x2580, 0x259F),
    ("GeometricShapes", 0x25A0, 0x25FF),
    ("MiscellaneousSymbols", 0x2600, 0x26FF),
    ("Dingbats", 0x2700, 0x27BF),
    ("BraillePatterns", 0x2800, 0x28FF),
    ("CJKRadicalsSupplement", 0x2E80, 0x2EFF),
    ("KangxiRadicals", 0x2F00, 0x2FDF),
    ("IdeographicDescriptionCharacters", 0x2FF0, 0x2FFF),
    ("CJKSymbolsandPunctuation", 0x3000, 0x303F),
    ("Hiragana", 0x3040, 0x309F),
    ("Katakana", 0x30A0, 0x30FF),
    ("Bopomofo", 0x3100, 0x312F),
    ("HangulCompatibilityJamo", 0x3130, 0x318F),
    ("Kanbun", 0x3190, 0x319F),
    ("BopomofoExtended", 0x31A0, 0x31BF),
    ("EnclosedCJKLettersandMonths", 0x3200, 0x32FF),
    ("CJKCompatibility", 0x3300, 0x33FF),
    ("CJKUnifiedIdeographsExtensionA", 0x3400, 0x4DB5),
    ("CJKUnifiedIdeographs", 0x4E00, 0x9FFF),
    ("YiSyllables", 0xA000, 0xA48F),
    ("YiRadicals", 0xA490, 0xA4CF),
    ("HangulSyllables", 0xAC00, 0xD7A3),
    ("PrivateUse", 0xE000, 0xF8FF),
    ("CJKCompatibilityIdeographs", 0xF900, 0xFAFF),
    ("AlphabeticPresentationForms", 0xFB00, 0xFB4F),
    ("ArabicPresentationForms-A", 0xFB50, 0xFDFF),
    ("CombiningHalfMarks", 0xFE20, 0xFE2F),
    ("CJKCompatibilityForms", 0xFE30, 0xFE4F),
    ("SmallFormVariants", 0xFE50, 0xFE6F),
    ("ArabicPresentationForms-B", 0xFE70, 0xFEFE),
    ("HalfwidthandFullwidthForms", 0xFF00, 0xFFEF),
    ("Specials", 0xFFF0, 0xFFFD),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, v: &str) -> bool {
        compile_step(&[p.to_string()])
            .map(|r| r.is_match(v))
            .unwrap_or(false)
    }

    #[test]
    fn anchored_and_literal_metachars() {
        assert!(m("[0-9]{3}", "123") && !m("[0-9]{3}", "1234") && !m("[0-9]{3}", "x123"));
        assert!(m("a^b$", "a^b$") && m("a|b", "b") && !m("a|b", "ab"));
        assert!(m("x#y&z~", "x#y&z~"));
    }

    #[test]
    fn escapes() {
        assert!(m(r"\i\c*", "_a-1.b") && !m(r"\i\c*", "1a"));
        // XML 1.0 (second edition) names, as XSD 1.0 has them: no digit of
        // any script starts one, nor a modifier letter or a Roman numeral;
        // ideographs, accented letters and extenders are as XML says.
        for (text, ok) in [
            ("\u{660}x", false),
            ("\u{e50}", false),
            ("\u{2b0}a", false),
            ("\u{2160}", false),
            ("x\u{660}", true),
            ("\u{b7}x", false),
            ("a\u{300}", true),
            ("\u{3007}a", true),
            ("a\u{387}", true),
            ("\u{e0}", true),
        ] {
            assert_eq!(m(r"\i\c*", text), ok, "{text:?}");
        }
        assert!(m(r"\d+", "0123") && !m(r"\d+", "1a"));
        assert!(m(r"\w+", "abc") && !m(r"\w+", "a b") && !m(r"\w", "."));
        assert!(m(r"\p{Lu}\P{Lu}", "Ab") && !m(r"\p{Lu}", "a"));
        assert!(m(r"\p{IsBasicLatin}+", "abc") && !m(r"\p{IsBasicLatin}", "é"));
        assert!(m(r"\.\-\^", ".-^") && m(r".", "x") && !m(".", "\n"));
    }

    #[test]
    fn classes() {
        assert!(m("[a-z-[aeiou]]+", "bcd") && !m("[a-z-[aeiou]]+", "bad"));
        assert!(m("[^a-c-[x]]", "d") && !m("[^a-c-[x]]", "x") && !m("[^a-c-[x]]", "a"));
        assert!(m("[-a]", "-") && m("[a-]", "-") && m(r"[\d\s]+", "1 2"));
        assert!(m("[+\\-]?[0-9]+", "-5") && m(r"[\[\]]", "]"));
        assert!(m("[^^]", "a") && !m("[^^]", "^"));
    }

    #[test]
    fn errors() {
        for bad in [
            "(a",
            "a)",
            "[a",
            "[]",
            "a**",
            r"\p{IsKlingon}",
            r"\q",
            "a{2,1}",
            "[z-a]",
            r"\p{Foo}",
        ] {
            assert!(compile_step(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn or_of_patterns() {
        let r = compile_step(&["[A-Z]+".into(), "[0-9]+".into()]);
        assert!(
            r.as_ref()
                .is_ok_and(|r| r.is_match("AB") && r.is_match("12") && !r.is_match("A1"))
        );
    }
}
