//! The Converse request: messages, system prompt, inference settings, tools
//! and guardrails, shaped exactly like the wire JSON so a request can be
//! written to a golden file or parsed by the emulator without a second model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One Converse call's body. The model id travels separately (it is part of
/// the URL on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail_config: Option<GuardrailConfig>,
    /// Model-specific parameters passed through untouched (e.g. `top_k`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Value>,
    /// Free-form tags Bedrock records with the invocation (e.g. tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_metadata: Option<BTreeMap<String, String>>,
}

impl Request {
    /// A request holding one user message with one text block.
    pub fn user_text(text: impl Into<String>) -> Self {
        Request {
            messages: vec![Message::user(vec![ContentBlock::text(text)])],
            ..Request::default()
        }
    }

    /// The tool the model is forced to call: named by `toolChoice.tool`, or
    /// the first tool when `toolChoice.any` is set. `None` when the model may
    /// answer in text (`auto` or no choice), or when the named tool is not
    /// among the tools.
    pub fn forced_tool(&self) -> Option<&ToolSpec> {
        let config = self.tool_config.as_ref()?;
        match config.tool_choice.as_ref()? {
            ToolChoice::Tool(SpecificTool { name }) => config.tool(name),
            ToolChoice::Any(_) => config.tools.iter().map(|Tool::ToolSpec(s)| s).next(),
            ToolChoice::Auto(_) => None,
        }
    }

    /// The text a human would call "the prompt": every system text, then
    /// every text block of every user message, one per line. Used to match
    /// scripted answers and to estimate token counts.
    pub fn prompt_text(&self) -> String {
        let system = self.system.iter().map(|SystemBlock::Text(t)| t.as_str());
        let user = self
            .messages
            .iter()
            .filter(|m| m.role == Role::User)
            .flat_map(|m| m.texts());
        system.chain(user).collect::<Vec<_>>().join("\n")
    }

    /// The text blocks of the last user message, joined by newlines.
    pub fn last_user_text(&self) -> Option<String> {
        let message = self.messages.iter().rev().find(|m| m.role == Role::User)?;
        let texts: Vec<&str> = message.texts().collect();
        if texts.is_empty() {
            None
        } else {
            Some(texts.join("\n"))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentBlock>,
}

impl Message {
    pub fn user(content: Vec<ContentBlock>) -> Self {
        Message {
            role: Role::User,
            content,
        }
    }

    pub fn assistant(content: Vec<ContentBlock>) -> Self {
        Message {
            role: Role::Assistant,
            content,
        }
    }

    /// The message's text blocks, in order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.content.iter().filter_map(|b| match b {
            ContentBlock::Text(t) => Some(t.as_str()),
            _ => None,
        })
    }
}

/// One block of a message. On the wire a union: an object with exactly one
/// of these keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock {
    Text(String),
    Image(ImageBlock),
    Document(DocumentBlock),
    ToolUse(ToolUseBlock),
    ToolResult(ToolResultBlock),
}

impl ContentBlock {
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text(text.into())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageBlock {
    pub format: ImageFormat,
    pub source: ImageSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Png,
    Jpeg,
    Gif,
    Webp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageSource {
    /// Raw image bytes (base64 on the wire).
    Bytes(#[serde(with = "super::base64_bytes")] Vec<u8>),
}

/// A document attached to a message. Bedrock requires `name` (letters,
/// digits, single spaces, hyphens, parentheses, square brackets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentBlock {
    pub format: DocumentFormat,
    pub name: String,
    pub source: DocumentSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentFormat {
    Pdf,
    Csv,
    Doc,
    Docx,
    Xls,
    Xlsx,
    Html,
    Txt,
    Md,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DocumentSource {
    /// Raw document bytes (base64 on the wire).
    Bytes(#[serde(with = "super::base64_bytes")] Vec<u8>),
    /// Plain text, for text-like formats.
    Text(String),
}

/// The model asking to call a tool; `input` is the JSON it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock {
    pub tool_use_id: String,
    pub name: String,
    pub input: Value,
}

/// The result of a tool call, sent back in a user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock {
    pub tool_use_id: String,
    pub content: Vec<ToolResultContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ToolResultStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContent {
    Json(Value),
    Text(String),
    Image(ImageBlock),
    Document(DocumentBlock),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolResultStatus {
    Success,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemBlock {
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    pub tools: Vec<Tool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

impl ToolConfig {
    /// A config with one tool the model must call: how structured output is
    /// asked for.
    pub fn forced(spec: ToolSpec) -> Self {
        let name = spec.name.clone();
        ToolConfig {
            tools: vec![Tool::ToolSpec(spec)],
            tool_choice: Some(ToolChoice::tool(name)),
        }
    }

    /// The tool of that name, if offered.
    pub fn tool(&self, name: &str) -> Option<&ToolSpec> {
        self.tools
            .iter()
            .map(|Tool::ToolSpec(s)| s)
            .find(|s| s.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Tool {
    ToolSpec(ToolSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: ToolInputSchema,
}

impl ToolSpec {
    /// A tool whose input must satisfy `schema` (a JSON Schema object).
    pub fn new(name: impl Into<String>, description: Option<String>, schema: Value) -> Self {
        ToolSpec {
            name: name.into(),
            description,
            input_schema: ToolInputSchema::Json(schema),
        }
    }

    /// The JSON Schema the tool's input must satisfy.
    pub fn schema(&self) -> &Value {
        let ToolInputSchema::Json(schema) = &self.input_schema;
        schema
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolInputSchema {
    Json(Value),
}

/// How the model picks a tool. Serialises as `{"auto":{}}`, `{"any":{}}` or
/// `{"tool":{"name":...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice {
    Auto(EmptyObject),
    Any(EmptyObject),
    Tool(SpecificTool),
}

impl ToolChoice {
    pub fn auto() -> Self {
        ToolChoice::Auto(EmptyObject {})
    }

    pub fn any() -> Self {
        ToolChoice::Any(EmptyObject {})
    }

    pub fn tool(name: impl Into<String>) -> Self {
        ToolChoice::Tool(SpecificTool { name: name.into() })
    }
}

/// `{}` on the wire: the payload of the `auto` and `any` tool choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EmptyObject {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecificTool {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailConfig {
    pub guardrail_identifier: String,
    pub guardrail_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<GuardrailTrace>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailTrace {
    Enabled,
    Disabled,
    EnabledFull,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_request_matches_the_wire_json() {
        let wire = json!({
            "messages": [
                {"role": "user", "content": [
                    {"text": "Classify this"},
                    {"image": {"format": "png", "source": {"bytes": "AAEC"}}},
                    {"document": {"format": "pdf", "name": "scan", "source": {"bytes": "JVBERg=="}}}
                ]},
                {"role": "assistant", "content": [
                    {"toolUse": {"toolUseId": "t1", "name": "classify", "input": {"a": 1}}}
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"json": {"ok": true}}, {"text": "fine"}], "status": "success"}}
                ]}
            ],
            "system": [{"text": "You classify."}],
            "inferenceConfig": {"maxTokens": 512, "temperature": 0.0, "topP": 0.5, "stopSequences": ["END"]},
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "classify", "description": "d", "inputSchema": {"json": {"type": "object"}}}}],
                "toolChoice": {"tool": {"name": "classify"}}
            },
            "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1", "trace": "enabled_full"},
            "additionalModelRequestFields": {"top_k": 5},
            "requestMetadata": {"tenant": "acme"}
        });
        let request: Request = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(request.messages.len(), 3);
        assert!(matches!(
            &request.messages[0].content[1],
            ContentBlock::Image(ImageBlock { format: ImageFormat::Png, source: ImageSource::Bytes(b) }) if b == &[0, 1, 2]
        ));
        assert_eq!(
            request.forced_tool().map(|t| t.name.as_str()),
            Some("classify")
        );
        assert_eq!(serde_json::to_value(&request).unwrap(), wire);
    }

    #[test]
    fn tool_choices_serialise_as_single_key_objects() {
        assert_eq!(
            serde_json::to_value(ToolChoice::auto()).unwrap(),
            json!({"auto": {}})
        );
        assert_eq!(
            serde_json::to_value(ToolChoice::any()).unwrap(),
            json!({"any": {}})
        );
        assert_eq!(
            serde_json::to_value(ToolChoice::tool("x")).unwrap(),
            json!({"tool": {"name": "x"}})
        );
    }

    #[test]
    fn every_document_and_image_format_has_its_wire_name() {
        for (format, name) in [
            (DocumentFormat::Pdf, "pdf"),
            (DocumentFormat::Csv, "csv"),
            (DocumentFormat::Doc, "doc"),
            (DocumentFormat::Docx, "docx"),
            (DocumentFormat::Xls, "xls"),
            (DocumentFormat::Xlsx, "xlsx"),
            (DocumentFormat::Html, "html"),
            (DocumentFormat::Txt, "txt"),
            (DocumentFormat::Md, "md"),
        ] {
            assert_eq!(serde_json::to_value(format).unwrap(), json!(name));
        }
        for (format, name) in [
            (ImageFormat::Png, "png"),
            (ImageFormat::Jpeg, "jpeg"),
            (ImageFormat::Gif, "gif"),
            (ImageFormat::Webp, "webp"),
        ] {
            assert_eq!(serde_json::to_value(format).unwrap(), json!(name));
        }
    }

    #[test]
    fn prompt_text_joins_system_and_user_text() {
        let mut request = Request::user_text("hello");
        request.system.push(SystemBlock::Text("be brief".into()));
        request
            .messages
            .push(Message::assistant(vec![ContentBlock::text("hi")]));
        request
            .messages
            .push(Message::user(vec![ContentBlock::text("again")]));
        assert_eq!(request.prompt_text(), "be brief\nhello\nagain");
        assert_eq!(request.last_user_text().as_deref(), Some("again"));
    }

    #[test]
    fn bad_base64_is_an_error_not_a_panic() {
        let wire = json!({"messages": [{"role": "user", "content": [
            {"image": {"format": "png", "source": {"bytes": "!!"}}}]}]});
        assert!(serde_json::from_value::<Request>(wire).is_err());
    }
}
