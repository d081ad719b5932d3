//! [`EngineStore`] on SQL: live jobs and their leases, presence.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::{AssertSqlSafe, QueryBuilder};
use updraft_app::store::{EngineStore, Sighting, StoreResult};
use updraft_core::job::Job;

use crate::query::{BuilderExt, QueryExt, query};
use crate::{JOB_SELECT, SqlBackend, SqlStore, TenantJobRow, db_err, us};

#[async_trait]
impl<B: SqlBackend> EngineStore for SqlStore<B> {
    async fn live_jobs(&self) -> StoreResult<Vec<(String, Job)>> {
        let sql = JOB_SELECT.replace("SELECT ", "SELECT tenant, ");
        let rows: Vec<TenantJobRow> = query::<B>(AssertSqlSafe(format!(
            "{sql} WHERE state IN ('scheduled', 'running', 'paused') ORDER BY created_at, id"
        )))
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(|r| Ok((r.tenant, Job::try_from(r.job)?))).collect()
    }

    async fn lease_job(
        &self,
        tenant: &str,
        id: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let r = query::<B>(
            "UPDATE jobs SET lease_owner = $3, lease_until = $4
             WHERE tenant = $1 AND id = $2 AND (lease_owner IS NULL OR lease_owner = $3 OR lease_until < $5)",
        )
        .arg(tenant)
        .arg(id)
        .arg(owner)
        .arg(us(until))
        .arg(us(now))
        .run(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(B::rows_affected(&r) == 1)
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        let r = query::<B>("UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
            .arg(owner)
            .run(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(B::rows_affected(&r))
    }

    async fn record_sightings(&self, seen: &[Sighting]) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for chunk in seen.chunks(1000) {
            let mut q = QueryBuilder::<B::Db>::new("WITH v (tenant, id, first_at, t, polls, left_at) AS (");
            q.push_values(chunk, |mut b, s| {
                b.push_arg(&s.tenant).push_arg(&s.device).push_arg(us(s.first)).push_arg(us(s.last));
                b.push_arg(i64::from(s.polls)).push_arg(i64::from(s.left));
            });
            // SET sees the row as it was: a device never seen before is initializing
            // until it polls again (a second poll in the same batch counts).
            q.push(
                ") UPDATE devices SET last_seen_at = v.t, \
                 activated_at = COALESCE(devices.activated_at, v.first_at), \
                 connection_status = CASE WHEN v.left_at = 1 THEN 'offline' \
                 WHEN devices.last_seen_at IS NULL AND v.polls < 2 \
                 THEN 'initializing' ELSE 'online' END FROM v \
                 WHERE devices.tenant = v.tenant AND devices.id = v.id \
                 AND (devices.last_seen_at IS NULL OR devices.last_seen_at < v.t \
                 OR (v.left_at = 1 AND devices.last_seen_at = v.t))",
            );
            q.build().run(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn mark_silent_offline(&self, before: Timestamp) -> StoreResult<u64> {
        // Two statements, each a range of `devices_presence`: as one `OR` the
        // index narrowed only the status, and the sweep read every online device
        // (0.8 s on a million, once per flush).
        let mut tx = self.begin_write().await?;
        let mut marked = 0;
        for silent in [
            "UPDATE devices SET connection_status = 'offline' \
             WHERE connection_status IN ('online', 'initializing') AND last_seen_at < $1",
            "UPDATE devices SET connection_status = 'offline' \
             WHERE connection_status IN ('online', 'initializing') AND last_seen_at IS NULL AND updated_at < $1",
        ] {
            let r = query::<B>(silent).arg(us(before)).run(&mut *tx).await.map_err(db_err)?;
            marked += B::rows_affected(&r);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(marked)
    }
}
