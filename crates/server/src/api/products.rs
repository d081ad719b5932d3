//! Products (OEM models, ProductKeys).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::{Access, Product, VersionScheme, validate};
use updraft_store::sortable;
use utoipa::ToSchema;

use super::{ListParams, PageOut, non_empty};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, double_option};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductIn {
    /// `[A-Za-z0-9_-]{1,128}`, unique in the tenant.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub key: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// `semver` (default) or `free` (any string, compared for equality only).
    #[schema(schema_with = super::schemas::version_scheme_or_null)]
    pub version_scheme: Option<VersionScheme>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[schema(schema_with = super::schemas::version_scheme_or_null)]
    pub version_scheme: Option<VersionScheme>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductOut {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    #[schema(schema_with = super::schemas::version_scheme)]
    pub version_scheme: VersionScheme,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<Product> for ProductOut {
    fn from(p: Product) -> Self {
        ProductOut {
            key: p.key,
            name: p.name,
            description: p.description,
            version_scheme: p.version_scheme,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

fn check(p: &Product) -> ApiResult<()> {
    let mut errors = vec![];
    validate::key("key", &p.key, &mut errors);
    validate::text("name", &p.name, 256, &mut errors);
    if let Some(d) = &p.description {
        validate::description("description", d, validate::MAX_DESCRIPTION, &mut errors);
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::invalid(errors)) }
}

#[utoipa::path(post, path = "/api/v1/products", tag = "products", request_body = ProductIn,
    responses((status = 201, body = ProductOut), (status = 409, description = "the key is taken")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<ProductIn>,
) -> ApiResult<(StatusCode, Json<ProductOut>)> {
    caller.require(Access::WriteFleet)?;
    let now = state.now();
    let product = Product {
        name: non_empty(input.name).unwrap_or_else(|| input.key.clone()),
        key: input.key,
        description: non_empty(input.description),
        version_scheme: input.version_scheme.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    check(&product)?;
    state.store.create_product(caller.tenant(), &product).await?;
    Ok((StatusCode::CREATED, Json(product.into())))
}

#[utoipa::path(get, path = "/api/v1/products", tag = "products", params(ListParams),
    responses((status = 200, body = PageOut<ProductOut>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<PageOut<ProductOut>>> {
    caller.require(Access::Read)?;
    let req = params.page(sortable::PRODUCTS)?;
    let page = state.store.list_products(caller.tenant(), &req).await?;
    Ok(Json(PageOut::from_page(page, &req, Into::into)))
}

pub async fn load(state: &AppState, tenant: &str, key: &str) -> ApiResult<Product> {
    state.store.get_product(tenant, key).await?.ok_or_else(|| ApiError::not_found("product", key))
}

#[utoipa::path(get, path = "/api/v1/products/{key}", tag = "products", responses((status = 200, body = ProductOut)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<ProductOut>> {
    caller.require(Access::Read)?;
    Ok(Json(load(&state, caller.tenant(), &key).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/products/{key}", tag = "products", request_body = ProductPatch,
    responses((status = 200, body = ProductOut)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    ApiJson(patch): ApiJson<ProductPatch>,
) -> ApiResult<Json<ProductOut>> {
    caller.require(Access::WriteFleet)?;
    let mut p = load(&state, caller.tenant(), &key).await?;
    if let Some(name) = patch.name {
        p.name = name.trim().to_owned();
    }
    if let Some(d) = patch.description {
        p.description = non_empty(d);
    }
    if let Some(s) = patch.version_scheme {
        p.version_scheme = s;
    }
    p.updated_at = state.now();
    check(&p)?;
    state.store.update_product(caller.tenant(), &p).await?;
    Ok(Json(p.into()))
}

#[utoipa::path(delete, path = "/api/v1/products/{key}", tag = "products",
    responses((status = 204), (status = 409, description = "devices, firmware or groups use the product")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Access::WriteFleet)?;
    state.store.delete_product(caller.tenant(), &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
