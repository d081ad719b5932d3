//! Products (OEM models, ProductKeys).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use updraft_api::products::{ProductIn, ProductOut, ProductPatch};
use updraft_app::products::{NewProduct, ProductChange};
use updraft_app::sortable;

use super::{ListParams, PageOut};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

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
