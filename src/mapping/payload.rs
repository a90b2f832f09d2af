//! A message payload (the SOAP Body's children) as one JSON value: what a
//! structured-output tool returns, what a static fallback spells out, what
//! templates see as `payload`.
//!
//! - document/literal with one element whose type has element content or
//!   attributes: the element's object (its children as properties);
//! - document/literal with one element of simple type: `{"Name": value}`;
//! - rpc/literal: an object of the parts, named as the parts are;
//! - document/literal bare with several elements: an object of the elements.

use crate::contract::xsd::SchemaSet;
use crate::contract::{Payload, RpcPart, model::PartKind};
use crate::xml::QName;

use super::shape::{Field, Shape, shape};
use crate::contract::xsd::MaxOccurs;

/// How a payload maps to JSON.
#[derive(Debug, Clone)]
pub(crate) enum PayloadShape {
    /// One element; its value is the whole JSON (an object).
    Element(Field),
    /// An object whose properties are these elements; `wrapper` is the rpc
    /// wrapper element around them, if any.
    Fields {
        wrapper: Option<QName>,
        fields: Vec<Field>,
    },
}

impl PayloadShape {
    /// `None` when a declaration the payload names is missing (the contract
    /// loader checks this, so only a hand-built contract gets here).
    pub(crate) fn of(set: &SchemaSet, payload: &Payload) -> Option<PayloadShape> {
        match payload {
            Payload::Document { elements } => {
                let mut fields = Vec::new();
                for q in elements {
                    let (_, d) = set.element(q)?;
                    fields.push(Field::from_decl(d, 1, MaxOccurs::Bounded(1)));
                }
                match fields.as_slice() {
                    [one] if matches!(shape(set, one.type_id), Shape::Object { .. }) => {
                        Some(PayloadShape::Element(one.clone()))
                    }
                    _ => Some(PayloadShape::Fields {
                        wrapper: None,
                        fields,
                    }),
                }
            }
            Payload::Rpc { wrapper, parts } => {
                let fields = parts
                    .iter()
                    .map(|p| part_field(set, p))
                    .collect::<Option<Vec<_>>>()?;
                Some(PayloadShape::Fields {
                    wrapper: Some(wrapper.clone()),
                    fields,
                })
            }
        }
    }

    /// The fields path steps start from: the root element's children, or
    /// the parts / bare elements.
    pub(crate) fn top_fields<'a>(&'a self, set: &'a SchemaSet) -> &'a [Field] {
        match self {
            PayloadShape::Element(f) => super::shape::fields_of(set, f.type_id),
            PayloadShape::Fields { fields, .. } => fields,
        }
    }

    /// A name for the payload in messages and tool names.
    pub(crate) fn root_name(&self) -> String {
        match self {
            PayloadShape::Element(f) => f.name.local.clone(),
            PayloadShape::Fields {
                wrapper: Some(w), ..
            } => w.local.clone(),
            PayloadShape::Fields { fields, .. } => fields
                .first()
                .map(|f| f.name.local.clone())
                .unwrap_or_default(),
        }
    }
}

fn part_field(set: &SchemaSet, part: &RpcPart) -> Option<Field> {
    match &part.kind {
        PartKind::Type(ty) => Some(Field {
            name: QName::local(part.name.clone()),
            type_id: set.type_id(ty)?,
            // An rpc/literal part accessor is never nil (WS-I BP R2211;
            // `contract::validate_payload` refuses it): JSON null is not
            // offered.
            nillable: false,
            fixed: None,
            min: 1,
            max: MaxOccurs::Bounded(1),
            choice: None,
        }),
        PartKind::Element(q) => {
            let (_, d) = set.element(q)?;
            Some(Field {
                // Not nil either, even when its element is nillable.
                nillable: false,
                ..Field::from_decl(d, 1, MaxOccurs::Bounded(1))
            })
        }
    }
}
