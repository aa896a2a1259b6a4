//! The operator dashboard at `/`: one HTML page, its script and its style, embedded in the binary (no CDN).
//! The page reads the public API (`/v1/status`, `/v1/history`, `/v1/transactions`, `/v1/drift`,
//! `/v1/snapshots`, `/v1/stream`) and acts through it (`POST /v1/sinks/{name}/pause|resume|requeue` with
//! the admin key entered in the page): it holds no power of its own. Served with a strict content
//! security policy: nothing but this origin's own script, style and API.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                      base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub async fn index() -> impl IntoResponse {
    page("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> impl IntoResponse {
    page("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> impl IntoResponse {
    page("text/css; charset=utf-8", STYLE)
}
