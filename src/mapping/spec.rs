//! The mapping file as written: serde structs for the YAML, every field
//! denied when unknown, every value that a later check may complain about
//! kept with its source position ([`Spanned`]).
//!
//! Nothing here knows the contract; [`super::compile`] checks the spec
//! against it. The format is documented in `mappings/README.md`.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

/// A YAML mapping read in source order with each key's position (a
/// `BTreeMap` would lose both).
#[derive(Debug, Clone)]
pub(crate) struct Entries<V>(pub(crate) Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<Spanned<String>>()? {
                    out.push((k, m.next_value()?));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V_(PhantomData))
    }
}

/// One mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MappingFile {
    /// The `wsdl:service` name.
    pub(crate) service: Spanned<String>,
    /// The WSDL file name the service comes from, checked when given.
    #[serde(default)]
    pub(crate) wsdl: Option<Spanned<String>>,
    pub(crate) operations: Entries<OperationSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ModeSpec {
    Sync,
    Async,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperationSpec {
    #[serde(default)]
    pub(crate) mode: Option<Spanned<ModeSpec>>,
    /// Async only: a path into the request payload whose value makes a
    /// retried call (without a WS-Addressing MessageID) return the first
    /// call's ticket.
    #[serde(default)]
    pub(crate) idempotency_key: Option<Spanned<String>>,
    pub(crate) model: Spanned<ModelSpec>,
    #[serde(default)]
    pub(crate) input: Entries<Spanned<InputSpec>>,
    #[serde(default)]
    pub(crate) system: Option<Spanned<String>>,
    /// Required unless the operation has `steps` (then refused).
    #[serde(default)]
    pub(crate) prompt: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) output: Option<Spanned<OutputSpec>>,
    #[serde(default)]
    pub(crate) repair_attempts: Option<Spanned<u32>>,
    #[serde(default)]
    pub(crate) on_failure: Option<Spanned<FailureSpec>>,
    /// `cache: { ttl_secs: N }`: answers kept and reused for identical
    /// requests.
    #[serde(default)]
    pub(crate) cache: Option<Spanned<CacheSpec>>,
    /// What else goes into `soapgate_results` for jobs of this operation.
    #[serde(default)]
    pub(crate) results: Option<Spanned<ResultsSpec>>,
    /// The operation's declared faults (`wsdl:fault`) the model may answer,
    /// by name.
    #[serde(default)]
    pub(crate) faults: Entries<Spanned<FaultSpec>>,
    /// Other settings of the operation that serve a share of its calls
    /// (canary) or run beside them (shadow), by name.
    #[serde(default)]
    pub(crate) variants: Entries<Spanned<VariantSpec>>,
    /// A request path whose value picks the variant: equal values always
    /// get the same one.
    #[serde(default)]
    pub(crate) sticky_by: Option<Spanned<String>>,
    /// `shadow: { sample, variant }`: run a variant in the background on a
    /// sample of the calls and compare its answer with the served one.
    #[serde(default)]
    pub(crate) shadow: Option<Spanned<ShadowSpec>>,
    /// `record: { sample, redact }`: keep a sample of calls for replay.
    #[serde(default)]
    pub(crate) record: Option<Spanned<RecordSpec>>,
    /// `batch: { min_records, max_records, max_wait_secs, role_arn, s3_uri,
    /// model }`: jobs of the operation go to the model together in a
    /// batch-inference job.
    #[serde(default)]
    pub(crate) batch: Option<Spanned<BatchSpec>>,
    /// A multi-step operation: each step a model call of its own, the
    /// response assembled from their results by `output`.
    #[serde(default)]
    pub(crate) steps: Entries<Spanned<StepSpec>>,
}

/// One step of a multi-step operation: a model call with the operation's
/// powers (its `model`, `system` and `repair_attempts` replacing the
/// operation's), run when `when` holds, once per item with `for_each`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepSpec {
    #[serde(default)]
    pub(crate) model: Option<Spanned<ModelSpec>>,
    /// Inputs of this step alone, beside the operation's (whose
    /// attachments reach only the steps that declare them here).
    #[serde(default)]
    pub(crate) input: Entries<Spanned<InputSpec>>,
    #[serde(default)]
    pub(crate) system: Option<Spanned<String>>,
    pub(crate) prompt: Spanned<String>,
    #[serde(default)]
    pub(crate) output: Option<Spanned<StepOutputSpec>>,
    #[serde(default)]
    pub(crate) repair_attempts: Option<Spanned<u32>>,
    #[serde(default)]
    pub(crate) on_failure: Option<Spanned<FailureSpec>>,
    /// The step's result when it is skipped or fails with `on_failure:
    /// continue`; `null` (written out) means "absent".
    #[serde(default, deserialize_with = "present")]
    pub(crate) default: Option<Spanned<YamlValue>>,
    #[serde(default)]
    pub(crate) when: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) for_each: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) max_concurrency: Option<Spanned<u32>>,
}

/// A step's result: an XSD type of the contract, an inline JSON Schema,
/// or (neither) the model's text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepOutputSpec {
    #[serde(default, rename = "type")]
    pub(crate) type_: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) schema: Option<Spanned<serde_json::Value>>,
    #[serde(default)]
    pub(crate) tool: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) description: Option<Spanned<String>>,
}

/// A field that is `Some` whenever it is written, `null` included.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `record: { sample: 0.1, redact: [paths] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordSpec {
    /// The share of calls recorded, 0 to 1. Default 1 (every call).
    #[serde(default)]
    pub(crate) sample: Option<Spanned<f64>>,
    /// Request paths whose values never reach a recording.
    #[serde(default)]
    pub(crate) redact: Vec<Spanned<String>>,
}

/// `batch: { min_records: 100, max_records: 10000, max_wait_secs: 3600,
/// role_arn: arn:..., s3_uri: s3://bucket/prefix, model: id }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchSpec {
    /// A batch is cut as soon as this many jobs wait. Default 100, the
    /// service's minimum records per batch-inference job.
    #[serde(default)]
    pub(crate) min_records: Option<Spanned<u64>>,
    /// At most this many jobs in one batch. Default 10000.
    #[serde(default)]
    pub(crate) max_records: Option<Spanned<u64>>,
    /// How long a job waits for a batch before it runs on demand. Default
    /// 3600.
    #[serde(default)]
    pub(crate) max_wait_secs: Option<Spanned<u64>>,
    /// The service role the batch job reads and writes S3 with.
    pub(crate) role_arn: Spanned<String>,
    /// `s3://bucket/prefix` under which batches are written.
    pub(crate) s3_uri: Spanned<String>,
    /// The model the batch job is created for; default: the operation's
    /// first target.
    #[serde(default)]
    pub(crate) model: Option<Spanned<String>>,
}

/// One variant of an operation: its share of the calls and the settings
/// that replace the operation's own (each whole, not merged).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VariantSpec {
    /// Percent of the calls it serves (0 to 100; default 0: shadow only).
    #[serde(default)]
    pub(crate) weight: Option<Spanned<i64>>,
    #[serde(default)]
    pub(crate) model: Option<Spanned<ModelSpec>>,
    #[serde(default)]
    pub(crate) system: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) prompt: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) output: Option<Spanned<OutputSpec>>,
    #[serde(default)]
    pub(crate) repair_attempts: Option<Spanned<u32>>,
}

/// `shadow: { sample: 0.2, variant: name }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShadowSpec {
    /// The share of calls (0 to 1) the variant also runs on.
    pub(crate) sample: Spanned<f64>,
    pub(crate) variant: Spanned<String>,
}

/// Whose fault a declared fault is: `client` (`soap:Client`, `env:Sender`)
/// or `server` (`soap:Server`, `env:Receiver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultSideSpec {
    Client,
    Server,
}

/// One declared fault the model may answer: with structured output a tool
/// of its own, with text output a rule on the answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    /// Default `client`.
    #[serde(default)]
    pub(crate) code: Option<Spanned<FaultSideSpec>>,
    /// `faultstring` / `env:Reason`: a constant or a template (the
    /// request's variables). Default: the fault's name.
    #[serde(default)]
    pub(crate) reason: Option<Spanned<String>>,
    /// Structured output: the fault's tool name (default: the fault's
    /// name).
    #[serde(default)]
    pub(crate) tool: Option<Spanned<String>>,
    /// Structured output: the fault's tool description.
    #[serde(default)]
    pub(crate) description: Option<Spanned<String>>,
    /// Text output: a regex; an answer it matches is this fault.
    #[serde(default)]
    pub(crate) when: Option<Spanned<String>>,
    /// Text output: the detail element the text after the match goes into.
    #[serde(default)]
    pub(crate) text: Option<Spanned<String>>,
    /// Text output: the detail's other values.
    #[serde(default)]
    pub(crate) fill: Entries<Spanned<YamlValue>>,
}

/// `results: { columns: { name: path } }`: flat result columns, each a
/// path into the response payload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResultsSpec {
    #[serde(default)]
    pub(crate) columns: Entries<Spanned<String>>,
}

/// `cache: { ttl_secs: N }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheSpec {
    pub(crate) ttl_secs: Spanned<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelSpec {
    pub(crate) targets: Spanned<Vec<Spanned<TargetSpec>>>,
    /// Retry the errors the SDK does not (model timeout, model error, a
    /// connection dropped after sending) with jittered backoff. Default on.
    #[serde(default)]
    pub(crate) retry: Option<Spanned<bool>>,
    /// The whole model part of a call (targets, retries, repairs) ends by
    /// then; default: `bedrock.deadline_ms`.
    #[serde(default)]
    pub(crate) deadline_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub(crate) max_tokens: Option<Spanned<u32>>,
    #[serde(default)]
    pub(crate) temperature: Option<Spanned<f32>>,
    #[serde(default)]
    pub(crate) top_p: Option<Spanned<f32>>,
    #[serde(default)]
    pub(crate) stop_sequences: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) guardrail: Option<Spanned<GuardrailSpec>>,
    #[serde(default)]
    pub(crate) additional_fields: Option<Spanned<serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetSpec {
    pub(crate) model: Spanned<String>,
    #[serde(default)]
    pub(crate) region: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuardrailSpec {
    pub(crate) id: Spanned<String>,
    pub(crate) version: Spanned<String>,
    #[serde(default)]
    pub(crate) trace: Option<Spanned<String>>,
}

/// `var: path` or `var: {path, as, format, name}`.
#[derive(Debug, Clone)]
pub(crate) enum InputSpec {
    Path(String),
    Full(Box<FullInput>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FullInput {
    pub(crate) path: Spanned<String>,
    #[serde(default, rename = "as")]
    pub(crate) as_: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) format: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) name: Option<Spanned<String>>,
    /// An element (or `@attribute`) beside each attachment whose text is
    /// its format: a MIME type, a format name or a file name.
    #[serde(default)]
    pub(crate) format_from: Option<Spanned<String>>,
    /// An element (or `@attribute`) beside each attachment whose text is
    /// its document name.
    #[serde(default)]
    pub(crate) name_from: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for InputSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_;
        impl<'de> Visitor<'de> for V_ {
            type Value = InputSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a path, or a mapping with `path` and optionally `as`, `format`, `name`",
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<InputSpec, E> {
                Ok(InputSpec::Path(s.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<InputSpec, A::Error> {
                // Going through the map access (not an untagged enum) keeps
                // the positions of the inner values.
                FullInput::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(|f| InputSpec::Full(Box::new(f)))
            }
        }
        d.deserialize_any(V_)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutputSpec {
    #[serde(default)]
    pub(crate) structured: Option<Spanned<bool>>,
    /// Tool name for structured output (default: derived from the response).
    #[serde(default)]
    pub(crate) tool: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) description: Option<Spanned<String>>,
    /// Text output: the response element the model's text goes into.
    #[serde(default)]
    pub(crate) text: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) fill: Entries<Spanned<YamlValue>>,
    /// Multi-step operations: the step whose result is the response.
    #[serde(default)]
    pub(crate) from: Option<Spanned<String>>,
}

/// `on_failure: fault`, `cache`, `continue` (a step's) or `{static: ...}`.
#[derive(Debug, Clone)]
pub(crate) enum FailureSpec {
    Fault,
    Cache,
    /// A step's: its `default` stands for its result.
    Continue,
    Static(Spanned<YamlValue>),
}

impl<'de> Deserialize<'de> for FailureSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_;
        impl<'de> Visitor<'de> for V_ {
            type Value = FailureSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`fault`, `cache` or a mapping `static: <response>`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<FailureSpec, E> {
                match s {
                    "fault" => Ok(FailureSpec::Fault),
                    "cache" => Ok(FailureSpec::Cache),
                    "continue" => Ok(FailureSpec::Continue),
                    other => Err(E::custom(format!(
                        "unknown failure policy `{other}`, expected `fault`, `cache`, `continue` or `static:`"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<FailureSpec, A::Error> {
                let mut found = None;
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "static" if found.is_none() => found = Some(m.next_value()?),
                        "static" => return Err(de::Error::duplicate_field("static")),
                        other => return Err(de::Error::unknown_field(other, &["static"])),
                    }
                }
                found
                    .map(FailureSpec::Static)
                    .ok_or_else(|| de::Error::missing_field("static"))
            }
        }
        d.deserialize_any(V_)
    }
}

/// Any YAML value with the position of every node, so a static response
/// that breaks the schema can be reported at the offending field.
#[derive(Debug, Clone)]
pub(crate) enum YamlValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<YamlValue>>),
    Map(Vec<(Spanned<String>, Spanned<YamlValue>)>),
}

impl<'de> Deserialize<'de> for YamlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_;
        impl<'de> Visitor<'de> for V_ {
            type Value = YamlValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E>(self) -> Result<YamlValue, E> {
                Ok(YamlValue::Null)
            }
            fn visit_none<E>(self) -> Result<YamlValue, E> {
                Ok(YamlValue::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<YamlValue, D2::Error> {
                YamlValue::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<YamlValue, E> {
                Ok(YamlValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<YamlValue, E> {
                Ok(YamlValue::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<YamlValue, E> {
                Ok(YamlValue::UInt(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<YamlValue, E> {
                Ok(YamlValue::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<YamlValue, E> {
                Ok(YamlValue::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<YamlValue, E> {
                Ok(YamlValue::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<YamlValue, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element()? {
                    out.push(v);
                }
                Ok(YamlValue::Seq(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<YamlValue, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<Spanned<String>>()? {
                    out.push((k, m.next_value()?));
                }
                Ok(YamlValue::Map(out))
            }
        }
        d.deserialize_any(V_)
    }
}

impl YamlValue {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            YamlValue::Null => Value::Null,
            YamlValue::Bool(b) => Value::Bool(*b),
            YamlValue::Int(i) => Value::from(*i),
            YamlValue::UInt(u) => Value::from(*u),
            YamlValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            YamlValue::Str(s) => Value::String(s.clone()),
            YamlValue::Seq(items) => {
                Value::Array(items.iter().map(|i| i.value.to_json()).collect())
            }
            YamlValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// The scalar's text, for `fill` values (`None` for lists, mappings and
    /// null).
    pub(crate) fn scalar_text(&self) -> Option<String> {
        match self {
            YamlValue::Bool(b) => Some(b.to_string()),
            YamlValue::Int(i) => Some(i.to_string()),
            YamlValue::UInt(u) => Some(u.to_string()),
            YamlValue::Float(f) => Some(f.to_string()),
            YamlValue::Str(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// The position of the node a JSON pointer (`/a/0/b`) reaches, or of the
/// deepest node on the way: where a static response's mistake is.
pub(crate) fn locate(value: &Spanned<YamlValue>, pointer: &str) -> Location {
    let mut at = value;
    for raw in pointer.split('/').filter(|s| !s.is_empty()) {
        let key = raw.replace("~1", "/").replace("~0", "~");
        let next = match &at.value {
            YamlValue::Map(entries) => entries.iter().find(|(k, _)| k.value == key).map(|(_, v)| v),
            YamlValue::Seq(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => break,
        }
    }
    at.referenced
}
