//! Request rendering: variables from the validated request payload, the
//! templates of the mapping, attachments (documents and images from base64
//! elements) and the model settings, into a [`converse::Request`].

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minijinja::Value as JValue;
use serde_json::{Map, Value};

use super::json_xml::payload_shape_to_json;
use super::output::{FaultAnswer, FillValue, RenderedFault};
use super::path::{Found, Path, Reached, find};
use super::shape::{Shape, shape};
use super::{CallMeta, Expect, OperationPlan, RenderError, RenderedCall};
use crate::contract::xsd::{Builtin, SchemaSet, TypeId};
use crate::converse::{
    ContentBlock, DocumentBlock, DocumentFormat, DocumentSource, ImageBlock, ImageFormat,
    ImageSource, Message, Request, SystemBlock, Tool, ToolChoice, ToolConfig, ToolSpec,
};
use crate::xml::{Element, write_element};

/// Template names inside a plan's environment.
pub(crate) const SYSTEM: &str = "system";
pub(crate) const PROMPT: &str = "prompt";

pub(crate) fn fill_template(path: &str) -> String {
    format!("fill:{path}")
}

pub(crate) fn fault_fill_template(fault: &str, path: &str) -> String {
    format!("fault:{fault}:fill:{path}")
}

pub(crate) fn fault_reason_template(fault: &str) -> String {
    format!("fault:{fault}:reason")
}

pub(crate) fn format_template(var: &str) -> String {
    format!("input:{var}:format")
}

pub(crate) fn name_template(var: &str) -> String {
    format!("input:{var}:name")
}

/// One input variable.
#[derive(Debug, Clone)]
pub(crate) struct InputPlan {
    pub(crate) name: String,
    pub(crate) path: Path,
    pub(crate) kind: InputKind,
}

#[derive(Debug, Clone)]
pub(crate) enum InputKind {
    /// The typed value (scalar, object, list).
    Value,
    /// The lexical text of a simple value.
    Text,
    /// The element's XML.
    Xml,
    /// The value as JSON text.
    Json,
    /// A document or image block.
    Attach(Box<Attach>),
}

#[derive(Debug, Clone)]
pub(crate) struct Attach {
    pub(crate) what: AttachKind,
    /// A fixed format, or `None` when the format template decides per call.
    pub(crate) format: Option<AttachFormat>,
    pub(crate) has_name_template: bool,
    /// The leaf type (base64Binary, hexBinary or a string type).
    pub(crate) encoding: Encoding,
    /// `format_from`: each attachment's own format, read beside it; the
    /// fixed format or the template stands in where that value is absent.
    pub(crate) format_from: Option<Path>,
    /// `name_from`: each document's own name, read beside it.
    pub(crate) name_from: Option<Path>,
    /// A `format` template is compiled (`input:{var}:format`).
    pub(crate) has_format_template: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttachKind {
    Document,
    Image,
    /// Document or image, whichever the format names.
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttachFormat {
    Document(DocumentFormat),
    Image(ImageFormat),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Base64,
    Hex,
    Text,
}

pub(crate) fn encoding_of(set: &SchemaSet, ty: TypeId) -> Encoding {
    let b = text_type(set, ty).and_then(|st| set.builtin_of(st));
    match b {
        Some(b) if b.derives_from(Builtin::Base64Binary) => Encoding::Base64,
        Some(b) if b.derives_from(Builtin::HexBinary) => Encoding::Hex,
        _ => Encoding::Text,
    }
}

/// The simple type of an element's text when the element holds only text:
/// a simple type, or simple content with attributes (a `base64Binary`
/// extended with a `contentType` attribute, say).
pub(crate) fn text_type(set: &SchemaSet, ty: TypeId) -> Option<TypeId> {
    match shape(set, ty) {
        Shape::Simple(st) => Some(*st),
        Shape::Object {
            text: Some(st),
            fields,
            ..
        } if fields.is_empty() => Some(*st),
        _ => None,
    }
}

/// A format name (`pdf`, `png`) or MIME type (`application/pdf`).
pub(crate) fn parse_format(s: &str) -> Option<AttachFormat> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.split(';').next().unwrap_or("").trim();
    let d = |f| Some(AttachFormat::Document(f));
    let i = |f| Some(AttachFormat::Image(f));
    match s {
        "pdf" | "application/pdf" => d(DocumentFormat::Pdf),
        "csv" | "text/csv" => d(DocumentFormat::Csv),
        "doc" | "application/msword" => d(DocumentFormat::Doc),
        "docx" | "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
            d(DocumentFormat::Docx)
        }
        "xls" | "application/vnd.ms-excel" => d(DocumentFormat::Xls),
        "xlsx" | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => {
            d(DocumentFormat::Xlsx)
        }
        "html" | "htm" | "text/html" => d(DocumentFormat::Html),
        "txt" | "text" | "text/plain" => d(DocumentFormat::Txt),
        "md" | "markdown" | "text/markdown" => d(DocumentFormat::Md),
        "png" | "image/png" => i(ImageFormat::Png),
        "jpeg" | "jpg" | "image/jpeg" | "image/jpg" => i(ImageFormat::Jpeg),
        "gif" | "image/gif" => i(ImageFormat::Gif),
        "webp" | "image/webp" => i(ImageFormat::Webp),
        _ => None,
    }
}

/// The format a file name's extension names (`scan.PDF`), if any.
pub(crate) fn format_of_file_name(name: &str) -> Option<AttachFormat> {
    let (stem, ext) = name.trim().rsplit_once('.')?;
    (!stem.is_empty() && !ext.contains('/')).then(|| parse_format(ext))?
}

/// For each attachment `found` reached (in the order of its leaves), the
/// text of the value `beside` reaches next to it: the same occurrences of
/// every `[]` step the two paths share, so the second `<attachment>`'s
/// content pairs with the second `<attachment>`'s MIME type. An absent or
/// empty value is `None`.
fn beside<'a>(
    found: &Found<'a>,
    beside: Option<&'a Path>,
    root: Option<&'a Element>,
    top: &[&'a Element],
) -> Vec<Option<String>> {
    fn pair(content: &Found<'_>, beside: Option<&Found<'_>>, out: &mut Vec<Option<String>>) {
        match (content, beside) {
            (Found::One(None), _) => {}
            (Found::One(Some(_)), Some(Found::One(Some(b)))) => {
                let text = lexical(*b);
                out.push((!text.trim().is_empty()).then(|| text.trim().to_string()));
            }
            (Found::One(Some(_)), _) => out.push(None),
            (Found::List(items), Some(Found::List(besides))) => {
                for (i, item) in items.iter().enumerate() {
                    pair(item, besides.get(i), out);
                }
            }
            // One value beside a list of attachments: it applies to each.
            (Found::List(items), other) => {
                for item in items {
                    pair(item, other, out);
                }
            }
        }
    }
    let Some(path) = beside else {
        return Vec::new();
    };
    let values = find(path, root, top);
    let mut out = Vec::new();
    pair(found, Some(&values), &mut out);
    out
}

/// Whether a format fits what the input asks for.
pub(crate) fn format_fits(what: AttachKind, f: AttachFormat) -> bool {
    matches!(
        (what, f),
        (AttachKind::File, _)
            | (AttachKind::Document, AttachFormat::Document(_))
            | (AttachKind::Image, AttachFormat::Image(_))
    )
}

/// Bedrock allows letters, digits, single spaces, hyphens, parentheses and
/// square brackets in document names.
fn document_name(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') {
            c
        } else {
            ' '
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_end().chars().take(200).collect::<String>();
    if out.is_empty() {
        "document".to_string()
    } else {
        out
    }
}

/// Minijinja prints `none` as "none"; an absent optional element should
/// print as nothing.
pub(crate) fn new_env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.set_formatter(|out, state, value| {
        // Prompts are not HTML: text goes out as it is, without a trip
        // through the formatting machinery.
        if matches!(state.auto_escape(), minijinja::AutoEscape::None)
            && let Some(text) = value.as_str()
        {
            return out.write_str(text).map_err(minijinja::Error::from);
        }
        minijinja::escape_formatter(
            out,
            state,
            if value.is_none() {
                &JValue::UNDEFINED
            } else {
                value
            },
        )
    });
    env
}

impl OperationPlan {
    fn set(&self) -> &SchemaSet {
        &self.contract.schemas
    }

    /// The root element and the elements paths start from.
    pub(crate) fn roots<'a>(
        &self,
        payload: &'a [Element],
    ) -> (Option<&'a Element>, Vec<&'a Element>) {
        match &self.request_shape {
            super::payload::PayloadShape::Element(_) => {
                let root = payload.first();
                (
                    root,
                    root.map(|r| r.elements().collect()).unwrap_or_default(),
                )
            }
            super::payload::PayloadShape::Fields {
                wrapper: Some(_), ..
            } => {
                let root = payload.first();
                (
                    root,
                    root.map(|r| r.elements().collect()).unwrap_or_default(),
                )
            }
            super::payload::PayloadShape::Fields { wrapper: None, .. } => {
                (None, payload.iter().collect())
            }
        }
    }

    /// The template context: every input variable, `payload` (the whole
    /// request as JSON), `payload_xml` and `meta`.
    pub(super) fn context(
        &self,
        payload: &[Element],
        meta: &CallMeta<'_>,
        attachments: &BTreeMap<String, Value>,
    ) -> Result<Map<String, Value>, RenderError> {
        let set = self.set();
        let (root, top) = self.roots(payload);
        let mut ctx = Map::new();
        for input in &self.inputs {
            let found = find(&input.path, root, &top);
            let v = match &input.kind {
                InputKind::Value => found.to_json(set),
                InputKind::Text => found.map_json(&mut |r| Value::String(lexical(r))),
                InputKind::Xml => found.map_json(&mut |r| match r {
                    Reached::Element(_, el) => Value::String(write_element(el)),
                    Reached::Attribute(_, v) => Value::String(v.to_string()),
                }),
                InputKind::Json => {
                    let v = found.to_json(set);
                    Value::String(serde_json::to_string(&v).unwrap_or_default())
                }
                InputKind::Attach(_) => {
                    attachments.get(&input.name).cloned().unwrap_or(Value::Null)
                }
            };
            ctx.insert(input.name.clone(), v);
        }
        if self.needs_payload_json {
            ctx.insert(
                "payload".into(),
                payload_shape_to_json(set, &self.request_shape, payload),
            );
        }
        if self.needs_payload_xml {
            ctx.insert(
                "payload_xml".into(),
                Value::String(
                    payload
                        .iter()
                        .map(write_element)
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
            );
        }
        ctx.insert(
            "meta".into(),
            serde_json::json!({
                "service": meta.service,
                "operation": meta.operation,
                "correlation_id": meta.correlation_id,
            }),
        );
        Ok(ctx)
    }

    pub(crate) fn render_template(&self, name: &str, ctx: &JValue) -> Result<String, RenderError> {
        let at = |line: Option<usize>| {
            let first = self.template_lines.get(name).copied().unwrap_or(1);
            let offset = line.map_or(0, |l| l.saturating_sub(1));
            let line = u64::from(first) + u64::try_from(offset).unwrap_or(0);
            format!("{}:{line}", self.source.display())
        };
        let t = self
            .env
            .get_template(name)
            .map_err(|e| RenderError::Template {
                at: at(None),
                template: name.to_string(),
                message: e.to_string(),
            })?;
        t.render(ctx).map_err(|e| RenderError::Template {
            at: at(e.line()),
            template: name.to_string(),
            message: template_error_text(&e),
        })
    }

    /// Turn a validated request payload (the Body's children) into the
    /// Converse request for this operation.
    pub fn render_request(
        &self,
        payload: &[Element],
        meta: &CallMeta<'_>,
    ) -> Result<RenderedCall, RenderError> {
        self.render_request_with(payload, meta, &Map::new())
    }

    /// [`render_request`](Self::render_request) with more variables for
    /// the templates: a step's `steps`, `item` and `index`.
    pub fn render_request_with(
        &self,
        payload: &[Element],
        meta: &CallMeta<'_>,
        extra: &Map<String, Value>,
    ) -> Result<RenderedCall, RenderError> {
        // Attachment names and formats may use the other variables, so the
        // context is built first without them, then completed.
        let with_extra = |mut ctx: Map<String, Value>| {
            ctx.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            template_value(Value::Object(ctx))
        };
        let base = with_extra(self.context(payload, meta, &BTreeMap::new())?);
        let (blocks, names) = self.attachments(payload, &base)?;
        let ctx = if names.is_empty() {
            base
        } else {
            with_extra(self.context(payload, meta, &names)?)
        };

        let mut content = blocks;
        let prompt = self.render_template(super::render::PROMPT, &ctx)?;
        content.push(ContentBlock::text(prompt));
        let mut request = Request {
            messages: vec![Message::user(content)],
            ..Request::default()
        };
        if self.has_system {
            let system = self.render_template(SYSTEM, &ctx)?;
            if !system.trim().is_empty() {
                request.system.push(SystemBlock::Text(system));
            }
        }
        request.inference_config = self.inference.clone();
        request.guardrail_config = self.guardrail.clone();
        request.additional_model_request_fields = self.additional_fields.clone();
        let mut metadata = BTreeMap::new();
        metadata.insert("service".to_string(), metadata_value(meta.service));
        metadata.insert("operation".to_string(), metadata_value(meta.operation));
        if !meta.correlation_id.is_empty() {
            metadata.insert(
                "correlation_id".to_string(),
                metadata_value(meta.correlation_id),
            );
        }
        request.request_metadata = Some(metadata);

        let (expect, fills) = match &self.output {
            super::output::OutputPlan::Structured { tool } => {
                request.tool_config = Some(self.tool_config(tool));
                (
                    Expect::Structured {
                        tool: tool.name.clone(),
                    },
                    Value::Null,
                )
            }
            super::output::OutputPlan::Text { fills, .. } => {
                (Expect::Text, self.render_fills(fills, &ctx)?)
            }
            super::output::OutputPlan::Nothing => (Expect::Nothing, Value::Null),
            super::output::OutputPlan::Step { tool, .. } => match tool {
                Some(tool) => {
                    request.tool_config = Some(self.tool_config(tool));
                    (
                        Expect::Structured {
                            tool: tool.name.clone(),
                        },
                        Value::Null,
                    )
                }
                None => (Expect::Text, Value::Null),
            },
        };
        let mut faults = Vec::with_capacity(self.faults.len());
        for f in &self.faults {
            let reason = match &f.reason {
                FillValue::Constant(v) => v.as_str().unwrap_or_default().to_string(),
                FillValue::Template(name) => self.render_template(name, &ctx)?,
            };
            let fills = match &f.answer {
                FaultAnswer::Text { fills, .. } => self.render_fills(fills, &ctx)?,
                FaultAnswer::Tool(_) => Value::Null,
            };
            faults.push(RenderedFault { reason, fills });
        }
        Ok(RenderedCall {
            request,
            targets: self.targets.clone(),
            expect,
            fills,
            faults,
        })
    }

    /// The tools of a structured operation: the response's alone, forced
    /// by name; with declared faults, the response's and each fault's, of
    /// which the model must call one (`toolChoice: any`).
    fn tool_config(&self, response: &ToolSpec) -> ToolConfig {
        let fault_tools: Vec<&ToolSpec> = self
            .faults
            .iter()
            .filter_map(|f| match &f.answer {
                FaultAnswer::Tool(t) => Some(t),
                FaultAnswer::Text { .. } => None,
            })
            .collect();
        if fault_tools.is_empty() {
            return ToolConfig::forced(response.clone());
        }
        let mut tools = vec![Tool::ToolSpec(response.clone())];
        tools.extend(fault_tools.into_iter().cloned().map(Tool::ToolSpec));
        ToolConfig {
            tools,
            tool_choice: Some(ToolChoice::any()),
        }
    }

    /// The document and image blocks, in input order, and each attachment
    /// variable's value for templates (its document name, or the list of
    /// names).
    fn attachments(
        &self,
        payload: &[Element],
        ctx: &JValue,
    ) -> Result<(Vec<ContentBlock>, BTreeMap<String, Value>), RenderError> {
        let (root, top) = self.roots(payload);
        let mut blocks = Vec::new();
        let mut names = BTreeMap::new();
        let mut used: Vec<String> = Vec::new();
        for input in &self.inputs {
            let InputKind::Attach(a) = &input.kind else {
                continue;
            };
            let err = |message: String| RenderError::Input {
                var: input.name.clone(),
                message,
            };
            // The input's own format: fixed, or rendered once per call.
            let input_format = || -> Result<AttachFormat, RenderError> {
                if let Some(f) = a.format {
                    return Ok(f);
                }
                if !a.has_format_template {
                    return Err(err("no format given".to_string()));
                }
                let text = self.render_template(&format_template(&input.name), ctx)?;
                let f = parse_format(&text).ok_or_else(|| {
                    err(match text.trim() {
                        "" => "no format given".to_string(),
                        f => {
                            format!("format {f} is not a document or image format Converse accepts")
                        }
                    })
                })?;
                if !format_fits(a.what, f) {
                    return Err(err(format!("format {} does not fit `as`", text.trim())));
                }
                Ok(f)
            };
            let base_name = if a.has_name_template {
                self.render_template(&name_template(&input.name), ctx)?
            } else {
                input.name.replace('_', " ")
            };
            let found = find(&input.path, root, &top);
            let leaves = found.leaves();
            let formats_beside = beside(&found, a.format_from.as_ref(), root, &top);
            let names_beside = beside(&found, a.name_from.as_ref(), root, &top);
            let mut shared_format = None;
            let mut var_names = Vec::new();
            for (i, leaf) in leaves.iter().enumerate() {
                let item = |message: String| {
                    err(if leaves.len() > 1 {
                        format!("attachment {}: {message}", i + 1)
                    } else {
                        message
                    })
                };
                let format = match formats_beside.get(i).and_then(Option::as_deref) {
                    Some(text) => {
                        let f = parse_format(text)
                            .or_else(|| format_of_file_name(text))
                            .ok_or_else(|| {
                                item(format!(
                                    "format {:?} is not a document or image format Converse accepts",
                                    text.trim()
                                ))
                            })?;
                        if !format_fits(a.what, f) {
                            return Err(item(format!("format {} does not fit `as`", text.trim())));
                        }
                        f
                    }
                    None => match shared_format {
                        Some(f) => f,
                        None => *shared_format.insert(input_format()?),
                    },
                };
                let bytes = decode(a.encoding, &lexical(*leaf)).map_err(item)?;
                let mut name =
                    document_name(&match names_beside.get(i).and_then(Option::as_deref) {
                        Some(given) => given.to_string(),
                        None if leaves.len() > 1 => format!("{base_name} {}", i + 1),
                        None => base_name.clone(),
                    });
                // Names must be unique within a request.
                let stem = name.clone();
                let mut n = 2;
                while used.contains(&name) {
                    name = format!("{stem} ({n})");
                    n += 1;
                }
                used.push(name.clone());
                var_names.push(Value::String(name.clone()));
                blocks.push(match format {
                    AttachFormat::Document(f) => ContentBlock::Document(DocumentBlock {
                        format: f,
                        name,
                        source: DocumentSource::Bytes(bytes),
                    }),
                    AttachFormat::Image(f) => ContentBlock::Image(ImageBlock {
                        format: f,
                        source: ImageSource::Bytes(bytes),
                    }),
                });
            }
            let v = if input.path.is_list() {
                Value::Array(var_names)
            } else {
                var_names.into_iter().next().unwrap_or(Value::Null)
            };
            names.insert(input.name.clone(), v);
        }
        Ok((blocks, names))
    }
}

/// A template error's kind and detail, without minijinja's own location
/// (ours is the mapping file's).
pub(crate) fn template_error_text(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// The template value of a JSON value, as minijinja's serde conversion
/// makes it (numbers keep their kind), except that maps are keyed by
/// `String`: the context is built on every call, and serde's maps cost a
/// template value per key and comparisons of template values per insert.
pub(crate) fn template_value(v: Value) -> JValue {
    match v {
        Value::Null => JValue::from(()),
        Value::Bool(b) => JValue::from(b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => JValue::from(u),
            (None, Some(i)) => JValue::from(i),
            (None, None) => JValue::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => JValue::from(s),
        Value::Array(items) => {
            JValue::from(items.into_iter().map(template_value).collect::<Vec<_>>())
        }
        // A map keyed by `String`: looked up by name without building a
        // template value for each key.
        Value::Object(map) => JValue::from(
            map.into_iter()
                .map(|(k, v)| (k, template_value(v)))
                .collect::<BTreeMap<String, JValue>>(),
        ),
    }
}

/// Converse refuses request metadata values outside
/// `[a-zA-Z0-9\s:_@$#=/+,.-]{0,256}`; a client's MessageID may hold more.
fn metadata_value(v: &str) -> String {
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                ' ' | ':' | '_' | '@' | '$' | '#' | '=' | '/' | '+' | ',' | '.' | '-'
            )
    };
    if v.len() <= 256 && v.chars().all(allowed) {
        return v.to_string();
    }
    v.chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .take(256)
        .collect()
}

/// The text of a reached node as written.
fn lexical(r: Reached<'_>) -> String {
    match r {
        Reached::Element(_, el) => el.text(),
        Reached::Attribute(_, v) => v.to_string(),
    }
}

fn decode(enc: Encoding, text: &str) -> Result<Vec<u8>, String> {
    match enc {
        Encoding::Base64 => {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| format!("not valid base64: {e}"))
        }
        Encoding::Hex => {
            let t = text.trim();
            if !t.len().is_multiple_of(2) {
                return Err("not valid hex: odd length".to_string());
            }
            (0..t.len())
                .step_by(2)
                .map(|i| {
                    t.get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| "not valid hex".to_string())
                })
                .collect()
        }
        Encoding::Text => Ok(text.as_bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The context's conversion of JSON gives what minijinja's own
    /// conversion of the same Rust values gives: same values, same kinds,
    /// same printed form. (Not minijinja's conversion of the JSON itself:
    /// with exact JSON numbers, serde_json hands a number to other
    /// serializers as a private one-field map.)
    #[test]
    fn template_values_match_the_serde_conversion() {
        let v = serde_json::json!({
            "s": "Grüße <b>",
            "n": 7,
            "neg": -3,
            "big": u64::MAX,
            "f": 2.5,
            "t": true,
            "none": null,
            "list": [1, "two", {"three": [3.0]}],
            "nested": {"z": 1, "a": {"#text": "x", "@id": "9"}},
        });
        let ours = template_value(v.clone());
        // Keys in the order a JSON object keeps them (sorted).
        let theirs = minijinja::context! {
            big => u64::MAX,
            f => 2.5,
            list => vec![
                JValue::from(1),
                JValue::from("two"),
                minijinja::context! { three => vec![3.0] },
            ],
            n => 7,
            neg => -3,
            nested => minijinja::context! {
                a => BTreeMap::from([("#text", "x"), ("@id", "9")]),
                z => 1,
            },
            none => (),
            s => "Grüße <b>",
            t => true,
        };
        assert_eq!(ours, theirs);
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        for key in ["s", "n", "neg", "big", "f", "t", "none", "list", "nested"] {
            let (a, b) = (ours.get_attr(key).unwrap(), theirs.get_attr(key).unwrap());
            assert_eq!(a.kind(), b.kind(), "{key}");
            assert_eq!(a.to_string(), b.to_string(), "{key}");
        }
        let env = new_env();
        let template = "{{ nested }}|{{ nested|length }}|{{ nested is mapping }}|\
            {% for k, v in nested|items %}{{ k }}={{ v }};{% endfor %}|\
            {% for k in nested %}{{ k }},{% endfor %}|{{ nested.a['#text'] }}|\
            {{ list[2].three[0] }}|{{ nested|tojson }}|{{ nested|dictsort }}|{{ none }}";
        let render = |ctx: &JValue| env.render_str(template, ctx).unwrap();
        assert_eq!(render(&ours), render(&theirs));
    }
}
