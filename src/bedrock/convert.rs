//! Hand-written conversion between our Converse model and the SDK's types
//! (the SDK's are builders, not serde), including JSON values to and from
//! smithy `Document`s. Blocks the SDK can return but our model does not
//! carry (reasoning, citations, ...) are dropped from responses: callers use
//! text and tool input only.

use std::collections::HashMap;

use aws_sdk_bedrockruntime::operation::converse::ConverseOutput as SdkConverseOutput;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types as sdk;
use aws_smithy_types::{Document, Number};
use serde_json::Value;

use crate::converse::{
    ContentBlock, DocumentBlock, DocumentFormat, DocumentSource, GuardrailConfig, GuardrailTrace,
    ImageBlock, ImageFormat, ImageSource, InferenceConfig, Message, Metrics, ModelError, Output,
    Request, Response, Role, StopReason, SystemBlock, Tool, ToolChoice, ToolConfig,
    ToolResultBlock, ToolResultContent, ToolResultStatus, ToolUseBlock, Usage,
};

/// The pieces of a Converse call, in SDK types.
pub(super) struct SdkInput {
    pub(super) messages: Vec<sdk::Message>,
    pub(super) system: Option<Vec<sdk::SystemContentBlock>>,
    pub(super) inference_config: Option<sdk::InferenceConfiguration>,
    pub(super) tool_config: Option<sdk::ToolConfiguration>,
    pub(super) guardrail_config: Option<sdk::GuardrailConfiguration>,
    pub(super) additional_model_request_fields: Option<Document>,
    pub(super) request_metadata: Option<HashMap<String, String>>,
}

/// Builder errors mean a required field is missing, which our types rule
/// out; report them rather than panic all the same.
fn build_error(e: impl std::fmt::Display) -> ModelError {
    ModelError::Other {
        message: format!("building the Converse request: {e}"),
    }
}

pub(super) fn to_sdk(request: &Request) -> Result<SdkInput, ModelError> {
    let messages = request
        .messages
        .iter()
        .map(message_to_sdk)
        .collect::<Result<Vec<_>, _>>()?;
    let system = if request.system.is_empty() {
        None
    } else {
        Some(
            request
                .system
                .iter()
                .map(|SystemBlock::Text(t)| sdk::SystemContentBlock::Text(t.clone()))
                .collect(),
        )
    };
    Ok(SdkInput {
        messages,
        system,
        inference_config: request.inference_config.as_ref().map(inference_to_sdk),
        tool_config: request
            .tool_config
            .as_ref()
            .map(tool_config_to_sdk)
            .transpose()?,
        guardrail_config: request.guardrail_config.as_ref().map(guardrail_to_sdk),
        additional_model_request_fields: request
            .additional_model_request_fields
            .as_ref()
            .map(value_to_document),
        request_metadata: request
            .request_metadata
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
    })
}

fn message_to_sdk(message: &Message) -> Result<sdk::Message, ModelError> {
    let role = match message.role {
        Role::User => sdk::ConversationRole::User,
        Role::Assistant => sdk::ConversationRole::Assistant,
    };
    let content = message
        .content
        .iter()
        .map(block_to_sdk)
        .collect::<Result<Vec<_>, _>>()?;
    sdk::Message::builder()
        .role(role)
        .set_content(Some(content))
        .build()
        .map_err(build_error)
}

fn block_to_sdk(block: &ContentBlock) -> Result<sdk::ContentBlock, ModelError> {
    Ok(match block {
        ContentBlock::Text(t) => sdk::ContentBlock::Text(t.clone()),
        ContentBlock::Image(i) => sdk::ContentBlock::Image(image_to_sdk(i)?),
        ContentBlock::Document(d) => sdk::ContentBlock::Document(document_to_sdk(d)?),
        ContentBlock::ToolUse(t) => sdk::ContentBlock::ToolUse(
            sdk::ToolUseBlock::builder()
                .tool_use_id(&t.tool_use_id)
                .name(&t.name)
                .input(value_to_document(&t.input))
                .build()
                .map_err(build_error)?,
        ),
        ContentBlock::ToolResult(r) => sdk::ContentBlock::ToolResult(tool_result_to_sdk(r)?),
    })
}

fn image_to_sdk(image: &ImageBlock) -> Result<sdk::ImageBlock, ModelError> {
    let format = match image.format {
        ImageFormat::Png => sdk::ImageFormat::Png,
        ImageFormat::Jpeg => sdk::ImageFormat::Jpeg,
        ImageFormat::Gif => sdk::ImageFormat::Gif,
        ImageFormat::Webp => sdk::ImageFormat::Webp,
    };
    let ImageSource::Bytes(bytes) = &image.source;
    sdk::ImageBlock::builder()
        .format(format)
        .source(sdk::ImageSource::Bytes(Blob::new(bytes.clone())))
        .build()
        .map_err(build_error)
}

fn document_to_sdk(document: &DocumentBlock) -> Result<sdk::DocumentBlock, ModelError> {
    let format = match document.format {
        DocumentFormat::Pdf => sdk::DocumentFormat::Pdf,
        DocumentFormat::Csv => sdk::DocumentFormat::Csv,
        DocumentFormat::Doc => sdk::DocumentFormat::Doc,
        DocumentFormat::Docx => sdk::DocumentFormat::Docx,
        DocumentFormat::Xls => sdk::DocumentFormat::Xls,
        DocumentFormat::Xlsx => sdk::DocumentFormat::Xlsx,
        DocumentFormat::Html => sdk::DocumentFormat::Html,
        DocumentFormat::Txt => sdk::DocumentFormat::Txt,
        DocumentFormat::Md => sdk::DocumentFormat::Md,
    };
    let source = match &document.source {
        DocumentSource::Bytes(b) => sdk::DocumentSource::Bytes(Blob::new(b.clone())),
        DocumentSource::Text(t) => sdk::DocumentSource::Text(t.clone()),
    };
    sdk::DocumentBlock::builder()
        .format(format)
        .name(&document.name)
        .source(source)
        .build()
        .map_err(build_error)
}

fn tool_result_to_sdk(result: &ToolResultBlock) -> Result<sdk::ToolResultBlock, ModelError> {
    let content = result
        .content
        .iter()
        .map(|c| {
            Ok(match c {
                ToolResultContent::Json(v) => {
                    sdk::ToolResultContentBlock::Json(value_to_document(v))
                }
                ToolResultContent::Text(t) => sdk::ToolResultContentBlock::Text(t.clone()),
                ToolResultContent::Image(i) => sdk::ToolResultContentBlock::Image(image_to_sdk(i)?),
                ToolResultContent::Document(d) => {
                    sdk::ToolResultContentBlock::Document(document_to_sdk(d)?)
                }
            })
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    let status = result.status.map(|s| match s {
        ToolResultStatus::Success => sdk::ToolResultStatus::Success,
        ToolResultStatus::Error => sdk::ToolResultStatus::Error,
    });
    sdk::ToolResultBlock::builder()
        .tool_use_id(&result.tool_use_id)
        .set_content(Some(content))
        .set_status(status)
        .build()
        .map_err(build_error)
}

fn inference_to_sdk(config: &InferenceConfig) -> sdk::InferenceConfiguration {
    let max_tokens = config
        .max_tokens
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let stop_sequences = if config.stop_sequences.is_empty() {
        None
    } else {
        Some(config.stop_sequences.clone())
    };
    sdk::InferenceConfiguration::builder()
        .set_max_tokens(max_tokens)
        .set_temperature(config.temperature)
        .set_top_p(config.top_p)
        .set_stop_sequences(stop_sequences)
        .build()
}

fn tool_config_to_sdk(config: &ToolConfig) -> Result<sdk::ToolConfiguration, ModelError> {
    let tools = config
        .tools
        .iter()
        .map(|Tool::ToolSpec(spec)| {
            sdk::ToolSpecification::builder()
                .name(&spec.name)
                .set_description(spec.description.clone())
                .input_schema(sdk::ToolInputSchema::Json(value_to_document(spec.schema())))
                .build()
                .map(sdk::Tool::ToolSpec)
                .map_err(build_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let choice = match &config.tool_choice {
        None => None,
        Some(ToolChoice::Auto(_)) => Some(sdk::ToolChoice::Auto(
            sdk::AutoToolChoice::builder().build(),
        )),
        Some(ToolChoice::Any(_)) => {
            Some(sdk::ToolChoice::Any(sdk::AnyToolChoice::builder().build()))
        }
        Some(ToolChoice::Tool(t)) => Some(sdk::ToolChoice::Tool(
            sdk::SpecificToolChoice::builder()
                .name(&t.name)
                .build()
                .map_err(build_error)?,
        )),
    };
    sdk::ToolConfiguration::builder()
        .set_tools(Some(tools))
        .set_tool_choice(choice)
        .build()
        .map_err(build_error)
}

fn guardrail_to_sdk(config: &GuardrailConfig) -> sdk::GuardrailConfiguration {
    let trace = config.trace.map(|t| match t {
        GuardrailTrace::Enabled => sdk::GuardrailTrace::Enabled,
        GuardrailTrace::Disabled => sdk::GuardrailTrace::Disabled,
        GuardrailTrace::EnabledFull => sdk::GuardrailTrace::EnabledFull,
    });
    sdk::GuardrailConfiguration::builder()
        .guardrail_identifier(&config.guardrail_identifier)
        .guardrail_version(&config.guardrail_version)
        .set_trace(trace)
        .build()
}

/// `raw`, when given, is the answer's body as it came over the wire: tool
/// inputs are taken from it, numbers as written.
pub(super) fn from_sdk(
    output: SdkConverseOutput,
    raw: Option<&[u8]>,
) -> Result<Response, ModelError> {
    let message = match output.output {
        Some(sdk::ConverseOutput::Message(m)) => {
            let mut message = message_from_sdk(m)?;
            if let Some(raw) = raw {
                exact_tool_inputs(&mut message, raw);
            }
            message
        }
        Some(_) | None => {
            return Err(ModelError::InvalidResponse {
                message: "Converse output carries no message".to_string(),
            });
        }
    };
    let usage = output
        .usage
        .map(|u| Usage {
            input_tokens: non_negative(u.input_tokens),
            output_tokens: non_negative(u.output_tokens),
            total_tokens: non_negative(u.total_tokens),
            cache_read_input_tokens: u.cache_read_input_tokens.map(non_negative),
            cache_write_input_tokens: u.cache_write_input_tokens.map(non_negative),
        })
        .unwrap_or_default();
    let metrics = output
        .metrics
        .map(|m| Metrics {
            latency_ms: u64::try_from(m.latency_ms).unwrap_or(0),
        })
        .unwrap_or_default();
    Ok(Response {
        output: Output { message },
        stop_reason: StopReason::from(output.stop_reason.as_str()),
        usage,
        metrics,
        additional_model_response_fields: output
            .additional_model_response_fields
            .as_ref()
            .map(document_to_value),
    })
}

fn non_negative(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn message_from_sdk(message: sdk::Message) -> Result<Message, ModelError> {
    let role = match message.role {
        sdk::ConversationRole::User => Role::User,
        _ => Role::Assistant,
    };
    let content = message
        .content
        .into_iter()
        .filter_map(|block| match block {
            sdk::ContentBlock::Text(t) => Some(ContentBlock::Text(t)),
            sdk::ContentBlock::ToolUse(t) => Some(ContentBlock::ToolUse(ToolUseBlock {
                tool_use_id: t.tool_use_id,
                name: t.name,
                input: document_to_value(&t.input),
            })),
            other => {
                tracing::debug!(block = ?std::mem::discriminant(&other), "dropping a content block soapgate does not use");
                None
            }
        })
        .collect();
    Ok(Message { role, content })
}

/// Replaces each tool input with the same input read from the raw body,
/// where JSON numbers keep every digit (`serde_json`'s arbitrary precision).
/// A body that does not read, or a block it does not hold, keeps the SDK's
/// input.
fn exact_tool_inputs(message: &mut Message, raw: &[u8]) {
    if !message
        .content
        .iter()
        .any(|b| matches!(b, ContentBlock::ToolUse(_)))
    {
        return;
    }
    let Ok(mut body) = serde_json::from_slice::<Value>(raw) else {
        return;
    };
    let Some(Value::Array(blocks)) = body.pointer_mut("/output/message/content") else {
        return;
    };
    for block in message.content.iter_mut() {
        let ContentBlock::ToolUse(tool) = block else {
            continue;
        };
        let exact = blocks.iter_mut().find_map(|b| {
            let wire = b.get_mut("toolUse")?;
            (wire.get("toolUseId")?.as_str()? == tool.tool_use_id).then(|| wire.get_mut("input"))?
        });
        if let Some(input) = exact {
            tool.input = input.take();
        }
    }
}

/// JSON to smithy `Document`. Integers stay integers so tool schemas keep
/// `"maximum": 10` rather than `10.0`.
pub(super) fn value_to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Document::Number(Number::PosInt(u))
            } else if let Some(i) = n.as_i64() {
                Document::Number(Number::NegInt(i))
            } else {
                Document::Number(Number::Float(n.as_f64().unwrap_or(0.0)))
            }
        }
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(value_to_document).collect()),
        Value::Object(o) => Document::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), value_to_document(v)))
                .collect(),
        ),
    }
}

/// Smithy `Document` to JSON. Non-finite floats (which JSON cannot hold)
/// become null.
pub(super) fn document_to_value(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(document_to_value).collect()),
        Document::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), document_to_value(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "[a-zé ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn json_survives_the_document_round_trip(value in json_value()) {
            prop_assert_eq!(document_to_value(&value_to_document(&value)), value);
        }
    }

    #[test]
    fn integers_stay_integers() {
        assert!(matches!(
            value_to_document(&json!(10)),
            Document::Number(Number::PosInt(10))
        ));
        assert!(matches!(
            value_to_document(&json!(-3)),
            Document::Number(Number::NegInt(-3))
        ));
    }
}
