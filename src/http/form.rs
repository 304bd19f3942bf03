//! Reading an `application/x-www-form-urlencoded` body (RFC 6749 §3.2: the
//! token endpoint takes form parameters; the pages post forms) within a
//! size limit.
use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use crate::oauth::{Error, Params};

/// How long a request body may take to arrive.
const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The raw body, if it is a form within `limit` bytes.
pub async fn read_body(
    request: &HttpRequest,
    mut body: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, Error> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(Error::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(Error::PayloadTooLarge(limit));
    }
    // The head has its own deadline (`client_request_timeout`); the body
    // gets this one, so a client that stalls mid-body cannot hold a
    // connection and a handler forever.
    let read = async {
        let mut bytes = web::BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|_| Error::InvalidRequest("the request body could not be read".into()))?;
            if bytes.len() + chunk.len() > limit {
                return Err(Error::PayloadTooLarge(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    tokio::time::timeout(BODY_DEADLINE, read)
        .await
        .map_err(|_| Error::RequestTimeout)?
}

/// A form body as parameters; a repeated parameter is `invalid_request`.
pub async fn read_form(
    request: &HttpRequest,
    body: web::Payload,
    limit: usize,
) -> Result<Params, Error> {
    Params::parse(&read_body(request, body, limit).await?)
}
