//! The audit log (admin role), read-only: no call writes or deletes it.

use axum::Json;
use axum::extract::State;
use updraft_api::audit::{AuditEntryOut, AuditListParams, AuditPageOut};
use updraft_app::audit::AuditRequest;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::ApiQuery;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditListParams),
    responses((status = 200, body = AuditPageOut, description = "the tenant's audit log, newest first")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<AuditListParams>,
) -> ApiResult<Json<AuditPageOut>> {
    let request = AuditRequest {
        actor: p.actor,
        subject: p.subject,
        kind: p.kind,
        since: p.since,
        until: p.until,
        limit: p.limit,
        offset: p.offset,
    };
    let limit = request.limit.unwrap_or(100);
    let offset = request.offset.unwrap_or(0);
    let items = state
        .list_audit(&caller.actor, request)
        .await?
        .into_iter()
        .map(|e| AuditEntryOut {
            seq: e.cursor.seq,
            at: e.at,
            actor: e.actor,
            kind: e.change.kind().to_owned(),
            subject: e.change.subject().to_owned(),
            change: serde_json::to_value(&e.change).unwrap_or_default(),
        })
        .collect();
    Ok(Json(AuditPageOut { items, limit, offset }))
}
