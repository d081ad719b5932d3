//! The audit log: who changed what, and when. The `audit` follower keeps, from
//! the event stream, every change made by an operator or a script (API keys,
//! signed-in users) and by the server's own workers on jobs, and every
//! security event (sign-in and sign-out, keys, users, tenants); it leaves out
//! what devices and gateways report and the scheduler's moves of single
//! executions, which the executions' histories keep. Entries live for
//! `audit_retention_days`, whatever the event stream's retention; nothing
//! writes or deletes them through an API.

use jiff::Timestamp;
use updraft_core::Access;

use crate::error::{Error, Result};
use crate::store::{AuditQuery, Change, Event, StoreResult};
use crate::{Actor, App};

/// The most entries one read returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// Whether an event belongs in the audit log.
pub fn is_audited(e: &Event) -> bool {
    match e.actor.as_deref() {
        Some(a) if a.starts_with("key:") || a.starts_with("user:") => true,
        // What devices report is not audited, but their users' consent decisions are.
        Some(a) if a.starts_with("device:") || a == "gateway" => matches!(e.change, Change::ConsentDecided { .. }),
        // The server itself (a worker, a follower, or a write outside any slot).
        _ => matches!(
            e.change,
            Change::JobChanged { .. }
                | Change::UserChanged { .. }
                | Change::KeyChanged { .. }
                | Change::AuthBlocked { .. }
        ),
    }
}

/// The follower's work: records the audited events of a batch.
pub(crate) async fn record(app: &App, events: &[Event]) -> StoreResult<()> {
    let audited: Vec<Event> = events.iter().filter(|e| is_audited(e)).cloned().collect();
    app.store.record_audit(&audited).await
}

/// What a reader of the audit log asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditRequest {
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub kind: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

impl App {
    /// Records that an address failed to authenticate too often (a security
    /// event of the server, in the server administrator's tenant's audit log).
    pub async fn note_auth_blocked(&self, address: &str) -> Result<()> {
        let change = Change::AuthBlocked { address: address.to_owned() };
        Ok(self.store.note_event(updraft_core::DEFAULT_TENANT, change).await?)
    }

    /// The tenant's audit log, newest first (an administrator's to read).
    pub async fn list_audit(&self, actor: &Actor, r: AuditRequest) -> Result<Vec<Event>> {
        actor.require(Access::ManageKeys)?;
        let limit = r.limit.unwrap_or(100);
        if limit == 0 || limit > MAX_AUDIT_PAGE {
            return Err(Error::field("limit", format!("must be between 1 and {MAX_AUDIT_PAGE}")));
        }
        if let (Some(a), Some(b)) = (r.since, r.until)
            && a > b
        {
            return Err(Error::field("until", "must not be before `since`"));
        }
        let q = AuditQuery {
            actor: r.actor,
            subject: r.subject,
            kind: r.kind,
            since: r.since,
            until: r.until,
            limit,
            offset: r.offset.unwrap_or(0).min(i64::MAX as u64),
        };
        Ok(self.store.list_audit(actor.tenant(), &q).await?)
    }
}
