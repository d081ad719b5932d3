//! Products (OEM models, ProductKeys).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_app::products::{NewProduct, ProductChange};
use updraft_app::sortable;
use updraft_core::{Product, VersionScheme};
use utoipa::ToSchema;

use super::{ListParams, PageOut};
use crate::auth::Caller;
use crate::error::ApiResult;
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

#[utoipa::path(post, path = "/api/v1/products", tag = "products", request_body = ProductIn,
    responses((status = 201, body = ProductOut), (status = 409, description = "the key is taken")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<ProductIn>,
) -> ApiResult<(StatusCode, Json<ProductOut>)> {
    let input = NewProduct {
        key: input.key,
        name: input.name,
        description: input.description,
        version_scheme: input.version_scheme,
    };
    let product = state.create_product(&caller.actor, input).await?;
    Ok((StatusCode::CREATED, Json(product.into())))
}

#[utoipa::path(get, path = "/api/v1/products", tag = "products", params(ListParams),
    responses((status = 200, body = PageOut<ProductOut>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<PageOut<ProductOut>>> {
    let req = params.page(sortable::PRODUCTS)?;
    let page = state.list_products(&caller.actor, &req).await?;
    Ok(Json(PageOut::from_page(page, &req, Into::into)))
}

#[utoipa::path(get, path = "/api/v1/products/{key}", tag = "products", responses((status = 200, body = ProductOut)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<ProductOut>> {
    Ok(Json(state.get_product(&caller.actor, &key).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/products/{key}", tag = "products", request_body = ProductPatch,
    responses((status = 200, body = ProductOut)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    ApiJson(patch): ApiJson<ProductPatch>,
) -> ApiResult<Json<ProductOut>> {
    let change =
        ProductChange { name: patch.name, description: patch.description, version_scheme: patch.version_scheme };
    Ok(Json(state.update_product(&caller.actor, &key, change).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/products/{key}", tag = "products",
    responses((status = 204), (status = 409, description = "devices, firmware or groups use the product")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.delete_product(&caller.actor, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
