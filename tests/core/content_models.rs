//! Content models judged exactly as XSD 1.0 does: repeated groups whose
//! iterations begin with the same element, and random content models
//! (nested sequences and choices with occurrence ranges, `xs:all`) checked
//! against two reference validators, Python's `xmlschema` and libxml2
//! (through `lxml`), sequence by sequence, both ways: every sequence they
//! accept soapgate accepts, and every sequence they refuse soapgate
//! refuses. Where the two differ — content models made ambiguous by their
//! counters, which `xmlschema` matches greedily and libxml2 by the language
//! they describe — soapgate must agree with one of them. And simple types
//! that name types declared further down: lists and unions load like the
//! references load them.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use soapgate::contract::xsd::{SchemaSet, SchemaSetBuilder};
use soapgate::files::DiskFiles;
use soapgate::xml::{self, NsScope, QName};

use crate::common::app::peer_missing;

const NS: &str = "urn:content-models";

fn schema_text(particle: &str) -> String {
    format!(
        "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" targetNamespace=\"{NS}\" \
         xmlns=\"{NS}\" elementFormDefault=\"qualified\">\
         <xs:element name=\"R\"><xs:complexType>{particle}</xs:complexType></xs:element>\
         </xs:schema>"
    )
}

fn load(text: &str) -> Option<SchemaSet> {
    let root = xml::read(text.as_bytes(), None, &xml::Limits::default())
        .expect("schema XML")
        .root;
    let mut builder = SchemaSetBuilder::new();
    builder.add_schema(Path::new("model.xsd"), &root, &NsScope::new());
    builder.finish(&DiskFiles).ok().map(|(set, _)| set)
}

fn instance(children: &[char]) -> String {
    let mut text = format!("<R xmlns=\"{NS}\">");
    for c in children {
        let _ = write!(text, "<{c}/>");
    }
    text.push_str("</R>");
    text
}

/// The violations soapgate finds in `<R>` with these children.
fn judge(set: &SchemaSet, children: &[char]) -> Vec<String> {
    let doc = xml::read(instance(children).as_bytes(), None, &xml::Limits::default())
        .expect("instance XML");
    set.validate_element(&doc.root, &QName::new(NS, "R"))
        .iter()
        .map(|v| format!("{}: {}", v.path, v.rule))
        .collect()
}

fn el(name: char, min: u32, max: &str) -> String {
    format!(
        "<xs:element name=\"{name}\" type=\"xs:string\" minOccurs=\"{min}\" maxOccurs=\"{max}\"/>"
    )
}

#[test]
fn repeated_groups_whose_iterations_begin_with_the_same_element_are_valid() {
    // (Note | Tag)*: two Notes in a row are two iterations of the choice.
    let choice = load(&schema_text(&format!(
        "<xs:choice maxOccurs=\"unbounded\">{}{}</xs:choice>",
        el('n', 1, "1"),
        el('t', 1, "1")
    )))
    .expect("loads");
    for ok in [&['n', 'n'][..], &['n', 't', 'n', 'n'], &['t', 't', 't']] {
        assert!(
            judge(&choice, ok).is_empty(),
            "{ok:?}: {:?}",
            judge(&choice, ok)
        );
    }
    assert!(!judge(&choice, &[]).is_empty(), "minOccurs=1: one at least");
    // (choice(k | m))+ over `k k`, and a sequence inside a repeated choice.
    let nested = load(&schema_text(&format!(
        "<xs:sequence maxOccurs=\"unbounded\"><xs:choice>{}{}</xs:choice></xs:sequence>",
        el('k', 1, "1"),
        el('m', 1, "1")
    )))
    .expect("loads");
    assert!(
        judge(&nested, &['k', 'k']).is_empty(),
        "{:?}",
        judge(&nested, &['k', 'k'])
    );
    assert!(!judge(&nested, &[]).is_empty(), "one iteration at least");
    let seq_in_choice = load(&schema_text(&format!(
        "<xs:choice minOccurs=\"2\" maxOccurs=\"3\"><xs:sequence>{}{}</xs:sequence>{}</xs:choice>",
        el('a', 1, "1"),
        el('b', 0, "1"),
        el('c', 1, "2")
    )))
    .expect("loads");
    for ok in [
        &['a', 'a'][..],
        &['a', 'b', 'a'],
        &['c', 'c', 'a'],
        &['a', 'c', 'c', 'a', 'b'],
    ] {
        assert!(
            judge(&seq_in_choice, ok).is_empty(),
            "{ok:?}: {:?}",
            judge(&seq_in_choice, ok)
        );
    }
    // And what the model does not allow is still refused, with a message
    // saying where.
    assert_eq!(
        judge(&seq_in_choice, &['a']),
        ["/R: required element one of a, c missing"]
    );
    assert!(!judge(&seq_in_choice, &['a', 'a', 'a', 'a']).is_empty());
    assert!(!judge(&seq_in_choice, &['c'; 7]).is_empty());
}

// ---------------------------------------------------------------------------
// Random content models against the reference.

/// A content model of our own, to print as XSD and to sample sequences of.
#[derive(Clone, Debug)]
enum Model {
    El(char),
    Seq(Vec<(Model, u32, Option<u32>)>),
    Choice(Vec<(Model, u32, Option<u32>)>),
    /// `xs:all` of distinct elements, each optional or required.
    All(Vec<(char, bool)>),
}

const NAMES: [char; 4] = ['a', 'b', 'c', 'd'];

fn occurs(rng: &mut fastrand::Rng) -> (u32, Option<u32>) {
    let min = [0, 0, 1, 1, 1, 2][rng.usize(..6)];
    let max = match rng.usize(..5) {
        0 => None,
        n => Some((n as u32).max(min).max(1)),
    };
    (min, max)
}

fn group(rng: &mut fastrand::Rng, depth: u32) -> Model {
    let n = 1 + rng.usize(..3);
    let members = (0..n)
        .map(|_| {
            let term = if depth == 0 || rng.usize(..10) < 6 {
                Model::El(NAMES[rng.usize(..NAMES.len())])
            } else {
                group(rng, depth - 1)
            };
            let (min, max) = occurs(rng);
            (term, min, max)
        })
        .collect();
    if rng.bool() {
        Model::Seq(members)
    } else {
        Model::Choice(members)
    }
}

fn model(rng: &mut fastrand::Rng) -> (Model, u32, Option<u32>) {
    if rng.usize(..8) == 0 {
        let mut names = NAMES.to_vec();
        rng.shuffle(&mut names);
        let members = names[..2 + rng.usize(..2)]
            .iter()
            .map(|c| (*c, rng.bool()))
            .collect();
        return (Model::All(members), rng.u32(..2), Some(1));
    }
    let (min, max) = occurs(rng);
    (group(rng, 2), min, max)
}

fn occurs_attrs(min: u32, max: Option<u32>) -> String {
    let max = max.map_or_else(|| "unbounded".to_string(), |m| m.to_string());
    format!(" minOccurs=\"{min}\" maxOccurs=\"{max}\"")
}

fn xsd(m: &Model, min: u32, max: Option<u32>) -> String {
    let attrs = occurs_attrs(min, max);
    match m {
        Model::El(c) => format!("<xs:element name=\"{c}\" type=\"xs:string\"{attrs}/>"),
        Model::Seq(ps) | Model::Choice(ps) => {
            let tag = if matches!(m, Model::Seq(_)) {
                "sequence"
            } else {
                "choice"
            };
            let inner: String = ps.iter().map(|(p, lo, hi)| xsd(p, *lo, *hi)).collect();
            format!("<xs:{tag}{attrs}>{inner}</xs:{tag}>")
        }
        Model::All(ps) => {
            let inner: String = ps
                .iter()
                .map(|(c, required)| {
                    format!(
                        "<xs:element name=\"{c}\" type=\"xs:string\" minOccurs=\"{}\"/>",
                        u32::from(*required)
                    )
                })
                .collect();
            format!("<xs:all{attrs}>{inner}</xs:all>")
        }
    }
}

/// A sequence the model allows, drawn at random (unbounded as up to 3).
fn sample(rng: &mut fastrand::Rng, m: &Model, min: u32, max: Option<u32>, out: &mut Vec<char>) {
    let hi = max.unwrap_or(min.max(1) + 2);
    let times = min + rng.u32(..=hi - min);
    for _ in 0..times {
        match m {
            Model::El(c) => out.push(*c),
            Model::Seq(ps) => {
                for (p, lo, hi) in ps {
                    sample(rng, p, *lo, *hi, out);
                }
            }
            Model::Choice(ps) => {
                let (p, lo, hi) = &ps[rng.usize(..ps.len())];
                sample(rng, p, *lo, *hi, out);
            }
            Model::All(ps) => {
                let mut picked: Vec<char> = ps
                    .iter()
                    .filter(|(_, required)| *required || rng.bool())
                    .map(|(c, _)| *c)
                    .collect();
                rng.shuffle(&mut picked);
                out.extend(picked);
            }
        }
    }
}

/// The references' verdicts: for each schema, `None` when either refuses
/// the schema (libxml2 refuses content models it finds not deterministic),
/// else each instance's validity by `xmlschema` and by libxml2 (`lxml`).
const REFERENCE: &str = r#"
import json, sys
import lxml.etree as etree
import xmlschema
cases = json.load(open(sys.argv[1]))
out = []
for case in cases:
    try:
        ours = xmlschema.XMLSchema10(case["schema"])
        theirs = etree.XMLSchema(etree.fromstring(case["schema"].encode()))
    except Exception:
        out.append(None)
        continue
    out.append([[ours.is_valid(i), theirs.validate(etree.fromstring(i.encode()))]
                for i in case["instances"]])
print(json.dumps(out))
"#;

#[test]
fn random_content_models_agree_with_the_reference_validator_both_ways() {
    let test = "random_content_models_agree_with_the_reference_validator_both_ways";
    let probe = Command::new("python3")
        .args(["-c", "import xmlschema, lxml.etree"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        peer_missing(test, "python3 with xmlschema and lxml");
        return;
    }
    let mut rng = fastrand::Rng::with_seed(0x5eed_c0de);
    let mut cases = Vec::new();
    for _ in 0..240 {
        let (m, min, max) = model(&mut rng);
        let schema = schema_text(&xsd(&m, min, max));
        let mut sequences: Vec<Vec<char>> = Vec::new();
        for _ in 0..12 {
            let mut s = Vec::new();
            sample(&mut rng, &m, min, max, &mut s);
            if s.len() <= 12 {
                sequences.push(s);
            }
        }
        // Mutations of allowed sequences, and random words.
        for i in 0..12 {
            let mut s = sequences
                .get(i % sequences.len().max(1))
                .cloned()
                .unwrap_or_default();
            match rng.usize(..3) {
                0 if !s.is_empty() => {
                    s.remove(rng.usize(..s.len()));
                }
                1 => s.insert(rng.usize(..=s.len()), NAMES[rng.usize(..NAMES.len())]),
                _ => {
                    s = (0..rng.usize(..6))
                        .map(|_| NAMES[rng.usize(..NAMES.len())])
                        .collect();
                }
            }
            sequences.push(s);
        }
        sequences.sort();
        sequences.dedup();
        cases.push((schema, sequences));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest: Vec<serde_json::Value> = cases
        .iter()
        .map(|(schema, sequences)| {
            serde_json::json!({
                "schema": schema,
                "instances": sequences.iter().map(|s| instance(s)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let path = dir.path().join("cases.json");
    std::fs::write(&path, serde_json::to_vec(&manifest).expect("json")).expect("manifest");
    let output = Command::new("python3")
        .args(["-c", REFERENCE])
        .arg(&path)
        .output()
        .expect("running python3");
    assert!(
        output.status.success(),
        "the reference failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<Option<Vec<[bool; 2]>>> =
        serde_json::from_slice(&output.stdout).expect("the references' verdicts");
    assert_eq!(verdicts.len(), cases.len());

    let (mut compared, mut valid, mut schemas, mut split) = (0usize, 0usize, 0usize, 0usize);
    let mut disagreements = Vec::new();
    for ((schema, sequences), verdict) in cases.iter().zip(&verdicts) {
        // A schema a reference refuses is not compared.
        let Some(verdict) = verdict else { continue };
        let set = load(schema)
            .unwrap_or_else(|| panic!("soapgate refuses a schema both references load:\n{schema}"));
        schemas += 1;
        for (s, [xmlschema, libxml2]) in sequences.iter().zip(verdict) {
            let ours = judge(&set, s).is_empty();
            compared += 1;
            valid += usize::from(*libxml2);
            // Where the references differ (content models whose counters
            // make them ambiguous, which xmlschema matches greedily and
            // libxml2 by the language), soapgate must side with one.
            if xmlschema != libxml2 {
                split += 1;
            }
            if ours != *xmlschema && ours != *libxml2 {
                disagreements.push(format!(
                    "{schema}\n  {}: references {}, soapgate {:?}",
                    s.iter().collect::<String>(),
                    if *libxml2 { "valid" } else { "invalid" },
                    judge(&set, s)
                ));
            }
        }
    }
    eprintln!(
        "content models: {schemas} schemas both references load, {compared} sequences ({valid} valid), \
         {split} on which the references differ, {} disagreements with both",
        disagreements.len()
    );
    assert!(schemas >= 100, "too few schemas compared: {schemas}");
    assert!(
        valid >= compared / 4,
        "too few valid sequences: {valid} of {compared}"
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements, the first:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// List and union types may name simple types declared further down, or
/// in another schema document; both are built before they are checked.
#[test]
fn lists_and_unions_of_types_declared_later_or_elsewhere_load() {
    let codes = "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
         targetNamespace=\"urn:codes\">\
         <xs:simpleType name=\"Code\"><xs:restriction base=\"xs:string\">\
         <xs:pattern value=\"[A-Z]{3}\"/></xs:restriction></xs:simpleType></xs:schema>";
    let main = format!(
        "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns=\"{NS}\" \
         xmlns:c=\"urn:codes\" targetNamespace=\"{NS}\" elementFormDefault=\"qualified\">\
         <xs:import namespace=\"urn:codes\"/>\
         <xs:element name=\"R\"><xs:complexType><xs:sequence>\
         <xs:element name=\"sizes\" type=\"Sizes\"/>\
         <xs:element name=\"codes\" type=\"Codes\"/>\
         <xs:element name=\"either\" type=\"Either\"/>\
         </xs:sequence></xs:complexType></xs:element>\
         <xs:simpleType name=\"Sizes\"><xs:list itemType=\"Size\"/></xs:simpleType>\
         <xs:simpleType name=\"Codes\"><xs:list itemType=\"c:Code\"/></xs:simpleType>\
         <xs:simpleType name=\"Either\"><xs:union memberTypes=\"Size c:Code\"/></xs:simpleType>\
         <xs:simpleType name=\"Size\"><xs:restriction base=\"xs:int\">\
         <xs:maxInclusive value=\"9\"/></xs:restriction></xs:simpleType>\
         </xs:schema>"
    );
    let mut builder = SchemaSetBuilder::new();
    for (i, text) in [codes, main.as_str()].iter().enumerate() {
        let root = xml::read(text.as_bytes(), None, &xml::Limits::default())
            .expect("schema XML")
            .root;
        builder.add_schema(Path::new(&format!("s{i}.xsd")), &root, &NsScope::new());
    }
    let set = match builder.finish(&DiskFiles) {
        Ok((set, _)) => set,
        Err(e) => panic!("both references load this: {e:?}"),
    };
    let check = |body: &str| {
        let doc = xml::read(
            format!("<R xmlns=\"{NS}\">{body}</R>").as_bytes(),
            None,
            &xml::Limits::default(),
        )
        .expect("instance");
        set.validate_element(&doc.root, &QName::new(NS, "R"))
            .iter()
            .map(|v| format!("{}: {}", v.path, v.rule))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        check("<sizes>1 2 9</sizes><codes>ABC XYZ</codes><either>ABC</either>"),
        Vec::<String>::new()
    );
    assert_eq!(
        check("<sizes>1 12</sizes><codes>ABC</codes><either>7</either>").len(),
        1
    );
    assert_eq!(
        check("<sizes>1</sizes><codes>abc</codes><either>7</either>").len(),
        1
    );
    assert_eq!(
        check("<sizes>1</sizes><codes>ABC</codes><either>x</either>").len(),
        1
    );
}

/// Two elements of one name and different types in one content model
/// break Element Declarations Consistent: a load error where the type is
/// declared, as the references refuse the schema.
#[test]
fn elements_of_one_name_and_two_types_in_one_content_model_are_refused() {
    let schema = format!(
        "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" targetNamespace=\"{NS}\">\n\
         <xs:complexType name=\"Pair\">\n\
         <xs:sequence><xs:element name=\"v\" type=\"xs:int\"/>\
         <xs:choice><xs:element name=\"v\" type=\"xs:string\"/><xs:element name=\"w\" type=\"xs:int\"/></xs:choice>\
         </xs:sequence></xs:complexType>\n\
         <xs:complexType name=\"Same\"><xs:sequence><xs:element name=\"v\" type=\"xs:int\"/>\
         <xs:element name=\"v\" type=\"xs:int\"/></xs:sequence></xs:complexType>\n\
         </xs:schema>"
    );
    let root = xml::read(schema.as_bytes(), None, &xml::Limits::default())
        .expect("schema XML")
        .root;
    let mut builder = SchemaSetBuilder::new();
    builder.add_schema(Path::new("edc.xsd"), &root, &NsScope::new());
    let errors = match builder.finish(&DiskFiles) {
        Ok(_) => panic!("a schema breaking Element Declarations Consistent loaded"),
        Err(e) => e,
    };
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "edc.xsd:2:1: two elements named v in one content model have different types \
          (Element Declarations Consistent)"
        ]
    );
}
