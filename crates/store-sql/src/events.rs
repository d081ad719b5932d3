//! [`EventStore`] on SQL: reading the event stream, and its followers.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, QueryBuilder};
use updraft_app::store::{AuditQuery, Change, Event, EventCursor, EventFeed, EventStore, StoreResult};

use crate::query::{BuilderExt, QueryExt, query};
use crate::{SqlBackend, SqlStore, db_err, ts, us};

#[async_trait]
impl<B: SqlBackend> EventStore for SqlStore<B> {
    fn feed(&self) -> &EventFeed {
        &self.feed
    }

    async fn events_after(&self, after: EventCursor, limit: u32) -> StoreResult<Vec<Event>> {
        let rows: Vec<(i64, i64, String, i64, Option<String>, Json<Change>)> = query::<B>(AssertSqlSafe(format!(
            "SELECT seq, tx, tenant, at, actor, payload FROM events WHERE (tx, seq) > ($1, $2) AND {} ORDER BY tx, seq LIMIT $3",
            B::EVENTS_VISIBLE
        )))
        .arg(after.tx)
        .arg(after.seq)
        .arg(i64::from(limit))
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(seq, tx, tenant, at, actor, change)| {
                Ok(Event { cursor: EventCursor { tx, seq }, tenant, at: ts(at)?, actor, change: change.0 })
            })
            .collect()
    }

    async fn events_waiting(&self, after: EventCursor) -> StoreResult<bool> {
        // In stream order, so that the planner walks the (tx, seq) index and stops at the
        // first: unordered, PostgreSQL's generic plan scanned the whole table, where the
        // rows after a cursor are all at its end.
        let n: i64 = query::<B>(
            "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE (tx, seq) > ($1, $2) ORDER BY tx, seq LIMIT 1) AS e",
        )
        .arg(after.tx)
        .arg(after.seq)
        .scalar(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn event_tail(&self) -> StoreResult<EventCursor> {
        let row: Option<(i64, i64)> = query::<B>(AssertSqlSafe(format!(
            "SELECT tx, seq FROM events WHERE {} ORDER BY tx DESC, seq DESC LIMIT 1",
            B::EVENTS_VISIBLE
        )))
        .optional_row(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|(tx, seq)| EventCursor { tx, seq }).unwrap_or_default())
    }

    async fn claim_follower(
        &self,
        follower: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Option<EventCursor>> {
        for _ in 0..2 {
            let claimed: Option<(i64, i64)> = query::<B>(
                "UPDATE event_followers SET owner = $2, lease_until = $3
                 WHERE name = $1 AND (owner IS NULL OR owner = $2 OR lease_until IS NULL OR lease_until < $4)
                 RETURNING tx, seq",
            )
            .arg(follower)
            .arg(owner)
            .arg(us(until))
            .arg(us(now))
            .optional_row(&self.pool)
            .await
            .map_err(db_err)?;
            if let Some((tx, seq)) = claimed {
                return Ok(Some(EventCursor { tx, seq }));
            }
            let known: Option<i64> = query::<B>("SELECT seq FROM event_followers WHERE name = $1")
                .arg(follower)
                .optional_scalar(&self.pool)
                .await
                .map_err(db_err)?;
            if known.is_some() {
                return Ok(None);
            }
            let tail = self.event_tail().await?;
            query::<B>("INSERT INTO event_followers (name, tx, seq) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                .arg(follower)
                .arg(tail.tx)
                .arg(tail.seq)
                .run(&self.pool)
                .await
                .map_err(db_err)?;
        }
        Ok(None)
    }

    async fn advance_follower(&self, follower: &str, owner: &str, to: EventCursor) -> StoreResult<bool> {
        let r = query::<B>(
            "UPDATE event_followers SET tx = $3, seq = $4 WHERE name = $1 AND owner = $2 AND (tx, seq) <= ($3, $4)",
        )
        .arg(follower)
        .arg(owner)
        .arg(to.tx)
        .arg(to.seq)
        .run(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(B::rows_affected(&r) == 1)
    }

    async fn release_followers(&self, owner: &str) -> StoreResult<()> {
        query::<B>("UPDATE event_followers SET owner = NULL, lease_until = NULL WHERE owner = $1")
            .arg(owner)
            .run(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        let r = query::<B>("DELETE FROM events WHERE at < $1").arg(us(before)).run(&self.pool).await.map_err(db_err)?;
        Ok(B::rows_affected(&r))
    }

    async fn note_event(&self, tenant: &str, change: Change) -> StoreResult<()> {
        let tx = self.begin_write().await?;
        self.commit_events(tx, tenant, vec![change]).await
    }

    async fn record_audit(&self, events: &[Event]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for e in events {
            query::<B>(
                "INSERT INTO audit (seq, tenant, at, actor, kind, subject, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (seq) DO NOTHING",
            )
            .arg(e.cursor.seq)
            .arg(e.tenant.as_str())
            .arg(us(e.at))
            .arg(e.actor.clone())
            .arg(e.change.kind())
            .arg(e.change.subject())
            .arg(Json(&e.change))
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn list_audit(&self, tenant: &str, q: &AuditQuery) -> StoreResult<Vec<Event>> {
        let mut b = QueryBuilder::<B::Db>::new(
            "SELECT seq, CAST(0 AS BIGINT), tenant, at, actor, payload FROM audit WHERE tenant = ",
        );
        b.push_arg(tenant.to_owned());
        if let Some(actor) = &q.actor {
            b.push(" AND actor = ").push_arg(actor.clone());
        }
        if let Some(subject) = &q.subject {
            b.push(" AND subject = ").push_arg(subject.clone());
        }
        match q.kind.as_deref() {
            Some(prefix) if prefix.ends_with('.') => {
                let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                b.push(" AND kind LIKE ").push_arg(format!("{escaped}%")).push(" ESCAPE '\\'");
            }
            Some(kind) => {
                b.push(" AND kind = ").push_arg(kind.to_owned());
            }
            None => {}
        }
        if let Some(since) = q.since {
            b.push(" AND at >= ").push_arg(us(since));
        }
        if let Some(until) = q.until {
            b.push(" AND at < ").push_arg(us(until));
        }
        b.push(" ORDER BY at DESC, seq DESC LIMIT ").push_arg(i64::from(q.limit));
        b.push(" OFFSET ").push_arg(q.offset.min(i64::MAX as u64) as i64);
        let rows: Vec<(i64, i64, String, i64, Option<String>, Json<Change>)> =
            b.build().rows(&self.pool).await.map_err(db_err)?;
        rows.into_iter()
            .map(|(seq, tx, tenant, at, actor, change)| {
                Ok(Event { cursor: EventCursor { tx, seq }, tenant, at: ts(at)?, actor, change: change.0 })
            })
            .collect()
    }

    async fn prune_audit(&self, before: Timestamp) -> StoreResult<u64> {
        let r = query::<B>("DELETE FROM audit WHERE at < $1").arg(us(before)).run(&self.pool).await.map_err(db_err)?;
        Ok(B::rows_affected(&r))
    }
}
