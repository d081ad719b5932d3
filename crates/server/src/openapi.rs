//! The OpenAPI document, served at `/api/v1/openapi.json`, and the
//! interactive page that shows it at `/api/docs`.
//!
//! Operations declare their success answers and the errors that are theirs
//! alone (409, 422); [`document`] adds the errors every operation of a kind
//! can answer (see [`common_errors`]), each with the error envelope, so a
//! new endpoint gets them by being listed in `paths(...)`.

use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::api::{
    access_keys, audit, devices, filters, firmware, gateway_tokens, group_tokens, groups, jobs, keys, products,
    signing_profiles, tenants, trust, trust_anchors, users,
};
use crate::error::{ErrorCode, HttpStatus};

#[derive(OpenApi)]
#[openapi(
    info(title = "updraft management API", description = "Products, firmware, devices, device filters, groups, jobs, tenants, API keys, users, gateway tokens, code signing's trust anchors and the audit log. The device API (hawkBit DDI) lives under `/{tenant}/controller/v1/{controllerId}`. \
        Every call needs `Authorization: Bearer <api key>`. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}` \
        with a code from the table in `x-error-codes`."),
    paths(
        tenants::create, tenants::list, tenants::create_key, keys::create, keys::list, keys::update, keys::delete,
        users::create, users::list, users::delete, users::set_password, audit::list,
        products::create, products::list, products::get, products::update, products::delete,
        trust::status, trust::prepare_keys, trust::rotate, trust::root, trust::set_root,
        firmware::upload, firmware::list, firmware::get, firmware::delete, firmware::download,
        devices::create, devices::import, devices::list, devices::search, devices::get, devices::update, devices::delete, devices::reissue_token, devices::mqtt_certificate,
        filters::estimate, filters::preview, filters::create, filters::list, filters::get, filters::update, filters::delete,
        groups::create, groups::list, groups::get, groups::update, groups::delete, groups::change_members, groups::members,
        gateway_tokens::create, gateway_tokens::list, gateway_tokens::delete,
        access_keys::create, access_keys::list, access_keys::delete,
        group_tokens::create, group_tokens::list, group_tokens::delete,
        trust_anchors::create, trust_anchors::list, trust_anchors::get, trust_anchors::delete,
        signing_profiles::create, signing_profiles::list, signing_profiles::get, signing_profiles::delete,
        jobs::create, jobs::list, jobs::get, jobs::start, jobs::pause, jobs::resume, jobs::cancel, jobs::next_phase, jobs::retry_failed,
        jobs::set_schedule, jobs::estimate, jobs::executions, jobs::device_executions, jobs::consent,
    ),
    tags((name = "tenants"), (name = "keys"), (name = "users"), (name = "audit"), (name = "products"), (name = "trust"), (name = "firmware"), (name = "devices"), (name = "filters"), (name = "groups"), (name = "jobs"), (name = "code signing")),
    security(("api_key" = []))
)]
struct Doc;

/// The error statuses, each a shared response in `components.responses`.
const ERROR_RESPONSES: &[(u16, &str)] = &[
    (400, "BadRequest"),
    (401, "Unauthorized"),
    (403, "Forbidden"),
    (404, "NotFound"),
    (409, "Conflict"),
    (413, "PayloadTooLarge"),
    (415, "UnsupportedMediaType"),
    (422, "Unprocessable"),
    (429, "RateLimited"),
    (500, "Internal"),
    (503, "Unavailable"),
];

/// The errors an operation can answer because of what it is: every call is
/// authenticated (401), checked against the key's role (403), rate limited
/// (429) and served by the store (503) and the blob store (500 when it
/// fails, 503 when the database does); a call with a body can send one that
/// is malformed (400), too large (413) or of another type (415); a call with
/// parameters can send malformed ones (400); a call that names resources, in
/// its path or its body, can name one that does not exist (404).
pub fn common_errors(has_body: bool, has_path_params: bool, has_query_params: bool) -> Vec<u16> {
    let mut statuses = vec![401, 403, 429, 500, 503];
    if has_body || has_path_params || has_query_params {
        statuses.push(400);
    }
    if has_body || has_path_params {
        statuses.push(404);
    }
    if has_body {
        statuses.extend([413, 415]);
    }
    statuses.sort_unstable();
    statuses
}

/// The error envelope's schema: `code` is one of the table's codes.
fn error_schema() -> Value {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
    json!({
        "type": "object",
        "required": ["error"],
        "additionalProperties": false,
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": false,
            "properties": {
                "code": {"type": "string", "enum": codes, "description": "a stable code from `x-error-codes`"},
                "message": {"type": "string", "description": "what is wrong, naming the field"},
                "details": {"description": "more about the error: the broken fields (`[{field, message}]`), a filter's problems, an import's lines"},
            },
        }},
    })
}

fn error_response(status: u16) -> Value {
    let codes: Vec<String> = ErrorCode::ALL
        .iter()
        .filter(|c| c.status().as_u16() == status)
        .map(|c| format!("`{}` ({})", c.code(), c.message()))
        .collect();
    let mut response = json!({
        "description": codes.join("; "),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    });
    if status == 429 {
        response["headers"] = json!({"Retry-After": {
            "required": true, "description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}});
    }
    response
}

pub fn document() -> Value {
    let mut doc = Doc::openapi();
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "api_key",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    let mut value = serde_json::to_value(&doc).expect("the document serializes");
    value["components"]["schemas"]["Error"] = error_schema();
    for (name, schema) in updraft_api::schemas::components() {
        value["components"]["schemas"][name] = schema;
    }
    for (status, name) in ERROR_RESPONSES {
        value["components"]["responses"][*name] = error_response(*status);
    }
    if let Some(paths) = value["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (_, op) in item.iter_mut() {
                complete_operation(path, op);
            }
        }
    }
    value["x-error-codes"] = crate::error::table();
    value
}

/// Gives an operation a document-wide unique id (`{resource}_{handler}`) and
/// every error it can answer, each with the error envelope.
fn complete_operation(path: &str, op: &mut Value) {
    let resource = path.trim_start_matches("/api/v1/").split('/').next().unwrap_or("").replace('-', "_");
    if let Some(id) = op["operationId"].as_str() {
        op["operationId"] = json!(format!("{resource}_{id}"));
    }
    // Path parameters are read with `ApiPath`, which utoipa does not see: each
    // `{name}` of the template is a required, non-empty string.
    for name in path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
        let params = op.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
        if !params.iter().any(|p| p["in"] == "path" && p["name"] == name) {
            let param =
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}});
            match op.get_mut("parameters").and_then(Value::as_array_mut) {
                Some(list) => list.push(param),
                None => op["parameters"] = json!([param]),
            }
        }
    }
    // A query parameter is absent or a value: never `null`.
    for param in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(types) = param["schema"]["type"].as_array_mut() {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                param["schema"]["type"] = types[0].clone();
            }
        }
    }
    let params = op.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
    let has = |place: &str| params.iter().any(|p| p["in"] == place);
    let statuses = common_errors(op.get("requestBody").is_some(), has("path"), has("query"));
    let responses = op["responses"].as_object_mut().expect("operations have responses");
    for status in statuses {
        let name = ERROR_RESPONSES.iter().find(|(s, _)| *s == status).map(|(_, n)| n).expect("a shared response");
        responses
            .entry(status.to_string())
            .or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
    }
    for (status, response) in responses.iter_mut() {
        if response.get("$ref").is_none() && response.get("description").is_none_or(|d| d == "") {
            let reason = status.parse::<u16>().ok().and_then(|s| axum::http::StatusCode::from_u16(s).ok());
            response["description"] = json!(reason.and_then(|r| r.canonical_reason()).unwrap_or("answer"));
        }
        let error = status.starts_with('4') || status.starts_with('5');
        if error && response.get("$ref").is_none() && response.get("content").is_none() {
            response["content"] = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
        }
    }
}

/// The interactive API page: Swagger UI, vendored and built into the binary.
pub mod docs {
    use axum::http::header;
    use axum::response::{Html, IntoResponse};

    const BUNDLE: &str = include_str!("../assets/swagger-ui/swagger-ui-bundle.js");
    const CSS: &str = include_str!("../assets/swagger-ui/swagger-ui.css");

    pub async fn page() -> impl IntoResponse {
        Html(concat!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>updraft API</title>",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<link rel=\"stylesheet\" href=\"/api/docs/swagger-ui.css\"></head>",
            "<body><div id=\"swagger-ui\"></div><script src=\"/api/docs/swagger-ui-bundle.js\"></script>",
            "<script>window.ui = SwaggerUIBundle({url: \"/api/v1/openapi.json\", dom_id: \"#swagger-ui\", ",
            "deepLinking: true, persistAuthorization: true});</script></body></html>\n"
        ))
    }

    pub async fn bundle() -> impl IntoResponse {
        (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            BUNDLE,
        )
    }

    pub async fn css() -> impl IntoResponse {
        ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=86400")], CSS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique() {
        let doc = document();
        let mut seen = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no id"));
                assert!(seen.insert(id.to_owned()), "{method} {path}: operation id `{id}` is used twice");
            }
        }
    }

    #[test]
    fn every_error_answer_carries_the_envelope() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for s in [401, 403, 429, 500, 503] {
                    assert!(op["responses"].get(s.to_string()).is_some(), "{method} {path} lacks {s}");
                }
                for (status, r) in op["responses"].as_object().unwrap() {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert!(
                            r.get("$ref").is_some() || r["content"]["application/json"].is_object(),
                            "{method} {path} {status}"
                        );
                    }
                }
                if op.get("requestBody").is_some() {
                    for s in [400, 404, 413, 415] {
                        assert!(op["responses"].get(s.to_string()).is_some(), "{method} {path} lacks {s}");
                    }
                }
            }
        }
    }

    #[test]
    fn no_request_body_is_a_free_form_object() {
        fn free_form(schema: &Value, doc: &Value, path: &str, seen: &mut Vec<String>) -> Option<String> {
            if let Some(r) = schema["$ref"].as_str() {
                if seen.iter().any(|s| s == r) {
                    return None;
                }
                seen.push(r.to_owned());
                let name = r.rsplit('/').next().unwrap();
                return free_form(&doc["components"]["schemas"][name], doc, path, seen);
            }
            if schema["type"] == "object"
                && schema.get("properties").is_none()
                && schema.get("additionalProperties").is_none()
            {
                return Some(path.to_owned());
            }
            for key in ["properties"] {
                if let Some(props) = schema[key].as_object() {
                    for (k, v) in props {
                        if let Some(p) = free_form(v, doc, &format!("{path}.{k}"), seen) {
                            return Some(p);
                        }
                    }
                }
            }
            for key in ["items", "additionalProperties"] {
                if schema[key].is_object()
                    && let Some(p) = free_form(&schema[key], doc, &format!("{path}[]"), seen)
                {
                    return Some(p);
                }
            }
            for key in ["oneOf", "anyOf", "allOf"] {
                for s in schema[key].as_array().into_iter().flatten() {
                    if let Some(p) = free_form(s, doc, path, seen) {
                        return Some(p);
                    }
                }
            }
            None
        }
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                if schema.is_object() {
                    let found = free_form(schema, &doc, "body", &mut vec![]);
                    assert!(found.is_none(), "{method} {path}: {} is a free-form object", found.unwrap());
                }
            }
        }
    }
}
