//! Device filters: what a filter matches now (a count, or the first devices),
//! and saved filters, which jobs and searches name by id.

use crate::store::{DeviceScope, SavedFilter};
use updraft_core::filter::Filter;
use updraft_core::{Access, Device, FieldError, Page, PageRequest, SortOrder, validate};

use crate::actor::new_id;
use crate::error::{Error, Result};
use crate::text::non_empty;
use crate::{Actor, App};

/// Ids a saved filter may not take: they are routes of their own.
const RESERVED_IDS: &[&str] = &["estimate", "preview"];

/// Which filter: one given, or a saved filter's id.
#[derive(Debug, Clone)]
pub enum FilterSpec {
    Given(Filter),
    Saved(String),
}

/// A saved filter to create.
#[derive(Debug, Clone)]
pub struct NewSavedFilter {
    /// Generated when absent.
    pub id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub filter: Filter,
}

/// Changes to a saved filter: absent fields stay (`Some(None)` clears the description).
#[derive(Debug, Clone, Default)]
pub struct SavedFilterChange {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub filter: Option<Filter>,
}

fn check(f: &SavedFilter) -> Result<()> {
    let mut errors = vec![];
    validate::key("id", &f.id, &mut errors);
    if RESERVED_IDS.contains(&f.id.as_str()) {
        errors.push(FieldError::new("id", format!("`{}` is reserved", f.id)));
    }
    validate::text("name", &f.name, 256, &mut errors);
    if let Some(d) = &f.description {
        validate::description("description", d, validate::MAX_DESCRIPTION, &mut errors);
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::invalid(errors)) }
}

impl App {
    /// The filter `spec` names in `tenant`: for use cases that take a filter,
    /// once they have checked their actor (`not_found` for an unknown saved filter).
    pub async fn resolve_filter(&self, tenant: &str, spec: FilterSpec) -> Result<Filter> {
        match spec {
            FilterSpec::Given(filter) => Ok(filter),
            FilterSpec::Saved(id) => Ok(self.saved_filter_in(tenant, &id).await?.filter),
        }
    }

    async fn saved_filter_in(&self, tenant: &str, id: &str) -> Result<SavedFilter> {
        self.store.get_saved_filter(tenant, id).await?.ok_or_else(|| Error::not_found("filter", id))
    }

    /// How many devices the filter matches now.
    pub async fn estimate_filter(&self, actor: &Actor, spec: FilterSpec) -> Result<u64> {
        actor.require(Access::Read)?;
        let filter = self.resolve_filter(actor.tenant(), spec).await?;
        let now = self.now();
        if let Some(n) = self.fleet_index.count(self, actor.tenant(), &filter, now).await {
            metrics::counter!(crate::metrics::FILTER_ESTIMATES, "by" => "index").increment(1);
            return Ok(n);
        }
        metrics::counter!(crate::metrics::FILTER_ESTIMATES, "by" => "store").increment(1);
        Ok(self.store.count_devices_matching(actor.tenant(), &filter, now).await?)
    }

    /// The first `limit` devices the filter matches now, by id.
    pub async fn preview_filter(&self, actor: &Actor, spec: FilterSpec, limit: u32) -> Result<Vec<Device>> {
        actor.require(Access::Read)?;
        let filter = self.resolve_filter(actor.tenant(), spec).await?;
        // A preview is the first matches; the count is what `estimate_filter` is for.
        let req = PageRequest {
            limit,
            offset: 0,
            sort: "id".into(),
            order: SortOrder::Asc,
            search: None,
            count_total: false,
        };
        let page = self
            .store
            .list_devices_matching(actor.tenant(), &DeviceScope::default(), &filter, self.now(), &req)
            .await?;
        Ok(page.items)
    }

    pub async fn create_saved_filter(&self, actor: &Actor, input: NewSavedFilter) -> Result<SavedFilter> {
        actor.require(Access::WriteFleet)?;
        let now = self.now();
        let saved = SavedFilter {
            id: input.id.unwrap_or_else(|| new_id("flt_")),
            name: input.name.trim().to_owned(),
            description: non_empty(input.description),
            filter: input.filter,
            created_at: now,
            updated_at: now,
            updated_by: actor.key().map(|k| k.id.clone()),
        };
        check(&saved)?;
        self.store.create_saved_filter(actor.tenant(), &saved).await?;
        Ok(saved)
    }

    pub async fn list_saved_filters(&self, actor: &Actor, page: &PageRequest) -> Result<Page<SavedFilter>> {
        actor.require(Access::Read)?;
        Ok(self.store.list_saved_filters(actor.tenant(), page).await?)
    }

    pub async fn get_saved_filter(&self, actor: &Actor, id: &str) -> Result<SavedFilter> {
        actor.require(Access::Read)?;
        self.saved_filter_in(actor.tenant(), id).await
    }

    pub async fn update_saved_filter(&self, actor: &Actor, id: &str, change: SavedFilterChange) -> Result<SavedFilter> {
        actor.require(Access::WriteFleet)?;
        let mut f = self.get_saved_filter(actor, id).await?;
        if let Some(n) = change.name {
            f.name = n.trim().to_owned();
        }
        if let Some(d) = change.description {
            f.description = non_empty(d);
        }
        if let Some(filter) = change.filter {
            f.filter = filter;
        }
        f.updated_at = self.now();
        f.updated_by = actor.key().map(|k| k.id.clone());
        check(&f)?;
        self.store.update_saved_filter(actor.tenant(), &f).await?;
        Ok(f)
    }

    pub async fn delete_saved_filter(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Access::WriteFleet)?;
        Ok(self.store.delete_saved_filter(actor.tenant(), id).await?)
    }
}
