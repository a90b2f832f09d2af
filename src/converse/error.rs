//! How a Converse call fails: [`ServiceErrorKind`] names the errors the
//! service declares (with their wire names and HTTP statuses, which the
//! emulator reproduces), and [`ModelError`] is what a [`super::ModelClient`]
//! returns. Each error has a stable fault code that SOAP clients may branch
//! on, so the codes below must never be renamed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The retry-after hint given for throttling-like errors when the service
/// sent none: long enough for a token bucket to refill, short enough that a
/// batch caller does not give up.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The errors the Converse operation declares in Bedrock's service model.
/// Script files name them in snake_case (`throttling`, `model_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceErrorKind {
    Validation,
    AccessDenied,
    ResourceNotFound,
    ModelTimeout,
    ModelError,
    Throttling,
    ModelNotReady,
    ServiceQuotaExceeded,
    InternalServer,
    ServiceUnavailable,
}

impl ServiceErrorKind {
    pub const ALL: [ServiceErrorKind; 10] = [
        ServiceErrorKind::Validation,
        ServiceErrorKind::AccessDenied,
        ServiceErrorKind::ResourceNotFound,
        ServiceErrorKind::ModelTimeout,
        ServiceErrorKind::ModelError,
        ServiceErrorKind::Throttling,
        ServiceErrorKind::ModelNotReady,
        ServiceErrorKind::ServiceQuotaExceeded,
        ServiceErrorKind::InternalServer,
        ServiceErrorKind::ServiceUnavailable,
    ];

    /// The error's shape name: the `x-amzn-ErrorType` header value.
    pub fn exception_name(self) -> &'static str {
        match self {
            ServiceErrorKind::Validation => "ValidationException",
            ServiceErrorKind::AccessDenied => "AccessDeniedException",
            ServiceErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ServiceErrorKind::ModelTimeout => "ModelTimeoutException",
            ServiceErrorKind::ModelError => "ModelErrorException",
            ServiceErrorKind::Throttling => "ThrottlingException",
            ServiceErrorKind::ModelNotReady => "ModelNotReadyException",
            ServiceErrorKind::ServiceQuotaExceeded => "ServiceQuotaExceededException",
            ServiceErrorKind::InternalServer => "InternalServerException",
            ServiceErrorKind::ServiceUnavailable => "ServiceUnavailableException",
        }
    }

    /// The HTTP status the service model gives the error.
    pub fn http_status(self) -> u16 {
        match self {
            ServiceErrorKind::Validation | ServiceErrorKind::ServiceQuotaExceeded => 400,
            ServiceErrorKind::AccessDenied => 403,
            ServiceErrorKind::ResourceNotFound => 404,
            ServiceErrorKind::ModelTimeout => 408,
            ServiceErrorKind::ModelError => 424,
            ServiceErrorKind::Throttling | ServiceErrorKind::ModelNotReady => 429,
            ServiceErrorKind::InternalServer => 500,
            ServiceErrorKind::ServiceUnavailable => 503,
        }
    }

    /// The snake_case name used in script files.
    pub fn script_name(self) -> &'static str {
        match self {
            ServiceErrorKind::Validation => "validation",
            ServiceErrorKind::AccessDenied => "access_denied",
            ServiceErrorKind::ResourceNotFound => "resource_not_found",
            ServiceErrorKind::ModelTimeout => "model_timeout",
            ServiceErrorKind::ModelError => "model_error",
            ServiceErrorKind::Throttling => "throttling",
            ServiceErrorKind::ModelNotReady => "model_not_ready",
            ServiceErrorKind::ServiceQuotaExceeded => "service_quota_exceeded",
            ServiceErrorKind::InternalServer => "internal_server",
            ServiceErrorKind::ServiceUnavailable => "service_unavailable",
        }
    }
}

impl fmt::Display for ServiceErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.exception_name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Converse error {0:?}")]
pub struct UnknownServiceError(pub String);

impl FromStr for ServiceErrorKind {
    type Err = UnknownServiceError;

    /// Accepts the exception name with or without a `:namespace` suffix or
    /// `prefix#` (both appear in `x-amzn-ErrorType` headers in the wild).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.split(':').next().unwrap_or(s);
        let name = name.rsplit('#').next().unwrap_or(name);
        ServiceErrorKind::ALL
            .into_iter()
            .find(|k| k.exception_name() == name || k.script_name() == name)
            .ok_or_else(|| UnknownServiceError(s.to_string()))
    }
}

/// A failed Converse call. `message` fields hold the service's own text,
/// which may name accounts or resources: log it, never put it in a fault
/// (use [`ModelError::safe_message`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// 400: the request breaks the service's constraints.
    #[error("model rejected the request: {message}")]
    Validation { message: String },
    /// 403: the credentials may not call this model.
    #[error("access to the model denied: {message}")]
    AccessDenied { message: String },
    /// 404: no such model, profile or ARN in this region.
    #[error("model not found: {message}")]
    ResourceNotFound { message: String },
    /// 408: the model took longer than the service allows.
    #[error("model timed out: {message}")]
    ModelTimeout { message: String },
    /// 424: the model itself failed while processing the request.
    #[error("model failed: {message}")]
    ModelFailed {
        message: String,
        original_status_code: Option<i32>,
    },
    /// 429: too many requests or tokens.
    #[error("model throttled: {message}")]
    Throttling {
        message: String,
        /// What the service asked for, when it said.
        retry_after: Option<Duration>,
    },
    /// 429: the model is being loaded (custom or imported models).
    #[error("model not ready: {message}")]
    ModelNotReady { message: String },
    /// 400: an account quota is exhausted.
    #[error("service quota exceeded: {message}")]
    ServiceQuotaExceeded { message: String },
    /// 500 from the service.
    #[error("model service internal error: {message}")]
    InternalServer { message: String },
    /// 503 from the service.
    #[error("model service unavailable: {message}")]
    ServiceUnavailable { message: String },
    /// No answer within the configured connect, read or operation timeout.
    #[error("model call timed out: {message}")]
    Timeout { message: String },
    /// The service could not be reached (DNS, refused, reset, TLS).
    #[error("could not reach the model service: {message}")]
    Connection { message: String },
    /// An answer came back that cannot be understood (not JSON, missing
    /// fields, an output shape this client does not know).
    #[error("unusable answer from the model service: {message}")]
    InvalidResponse { message: String },
    /// Anything else: missing credentials, an undeclared error code, a
    /// request the client could not even build.
    #[error("model call failed: {message}")]
    Other { message: String },
}

impl ModelError {
    /// The error for a declared service error kind.
    pub fn from_service(kind: ServiceErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        match kind {
            ServiceErrorKind::Validation => ModelError::Validation { message },
            ServiceErrorKind::AccessDenied => ModelError::AccessDenied { message },
            ServiceErrorKind::ResourceNotFound => ModelError::ResourceNotFound { message },
            ServiceErrorKind::ModelTimeout => ModelError::ModelTimeout { message },
            ServiceErrorKind::ModelError => ModelError::ModelFailed {
                message,
                original_status_code: None,
            },
            ServiceErrorKind::Throttling => ModelError::Throttling {
                message,
                retry_after: None,
            },
            ServiceErrorKind::ModelNotReady => ModelError::ModelNotReady { message },
            ServiceErrorKind::ServiceQuotaExceeded => ModelError::ServiceQuotaExceeded { message },
            ServiceErrorKind::InternalServer => ModelError::InternalServer { message },
            ServiceErrorKind::ServiceUnavailable => ModelError::ServiceUnavailable { message },
        }
    }

    /// The declared service error this is, if it is one.
    pub fn service_kind(&self) -> Option<ServiceErrorKind> {
        Some(match self {
            ModelError::Validation { .. } => ServiceErrorKind::Validation,
            ModelError::AccessDenied { .. } => ServiceErrorKind::AccessDenied,
            ModelError::ResourceNotFound { .. } => ServiceErrorKind::ResourceNotFound,
            ModelError::ModelTimeout { .. } => ServiceErrorKind::ModelTimeout,
            ModelError::ModelFailed { .. } => ServiceErrorKind::ModelError,
            ModelError::Throttling { .. } => ServiceErrorKind::Throttling,
            ModelError::ModelNotReady { .. } => ServiceErrorKind::ModelNotReady,
            ModelError::ServiceQuotaExceeded { .. } => ServiceErrorKind::ServiceQuotaExceeded,
            ModelError::InternalServer { .. } => ServiceErrorKind::InternalServer,
            ModelError::ServiceUnavailable { .. } => ServiceErrorKind::ServiceUnavailable,
            ModelError::Timeout { .. }
            | ModelError::Connection { .. }
            | ModelError::InvalidResponse { .. }
            | ModelError::Other { .. } => return None,
        })
    }

    /// The stable code for the SOAP fault detail. Several errors share a
    /// code where a client would react the same way.
    pub fn fault_code(&self) -> &'static str {
        match self {
            ModelError::Validation { .. } => "MODEL_REJECTED_REQUEST",
            ModelError::AccessDenied { .. } => "MODEL_ACCESS_DENIED",
            ModelError::ResourceNotFound { .. } => "MODEL_NOT_FOUND",
            ModelError::ModelTimeout { .. } | ModelError::Timeout { .. } => "MODEL_TIMEOUT",
            ModelError::ModelFailed { .. } => "MODEL_ERROR",
            ModelError::Throttling { .. } | ModelError::ServiceQuotaExceeded { .. } => {
                "MODEL_THROTTLED"
            }
            ModelError::ModelNotReady { .. }
            | ModelError::InternalServer { .. }
            | ModelError::ServiceUnavailable { .. }
            | ModelError::Connection { .. }
            | ModelError::Other { .. } => "MODEL_UNAVAILABLE",
            ModelError::InvalidResponse { .. } => "INVALID_MODEL_OUTPUT",
        }
    }

    /// Whether the same request may succeed if sent again later (or to the
    /// next model of a fallback chain). Requests the service refused as
    /// such, and denied access, will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ModelError::ModelTimeout { .. }
                | ModelError::ModelFailed { .. }
                | ModelError::Throttling { .. }
                | ModelError::ModelNotReady { .. }
                | ModelError::InternalServer { .. }
                | ModelError::ServiceUnavailable { .. }
                | ModelError::Timeout { .. }
                | ModelError::Connection { .. }
        )
    }

    /// How long a client should wait before trying again, for errors that
    /// mean "busy": the service's own hint when it sent one, else
    /// [`DEFAULT_RETRY_AFTER`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ModelError::Throttling { retry_after, .. } => {
                Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER))
            }
            ModelError::ModelNotReady { .. }
            | ModelError::ServiceQuotaExceeded { .. }
            | ModelError::ServiceUnavailable { .. } => Some(DEFAULT_RETRY_AFTER),
            _ => None,
        }
    }

    /// A message safe for a SOAP fault: says what happened, names nothing
    /// of the account, region or model configuration.
    pub fn safe_message(&self) -> &'static str {
        match self {
            ModelError::Validation { .. } => "The model service rejected the request",
            ModelError::AccessDenied { .. } => "The facade may not use the configured model",
            ModelError::ResourceNotFound { .. } => "The configured model was not found",
            ModelError::ModelTimeout { .. } | ModelError::Timeout { .. } => {
                "The model did not answer in time"
            }
            ModelError::ModelFailed { .. } => "The model failed to process the request",
            ModelError::Throttling { .. } | ModelError::ServiceQuotaExceeded { .. } => {
                "The model service is throttling requests; retry later"
            }
            ModelError::ModelNotReady { .. }
            | ModelError::InternalServer { .. }
            | ModelError::ServiceUnavailable { .. }
            | ModelError::Connection { .. }
            | ModelError::Other { .. } => "The model service is unavailable",
            ModelError::InvalidResponse { .. } => "The model service gave an unusable answer",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_wire_and_script_names() {
        for kind in ServiceErrorKind::ALL {
            assert_eq!(kind.exception_name().parse::<ServiceErrorKind>(), Ok(kind));
            assert_eq!(kind.script_name().parse::<ServiceErrorKind>(), Ok(kind));
            assert_eq!(
                ModelError::from_service(kind, "x").service_kind(),
                Some(kind)
            );
        }
        assert_eq!(
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
                .parse::<ServiceErrorKind>(),
            Ok(ServiceErrorKind::Throttling)
        );
        assert!("ConflictException".parse::<ServiceErrorKind>().is_err());
    }

    #[test]
    fn fault_codes_and_retry_hints() {
        let throttled = ModelError::from_service(ServiceErrorKind::Throttling, "slow down");
        assert_eq!(throttled.fault_code(), "MODEL_THROTTLED");
        assert!(throttled.is_retryable());
        assert_eq!(throttled.retry_after(), Some(DEFAULT_RETRY_AFTER));
        let hinted = ModelError::Throttling {
            message: String::new(),
            retry_after: Some(Duration::from_secs(9)),
        };
        assert_eq!(hinted.retry_after(), Some(Duration::from_secs(9)));

        let denied = ModelError::from_service(ServiceErrorKind::AccessDenied, "no");
        assert_eq!(denied.fault_code(), "MODEL_ACCESS_DENIED");
        assert!(!denied.is_retryable());
        assert_eq!(denied.retry_after(), None);

        assert_eq!(
            ModelError::from_service(ServiceErrorKind::Validation, "").fault_code(),
            "MODEL_REJECTED_REQUEST"
        );
        assert_eq!(
            ModelError::Timeout {
                message: String::new()
            }
            .fault_code(),
            "MODEL_TIMEOUT"
        );
    }
}
