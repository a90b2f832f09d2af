//! The payload of one direction of a bound operation: the message parts
//! its `soap:body` carries (literal use only, headers checked), as the
//! global elements of a document-style body or the wrapper and parts of an
//! rpc-style one, each element and type checked against the schemas.

use std::path::Path;

use super::defs::{BindingDef, BindingOpDef, BodyDef, MsgRef, PartDef};
use super::services::Builder;
use crate::contract::model::{PartKind, Payload, RpcPart, Style};
use crate::xml::QName;

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn payload(
        &mut self,
        b: &BindingDef,
        bop: &BindingOpDef,
        at: &str,
        style: Style,
        style_text: &str,
        msg_ref: &MsgRef,
        body: &BodyDef,
        wrapper_suffix: &str,
    ) -> Option<Payload> {
        let defs = self.defs;
        if let Some((why, pos)) = &body.unsupported {
            self.err(&b.path, *pos, format!("{at}: {why}"));
            return None;
        }
        let Some(msg) = defs.messages.get(&msg_ref.message) else {
            let pt_path = b
                .port_type
                .as_ref()
                .and_then(|p| defs.port_types.get(p))
                .map(|p| p.path.clone())
                .unwrap_or_else(|| b.path.clone());
            self.err(
                &pt_path,
                msg_ref.pos,
                format!("{at}: message {} is not defined", msg_ref.message),
            );
            return None;
        };
        if let Some(sb) = &body.body {
            match sb.use_.as_deref() {
                None | Some("literal") => {}
                Some("encoded") => {
                    self.err(
                        &b.path,
                        sb.pos,
                        format!(
                            "{at}: {style_text}/encoded is not supported (SOAP encoding; only \
                             literal use is)"
                        ),
                    );
                    return None;
                }
                Some(other) => {
                    self.err(
                        &b.path,
                        sb.pos,
                        format!("{at}: use=\"{other}\" is not supported; only literal use is"),
                    );
                    return None;
                }
            }
        }
        for h in &body.headers {
            let known = defs
                .messages
                .get(&h.message)
                .is_some_and(|m| m.parts.iter().any(|p| p.name == h.part));
            if !known {
                self.err(
                    &b.path,
                    h.pos,
                    format!(
                        "{at}: soap:header refers to part {} of message {}, which is not defined",
                        h.part, h.message
                    ),
                );
            }
        }
        let selected: Vec<&PartDef> = match body.body.as_ref().and_then(|sb| sb.parts.as_ref()) {
            Some(names) => {
                let mut v = Vec::new();
                for n in names {
                    match msg.parts.iter().find(|p| &p.name == n) {
                        Some(p) => v.push(p),
                        None => {
                            let pos = body.body.as_ref().map_or(bop.pos, |sb| sb.pos);
                            self.err(
                                &b.path,
                                pos,
                                format!(
                                    "{at}: soap:body parts=\"{n}\" names no part of message {}",
                                    msg_ref.message
                                ),
                            );
                            return None;
                        }
                    }
                }
                v
            }
            // Without `parts=`, the body carries every part that is not
            // already bound to a header.
            None => msg
                .parts
                .iter()
                .filter(|p| {
                    !body
                        .headers
                        .iter()
                        .any(|h| h.message == msg_ref.message && h.part == p.name)
                })
                .collect(),
        };
        match style {
            Style::Document => {
                let mut elements = Vec::new();
                for p in selected {
                    match &p.kind {
                        PartKind::Element(q) => {
                            self.check_element(&msg.path, p, q, &msg_ref.message);
                            elements.push(q.clone());
                        }
                        PartKind::Type(q) => {
                            self.err(
                                &b.path,
                                bop.pos,
                                format!(
                                    "{at}: document style needs element= parts, but part {} of \
                                     message {} has type=\"{q}\" (declare a global element, or \
                                     use rpc style)",
                                    p.name, msg_ref.message
                                ),
                            );
                            return None;
                        }
                    }
                }
                Some(Payload::Document { elements })
            }
            Style::Rpc => {
                let ns = body
                    .body
                    .as_ref()
                    .and_then(|sb| sb.namespace.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| b.tns.clone());
                let mut parts = Vec::new();
                for p in selected {
                    match &p.kind {
                        PartKind::Element(q) => {
                            self.check_element(&msg.path, p, q, &msg_ref.message)
                        }
                        PartKind::Type(q) => {
                            if let Some(s) = self.schemas
                                && !s.has_type(q)
                            {
                                self.err(
                                    &msg.path,
                                    p.pos,
                                    format!(
                                        "part {} of message {} has type {q}, which no schema \
                                             defines",
                                        p.name, msg_ref.message
                                    ),
                                );
                            }
                        }
                    }
                    parts.push(RpcPart {
                        name: p.name.clone(),
                        kind: p.kind.clone(),
                    });
                }
                Some(Payload::Rpc {
                    wrapper: QName::new(ns, format!("{}{wrapper_suffix}", bop.name)),
                    parts,
                })
            }
        }
    }

    fn check_element(&mut self, path: &Path, p: &PartDef, q: &QName, msg: &QName) {
        if let Some(s) = self.schemas
            && !s.has_element(q)
        {
            self.err(
                path,
                p.pos,
                format!(
                    "part {} of message {msg} references element {q}, which no schema \
                         declares",
                    p.name
                ),
            );
        }
    }
}
