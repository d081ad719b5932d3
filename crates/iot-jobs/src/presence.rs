//! AWS IoT's lifecycle events, `$aws/events/presence/connected/{clientId}` and
//! `…/disconnected/{clientId}`. AWS's broker publishes them itself; a broker
//! that does not (Mosquitto) gets them from the device: its `connected` event
//! when it connects and its `disconnected` event as its last will, which the
//! broker publishes when the connection ends without a clean disconnect.

use serde::{Deserialize, Serialize};

/// A lifecycle event. Every field is optional when read: updraft needs only
/// the topic, which names the event and the thing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// `connected` or `disconnected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_identifier: Option<String>,
    /// `CLIENT_INITIATED_DISCONNECT`, `CONNECTION_LOST`, … on `disconnected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_number: Option<i64>,
}
