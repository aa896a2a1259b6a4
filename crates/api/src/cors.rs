//! Cross-origin requests from browser pages (`api.cors_origins`): exact origins may read and write with the
//! `Authorization` header; `*` lets any other origin read (GET and HEAD), never with credentials and never
//! write. Preflights are answered here, before routing and authentication (browsers send them without the
//! key). Without configured origins no CORS header is ever sent, so browsers keep their same-origin rule.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gemgate_config::CorsSettings;

/// Request headers a page may send: the API key, JSON bodies, idempotency keys, SSE resumption.
const ALLOW_HEADERS: &str =
    "authorization, content-type, idempotency-key, last-event-id, x-parse-session-token";
/// Response headers a page may read besides the CORS-safelisted ones.
const EXPOSE_HEADERS: &str = "retry-after";
const WRITE_METHODS: &str = "GET, HEAD, POST, OPTIONS";
const READ_METHODS: &str = "GET, HEAD, OPTIONS";
/// Browsers may cache a preflight this long (Chromium caps it at 2 hours).
const MAX_AGE_SECONDS: &str = "600";

/// What an origin may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// A configured origin: every method, credentials allowed.
    Full,
    /// `*`: reads only, no credentials.
    Reads,
}

fn grant(cors: &CorsSettings, origin: &str) -> Option<Grant> {
    if cors.origins.iter().any(|o| o == origin) {
        Some(Grant::Full)
    } else if cors.any_origin_reads {
        Some(Grant::Reads)
    } else {
        None
    }
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The middleware: answers preflights, adds the headers to allowed requests' answers.
pub async fn cors(
    State(cors): State<std::sync::Arc<CorsSettings>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_string);
    let Some(origin) = origin.filter(|_| cors.is_enabled()) else {
        return next.run(request).await;
    };
    let granted = grant(&cors, &origin);
    let preflight = request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        return preflight_answer(granted, &origin, request.headers());
    }
    let method = request.method().clone();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    match granted {
        Some(Grant::Full) => allow_origin(headers, &origin),
        Some(Grant::Reads) if is_read(&method) => {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
        _ => return response,
    }
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    response
}

/// A configured origin's grant: the origin echoed, with credentials.
fn allow_origin(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
}

/// A preflight is answered 204 with what the origin may do, or 403 without any CORS header (the browser
/// then refuses the real request).
fn preflight_answer(granted: Option<Grant>, origin: &str, request: &HeaderMap) -> Response {
    let asked = request
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| m.to_str().ok())
        .and_then(|m| m.parse::<Method>().ok());
    let allowed = match (granted, &asked) {
        (Some(Grant::Full), Some(m)) => is_read(m) || m == Method::POST,
        (Some(Grant::Reads), Some(m)) => is_read(m),
        _ => false,
    };
    let mut response = Response::new(Body::empty());
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("origin"));
    if !allowed {
        *response.status_mut() = StatusCode::FORBIDDEN;
        return response;
    }
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    if granted == Some(Grant::Full) {
        allow_origin(headers, origin);
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(WRITE_METHODS));
    } else {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(READ_METHODS));
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE_SECONDS));
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(origins: &[&str], any: bool) -> CorsSettings {
        CorsSettings { origins: origins.iter().map(|s| s.to_string()).collect(), any_origin_reads: any }
    }

    fn preflight(granted: Option<Grant>, method: &str) -> Response {
        let mut request = HeaderMap::new();
        request.insert(header::ACCESS_CONTROL_REQUEST_METHOD, HeaderValue::from_str(method).unwrap());
        preflight_answer(granted, "https://app.example.com", &request)
    }

    #[test]
    fn configured_origins_write_and_the_wildcard_only_reads() {
        let cors = settings(&["https://app.example.com"], true);
        assert_eq!(grant(&cors, "https://app.example.com"), Some(Grant::Full));
        assert_eq!(grant(&cors, "https://evil.example.com"), Some(Grant::Reads));
        assert_eq!(grant(&settings(&["https://app.example.com"], false), "https://evil.example.com"), None);

        let full = preflight(Some(Grant::Full), "POST");
        assert_eq!(full.status(), StatusCode::NO_CONTENT);
        assert_eq!(full.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(full.headers()[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");

        let reads = preflight(Some(Grant::Reads), "GET");
        assert_eq!(reads.status(), StatusCode::NO_CONTENT);
        assert_eq!(reads.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(!reads.headers().contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS), "never with *");

        let write_from_any = preflight(Some(Grant::Reads), "POST");
        assert_eq!(write_from_any.status(), StatusCode::FORBIDDEN);
        assert!(!write_from_any.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(preflight(None, "GET").status(), StatusCode::FORBIDDEN);
        assert_eq!(preflight(Some(Grant::Full), "DELETE").status(), StatusCode::FORBIDDEN);
    }
}
