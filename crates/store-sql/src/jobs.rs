//! [`JobStore`] on SQL: jobs, executions, and the engine's steps on one job.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, QueryBuilder};
use updraft_app::store::{
    Change, DeviceActions, ExecutionRule, ExecutionScope, JobStore, StateChange, StoreError, StoreResult, TimelineRow,
};
use updraft_core::job::{
    Execution, ExecutionEvent, ExecutionState, Job, JobState, Target, Transition, TransitionError,
};
use updraft_core::phase::PhaseState;
use updraft_core::{FieldError, Page, PageRequest};

use crate::query::{BuilderExt, QueryExt, query};
use crate::{
    ACTIVE_STATES, Conn, EVENT_SELECT, EVENT_WITH_ACTION_SELECT, EXECUTION_LIST, EXECUTION_SELECT, EventRow,
    ExecutionRow, IN_PROGRESS_STATES, JOB_LIST, JOB_SELECT, JobRow, NewExecution, NewExecutions, OFFERED_STATES,
    SqlBackend, SqlStore, conflict_or, db_err, filter_sql, us,
};

#[async_trait]
impl<B: SqlBackend> JobStore for SqlStore<B> {
    async fn create_job(&self, tenant: &str, job: &Job, targets: &[Target], now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let spec = serde_json::to_string(&job.spec).map_err(|e| StoreError::Backend(e.to_string()))?;
        query::<B>(
            "INSERT INTO jobs (tenant, id, name, description, kind, firmware, product, state, consent_required,
                 created_at, started_at, finished_at, spec, held)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .arg(tenant)
        .arg(&job.id)
        .arg(&job.name)
        .arg(&job.description)
        .arg(job.kind.as_str())
        .arg(&job.firmware)
        .arg(&job.product)
        .arg(job.state.as_str())
        .arg(job.consent_required)
        .arg(us(job.created_at))
        .arg(job.started_at.map(us))
        .arg(job.finished_at.map(us))
        .arg(spec)
        .arg(job.held)
        .run(&mut *tx)
        .await
        .map_err(conflict_or("job", &job.id))?;
        let added = Self::insert_executions(&mut tx, tenant, job, targets, now).await?;
        // The job is new, so a target left out is a device deleted since it was
        // read (or one named twice): name each such device.
        if (added as usize) < targets.len() {
            let ids: Vec<String> = targets.iter().map(|t| t.device.clone()).collect();
            let found = Self::device_products(&mut tx, tenant, &ids).await?;
            let missing: Vec<FieldError> = ids
                .iter()
                .filter(|id| !found.contains_key(*id))
                .map(|id| FieldError::new(format!("devices.{id}"), format!("device `{id}` not found")))
                .collect();
            StoreError::refuse(Vec::new(), missing)?;
        }
        let mut changes = vec![Change::JobCreated { job: job.id.clone() }];
        if !targets.is_empty() {
            changes.push(Change::ExecutionsChanged {
                job: job.id.clone(),
                devices: targets.iter().map(|t| t.device.clone()).collect(),
            });
        }
        self.commit_events(tx, tenant, changes).await?;
        self.wrote_executions(targets.len() as u64);
        Ok(())
    }

    async fn get_job(&self, tenant: &str, id: &str) -> StoreResult<Option<Job>> {
        self.get_one::<JobRow, _>(JOB_SELECT, "id", tenant, id).await
    }

    async fn list_jobs(&self, tenant: &str, state: Option<JobState>, page: &PageRequest) -> StoreResult<Page<Job>> {
        let mut filters = vec![("tenant = {}", tenant.to_owned())];
        if let Some(s) = state {
            filters.push(("state = {}", s.as_str().to_owned()));
        }
        self.list::<JobRow, Job>(&JOB_LIST, &filters, page).await
    }

    async fn execution_timeline(
        &self,
        tenant: &str,
        job: &str,
        from: Timestamp,
        bucket: jiff::SignedDuration,
    ) -> StoreResult<Vec<TimelineRow>> {
        let width = bucket.as_micros().max(1) as i64;
        let released: Vec<(i64, i64)> = query::<B>(
            "SELECT (released_at - $3) / $4, COUNT(*) FROM executions
             WHERE tenant = $1 AND job = $2 AND released_at IS NOT NULL AND released_at >= $3 GROUP BY 1",
        )
        .arg(tenant)
        .arg(job)
        .arg(us(from))
        .arg(width)
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        let finished: Vec<(i64, String, i64)> = query::<B>(
            "SELECT (finished_at - $3) / $4, state, COUNT(*) FROM executions
             WHERE tenant = $1 AND job = $2 AND finished_at IS NOT NULL AND finished_at >= $3 GROUP BY 1, 2",
        )
        .arg(tenant)
        .arg(job)
        .arg(us(from))
        .arg(width)
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        let mut rows: Vec<TimelineRow> =
            released.into_iter().map(|(b, n)| TimelineRow { bucket: b, state: None, count: n.max(0) as u64 }).collect();
        rows.extend(finished.into_iter().filter_map(|(b, state, n)| {
            Some(TimelineRow { bucket: b, state: Some(ExecutionState::parse(&state)?), count: n.max(0) as u64 })
        }));
        Ok(rows)
    }

    async fn execution_counts(&self, tenant: &str, job: &str) -> StoreResult<Vec<(ExecutionState, u64)>> {
        let rows: Vec<(String, i64)> =
            query::<B>("SELECT state, COUNT(*) FROM executions WHERE tenant = $1 AND job = $2 GROUP BY state")
                .arg(tenant)
                .arg(job)
                .rows(&self.pool)
                .await
                .map_err(db_err)?;
        let mut counts = Vec::with_capacity(rows.len());
        for (state, n) in rows {
            let state =
                ExecutionState::parse(&state).ok_or_else(|| StoreError::Backend(format!("bad state {state}")))?;
            counts.push((state, n as u64));
        }
        counts.sort();
        Ok(counts)
    }

    async fn list_executions(
        &self,
        tenant: &str,
        scope: &ExecutionScope,
        page: &PageRequest,
    ) -> StoreResult<Page<Execution>> {
        let mut filters = vec![("tenant = {}", tenant.to_owned())];
        if let Some(j) = &scope.job {
            filters.push(("job = {}", j.clone()));
        }
        if let Some(d) = &scope.device {
            filters.push(("device = {}", d.clone()));
        }
        if let Some(s) = scope.state {
            filters.push(("state = {}", s.as_str().to_owned()));
        }
        self.list::<ExecutionRow, Execution>(&EXECUTION_LIST, &filters, page).await
    }

    async fn get_execution(&self, tenant: &str, action_id: i64) -> StoreResult<Option<Execution>> {
        let row: Option<ExecutionRow> =
            query::<B>(AssertSqlSafe(format!("{EXECUTION_SELECT} WHERE tenant = $1 AND action_id = $2")))
                .arg(tenant)
                .arg(action_id)
                .optional_row(&self.pool)
                .await
                .map_err(db_err)?;
        row.map(Execution::try_from).transpose()
    }

    async fn execution_by_action(
        &self,
        tenant: &str,
        device: &str,
        action: i64,
    ) -> StoreResult<Option<(Execution, u32)>> {
        // The current attempt's number is on its execution, found among the device's
        // (after the counter wraps, the newest of them with the number wins); earlier
        // attempts' numbers are in the map.
        let current: Option<ExecutionRow> = query::<B>(AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE tenant = $1 AND device = $2 AND action = $3 ORDER BY action_id DESC LIMIT 1"
        )))
        .arg(tenant)
        .arg(device)
        .arg(action)
        .optional_row(&self.pool)
        .await
        .map_err(db_err)?;
        if let Some(row) = current {
            let e = Execution::try_from(row)?;
            let attempt = e.attempt;
            return Ok(Some((e, attempt)));
        }
        let found: Option<(i64, i64)> =
            query::<B>("SELECT action_id, attempt FROM execution_actions WHERE tenant = $1 AND action = $2")
                .arg(tenant)
                .arg(action)
                .optional_row(&self.pool)
                .await
                .map_err(db_err)?;
        let Some((row, attempt)) = found else { return Ok(None) };
        let execution = self.get_execution(tenant, row).await?;
        Ok(execution.filter(|e| e.device == device).map(|e| (e, attempt as u32)))
    }

    async fn execution_history(&self, tenant: &str, action_id: i64) -> StoreResult<Vec<ExecutionEvent>> {
        let rows: Vec<EventRow> = query::<B>(AssertSqlSafe(format!(
            "{EVENT_SELECT} WHERE action_id = $2 AND EXISTS (SELECT 1 FROM executions e WHERE e.tenant = $1 \
             AND e.action_id = execution_events.action_id) ORDER BY seq"
        )))
        .arg(tenant)
        .arg(action_id)
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(ExecutionEvent::try_from).collect()
    }

    async fn device_actions(&self, tenant: &str, device: &str) -> StoreResult<DeviceActions> {
        let sql = format!(
            "SELECT * FROM ({EXECUTION_SELECT} WHERE tenant = $1 AND device = $2 AND state IN {OFFERED_STATES} \
             ORDER BY action_id LIMIT 1) a \
             UNION ALL SELECT * FROM ({EXECUTION_SELECT} WHERE tenant = $1 AND device = $2 AND state = 'succeeded' \
             ORDER BY action_id DESC LIMIT 1) b"
        );
        let rows: Vec<ExecutionRow> =
            query::<B>(AssertSqlSafe(sql)).arg(tenant).arg(device).rows(&self.pool).await.map_err(db_err)?;
        let mut actions = DeviceActions::default();
        for r in rows {
            let e = Execution::try_from(r)?;
            if e.state == updraft_core::job::ExecutionState::Succeeded {
                actions.installed = Some(e);
            } else {
                actions.active = Some(e);
            }
        }
        Ok(actions)
    }

    async fn offered_executions(&self, tenant: &str, devices: &[String]) -> StoreResult<Vec<Execution>> {
        let mut out: Vec<Execution> = Vec::new();
        for chunk in devices.chunks(500) {
            let mut q = QueryBuilder::<B::Db>::new(EXECUTION_SELECT);
            q.push(" WHERE tenant = ").push_arg(tenant).push(format!(" AND state IN {OFFERED_STATES} AND device IN ("));
            let mut sep = q.separated(", ");
            for d in chunk {
                sep.push_arg(d);
            }
            q.push(") ORDER BY device, action_id");
            let rows: Vec<ExecutionRow> = q.build().rows(&self.pool).await.map_err(db_err)?;
            for r in rows {
                let e = Execution::try_from(r)?;
                // The first of each device's (as `device_actions`).
                if out.last().is_none_or(|last| last.device != e.device) {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    async fn execution_histories(
        &self,
        tenant: &str,
        action_ids: &[i64],
    ) -> StoreResult<std::collections::HashMap<i64, Vec<ExecutionEvent>>> {
        let mut out: std::collections::HashMap<i64, Vec<ExecutionEvent>> = std::collections::HashMap::new();
        for chunk in action_ids.chunks(500) {
            // Only `tenant`'s executions: the list is read through them.
            let mut q = QueryBuilder::<B::Db>::new(EVENT_WITH_ACTION_SELECT);
            q.push(" WHERE action_id IN (SELECT action_id FROM executions WHERE tenant = ").push_arg(tenant);
            q.push(" AND action_id IN (");
            let mut sep = q.separated(", ");
            for a in chunk {
                sep.push_arg(*a);
            }
            q.push(")) ORDER BY action_id, seq");
            let rows: Vec<EventRow> = q.build().rows(&self.pool).await.map_err(db_err)?;
            for r in rows {
                let action_id = r.action_id;
                out.entry(action_id).or_default().push(ExecutionEvent::try_from(r)?);
            }
        }
        Ok(out)
    }

    async fn change_execution(
        &self,
        tenant: &str,
        action_id: i64,
        rule: ExecutionRule<'_>,
        now: Timestamp,
    ) -> StoreResult<Result<Execution, TransitionError>> {
        let mut tx = self.begin_write().await?;
        let row: Option<ExecutionRow> =
            query::<B>(AssertSqlSafe(format!("{EXECUTION_SELECT} WHERE tenant = $1 AND action_id = $2{}", B::LOCK)))
                .arg(tenant)
                .arg(action_id)
                .optional_row(&mut *tx)
                .await
                .map_err(db_err)?;
        let Some(row) = row else {
            return Err(StoreError::not_found("execution", action_id.to_string()));
        };
        let mut execution = Execution::try_from(row)?;
        let transition = match rule(&execution) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(Ok(execution)),
            Err(e) => return Ok(Err(e)),
        };
        // A success that installs writes the device's firmware: a change of its record too.
        let installs =
            transition.installs && transition.state == ExecutionState::Succeeded && !execution.state.is_terminal();
        Self::apply_transition(&mut tx, tenant, &mut execution, transition, now).await?;
        let mut changes =
            vec![Change::ExecutionsChanged { job: execution.job.clone(), devices: vec![execution.device.clone()] }];
        if installs {
            changes.push(Change::DeviceUpdated { device: execution.device.clone() });
        }
        self.commit_events(tx, tenant, changes).await?;
        Ok(Ok(execution))
    }

    async fn move_job(
        &self,
        tenant: &str,
        id: &str,
        from: JobState,
        to: JobState,
        held: bool,
        now: Timestamp,
    ) -> StoreResult<Option<Job>> {
        let mut tx = self.begin_write().await?;
        let mut job: Job = Self::lock_one::<JobRow, _>(&mut tx, JOB_SELECT, "job", tenant, id).await?;
        if job.state != from {
            return Ok(None);
        }
        job.state = to;
        job.held = held;
        if to == JobState::Running && job.started_at.is_none() {
            job.started_at = Some(now);
        }
        if to.is_finished() {
            job.finished_at = Some(now);
            job.held = false;
        }
        query::<B>(
            "UPDATE jobs SET state = $3, held = $4, started_at = $5, finished_at = $6 WHERE tenant = $1 AND id = $2",
        )
        .arg(tenant)
        .arg(id)
        .arg(to.as_str())
        .arg(held)
        .arg(job.started_at.map(us))
        .arg(job.finished_at.map(us))
        .run(&mut *tx)
        .await
        .map_err(db_err)?;
        let ended = if to.is_finished() { Self::end_executions(&mut tx, tenant, id, now).await? } else { Vec::new() };
        let state = StateChange { from: from.as_str().to_owned(), to: to.as_str().to_owned() };
        let mut changes = vec![Change::JobChanged { job: id.to_owned(), state: Some(state) }];
        if !ended.is_empty() {
            changes.push(Change::ExecutionsChanged { job: id.to_owned(), devices: ended });
        }
        self.commit_events(tx, tenant, changes).await?;
        Ok(Some(job))
    }

    async fn update_job_spec(&self, tenant: &str, id: &str, spec: &updraft_core::rollout::JobSpec) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let spec = serde_json::to_string(spec).map_err(|e| StoreError::Backend(e.to_string()))?;
        let r = query::<B>("UPDATE jobs SET spec = $3 WHERE tenant = $1 AND id = $2")
            .arg(tenant)
            .arg(id)
            .arg(spec)
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found("job", id));
        }
        self.commit_events(tx, tenant, vec![Change::job_changed(id)]).await
    }

    async fn pace_stats(
        &self,
        tenant: &str,
        job: &str,
        now: Timestamp,
    ) -> StoreResult<updraft_core::rollout::PaceStats> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        Self::pace_stats_in(&mut conn, tenant, job, now, Needs { rate: true, totals: true }).await
    }

    async fn release_executions(
        &self,
        tenant: &str,
        job: &str,
        device: Option<&str>,
        budget: updraft_app::store::ReleaseBudget<'_>,
        clock: updraft_app::store::ReleaseClock<'_>,
    ) -> StoreResult<updraft_app::store::Released> {
        let mut tx = self.begin_write().await?;
        // Releases of one job queue on its row: each sees the others' in its pace.
        let j: Job = Self::lock_one::<JobRow, _>(&mut tx, JOB_SELECT, "job", tenant, job).await?;
        let pace = &j.spec.pace;
        let needs = Needs { rate: pace.max_per_minute.is_some() || pace.ramp.is_some(), totals: pace.ramp.is_some() };
        let stats = Self::pace_stats_in(&mut tx, tenant, job, clock(), needs).await?;
        let allowed = budget(&j, &stats);
        if allowed == 0 {
            return Ok(updraft_app::store::Released { allowed, executions: vec![] });
        }
        let rows: Vec<ExecutionRow> = query::<B>(AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE tenant = $1 AND job = $2 AND state = 'queued' AND ($4 IS NULL OR device = $4)
             AND phase <= $5
             AND NOT EXISTS (
                 SELECT 1 FROM executions o WHERE o.tenant = executions.tenant AND o.device = executions.device
                 AND o.state IN {IN_PROGRESS_STATES})
             ORDER BY action_id LIMIT $3{}",
            B::LOCK
        )))
        .arg(tenant)
        .arg(job)
        .arg(allowed.min(i64::MAX as u64) as i64)
        .arg(device.map(str::to_owned))
        .arg(i64::from(j.open_phase()))
        .rows(&mut *tx)
        .await
        .map_err(db_err)?;
        let candidates = rows.into_iter().map(Execution::try_from).collect::<StoreResult<Vec<_>>>()?;
        // Counted: what ends from now on ends after these are released (see `ReleaseClock`).
        let now = clock();
        let devices: Vec<String> = candidates.iter().map(|e| e.device.clone()).collect();
        // Releases of other jobs to the same devices queue here; once in, look again
        // at what they committed.
        B::lock_devices(&mut tx, tenant, &devices).await?;
        let busy = Self::busy_devices(&mut tx, tenant, &devices).await?;
        let mut releases = Vec::with_capacity(candidates.len());
        for e in candidates {
            if busy.contains(&e.device) {
                continue;
            }
            let Ok(t) = updraft_core::job::on_release(&e, now) else { continue };
            releases.push((e, t));
        }
        let executions = Self::apply_transitions(&mut tx, tenant, releases, now).await?;
        let released: Vec<String> = executions.iter().map(|e| e.device.clone()).collect();
        let changes = if released.is_empty() {
            Vec::new()
        } else {
            vec![Change::ExecutionsChanged { job: job.to_owned(), devices: released.clone() }]
        };
        self.commit_events(tx, tenant, changes).await?;
        Ok(updraft_app::store::Released { allowed, executions })
    }

    async fn time_out_executions(
        &self,
        tenant: &str,
        job: &str,
        released_before: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<ExecutionRow> = query::<B>(AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE tenant = $1 AND job = $2
             AND state IN ('notified', 'downloading', 'downloaded', 'installing')
             AND (released_at < $3 OR step_deadline < $4)
             ORDER BY action_id{}",
            B::LOCK
        )))
        .arg(tenant)
        .arg(job)
        .arg(released_before.map_or(i64::MIN, us))
        .arg(us(now))
        .rows(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut e = Execution::try_from(row)?;
            if let Some(t) = updraft_core::job::on_timeout(&e, now) {
                Self::apply_transition(&mut tx, tenant, &mut e, t, now).await?;
                out.push(e.device);
            }
        }
        let changes = if out.is_empty() {
            Vec::new()
        } else {
            vec![Change::ExecutionsChanged { job: job.to_owned(), devices: out.clone() }]
        };
        self.commit_events(tx, tenant, changes).await?;
        Ok(out)
    }

    async fn set_step_deadline(&self, tenant: &str, action_id: i64, deadline: Timestamp) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = query::<B>("UPDATE executions SET step_deadline = $3 WHERE tenant = $1 AND action_id = $2")
            .arg(tenant)
            .arg(action_id)
            .arg(us(deadline))
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(B::rows_affected(&changed) > 0)
    }

    async fn retry_executions(
        &self,
        tenant: &str,
        job: &str,
        retry: &updraft_core::rollout::Retry,
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
        if retry.count == 0 {
            return Ok(vec![]);
        }
        let due_before = us(now) - i64::from(retry.interval_minutes) * 60_000_000;
        let mut tx = self.begin_write().await?;
        let rows: Vec<ExecutionRow> = query::<B>(AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE tenant = $1 AND job = $2 AND state IN ('failed', 'timed_out')
             AND attempt <= $3 AND finished_at <= $4 ORDER BY action_id{}",
            B::LOCK
        )))
        .arg(tenant)
        .arg(job)
        .arg(i64::from(retry.count))
        .arg(due_before)
        .rows(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut e = Execution::try_from(row)?;
            if !updraft_core::rollout::retry_due(retry, e.attempt, e.finished_at.unwrap_or(now), now) {
                continue;
            }
            if Self::requeue(&mut tx, tenant, &mut e, now).await? {
                out.push(e.device);
            }
        }
        let changes = if out.is_empty() {
            Vec::new()
        } else {
            vec![Change::ExecutionsChanged { job: job.to_owned(), devices: out.clone() }]
        };
        self.commit_events(tx, tenant, changes).await?;
        Ok(out)
    }

    async fn add_executions(&self, tenant: &str, job: &Job, targets: &[Target], now: Timestamp) -> StoreResult<u64> {
        if targets.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let n = Self::insert_executions(&mut tx, tenant, job, targets, now).await?;
        let changes = if n == 0 {
            Vec::new()
        } else {
            vec![Change::ExecutionsChanged {
                job: job.id.clone(),
                devices: targets.iter().map(|t| t.device.clone()).collect(),
            }]
        };
        self.commit_events(tx, tenant, changes).await?;
        self.wrote_executions(n);
        Ok(n)
    }

    async fn job_has_devices(&self, tenant: &str, job: &str, devices: &[String]) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        for chunk in devices.chunks(500) {
            let mut q = QueryBuilder::<B::Db>::new("SELECT device FROM executions WHERE tenant = ");
            q.push_arg(tenant).push(" AND job = ").push_arg(job).push(" AND device IN (");
            let mut sep = q.separated(", ");
            for d in chunk {
                sep.push_arg(d);
            }
            q.push(")");
            let rows: Vec<String> = q.build().scalars(&self.pool).await.map_err(db_err)?;
            out.extend(rows);
        }
        Ok(out)
    }

    async fn phase_counts(&self, tenant: &str, job: &str, phase: u32) -> StoreResult<Vec<(ExecutionState, u32, u64)>> {
        let rows: Vec<(String, i64, i64)> = query::<B>(
            "SELECT state, attempt, COUNT(*) FROM executions WHERE tenant = $1 AND job = $2 AND phase = $3
             GROUP BY state, attempt",
        )
        .arg(tenant)
        .arg(job)
        .arg(i64::from(phase))
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(s, a, n)| {
                let state =
                    ExecutionState::parse(&s).ok_or_else(|| StoreError::Backend(format!("execution state `{s}`")))?;
                Ok((state, a as u32, n as u64))
            })
            .collect()
    }

    async fn set_job_phase(
        &self,
        tenant: &str,
        id: &str,
        expected: &PhaseState,
        new: &PhaseState,
        pause: bool,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let job: Job = Self::lock_one::<JobRow, _>(&mut tx, JOB_SELECT, "job", tenant, id).await?;
        if job.phase != *expected {
            return Ok(false);
        }
        let text = serde_json::to_string(new).map_err(|e| StoreError::Backend(e.to_string()))?;
        let pause = pause && job.state == JobState::Running;
        query::<B>(
            "UPDATE jobs SET phase_state = $3,
                 state = CASE WHEN $4 THEN 'paused' ELSE state END,
                 held = CASE WHEN $4 THEN TRUE ELSE held END
             WHERE tenant = $1 AND id = $2",
        )
        .arg(tenant)
        .arg(id)
        .arg(text)
        .arg(pause)
        .run(&mut *tx)
        .await
        .map_err(db_err)?;
        self.commit_events(tx, tenant, vec![Change::job_changed(id)]).await?;
        Ok(true)
    }

    async fn force_cancel_executions(&self, tenant: &str, job: &str, now: Timestamp) -> StoreResult<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let out = Self::change_active(&mut tx, tenant, job, updraft_core::job::on_force_cancel, now).await?;
        let mut changes = Vec::new();
        if !out.is_empty() {
            changes.push(Change::ExecutionsChanged { job: job.to_owned(), devices: out.clone() });
        }
        self.commit_events(tx, tenant, changes).await?;
        Ok(out)
    }

    async fn retry_failed(
        &self,
        tenant: &str,
        id: &str,
        from: JobState,
        to: JobState,
        now: Timestamp,
    ) -> StoreResult<Option<Vec<String>>> {
        let mut tx = self.begin_write().await?;
        let job: Job = Self::lock_one::<JobRow, _>(&mut tx, JOB_SELECT, "job", tenant, id).await?;
        if job.state != from {
            return Ok(None);
        }
        let started_at = job.started_at.unwrap_or(now);
        query::<B>(
            "UPDATE jobs SET state = $3, held = FALSE, started_at = $4, finished_at = NULL WHERE tenant = $1 AND id = $2",
        )
        .arg(tenant)
        .arg(id)
        .arg(to.as_str())
        .arg(us(started_at))
        .run(&mut *tx)
        .await
        .map_err(db_err)?;
        let executions = Self::locked_executions(&mut tx, tenant, id, "('failed', 'timed_out')").await?;
        let mut out = Vec::with_capacity(executions.len());
        for mut e in executions {
            if Self::requeue(&mut tx, tenant, &mut e, now).await? {
                out.push(e.device);
            }
        }
        let mut changes = vec![Change::job_changed(id)];
        if !out.is_empty() {
            changes.push(Change::ExecutionsChanged { job: id.to_owned(), devices: out.clone() });
        }
        self.commit_events(tx, tenant, changes).await?;
        Ok(Some(out))
    }

    async fn busy_elsewhere(&self, tenant: &str, job: &str, devices: &[String]) -> StoreResult<Vec<Execution>> {
        let mut out = Vec::new();
        for chunk in devices.chunks(1000) {
            let mut q = QueryBuilder::<B::Db>::new(format!("{EXECUTION_SELECT} WHERE tenant = "));
            q.push_arg(tenant.to_owned());
            q.push(" AND job <> ");
            q.push_arg(job.to_owned());
            q.push(format!(" AND state IN {IN_PROGRESS_STATES} AND device IN ("));
            let mut list = q.separated(", ");
            for d in chunk {
                list.push_arg(d.clone());
            }
            q.push(") ORDER BY action_id");
            let rows: Vec<ExecutionRow> = q.build().rows(&self.pool).await.map_err(db_err)?;
            for r in rows {
                out.push(Execution::try_from(r)?);
            }
        }
        Ok(out)
    }

    async fn complete_job_if_done(&self, tenant: &str, id: &str, now: Timestamp) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = Self::complete_if_done(&mut tx, tenant, id, now).await?;
        let changes = if done { vec![Change::job_changed(id)] } else { Vec::new() };
        self.commit_events(tx, tenant, changes).await?;
        Ok(done)
    }
}

/// What a pace's counts are for (see `SqlStore::pace_stats_in`); a ramp implies a rate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Needs {
    pub rate: bool,
    pub totals: bool,
}

impl<B: SqlBackend> SqlStore<B> {
    /// Notes `n` executions created, each with its first event.
    fn wrote_executions(&self, n: u64) {
        for table in ["executions", "execution_events"] {
            self.wrote(table, n);
        }
    }

    /// See [`Store::pace_stats`]; in a transaction, or on a connection of the pool.
    /// Each count reads only the index entries it counts, whatever the job's size: the
    /// executions in progress always; with `needs.rate`, those released in the last
    /// minute (a job without a rate or ramp has no use for them, and a fast job releases
    /// thousands a minute); with `needs.totals`, the releases and successes of the whole
    /// job (what a ramp needs).
    pub(crate) async fn pace_stats_in(
        conn: &mut Conn<B>,
        tenant: &str,
        job: &str,
        now: Timestamp,
        needs: Needs,
    ) -> StoreResult<updraft_core::rollout::PaceStats> {
        let minute_ago = us(now) - 60_000_000;
        let count = |condition: &str| {
            format!("(SELECT COUNT(*) FROM executions WHERE tenant = $1 AND job = $2 AND {condition})")
        };
        let last_minute = if needs.rate { count("released_at > $3") } else { "CAST(0 AS BIGINT)".to_owned() };
        let mut sql = format!("SELECT {}, {last_minute}", count(&format!("state IN {IN_PROGRESS_STATES}")));
        if needs.totals {
            sql += &format!(", {}, {}", count("released_at < $4"), count("state = 'succeeded' AND finished_at < $4"));
        } else {
            sql += ", CAST(0 AS BIGINT), CAST(0 AS BIGINT)";
        }
        let mut q = query::<B>(AssertSqlSafe(sql)).arg(tenant).arg(job);
        if needs.rate {
            q = q.arg(minute_ago);
        }
        if needs.totals {
            q = q.arg(us(now));
        }
        let (in_progress, last_minute, released, succeeded): (Option<i64>, Option<i64>, Option<i64>, Option<i64>) =
            q.row(&mut *conn).await.map_err(db_err)?;
        // Releases of the last minute by age in seconds, counting every attempt: an execution
        // released in the window has its latest release in it, and its history keeps the earlier ones.
        // Ages are rounded to the nearest second, so that a tick that comes a little early (a timer's
        // jitter, a busy runtime) still finds the previous tick's releases a second old rather than
        // losing its share of the rate; the minute's total is exact either way.
        let mut by_second = vec![0u64; 60];
        if last_minute.unwrap_or(0) > 0 {
            let ages: Vec<(i64, i64)> = query::<B>(
                "SELECT ($4 - ev.at + 500000) / 1000000, COUNT(*) FROM execution_events ev
             WHERE ev.report = 'released' AND ev.at > $3
             AND ev.action_id IN (SELECT action_id FROM executions WHERE tenant = $1 AND job = $2 AND released_at > $3)
             GROUP BY 1",
            )
            .arg(tenant)
            .arg(job)
            .arg(minute_ago)
            .arg(us(now))
            .rows(&mut *conn)
            .await
            .map_err(db_err)?;
            for (age, n) in ages {
                // A release stamped after `now` (another replica's clock) counts as this second's.
                by_second[age.clamp(0, 59) as usize] += n.max(0) as u64;
            }
        }
        let n = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
        Ok(updraft_core::rollout::PaceStats {
            in_progress: n(in_progress),
            released_last_minute: by_second.iter().sum(),
            released_by_second: by_second,
            released_total: n(released),
            succeeded_total: n(succeeded),
        })
    }

    /// Those of `devices` with an execution in progress.
    pub(crate) async fn busy_devices(
        tx: &mut Conn<B>,
        tenant: &str,
        devices: &[String],
    ) -> StoreResult<std::collections::HashSet<String>> {
        let mut busy = std::collections::HashSet::new();
        for chunk in devices.chunks(1000) {
            let mut q = QueryBuilder::<B::Db>::new("SELECT DISTINCT device FROM executions WHERE tenant = ");
            q.push_arg(tenant.to_owned());
            q.push(format!(" AND state IN {IN_PROGRESS_STATES} AND device IN ("));
            let mut list = q.separated(", ");
            for d in chunk {
                list.push_arg(d.clone());
            }
            q.push(")");
            let found: Vec<String> = q.build().scalars(&mut *tx).await.map_err(db_err)?;
            busy.extend(found);
        }
        Ok(busy)
    }

    /// The job's executions in `states` (an SQL list), oldest first, locked
    /// for this transaction's changes.
    pub(crate) async fn locked_executions(
        tx: &mut Conn<B>,
        tenant: &str,
        job: &str,
        states: &str,
    ) -> StoreResult<Vec<Execution>> {
        let rows: Vec<ExecutionRow> = query::<B>(AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE tenant = $1 AND job = $2 AND state IN {states} ORDER BY action_id{}",
            B::LOCK
        )))
        .arg(tenant)
        .arg(job)
        .rows(&mut *tx)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(Execution::try_from).collect()
    }

    /// Queues a failed or timed-out execution again as its next attempt (with
    /// a new action id); answers whether it was.
    pub(crate) async fn requeue(
        tx: &mut Conn<B>,
        tenant: &str,
        e: &mut Execution,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let Some(t) = updraft_core::job::on_retry(e, now) else { return Ok(false) };
        Self::apply_transition(&mut *tx, tenant, e, t, now).await?;
        query::<B>(
            "UPDATE executions SET attempt = attempt + 1, finished_at = NULL,
                 cancel_requested = FALSE WHERE action_id = $1",
        )
        .arg(e.action_id)
        .run(&mut *tx)
        .await
        .map_err(db_err)?;
        Self::allocate_actions(&mut *tx, tenant, &[(e.action_id, e.attempt + 1)]).await?;
        Ok(true)
    }

    /// Gives each new attempt `(execution, attempt)` the next action id of its
    /// tenant's counter (wrapping after `MAX_ACTION`: see `next_action`), on the
    /// execution; the number it replaces goes to the map of earlier attempts' ids.
    pub(crate) async fn allocate_actions(tx: &mut Conn<B>, tenant: &str, attempts: &[(i64, u32)]) -> StoreResult<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        let numbers = Self::reserve_actions(&mut *tx, tenant, attempts.len()).await?;
        let given: Vec<(i64, i64, u32)> =
            attempts.iter().zip(numbers).map(|((row, attempt), n)| (*row, n, *attempt)).collect();
        for chunk in given.chunks(1000) {
            let mut q = QueryBuilder::<B::Db>::new("SELECT action_id, action FROM executions WHERE action_id IN (");
            let mut sep = q.separated(", ");
            for (row, _, _) in chunk {
                sep.push_arg(*row);
            }
            q.push(")");
            let replaced: std::collections::HashMap<i64, i64> =
                q.build().rows::<(i64, i64)>(&mut *tx).await.map_err(db_err)?.into_iter().collect();
            let earlier: Vec<(i64, i64, u32)> = chunk
                .iter()
                .filter_map(|(row, _, attempt)| Some((*row, *replaced.get(row)?, attempt.saturating_sub(1).max(1))))
                .collect();
            if !earlier.is_empty() {
                Self::map_actions(&mut *tx, tenant, &earlier).await?;
            }
            let mut q = QueryBuilder::<B::Db>::new("WITH v (action_id, action) AS (");
            q.push_values(chunk, |mut b, (row, n, _)| {
                b.push_arg(*row).push_arg(*n);
            });
            q.push(") UPDATE executions SET action = v.action FROM v WHERE executions.action_id = v.action_id");
            q.build().run(&mut *tx).await.map_err(db_err)?;
        }
        Ok(())
    }

    /// Takes the next `n` action ids of the tenant's counter (wrapping after
    /// `MAX_ACTION`: see `next_action`), holding the tenant's row until commit.
    async fn reserve_actions(tx: &mut Conn<B>, tenant: &str, n: usize) -> StoreResult<Vec<i64>> {
        let mut last: i64 =
            query::<B>(AssertSqlSafe(format!("SELECT last_action FROM tenants WHERE id = $1{}", B::LOCK)))
                .arg(tenant)
                .scalar(&mut *tx)
                .await
                .map_err(db_err)?;
        let numbers = (0..n)
            .map(|_| {
                last = updraft_core::job::next_action(last);
                last
            })
            .collect();
        query::<B>("UPDATE tenants SET last_action = $2 WHERE id = $1")
            .arg(tenant)
            .arg(last)
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        Ok(numbers)
    }

    /// Records which execution and earlier attempt each action id `(execution, action, attempt)` names.
    async fn map_actions(tx: &mut Conn<B>, tenant: &str, given: &[(i64, i64, u32)]) -> StoreResult<()> {
        let mut q = QueryBuilder::<B::Db>::new("INSERT INTO execution_actions (tenant, action, action_id, attempt) ");
        q.push_values(given, |mut b, (row, n, attempt)| {
            b.push_arg(tenant).push_arg(*n).push_arg(*row).push_arg(i64::from(*attempt));
        });
        // A wrapped counter reuses a number: it now names the new attempt.
        q.push(
            " ON CONFLICT (tenant, action) DO UPDATE SET action_id = excluded.action_id, \
             attempt = excluded.attempt",
        );
        q.build().run(&mut *tx).await.map_err(db_err)?;
        Ok(())
    }

    /// Inserts executions for `targets` (devices the job already has, and
    /// devices deleted since they were read, are left out), each with its first
    /// history event; answers how many were added.
    pub(crate) async fn insert_executions(
        tx: &mut Conn<B>,
        tenant: &str,
        job: &Job,
        targets: &[Target],
        now: Timestamp,
    ) -> StoreResult<u64> {
        if targets.is_empty() {
            return Ok(0);
        }
        B::lock_fleet(&mut *tx, tenant, false).await?;
        // Numbers are taken for every target up front so that each row is written
        // once with its action id; a device the job already has leaves a gap.
        let numbers = Self::reserve_actions(&mut *tx, tenant, targets.len()).await?;
        let new = NewExecutions {
            tenant,
            job: &job.id,
            firmware: &job.firmware,
            now: us(now),
            rows: targets
                .iter()
                .zip(numbers)
                .map(|(Target { device, state, phase }, action)| NewExecution {
                    device,
                    state: *state,
                    phase: i64::from(*phase),
                    action,
                })
                .collect(),
        };
        B::insert_executions(&mut *tx, &new).await
    }

    /// Ends a job's unstarted executions and asks its started ones to stop: the devices
    /// whose execution changed.
    pub(crate) async fn end_executions(
        tx: &mut Conn<B>,
        tenant: &str,
        job: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
        Self::change_active(tx, tenant, job, updraft_core::job::on_cancel_requested, now).await
    }

    /// Applies `rule` to each of the job's active executions (locked): the devices
    /// whose execution changed, by `action_id`.
    async fn change_active(
        tx: &mut Conn<B>,
        tenant: &str,
        job: &str,
        rule: fn(&Execution, Timestamp) -> Option<Transition>,
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
        let changes: Vec<(Execution, Transition)> = Self::locked_executions(&mut *tx, tenant, job, ACTIVE_STATES)
            .await?
            .into_iter()
            .filter_map(|e| rule(&e, now).map(|t| (e, t)))
            .collect();
        let changed = Self::apply_transitions(tx, tenant, changes, now).await?;
        Ok(changed.into_iter().map(|e| e.device).collect())
    }

    /// See [`Store::complete_job_if_done`].
    pub(crate) async fn complete_if_done(
        tx: &mut Conn<B>,
        tenant: &str,
        job: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let row: Option<JobRow> = query::<B>(AssertSqlSafe(format!("{JOB_SELECT} WHERE tenant = $1 AND id = $2")))
            .arg(tenant)
            .arg(job)
            .optional_row(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(false) };
        let j = Job::try_from(row)?;
        if !matches!(j.state, JobState::Running | JobState::Paused)
            || j.spec.recurrence == updraft_core::rollout::Recurrence::Continuous
        {
            return Ok(false);
        }
        // Runs on every execution that finishes, so it must not read the job: the states
        // present in it, one `executions_job` probe each (a loose index scan, whatever the
        // statistics say: `SELECT 1 … state IN (open states) LIMIT 1` was planned as a table
        // scan that stops at the first open execution once the statistics were taken with
        // most of the job open, a scan of the table per execution towards a big job's end).
        let present: Vec<(String,)> = query::<B>(
            "WITH RECURSIVE present (state) AS (
                 SELECT MIN(state) FROM executions WHERE tenant = $1 AND job = $2
                 UNION ALL
                 SELECT (SELECT MIN(e.state) FROM executions e
                         WHERE e.tenant = $1 AND e.job = $2 AND e.state > present.state)
                 FROM present WHERE present.state IS NOT NULL)
             SELECT state FROM present WHERE state IS NOT NULL",
        )
        .arg(tenant)
        .arg(job)
        .rows(&mut *tx)
        .await
        .map_err(db_err)?;
        let present: Vec<ExecutionState> = present.iter().filter_map(|(s,)| ExecutionState::parse(s)).collect();
        let mut open = present.iter().any(|s| !s.is_terminal());
        let retryable = |s: &ExecutionState| matches!(s, ExecutionState::Failed | ExecutionState::TimedOut);
        if !open && j.spec.retry.count > 0 && present.iter().any(retryable) {
            // Failed or timed out with attempts left (few: the retries worker requeues them).
            let found: Option<i32> = query::<B>(
                "SELECT 1 FROM executions WHERE tenant = $1 AND job = $2 AND state IN ('failed', 'timed_out')
                 AND attempt <= $3 LIMIT 1",
            )
            .arg(tenant)
            .arg(job)
            .arg(i64::from(j.spec.retry.count))
            .optional_scalar(&mut *tx)
            .await
            .map_err(db_err)?;
            open = found.is_some();
        }
        if open {
            return Ok(false);
        }
        query::<B>("UPDATE jobs SET state = 'completed', held = FALSE, finished_at = $3 WHERE tenant = $1 AND id = $2")
            .arg(tenant)
            .arg(job)
            .arg(us(now))
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        if j.kind == updraft_core::job::JobKind::Verify {
            let other: Option<i32> =
                query::<B>("SELECT 1 FROM executions WHERE tenant = $1 AND job = $2 AND state <> 'succeeded' LIMIT 1")
                    .arg(tenant)
                    .arg(job)
                    .optional_scalar(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if other.is_some() {
                return Ok(true);
            }
            query::<B>("UPDATE firmware SET verified = TRUE WHERE tenant = $1 AND id = $2")
                .arg(tenant)
                .arg(&j.firmware)
                .run(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        Ok(true)
    }

    /// [`Self::apply_transition`] of many executions, a few statements for 500
    /// of them: those whose change is the same for each (a release, a
    /// cancellation, a request to stop; no progress, nothing installed) are
    /// written together, each job asked once whether it is done; the others
    /// one at a time. Answers the executions as changed, by `action_id`.
    async fn apply_transitions(
        tx: &mut Conn<B>,
        tenant: &str,
        changes: Vec<(Execution, Transition)>,
        now: Timestamp,
    ) -> StoreResult<Vec<Execution>> {
        let mut done = Vec::with_capacity(changes.len());
        // (released, state, cancel requested, finished) → the executions changed so.
        type Same = (bool, ExecutionState, bool, bool);
        let mut same: std::collections::BTreeMap<Same, Vec<(Execution, Transition)>> = Default::default();
        for (mut e, t) in changes {
            if t.state == ExecutionState::Succeeded || t.progress != e.progress {
                Self::apply_transition(tx, tenant, &mut e, t, now).await?;
                done.push(e);
                continue;
            }
            let released = e.state == ExecutionState::Queued && t.state == ExecutionState::Notified;
            let finished = t.state.is_terminal() && !e.state.is_terminal();
            same.entry((released, t.state, t.cancel_requested, finished)).or_default().push((e, t));
        }
        let mut finished_jobs = std::collections::BTreeSet::new();
        for ((released, state, cancel_requested, finished), mut group) in same {
            for chunk in group.chunks_mut(500) {
                let mut q = QueryBuilder::<B::Db>::new("UPDATE executions SET state = ");
                q.push_arg(state.as_str()).push(", cancel_requested = ").push_arg(cancel_requested);
                q.push(", updated_at = ").push_arg(us(now));
                if released {
                    // Released to the device: pace and timeouts count from now.
                    q.push(", released_at = ").push_arg(us(now)).push(", step_deadline = NULL");
                }
                if finished {
                    q.push(", finished_at = ").push_arg(us(now));
                }
                q.push(" WHERE action_id IN (");
                let mut sep = q.separated(", ");
                for (e, _) in chunk.iter() {
                    sep.push_arg(e.action_id);
                }
                q.push(")");
                q.build().run(&mut *tx).await.map_err(db_err)?;
                let mut q = QueryBuilder::<B::Db>::new(
                    "INSERT INTO execution_events (action_id, seq, at, state, source, report, code, progress_cnt, \
                     progress_of, details) ",
                );
                q.push_values(chunk.iter(), |mut row, (e, t)| {
                    let ev = &t.event;
                    row.push_arg(e.action_id);
                    // An integer, written as it is.
                    row.push_unseparated(format!(
                        ", (SELECT COALESCE(MAX(seq), 0) + 1 FROM execution_events WHERE action_id = {})",
                        e.action_id
                    ));
                    row.push_arg(us(ev.at))
                        .push_arg(ev.state.as_str())
                        .push_arg(ev.source.as_str())
                        .push_arg(ev.report.clone())
                        .push_arg(ev.code.map(i64::from))
                        .push_arg(ev.progress.map(|p| p.cnt as i64))
                        .push_arg(ev.progress.and_then(|p| p.of).map(|o| o as i64))
                        .push_arg(Json(ev.details.clone()));
                });
                q.build().run(&mut *tx).await.map_err(db_err)?;
                for (e, _) in chunk.iter_mut() {
                    e.state = state;
                    e.cancel_requested = cancel_requested;
                    e.updated_at = now;
                    if finished {
                        e.finished_at = Some(now);
                        finished_jobs.insert(e.job.clone());
                    }
                }
            }
            done.extend(group.into_iter().map(|(e, _)| e));
        }
        for job in finished_jobs {
            Self::complete_if_done(&mut *tx, tenant, &job, now).await?;
        }
        done.sort_by_key(|e| e.action_id);
        Ok(done)
    }

    pub(crate) async fn apply_transition(
        tx: &mut Conn<B>,
        tenant: &str,
        e: &mut Execution,
        t: Transition,
        now: Timestamp,
    ) -> StoreResult<()> {
        if e.state == ExecutionState::Queued && t.state == ExecutionState::Notified {
            // Released to the device: pace and timeouts count from now.
            query::<B>("UPDATE executions SET released_at = $2, step_deadline = NULL WHERE action_id = $1")
                .arg(e.action_id)
                .arg(us(now))
                .run(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let finished = t.state.is_terminal() && !e.state.is_terminal();
        e.state = t.state;
        e.cancel_requested = t.cancel_requested;
        e.progress = t.progress;
        e.updated_at = now;
        if finished {
            e.finished_at = Some(now);
        }
        query::<B>(
            "UPDATE executions SET state = $2, cancel_requested = $3, progress_cnt = $4, progress_of = $5,
             updated_at = $6, finished_at = $7 WHERE action_id = $1",
        )
        .arg(e.action_id)
        .arg(e.state.as_str())
        .arg(e.cancel_requested)
        .arg(e.progress.map(|p| p.cnt as i64))
        .arg(e.progress.and_then(|p| p.of).map(|o| o as i64))
        .arg(us(now))
        .arg(e.finished_at.map(us))
        .run(&mut *tx)
        .await
        .map_err(db_err)?;
        let ev = &t.event;
        query::<B>(
        "INSERT INTO execution_events (action_id, seq, at, state, source, report, code, progress_cnt, progress_of, details)
         VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM execution_events WHERE action_id = $1), $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .arg(e.action_id)
    .arg(us(ev.at))
    .arg(ev.state.as_str())
    .arg(ev.source.as_str())
    .arg(&ev.report)
    .arg(ev.code.map(i64::from))
    .arg(ev.progress.map(|p| p.cnt as i64))
    .arg(ev.progress.and_then(|p| p.of).map(|o| o as i64))
    .arg(Json(&ev.details))
    .run(&mut *tx)
    .await
    .map_err(db_err)?;
        if !finished {
            return Ok(());
        }
        if e.state == ExecutionState::Succeeded && !t.installs {
            // A download-only success: nothing installed; the device is asked for its attributes.
            query::<B>("UPDATE devices SET attributes_requested = TRUE WHERE tenant = $1 AND id = $2")
                .arg(tenant)
                .arg(&e.device)
                .run(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        if e.state == ExecutionState::Succeeded && t.installs {
            let files: Option<Json<Vec<updraft_core::FirmwareFile>>> =
                query::<B>("SELECT files FROM firmware WHERE tenant = $1 AND id = $2")
                    .arg(tenant)
                    .arg(&e.firmware)
                    .optional_scalar(&mut *tx)
                    .await
                    .map_err(db_err)?;
            let installed: Option<Json<std::collections::BTreeMap<String, String>>> =
                query::<B>("SELECT firmware FROM devices WHERE tenant = $1 AND id = $2")
                    .arg(tenant)
                    .arg(&e.device)
                    .optional_scalar(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if let (Some(files), Some(Json(mut installed))) = (files, installed) {
                for f in files.0 {
                    installed.insert(f.component, f.version);
                }
                query::<B>(
                    "UPDATE devices SET firmware = $3, attributes_requested = TRUE, updated_at = $4, firmware_keys = $5
                 WHERE tenant = $1 AND id = $2",
                )
                .arg(tenant)
                .arg(&e.device)
                .arg(Json(&installed))
                .arg(us(now))
                .arg(Json(filter_sql::firmware_keys(&installed)))
                .run(&mut *tx)
                .await
                .map_err(db_err)?;
            }
        }
        Self::complete_if_done(&mut *tx, tenant, &e.job, now).await?;
        Ok(())
    }
}

/// [`SqlBackend::insert_executions`] in SQL both backends speak: a statement
/// of up to 1,000 rows for the executions, then one for their first events.
pub async fn insert_executions_by_values<B: SqlBackend>(
    conn: &mut Conn<B>,
    new: &NewExecutions<'_>,
) -> StoreResult<u64> {
    let mut added = 0;
    for chunk in new.rows.chunks(1000) {
        let mut q = QueryBuilder::<B::Db>::new(
            "INSERT INTO executions (tenant, job, device, firmware, state, attempt, cancel_requested,
             created_at, updated_at, finished_at, phase, action)
             SELECT ",
        );
        q.push_arg(new.tenant).push(", ").push_arg(new.job).push(", v.column1, ").push_arg(new.firmware);
        q.push(", v.column2, 1, FALSE, ").push_arg(new.now).push(", ").push_arg(new.now);
        q.push(", v.column3, v.column4, v.column5 FROM (");
        q.push_values(chunk, |mut b, e| {
            b.push_arg(e.device)
                .push_arg(e.state.as_str())
                .push_arg(e.state.is_terminal().then_some(new.now))
                .push_arg(e.phase)
                .push_arg(e.action);
        });
        // Devices deleted since they were read are left out (SQLite's parser also needs a
        // `WHERE` before `ON CONFLICT` here).
        q.push(") AS v WHERE EXISTS (SELECT 1 FROM devices d WHERE d.tenant = ")
            .push_arg(new.tenant)
            .push(" AND d.id = v.column1)");
        q.push(" ON CONFLICT (tenant, job, device) DO NOTHING RETURNING action_id, state");
        let created: Vec<(i64, String)> = q.build().rows(&mut *conn).await.map_err(db_err)?;
        if created.is_empty() {
            continue;
        }
        added += created.len() as u64;
        let mut q = QueryBuilder::<B::Db>::new(
            "INSERT INTO execution_events (action_id, seq, at, state, source, report, details) ",
        );
        q.push_values(&created, |mut b, (action_id, state)| {
            b.push_arg(*action_id)
                .push_arg(1i64)
                .push_arg(new.now)
                .push_arg(state.as_str())
                .push_arg("server")
                .push_arg("created")
                .push_arg(Json(Vec::<String>::new()));
        });
        q.build().run(&mut *conn).await.map_err(db_err)?;
    }
    Ok(added)
}
