//! Static groups of devices and their members.

use crate::store::DeviceScope;
use updraft_core::{Access, Device, Group, Page, PageRequest, validate};

use crate::actor::new_id;
use crate::error::{Error, Result};
use crate::text::non_empty;
use crate::{Actor, App};

/// The most device ids one membership change may name.
pub const MAX_MEMBER_CHANGE: usize = 100_000;

/// A group to create.
#[derive(Debug, Clone)]
pub struct NewGroup {
    /// Generated when absent.
    pub id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    /// When set, only devices of this product may join.
    pub product: Option<String>,
}

/// Changes to a group: absent fields stay (`Some(None)` clears the description).
#[derive(Debug, Clone, Default)]
pub struct GroupChange {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
}

/// What a membership change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembersChanged {
    pub added: u64,
    pub removed: u64,
    /// The group's members afterwards.
    pub member_count: u64,
}

fn check(g: &Group) -> Result<()> {
    let mut errors = vec![];
    validate::key("id", &g.id, &mut errors);
    validate::text("name", &g.name, 256, &mut errors);
    if let Some(d) = &g.description {
        validate::description("description", d, validate::MAX_DESCRIPTION, &mut errors);
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::invalid(errors)) }
}

impl App {
    /// Fails with `not_found` for an unknown product.
    pub async fn create_group(&self, actor: &Actor, input: NewGroup) -> Result<Group> {
        actor.require(Access::WriteFleet)?;
        let now = self.now();
        let group = Group {
            id: input.id.unwrap_or_else(|| new_id("grp_")),
            name: input.name.trim().to_owned(),
            description: non_empty(input.description),
            product: non_empty(input.product),
            member_count: 0,
            created_at: now,
            updated_at: now,
        };
        check(&group)?;
        self.store.create_group(actor.tenant(), &group).await?;
        Ok(group)
    }

    pub async fn list_groups(&self, actor: &Actor, page: &PageRequest) -> Result<Page<Group>> {
        actor.require(Access::Read)?;
        Ok(self.store.list_groups(actor.tenant(), page).await?)
    }

    pub async fn get_group(&self, actor: &Actor, id: &str) -> Result<Group> {
        actor.require(Access::Read)?;
        self.store.get_group(actor.tenant(), id).await?.ok_or_else(|| Error::not_found("group", id))
    }

    pub async fn update_group(&self, actor: &Actor, id: &str, change: GroupChange) -> Result<Group> {
        actor.require(Access::WriteFleet)?;
        let mut g = self.get_group(actor, id).await?;
        if let Some(n) = change.name {
            g.name = n.trim().to_owned();
        }
        if let Some(d) = change.description {
            g.description = non_empty(d);
        }
        g.updated_at = self.now();
        check(&g)?;
        self.store.update_group(actor.tenant(), &g).await?;
        Ok(g)
    }

    pub async fn delete_group(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Access::WriteFleet)?;
        Ok(self.store.delete_group(actor.tenant(), id).await?)
    }

    /// Adds and removes members at once, all or nothing: devices of another
    /// product than the group's are refused, unknown ones are `not_found`.
    pub async fn change_group_members(
        &self,
        actor: &Actor,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<MembersChanged> {
        actor.require(Access::WriteFleet)?;
        if add.len() + remove.len() > MAX_MEMBER_CHANGE {
            return Err(Error::field("add", format!("at most {MAX_MEMBER_CHANGE} device ids per call")));
        }
        let change = self.store.change_members(actor.tenant(), id, add, remove, self.now()).await?;
        let group = self.get_group(actor, id).await?;
        Ok(MembersChanged { added: change.added, removed: change.removed, member_count: group.member_count })
    }

    /// The group's members, one page.
    pub async fn group_members(&self, actor: &Actor, id: &str, page: &PageRequest) -> Result<Page<Device>> {
        actor.require(Access::Read)?;
        self.get_group(actor, id).await?;
        let scope = DeviceScope { product: None, group: Some(id.to_owned()) };
        Ok(self.store.list_devices(actor.tenant(), &scope, page).await?)
    }
}
