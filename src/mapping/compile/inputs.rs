//! The request inputs: each named variable's path into the request, and
//! how it reaches the model (a value, text, JSON, XML, or a document, image
//! or file attachment with its format and name).

use super::Cx;
use crate::contract::xsd::{SchemaSet, TypeId};
use crate::mapping::path::{self, Target};
use crate::mapping::payload::PayloadShape;
use crate::mapping::render::{
    self, Attach, AttachKind, Encoding, InputKind, InputPlan, encoding_of, format_fits,
    parse_format,
};
use crate::mapping::spec::{FullInput, InputSpec, OperationSpec};

impl Cx<'_> {
    pub(super) fn inputs(
        &mut self,
        set: &SchemaSet,
        shape: &PayloadShape,
        spec: &OperationSpec,
        env: &mut minijinja::Environment<'static>,
    ) -> Vec<InputPlan> {
        let top = shape.top_fields(set);
        let root_type = match shape {
            PayloadShape::Element(f) => Some(f.type_id),
            PayloadShape::Fields { .. } => None,
        };
        let mut out = Vec::new();
        for (name, spec) in &spec.input.0 {
            if !is_identifier(&name.value)
                || ["payload", "payload_xml", "meta"].contains(&name.value.as_str())
            {
                self.error(
                    &name.referenced,
                    format!(
                        "{:?} cannot be a variable name (letters, digits and _; not payload, payload_xml or meta)",
                        name.value
                    ),
                );
                continue;
            }
            let (path_text, path_at) = match &spec.value {
                InputSpec::Path(p) => (p.clone(), spec.referenced),
                InputSpec::Full(f) => (f.path.value.clone(), f.path.referenced),
            };
            let resolved = match path::resolve(set, top, root_type, &path_text, true) {
                Ok(p) => p,
                Err(msg) => {
                    self.error(&path_at, msg);
                    continue;
                }
            };
            let kind = match &spec.value {
                InputSpec::Path(_) => InputKind::Value,
                InputSpec::Full(f) => {
                    match self.input_kind(set, &name.value, &resolved, f, env, &|text| {
                        path::resolve(set, top, root_type, text, true)
                    }) {
                        Some(k) => k,
                        None => continue,
                    }
                }
            };
            out.push(InputPlan {
                name: name.value.clone(),
                path: resolved,
                kind,
            });
        }
        out
    }

    fn input_kind(
        &mut self,
        set: &SchemaSet,
        var: &str,
        p: &path::Path,
        f: &FullInput,
        env: &mut minijinja::Environment<'static>,
        resolve: &dyn Fn(&str) -> Result<path::Path, String>,
    ) -> Option<InputKind> {
        let as_ = f.as_.as_ref().map(|a| a.value.as_str()).unwrap_or("value");
        let simple_leaf = |set: &SchemaSet| p.ends_at_simple_value(set);
        let at = f.as_.as_ref().map_or(f.path.referenced, |a| a.referenced);
        let what = match as_ {
            "value" => return self.no_attachment_keys(f).then_some(InputKind::Value),
            "json" => return self.no_attachment_keys(f).then_some(InputKind::Json),
            "xml" => {
                if p.attr.is_some() {
                    self.error(&at, "as: xml takes an element, not an attribute");
                    return None;
                }
                return self.no_attachment_keys(f).then_some(InputKind::Xml);
            }
            "text" => {
                if !simple_leaf(set) {
                    self.error(&at, format!("as: text needs an element of simple type; {} has child elements (use value, json or xml)", p.text));
                    return None;
                }
                return self.no_attachment_keys(f).then_some(InputKind::Text);
            }
            "document" => AttachKind::Document,
            "image" => AttachKind::Image,
            "file" => AttachKind::File,
            other => {
                self.error(
                    &at,
                    format!("unknown `as: {other}` (expected value, text, json, xml, document, image or file)"),
                );
                return None;
            }
        };
        let text_only = match p.target() {
            Some(Target::Attribute(_)) => true,
            Some(Target::Element(ty)) => render::text_type(set, ty).is_some(),
            None => false,
        };
        if !text_only {
            self.error(&at, format!("an attachment needs an element of simple type (base64Binary, hexBinary or text); {} has child elements", p.text));
            return None;
        }
        let leaf_ty: TypeId = match p.target() {
            Some(Target::Attribute(t) | Target::Element(t)) => t,
            None => return None,
        };
        let encoding = encoding_of(set, leaf_ty);
        let format_from = match &f.format_from {
            Some(from) => Some(self.beside_path(set, p, from, resolve)?),
            None => None,
        };
        let name_from = match &f.name_from {
            Some(from) if what == AttachKind::Image => {
                self.error(
                    &from.referenced,
                    "images have no name; `name_from` is for documents",
                );
                return None;
            }
            Some(from) => Some(self.beside_path(set, p, from, resolve)?),
            None => None,
        };
        let mut format = None;
        let mut has_format_template = false;
        match &f.format {
            // Each attachment names its own format; without one beside it,
            // the call is refused.
            None if format_from.is_some() => {}
            None if what == AttachKind::File => {
                self.error(
                    &at,
                    "as: file needs a `format` (a format name, MIME type or template)",
                );
                return None;
            }
            None => {
                self.error(&at, format!("as: {as_} needs a `format`"));
                return None;
            }
            Some(fmt) if fmt.value.contains("{{") || fmt.value.contains("{%") => {
                let name = render::format_template(var);
                if let Err(e) = env.add_template_owned(name.clone(), fmt.value.clone()) {
                    self.template_error(fmt, &e);
                    return None;
                }
                self.templates.push((name, fmt.clone()));
                has_format_template = true;
            }
            Some(fmt) => match parse_format(&fmt.value) {
                Some(parsed) if format_fits(what, parsed) => {
                    if encoding == Encoding::Text
                        && matches!(
                            parsed,
                            render::AttachFormat::Image(_)
                                | render::AttachFormat::Document(
                                    crate::converse::DocumentFormat::Pdf
                                        | crate::converse::DocumentFormat::Doc
                                        | crate::converse::DocumentFormat::Docx
                                        | crate::converse::DocumentFormat::Xls
                                        | crate::converse::DocumentFormat::Xlsx,
                                )
                        )
                    {
                        self.error(
                            &fmt.referenced,
                            format!("{} is text, not base64Binary: it can only be a txt, md, csv or html document", p.text),
                        );
                        return None;
                    }
                    format = Some(parsed);
                }
                Some(_) => {
                    self.error(
                        &fmt.referenced,
                        format!("format {} does not fit as: {as_}", fmt.value),
                    );
                    return None;
                }
                None => {
                    self.error(
                        &fmt.referenced,
                        format!("unknown format {:?} (document: pdf, csv, doc, docx, xls, xlsx, html, txt, md; image: png, jpeg, gif, webp; or a MIME type)", fmt.value),
                    );
                    return None;
                }
            },
        }
        let mut has_name_template = false;
        if let Some(n) = &f.name {
            if what == AttachKind::Image {
                self.error(
                    &n.referenced,
                    "images have no name; `name` is for documents",
                );
                return None;
            }
            if let Err(e) = env.add_template_owned(render::name_template(var), n.value.clone()) {
                self.template_error(n, &e);
                return None;
            }
            self.templates.push((render::name_template(var), n.clone()));
            has_name_template = true;
        }
        Some(InputKind::Attach(Box::new(Attach {
            what,
            format,
            has_name_template,
            encoding,
            format_from,
            name_from,
            has_format_template,
        })))
    }

    /// `format_from` / `name_from`: a path from beside the attachment at
    /// `content` — `@attr` is an attribute of the attachment's element,
    /// `name` (or `a/b`) an element next to it, under the same parent —
    /// resolved against the schema (which refuses a repeated element
    /// written without `[]`, so it repeats no more than the attachment
    /// does); it must end at a simple value.
    fn beside_path(
        &mut self,
        set: &SchemaSet,
        content: &path::Path,
        from: &serde_saphyr::Spanned<String>,
        resolve: &dyn Fn(&str) -> Result<path::Path, String>,
    ) -> Option<path::Path> {
        let rel = from.value.trim();
        if rel.is_empty() || rel.contains("[]") || rel.starts_with('/') || rel.contains("..") {
            self.error(
                &from.referenced,
                format!("{rel:?}: give the name of an element (or @attribute) beside each attachment, without []"),
            );
            return None;
        }
        // The attachment's element path (the owner of an attachment held in
        // an attribute), split at its last step.
        let element_path = match content.text.rsplit_once("/@") {
            Some((owner, _)) => owner,
            None if content.text.starts_with('@') => "",
            None => content.text.as_str(),
        };
        let text = if rel.starts_with('@') {
            if element_path.is_empty() {
                rel.to_string()
            } else {
                format!("{element_path}/{rel}")
            }
        } else {
            let parent = if content.attr.is_some() {
                element_path.rsplit_once('/').map_or("", |(p, _)| p)
            } else {
                content.text.rsplit_once('/').map_or("", |(p, _)| p)
            };
            if parent.is_empty() {
                rel.to_string()
            } else {
                format!("{parent}/{rel}")
            }
        };
        let resolved = match resolve(&text) {
            Ok(p) => p,
            Err(msg) => {
                self.error(&from.referenced, msg);
                return None;
            }
        };
        let simple = resolved.ends_at_simple_value(set);
        if !simple {
            self.error(
                &from.referenced,
                format!("{text} has child elements: the value beside an attachment must be text (a MIME type, format or file name)"),
            );
            return None;
        }
        Some(resolved)
    }

    fn no_attachment_keys(&mut self, f: &FullInput) -> bool {
        for (key, v) in [
            ("format", &f.format),
            ("name", &f.name),
            ("format_from", &f.format_from),
            ("name_from", &f.name_from),
        ] {
            if let Some(v) = v {
                self.error(
                    &v.referenced,
                    format!("`{key}` only applies to as: document, image or file"),
                );
                return false;
            }
        }
        true
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
