//! An operation's `variants`, `sticky_by` and `shadow`. A variant is the
//! operation's spec with the variant's own `model`, `system`, `prompt`,
//! `output` and `repair_attempts` put in place of the operation's, compiled
//! by [`Cx::operation`] like any operation: every check applies, and a
//! mistake in a variant's field is reported at that field. A variant has
//! no `batch:` (the YAML reader refuses one) and its plan none: batches
//! use the operation's own settings.

use std::sync::Arc;

use serde_saphyr::Spanned;

use super::Cx;
use crate::contract::xsd::SchemaSet;
use crate::contract::{Contract, Operation};
use crate::mapping::path;
use crate::mapping::payload::PayloadShape;
use crate::mapping::spec::{OperationSpec, VariantSpec};
use crate::mapping::variants::{Variant, Variants};

/// The name that means the operation's own settings.
const PRIMARY: &str = "primary";

fn is_variant_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The operation's spec with a variant's fields in place of its own, and
/// no variants of its own.
fn merged(base: &OperationSpec, v: &VariantSpec) -> OperationSpec {
    let mut spec = base.clone();
    if let Some(model) = &v.model {
        spec.model = model.clone();
    }
    if let Some(system) = &v.system {
        spec.system = Some(system.clone());
    }
    if let Some(prompt) = &v.prompt {
        spec.prompt = Some(prompt.clone());
    }
    if let Some(output) = &v.output {
        spec.output = Some(output.clone());
    }
    if let Some(repairs) = &v.repair_attempts {
        spec.repair_attempts = Some(repairs.clone());
    }
    spec.variants = Default::default();
    spec.sticky_by = None;
    spec.shadow = None;
    // Batches use the operation's own settings; a variant has no `batch:`.
    spec.batch = None;
    spec
}

impl Cx<'_> {
    /// The operation's variants, checked (a name given twice is refused
    /// by the YAML reader): names, weights (each 0 to 100,
    /// together at most 100), each variant's plan, the sticky path (one
    /// simple value of the request) and the shadow setting.
    pub(super) fn variants(
        &mut self,
        contract: &Arc<Contract>,
        service: &str,
        op: &Operation,
        spec: &OperationSpec,
        request: &PayloadShape,
    ) -> Variants {
        let mut out = Variants::default();
        let mut total = 0i64;
        for (name, v) in &spec.variants.0 {
            let mut ok = true;
            if name.value == PRIMARY {
                self.error(
                    &name.referenced,
                    "variant name primary is reserved: it means the operation's own settings",
                );
                ok = false;
            } else if !is_variant_name(&name.value) {
                self.error(
                    &name.referenced,
                    format!(
                        "variant name {:?}: names are made of a-z, 0-9, _ and -",
                        name.value
                    ),
                );
                ok = false;
            }
            let weight = match &v.value.weight {
                None => 0,
                Some(w) if (0..=100).contains(&w.value) => {
                    total += w.value;
                    if total > 100 {
                        self.error(
                            &w.referenced,
                            format!(
                                "the weights of {}'s variants add up to {total}, past 100 \
                                 (the primary serves what they leave)",
                                op.name
                            ),
                        );
                        ok = false;
                    }
                    u32::try_from(w.value).unwrap_or(0)
                }
                Some(w) => {
                    self.error(
                        &w.referenced,
                        format!(
                            "weight {} is out of range: a variant's weight is a percent of the calls, 0 to 100",
                            w.value
                        ),
                    );
                    ok = false;
                    0
                }
            };
            let plan = self.operation(contract, service, op, &merged(spec, &v.value));
            if let (Some(plan), true) = (plan, ok) {
                out.list.push(Variant {
                    name: name.value.clone(),
                    weight,
                    plan: Arc::new(plan),
                });
            }
        }

        if let Some(sticky) = &spec.sticky_by {
            if spec.variants.0.is_empty() {
                self.error(
                    &sticky.referenced,
                    "sticky_by applies only to an operation with variants",
                );
            } else {
                out.sticky_by = self.sticky_path(&contract.schemas, request, sticky);
            }
        }

        if let Some(shadow) = &spec.shadow {
            let s = &shadow.value;
            if !(0.0..=1.0).contains(&s.sample.value) {
                self.error(
                    &s.sample.referenced,
                    format!(
                        "shadow sample {} is out of range: the share of calls, 0 to 1",
                        s.sample.value
                    ),
                );
            }
            let declared = spec
                .variants
                .0
                .iter()
                .any(|(n, _)| n.value == s.variant.value);
            match out.list.iter().position(|v| v.name == s.variant.value) {
                // A variant that failed to compile was reported already.
                None if declared => {}
                None => {
                    let known: Vec<&str> = spec
                        .variants
                        .0
                        .iter()
                        .map(|(n, _)| n.value.as_str())
                        .collect();
                    self.error(
                        &s.variant.referenced,
                        format!(
                            "shadow variant {} is not a variant of {} (known: {})",
                            s.variant.value,
                            op.name,
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
                Some(index) => out.shadow = Some((s.sample.value, index)),
            }
        }
        out
    }

    /// The `sticky_by` path: one simple value of the request.
    fn sticky_path(
        &mut self,
        set: &SchemaSet,
        request: &PayloadShape,
        sticky: &Spanned<String>,
    ) -> Option<path::Path> {
        let top = request.top_fields(set);
        let root_type = match request {
            PayloadShape::Element(f) => Some(f.type_id),
            PayloadShape::Fields { .. } => None,
        };
        let resolved = match path::resolve(set, top, root_type, &sticky.value, false) {
            Ok(p) => p,
            Err(msg) => {
                self.error(&sticky.referenced, format!("sticky_by: {msg}"));
                return None;
            }
        };
        if !resolved.ends_at_simple_value(set) {
            self.error(
                &sticky.referenced,
                format!(
                    "sticky_by {} must lead to a simple value (text or an attribute)",
                    resolved.text
                ),
            );
            return None;
        }
        Some(resolved)
    }
}
