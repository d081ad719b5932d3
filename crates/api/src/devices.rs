//! Devices: registration (one, or a bulk import), listing, reading, updating.
//! A device's token is issued at registration and shown only in that answer.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::{ConnectionStatus, Device, PropertyValue};

/// A device to register.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceIn {
    /// The device id (DSN, device key, thing name): `[A-Za-z0-9_.:-]{1,128}`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_.:-]{1,128}$"))]
    pub id: String,
    /// The product key.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,128}$"))]
    pub product: String,
    /// Installed firmware version per component.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub firmware: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// Typed properties: string, number or boolean.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::properties))]
    pub properties: BTreeMap<String, PropertyValue>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Timestamp>,
    /// `online`, `offline` (default) or `initializing`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::connection_status_or_null))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_status: Option<ConnectionStatus>,
}

/// Changes to a device: absent fields stay, `null` clears, maps are replaced whole.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "crate::double_option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub hardware_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::double_option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub module_model: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::double_option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub module_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::double_option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub template_id: Option<Option<String>>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::properties_or_null))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, PropertyValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "crate::double_option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub activated_at: Option<Option<Timestamp>>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::connection_status_or_null))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_status: Option<ConnectionStatus>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceOut {
    pub id: String,
    pub product: String,
    pub firmware: BTreeMap<String, String>,
    pub hardware_version: Option<String>,
    pub module_model: Option<String>,
    pub module_version: Option<String>,
    pub template_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::properties))]
    pub properties: BTreeMap<String, PropertyValue>,
    pub metadata: BTreeMap<String, String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub activated_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_seen_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::connection_status))]
    pub connection_status: ConnectionStatus,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    /// The device's token for the device API, present only when it was just issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl DeviceOut {
    /// A device on the wire, with its token when it was just issued.
    pub fn new(d: Device, token: Option<String>) -> Self {
        DeviceOut {
            id: d.id,
            product: d.product,
            firmware: d.firmware,
            hardware_version: d.hardware_version,
            module_model: d.module_model,
            module_version: d.module_version,
            template_id: d.template_id,
            properties: d.properties,
            metadata: d.metadata,
            activated_at: d.activated_at,
            last_seen_at: d.last_seen_at,
            connection_status: d.connection_status,
            created_at: d.created_at,
            updated_at: d.updated_at,
            token,
        }
    }
}

impl From<Device> for DeviceOut {
    fn from(d: Device) -> Self {
        DeviceOut::new(d, None)
    }
}

/// A client certificate for a device's MQTT connection (AWS IoT's
/// `CreateKeysAndCertificate`): its key is made by updraft and shown only this once.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MqttCertificateOut {
    /// The device's thing name: its topics are `$aws/things/{thing_name}/jobs/…`.
    pub thing_name: String,
    /// The client certificate, PEM; its subject CN is the thing name.
    pub certificate_pem: String,
    /// The certificate's private key, PEM (PKCS#8).
    pub private_key_pem: String,
    /// The CA that issued it, PEM.
    pub ca_certificate_pem: String,
    /// The broker devices connect to (`mqtt.device_url`), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// One device's id and token, as answered by an import.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    pub id: String,
    pub token: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportOut {
    pub created: usize,
    /// Every imported device's token, shown this once.
    pub devices: Vec<IssuedToken>,
}

/// An import problem: the 1-based line of the body (after the CSV header, counting it) and what is wrong.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct DeviceListParams {
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[cfg_attr(feature = "openapi", param(maximum = 9223372036854775807_u64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// `id` (default), `product`, `created_at`, `updated_at`, `last_seen_at`, `activated_at`; `-` for descending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Case-insensitive text in the id, hardware version, module model or template id.
    #[cfg_attr(feature = "openapi", param(max_length = 256))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Only devices of this product.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Only members of this group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Only devices this filter matches, in the filter language's text form
    /// (`product == "thermo-x" and fw.host < "2.0.0"`; see `docs/filters.md`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}
