//! GraphiQL, served whole from the service itself: `GET /graphql` (dev mode) answers the
//! page and `/graphiql/…` its assets, compiled into the binary from `assets/graphiql/`
//! (versions and checksums in `assets/graphiql/README.md`). Nothing is fetched from a CDN,
//! so the page works on an air-gapped machine, and its Content-Security-Policy allows
//! nothing but this origin.

use actix_web::http::header;
use actix_web::HttpResponse;

/// The page's policy: scripts, styles and requests only from this origin. Inline styles are
/// allowed because GraphiQL's editors (CodeMirror) position elements with them; fonts and
/// images as `data:` URLs, which the stylesheet embeds.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// An asset: its name under `/graphiql/`, media type and bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $media_type:literal) => {
        Asset {
            name: $name,
            media_type: $media_type,
            bytes: include_bytes!(concat!("../assets/graphiql/", $name)),
        }
    };
}

const ASSETS: [Asset; 6] = [
    asset!("graphiql.min.js", "text/javascript; charset=utf-8"),
    asset!("graphiql.min.css", "text/css; charset=utf-8"),
    asset!("react.production.min.js", "text/javascript; charset=utf-8"),
    asset!(
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!("init.js", "text/javascript; charset=utf-8"),
    asset!("page.css", "text/css; charset=utf-8"),
];

const PAGE: &[u8] = include_bytes!("../assets/graphiql/index.html");

/// The GraphiQL page.
pub fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE)
}

/// One of the page's assets, by its name under `/graphiql/`.
pub fn asset(name: &str) -> Option<HttpResponse> {
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    Some(
        HttpResponse::Ok()
            .content_type(asset.media_type)
            .insert_header(("x-content-type-options", "nosniff"))
            // Revalidated on every load, so an upgrade of the service is picked up.
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(asset.bytes),
    )
}
