//! Products (OEM models, ProductKeys): what firmware is built for and devices are.

use updraft_core::{Access, Page, PageRequest, Product, VersionScheme, validate};

use crate::error::{Error, Result};
use crate::text::non_empty;
use crate::{Actor, App};

/// A product to create.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub key: String,
    /// The key when absent.
    pub name: Option<String>,
    pub description: Option<String>,
    /// `semver` when absent.
    pub version_scheme: Option<VersionScheme>,
}

/// Changes to a product: absent fields stay (`Some(None)` clears the description).
#[derive(Debug, Clone, Default)]
pub struct ProductChange {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub version_scheme: Option<VersionScheme>,
}

fn check(p: &Product) -> Result<()> {
    let mut errors = vec![];
    validate::key("key", &p.key, &mut errors);
    validate::text("name", &p.name, 256, &mut errors);
    if let Some(d) = &p.description {
        validate::description("description", d, validate::MAX_DESCRIPTION, &mut errors);
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::invalid(errors)) }
}

impl App {
    pub async fn create_product(&self, actor: &Actor, input: NewProduct) -> Result<Product> {
        actor.require(Access::WriteFleet)?;
        let now = self.now();
        let product = Product {
            name: non_empty(input.name).unwrap_or_else(|| input.key.clone()),
            key: input.key,
            description: non_empty(input.description),
            version_scheme: input.version_scheme.unwrap_or_default(),
            created_at: now,
            updated_at: now,
        };
        check(&product)?;
        self.store.create_product(actor.tenant(), &product).await?;
        Ok(product)
    }

    pub async fn list_products(&self, actor: &Actor, page: &PageRequest) -> Result<Page<Product>> {
        actor.require(Access::Read)?;
        Ok(self.store.list_products(actor.tenant(), page).await?)
    }

    pub async fn get_product(&self, actor: &Actor, key: &str) -> Result<Product> {
        actor.require(Access::Read)?;
        self.store.get_product(actor.tenant(), key).await?.ok_or_else(|| Error::not_found("product", key))
    }

    pub async fn update_product(&self, actor: &Actor, key: &str, change: ProductChange) -> Result<Product> {
        actor.require(Access::WriteFleet)?;
        let mut p = self.get_product(actor, key).await?;
        if let Some(name) = change.name {
            p.name = name.trim().to_owned();
        }
        if let Some(d) = change.description {
            p.description = non_empty(d);
        }
        if let Some(s) = change.version_scheme {
            p.version_scheme = s;
        }
        p.updated_at = self.now();
        check(&p)?;
        self.store.update_product(actor.tenant(), &p).await?;
        Ok(p)
    }

    /// Fails with `in_use` while devices, firmware or groups use the product.
    pub async fn delete_product(&self, actor: &Actor, key: &str) -> Result<()> {
        actor.require(Access::WriteFleet)?;
        Ok(self.store.delete_product(actor.tenant(), key).await?)
    }
}
