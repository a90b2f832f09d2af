//! Logs and traces: a `tracing` subscriber writing text or JSON lines, and,
//! when an OTLP endpoint is configured, the same spans exported to an
//! OpenTelemetry collector over OTLP/HTTP (protobuf).
//!
//! Spans carry what the handlers record on them (`soap_call` and `job`:
//! correlation id, service, operation, tenant), so a trace in the
//! collector is found by the correlation id a client sees in its fault.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{ExporterBuildError, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// The variables the OTLP exporter reads on its own; either one turns the
/// export on when no endpoint is configured.
const OTLP_ENV: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Holds the span exporter, if any, until the process ends; dropping it
/// flushes the spans still batched. Drop it outside the async runtime (the
/// exporter's HTTP client blocks).
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("flushing spans to the OTLP endpoint failed: {e}");
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info`),
/// log lines in `format`, and span export to `otlp_endpoint` (a collector's
/// base URL; `/v1/traces` is added) or to the endpoint the standard
/// `OTEL_EXPORTER_OTLP_*` variables name.
pub fn init(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> Result<Telemetry, ExporterBuildError> {
    let provider = tracer_provider(otlp_endpoint)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never into log files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let lines = tracing_subscriber::fmt::layer().with_ansi(ansi);
    let lines = match format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines.json().boxed(),
    };
    let export = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("soapgate")));
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(export)
        .init();
    Ok(Telemetry { provider })
}

fn tracer_provider(
    configured: Option<&str>,
) -> Result<Option<SdkTracerProvider>, ExporterBuildError> {
    let configured = configured.map(str::trim).filter(|e| !e.is_empty());
    let from_env = OTLP_ENV
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    if configured.is_none() && !from_env {
        return Ok(None);
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(base) = configured {
        exporter = exporter.with_endpoint(traces_url(base));
    }
    let mut resource = Resource::builder();
    // OTEL_SERVICE_NAME, when set, names the service; else "soapgate".
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("soapgate");
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter.build()?)
            .with_resource(resource.build())
            .build(),
    ))
}

/// A collector's base URL with the OTLP/HTTP traces path.
fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example.com/v1/traces"),
            "https://otel.example.com/v1/traces"
        );
    }
}
