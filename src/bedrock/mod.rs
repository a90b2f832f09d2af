//! The production [`ModelClient`]: Amazon Bedrock's Converse API through
//! aws-sdk-bedrockruntime.
//!
//! This is the only module that names aws-sdk-bedrockruntime types. It
//! builds the SDK client from [`BedrockSettings`] and the standard AWS
//! configuration chain (environment, profile, container and instance
//! credentials; `AWS_REGION`; `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` and
//! `AWS_ENDPOINT_URL`), converts our [`crate::converse`] model to the SDK's
//! builders by hand (`convert.rs`) and the SDK's errors to
//! [`ModelError`] (`errors.rs`). Transport retries are the SDK's (standard
//! or adaptive mode); what the SDK does not do (one client per region, our
//! own retries, breakers, caches, the in-flight cap) is the model layer's,
//! `crate::models`, which knows this client only as a [`ModelClient`].
//! `[bedrock]` also carries that layer's settings
//! ([`BedrockSettings::model_settings`]).
//!
//! [`batch`] converts between a Converse request or response and a line
//! of a batch-inference job (plain JSON, no SDK); [`control`] is the
//! production [`crate::converse::BatchClient`], [`BedrockBatch`], running
//! those jobs through aws-sdk-s3 and Bedrock's control plane
//! (aws-sdk-bedrock).

pub mod batch;
pub mod control;
mod convert;
mod errors;
mod h2c;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::config::{Credentials, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::{Deserialize, Serialize};

use crate::converse::{BoxFuture, ModelClient, ModelError, Request, Response};

use crate::models::{BreakerSettings, ModelSettings};
pub use control::BedrockBatch;

/// How to reach Bedrock. Everything is optional: unset values come from the
/// standard AWS chain or the defaults below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BedrockSettings {
    /// Overrides `AWS_REGION` / the profile's region.
    pub region: Option<String>,
    /// Overrides `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (e.g. a VPC endpoint or
    /// the emulator).
    pub endpoint_url: Option<String>,
    /// Speak HTTP/2 to a plain-http `endpoint_url` without negotiating it
    /// (h2c, as the emulator does), so calls in flight share a connection.
    /// Over https HTTP/2 is offered (ALPN) without this setting.
    pub http2_prior_knowledge: bool,
    /// TCP + TLS connect.
    pub connect_timeout_ms: u64,
    /// Time to the first byte of a response. Converse answers only when the
    /// model has finished, so this bounds generation time per attempt.
    pub read_timeout_ms: u64,
    /// The whole call, retries included.
    pub operation_timeout_ms: u64,
    /// The SDK's retry mode: `standard` (exponential backoff with jitter
    /// and a retry quota) or `adaptive` (standard plus client-side rate
    /// limiting when throttled).
    pub retry_mode: RetryMode,
    /// Attempts per call in the SDK's retry mode (1 = no retries); also the
    /// attempts per target of our own retries of the errors the SDK does
    /// not retry (model timeout, model error, a dropped connection).
    pub max_attempts: u32,
    /// Base of the exponential backoff between attempts (the SDK's and
    /// ours).
    pub initial_backoff_ms: u64,
    /// Longest backoff between two attempts (the SDK's and ours).
    pub max_backoff_ms: u64,
    /// The default deadline of an operation's model work (every target,
    /// retry and repair); a mapping's `model.deadline_ms` overrides it.
    pub deadline_ms: u64,
    /// Model calls in flight per instance; beyond it calls get an
    /// `OVERLOADED` fault at once.
    pub max_in_flight: usize,
    /// The `RetryAfterSeconds` hint of an `OVERLOADED` fault.
    pub overload_retry_after_secs: u64,
    /// The circuit breaker of each target.
    pub breaker: BreakerSettings,
    /// Entries of the response cache (operations with `cache:`).
    pub cache_entries: u64,
    /// Entries of the last-good store (operations with `on_failure: cache`).
    pub last_good_entries: u64,
}

/// The SDK's retry strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryMode {
    #[default]
    Standard,
    Adaptive,
}

impl Default for BedrockSettings {
    fn default() -> Self {
        // The model layer's keys default as the model layer does.
        let m = ModelSettings::default();
        BedrockSettings {
            region: None,
            endpoint_url: None,
            http2_prior_knowledge: false,
            connect_timeout_ms: 3_000,
            read_timeout_ms: 60_000,
            operation_timeout_ms: 120_000,
            retry_mode: RetryMode::Standard,
            max_attempts: m.max_attempts,
            initial_backoff_ms: m.initial_backoff_ms,
            max_backoff_ms: m.max_backoff_ms,
            deadline_ms: m.deadline_ms,
            max_in_flight: m.max_in_flight,
            overload_retry_after_secs: m.overload_retry_after_secs,
            breaker: m.breaker,
            cache_entries: m.cache_entries,
            last_good_entries: m.last_good_entries,
        }
    }
}

impl BedrockSettings {
    fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            .read_timeout(Duration::from_millis(self.read_timeout_ms))
            .operation_timeout(Duration::from_millis(self.operation_timeout_ms))
            .build()
    }

    fn retry_config(&self) -> RetryConfig {
        let config = match self.retry_mode {
            RetryMode::Standard => RetryConfig::standard(),
            RetryMode::Adaptive => RetryConfig::adaptive(),
        };
        config
            .with_max_attempts(self.max_attempts.max(1))
            .with_initial_backoff(Duration::from_millis(self.initial_backoff_ms))
            .with_max_backoff(self.max_backoff())
    }

    /// Longest wait between two attempts (never below the initial backoff).
    fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms.max(self.initial_backoff_ms))
    }

    /// The model layer's part of these settings.
    pub fn model_settings(&self) -> ModelSettings {
        ModelSettings {
            max_attempts: self.max_attempts,
            initial_backoff_ms: self.initial_backoff_ms,
            max_backoff_ms: self.max_backoff_ms,
            deadline_ms: self.deadline_ms,
            max_in_flight: self.max_in_flight,
            overload_retry_after_secs: self.overload_retry_after_secs,
            breaker: self.breaker.clone(),
            cache_entries: self.cache_entries,
            last_good_entries: self.last_good_entries,
        }
    }
}

/// Converse over aws-sdk-bedrockruntime. Cheap to clone (the SDK client is
/// reference-counted); share one per region.
#[derive(Clone)]
pub struct BedrockClient {
    client: aws_sdk_bedrockruntime::Client,
    /// For logs and Debug only; credentials are never kept here.
    region: Option<String>,
    endpoint_url: Option<String>,
}

impl fmt::Debug for BedrockClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockClient")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .finish_non_exhaustive()
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "no AWS region: set `region` in the bedrock settings, AWS_REGION, or a profile's region"
    )]
    NoRegion,
}

impl BedrockClient {
    /// A client configured by the standard AWS chain, overridden by
    /// `settings`. Credentials are resolved lazily, on the first call.
    pub async fn from_env(settings: &BedrockSettings) -> Result<Self, SetupError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let sdk_config = loader.load().await;
        Self::from_sdk_config(&sdk_config, settings)
    }

    /// A client from an already loaded AWS configuration (shared with other
    /// AWS clients, e.g. SQS). `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, when the
    /// configuration was loaded from the environment, applies here.
    pub fn from_sdk_config(
        sdk_config: &SdkConfig,
        settings: &BedrockSettings,
    ) -> Result<Self, SetupError> {
        let mut builder = aws_sdk_bedrockruntime::config::Builder::from(sdk_config)
            .timeout_config(settings.timeout_config())
            .retry_config(settings.retry_config());
        if let Some(region) = &settings.region {
            builder = builder.region(Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            builder = builder.endpoint_url(url.clone());
        }
        if settings.http2_prior_knowledge {
            builder = builder.http_client(h2c::H2cClient::default());
        }
        let config = builder.build();
        let region = config.region().map(|r| r.to_string());
        if region.is_none() {
            return Err(SetupError::NoRegion);
        }
        // The endpoint actually used may come from the environment; say so
        // in Debug output only when we set it ourselves.
        let endpoint_url = settings.endpoint_url.clone();
        tracing::debug!(?region, ?endpoint_url, "Bedrock client configured");
        Ok(BedrockClient {
            client: aws_sdk_bedrockruntime::Client::from_conf(config),
            region,
            endpoint_url,
        })
    }

    /// A client for a Converse emulator at `endpoint_url`, with static
    /// dummy credentials and region `us-east-1`, touching no environment
    /// variable or profile. `settings.endpoint_url` and `region` are
    /// ignored; timeouts, retries and `http2_prior_knowledge` apply.
    pub fn for_endpoint(endpoint_url: &str, settings: &BedrockSettings) -> Self {
        let credentials = Credentials::new("EMULATOR", "emulator-secret", None, None, "soapgate");
        let mut builder = aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(credentials)
            .endpoint_url(endpoint_url)
            .timeout_config(settings.timeout_config())
            .retry_config(settings.retry_config());
        if settings.http2_prior_knowledge {
            builder = builder.http_client(h2c::H2cClient::default());
        }
        let config = builder.build();
        BedrockClient {
            client: aws_sdk_bedrockruntime::Client::from_conf(config),
            region: Some("us-east-1".to_string()),
            endpoint_url: Some(endpoint_url.to_string()),
        }
    }

    async fn call(&self, model_id: &str, request: &Request) -> Result<Response, ModelError> {
        let input = convert::to_sdk(request)?;
        // A tool's input is read again from the raw answer: the SDK's
        // `Document` holds a number with a fraction as an f64, which cannot
        // keep an amount like 12345678901234567890.5.
        let raw = input.tool_config.is_some().then(RawBody::default);
        let started = std::time::Instant::now();
        let call = self
            .client
            .converse()
            .model_id(model_id)
            .set_messages(Some(input.messages))
            .set_system(input.system)
            .set_inference_config(input.inference_config)
            .set_tool_config(input.tool_config)
            .set_guardrail_config(input.guardrail_config)
            .set_additional_model_request_fields(input.additional_model_request_fields)
            .set_request_metadata(input.request_metadata);
        let output = match &raw {
            Some(raw) => call.customize().interceptor(raw.clone()).send().await,
            None => call.send().await,
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match output {
            Ok(output) => {
                let raw = raw.and_then(|r| r.take());
                let response = convert::from_sdk(output, raw.as_deref())?;
                tracing::debug!(
                    model_id,
                    elapsed_ms,
                    input_tokens = response.usage.input_tokens,
                    output_tokens = response.usage.output_tokens,
                    stop_reason = %response.stop_reason,
                    "converse call answered"
                );
                Ok(response)
            }
            Err(e) => {
                let error = errors::from_sdk(e);
                tracing::debug!(model_id, elapsed_ms, error = %error, "converse call failed");
                Err(error)
            }
        }
    }
}

/// Keeps the body of the last answered attempt of one call.
#[derive(Debug, Clone, Default)]
struct RawBody(Arc<Mutex<Option<Vec<u8>>>>);

impl RawBody {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().ok()?.take()
    }
}

impl Intercept for RawBody {
    fn name(&self) -> &'static str {
        "soapgate::RawBody"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(body), Ok(mut slot)) = (context.response().body().bytes(), self.0.lock()) {
            *slot = Some(body.to_vec());
        }
        Ok(())
    }
}

impl ModelClient for BedrockClient {
    fn converse<'a>(
        &'a self,
        model_id: &'a str,
        request: &'a Request,
    ) -> BoxFuture<'a, Result<Response, ModelError>> {
        Box::pin(self.call(model_id, request))
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The same configuration (credentials, endpoint, timeouts, retries)
    /// with another region.
    fn for_region(&self, region: &str) -> Option<std::sync::Arc<dyn ModelClient>> {
        let config = self
            .client
            .config()
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        Some(std::sync::Arc::new(BedrockClient {
            client: aws_sdk_bedrockruntime::Client::from_conf(config),
            region: Some(region.to_string()),
            endpoint_url: self.endpoint_url.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrockruntime::config::retry::RetryMode as SdkRetryMode;

    #[test]
    fn retry_settings_reach_the_sdk() {
        let defaults = BedrockSettings::default().retry_config();
        assert_eq!(defaults.mode(), SdkRetryMode::Standard);
        assert_eq!(defaults.max_attempts(), 3);
        assert_eq!(defaults.max_backoff(), Duration::from_secs(20));
        let adaptive = BedrockSettings {
            retry_mode: RetryMode::Adaptive,
            max_attempts: 5,
            initial_backoff_ms: 200,
            max_backoff_ms: 100,
            ..BedrockSettings::default()
        };
        let config = adaptive.retry_config();
        assert_eq!(config.mode(), SdkRetryMode::Adaptive);
        assert_eq!(config.max_attempts(), 5);
        assert_eq!(config.initial_backoff(), Duration::from_millis(200));
        // A cap below the base would make no sense: the base wins.
        assert_eq!(config.max_backoff(), Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_client_for_another_region_keeps_the_rest_of_the_configuration() {
        let client = BedrockClient::for_endpoint("http://127.0.0.1:9", &BedrockSettings::default());
        assert_eq!(client.region(), Some("us-east-1"));
        let other = client.for_region("eu-central-1").expect("a client");
        assert_eq!(other.region(), Some("eu-central-1"));
        let debug = format!("{other:?}");
        assert!(debug.contains("127.0.0.1:9"), "{debug}");
    }
}
