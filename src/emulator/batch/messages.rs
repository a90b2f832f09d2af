//! Anthropic's Messages API body, the native format an InvokeModel-type
//! batch record's `modelInput` takes for `anthropic.*` models, read into
//! the emulator's Converse request and written back from its Converse
//! response, so a batch record is answered by the same logic (echo,
//! schema-satisfying tool input, script rules) as a Converse call.
//!
//! Only what the emulator answers from is read: `system`, `messages` with
//! `text`, `image` (base64 PNG, JPEG, GIF or WebP), `document` (base64
//! PDF, or plain text), `tool_use` and `tool_result` blocks, `max_tokens`,
//! `temperature`, `top_p`, `stop_sequences`, `tools` and `tool_choice`.
//! A body without `anthropic_version`, `max_tokens` or `messages`, or with a
//! block of another type or a source Anthropic does not take, is a record
//! error, as a malformed body is on Bedrock.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::converse::{
    ContentBlock, DocumentBlock, DocumentFormat, DocumentSource, ImageBlock, ImageFormat,
    ImageSource, InferenceConfig, Message, Request, Response, Role, StopReason, SystemBlock, Tool,
    ToolChoice, ToolConfig, ToolResultBlock, ToolResultContent, ToolResultStatus, ToolSpec,
    ToolUseBlock,
};

#[derive(Debug, Deserialize)]
struct Body {
    anthropic_version: Option<String>,
    max_tokens: Option<u32>,
    messages: Option<Vec<AnthropicMessage>>,
    #[serde(default)]
    system: Option<TextOrBlocks>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    #[serde(default)]
    tools: Vec<AnthropicTool>,
    tool_choice: Option<AnthropicToolChoice>,
}

#[derive(Debug, Deserialize)]
struct AnthropicMessage {
    role: Role,
    content: TextOrBlocks,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TextOrBlocks {
    Text(String),
    Blocks(Vec<Value>),
}

#[derive(Debug, Deserialize)]
struct AnthropicTool {
    name: String,
    description: Option<String>,
    input_schema: Value,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum AnthropicToolChoice {
    Auto,
    Any,
    Tool { name: String },
    None,
}

/// Reads a `modelInput` body; the error is the record's `errorMessage`.
pub(crate) fn request(body: &Value) -> Result<Request, String> {
    let body: Body = serde_json::from_value(body.clone())
        .map_err(|e| format!("Malformed input request: {e}"))?;
    let missing = |key: &str| format!("Malformed input request: #: required key [{key}] not found");
    if body.anthropic_version.is_none() {
        return Err(missing("anthropic_version"));
    }
    let max_tokens = body.max_tokens.ok_or_else(|| missing("max_tokens"))?;
    let messages = body.messages.ok_or_else(|| missing("messages"))?;
    let system = match body.system {
        None => Vec::new(),
        Some(s) => blocks(s)?
            .into_iter()
            .filter_map(|b| match b {
                ContentBlock::Text(t) => Some(SystemBlock::Text(t)),
                _ => None,
            })
            .collect(),
    };
    let messages = messages
        .into_iter()
        .map(|m| {
            Ok(Message {
                role: m.role,
                content: blocks(m.content)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let tool_choice = match body.tool_choice {
        None | Some(AnthropicToolChoice::Auto) => Some(ToolChoice::auto()),
        Some(AnthropicToolChoice::Any) => Some(ToolChoice::any()),
        Some(AnthropicToolChoice::Tool { name }) => Some(ToolChoice::tool(name)),
        Some(AnthropicToolChoice::None) => None,
    };
    let tool_config = if body.tools.is_empty() || tool_choice.is_none() {
        None
    } else {
        Some(ToolConfig {
            tools: body
                .tools
                .into_iter()
                .map(|t| Tool::ToolSpec(ToolSpec::new(t.name, t.description, t.input_schema)))
                .collect(),
            tool_choice,
        })
    };
    Ok(Request {
        messages,
        system,
        inference_config: Some(InferenceConfig {
            max_tokens: Some(max_tokens),
            temperature: body.temperature,
            top_p: body.top_p,
            stop_sequences: body.stop_sequences,
        }),
        tool_config,
        ..Request::default()
    })
}

fn blocks(content: TextOrBlocks) -> Result<Vec<ContentBlock>, String> {
    let blocks = match content {
        TextOrBlocks::Text(t) => return Ok(vec![ContentBlock::Text(t)]),
        TextOrBlocks::Blocks(b) => b,
    };
    blocks.iter().map(block).collect()
}

fn block(value: &Value) -> Result<ContentBlock, String> {
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    match kind {
        "text" => text("text")
            .map(ContentBlock::Text)
            .ok_or_else(|| "Malformed input request: a text block needs `text`".to_string()),
        "tool_use" => match (text("id"), text("name")) {
            (Some(id), Some(name)) => Ok(ContentBlock::ToolUse(ToolUseBlock {
                tool_use_id: id,
                name,
                input: value.get("input").cloned().unwrap_or_else(|| json!({})),
            })),
            _ => Err("Malformed input request: a tool_use block needs `id` and `name`".to_string()),
        },
        "tool_result" => {
            let Some(id) = text("tool_use_id") else {
                return Err(
                    "Malformed input request: a tool_result block needs `tool_use_id`".to_string(),
                );
            };
            let content = match value.get("content") {
                None => Vec::new(),
                Some(Value::String(s)) => vec![ToolResultContent::Text(s.clone())],
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.get("text").and_then(Value::as_str))
                    .map(|t| ToolResultContent::Text(t.to_string()))
                    .collect(),
                Some(other) => vec![ToolResultContent::Json(other.clone())],
            };
            let error = value.get("is_error").and_then(Value::as_bool) == Some(true);
            Ok(ContentBlock::ToolResult(ToolResultBlock {
                tool_use_id: id,
                content,
                status: error.then_some(ToolResultStatus::Error),
            }))
        }
        "image" => image(value),
        "document" => document(value),
        other => Err(format!(
            "Malformed input request: content blocks of type `{other}` are not read by the emulator"
        )),
    }
}

/// A block's `source`: its `type`, `media_type` and `data`.
fn source(value: &Value) -> Result<(&str, &str, &str), String> {
    let source = value.get("source");
    let field = |key: &str| {
        source
            .and_then(|s| s.get(key))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("Malformed input request: a source needs `{key}`"))
    };
    Ok((field("type")?, field("media_type")?, field("data")?))
}

fn base64(data: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("Malformed input request: source data is not base64: {e}"))
}

/// An `image` block with a base64 source.
fn image(value: &Value) -> Result<ContentBlock, String> {
    let (kind, media_type, data) = source(value)?;
    let format = match (kind, media_type) {
        ("base64", "image/png") => ImageFormat::Png,
        ("base64", "image/jpeg") => ImageFormat::Jpeg,
        ("base64", "image/gif") => ImageFormat::Gif,
        ("base64", "image/webp") => ImageFormat::Webp,
        _ => {
            return Err(format!(
                "Malformed input request: an image source of type `{kind}` and media type `{media_type}`"
            ));
        }
    };
    Ok(ContentBlock::Image(ImageBlock {
        format,
        source: ImageSource::Bytes(base64(data)?),
    }))
}

/// A `document` block: a base64 PDF, or plain text.
fn document(value: &Value) -> Result<ContentBlock, String> {
    let (kind, media_type, data) = source(value)?;
    let name = value
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("document")
        .to_string();
    let (format, source) = match (kind, media_type) {
        ("base64", "application/pdf") => {
            (DocumentFormat::Pdf, DocumentSource::Bytes(base64(data)?))
        }
        ("text", "text/plain") => (DocumentFormat::Txt, DocumentSource::Text(data.to_string())),
        _ => {
            return Err(format!(
                "Malformed input request: a document source of type `{kind}` and media type `{media_type}`"
            ));
        }
    };
    Ok(ContentBlock::Document(DocumentBlock {
        format,
        name,
        source,
    }))
}

/// The InvokeModel response body Anthropic models give: `content` blocks of
/// `text` and `tool_use`, `stop_reason`, `usage`.
pub(crate) fn response(model_id: &str, record_seed: &str, response: &Response) -> Value {
    let content: Vec<Value> = response
        .output
        .message
        .content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text(t) => Some(json!({ "type": "text", "text": t })),
            ContentBlock::ToolUse(t) => Some(json!({
                "type": "tool_use",
                "id": t.tool_use_id.replacen("tooluse_", "toolu_bdrk_", 1),
                "name": t.name,
                "input": t.input,
            })),
            _ => None,
        })
        .collect();
    let stop_reason = match &response.stop_reason {
        StopReason::EndTurn => "end_turn",
        StopReason::ToolUse => "tool_use",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence => "stop_sequence",
        other => other.as_str(),
    };
    json!({
        "id": format!("msg_bdrk_{record_seed}"),
        "type": "message",
        "role": "assistant",
        "model": model_id,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forced_tool_body_becomes_a_forced_tool_request() {
        let body = json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 256,
            "system": "You classify.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Classify this"}]}],
            "tools": [{"name": "Answer", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "Answer"},
        });
        let request = request(&body).unwrap();
        assert_eq!(
            request.forced_tool().map(|t| t.name.as_str()),
            Some("Answer")
        );
        assert!(request.prompt_text().contains("You classify."));
        assert_eq!(request.last_user_text().as_deref(), Some("Classify this"));
    }

    #[test]
    fn a_body_without_required_keys_is_malformed() {
        let err = request(&json!({"anthropic_version": "x", "messages": []})).unwrap_err();
        assert!(err.contains("max_tokens"), "{err}");
        let err = request(&json!({"max_tokens": 5, "messages": []})).unwrap_err();
        assert!(err.contains("anthropic_version"), "{err}");
        let err = request(&json!({
            "anthropic_version": "x", "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "image"}]}],
        }))
        .unwrap_err();
        assert!(err.contains("source"), "{err}");
        let err = request(&json!({
            "anthropic_version": "x", "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "audio"}]}],
        }))
        .unwrap_err();
        assert!(err.contains("audio"), "{err}");
    }

    #[test]
    fn images_and_documents_are_read_and_odd_sources_refused() {
        let body = |block: Value| {
            json!({
                "anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
                "messages": [{"role": "user", "content": [block, {"type": "text", "text": "Read it"}]}],
            })
        };
        let read = request(&body(json!({
            "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAEC"},
        })))
        .unwrap();
        assert_eq!(
            read.messages[0].content[0],
            ContentBlock::Image(ImageBlock {
                format: ImageFormat::Png,
                source: ImageSource::Bytes(vec![0, 1, 2]),
            })
        );
        let read = request(&body(json!({
            "type": "document", "title": "scan",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERg=="},
        })))
        .unwrap();
        assert_eq!(
            read.messages[0].content[0],
            ContentBlock::Document(DocumentBlock {
                format: DocumentFormat::Pdf,
                name: "scan".into(),
                source: DocumentSource::Bytes(b"%PDF".to_vec()),
            })
        );
        let read = request(&body(json!({
            "type": "document", "title": "note",
            "source": {"type": "text", "media_type": "text/plain", "data": "hello"},
        })))
        .unwrap();
        assert!(matches!(
            &read.messages[0].content[0],
            ContentBlock::Document(d) if d.source == DocumentSource::Text("hello".into())
        ));
        for odd in [
            json!({"type": "image", "source": {"type": "url", "media_type": "image/png", "data": "x"}}),
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": "AAEC"}}),
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not base64!"}}),
            json!({"type": "document", "source": {"type": "base64", "media_type": "text/csv", "data": "AAEC"}}),
        ] {
            assert!(request(&body(odd.clone())).is_err(), "{odd}");
        }
    }
}
