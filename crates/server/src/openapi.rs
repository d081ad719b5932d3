//! The OpenAPI document, served at `/api/v1/openapi.json`.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::api::{devices, filters, firmware, gateway_tokens, groups, jobs, keys, products, tenants};

#[derive(OpenApi)]
#[openapi(
    info(title = "updraft management API", description = "Products, firmware, devices, device filters, groups, jobs, tenants, API keys and gateway tokens. The device API (hawkBit DDI) lives under `/{tenant}/controller/v1/{controllerId}`. \
        Every call needs `Authorization: Bearer <api key>`. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}` \
        with a code from the table in `x-error-codes`."),
    paths(
        tenants::create, tenants::list, tenants::create_key, keys::create, keys::list, keys::update, keys::delete,
        products::create, products::list, products::get, products::update, products::delete,
        firmware::upload, firmware::list, firmware::get, firmware::delete, firmware::download,
        devices::create, devices::import, devices::list, devices::search, devices::get, devices::update, devices::delete, devices::reissue_token,
        filters::estimate, filters::preview, filters::create, filters::list, filters::get, filters::update, filters::delete,
        groups::create, groups::list, groups::get, groups::update, groups::delete, groups::change_members, groups::members,
        gateway_tokens::create, gateway_tokens::list, gateway_tokens::delete,
        jobs::create, jobs::list, jobs::get, jobs::start, jobs::pause, jobs::resume, jobs::cancel,
        jobs::set_schedule, jobs::estimate, jobs::executions, jobs::device_executions, jobs::consent,
    ),
    tags((name = "tenants"), (name = "keys"), (name = "products"), (name = "firmware"), (name = "devices"), (name = "filters"), (name = "groups"), (name = "jobs")),
    security(("api_key" = []))
)]
struct Doc;

pub fn document() -> serde_json::Value {
    let mut doc = Doc::openapi();
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "api_key",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    let mut value = serde_json::to_value(&doc).expect("the document serializes");
    value["x-error-codes"] = crate::error::table();
    value
}
