//! SDK errors to [`ModelError`]: declared Converse errors by variant,
//! undeclared ones by their error code, and transport failures by what the
//! SDK says went wrong (timeouts are told apart from refused connections).

use std::time::Duration;

use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;

use crate::converse::{ModelError, ServiceErrorKind};

pub(super) fn from_sdk(err: SdkError<ConverseError, HttpResponse>) -> ModelError {
    // The full chain (e.g. "dispatch failure: io error: connection
    // refused"), taken before the error is taken apart.
    let context = DisplayErrorContext(&err).to_string();
    match err {
        SdkError::ServiceError(context) => {
            let retry_after = retry_after(context.raw());
            from_converse_error(context.into_err(), retry_after)
        }
        SdkError::TimeoutError(_) => ModelError::Timeout {
            message: "no answer within the operation timeout".to_string(),
        },
        SdkError::DispatchFailure(failure) => {
            let message = context;
            if failure.is_timeout() {
                ModelError::Timeout { message }
            } else if failure.is_io() {
                ModelError::Connection { message }
            } else {
                ModelError::Other { message }
            }
        }
        SdkError::ResponseError(_) => ModelError::InvalidResponse { message: context },
        _ => ModelError::Other { message: context },
    }
}

fn from_converse_error(err: ConverseError, retry_after: Option<Duration>) -> ModelError {
    let message = err.message().unwrap_or_default().to_string();
    match err {
        ConverseError::ValidationException(_) => ModelError::Validation { message },
        ConverseError::AccessDeniedException(_) => ModelError::AccessDenied { message },
        ConverseError::ResourceNotFoundException(_) => ModelError::ResourceNotFound { message },
        ConverseError::ModelTimeoutException(_) => ModelError::ModelTimeout { message },
        ConverseError::ModelErrorException(e) => ModelError::ModelFailed {
            message,
            original_status_code: e.original_status_code,
        },
        ConverseError::ThrottlingException(_) => ModelError::Throttling {
            message,
            retry_after,
        },
        ConverseError::ModelNotReadyException(_) => ModelError::ModelNotReady { message },
        ConverseError::InternalServerException(_) => ModelError::InternalServer { message },
        ConverseError::ServiceUnavailableException(_) => ModelError::ServiceUnavailable { message },
        // Undeclared codes (ServiceQuotaExceededException appears on the
        // wire although Converse does not declare it) go by their code.
        other => match other.code().map(str::parse::<ServiceErrorKind>) {
            Some(Ok(ServiceErrorKind::Throttling)) => ModelError::Throttling {
                message,
                retry_after,
            },
            Some(Ok(kind)) => ModelError::from_service(kind, message),
            Some(Err(_)) | None => ModelError::Other {
                message: format!(
                    "{} ({})",
                    DisplayErrorContext(&other),
                    other.code().unwrap_or("no error code")
                ),
            },
        },
    }
}

/// `Retry-After` in seconds, or the AWS `x-amz-retry-after` in
/// milliseconds, whichever the service sent.
fn retry_after(response: &HttpResponse) -> Option<Duration> {
    let headers = response.headers();
    if let Some(secs) = headers
        .get("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_secs(secs));
    }
    headers
        .get("x-amz-retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}
