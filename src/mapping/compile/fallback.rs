//! Static fallback responses (`on_failure: static`): the YAML value turned
//! into the response payload and validated against the contract, each
//! violation reported at the YAML value that causes it.

use serde_json::Value;
use serde_saphyr::Spanned;

use super::Cx;
use crate::contract::validate_payload;
use crate::contract::xsd::SchemaSet;
use crate::mapping::json_xml::payload_shape_from_json;
use crate::mapping::payload::PayloadShape;
use crate::mapping::spec::{YamlValue, locate};
use crate::xml::NsScope;

impl Cx<'_> {
    pub(super) fn static_response(
        &mut self,
        set: &SchemaSet,
        shape: &PayloadShape,
        expected: &crate::contract::Payload,
        v: &Spanned<YamlValue>,
    ) -> Option<Vec<crate::xml::Element>> {
        let json = v.value.to_json();
        let payload = match payload_shape_from_json(set, shape, &json) {
            Ok(p) => p,
            Err(vs) => {
                for x in vs {
                    let at = locate(v, &x.path);
                    self.error(&at, format!("static response {}: {}", x.path, x.rule));
                }
                return None;
            }
        };
        let violations = validate_payload(set, expected, &payload, &NsScope::new());
        if violations.is_empty() {
            return Some(payload);
        }
        for x in violations {
            let pointer = xml_path_to_pointer(&x.path, shape, &json);
            let at = locate(v, &pointer);
            self.error(&at, format!("static response {pointer}: {}", x.rule));
        }
        None
    }
}

/// A validator path (`/Root/a/b[2]/c`, `/Root/@x`) as a JSON pointer into
/// the payload's JSON value (`/a/b/1/c`), so a static fallback's violation
/// can be located in the YAML.
fn xml_path_to_pointer(xml_path: &str, shape: &PayloadShape, json: &Value) -> String {
    let mut segs: Vec<&str> = xml_path.split('/').filter(|s| !s.is_empty()).collect();
    // The root element (or rpc wrapper) is the JSON value itself.
    if matches!(
        shape,
        PayloadShape::Element(_)
            | PayloadShape::Fields {
                wrapper: Some(_),
                ..
            }
    ) && !segs.is_empty()
    {
        segs.remove(0);
    }
    let mut out = String::new();
    let mut at = Some(json);
    for seg in segs {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        out.push('/');
        out.push_str(name);
        at = at.and_then(|v| v.get(name));
        if let Some(Value::Array(items)) = at {
            let i = index.unwrap_or(1).saturating_sub(1);
            out.push_str(&format!("/{i}"));
            at = items.get(i);
        }
    }
    out
}
