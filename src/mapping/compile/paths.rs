//! Paths that must lead to one simple value (text or an attribute): the
//! `idempotency_key` in the request of an async operation, and the flat
//! result columns taken from the response; and the request paths `record:`
//! redacts, which may reach anything.

use super::Cx;
use crate::contract::Operation;
use crate::contract::xsd::SchemaSet;
use crate::mapping::path;
use crate::mapping::payload::PayloadShape;
use crate::mapping::spec::{OperationSpec, ResultsSpec};
use crate::mapping::{
    Mode, RESULT_CONTRACT_COLUMNS, RecordPlan, ResultColumn, is_result_column_name,
};

impl Cx<'_> {
    /// Flat result columns: a name the store accepts and a path to a simple
    /// value of the response, resolved against the response schema.
    pub(super) fn result_columns(
        &mut self,
        set: &SchemaSet,
        op: &Operation,
        shape: Option<&PayloadShape>,
        spec: &ResultsSpec,
    ) -> Vec<ResultColumn> {
        let mut columns = Vec::new();
        for (name, path_text) in &spec.columns.0 {
            if !is_result_column_name(&name.value) {
                self.error(
                    &name.referenced,
                    format!(
                        "result column {:?}: names are [a-z_][a-z0-9_]{{0,62}} and may not be one of {}",
                        name.value,
                        RESULT_CONTRACT_COLUMNS.join(", ")
                    ),
                );
                continue;
            }
            if columns.iter().any(|c: &ResultColumn| c.name == name.value) {
                self.error(
                    &name.referenced,
                    format!("result column {} given twice", name.value),
                );
                continue;
            }
            let Some(shape) = shape else {
                self.error(
                    &name.referenced,
                    format!(
                        "{} is one-way: it has no response to take columns from",
                        op.name
                    ),
                );
                continue;
            };
            let top = shape.top_fields(set);
            let root_type = match shape {
                PayloadShape::Element(f) => Some(f.type_id),
                PayloadShape::Fields { .. } => None,
            };
            let resolved = match path::resolve(set, top, root_type, &path_text.value, false) {
                Ok(p) => p,
                Err(m) => {
                    self.error(
                        &path_text.referenced,
                        format!("result column {}: {m} in the response", name.value),
                    );
                    continue;
                }
            };
            let simple = resolved.ends_at_simple_value(set);
            if !simple {
                self.error(
                    &path_text.referenced,
                    format!(
                        "result column {}: {} has child elements; a column holds one simple value",
                        name.value, path_text.value
                    ),
                );
                continue;
            }
            columns.push(ResultColumn {
                name: name.value.clone(),
                steps: resolved
                    .steps
                    .iter()
                    .map(|s| s.field.name.clone())
                    .collect(),
                attr: resolved.attr.as_ref().map(|a| a.name.clone()),
            });
        }
        columns
    }

    /// The `idempotency_key` path: async only, one simple value.
    pub(super) fn idempotency_key(
        &mut self,
        set: &SchemaSet,
        request: &PayloadShape,
        spec: &OperationSpec,
        mode: Mode,
    ) -> Option<path::Path> {
        let key = spec.idempotency_key.as_ref()?;
        if mode != Mode::Async {
            self.error(
                &key.referenced,
                "idempotency_key applies only to async operations (mode: async or one-way)",
            );
            return None;
        }
        let top = request.top_fields(set);
        let root_type = match request {
            PayloadShape::Element(f) => Some(f.type_id),
            PayloadShape::Fields { .. } => None,
        };
        let resolved = match path::resolve(set, top, root_type, &key.value, false) {
            Ok(p) => p,
            Err(msg) => {
                self.error(&key.referenced, msg);
                return None;
            }
        };
        let simple = resolved.ends_at_simple_value(set);
        if !simple {
            self.error(
                &key.referenced,
                format!(
                    "idempotency_key {} must lead to a simple value (text or an attribute)",
                    resolved.text
                ),
            );
            return None;
        }
        Some(resolved)
    }
}

impl Cx<'_> {
    /// `record:`: the sample share (0 to 1) and the redacted paths, each of
    /// which may reach any element (its whole subtree is redacted), an
    /// attribute, or with `[]` every occurrence.
    pub(super) fn record(
        &mut self,
        set: &SchemaSet,
        request: &PayloadShape,
        spec: &OperationSpec,
    ) -> Option<RecordPlan> {
        let record = &spec.record.as_ref()?.value;
        let sample = match &record.sample {
            Some(s) if !(0.0..=1.0).contains(&s.value) => {
                self.error(&s.referenced, "record: sample must be between 0 and 1");
                return None;
            }
            Some(s) => s.value,
            None => 1.0,
        };
        let top = request.top_fields(set);
        let root_type = match request {
            PayloadShape::Element(f) => Some(f.type_id),
            PayloadShape::Fields { .. } => None,
        };
        let mut redact = Vec::new();
        for p in &record.redact {
            match path::resolve(set, top, root_type, &p.value, true) {
                Ok(resolved) => redact.push(resolved),
                Err(msg) => self.error(&p.referenced, format!("record: redact: {msg}")),
            }
        }
        Some(RecordPlan { sample, redact })
    }
}
