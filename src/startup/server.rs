//! The actix server: middleware, outermost first (ARCHITECTURE.md), and
//! the routes.
use std::net::TcpListener;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{App, HttpMessage, HttpServer, middleware, web};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::http::{self, AppState};

/// `nosniff` everywhere; `no-store` unless the handler chose caching;
/// HSTS when the issuer is https (RFC 6797; no includeSubDomains: the
/// operator's other hosts are not authd's to decide).
fn security_headers(https: bool) -> middleware::DefaultHeaders {
    let headers = middleware::DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::CACHE_CONTROL, "no-store"));
    if https {
        headers.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
    } else {
        headers
    }
}

/// Takes from the per-IP buckets (`http::rate_limit::admit`) and adds the
/// `X-RateLimit-*` headers, or answers 429.
async fn rate_limited(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match http::rate_limit::admit(&request).await {
        Ok(decision) => {
            let mut response = next.call(request).await?;
            if let Some(decision) = decision {
                http::rate_limit::add_headers(response.headers_mut(), &decision);
            }
            Ok(response.map_into_left_body())
        }
        Err(refusal) => Ok(request.into_response(*refusal).map_into_right_body()),
    }
}

/// Answers preflights (after the per-IP buckets) and decorates the
/// responses of the CORS routes.
async fn cors(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(mut preflight) = http::cors::preflight(&request) {
        let response = match http::rate_limit::admit(&request).await {
            Ok(decision) => {
                if let Some(decision) = decision {
                    http::rate_limit::add_headers(preflight.headers_mut(), &decision);
                }
                preflight
            }
            Err(refusal) => *refusal,
        };
        return Ok(request.into_response(response).map_into_right_body());
    }
    let pending = http::cors::pending(&request);
    let mut response = next.call(request).await?;
    if let Some(pending) = pending {
        http::cors::decorate(pending, &mut response);
    }
    Ok(response.map_into_left_body())
}

/// Names the request id in `X-Request-Id` on every response and, while
/// draining for shutdown, retires keep-alive connections after their
/// current response, so no client writes a next request on a connection
/// the server is closing.
async fn request_id(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = request.extensions().get::<RequestId>().copied();
    let draining = request
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.draining.load(std::sync::atomic::Ordering::SeqCst));
    let mut response = next.call(request).await?;
    if draining {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    if let Some(value) = request_id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}

/// The admin API's server (`AUTHD_ADMIN_BIND`): its own listener and one
/// worker; the same request ids, logs and security headers as the public
/// one; no CORS (browsers have no business here) and no per-IP buckets
/// (every request carries a token or is refused before any work).
pub(super) fn serve_admin(
    listener: TcpListener,
    state: web::Data<AppState>,
    https: bool,
) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        let (app, document) = http::admin::openapi::mount(App::new().app_data(state.clone()));
        let methods = http::admin::Methods::of(&document);
        let json = serde_json::to_vec(&document).expect("the document serialises");
        app.app_data(web::Data::new(http::admin::openapi::Document(json.into())))
            .app_data(web::Data::new(methods))
            .default_service(web::to(http::admin::unrouted))
            .wrap(security_headers(https))
            .wrap(middleware::from_fn(request_id))
            .wrap(TracingLogger::<crate::telemetry::RequestLog>::new())
    })
    .workers(1)
    .client_request_timeout(std::time::Duration::from_secs(5))
    .keep_alive(std::time::Duration::from_secs(15))
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

pub(super) fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
    workers: usize,
    https: bool,
    shutdown_timeout: std::time::Duration,
) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // Per-IP rate limits (innermost: refusals get the headers below).
            .wrap(middleware::from_fn(rate_limited))
            // Preflights are answered before routing, after taking from
            // the same per-IP buckets as any request (an OPTIONS flood is
            // limited too; a refused preflight is a 429 without CORS
            // headers, which a browser treats as a failed preflight);
            // other responses of the CORS routes get their headers on the
            // way out.
            .wrap(middleware::from_fn(cors))
            // Every response (handlers set their own Cache-Control where
            // something may be cached).
            .wrap(security_headers(https))
            // Duration by route pattern (bounded label values), method and
            // status; 429s also count as rate-limit hits.
            .wrap_fn(|request, service| {
                let started = std::time::Instant::now();
                let response = service.call(request);
                async move {
                    let response = response.await?;
                    let route = response
                        .request()
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".to_owned());
                    let status = response.status();
                    if let Some(state) = response.request().app_data::<web::Data<AppState>>() {
                        let metrics = &state.metrics;
                        metrics
                            .http_duration
                            .with_label_values(&[
                                route.as_str(),
                                response.request().method().as_str(),
                                status.as_str(),
                            ])
                            .observe(started.elapsed().as_secs_f64());
                        if status == actix_web::http::StatusCode::TOO_MANY_REQUESTS {
                            metrics
                                .rate_limit_hits
                                .with_label_values(&[route.as_str()])
                                .inc();
                        }
                    }
                    Ok(response)
                }
            })
            // Every response names its request id (X-Request-Id); error
            // bodies carry it too.
            .wrap(middleware::from_fn(request_id))
            .wrap(TracingLogger::<crate::telemetry::RequestLog>::new())
            .configure(http::routes)
    })
    .workers(workers)
    // Slow clients: the request head must arrive within 5 s (else 408),
    // idle keep-alive connections close after 15 s. Header size is
    // bounded by actix-http (at most 96 headers; an oversized head is
    // refused with 431 before any handler runs); bodies by each endpoint.
    .client_request_timeout(std::time::Duration::from_secs(5))
    .client_disconnect_timeout(std::time::Duration::from_secs(1))
    .keep_alive(std::time::Duration::from_secs(15))
    // Signals are authd's (see `run_until_signalled`): readiness must turn
    // before the listener closes.
    .disable_signals()
    .shutdown_timeout((shutdown_timeout.as_secs_f64().ceil() as u64).max(1))
    .listen(listener)?
    .run();
    Ok(server)
}
