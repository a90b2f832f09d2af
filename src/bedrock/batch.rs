//! Batch-inference records: a Converse request as one line of a Bedrock
//! batch job's JSONL input, and one line of its output back as a Converse
//! response. Pure JSON (serde_json with arbitrary precision, so tool
//! schemas and tool inputs keep every digit); no SDK, no I/O.
//!
//! Batch jobs of the `Converse` invocation type refuse `toolConfig`, and
//! structured output is a forced tool, so records are of the `InvokeModel`
//! type: `modelInput` is the model's native body. Only Anthropic's is built
//! (model ids, inference profile ids and ARNs containing `anthropic.`):
//! the Messages API body Bedrock's InvokeModel takes for Claude.
//!
//! | Converse | Messages body |
//! |---|---|
//! | — | `anthropic_version: "bedrock-2023-05-31"` |
//! | `inferenceConfig.maxTokens` | `max_tokens` (required there: unset, the [`DEFAULT_MAX_TOKENS`] budgets count a call for) |
//! | `system` text blocks | `system`, text blocks |
//! | `messages` | `messages`: `text`; `image` and `document` as base64 (or text) sources; `toolUse` → `tool_use`; `toolResult` → `tool_result` (JSON content as its text) |
//! | `temperature`, `topP`, `stopSequences` | `temperature`, `top_p`, `stop_sequences` |
//! | `toolConfig.tools` | `tools`: `name`, `description`, `input_schema` (the schema as sent to Converse) |
//! | `toolChoice` `tool` / `any` / `auto` | `tool_choice` `{"type":"tool","name"}` / `{"type":"any"}` / `{"type":"auto"}` |
//! | `additionalModelRequestFields` | merged into the body (a key the body already sets is refused) |
//! | `requestMetadata` | dropped: a record is named by its `recordId` |
//! | `guardrailConfig` | refused: a record has no place for a guardrail |
//!
//! Anthropic takes PDF and plain-text documents only; a document of any
//! other format is refused, as is a document inside a tool result.
//!
//! An output line is `{"recordId", "modelInput", "modelOutput"}`, its
//! `modelOutput` the Messages response (`content` of `text` and `tool_use`
//! blocks, `stop_reason`, `usage`), or `{"recordId", "modelInput",
//! "error": {"errorCode", "errorMessage"}}`. Bedrock documents the error
//! code only as a number like an HTTP status (400 in its example), and
//! lists none: every [`RecordError`] goes back to an on-demand call, and
//! [`RecordError::is_transient`] only says whether the service (408, 424,
//! 429, 5xx) or the record (any other code) failed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::converse::{
    ContentBlock, DocumentBlock, DocumentFormat, DocumentSource, ImageBlock, ImageFormat,
    ImageSource, Message, Metrics, Output, Request, Response, Role, StopReason, SystemBlock, Tool,
    ToolChoice, ToolResultBlock, ToolResultContent, ToolResultStatus, ToolUseBlock, Usage,
};
use crate::models::DEFAULT_MAX_TOKENS;

/// The `anthropic_version` Bedrock's InvokeModel takes for Claude.
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// A request no batch record can carry; it must be called on demand. The
/// text says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// A record the batch job did not answer usably: send it on demand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The line's `error`: Bedrock could not answer the record.
    #[error("record {}: error {}: {message}", show_id(.record_id), show_code(.code))]
    Failed {
        record_id: Option<String>,
        /// `errorCode`, an HTTP-like status; `None` when it is not a number.
        code: Option<u16>,
        message: String,
    },
    /// The line is neither an answer nor an error we can read.
    #[error("record {}: unreadable output line: {reason}", show_id(.record_id))]
    Malformed {
        record_id: Option<String>,
        reason: String,
    },
}

fn show_id(id: &Option<String>) -> &str {
    id.as_deref().unwrap_or("without recordId")
}

fn show_code(code: &Option<u16>) -> String {
    code.map_or_else(|| "without a code".to_string(), |c| c.to_string())
}

impl RecordError {
    /// The `recordId` of the line, when it has one.
    pub fn record_id(&self) -> Option<&str> {
        match self {
            RecordError::Failed { record_id, .. } | RecordError::Malformed { record_id, .. } => {
                record_id.as_deref()
            }
        }
    }

    /// Whether the service failed (timeout 408, model error 424,
    /// throttling 429, 5xx) rather than the record (any other code, or an
    /// unreadable line). Either way the record goes back on demand.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RecordError::Failed { code: Some(c), .. } if matches!(c, 408 | 424 | 429 | 500..=599)
        )
    }
}

/// The JSONL record `{"recordId", "modelInput"}` of `request` for
/// `model_id` (the model or inference profile the job is created for).
pub fn record_for(
    record_id: &str,
    model_id: &str,
    request: &Request,
) -> Result<Value, Unsupported> {
    if !model_id.contains("anthropic.") {
        return Err(Unsupported(format!(
            "{model_id}: only Anthropic models' native records are built"
        )));
    }
    Ok(json!({ "recordId": record_id, "modelInput": messages_body(request)? }))
}

/// The Anthropic Messages body of `request`.
fn messages_body(request: &Request) -> Result<Value, Unsupported> {
    if request.guardrail_config.is_some() {
        return Err(Unsupported(
            "guardrailConfig: a batch record has no place for a guardrail, so a guarded request is called on demand"
                .to_string(),
        ));
    }
    let mut body = Map::new();
    body.insert("anthropic_version".into(), json!(ANTHROPIC_VERSION));
    let inference = request.inference_config.clone().unwrap_or_default();
    body.insert(
        "max_tokens".into(),
        json!(inference.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    if !request.system.is_empty() {
        let system: Vec<Value> = request
            .system
            .iter()
            .map(|SystemBlock::Text(t)| json!({ "type": "text", "text": t }))
            .collect();
        body.insert("system".into(), Value::Array(system));
    }
    let messages = request
        .messages
        .iter()
        .map(message)
        .collect::<Result<Vec<_>, _>>()?;
    body.insert("messages".into(), Value::Array(messages));
    if let Some(t) = inference.temperature {
        body.insert("temperature".into(), number(t));
    }
    if let Some(p) = inference.top_p {
        body.insert("top_p".into(), number(p));
    }
    if !inference.stop_sequences.is_empty() {
        body.insert("stop_sequences".into(), json!(inference.stop_sequences));
    }
    if let Some(config) = &request.tool_config {
        let tools: Vec<Value> = config
            .tools
            .iter()
            .map(|Tool::ToolSpec(spec)| {
                let mut tool = Map::new();
                tool.insert("name".into(), json!(spec.name));
                if let Some(d) = &spec.description {
                    tool.insert("description".into(), json!(d));
                }
                tool.insert("input_schema".into(), spec.schema().clone());
                Value::Object(tool)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        let choice = match &config.tool_choice {
            None => None,
            Some(ToolChoice::Auto(_)) => Some(json!({ "type": "auto" })),
            Some(ToolChoice::Any(_)) => Some(json!({ "type": "any" })),
            Some(ToolChoice::Tool(t)) => Some(json!({ "type": "tool", "name": t.name })),
        };
        if let Some(choice) = choice {
            body.insert("tool_choice".into(), choice);
        }
    }
    match &request.additional_model_request_fields {
        None => {}
        Some(Value::Object(extra)) => {
            for (key, value) in extra {
                if body.contains_key(key) {
                    return Err(Unsupported(format!(
                        "additionalModelRequestFields sets `{key}`, which the record already sets from the request"
                    )));
                }
                body.insert(key.clone(), value.clone());
            }
        }
        Some(_) => {
            return Err(Unsupported(
                "additionalModelRequestFields is not a JSON object".to_string(),
            ));
        }
    }
    Ok(Value::Object(body))
}

/// An `f32` setting as JSON, written as the Converse request writes it.
fn number(x: f32) -> Value {
    serde_json::to_value(x).unwrap_or(Value::Null)
}

fn message(message: &Message) -> Result<Value, Unsupported> {
    let role = match message.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let content = message
        .content
        .iter()
        .map(block)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "role": role, "content": content }))
}

fn block(block: &ContentBlock) -> Result<Value, Unsupported> {
    Ok(match block {
        ContentBlock::Text(t) => json!({ "type": "text", "text": t }),
        ContentBlock::Image(i) => image(i),
        ContentBlock::Document(d) => document(d)?,
        ContentBlock::ToolUse(t) => json!({
            "type": "tool_use", "id": t.tool_use_id, "name": t.name, "input": t.input,
        }),
        ContentBlock::ToolResult(r) => tool_result(r)?,
    })
}

fn image(image: &ImageBlock) -> Value {
    let media_type = match image.format {
        ImageFormat::Png => "image/png",
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Gif => "image/gif",
        ImageFormat::Webp => "image/webp",
    };
    let ImageSource::Bytes(bytes) = &image.source;
    json!({
        "type": "image",
        "source": { "type": "base64", "media_type": media_type, "data": STANDARD.encode(bytes) },
    })
}

fn document(document: &DocumentBlock) -> Result<Value, Unsupported> {
    let source = match (document.format, &document.source) {
        (DocumentFormat::Pdf, DocumentSource::Bytes(b)) => json!({
            "type": "base64", "media_type": "application/pdf", "data": STANDARD.encode(b),
        }),
        (DocumentFormat::Txt, DocumentSource::Text(t)) => {
            json!({ "type": "text", "media_type": "text/plain", "data": t })
        }
        (DocumentFormat::Txt, DocumentSource::Bytes(b)) => match std::str::from_utf8(b) {
            Ok(t) => json!({ "type": "text", "media_type": "text/plain", "data": t }),
            Err(_) => {
                return Err(Unsupported(format!(
                    "document {}: a txt document that is not UTF-8",
                    document.name
                )));
            }
        },
        (DocumentFormat::Pdf, DocumentSource::Text(_)) => {
            return Err(Unsupported(format!(
                "document {}: a pdf document given as text",
                document.name
            )));
        }
        (format, _) => {
            return Err(Unsupported(format!(
                "document {}: Anthropic's records take PDF and plain-text documents, not {}",
                document.name,
                serde_json::to_value(format)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )));
        }
    };
    Ok(json!({ "type": "document", "title": document.name, "source": source }))
}

fn tool_result(result: &ToolResultBlock) -> Result<Value, Unsupported> {
    let content = result
        .content
        .iter()
        .map(|c| match c {
            ToolResultContent::Text(t) => Ok(json!({ "type": "text", "text": t })),
            ToolResultContent::Json(v) => Ok(json!({ "type": "text", "text": v.to_string() })),
            ToolResultContent::Image(i) => Ok(image(i)),
            ToolResultContent::Document(d) => Err(Unsupported(format!(
                "document {} in a tool result: Anthropic's records take documents in messages only",
                d.name
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut block = json!({
        "type": "tool_result", "tool_use_id": result.tool_use_id, "content": content,
    });
    if result.status == Some(ToolResultStatus::Error) {
        block["is_error"] = json!(true);
    }
    Ok(block)
}

/// The `recordId` of an output line.
pub fn record_id(line: &Value) -> Option<&str> {
    line.get("recordId").and_then(Value::as_str)
}

/// One output line back as a Converse response: the `modelOutput`
/// Messages response (text and `tool_use` blocks, ids and inputs as
/// written; other block types, such as thinking, are dropped as the
/// Converse path drops them), or the line's `error`.
pub fn answer_from(line: &Value) -> Result<Response, RecordError> {
    let record_id = record_id(line).map(str::to_string);
    let malformed = |reason: &str| RecordError::Malformed {
        record_id: record_id.clone(),
        reason: reason.to_string(),
    };
    if let Some(error) = line.get("error").filter(|e| !e.is_null()) {
        let code = match error.get("errorCode") {
            Some(Value::Number(n)) => n.as_u64().and_then(|c| u16::try_from(c).ok()),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let message = error
            .get("errorMessage")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        return Err(RecordError::Failed {
            record_id,
            code,
            message,
        });
    }
    let output = line
        .get("modelOutput")
        .filter(|o| o.is_object())
        .ok_or_else(|| malformed("neither modelOutput nor error"))?;
    let blocks = output
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("modelOutput has no content array"))?;
    let mut content = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = b
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| malformed("a text block without text"))?;
                content.push(ContentBlock::Text(text.to_string()));
            }
            Some("tool_use") => {
                let (Some(id), Some(name)) = (
                    b.get("id").and_then(Value::as_str),
                    b.get("name").and_then(Value::as_str),
                ) else {
                    return Err(malformed("a tool_use block without id or name"));
                };
                content.push(ContentBlock::ToolUse(ToolUseBlock {
                    tool_use_id: id.to_string(),
                    name: name.to_string(),
                    input: b.get("input").cloned().unwrap_or_else(|| json!({})),
                }));
            }
            _ => {}
        }
    }
    let stop_reason = output
        .get("stop_reason")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("modelOutput has no stop_reason"))?;
    let tokens = |key: &str| {
        output
            .pointer(&format!("/usage/{key}"))
            .and_then(Value::as_u64)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    let mut usage = Usage::new(
        tokens("input_tokens").unwrap_or(0),
        tokens("output_tokens").unwrap_or(0),
    );
    usage.cache_read_input_tokens = tokens("cache_read_input_tokens");
    usage.cache_write_input_tokens = tokens("cache_creation_input_tokens");
    Ok(Response {
        output: Output {
            message: Message {
                role: Role::Assistant,
                content,
            },
        },
        stop_reason: StopReason::from(stop_reason),
        usage,
        metrics: Metrics::default(),
        additional_model_response_fields: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::converse::{GuardrailConfig, InferenceConfig, ToolConfig, ToolSpec};

    const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    fn body(request: &Request) -> Value {
        record_for("r1", HAIKU, request).expect("a record")["modelInput"].clone()
    }

    #[test]
    fn a_plain_request_gets_the_version_and_the_default_max_tokens() {
        let record = record_for("r1", HAIKU, &Request::user_text("hello")).unwrap();
        assert_eq!(
            record,
            json!({
                "recordId": "r1",
                "modelInput": {
                    "anthropic_version": "bedrock-2023-05-31",
                    "max_tokens": DEFAULT_MAX_TOKENS,
                    "messages": [{ "role": "user", "content": [{ "type": "text", "text": "hello" }] }],
                },
            })
        );
    }

    #[test]
    fn inference_profiles_and_arns_of_anthropic_models_are_anthropic() {
        for id in [
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/eu.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
        ] {
            assert!(
                record_for("r", id, &Request::user_text("x")).is_ok(),
                "{id}"
            );
        }
    }

    #[test]
    fn other_model_families_are_unsupported() {
        for id in ["amazon.nova-pro-v1:0", "meta.llama3-70b-instruct-v1:0"] {
            let err = record_for("r", id, &Request::user_text("x")).unwrap_err();
            assert!(
                err.0
                    .contains("only Anthropic models' native records are built"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_guardrail_is_unsupported_with_its_reason() {
        let mut request = Request::user_text("x");
        request.guardrail_config = Some(GuardrailConfig {
            guardrail_identifier: "g".into(),
            guardrail_version: "1".into(),
            trace: None,
        });
        let err = record_for("r", HAIKU, &request).unwrap_err();
        assert!(err.0.contains("guardrail"), "{err}");
    }

    #[test]
    fn settings_tools_and_choices_map_to_their_native_keys() {
        let mut request = Request::user_text("x");
        request.system = vec![SystemBlock::Text("a".into()), SystemBlock::Text("b".into())];
        request.inference_config = Some(InferenceConfig {
            max_tokens: Some(300),
            temperature: Some(0.4),
            top_p: Some(0.9),
            stop_sequences: vec!["</summary>".into()],
        });
        let schema: Value = serde_json::from_str(
            r#"{"type":"object","properties":{"n":{"type":"number","maximum":123456789012345678901234.500000}}}"#,
        )
        .unwrap();
        request.tool_config = Some(ToolConfig::forced(ToolSpec::new(
            "answer",
            Some("d".into()),
            schema.clone(),
        )));
        request.additional_model_request_fields = Some(json!({ "top_k": 50 }));
        let body = body(&request);
        assert_eq!(body["max_tokens"], json!(300));
        assert_eq!(body["temperature"].to_string(), "0.4");
        assert_eq!(body["top_p"].to_string(), "0.9");
        assert_eq!(body["stop_sequences"], json!(["</summary>"]));
        assert_eq!(
            body["system"],
            json!([{ "type": "text", "text": "a" }, { "type": "text", "text": "b" }])
        );
        assert_eq!(
            body["tools"],
            json!([{ "name": "answer", "description": "d", "input_schema": schema }])
        );
        assert!(
            body.to_string()
                .contains(r#""maximum":123456789012345678901234.500000"#),
            "{body}"
        );
        assert_eq!(
            body["tool_choice"],
            json!({ "type": "tool", "name": "answer" })
        );
        assert_eq!(body["top_k"], json!(50));

        let config = request.tool_config.as_mut().unwrap();
        config.tool_choice = Some(ToolChoice::any());
        assert_eq!(
            self::body(&request)["tool_choice"],
            json!({ "type": "any" })
        );
        let config = request.tool_config.as_mut().unwrap();
        config.tool_choice = Some(ToolChoice::auto());
        assert_eq!(
            self::body(&request)["tool_choice"],
            json!({ "type": "auto" })
        );
        request.tool_config.as_mut().unwrap().tool_choice = None;
        assert!(self::body(&request).get("tool_choice").is_none());
    }

    #[test]
    fn additional_fields_may_not_override_what_the_record_sets() {
        let mut request = Request::user_text("x");
        request.additional_model_request_fields = Some(json!({ "max_tokens": 5 }));
        let err = record_for("r", HAIKU, &request).unwrap_err();
        assert!(err.0.contains("`max_tokens`"), "{err}");
        request.additional_model_request_fields = Some(json!([1]));
        assert!(record_for("r", HAIKU, &request).is_err());
    }

    #[test]
    fn images_pdfs_and_text_documents_are_base64_or_text_sources() {
        let request = Request {
            messages: vec![Message::user(vec![
                ContentBlock::Image(ImageBlock {
                    format: ImageFormat::Png,
                    source: ImageSource::Bytes(vec![0, 1, 2]),
                }),
                ContentBlock::Document(DocumentBlock {
                    format: DocumentFormat::Pdf,
                    name: "scan".into(),
                    source: DocumentSource::Bytes(b"%PDF".to_vec()),
                }),
                ContentBlock::Document(DocumentBlock {
                    format: DocumentFormat::Txt,
                    name: "note".into(),
                    source: DocumentSource::Bytes(b"hello".to_vec()),
                }),
            ])],
            ..Request::default()
        };
        assert_eq!(
            body(&request)["messages"][0]["content"],
            json!([
                { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "AAEC" } },
                { "type": "document", "title": "scan", "source": { "type": "base64", "media_type": "application/pdf", "data": "JVBERg==" } },
                { "type": "document", "title": "note", "source": { "type": "text", "media_type": "text/plain", "data": "hello" } },
            ])
        );
    }

    #[test]
    fn documents_anthropic_does_not_take_are_unsupported() {
        for (format, source) in [
            (DocumentFormat::Docx, DocumentSource::Bytes(vec![1])),
            (DocumentFormat::Csv, DocumentSource::Text("a,b".into())),
            (DocumentFormat::Pdf, DocumentSource::Text("x".into())),
            (DocumentFormat::Txt, DocumentSource::Bytes(vec![0xff, 0xfe])),
        ] {
            let request = Request {
                messages: vec![Message::user(vec![ContentBlock::Document(DocumentBlock {
                    format,
                    name: "doc".into(),
                    source,
                })])],
                ..Request::default()
            };
            let err = record_for("r", HAIKU, &request).unwrap_err();
            assert!(err.0.starts_with("document doc:"), "{err}");
        }
    }

    #[test]
    fn tool_turns_become_tool_use_and_tool_result_blocks() {
        let input: Value =
            serde_json::from_str(r#"{"amount": 0.100000000000000000000000000001}"#).unwrap();
        let request = Request {
            messages: vec![
                Message::user(vec![ContentBlock::text("q")]),
                Message::assistant(vec![ContentBlock::ToolUse(ToolUseBlock {
                    tool_use_id: "t1".into(),
                    name: "f".into(),
                    input: input.clone(),
                })]),
                Message::user(vec![ContentBlock::ToolResult(ToolResultBlock {
                    tool_use_id: "t1".into(),
                    content: vec![ToolResultContent::Json(input.clone())],
                    status: Some(ToolResultStatus::Error),
                })]),
            ],
            ..Request::default()
        };
        let body = body(&request);
        assert_eq!(
            body["messages"][1],
            json!({ "role": "assistant", "content": [{ "type": "tool_use", "id": "t1", "name": "f", "input": input }] })
        );
        assert_eq!(
            body["messages"][2]["content"][0],
            json!({ "type": "tool_result", "tool_use_id": "t1", "is_error": true,
                    "content": [{ "type": "text", "text": r#"{"amount":0.100000000000000000000000000001}"# }] })
        );
    }

    fn line(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_text_answer_reads_back_with_its_stop_reason_and_usage() {
        let response = answer_from(&line(
            r#"{"recordId":"r1","modelInput":{},"modelOutput":{"id":"msg_1","type":"message","role":"assistant",
               "content":[{"type":"text","text":"Hello "},{"type":"thinking","thinking":"hm"},{"type":"text","text":"there"}],
               "stop_reason":"end_turn","usage":{"input_tokens":12,"output_tokens":3}}}"#,
        ))
        .unwrap();
        assert_eq!(response.text(), "Hello there");
        assert_eq!(response.output.message.content.len(), 2);
        assert_eq!(response.stop_reason, StopReason::EndTurn);
        assert_eq!(response.usage, Usage::new(12, 3));
        for (wire, reason) in [
            ("tool_use", StopReason::ToolUse),
            ("max_tokens", StopReason::MaxTokens),
            ("stop_sequence", StopReason::StopSequence),
            ("refusal", StopReason::Other("refusal".into())),
        ] {
            let answer = answer_from(&json!({
                "recordId": "r", "modelOutput": { "content": [], "stop_reason": wire, "usage": {} },
            }))
            .unwrap();
            assert_eq!(answer.stop_reason, reason);
        }
    }

    #[test]
    fn a_tool_answer_keeps_its_id_and_every_digit() {
        let text = r#"{"recordId":"r2","modelOutput":{"content":[{"type":"tool_use","id":"toolu_bdrk_01","name":"classify",
            "input":{"amount":123456789012345678901234567890.123456789012345678901234567890,"n":-0.000000000000000000000000000001}}],
            "stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2,"cache_read_input_tokens":7}}}"#;
        let response = answer_from(&line(text)).unwrap();
        let tool = response.first_tool_use().unwrap();
        assert_eq!(tool.tool_use_id, "toolu_bdrk_01");
        assert_eq!(tool.name, "classify");
        assert_eq!(
            tool.input.to_string(),
            r#"{"amount":123456789012345678901234567890.123456789012345678901234567890,"n":-0.000000000000000000000000000001}"#
        );
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(response.usage.cache_read_input_tokens, Some(7));
    }

    #[test]
    fn an_error_line_is_a_record_error_for_its_record() {
        let err = answer_from(&line(
            r#"{"recordId":"r3","modelInput":{},"error":{"errorCode":400,"errorMessage":"bad request"}}"#,
        ))
        .unwrap_err();
        assert_eq!(
            err,
            RecordError::Failed {
                record_id: Some("r3".into()),
                code: Some(400),
                message: "bad request".into()
            }
        );
        assert_eq!(err.record_id(), Some("r3"));
        assert!(!err.is_transient());
        assert_eq!(err.to_string(), "record r3: error 400: bad request");
        for code in [json!(429), json!("503"), json!(424), json!(408)] {
            let err = answer_from(
                &json!({ "recordId": "r", "error": { "errorCode": code, "errorMessage": "m" } }),
            )
            .unwrap_err();
            assert!(err.is_transient(), "{err}");
        }
    }

    #[test]
    fn an_unreadable_line_is_malformed() {
        for text in [
            r#"{"recordId":"r4","modelInput":{}}"#,
            r#"{"recordId":"r4","modelOutput":{"stop_reason":"end_turn"}}"#,
            r#"{"recordId":"r4","modelOutput":{"content":[{"type":"tool_use","name":"x"}],"stop_reason":"tool_use"}}"#,
            r#"{"recordId":"r4","modelOutput":{"content":[]}}"#,
        ] {
            let err = answer_from(&line(text)).unwrap_err();
            assert!(
                matches!(err, RecordError::Malformed { .. }),
                "{text}: {err}"
            );
            assert_eq!(err.record_id(), Some("r4"));
            assert!(!err.is_transient());
        }
        let err = answer_from(&json!({})).unwrap_err();
        assert_eq!(err.record_id(), None);
        assert!(err.to_string().contains("without recordId"), "{err}");
    }
}
