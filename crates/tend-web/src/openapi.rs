//! `GET /api/openapi.json`: the OpenAPI 3.1 document of Segment ingest (`/v1`) and the
//! REST API (`/api`), built at start from the handlers' `#[utoipa::path]` annotations and
//! the types they serialize, so it describes what the code sends rather than what a
//! hand-written file once said.
//!
//! Public, like any API's reference: it describes routes and shapes, never data, and
//! names no server, so it reveals nothing about the install that serves it.

use crate::error::ErrorBody;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi};

/// Name of the admin bearer token scheme.
pub const ADMIN_TOKEN: &str = "admin_token";
/// Name of the write key sent as HTTP Basic user name (Segment's clients).
pub const WRITE_KEY_BASIC: &str = "write_key";
/// Name of the write key sent as a Bearer token.
pub const WRITE_KEY_BEARER: &str = "write_key_bearer";
/// Name of Postmark's basic-auth credentials.
pub const POSTMARK_BASIC: &str = "postmark_basic";
/// Name of SendGrid's signature header.
pub const SENDGRID_SIGNATURE: &str = "sendgrid_signature";

/// The document's fixed parts; the paths come from the router (see [`crate::router`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tend",
        description = "Segment-compatible ingest under `/v1` (a write key) and the REST \
                       API under `/api` (an admin token). Every error answers with the \
                       same JSON body, `ErrorBody`, whose `field` names what was wrong.",
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody)),
    tags(
        (name = "ingest", description = "The Segment HTTP tracking API."),
        (name = "mail", description = "Mail providers' event webhooks: bounces, complaints, unsubscribes."),
        (name = "contacts", description = "Contacts, their timelines and erasure."),
        (name = "processes", description = "The process definitions in use."),
        (name = "tasks", description = "The team's agenda."),
        (name = "pace", description = "Budgets, capacity and what is held back."),
        (name = "reports", description = "Funnel, conversion, pace per day, neglect."),
        (name = "forecast", description = "The business run forward on a copy."),
    )
)]
pub struct ApiDoc;

/// Declares how callers authenticate.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin token from `tend token create --scope admin`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            WRITE_KEY_BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A write key (`tend token create --scope write`) as the user name \
                         and an empty password, as Segment's libraries send it. A key may \
                         also come as `writeKey` in the JSON body. Admin tokens are accepted.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            WRITE_KEY_BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A write key (or an admin token) as a Bearer token."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            POSTMARK_BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The user and password of `[channels.email.providers.postmark]`, \
                         written into the webhook's URL in Postmark.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SENDGRID_SIGNATURE,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::mail_webhooks::SENDGRID_SIGNATURE_HEADER,
                "SendGrid's ECDSA P-256 signature (base64) of the timestamp header followed \
                 by the body, checked with the `[channels.email.providers.sendgrid]` public key.",
            ))),
        );
    }
}

/// Adds the error answers every operation shares, so each path lists only its own:
/// every route is guarded (401, 403) and can fail inside (500); a route that reads a
/// body refuses one too large (413) or too slow (408) before its handler parses it.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_error(operation, "401", "Missing or unknown credentials.");
                add_error(
                    operation,
                    "403",
                    "These credentials may not use this route.",
                );
                add_error(
                    operation,
                    "500",
                    "A fault of the server's; logged, not shown.",
                );
                let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                if has_parameters || operation.request_body.is_some() {
                    add_error(
                        operation,
                        "400",
                        "A field, parameter or the body is invalid.",
                    );
                }
                if operation.request_body.is_some() {
                    add_error(operation, "408", "The body did not arrive in time.");
                    add_error(operation, "413", "The body is over the route's limit.");
                }
            }
        }
    }
}

fn add_error(operation: &mut Operation, status: &str, description: &str) {
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody")))),
        )
        .build();
    operation
        .responses
        .responses
        .insert(status.to_owned(), RefOr::T(response));
}

/// Completes the document once the router has added every path to it.
pub fn complete(document: &mut Document) {
    ErrorResponses.modify(document);
}

/// The operations the document describes, as `(METHOD, path template)`: what
/// [`crate::observe::matched_route`] checks every `/v1` and `/api` route it serves
/// against, so a route registered with plain axum instead of `utoipa_axum::routes!`
/// cannot go unnoticed.
#[derive(Clone, Default)]
pub struct Documented(std::sync::Arc<std::collections::HashMap<String, Vec<Method>>>);

impl Documented {
    /// Every operation of `document`.
    pub fn new(document: &Document) -> Self {
        let mut operations = std::collections::HashMap::new();
        for (path, item) in &document.paths.paths {
            let methods: Vec<Method> = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ]
            .into_iter()
            .filter(|(_, operation)| operation.is_some())
            .map(|(method, _)| method)
            .collect();
            operations.insert(path.clone(), methods);
        }
        Documented(std::sync::Arc::new(operations))
    }

    /// Whether serving `method route` keeps the promise that every `/v1` and `/api`
    /// operation is in the document: true for any other route (console pages, the
    /// document itself) and for a documented one; HEAD is served as GET.
    pub fn covers(&self, method: &Method, route: &str) -> bool {
        let is_api = route.starts_with("/v1/") || route.starts_with("/api/");
        if !is_api || route == OPENAPI_PATH {
            return true;
        }
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.0
            .get(route)
            .is_some_and(|methods| methods.contains(method))
    }
}

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// The document served at `/api/openapi.json`, rendered once.
#[derive(Clone)]
pub struct Rendered(pub std::sync::Arc<String>);

impl Rendered {
    /// Renders `document` as JSON.
    pub fn new(document: &Document) -> Self {
        let json = document
            .to_pretty_json()
            .expect("an OpenAPI document built by utoipa serializes");
        Rendered(std::sync::Arc::new(json))
    }

    /// The response of `GET /api/openapi.json`.
    pub fn response(&self) -> Response {
        let mut response = self.0.as_str().to_owned().into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::{PathsBuilder, Responses};

    #[test]
    fn only_documented_api_operations_are_covered() {
        let mut document = ApiDoc::openapi();
        document.paths = PathsBuilder::new()
            .path(
                "/api/contacts/{id}",
                PathItem::new(
                    HttpMethod::Get,
                    OperationBuilder::new().responses(Responses::new()),
                ),
            )
            .build();
        let documented = Documented::new(&document);
        assert!(documented.covers(&Method::GET, "/api/contacts/{id}"));
        assert!(documented.covers(&Method::HEAD, "/api/contacts/{id}"));
        assert!(!documented.covers(&Method::DELETE, "/api/contacts/{id}"));
        assert!(!documented.covers(&Method::POST, "/v1/mail/bounces"));
        assert!(!documented.covers(&Method::GET, "/api/undocumented"));
        assert!(documented.covers(&Method::GET, OPENAPI_PATH));
        assert!(documented.covers(&Method::GET, "/contacts/{id}"));
        assert!(documented.covers(&Method::GET, "/metrics"));
    }
}
