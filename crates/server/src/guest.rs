//! The guest page, `GET /join/<token>`: a small TypeScript page (`ui/guest.html`,
//! `ui/src/guest/`) that Vite builds into `ui/dist-guest/` (`bash scripts/build-ui.sh`) and that
//! is embedded here at compile time. The page redeems its link (`POST /v1/guest`), then speaks
//! docs/protocol.md over `/v1/ws` with the browser's own `RTCPeerConnection`.
//!
//! The link's token is in the URL, so the page is sent with `Referrer-Policy: no-referrer` and a
//! content security policy that allows only this server (no CDN, no framing).

use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../ui/dist-guest/guest.html"
));
const SCRIPT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../ui/dist-guest/guest.js"
));
const STYLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../ui/dist-guest/guest.css"
));

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   media-src 'self' blob:; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

fn with_headers(
    content_type: &'static str,
    cache: &'static str,
    body: &'static str,
) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
}

/// The page, for any token (the page reads it from its own path and the server checks it when
/// the page redeems it).
pub async fn page(Path(_token): Path<String>) -> impl IntoResponse {
    with_headers("text/html; charset=utf-8", "no-store", PAGE)
}

/// The page's script.
pub async fn script() -> impl IntoResponse {
    with_headers("text/javascript; charset=utf-8", "no-cache", SCRIPT)
}

/// The page's style sheet.
pub async fn style() -> impl IntoResponse {
    with_headers("text/css; charset=utf-8", "no-cache", STYLE)
}
