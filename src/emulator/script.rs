//! Emulator scripts: YAML files of ordered rules that decide how the
//! emulator answers a call — which text or tool JSON, which error, how slow,
//! and how many calls fail before one succeeds. The first rule whose
//! matchers all match a call decides it; a call no rule matches gets the
//! default answer (echo, or schema-satisfying tool JSON).
//!
//! ```yaml
//! rules:
//!   - name: flaky classifier          # optional, for logs
//!     model: "anthropic.*"            # glob (* and ?) over the model id
//!     prompt: "(?i)invoice"           # regex searched in system + user text
//!     fail_first: { times: 2, kind: throttling }
//!     delay_ms: 150
//!     tool: { category: GOODS, confidence: 0.9 }
//!   - prompt: "ledger"                # JSON text: numbers keep every digit
//!     tool: '{"amount": 12345678901234567890.5}'
//!   - model_regex: "^arn:aws:bedrock:.*"
//!     error: { kind: access_denied, message: "not subscribed" }
//!   - prompt: "hello"
//!     text: "Hi there"
//!   - prompt: "(?i)spam"              # a call of this offered tool (e.g. a
//!     tool_name: TicketRejected       # declared fault's), its input from
//!                                     # its schema unless `tool` gives it
//!   - model: "flaky-later"            # answers twice, then fails
//!     after: 2
//!     error: { kind: internal_server }
//!   - prompt: "poison"                # a batch job with such a record
//!     fail_job: "Internal error"      # ends Failed with this message
//! batch:                              # batch inference (docs/emulator.md)
//!   delay_ms: 200                     # Submitted → InProgress → ended
//!   min_records: 100                  # fewer records: ValidationException
//! ```
//!
//! In a batch job every record is one call for the rules: an `error`
//! answer becomes that record's `error` line instead of a failed call.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::converse::ServiceErrorKind;

/// A parsed, checked script. Immutable: the per-rule call counters that
/// `fail_first` needs live in the running emulator, so one script can serve
/// several emulators.
#[derive(Debug, Clone)]
pub struct Script {
    pub(crate) rules: Vec<Rule>,
    pub(crate) batch: BatchScript,
}

/// The `batch:` section: how batch-inference jobs behave.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BatchScript {
    /// From Submitted to InProgress, and again from InProgress to the end.
    pub(crate) delay: Duration,
    /// Fewer records in a job are refused, as Bedrock's quota refuses them.
    pub(crate) min_records: usize,
}

/// Bedrock's quota "Minimum number of records per batch inference job".
pub(crate) const DEFAULT_MIN_RECORDS: usize = 100;
/// Long enough for a test to see a job Submitted and InProgress.
pub(crate) const DEFAULT_BATCH_DELAY: Duration = Duration::from_millis(500);

impl Default for BatchScript {
    fn default() -> Self {
        BatchScript {
            delay: DEFAULT_BATCH_DELAY,
            min_records: DEFAULT_MIN_RECORDS,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: String,
    model: Option<Regex>,
    prompt: Option<Regex>,
    pub(crate) answer: Answer,
    pub(crate) delay: Option<Duration>,
    pub(crate) fail_first: Option<FailFirst>,
    /// The first `after` matching calls pass this rule by (later rules,
    /// or the default, answer them).
    pub(crate) after: Option<u64>,
}

/// What a matching rule answers once its `fail_first` calls are used up.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// The default: echo, or tool JSON generated from the schema.
    Default,
    Text(String),
    /// The input of a tool call to the forced (or first) tool.
    Tool(Value),
    /// A call of the offered tool of this name, with this input or, when
    /// `None`, one generated from its schema.
    NamedTool {
        name: String,
        input: Option<Value>,
    },
    Error(ScriptedError),
    /// A batch job with a record this rule matches ends Failed with this
    /// message; a Converse call gets the default answer.
    FailJob(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScriptedError {
    pub(crate) kind: ServiceErrorKind,
    pub(crate) message: String,
    /// Sent as `Retry-After` (seconds).
    pub(crate) retry_after_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FailFirst {
    pub(crate) times: u64,
    pub(crate) error: ScriptedError,
}

impl Rule {
    pub(crate) fn matches(&self, model_id: &str, prompt: &str) -> bool {
        self.model.as_ref().is_none_or(|r| r.is_match(model_id))
            && self.prompt.as_ref().is_none_or(|r| r.is_match(prompt))
    }
}

/// A script that could not be used, with where: `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScriptError {
    pub origin: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.origin, self.line, self.column, self.message
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    #[serde(default)]
    rules: Vec<Spanned<RuleFile>>,
    batch: Option<BatchFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchFile {
    delay_ms: Option<u64>,
    min_records: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: Option<String>,
    model: Option<Spanned<String>>,
    model_regex: Option<Spanned<String>>,
    prompt: Option<Spanned<String>>,
    text: Option<String>,
    tool: Option<Spanned<Value>>,
    tool_name: Option<Spanned<String>>,
    error: Option<ErrorFile>,
    delay_ms: Option<u64>,
    fail_first: Option<FailFirstFile>,
    after: Option<u64>,
    fail_job: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorFile {
    kind: ServiceErrorKind,
    message: Option<String>,
    retry_after_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailFirstFile {
    times: u64,
    kind: ServiceErrorKind,
    message: Option<String>,
    retry_after_secs: Option<u64>,
}

impl ErrorFile {
    fn into_error(self) -> ScriptedError {
        ScriptedError {
            kind: self.kind,
            message: self
                .message
                .unwrap_or_else(|| default_message(self.kind).to_string()),
            retry_after_secs: self.retry_after_secs,
        }
    }
}

/// Messages in the service's own words, so clients that log them see
/// something familiar.
pub(crate) fn default_message(kind: ServiceErrorKind) -> &'static str {
    match kind {
        ServiceErrorKind::Validation => "The provided request is not valid",
        ServiceErrorKind::AccessDenied => {
            "You don't have access to the model with the specified model ID."
        }
        ServiceErrorKind::ResourceNotFound => "The provided model identifier is invalid.",
        ServiceErrorKind::ModelTimeout => "Model has timed out in processing the request.",
        ServiceErrorKind::ModelError => "The model encountered an error processing the request.",
        ServiceErrorKind::Throttling => "Too many requests, please wait before trying again.",
        ServiceErrorKind::ModelNotReady => "Model is not ready for inference. Retry later.",
        ServiceErrorKind::ServiceQuotaExceeded => "Service quota exceeded.",
        ServiceErrorKind::InternalServer => "The server encountered an internal error.",
        ServiceErrorKind::ServiceUnavailable => "Service is temporarily unavailable.",
    }
}

impl Script {
    /// Reads and checks a script file; errors name the file, line and
    /// column.
    pub fn load(path: &Path) -> Result<Script, ScriptError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScriptError {
            origin: origin.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read the script: {e}"),
        })?;
        Script::parse(&text, &origin)
    }

    /// Parses and checks a script; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Script, ScriptError> {
        let at = |line: u64, column: u64, message: String| ScriptError {
            origin: origin.to_string(),
            line: line.max(1),
            column: column.max(1),
            message,
        };
        let file: ScriptFile = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            at(line, column, yaml_message(&e.to_string()))
        })?;
        let mut rules = Vec::with_capacity(file.rules.len());
        for (index, spanned) in file.rules.into_iter().enumerate() {
            let rule_at = spanned.referenced;
            let rule = spanned.value;
            let name = rule.name.unwrap_or_else(|| format!("rule {}", index + 1));
            let model = match (rule.model, rule.model_regex) {
                (Some(_), Some(r)) => {
                    return Err(at(
                        r.referenced.line(),
                        r.referenced.column(),
                        "`model` and `model_regex` are exclusive".to_string(),
                    ));
                }
                (Some(glob), None) => Some(glob_regex(&glob.value).map_err(|e| {
                    at(
                        glob.referenced.line(),
                        glob.referenced.column(),
                        format!("invalid model glob: {}", last_line(&e.to_string())),
                    )
                })?),
                (None, Some(r)) => Some(Regex::new(&r.value).map_err(|e| {
                    at(
                        r.referenced.line(),
                        r.referenced.column(),
                        format!("invalid model_regex: {}", last_line(&e.to_string())),
                    )
                })?),
                (None, None) => None,
            };
            let prompt = match rule.prompt {
                Some(p) => Some(Regex::new(&p.value).map_err(|e| {
                    at(
                        p.referenced.line(),
                        p.referenced.column(),
                        format!("invalid prompt regex: {}", last_line(&e.to_string())),
                    )
                })?),
                None => None,
            };
            let answers = usize::from(rule.text.is_some())
                + usize::from(rule.tool.is_some())
                + usize::from(rule.error.is_some())
                + usize::from(rule.fail_job.is_some());
            if answers > 1 {
                return Err(at(
                    rule_at.line(),
                    rule_at.column(),
                    format!("{name}: give at most one of `text`, `tool`, `error`, `fail_job`"),
                ));
            }
            let answer = if let Some(message) = rule.fail_job {
                Answer::FailJob(message)
            } else if let Some(text) = rule.text {
                Answer::Text(text)
            } else if let Some(tool) = rule.tool {
                // A string is the input as JSON text, for numbers YAML
                // would round to a double (`'{"amount": 12345678901234567890.5}'`).
                let value = match tool.value {
                    Value::String(json) => serde_json::from_str(&json).unwrap_or(Value::Null),
                    value => value,
                };
                if !value.is_object() {
                    return Err(at(
                        tool.referenced.line(),
                        tool.referenced.column(),
                        format!(
                            "{name}: `tool` must be a mapping, or a JSON object as a string (the tool's JSON input)"
                        ),
                    ));
                }
                Answer::Tool(value)
            } else if let Some(error) = rule.error {
                Answer::Error(error.into_error())
            } else {
                Answer::Default
            };
            let answer = match (rule.tool_name, answer) {
                (None, answer) => answer,
                (Some(t), _) if t.value.trim().is_empty() => {
                    return Err(at(
                        t.referenced.line(),
                        t.referenced.column(),
                        format!("{name}: `tool_name` must name a tool"),
                    ));
                }
                (Some(t), Answer::Tool(input)) => Answer::NamedTool {
                    name: t.value,
                    input: Some(input),
                },
                (Some(t), Answer::Default) => Answer::NamedTool {
                    name: t.value,
                    input: None,
                },
                (Some(t), _) => {
                    return Err(at(
                        t.referenced.line(),
                        t.referenced.column(),
                        format!(
                            "{name}: `tool_name` goes with a tool answer, not `text`, `error` or `fail_job`"
                        ),
                    ));
                }
            };
            let fail_first = rule.fail_first.map(|f| FailFirst {
                times: f.times,
                error: ErrorFile {
                    kind: f.kind,
                    message: f.message,
                    retry_after_secs: f.retry_after_secs,
                }
                .into_error(),
            });
            rules.push(Rule {
                name,
                model,
                prompt,
                answer,
                delay: rule.delay_ms.map(Duration::from_millis),
                fail_first,
                after: rule.after,
            });
        }
        let defaults = BatchScript::default();
        let batch = file.batch.map_or(defaults.clone(), |b| BatchScript {
            delay: b.delay_ms.map_or(defaults.delay, Duration::from_millis),
            min_records: b.min_records.unwrap_or(defaults.min_records),
        });
        Ok(Script { rules, batch })
    }

    /// How many rules the script has.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    #[cfg(test)]
    /// The index of the first rule matching the call.
    pub(crate) fn find(&self, model_id: &str, prompt: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.matches(model_id, prompt))
    }
}

/// serde-saphyr's first line, without its own "error: line L column C: "
/// prefix (our prefix says where) or the snippet lines that follow.
fn yaml_message(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((position, message)) if position.contains("column") => message.to_string(),
        _ => line.to_string(),
    }
}

/// The regex crate's error text shows the pattern with a caret, then the
/// reason on the last line.
fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

/// `*` any run, `?` one character, everything else literal; anchored.
fn glob_regex(glob: &str) -> Result<Regex, regex::Error> {
    let mut pattern = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => pattern.push_str(".*"),
            '?' => pattern.push('.'),
            other => pattern.push_str(&regex::escape(&other.to_string())),
        }
    }
    pattern.push('$');
    Regex::new(&pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_script_parses() {
        let script = Script::parse(
            r#"
rules:
  - name: flaky
    model: "anthropic.*"
    prompt: "(?i)invoice"
    fail_first: { times: 2, kind: throttling }
    delay_ms: 150
    tool: { category: GOODS, confidence: 0.9 }
  - model_regex: "^arn:"
    error: { kind: access_denied, message: "nope", retry_after_secs: 3 }
  - prompt: hello
    text: Hi there
"#,
            "t.yaml",
        )
        .unwrap();
        assert_eq!(script.rules.len(), 3);
        assert_eq!(script.rules[0].name, "flaky");
        assert_eq!(
            script.rules[0].answer,
            Answer::Tool(serde_json::json!({"category": "GOODS", "confidence": 0.9}))
        );
        assert_eq!(
            script.rules[0].fail_first.as_ref().map(|f| f.times),
            Some(2)
        );
        assert_eq!(script.rules[0].delay, Some(Duration::from_millis(150)));
        assert_eq!(script.find("anthropic.claude-3", "An INVOICE"), Some(0));
        assert_eq!(script.find("anthropic.claude-3", "a receipt"), None);
        assert_eq!(script.find("arn:aws:bedrock:x", ""), Some(1));
        assert_eq!(script.find("meta.llama", "hello you"), Some(2));
        assert!(matches!(
            &script.rules[1].answer,
            Answer::Error(ScriptedError {
                kind: ServiceErrorKind::AccessDenied,
                retry_after_secs: Some(3),
                ..
            })
        ));
    }

    #[test]
    fn after_is_read_per_rule() {
        let script = Script::parse(
            "rules:\n  - after: 2\n    error: { kind: internal_server }\n  - text: ok\n",
            "s.yaml",
        )
        .unwrap();
        assert_eq!(script.rules[0].after, Some(2));
        assert_eq!(script.rules[1].after, None);
    }

    #[test]
    fn unknown_keys_are_refused_with_line_and_column() {
        let err = Script::parse("rules:\n  - prompt: x\n    txet: y\n", "s.yaml").unwrap_err();
        assert_eq!((err.line, err.column), (3, 5), "{err}");
        assert!(err.to_string().starts_with("s.yaml:3:5: "), "{err}");
        assert!(err.message.contains("txet"), "{err}");
    }

    #[test]
    fn unknown_error_kinds_are_refused_with_line_and_column() {
        let err = Script::parse("rules:\n  - error: { kind: slow_down }\n", "s.yaml").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.message.contains("slow_down"), "{err}");
    }

    #[test]
    fn a_bad_regex_is_reported_where_it_is_written() {
        let err = Script::parse(
            "rules:\n  - text: a\n  - prompt: \"(unclosed\"\n    text: b\n",
            "s.yaml",
        )
        .unwrap_err();
        assert_eq!((err.line, err.column), (3, 13), "{err}");
        assert!(err.message.contains("invalid prompt regex"), "{err}");
    }

    #[test]
    fn two_answers_in_one_rule_are_refused() {
        let err = Script::parse("rules:\n  - text: a\n    tool: { x: 1 }\n", "s.yaml").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.message.contains("at most one"), "{err}");
    }

    #[test]
    fn a_rule_may_name_the_tool_to_call() {
        let script = Script::parse(
            "rules:\n  - prompt: spam\n    tool_name: TicketRejected\n  - tool_name: T\n    tool: { a: 1 }\n",
            "s.yaml",
        )
        .unwrap();
        assert_eq!(
            script.rules[0].answer,
            Answer::NamedTool {
                name: "TicketRejected".into(),
                input: None
            }
        );
        assert_eq!(
            script.rules[1].answer,
            Answer::NamedTool {
                name: "T".into(),
                input: Some(serde_json::json!({"a": 1}))
            }
        );
        let err = Script::parse("rules:\n  - text: a\n    tool_name: T\n", "s.yaml").unwrap_err();
        assert_eq!((err.line, err.column), (3, 16), "{err}");
    }

    #[test]
    fn tool_answers_must_be_mappings() {
        let err = Script::parse("rules:\n  - tool: [1, 2]\n", "s.yaml").unwrap_err();
        assert_eq!((err.line, err.column), (2, 11), "{err}");
    }

    #[test]
    fn a_tool_answer_given_as_json_text_keeps_every_digit() {
        let script = Script::parse(
            "rules:\n  - tool: '{\"amount\": 12345678901234567890.5, \"n\": 123456789012345678901234567890}'\n",
            "s.yaml",
        )
        .unwrap();
        let Answer::Tool(input) = &script.rules[0].answer else {
            panic!("a tool answer: {:?}", script.rules[0].answer);
        };
        assert_eq!(
            serde_json::to_string(input).unwrap(),
            r#"{"amount":12345678901234567890.5,"n":123456789012345678901234567890}"#
        );
        let err = Script::parse("rules:\n  - tool: 'not json'\n", "s.yaml").unwrap_err();
        assert_eq!((err.line, err.column), (2, 11), "{err}");
    }

    #[test]
    fn the_batch_section_and_job_failures_are_read() {
        let script = Script::parse(
            "rules:\n  - prompt: poison\n    fail_job: broken input\nbatch: { delay_ms: 20, min_records: 3 }\n",
            "s.yaml",
        )
        .unwrap();
        assert_eq!(
            script.rules[0].answer,
            Answer::FailJob("broken input".to_string())
        );
        assert_eq!(script.batch.delay, Duration::from_millis(20));
        assert_eq!(script.batch.min_records, 3);
        let defaults = Script::parse("rules: []\n", "s.yaml").unwrap();
        assert_eq!(defaults.batch, BatchScript::default());
        let both = Script::parse("rules:\n  - fail_job: x\n    text: y\n", "s.yaml").unwrap_err();
        assert!(both.message.contains("at most one"), "{both}");
    }

    #[test]
    fn globs_match_whole_ids() {
        let r = glob_regex("anthropic.claude-?-*").unwrap();
        assert!(r.is_match("anthropic.claude-3-haiku"));
        assert!(!r.is_match("xanthropic.claude-3-haiku"));
        assert!(!glob_regex("a.b").unwrap().is_match("axb"));
    }
}
