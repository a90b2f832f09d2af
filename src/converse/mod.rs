//! Our own model of Amazon Bedrock's Converse API, and the [`ModelClient`]
//! trait the rest of soapgate calls models through.
//!
//! The types serialise to exactly the JSON the Converse wire protocol uses
//! (camelCase keys, unions as single-key objects, binary as base64), so the
//! same values serve golden files, the emulator and logs. This module is
//! pure: no I/O, no async runtime. It never names `http`, `bedrock` or
//! `emulator`; `bedrock` converts these types to the SDK's by hand and the
//! emulator parses the wire JSON straight into them.

mod batch;
mod error;
mod request;
mod response;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub use batch::{BatchClient, BatchError, BatchJobState, NewBatchJob, RecordAnswer};
pub use error::{DEFAULT_RETRY_AFTER, ModelError, ServiceErrorKind, UnknownServiceError};
pub use request::{
    ContentBlock, DocumentBlock, DocumentFormat, DocumentSource, EmptyObject, GuardrailConfig,
    GuardrailTrace, ImageBlock, ImageFormat, ImageSource, InferenceConfig, Message, Request, Role,
    SpecificTool, SystemBlock, Tool, ToolChoice, ToolConfig, ToolInputSchema, ToolResultBlock,
    ToolResultContent, ToolResultStatus, ToolSpec, ToolUseBlock,
};
pub use response::{Metrics, Output, Response, StopReason, Usage};

/// A boxed, sendable future: what [`ModelClient::converse`] returns, so the
/// trait stays object safe and usable as `Arc<dyn ModelClient>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that answers Converse requests: the Bedrock client in
/// production, the same client pointed at the emulator in tests.
///
/// Implementations do their own transport-level retries (the SDK's retry
/// mode); callers layer their own retries, fallback and invalid-output
/// repairs on top.
pub trait ModelClient: Send + Sync + fmt::Debug {
    /// Sends one Converse call for `model_id` (a model id, inference
    /// profile id or ARN).
    fn converse<'a>(
        &'a self,
        model_id: &'a str,
        request: &'a Request,
    ) -> BoxFuture<'a, Result<Response, ModelError>>;

    /// The region this client calls, when it knows.
    fn region(&self) -> Option<&str> {
        None
    }

    /// A client like this one for another region; `None` when the client
    /// has no regions (a test double): the caller then uses this one.
    fn for_region(&self, _region: &str) -> Option<std::sync::Arc<dyn ModelClient>> {
        None
    }
}

/// Base64 (standard alphabet, padded) for binary fields, as the wire uses.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}
