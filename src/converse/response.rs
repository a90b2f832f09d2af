//! The Converse response: the assistant's message, why it stopped, token
//! usage and latency, plus the two things callers want from it — the text,
//! and the input of the first tool call.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request::{ContentBlock, Message, ToolUseBlock};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub output: Output,
    pub stop_reason: StopReason,
    pub usage: Usage,
    #[serde(default)]
    pub metrics: Metrics,
    /// Model-specific fields asked for with
    /// `additionalModelResponseFieldPaths`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_response_fields: Option<Value>,
}

impl Response {
    /// The assistant's text blocks, joined without separator (models split
    /// one answer across blocks, so joining must not add characters).
    pub fn text(&self) -> String {
        self.output.message.texts().collect()
    }

    /// The first tool call in the answer, if any.
    pub fn first_tool_use(&self) -> Option<&ToolUseBlock> {
        self.output.message.content.iter().find_map(|b| match b {
            ContentBlock::ToolUse(t) => Some(t),
            _ => None,
        })
    }

    /// The JSON input of the first tool call: structured output.
    pub fn first_tool_use_input(&self) -> Option<&Value> {
        self.first_tool_use().map(|t| &t.input)
    }
}

/// On the wire a union with the single member `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub message: Message,
}

/// Why the model stopped. Unknown reasons (new ones appear over time) are
/// kept verbatim rather than refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    StopSequence,
    GuardrailIntervened,
    ContentFiltered,
    MalformedModelOutput,
    MalformedToolUse,
    ModelContextWindowExceeded,
    Other(String),
}

impl StopReason {
    pub fn as_str(&self) -> &str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::ToolUse => "tool_use",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopSequence => "stop_sequence",
            StopReason::GuardrailIntervened => "guardrail_intervened",
            StopReason::ContentFiltered => "content_filtered",
            StopReason::MalformedModelOutput => "malformed_model_output",
            StopReason::MalformedToolUse => "malformed_tool_use",
            StopReason::ModelContextWindowExceeded => "model_context_window_exceeded",
            StopReason::Other(s) => s,
        }
    }
}

impl From<&str> for StopReason {
    fn from(s: &str) -> Self {
        match s {
            "end_turn" => StopReason::EndTurn,
            "tool_use" => StopReason::ToolUse,
            "max_tokens" => StopReason::MaxTokens,
            "stop_sequence" => StopReason::StopSequence,
            "guardrail_intervened" => StopReason::GuardrailIntervened,
            "content_filtered" => StopReason::ContentFiltered,
            "malformed_model_output" => StopReason::MalformedModelOutput,
            "malformed_tool_use" => StopReason::MalformedToolUse,
            "model_context_window_exceeded" => StopReason::ModelContextWindowExceeded,
            other => StopReason::Other(other.to_string()),
        }
    }
}

impl From<String> for StopReason {
    fn from(s: String) -> Self {
        StopReason::from(s.as_str())
    }
}

impl From<StopReason> for String {
    fn from(r: StopReason) -> Self {
        r.as_str().to_string()
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u32>,
}

impl Usage {
    /// Usage with `totalTokens` the sum of the two, as Bedrock reports it.
    pub fn new(input_tokens: u32, output_tokens: u32) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens.saturating_add(output_tokens),
            cache_read_input_tokens: None,
            cache_write_input_tokens: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub latency_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn response_round_trips_and_exposes_text_and_tool_input() {
        let wire = json!({
            "output": {"message": {"role": "assistant", "content": [
                {"text": "Here "}, {"text": "it is"},
                {"toolUse": {"toolUseId": "t1", "name": "answer", "input": {"category": "A"}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
            "metrics": {"latencyMs": 42}
        });
        let response: Response = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(response.text(), "Here it is");
        assert_eq!(
            response.first_tool_use_input(),
            Some(&json!({"category": "A"}))
        );
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(serde_json::to_value(&response).unwrap(), wire);
    }

    #[test]
    fn unknown_stop_reasons_are_kept() {
        let reason: StopReason = serde_json::from_value(json!("brand_new")).unwrap();
        assert_eq!(reason, StopReason::Other("brand_new".into()));
        assert_eq!(serde_json::to_value(reason).unwrap(), json!("brand_new"));
    }
}
