// The cases of bedrock_emulator.rs, included once per transport: `H2C`
// says which one the client speaks.

use super::*;

fn settings() -> BedrockSettings {
    BedrockSettings {
        http2_prior_knowledge: H2C,
        ..base_settings()
    }
}

async fn start(script: Option<&str>) -> (EmulatorHandle, BedrockClient) {
    start_with(script, settings()).await
}

/// The HTTP version the emulator should see.
fn protocol() -> &'static str {
    if H2C { "HTTP/2" } else { "HTTP/1.1" }
}

#[tokio::test]
async fn echo_round_trip_with_usage() {
    let (emulator, client) = start(None).await;
    // Callers hold the client as a trait object.
    let client: std::sync::Arc<dyn ModelClient> = std::sync::Arc::new(client);
    let request = Request::user_text("hello world, twenty-eight ch");
    let response = client.converse(HAIKU, &request).await.unwrap();
    assert_eq!(response.text(), "hello world, twenty-eight ch");
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(response.usage.input_tokens, 7);
    assert_eq!(response.usage.output_tokens, 7);
    assert_eq!(response.usage.total_tokens, 14);
    assert_eq!(
        calls(&emulator).await,
        json!({"total": 1, "models": {HAIKU: 1}, "protocols": {protocol(): 1}, "tools": {}, "rules": {}})
    );
}

#[tokio::test]
async fn every_block_kind_crosses_the_sdk_and_arns_survive_the_path() {
    let (emulator, client) = start(None).await;
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";
    let request = Request {
        messages: vec![
            Message::user(vec![
                ContentBlock::text("first question"),
                ContentBlock::Image(ImageBlock {
                    format: ImageFormat::Png,
                    source: ImageSource::Bytes(vec![0x89, b'P', b'N', b'G']),
                }),
                ContentBlock::Document(DocumentBlock {
                    format: DocumentFormat::Pdf,
                    name: "scan".into(),
                    source: DocumentSource::Bytes(b"%PDF-1.4 fake".to_vec()),
                }),
            ]),
            Message::assistant(vec![ContentBlock::text("first answer")]),
            Message::user(vec![ContentBlock::text("second question")]),
        ],
        system: vec![SystemBlock::Text("You answer briefly.".into())],
        inference_config: Some(InferenceConfig {
            max_tokens: Some(100),
            temperature: Some(0.0),
            top_p: Some(0.9),
            stop_sequences: vec!["STOP".into()],
        }),
        additional_model_request_fields: Some(json!({"top_k": 5})),
        request_metadata: Some([("tenant".to_string(), "acme".to_string())].into()),
        ..Request::default()
    };
    let response = client.converse(arn, &request).await.unwrap();
    assert_eq!(response.text(), "second question");
    // The image is counted at a flat rate on top of the text.
    assert!(response.usage.input_tokens > 1_000, "{:?}", response.usage);
    assert_eq!(calls(&emulator).await["models"][arn], json!(1));
}

fn forced(schema: Value) -> Request {
    let mut request = Request::user_text("Classify supplier invoice 4711 from ACME");
    request.tool_config = Some(ToolConfig::forced(ToolSpec::new(
        "record_answer",
        Some("Record the answer".into()),
        schema,
    )));
    request
}

#[tokio::test]
async fn forced_tools_answer_json_satisfying_their_schema() {
    let (_emulator, client) = start(None).await;
    let schemas = [
        json!({
            "type": "object",
            "required": ["category", "confidence"],
            "additionalProperties": false,
            "properties": {
                "category": {"type": "string", "enum": ["GOODS", "SERVICES", "MIXED"]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1}
            }
        }),
        json!({
            "type": "object",
            "required": ["invoiceId", "total", "currency", "lines"],
            "properties": {
                "invoiceId": {"type": "string", "pattern": "^INV-[0-9]{6}$"},
                "total": {"type": "number", "exclusiveMinimum": 0, "maximum": 100000, "multipleOf": 0.01},
                "currency": {"type": "string", "minLength": 3, "maxLength": 3, "pattern": "^[A-Z]+$"},
                "due": {"type": "string", "format": "date"},
                "lines": {
                    "type": "array", "minItems": 1, "maxItems": 5,
                    "items": {
                        "type": "object",
                        "required": ["description", "quantity"],
                        "properties": {
                            "description": {"type": "string", "minLength": 1, "maxLength": 40},
                            "quantity": {"type": "integer", "minimum": 1, "maximum": 999}
                        }
                    }
                }
            }
        }),
        json!({
            "type": "object",
            "required": ["customer"],
            "properties": {
                "customer": {"$ref": "#/$defs/customer"},
                "note": {"type": ["string", "null"], "maxLength": 10}
            },
            "$defs": {
                "customer": {
                    "type": "object",
                    "required": ["id", "tier", "address"],
                    "properties": {
                        "id": {"type": "integer", "minimum": 100000, "maximum": 999999},
                        "tier": {"enum": ["GOLD", "SILVER"]},
                        "address": {
                            "type": "object",
                            "required": ["country", "postcode"],
                            "properties": {
                                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
                                "postcode": {"type": "string", "pattern": "^[0-9]{5}(-[0-9]{4})?$"}
                            }
                        }
                    }
                }
            }
        }),
    ];
    for schema in schemas {
        let response = client
            .converse(HAIKU, &forced(schema.clone()))
            .await
            .unwrap();
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        let tool = response.first_tool_use().unwrap();
        assert_eq!(tool.name, "record_answer");
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&tool.input)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{} breaks {schema}: {errors:?}",
            tool.input
        );
        // The check has teeth: an empty object breaks every schema above.
        assert!(!validator.is_valid(&json!({})));
    }
}

#[tokio::test]
async fn every_error_kind_becomes_its_model_error() {
    let mut script = String::from("rules:\n");
    for kind in ServiceErrorKind::ALL {
        script.push_str(&format!(
            "  - model: \"err.{0}\"\n    error: {{ kind: {0}, message: \"scripted {0}\" }}\n",
            kind.script_name()
        ));
    }
    // One attempt: this test is about mapping, not retries.
    let (_emulator, client) = start_with(
        Some(&script),
        BedrockSettings {
            max_attempts: 1,
            ..settings()
        },
    )
    .await;
    let request = Request::user_text("hi");
    for kind in ServiceErrorKind::ALL {
        let model = format!("err.{}", kind.script_name());
        let error = client.converse(&model, &request).await.unwrap_err();
        assert_eq!(error.service_kind(), Some(kind), "{model}: {error:?}");
        let expected_code = match kind {
            ServiceErrorKind::Validation => "MODEL_REJECTED_REQUEST",
            ServiceErrorKind::AccessDenied => "MODEL_ACCESS_DENIED",
            ServiceErrorKind::ResourceNotFound => "MODEL_NOT_FOUND",
            ServiceErrorKind::ModelTimeout => "MODEL_TIMEOUT",
            ServiceErrorKind::ModelError => "MODEL_ERROR",
            ServiceErrorKind::Throttling | ServiceErrorKind::ServiceQuotaExceeded => {
                "MODEL_THROTTLED"
            }
            ServiceErrorKind::ModelNotReady
            | ServiceErrorKind::InternalServer
            | ServiceErrorKind::ServiceUnavailable => "MODEL_UNAVAILABLE",
        };
        assert_eq!(error.fault_code(), expected_code, "{model}");
        assert!(
            error
                .to_string()
                .contains(&format!("scripted {}", kind.script_name())),
            "{error}"
        );
    }
}

#[tokio::test]
async fn throttling_carries_the_retry_after_hint() {
    let script = "rules:\n  - error: { kind: throttling, retry_after_secs: 7 }\n";
    let (_emulator, client) = start_with(
        Some(script),
        BedrockSettings {
            max_attempts: 1,
            ..settings()
        },
    )
    .await;
    let error = client
        .converse(HAIKU, &Request::user_text("x"))
        .await
        .unwrap_err();
    assert!(matches!(error, ModelError::Throttling { .. }), "{error:?}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn the_sdk_retries_throttling_then_succeeds() {
    let script = "rules:\n  - model: flaky\n    fail_first: { times: 2, kind: throttling }\n    text: finally\n";
    let (emulator, client) = start(Some(script)).await;
    let response = client
        .converse("flaky", &Request::user_text("x"))
        .await
        .unwrap();
    assert_eq!(response.text(), "finally");
    assert_eq!(calls(&emulator).await["models"]["flaky"], json!(3));
}

#[tokio::test]
async fn retries_stop_at_max_attempts() {
    let script =
        "rules:\n  - model: down\n    fail_first: { times: 10, kind: service_unavailable }\n";
    let (emulator, client) = start(Some(script)).await;
    let error = client
        .converse("down", &Request::user_text("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ModelError::ServiceUnavailable { .. }),
        "{error:?}"
    );
    assert_eq!(calls(&emulator).await["models"]["down"], json!(3));
}

#[tokio::test]
async fn model_timeouts_are_not_retried() {
    let script = "rules:\n  - fail_first: { times: 1, kind: model_timeout }\n";
    let (emulator, client) = start(Some(script)).await;
    let error = client
        .converse(HAIKU, &Request::user_text("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ModelError::ModelTimeout { .. }),
        "{error:?}"
    );
    assert_eq!(calls(&emulator).await["total"], json!(1));
}

#[tokio::test]
async fn a_delay_beyond_the_operation_timeout_is_a_timeout() {
    let script = "rules:\n  - model: slow\n    delay_ms: 3000\n";
    let (_emulator, client) = start_with(
        Some(script),
        BedrockSettings {
            operation_timeout_ms: 300,
            ..settings()
        },
    )
    .await;
    let started = Instant::now();
    let error = client
        .converse("slow", &Request::user_text("x"))
        .await
        .unwrap_err();
    assert!(matches!(error, ModelError::Timeout { .. }), "{error:?}");
    assert_eq!(error.fault_code(), "MODEL_TIMEOUT");
    assert!(started.elapsed() < Duration::from_millis(2_000));
}

#[tokio::test]
async fn a_delay_beyond_the_read_timeout_is_a_timeout() {
    let script = "rules:\n  - model: slow\n    delay_ms: 3000\n";
    let (_emulator, client) = start_with(
        Some(script),
        BedrockSettings {
            read_timeout_ms: 300,
            max_attempts: 1,
            ..settings()
        },
    )
    .await;
    let started = Instant::now();
    let error = client
        .converse("slow", &Request::user_text("x"))
        .await
        .unwrap_err();
    assert!(matches!(error, ModelError::Timeout { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(2_000));
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_error() {
    // A port that was free a moment ago and now has no listener.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = BedrockClient::for_endpoint(
        &format!("http://127.0.0.1:{port}"),
        &BedrockSettings {
            max_attempts: 1,
            ..settings()
        },
    );
    let error = client
        .converse(HAIKU, &Request::user_text("x"))
        .await
        .unwrap_err();
    assert!(matches!(error, ModelError::Connection { .. }), "{error:?}");
    assert_eq!(error.fault_code(), "MODEL_UNAVAILABLE");
}

#[tokio::test]
async fn scripts_answer_by_prompt_and_tool_and_reset_clears_counts() {
    let script = r#"
rules:
  - prompt: "(?i)invoice"
    tool: { category: GOODS, confidence: 0.75 }
  - prompt: "^greet"
    text: "Hello from the script"
"#;
    let (emulator, client) = start(Some(script)).await;
    let response = client
        .converse(HAIKU, &forced(json!({"type": "object"})))
        .await
        .unwrap();
    assert_eq!(
        response.first_tool_use_input(),
        Some(&json!({"category": "GOODS", "confidence": 0.75}))
    );
    let response = client
        .converse(HAIKU, &Request::user_text("greet me"))
        .await
        .unwrap();
    assert_eq!(response.text(), "Hello from the script");
    // A call that matches no rule: the default answer.
    client
        .converse(HAIKU, &Request::user_text("anything else"))
        .await
        .unwrap();
    let counts = calls(&emulator).await;
    assert_eq!(counts["total"], json!(3));
    // Per forced tool (the text calls force none) and per rule that
    // answered (the unmatched call is under none).
    assert_eq!(counts["tools"], json!({"record_answer": 1}));
    assert_eq!(counts["rules"], json!({"rule 1": 1, "rule 2": 1}));

    let reset = reqwest::Client::new()
        .post(format!("{}/_emulator/reset", emulator.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status().as_u16(), 204);
    assert_eq!(calls(&emulator).await, json!({"total": 0, "models": {}, "protocols": {}, "tools": {}, "rules": {}}));
}

#[tokio::test]
async fn concurrent_calls_all_answer() {
    let script = "rules:\n  - model: slow\n    delay_ms: 200\n";
    let (emulator, client) = start(Some(script)).await;
    let client = std::sync::Arc::new(client);
    let calls_made: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .converse("slow", &Request::user_text(format!("call {i}")))
                    .await
            })
        })
        .collect();
    for (i, call) in calls_made.into_iter().enumerate() {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.text(), format!("call {i}"));
    }
    assert_eq!(
        calls(&emulator).await["protocols"],
        json!({protocol(): 64})
    );
}
