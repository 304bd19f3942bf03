//! Logging: one subscriber, set once; one line per HTTP request.
//!
//! The request line carries method, route pattern, path (never the query
//! string, which could carry credentials), client IP, status, latency and
//! request id.
//! Nothing here formats request bodies or headers.
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber, writing to stderr (stdout is for command
/// output). `RUST_LOG` filters; without it, `default_level` applies.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    // Already set (tests build several apps in one process): keep the first.
    let _ = result;
}

struct RequestStart(Instant);

/// Root span per request plus the request log line (tracing-actix-web).
pub struct RequestLog;

impl RootSpanBuilder for RequestLog {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request
            .extensions_mut()
            .insert(RequestStart(Instant::now()));
        let request_id = request.extensions().get::<RequestId>().copied();
        tracing::info_span!(
            "http.request",
            request_id = %request_id.map(|id| id.to_string()).unwrap_or_default(),
            method = %request.method(),
            route = %request.match_pattern().unwrap_or_else(|| "unmatched".to_owned()),
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let Ok(response) = outcome else {
            span.in_scope(|| tracing::warn!(target: "authd::http", "request failed before a response was made"));
            return;
        };
        let request = response.request();
        let latency_us = request
            .extensions()
            .get::<RequestStart>()
            .map(|start| start.0.elapsed().as_micros() as u64)
            .unwrap_or_default();
        // The address `limits::client_ip::client_ip` believed (the one
        // function that decides it), or "-" when none was decided.
        let client_ip = request
            .extensions()
            .get::<crate::limits::client_ip::ClientIp>()
            .map(|ip| ip.addr.to_string())
            .unwrap_or_else(|| "-".to_owned());
        // request_id, method and route come from the span.
        span.in_scope(|| {
            tracing::info!(
                target: "authd::http",
                path = request.path(),
                client_ip,
                status = response.status().as_u16(),
                latency_us,
                "request"
            )
        });
    }
}
