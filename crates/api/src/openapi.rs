//! The OpenAPI 3.1 document's frame: title, description, the bearer scheme and the shared schemas. The
//! paths and their bodies come from the handlers' `#[utoipa::path]` annotations, collected by the router
//! that serves them (`lib.rs`), so the document lists exactly what is routed.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};

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

/// The credentials: `bearer` (`Authorization: Bearer <api key>`), `jwt` (`Authorization: Bearer <JWT>` of
/// `[api.jwt]`) and `parse_session` (`X-Parse-Session-Token` of `[api.parse]`); the caller's scopes (`read`,
/// `transact`, `relay`, `admin`) decide what it may call.
#[derive(Debug)]
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let key = SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("an API key")).build(),
        );
        components.add_security_scheme("bearer", key);
        let jwt = SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("a JWT of the issuer configured in [api.jwt]"))
                .build(),
        );
        components.add_security_scheme("jwt", jwt);
        let mut session = ApiKeyValue::new("X-Parse-Session-Token");
        session.description = Some("a Parse Server session of [api.parse]".into());
        components.add_security_scheme("parse_session", SecurityScheme::ApiKey(ApiKey::Header(session)));
    }
}

/// Every operation that takes an API key takes a JWT or a Parse session as well: both are added as
/// alternatives to each `bearer` requirement of the collected document.
pub fn with_alternative_credentials(document: &mut OpenApi) {
    let none = || Vec::<String>::new();
    let bearer = SecurityRequirement::new("bearer", none());
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            if let Some(security) = operation.security.as_mut().filter(|s| s.contains(&bearer)) {
                security.push(SecurityRequirement::new("jwt", none()));
                security.push(SecurityRequirement::new("parse_session", none()));
            }
        }
    }
}
