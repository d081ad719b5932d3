//! What devices run: products and their firmware.

use async_trait::async_trait;
use updraft_core::{Firmware, Page, PageRequest, Product};

use crate::store::StoreResult;

/// Products and their firmware.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    async fn create_product(&self, tenant: &str, product: &Product) -> StoreResult<()>;
    async fn get_product(&self, tenant: &str, key: &str) -> StoreResult<Option<Product>>;
    async fn list_products(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<Product>>;
    async fn update_product(&self, tenant: &str, product: &Product) -> StoreResult<()>;
    /// `InUse` while devices, firmware or groups refer to the product.
    async fn delete_product(&self, tenant: &str, key: &str) -> StoreResult<()>;

    /// `Conflict` when the id, or the product's version, is taken; `Missing` (`product`) for an unknown product.
    async fn create_firmware(&self, tenant: &str, firmware: &Firmware) -> StoreResult<()>;
    async fn get_firmware(&self, tenant: &str, id: &str) -> StoreResult<Option<Firmware>>;
    async fn list_firmware(
        &self,
        tenant: &str,
        product: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<Firmware>>;
    /// `InUse` while unfinished executions install it.
    async fn delete_firmware(&self, tenant: &str, id: &str) -> StoreResult<()>;
}
