//! Variants of an operation (`variants`, `sticky_by`, `shadow`) at load
//! and when a call chooses one: every mistake is a load error at its
//! `file:line:col`, a variant's own fields are checked like the
//! operation's, and the choice follows the weights, stably for a sticky
//! key.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use soapgate::contract::ContractSet;
use soapgate::mapping::{CallMeta, MappingError, MappingSet};
use soapgate::soap::parse_envelope;
use soapgate::xml::{self, Element, Limits};

fn contracts() -> &'static ContractSet {
    static SET: OnceLock<ContractSet> = OnceLock::new();
    SET.get_or_init(|| {
        soapgate::files::load_contracts(Path::new("wsdl"))
            .unwrap_or_else(|e| panic!("example contracts: {e:?}"))
    })
}

fn load(yaml: &str) -> Result<MappingSet, Vec<String>> {
    MappingSet::load(&[(PathBuf::from("m.yaml"), yaml.to_string())], contracts())
        .map_err(|e| e.iter().map(MappingError::to_string).collect())
}

fn load_errors(yaml: &str) -> Vec<String> {
    match load(yaml) {
        Ok(_) => panic!("expected load errors"),
        Err(e) => e,
    }
}

/// ClassifyInvoice with a primary model `m`, then `rest` under the
/// operation (four-space indent).
fn classify(rest: &str) -> String {
    format!(
        "service: InvoiceService
operations:
  ClassifyInvoice:
    model: {{ targets: [ {{ model: m }} ] }}
    input: {{ vendor: invoice/vendor/name }}
    prompt: \"Classify {{{{ vendor }}}}\"
    output: {{ structured: true }}
{rest}"
    )
}

fn request(vendor: &str) -> Vec<Element> {
    let text = std::fs::read_to_string("examples/InvoiceService/ClassifyInvoice.xml")
        .expect("sample")
        .replace("Nordlicht Rechenzentrum GmbH", vendor);
    let doc = xml::read(text.as_bytes(), None, &Limits::default()).expect("request XML");
    parse_envelope(doc.root).expect("envelope").body
}

#[test]
fn variant_names_must_be_valid_unique_and_not_primary() {
    let yaml = classify(
        "    variants:
      primary: { weight: 1 }
      Big.Name: { weight: 1 }
      ok-1: { weight: 1 }
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:9:7: variant name primary is reserved: it means the operation's own settings",
            "m.yaml:10:7: variant name \"Big.Name\": names are made of a-z, 0-9, _ and -",
        ]
    );
    let yaml = classify(
        "    variants:
      ok-1: { weight: 1 }
      ok-1: { weight: 1 }
",
    );
    let errors = load_errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("m.yaml:10:7: duplicate mapping key: ok-1"),
        "{errors:#?}"
    );
}

#[test]
fn weights_are_percents_that_add_up_to_at_most_100() {
    let yaml = classify(
        "    variants:
      a: { weight: 60 }
      b: { weight: 50 }
      c: { weight: 101 }
      d: { weight: -1 }
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:10:20: the weights of ClassifyInvoice's variants add up to 110, past 100 \
             (the primary serves what they leave)",
            "m.yaml:11:20: weight 101 is out of range: a variant's weight is a percent of the calls, 0 to 100",
            "m.yaml:12:20: weight -1 is out of range: a variant's weight is a percent of the calls, 0 to 100",
        ]
    );
}

#[test]
fn shadow_names_a_variant_and_samples_between_0_and_1() {
    let yaml = classify(
        "    variants:
      concise: { weight: 0 }
    shadow: { sample: 1.5, variant: verbose }
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:10:23: shadow sample 1.5 is out of range: the share of calls, 0 to 1",
            "m.yaml:10:37: shadow variant verbose is not a variant of ClassifyInvoice (known: concise)",
        ]
    );
}

#[test]
fn sticky_by_leads_to_one_simple_value_of_the_request() {
    let yaml = classify(
        "    variants:
      concise: { weight: 10 }
    sticky_by: invoice/vendor
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:10:16: sticky_by invoice/vendor must lead to a simple value (text or an attribute)"
        ]
    );
    let yaml = classify(
        "    variants:
      concise: { weight: 10 }
    sticky_by: invoice/vendr/name
",
    );
    let errors = load_errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("m.yaml:10:16: sticky_by: no element vendr at invoice"),
        "{errors:#?}"
    );
    // Without variants there is nothing to stick to.
    assert_eq!(
        load_errors(&classify("    sticky_by: invoice/vendor/name\n")),
        vec!["m.yaml:8:16: sticky_by applies only to an operation with variants"]
    );
}

#[test]
fn a_variants_own_fields_are_checked_where_they_are_written() {
    let yaml = classify(
        "    variants:
      concise:
        weight: 10
        model: { targets: [ { model: m2 } ], temperature: 3 }
        prompt: \"Classify {{ vendr }}\"
        repair_attempts: 9
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:11:59: temperature must be between 0 and 1",
            "m.yaml:12:17: unknown template variable vendr (known: meta, payload, payload_xml, vendor)",
            "m.yaml:13:26: repair_attempts may be at most 5",
        ]
    );
}

#[test]
fn a_variant_replaces_the_operations_fields_and_weights_share_the_calls() {
    let yaml = classify(
        "    variants:
      concise:
        weight: 10
        model: { targets: [ { model: m2 } ] }
        prompt: \"Briefly: {{ vendor }}\"
      shadowed: { weight: 0 }
    shadow: { sample: 0.5, variant: shadowed }
",
    );
    let set = load(&yaml).unwrap_or_else(|e| panic!("{e:#?}"));
    let plan = set
        .plan("InvoiceService", "ClassifyInvoice")
        .expect("mapped");
    let names: Vec<(&str, u32)> = plan
        .variants()
        .iter()
        .map(|v| (v.name(), v.weight()))
        .collect();
    assert_eq!(names, [("concise", 10), ("shadowed", 0)]);

    let payload = request("Acme");
    let meta = CallMeta {
        service: "InvoiceService",
        operation: "ClassifyInvoice",
        correlation_id: "urn:uuid:1",
    };
    let concise = &plan.variants()[0];
    let call = concise
        .plan()
        .render_request(&payload, &meta)
        .expect("renders");
    let text = serde_json::to_string(&call.request).expect("JSON");
    assert!(text.contains("Briefly: Acme"), "{text}");
    assert_eq!(call.targets[0].model, "m2");
    // The operation's own plan is unchanged.
    let own = plan.render_request(&payload, &meta).expect("renders");
    assert!(
        serde_json::to_string(&own.request)
            .expect("JSON")
            .contains("Classify Acme")
    );

    // Draws 0..1000 (10%) go to `concise`, the rest to the primary; a
    // weight-0 variant serves none.
    let served = |draw| plan.choose_variant_with(&payload, draw).map(|v| v.name());
    assert_eq!(served(0), Some("concise"));
    assert_eq!(served(999), Some("concise"));
    assert_eq!(served(1000), None);
    assert_eq!(served(9999), None);

    // The shadow runs only on sampled calls, and never shadows itself.
    assert_eq!(
        plan.shadow_for_with(None, true).map(|v| v.name()),
        Some("shadowed")
    );
    assert!(plan.shadow_for_with(None, false).is_none());
    assert!(
        plan.shadow_for_with(Some(&plan.variants()[1]), true)
            .is_none()
    );
}

#[test]
fn a_sticky_key_always_gets_the_same_variant() {
    let yaml = classify(
        "    variants:
      half: { weight: 50, prompt: \"Half {{ vendor }}\" }
    sticky_by: invoice/vendor/name
",
    );
    let set = load(&yaml).unwrap_or_else(|e| panic!("{e:#?}"));
    let plan = set
        .plan("InvoiceService", "ClassifyInvoice")
        .expect("mapped");
    let mut half = 0;
    for i in 0..200 {
        let payload = request(&format!("Vendor {i}"));
        assert_eq!(plan.sticky_key(&payload), Some(format!("Vendor {i}")));
        let first = plan.choose_variant_with(&payload, 0).map(|v| v.name());
        for draw in [1, 4_999, 5_000, 9_999] {
            assert_eq!(
                plan.choose_variant_with(&payload, draw).map(|v| v.name()),
                first,
                "Vendor {i}"
            );
        }
        half += usize::from(first.is_some());
    }
    // The hash spreads keys by weight too.
    assert!((70..=130).contains(&half), "{half} of 200 keys");
}
