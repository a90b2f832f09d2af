//! What the emulator answers to one parsed Converse request: the default
//! behaviour (echo the last user text; for a forced tool, JSON satisfying
//! the tool's schema), scripted answers, and plausible usage figures. No
//! HTTP here; `mod.rs` turns the outcome into a response.

use serde_json::Value;

use super::schema::sample;
use super::script::{Answer, ScriptedError, default_message};
use crate::converse::{
    ContentBlock, DocumentSource, ImageSource, Message, Metrics, Output, Request, Response,
    ServiceErrorKind, StopReason, ToolChoice, ToolResultContent, ToolUseBlock, Usage,
};

/// Rough characters per token, the rule of thumb for English text.
const CHARS_PER_TOKEN: usize = 4;
/// What an image costs, about what a small image costs on common models.
const IMAGE_TOKENS: usize = 1_200;

/// Checks Bedrock would also make before calling a model; the messages
/// mirror the service's.
pub(crate) fn validate(request: &Request) -> Result<(), ScriptedError> {
    let refuse = |message: String| ScriptedError {
        kind: ServiceErrorKind::Validation,
        message,
        retry_after_secs: None,
    };
    match request.messages.first() {
        None => return Err(refuse("The messages field is required.".to_string())),
        Some(m) if m.role != crate::converse::Role::User => {
            return Err(refuse(
                "A conversation must start with a user message. Try again with a conversation that starts with a user message.".to_string(),
            ));
        }
        Some(_) => {}
    }
    if let Some(config) = &request.tool_config {
        if config.tools.is_empty() {
            return Err(refuse(
                "The toolConfig field must be defined when using toolUse and toolResult content blocks.".to_string(),
            ));
        }
        if let Some(ToolChoice::Tool(t)) = &config.tool_choice
            && config.tool(&t.name).is_none()
        {
            return Err(refuse(format!(
                "The tool {} specified in toolChoice was not found in toolConfig.tools.",
                t.name
            )));
        }
    }
    Ok(())
}

/// The response for a request that is to succeed with `answer`.
pub(crate) fn respond(
    model_id: &str,
    request: &Request,
    answer: &Answer,
    latency_ms: u64,
) -> Result<Response, ScriptedError> {
    let seed = request_seed(model_id, request);
    let (content, stop_reason) = match answer {
        Answer::Error(e) => return Err(e.clone()),
        Answer::Text(text) => limit_text(request, text.clone()),
        Answer::Tool(input) => (
            vec![tool_use(request, tool_name(request), input.clone(), seed)],
            StopReason::ToolUse,
        ),
        Answer::NamedTool { name, input } => {
            let Some(spec) = request.tool_config.as_ref().and_then(|c| c.tool(name)) else {
                // A model cannot call a tool it was not offered: the
                // script and the request disagree, so say it loudly.
                return Err(scripted(
                    ServiceErrorKind::Validation,
                    Some(&format!(
                        "The script answers with tool {name}, which the request does not offer."
                    )),
                ));
            };
            let input = input.clone().unwrap_or_else(|| sample(spec.schema(), seed));
            (
                vec![tool_use(request, name.clone(), input, seed)],
                StopReason::ToolUse,
            )
        }
        // A job-failing rule only fails batch jobs; a call is answered.
        Answer::Default | Answer::FailJob(_) => match request.forced_tool() {
            Some(spec) => {
                let input = sample(spec.schema(), seed);
                (
                    vec![tool_use(request, spec.name.clone(), input, seed)],
                    StopReason::ToolUse,
                )
            }
            None => {
                let echo = request
                    .last_user_text()
                    .unwrap_or_else(|| "(no text in the last user message)".to_string());
                limit_text(request, echo)
            }
        },
    };
    let output_chars: usize = content
        .iter()
        .map(|b| match b {
            ContentBlock::Text(t) => t.chars().count(),
            ContentBlock::ToolUse(t) => t.input.to_string().len() + t.name.len(),
            _ => 0,
        })
        .sum();
    let usage = Usage::new(
        tokens(input_chars(request)) + image_tokens(request),
        tokens(output_chars).max(1),
    );
    Ok(Response {
        output: Output {
            message: Message::assistant(content),
        },
        stop_reason,
        usage,
        metrics: Metrics { latency_ms },
        additional_model_response_fields: None,
    })
}

/// The error for a scripted failure, with the service's wording when the
/// script gave none.
pub(crate) fn scripted(kind: ServiceErrorKind, message: Option<&str>) -> ScriptedError {
    ScriptedError {
        kind,
        message: message.unwrap_or(default_message(kind)).to_string(),
        retry_after_secs: None,
    }
}

/// The tool a scripted tool answer calls: the forced one, else the first
/// offered, else a generic name.
fn tool_name(request: &Request) -> String {
    if let Some(spec) = request.forced_tool() {
        return spec.name.clone();
    }
    request
        .tool_config
        .as_ref()
        .and_then(|c| c.tools.first())
        .map(|crate::converse::Tool::ToolSpec(s)| s.name.clone())
        .unwrap_or_else(|| "answer".to_string())
}

fn tool_use(request: &Request, name: String, input: Value, seed: u64) -> ContentBlock {
    // Ids look like the service's (`tooluse_` + 22 characters) and differ
    // per conversation turn.
    let turn = request.messages.len() as u64;
    let id = format!("tooluse_{:016x}{:06x}", seed, turn & 0xff_ffff);
    ContentBlock::ToolUse(ToolUseBlock {
        tool_use_id: id,
        name,
        input,
    })
}

/// Applies stop sequences and `maxTokens` to a text answer, as a model would.
fn limit_text(request: &Request, mut text: String) -> (Vec<ContentBlock>, StopReason) {
    let mut reason = StopReason::EndTurn;
    if let Some(config) = &request.inference_config {
        if let Some(cut) = config
            .stop_sequences
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            text.truncate(cut);
            reason = StopReason::StopSequence;
        }
        if let Some(max) = config.max_tokens {
            let max_chars = (max as usize).saturating_mul(CHARS_PER_TOKEN);
            if text.chars().count() > max_chars {
                text = text.chars().take(max_chars).collect();
                reason = StopReason::MaxTokens;
            }
        }
    }
    (vec![ContentBlock::Text(text)], reason)
}

fn tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(CHARS_PER_TOKEN)).unwrap_or(u32::MAX)
}

/// Characters the model reads: system, every message's text, tool JSON and
/// text documents, and the tool definitions.
fn input_chars(request: &Request) -> usize {
    let system: usize = request
        .system
        .iter()
        .map(|crate::converse::SystemBlock::Text(t)| t.chars().count())
        .sum();
    let messages: usize = request
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .map(|b| match b {
            ContentBlock::Text(t) => t.chars().count(),
            ContentBlock::Document(d) => match &d.source {
                DocumentSource::Text(t) => t.chars().count(),
                // Extracted text is a fraction of a binary document's size.
                DocumentSource::Bytes(b) => b.len() / 3,
            },
            ContentBlock::ToolUse(t) => t.input.to_string().len(),
            ContentBlock::ToolResult(r) => r
                .content
                .iter()
                .map(|c| match c {
                    ToolResultContent::Json(v) => v.to_string().len(),
                    ToolResultContent::Text(t) => t.chars().count(),
                    _ => 0,
                })
                .sum(),
            ContentBlock::Image(_) => 0,
        })
        .sum();
    let tools = request
        .tool_config
        .as_ref()
        .map_or(0, |c| serde_json::to_string(c).map_or(0, |s| s.len()));
    system + messages + tools
}

fn image_tokens(request: &Request) -> u32 {
    let images = request
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .filter(
            |b| matches!(b, ContentBlock::Image(i) if matches!(i.source, ImageSource::Bytes(_))),
        )
        .count();
    u32::try_from(images * IMAGE_TOKENS).unwrap_or(u32::MAX)
}

/// The seed of a request's default answer: a hash of the model id and the
/// whole request as JSON (tool schemas, documents, earlier turns and
/// inference settings included, not only its text), so the same request
/// always gets the same answer and replaying a recorded request against
/// the emulator reproduces it. serde_json's maps are ordered by key here
/// (no `preserve_order`), so the JSON does not depend on the wire's key
/// order.
fn request_seed(model_id: &str, request: &Request) -> u64 {
    let json = serde_json::to_vec(request).unwrap_or_default();
    let mut bytes = Vec::with_capacity(model_id.len() + 1 + json.len());
    bytes.extend_from_slice(model_id.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&json);
    fnv1a(&bytes)
}

/// FNV-1a: a stable hash, so the same request always gets the same answer
/// (std's hasher makes no such promise across releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::converse::{InferenceConfig, ToolConfig, ToolSpec};
    use serde_json::json;

    #[test]
    fn echo_with_plausible_usage() {
        let request = Request::user_text("Say hello to the ledger team");
        let response = respond("m", &request, &Answer::Default, 5).unwrap();
        assert_eq!(response.text(), "Say hello to the ledger team");
        assert_eq!(response.stop_reason, StopReason::EndTurn);
        assert_eq!(response.usage.input_tokens, 7);
        assert_eq!(response.usage.output_tokens, 7);
        assert_eq!(response.usage.total_tokens, 14);
    }

    #[test]
    fn max_tokens_and_stop_sequences_cut_the_echo() {
        let mut request = Request::user_text("one two three END four");
        request.inference_config = Some(InferenceConfig {
            stop_sequences: vec!["END".into()],
            ..InferenceConfig::default()
        });
        let response = respond("m", &request, &Answer::Default, 0).unwrap();
        assert_eq!(response.text(), "one two three ");
        assert_eq!(response.stop_reason, StopReason::StopSequence);

        request.inference_config = Some(InferenceConfig {
            max_tokens: Some(2),
            ..InferenceConfig::default()
        });
        let response = respond("m", &request, &Answer::Default, 0).unwrap();
        assert_eq!(response.text(), "one two ");
        assert_eq!(response.stop_reason, StopReason::MaxTokens);
    }

    #[test]
    fn forced_tools_get_schema_json_and_missing_tools_are_refused() {
        let mut request = Request::user_text("classify");
        request.tool_config = Some(ToolConfig::forced(ToolSpec::new(
            "classify",
            None,
            json!({"type": "object", "required": ["c"], "properties": {"c": {"enum": ["A", "B"]}}}),
        )));
        let response = respond("m", &request, &Answer::Default, 0).unwrap();
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        let tool = response.first_tool_use().unwrap();
        assert_eq!(tool.name, "classify");
        assert!(tool.tool_use_id.starts_with("tooluse_"));
        assert!(["A", "B"].contains(&tool.input["c"].as_str().unwrap()));

        if let Some(config) = request.tool_config.as_mut() {
            config.tool_choice = Some(ToolChoice::tool("other"));
        }
        assert_eq!(
            validate(&request).unwrap_err().kind,
            ServiceErrorKind::Validation
        );
    }

    #[test]
    fn a_named_tool_is_called_with_schema_json_unless_given() {
        let mut request = Request::user_text("triage");
        request.tool_config = Some(ToolConfig {
            tools: vec![
                crate::converse::Tool::ToolSpec(ToolSpec::new(
                    "respond",
                    None,
                    json!({"type": "object", "required": ["a"], "properties": {"a": {"const": 1}}}),
                )),
                crate::converse::Tool::ToolSpec(ToolSpec::new(
                    "Rejected",
                    None,
                    json!({"type": "object", "required": ["why"], "properties": {"why": {"enum": ["Spam"]}}}),
                )),
            ],
            tool_choice: Some(ToolChoice::any()),
        });
        // Unscripted, `any` calls the first tool: the response's.
        let default = respond("m", &request, &Answer::Default, 0).unwrap();
        assert_eq!(default.first_tool_use().unwrap().name, "respond");
        let named = Answer::NamedTool {
            name: "Rejected".into(),
            input: None,
        };
        let tool = respond("m", &request, &named, 0).unwrap();
        let used = tool.first_tool_use().unwrap();
        assert_eq!(
            (used.name.as_str(), &used.input),
            ("Rejected", &json!({"why": "Spam"}))
        );
        let given = Answer::NamedTool {
            name: "Rejected".into(),
            input: Some(json!({"why": "Other"})),
        };
        let tool = respond("m", &request, &given, 0).unwrap();
        assert_eq!(
            tool.first_tool_use().unwrap().input,
            json!({"why": "Other"})
        );
        let missing = Answer::NamedTool {
            name: "Nope".into(),
            input: None,
        };
        let err = respond("m", &request, &missing, 0).unwrap_err();
        assert_eq!(err.kind, ServiceErrorKind::Validation);
        assert!(err.message.contains("Nope"), "{}", err.message);
    }

    fn forced(schema: Value) -> Request {
        let mut request = Request::user_text("classify");
        request.tool_config = Some(ToolConfig::forced(ToolSpec::new("classify", None, schema)));
        request
    }

    #[test]
    fn default_answers_are_a_function_of_the_whole_request() {
        let schema = json!({"type": "object", "required": ["n"],
            "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 1000000}}});
        let answer = |request: &Request| {
            let tool = respond("m", request, &Answer::Default, 0).unwrap();
            let used = tool.first_tool_use().unwrap().clone();
            (used.tool_use_id, used.input)
        };
        // The same request (parsed again from its wire form, keys in another
        // order) gets the same answer, every time.
        let request = forced(schema.clone());
        let rewired: Request =
            serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
        assert_eq!(answer(&request), answer(&rewired));
        let mut reordered = schema.clone();
        reordered["properties"]["n"] = json!({"maximum": 1000000, "minimum": 0, "type": "integer"});
        assert_eq!(answer(&request), answer(&forced(reordered)));
        // Requests with the same text that differ elsewhere (a tool's
        // description, an inference setting) are different requests.
        let mut described = forced(schema.clone());
        if let Some(crate::converse::Tool::ToolSpec(spec)) = described
            .tool_config
            .as_mut()
            .and_then(|c| c.tools.first_mut())
        {
            spec.description = Some("Classify the ticket.".into());
        }
        let mut tuned = forced(schema);
        tuned.inference_config = Some(InferenceConfig {
            temperature: Some(0.5),
            ..InferenceConfig::default()
        });
        assert_ne!(answer(&request).0, answer(&described).0);
        assert_ne!(answer(&request).0, answer(&tuned).0);
        assert_ne!(answer(&described).0, answer(&tuned).0);
    }

    #[test]
    fn conversations_must_start_with_a_user() {
        let request = Request {
            messages: vec![Message::assistant(vec![ContentBlock::text("hi")])],
            ..Request::default()
        };
        assert!(validate(&request).is_err());
        assert!(validate(&Request::default()).is_err());
    }
}
