//! The OpenAPI 3.1 document's frame: title, description, the bearer scheme and the shared schemas. The
//! paths and their bodies come from the handlers' `#[utoipa::path]` annotations, collected by the router
//! that serves them (`lib.rs`), so the document lists exactly what is routed.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(
        title = "gemgate",
        description = "Events, projections, delivery and transactions of the chains gemgate indexes and sends to."
    ),
    modifiers(&Bearer),
    components(schemas(crate::dto::ErrorBody))
)]
pub struct ApiDoc;

/// `Authorization: Bearer <api key>`; a key's scopes (`read`, `transact`, `relay`, `admin`) decide what it
/// may call.
#[derive(Debug)]
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut OpenApi) {
        let scheme = SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        openapi.components.get_or_insert_with(Default::default).add_security_scheme("bearer", scheme);
    }
}
