//! The tool JSON Schema of structured output stays as large as the types
//! it describes: a complex type used in several places is defined once
//! under `$defs` (a chain of types each using the next twice used to double
//! the schema at every link), and definitions of types with the same local
//! name in different namespaces do not collide. And what comes back through
//! it keeps the schema's lexical forms (fixed values).

use std::path::Path;

use serde_json::Value;
use soapgate::contract::xsd::{SchemaSet, SchemaSetBuilder};
use soapgate::files::DiskFiles;
use soapgate::mapping::json_schema;
use soapgate::xml::{self, NsScope, QName};

fn load(schemas: &[&str]) -> SchemaSet {
    let mut builder = SchemaSetBuilder::new();
    for (i, text) in schemas.iter().enumerate() {
        let root = xml::read(text.as_bytes(), None, &xml::Limits::default())
            .expect("schema XML")
            .root;
        builder.add_schema(Path::new(&format!("s{i}.xsd")), &root, &NsScope::new());
    }
    match builder.finish(&DiskFiles) {
        Ok((set, _)) => set,
        Err(e) => panic!("{e:?}"),
    }
}

/// `Root` of type `T0`; each `Tn` has two children of type `Tn+1`; the last
/// holds a string.
fn chain(depth: usize) -> String {
    let mut types = String::new();
    for n in 0..depth {
        types.push_str(&format!(
            "<xs:complexType name=\"T{n}\"><xs:sequence>\
             <xs:element name=\"left\" type=\"c:T{next}\"/>\
             <xs:element name=\"right\" type=\"c:T{next}\"/>\
             </xs:sequence></xs:complexType>",
            next = n + 1
        ));
    }
    types.push_str(&format!(
        "<xs:complexType name=\"T{depth}\"><xs:sequence>\
         <xs:element name=\"leaf\" type=\"xs:string\"/></xs:sequence></xs:complexType>"
    ));
    format!(
        "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:c=\"urn:chain\" \
         targetNamespace=\"urn:chain\" elementFormDefault=\"qualified\">\
         <xs:element name=\"Root\" type=\"c:T0\"/>{types}</xs:schema>"
    )
}

/// Every `$ref` in `v` names a definition of `defs`.
fn refs_resolve(v: &Value, defs: &serde_json::Map<String, Value>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let name = r.strip_prefix("#/$defs/").expect("a local ref");
                assert!(defs.contains_key(name), "{r} has no definition");
            }
            map.values().for_each(|v| refs_resolve(v, defs));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_resolve(v, defs)),
        _ => {}
    }
}

#[test]
fn a_type_used_twice_at_every_level_is_defined_once() {
    const DEPTH: usize = 16;
    let set = load(&[&chain(DEPTH)]);
    let schema = json_schema::for_element(&set, &QName::new("urn:chain", "Root"));
    let text = serde_json::to_string(&schema).expect("json");
    // Inlined, 2^16 copies of the leaf type: megabytes. Shared, one
    // definition per type.
    assert!(
        text.len() < 200 * (DEPTH + 1),
        "{} bytes for {} types",
        text.len(),
        DEPTH + 1
    );
    let defs = schema["$defs"].as_object().expect("$defs");
    assert_eq!(defs.len(), DEPTH, "T1..T{DEPTH}: {:?}", defs.keys());
    assert_eq!(schema["properties"]["left"]["$ref"], "#/$defs/T1");
    assert_eq!(defs["T1"]["properties"]["right"]["$ref"], "#/$defs/T2");
    refs_resolve(&schema, defs);
}

#[test]
fn recursive_types_of_one_name_in_two_namespaces_get_two_definitions() {
    let node = |ns: &str, p: &str| {
        format!(
            "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:{p}=\"{ns}\" \
             targetNamespace=\"{ns}\" elementFormDefault=\"qualified\">\
             <xs:complexType name=\"Node\"><xs:sequence>\
             <xs:element name=\"{p}label\" type=\"xs:string\"/>\
             <xs:element name=\"next\" type=\"{p}:Node\" minOccurs=\"0\"/>\
             </xs:sequence></xs:complexType></xs:schema>"
        )
    };
    let root = "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
         xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" targetNamespace=\"urn:r\" \
         elementFormDefault=\"qualified\">\
         <xs:import namespace=\"urn:a\"/><xs:import namespace=\"urn:b\"/>\
         <xs:element name=\"Root\"><xs:complexType><xs:sequence>\
         <xs:element name=\"first\" type=\"a:Node\"/>\
         <xs:element name=\"again\" type=\"a:Node\"/>\
         <xs:element name=\"other\" type=\"b:Node\"/>\
         <xs:element name=\"more\" type=\"b:Node\"/>\
         </xs:sequence></xs:complexType></xs:element></xs:schema>";
    let set = load(&[&node("urn:a", "a"), &node("urn:b", "b"), root]);
    let schema = json_schema::for_element(&set, &QName::new("urn:r", "Root"));
    let defs = schema["$defs"].as_object().expect("$defs");
    assert_eq!(defs.len(), 2, "{:?}", defs.keys());
    let first = schema["properties"]["first"]["$ref"].as_str().expect("ref");
    let other = schema["properties"]["other"]["$ref"].as_str().expect("ref");
    assert_ne!(first, other, "two namespaces, two definitions");
    assert_eq!(schema["properties"]["again"]["$ref"], first);
    // Each definition refers to itself, and holds its own namespace's label.
    let a = &defs[first.trim_start_matches("#/$defs/")];
    let b = &defs[other.trim_start_matches("#/$defs/")];
    assert_eq!(a["properties"]["next"]["$ref"], first);
    assert_eq!(b["properties"]["next"]["$ref"], other);
    assert!(a["properties"].get("alabel").is_some(), "{a}");
    assert!(b["properties"].get("blabel").is_some(), "{b}");
    refs_resolve(&schema, defs);
}

/// A contract `Huge` whose operation `Ask` answers an `Answer` element
/// with `content` (a sequence's particles) and `types` beside it, in
/// namespace `urn:huge:types` (prefix `t`).
fn contract_answering(
    content: &str,
    types: &str,
) -> (tempfile::TempDir, soapgate::contract::ContractSet) {
    let wsdl = format!(
        r#"<?xml version="1.0"?>
<definitions name="Huge" targetNamespace="urn:huge" xmlns="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:tns="urn:huge"
    xmlns:t="urn:huge:types" xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <types>
    <xs:schema targetNamespace="urn:huge:types" elementFormDefault="qualified">
      <xs:element name="Ask"><xs:complexType><xs:sequence>
        <xs:element name="text" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
      <xs:element name="Answer"><xs:complexType><xs:sequence>{content}</xs:sequence></xs:complexType></xs:element>
      {types}
    </xs:schema>
  </types>
  <message name="AskIn"><part name="body" element="t:Ask"/></message>
  <message name="AskOut"><part name="body" element="t:Answer"/></message>
  <portType name="HugePort"><operation name="Ask"><input message="tns:AskIn"/><output message="tns:AskOut"/></operation></portType>
  <binding name="HugeBinding" type="tns:HugePort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Ask"><soap:operation soapAction="urn:huge/Ask"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation>
  </binding>
  <service name="Huge"><port name="HugePort" binding="tns:HugeBinding">
    <soap:address location="http://localhost/soap/Huge"/></port></service>
</definitions>"#
    );
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("huge.wsdl"), wsdl).expect("wsdl");
    let contracts = soapgate::files::load_contracts(dir.path())
        .unwrap_or_else(|e| panic!("the contract loads: {e:?}"));
    (dir, contracts)
}

const STRUCTURED: &str = "service: Huge
operations:
  Ask:
    model: { targets: [ { model: m } ] }
    prompt: x
    output: { structured: true }
";

/// An optional extension point whose content is a required wildcard (UBL's
/// `UBLExtensions`) is left out of structured output instead of refusing
/// the whole response; the same element required makes the mapping a load
/// error naming where it sits, its type, and the construct.
#[test]
fn an_optional_element_no_answer_can_build_is_left_out() {
    let types = "<xs:complexType name=\"Extensions\"><xs:sequence>\
        <xs:element name=\"Extension\" maxOccurs=\"unbounded\"><xs:complexType><xs:sequence>\
        <xs:element name=\"Content\" type=\"t:Content\"/></xs:sequence></xs:complexType></xs:element>\
        </xs:sequence></xs:complexType>\
        <xs:complexType name=\"Content\"><xs:sequence>\
        <xs:any namespace=\"##other\" processContents=\"skip\"/></xs:sequence></xs:complexType>";
    let optional = contract_answering(
        "<xs:element name=\"Extensions\" type=\"t:Extensions\" minOccurs=\"0\"/>\
         <xs:element name=\"ID\" type=\"xs:string\"/>",
        types,
    );
    let mappings = soapgate::mapping::MappingSet::load(
        &[(std::path::PathBuf::from("m.yaml"), STRUCTURED.to_string())],
        &optional.1,
    )
    .unwrap_or_else(|e| panic!("an optional extension point must not block the response: {e:?}"));
    assert!(mappings.plan("Huge", "Ask").is_some());
    let (contract, _) = optional.1.service("Huge").expect("service");
    let schema =
        json_schema::for_element(&contract.schemas, &QName::new("urn:huge:types", "Answer"));
    assert!(schema["properties"].get("Extensions").is_none(), "{schema}");
    assert_eq!(schema["required"], serde_json::json!(["ID"]), "{schema}");

    let required = contract_answering(
        "<xs:element name=\"Extensions\" type=\"t:Extensions\"/>\
         <xs:element name=\"ID\" type=\"xs:string\"/>",
        types,
    );
    let errors = soapgate::mapping::MappingSet::load(
        &[(std::path::PathBuf::from("m.yaml"), STRUCTURED.to_string())],
        &required.1,
    )
    .expect_err("a required element no answer can build");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "m.yaml:6:13: the response of Ask cannot be structured output: it has a wildcard \
          (xsd:any) that must occur at Answer/Extensions/Extension/Content (type Content); \
          use text output"
        ]
    );
}

/// A response no tool schema can carry is refused when the mapping loads,
/// at the mapping's `output`, naming the response and the size.
#[test]
fn a_tool_schema_too_large_for_any_model_is_a_load_error() {
    // 3,000 distinct types of 12 fields under one response element: each
    // type used once, so nothing to share, some 1.3 MB of schema.
    let mut types = String::new();
    let mut fields = String::new();
    for t in 0..3000 {
        fields.push_str(&format!(
            "<xs:element name=\"part{t}\" type=\"t:Part{t}\"/>"
        ));
        types.push_str(&format!("<xs:complexType name=\"Part{t}\"><xs:sequence>"));
        for f in 0..12 {
            types.push_str(&format!(
                "<xs:element name=\"field{f}\" type=\"xs:string\"/>"
            ));
        }
        types.push_str("</xs:sequence></xs:complexType>");
    }
    let contracts = contract_answering(&fields, &types);
    let yaml = "service: Huge
operations:
  Ask:
    model: { targets: [ { model: m } ] }
    prompt: x
    output: { structured: true }
";
    let errors = soapgate::mapping::MappingSet::load(
        &[(std::path::PathBuf::from("m.yaml"), yaml.to_string())],
        &contracts.1,
    )
    .expect_err("too large a tool schema");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(
        text[0].starts_with("m.yaml:6:13: the tool schema of the Answer response would take"),
        "{text:?}"
    );
    assert!(text[0].contains("more than the 1024 KiB"), "{text:?}");
}

/// A fixed value comes back in the schema's own lexical form: the tool
/// schema says `const: 1.0`, JSON reads that as the number 1, and a client
/// that compares fixed values as text wants `1.0` again.
#[test]
fn fixed_values_are_written_in_their_lexical_form() {
    let set = load(
        &["<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
         targetNamespace=\"urn:fixed\" elementFormDefault=\"qualified\">\
         <xs:element name=\"Doc\"><xs:complexType><xs:sequence>\
         <xs:element name=\"version\" type=\"xs:decimal\" fixed=\"1.0\"/>\
         <xs:element name=\"count\" type=\"xs:int\"/>\
         </xs:sequence>\
         <xs:attribute name=\"schemaVersion\" type=\"xs:decimal\" fixed=\"2.10\"/>\
         </xs:complexType></xs:element></xs:schema>"],
    );
    let name = QName::new("urn:fixed", "Doc");
    let schema = json_schema::for_element(&set, &name);
    let answer = serde_json::json!({
        "version": schema["properties"]["version"]["const"].clone(),
        "count": 3,
        "@schemaVersion": schema["properties"]["@schemaVersion"]["const"].clone(),
    });
    let el = soapgate::mapping::json_to_xml(&set, &name, &answer).expect("converts");
    let xml = String::from_utf8(xml::write_document(&el, xml::Charset::Utf8)).expect("utf-8");
    assert!(xml.contains(">1.0</"), "{xml}");
    assert!(xml.contains("schemaVersion=\"2.10\""), "{xml}");
    assert!(set.validate_element(&el, &name).is_empty());
    // A value that is not the fixed one is written as given, for the
    // schema check to refuse.
    let wrong = serde_json::json!({ "version": 2, "count": 3 });
    let el = soapgate::mapping::json_to_xml(&set, &name, &wrong).expect("converts");
    assert!(!set.validate_element(&el, &name).is_empty());
}

/// A nillable element whose type requires an attribute is never offered as
/// JSON null (nil keeps the attributes, and null has none), and a null
/// given anyway is refused with the reason, for the repair round.
#[test]
fn a_nillable_element_with_a_required_attribute_is_not_null() {
    let set = load(
        &["<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
         targetNamespace=\"urn:nil\" elementFormDefault=\"qualified\">\
         <xs:element name=\"Doc\"><xs:complexType><xs:sequence>\
         <xs:element name=\"amount\" nillable=\"true\"><xs:complexType><xs:simpleContent>\
         <xs:extension base=\"xs:decimal\"><xs:attribute name=\"currency\" type=\"xs:string\" use=\"required\"/>\
         </xs:extension></xs:simpleContent></xs:complexType></xs:element>\
         <xs:element name=\"note\" type=\"xs:string\" nillable=\"true\"/>\
         </xs:sequence></xs:complexType></xs:element></xs:schema>"],
    );
    let name = QName::new("urn:nil", "Doc");
    let schema = json_schema::for_element(&set, &name);
    let allows_null = |v: &Value| {
        v["type"]
            .as_array()
            .is_some_and(|t| t.contains(&Value::from("null")))
            || v["anyOf"]
                .as_array()
                .is_some_and(|b| b.iter().any(|b| b["type"] == "null"))
    };
    assert!(!allows_null(&schema["properties"]["amount"]), "{schema}");
    assert!(allows_null(&schema["properties"]["note"]), "{schema}");
    let answer = serde_json::json!({ "amount": null, "note": null });
    let errors = soapgate::mapping::json_to_xml(&set, &name, &answer).expect_err("refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "/amount");
    assert!(errors[0].rule.contains("required attributes"), "{errors:?}");
}

/// Abstract types and abstract substitution heads cannot be answered as
/// such: an optional abstract element is left out, and a required element
/// of an abstract type is a load error that says where and why (rather than
/// a schema whose every answer fails validation).
#[test]
fn abstract_types_and_heads_in_a_response_are_left_out_or_refused_where_they_are() {
    let types = "<xs:complexType name=\"Party\" abstract=\"true\"><xs:sequence>\
        <xs:element name=\"Name\" type=\"xs:string\"/></xs:sequence></xs:complexType>\
        <xs:complexType name=\"Person\"><xs:complexContent><xs:extension base=\"t:Party\">\
        <xs:sequence><xs:element name=\"Born\" type=\"xs:date\"/></xs:sequence>\
        </xs:extension></xs:complexContent></xs:complexType>\
        <xs:element name=\"Note\" type=\"xs:string\" abstract=\"true\"/>\
        <xs:element name=\"Remark\" type=\"xs:string\" substitutionGroup=\"t:Note\"/>";
    let optional = contract_answering(
        "<xs:element ref=\"t:Note\" minOccurs=\"0\"/><xs:element name=\"ID\" type=\"xs:string\"/>",
        types,
    );
    soapgate::mapping::MappingSet::load(
        &[(std::path::PathBuf::from("m.yaml"), STRUCTURED.to_string())],
        &optional.1,
    )
    .unwrap_or_else(|e| panic!("an optional abstract head is left out: {e:?}"));
    let required = contract_answering(
        "<xs:element name=\"Buyer\" type=\"t:Party\"/><xs:element name=\"ID\" type=\"xs:string\"/>",
        types,
    );
    let errors = soapgate::mapping::MappingSet::load(
        &[(std::path::PathBuf::from("m.yaml"), STRUCTURED.to_string())],
        &required.1,
    )
    .expect_err("a required element of an abstract type");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "m.yaml:6:13: the response of Ask cannot be structured output: it has an abstract \
          type (abstract=\"true\"; its derived types are not offered) at Answer/Buyer (type \
          Party); use text output"
        ]
    );
}

/// A schema `urn:facets` whose global element `Doc` holds `content` (a
/// sequence's particles), with `types` beside it; its JSON Schema.
fn doc_schema(content: &str, types: &str) -> (SchemaSet, QName, Value) {
    let set = load(&[&doc_schema_text(content, types)]);
    let name = QName::new("urn:facets", "Doc");
    let schema = json_schema::for_element(&set, &name);
    (set, name, schema)
}

/// The text of [`doc_schema`]'s schema.
fn doc_schema_text(content: &str, types: &str) -> String {
    format!(
        "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:t=\"urn:facets\" \
         targetNamespace=\"urn:facets\" elementFormDefault=\"qualified\">\
         <xs:element name=\"Doc\"><xs:complexType><xs:sequence>{content}</xs:sequence>\
         </xs:complexType></xs:element>{types}</xs:schema>"
    )
}

/// Whether `value` is valid for the JSON Schema `schema`.
fn json_accepts(schema: &Value, value: &Value) -> bool {
    jsonschema::validator_for(schema)
        .unwrap_or_else(|e| panic!("{schema} compiles: {e}"))
        .is_valid(value)
}

/// Whether the JSON answer `value` converts to a `Doc` the XSD accepts.
fn xml_accepts(set: &SchemaSet, name: &QName, value: &Value) -> bool {
    soapgate::mapping::json_to_xml(set, name, value)
        .is_ok_and(|el| set.validate_element(&el, name).is_empty())
}

/// The emulator's answers for the schema (what `serve --emulator` gives a
/// forced tool) are valid for it and convert to XML the XSD accepts.
fn emulated_answers_validate(set: &SchemaSet, name: &QName, schema: &Value) {
    for seed in 0..24 {
        let value = soapgate::emulator::schema::sample(schema, seed);
        assert!(json_accepts(schema, &value), "{value} breaks {schema}");
        let el = soapgate::mapping::json_to_xml(set, name, &value)
            .unwrap_or_else(|e| panic!("{value} does not convert: {e:?}"));
        let violations = set.validate_element(&el, name);
        assert!(
            violations.is_empty(),
            "{value} -> {} breaks {violations:?}",
            xml::write_element(&el)
        );
    }
}

/// Length facets of binary types count octets: a hex digit pair is one, a
/// base64 quadruple three (less one per `=` of padding). The tool schema
/// says so in characters, exactly, so an answer of the wrong size is
/// refused before it costs a repair round.
#[test]
fn binary_lengths_are_expressed_in_characters() {
    let (set, name, schema) = doc_schema(
        "<xs:element name=\"hash\"><xs:simpleType><xs:restriction base=\"xs:hexBinary\">\
         <xs:length value=\"4\"/></xs:restriction></xs:simpleType></xs:element>\
         <xs:element name=\"blob\"><xs:simpleType><xs:restriction base=\"xs:base64Binary\">\
         <xs:minLength value=\"2\"/><xs:maxLength value=\"4\"/></xs:restriction></xs:simpleType></xs:element>\
         <xs:element name=\"key\"><xs:simpleType><xs:restriction base=\"xs:base64Binary\">\
         <xs:length value=\"5\"/></xs:restriction></xs:simpleType></xs:element>\
         <xs:element name=\"any\" type=\"xs:base64Binary\"/>",
        "",
    );
    let p = &schema["properties"];
    assert_eq!(p["hash"]["minLength"], 8, "{schema}");
    assert_eq!(p["hash"]["maxLength"], 8, "{schema}");
    assert_eq!(p["key"]["minLength"], 8, "{schema}");
    assert_eq!(p["key"]["maxLength"], 8, "{schema}");
    let doc = |hash: &str, blob: &str, key: &str, any: &str| serde_json::json!({ "hash": hash, "blob": blob, "key": key, "any": any });
    // Sizes right: 4, 2 and 5 octets; 4 and 1 octets for blob and any.
    for ok in [
        doc("0a0b0c0d", "QUI=", "QUJDREU=", "QUJDRA=="),
        doc("0A0B0C0D", "QUJDRA==", "QUJDREU=", "QQ=="),
        doc("00000000", "QUJD", "AAAAAAA=", ""),
    ] {
        assert!(json_accepts(&schema, &ok), "{ok} refused by {schema}");
        assert!(xml_accepts(&set, &name, &ok), "{ok} refused by the XSD");
    }
    // Sizes wrong (the XSD refuses each), or non-canonical padding bits.
    for bad in [
        doc("0a0b", "QUI=", "QUJDREU=", ""),
        doc("0a0b0c0d", "QQ==", "QUJDREU=", ""),
        doc("0a0b0c0d", "QUJDREVG", "QUJDREU=", ""),
        doc("0a0b0c0d", "QUI=", "QUJDREVG", ""),
        doc("0a0b0c0d", "QUI=", "QUJDRA==", ""),
        doc("0a0b0c0d", "QUI=", "QUJDREU=", "QR=="),
    ] {
        assert!(!xml_accepts(&set, &name, &bad), "{bad} accepted by the XSD");
        assert!(!json_accepts(&schema, &bad), "{bad} accepted by {schema}");
    }
    emulated_answers_validate(&set, &name, &schema);
}

/// `totalDigits` without `fractionDigits` counts the digits on both sides
/// of the point: with 5, `123.45` and `0.00012` are valid and `1.23456`
/// is not, however small. The tool schema says so for every split of the
/// five digits, not only as a bound on the size.
#[test]
fn total_digits_without_fraction_digits_count_fraction_digits_too() {
    let (set, name, schema) = doc_schema(
        "<xs:element name=\"amount\"><xs:simpleType><xs:restriction base=\"xs:decimal\">\
         <xs:totalDigits value=\"5\"/></xs:restriction></xs:simpleType></xs:element>\
         <xs:element name=\"count\"><xs:simpleType><xs:restriction base=\"xs:integer\">\
         <xs:totalDigits value=\"3\"/></xs:restriction></xs:simpleType></xs:element>",
        "",
    );
    let doc = |amount: Value| serde_json::json!({ "amount": amount, "count": 999 });
    for ok in [
        serde_json::json!(123.45),
        serde_json::json!(-12345),
        serde_json::json!(0.00012),
        serde_json::json!(-0.1),
        serde_json::json!(9.9999),
        serde_json::json!(0),
    ] {
        let ok = doc(ok);
        assert!(json_accepts(&schema, &ok), "{ok} refused by {schema}");
        assert!(xml_accepts(&set, &name, &ok), "{ok} refused by the XSD");
    }
    for bad in [
        serde_json::json!(1.23456),
        serde_json::json!(123456),
        serde_json::json!(-9999.99),
    ] {
        let bad = doc(bad);
        assert!(!xml_accepts(&set, &name, &bad), "{bad} accepted by the XSD");
        assert!(!json_accepts(&schema, &bad), "{bad} accepted by {schema}");
    }
    // More fraction digits than totalDigits: the XSD check counts only the
    // significant ones below 1 (`0.000001` has one); the schema is stricter.
    assert!(!json_accepts(&schema, &doc(serde_json::json!(0.000001))));
    let over = serde_json::json!({ "amount": 1, "count": 1000 });
    assert!(!json_accepts(&schema, &over), "{schema}");
    emulated_answers_validate(&set, &name, &schema);
}

/// An enumeration of a list type enumerates whole lists: `1 2 3` is one
/// value, and `[1, 2]` is not one of them. The tool schema lists the
/// arrays, each item typed as the list's item type.
#[test]
fn list_enumerations_are_enumerations_of_arrays() {
    let (set, name, schema) = doc_schema(
        "<xs:element name=\"sizes\" type=\"t:Sizes\"/>\
         <xs:element name=\"colours\" type=\"t:Colours\"/>",
        "<xs:simpleType name=\"IntList\"><xs:list itemType=\"xs:int\"/></xs:simpleType>\
         <xs:simpleType name=\"Sizes\"><xs:restriction base=\"t:IntList\">\
         <xs:enumeration value=\"1 2 3\"/><xs:enumeration value=\" 4 \"/></xs:restriction></xs:simpleType>\
         <xs:simpleType name=\"Colours\"><xs:restriction>\
         <xs:simpleType><xs:list itemType=\"xs:token\"/></xs:simpleType>\
         <xs:enumeration value=\"red  green\"/><xs:enumeration value=\"blue\"/></xs:restriction></xs:simpleType>",
    );
    let p = &schema["properties"];
    assert_eq!(
        p["sizes"]["enum"],
        serde_json::json!([[1, 2, 3], [4]]),
        "{schema}"
    );
    assert_eq!(
        p["colours"]["enum"],
        serde_json::json!([["red", "green"], ["blue"]]),
        "{schema}"
    );
    let ok = serde_json::json!({ "sizes": [4], "colours": ["red", "green"] });
    assert!(json_accepts(&schema, &ok), "{ok} refused by {schema}");
    assert!(xml_accepts(&set, &name, &ok), "{ok} refused by the XSD");
    for bad in [
        serde_json::json!({ "sizes": [1, 2], "colours": ["blue"] }),
        serde_json::json!({ "sizes": [4], "colours": ["green", "red"] }),
    ] {
        assert!(!xml_accepts(&set, &name, &bad), "{bad} accepted by the XSD");
        assert!(!json_accepts(&schema, &bad), "{bad} accepted by {schema}");
    }
    emulated_answers_validate(&set, &name, &schema);
}

/// `format: date-time` (RFC 3339) takes a lower-case `t` and `z`, a leap
/// second and a 30th of February; xs:dateTime and xs:time take none of
/// them. The tool schema adds a pattern of XSD's lexical form.
#[test]
fn date_times_and_times_keep_to_the_xsd_lexical_form() {
    let (set, name, schema) = doc_schema(
        "<xs:element name=\"at\" type=\"xs:dateTime\"/>\
         <xs:element name=\"clock\" type=\"xs:time\"/>",
        "",
    );
    let doc = |at: &str, clock: &str| serde_json::json!({ "at": at, "clock": clock });
    for ok in [
        doc("2024-01-02T10:00:00Z", "10:00:00Z"),
        doc("2024-02-29T23:59:59.125+14:00", "23:59:59.5-13:59"),
        doc("2000-02-29T00:00:00", "24:00:00"),
        doc("-0044-03-15T12:00:00+01:00", "00:00:00.000"),
        doc("12024-12-31T24:00:00.0Z", "12:30:00+05:30"),
        doc("0400-02-29T01:02:03Z", "01:02:03Z"),
    ] {
        assert!(xml_accepts(&set, &name, &ok), "{ok} refused by the XSD");
        assert!(json_accepts(&schema, &ok), "{ok} refused by {schema}");
    }
    for bad in [
        doc("2024-01-02t10:00:00z", "10:00:00Z"),
        doc("2024-01-02T10:00:00z", "10:00:00Z"),
        doc("2024-01-02T10:00:00Z", "10:00:00z"),
        doc("2024-01-02T10:00:60Z", "10:00:00Z"),
        doc("2023-02-29T10:00:00Z", "10:00:00Z"),
        doc("1900-02-29T10:00:00Z", "10:00:00Z"),
        doc("2024-04-31T10:00:00Z", "10:00:00Z"),
        doc("0000-01-01T10:00:00Z", "10:00:00Z"),
        doc("2024-01-02 10:00:00Z", "10:00:00Z"),
        doc("2024-01-02T10:00:00Z", "24:00:01"),
        doc("2024-01-02T10:00:00+14:30", "10:00:00Z"),
    ] {
        assert!(!xml_accepts(&set, &name, &bad), "{bad} accepted by the XSD");
        assert!(!json_accepts(&schema, &bad), "{bad} accepted by {schema}");
    }
    emulated_answers_validate(&set, &name, &schema);
    // The emulator still answers in the everyday form the format names.
    let value = soapgate::emulator::schema::sample(&schema, 1);
    assert!(
        value["at"]
            .as_str()
            .is_some_and(|at| at.starts_with("2024-")),
        "{value}"
    );
}

/// XSD regex syntax that ECMA 262 lacks or reads otherwise is translated,
/// not passed through nor dropped: `\i`/`\c` (XML name characters), `\w`
/// (no punctuation: `_` is not a word character in XSD), `\s` (four
/// characters, not Unicode's spaces), `\d` (any script's digits), class
/// subtraction, and `^`/`$` as plain characters.
#[test]
fn xsd_only_pattern_syntax_is_translated() {
    let restricted = |name: &str, pattern: &str| {
        format!(
            "<xs:element name=\"{name}\"><xs:simpleType><xs:restriction base=\"xs:string\">\
             <xs:pattern value=\"{pattern}\"/></xs:restriction></xs:simpleType></xs:element>"
        )
    };
    let content = [
        restricted("name", "\\i\\c*"),
        restricted("word", "\\w+"),
        restricted("spaced", "a\\sb"),
        restricted("digits", "\\d{3}"),
        restricted("consonants", "[a-z-[aeiou]]+"),
        restricted("dollars", "a^b$"),
        restricted("visible", "[\\S-[x]]+"),
        restricted("latin", "\\p{IsBasicLatin}+"),
    ]
    .concat();
    let (set, name, schema) = doc_schema(&content, "");
    let p = &schema["properties"];
    for key in [
        "name",
        "word",
        "spaced",
        "digits",
        "consonants",
        "dollars",
        "visible",
    ] {
        assert!(p[key]["pattern"].is_string(), "{key}: {schema}");
    }
    let doc = |name: &str, word: &str, spaced: &str, digits: &str, consonants: &str| {
        serde_json::json!({
            "name": name, "word": word, "spaced": spaced, "digits": digits,
            "consonants": consonants, "dollars": "a^b$", "visible": "a-b", "latin": "x",
        })
    };
    for ok in [
        doc("_x.1-é", "Straße²", "a b", "123", "bcd"),
        doc("名前", "x", "a\tb", "١٢٣", "xyz"),
    ] {
        assert!(xml_accepts(&set, &name, &ok), "{ok} refused by the XSD");
        assert!(json_accepts(&schema, &ok), "{ok} refused by {schema}");
    }
    let good = doc("x", "x", "a b", "123", "bcd");
    let with = |key: &str, v: &str| {
        let mut d = good.clone();
        d[key] = Value::from(v);
        d
    };
    for bad in [
        with("name", "1abc"),
        with("name", "a b"),
        with("word", "a_b"),
        with("word", "a-b"),
        with("spaced", "a\u{a0}b"),
        with("spaced", "a\u{c}b"),
        with("consonants", "bad"),
        with("dollars", "ab"),
        with("visible", "axb"),
        with("visible", "a b"),
    ] {
        assert!(!xml_accepts(&set, &name, &bad), "{bad} accepted by the XSD");
        assert!(!json_accepts(&schema, &bad), "{bad} accepted by {schema}");
    }
    emulated_answers_validate(&set, &name, &schema);

    // Schema and XSD agree on every sample, pattern by pattern.
    let patterns = [
        "\\i\\c*",
        "[\\i-[:]][\\c-[:]]*",
        "\\w+\\s\\W",
        "[\\d\\s]+",
        "[^\\d-[5]]*",
        "\\I\\C*",
        "\\D\\S.",
        "[a-z-[b-y-[x]]]+",
        "[\\p{L}-[\\p{Lu}]]+",
    ];
    let samples = [
        "abc",
        "a:b",
        "_1",
        "1a",
        "a b!",
        "a_b c.",
        "٣ 5",
        "12 3",
        "5",
        "9x",
        "x y",
        "az",
        "ax",
        "ab",
        "éè",
        "Éa",
        "a\u{a0}b",
        "a\tb\u{2028}",
        "x\u{1F600}z",
        "-",
        ":",
    ];
    for pattern in patterns {
        let (set, name, schema) = doc_schema(&restricted("v", pattern), "");
        assert!(
            schema["properties"]["v"]["pattern"].is_string(),
            "{pattern}: {schema}"
        );
        for sample in samples {
            let v = serde_json::json!({ "v": sample });
            assert_eq!(
                json_accepts(&schema, &v),
                xml_accepts(&set, &name, &v),
                "{pattern} on {sample:?}: {schema}"
            );
        }
    }
}

/// The emulator's answers (what `serve --emulator` gives a forced tool)
/// cover what the tool schema expresses, across seeds: durations, patterns
/// combined across derivation steps and translated from XSD syntax (`\W`
/// too, whose characters must be ones XML can carry), a dateTime narrowed
/// by a pattern, list enumerations, binary lengths, totalDigits'
/// branches, unions' members, nil, and every branch of every
/// choice (`oneOf`), the empty one of an optional choice included. Each
/// answer is valid for the schema and becomes XML that soapgate accepts,
/// and so do xmlschema and xmllint.
#[test]
fn emulated_answers_cover_every_form_the_tool_schema_expresses() {
    let test = "emulated_answers_cover_every_form_the_tool_schema_expresses";
    let restricted = |name: &str, base: &str, facets: &str| {
        format!(
            "<xs:element name=\"{name}\"><xs:simpleType><xs:restriction base=\"{base}\">\
             {facets}</xs:restriction></xs:simpleType></xs:element>"
        )
    };
    let content = [
        "<xs:element name=\"wait\" type=\"xs:duration\"/>".to_string(),
        restricted("term", "xs:duration", "<xs:pattern value=\"P\\d{1,3}D\"/>"),
        "<xs:element name=\"code\" type=\"t:ShortCode\"/>".to_string(),
        restricted(
            "name",
            "xs:string",
            "<xs:pattern value=\"\\i\\c*\"/><xs:maxLength value=\"12\"/>",
        ),
        restricted("punct", "xs:string", "<xs:pattern value=\"\\W{2,4}\"/>"),
        restricted(
            "word",
            "xs:string",
            "<xs:pattern value=\"[\\w-[_\\d]]{3,8}\"/>",
        ),
        restricted(
            "stamp",
            "xs:dateTime",
            "<xs:pattern value=\"\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\"/>",
        ),
        "<xs:element name=\"at\" type=\"xs:dateTime\"/>".to_string(),
        "<xs:element name=\"clock\" type=\"xs:time\"/>".to_string(),
        "<xs:element name=\"sizes\" type=\"t:Sizes\"/>".to_string(),
        restricted("hash", "xs:hexBinary", "<xs:length value=\"4\"/>"),
        restricted(
            "blob",
            "xs:base64Binary",
            "<xs:minLength value=\"1\"/><xs:maxLength value=\"5\"/>",
        ),
        restricted("amount", "xs:decimal", "<xs:totalDigits value=\"5\"/>"),
        "<xs:element name=\"either\" type=\"t:IntOrDate\"/>".to_string(),
        "<xs:element name=\"note\" type=\"xs:string\" nillable=\"true\"/>".to_string(),
        "<xs:choice><xs:element name=\"byPost\" type=\"t:Address\"/>\
         <xs:element name=\"byMail\" type=\"xs:string\"/>\
         <xs:sequence><xs:element name=\"pickupAt\" type=\"xs:date\"/>\
         <xs:element name=\"pickupBy\" type=\"xs:string\" minOccurs=\"0\"/></xs:sequence>\
         </xs:choice>"
            .to_string(),
        "<xs:choice minOccurs=\"0\"><xs:element name=\"urgent\" type=\"xs:boolean\"/>\
         <xs:element name=\"deferred\" type=\"xs:date\"/></xs:choice>"
            .to_string(),
    ]
    .concat();
    let types = "<xs:simpleType name=\"Code\"><xs:restriction base=\"xs:token\">\
         <xs:pattern value=\"[A-Z]{2}\\d+\"/></xs:restriction></xs:simpleType>\
         <xs:simpleType name=\"ShortCode\"><xs:restriction base=\"t:Code\">\
         <xs:pattern value=\".{3,4}\"/></xs:restriction></xs:simpleType>\
         <xs:simpleType name=\"IntList\"><xs:list itemType=\"xs:int\"/></xs:simpleType>\
         <xs:simpleType name=\"Sizes\"><xs:restriction base=\"t:IntList\">\
         <xs:enumeration value=\"1 2 3\"/><xs:enumeration value=\"4\"/></xs:restriction></xs:simpleType>\
         <xs:simpleType name=\"IntOrDate\"><xs:union memberTypes=\"xs:int xs:date\"/></xs:simpleType>\
         <xs:complexType name=\"Address\"><xs:sequence><xs:element name=\"street\" type=\"xs:string\"/>\
         <xs:element name=\"zip\" type=\"t:Code\"/></xs:sequence></xs:complexType>";
    let (set, name, schema) = doc_schema(&content, types);
    let mut seen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut texts = Vec::new();
    for seed in 0..64 {
        let value = soapgate::emulator::schema::sample(&schema, seed);
        assert!(
            json_accepts(&schema, &value),
            "seed {seed}: {value} breaks {schema}"
        );
        let el = soapgate::mapping::json_to_xml(&set, &name, &value)
            .unwrap_or_else(|e| panic!("seed {seed}: {value} does not convert: {e:?}"));
        let violations = set.validate_element(&el, &name);
        let text = xml::write_element(&el);
        assert!(
            violations.is_empty(),
            "seed {seed}: {text} breaks {violations:?}"
        );
        for branch in ["byPost", "byMail", "pickupAt", "urgent", "deferred"] {
            if value.get(branch).is_some() {
                seen.insert(branch.to_string());
            }
        }
        if value.get("urgent").is_none() && value.get("deferred").is_none() {
            seen.insert("neither".into());
        }
        match &value["either"] {
            Value::Number(_) => seen.insert("either: int".into()),
            Value::String(_) => seen.insert("either: date".into()),
            other => panic!("either: {other}"),
        };
        seen.insert(match &value["note"] {
            Value::Null => "note: nil".into(),
            _ => "note: text".into(),
        });
        let blob = value["blob"].as_str().unwrap_or_default();
        seen.insert(format!("blob: {} padding", blob.matches('=').count()));
        let amount = value["amount"].to_string();
        let fraction = amount.split_once('.').map_or(0, |(_, f)| f.len());
        seen.insert(format!("amount: {fraction} fraction digits"));
        texts.push(text);
    }
    for want in [
        "byPost",
        "byMail",
        "pickupAt",
        "urgent",
        "deferred",
        "neither",
        "either: int",
        "either: date",
        "note: nil",
        "note: text",
        "blob: 0 padding",
        "blob: 1 padding",
        "blob: 2 padding",
    ] {
        assert!(seen.contains(want), "no answer has {want}: {seen:?}");
    }
    let fractions = seen.iter().filter(|s| s.starts_with("amount:")).count();
    assert!(fractions >= 3, "{seen:?}");

    // The references read the XML as soapgate does.
    let Some(use_xmllint) = crate::differential::reference_peers(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let xsd = dir.path().join("facets.xsd");
    std::fs::write(&xsd, doc_schema_text(&content, types)).expect("schema file");
    let source = crate::differential::Source::Xsd(vec![xsd]);
    let sets = [crate::differential::RefSet {
        name: "facets",
        source: &source,
        typed: Vec::new(),
    }];
    let instances: Vec<(usize, &str)> = texts.iter().map(|t| (0, t.as_str())).collect();
    let out = crate::differential::references(&sets, &instances, use_xmllint);
    assert_eq!(out.sets, [None]);
    for (text, (xs, lint, xs_why, lint_why)) in texts.iter().zip(&out.verdicts) {
        assert_eq!(*xs, Some(true), "xmlschema: {xs_why}\n{text}");
        if use_xmllint {
            assert_eq!(*lint, Some(true), "xmllint: {lint_why}\n{text}");
        }
    }
}
