//! Schemas of the document that the wire types take from the domain (ramp,
//! abort rules, retry, schedule, filters, properties, enums), written once
//! here and referenced from the wire types with `#[schema(schema_with = …)]`,
//! so the document says exactly what the API takes and answers. Enums come
//! from the domain's own lists where it has them.

use serde_json::{Value, json};
use updraft_core::job::{ExecutionState, JobState};
use updraft_core::phase::{MAX_PHASES, MAX_WAIT_SECONDS};
use updraft_core::rollout::{MAX_RETRIES, MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS};
use utoipa::openapi::{RefOr, Schema};

fn schema(v: Value) -> RefOr<Schema> {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("a valid schema: {e}: {v}"))
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn or_null(v: Value) -> RefOr<Schema> {
    schema(json!({"oneOf": [v, {"type": "null"}]}))
}

/// The named schemas this module defines, for `components.schemas`.
pub fn components() -> Vec<(&'static str, Value)> {
    let time_of_day = json!({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$", "description": "wall-clock time of day, `HH:MM`"});
    let weekday = json!({"type": "string", "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]});
    vec![
        (
            "Ramp",
            json!({
                "type": "object",
                "description": "Exponential rollout: start at `base_per_minute`, multiply by `increment_factor` each time another `every` executions were notified (or succeeded); never above `max_per_minute`.",
                "required": ["base_per_minute", "increment_factor", "every"],
                "properties": {
                    "base_per_minute": {"type": "integer", "minimum": 1, "maximum": u32::MAX},
                    "increment_factor": {"type": "number", "exclusiveMinimum": 1, "maximum": 5},
                    "criterion": {"type": "string", "enum": ["notified", "succeeded"], "default": "notified"},
                    "every": {"type": "integer", "minimum": 1, "maximum": i64::MAX},
                },
            }),
        ),
        (
            "AbortRule",
            json!({
                "type": "object",
                "description": "Abort the job when, among at least `min_executed` finished executions, the share of `failure` reaches `threshold_percent`.",
                "required": ["failure", "min_executed", "threshold_percent"],
                "properties": {
                    "failure": {"type": "string", "enum": ["failed", "rejected", "timed_out", "any"]},
                    "min_executed": {"type": "integer", "minimum": 0, "maximum": i64::MAX},
                    "threshold_percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                },
            }),
        ),
        (
            "Retry",
            json!({
                "type": "object",
                "description": "Retries of failed and timed-out executions: `count` more attempts, `interval_minutes` apart (at most 10080 when `count` is set).",
                "properties": {
                    "count": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES, "default": 0},
                    "interval_minutes": {"type": "integer", "minimum": 0, "maximum": u32::MAX, "default": 0},
                },
            }),
        ),
        (
            "Phase",
            json!({
                "type": "object",
                "additionalProperties": false,
                "description": "One phase of a job: the share of its devices it reaches (cumulative, `percent` or `devices`; the last phase takes the rest), the gate to pass before the next phase opens, and an error threshold that pauses the job.",
                "properties": {
                    "name": {"type": ["string", "null"], "maxLength": 64},
                    "percent": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 100},
                    "devices": {"type": ["integer", "null"], "minimum": 1, "maximum": i64::MAX},
                    "gate": reference("Gate"),
                    "error_threshold": {"oneOf": [reference("ErrorThreshold"), {"type": "null"}]},
                },
            }),
        ),
        (
            "Gate",
            json!({
                "type": "object",
                "additionalProperties": false,
                "description": "What must hold before the next phase opens (all of it; a gate naming nothing opens when its phase completed).",
                "properties": {
                    "manual": {"type": "boolean", "default": false, "description": "an operator approves: `POST /api/v1/jobs/{id}/phases/next`"},
                    "success_percent": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 100},
                    "min_finished": {"type": ["integer", "null"], "minimum": 1, "maximum": i64::MAX},
                    "wait_seconds": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_WAIT_SECONDS},
                },
            }),
        ),
        (
            "ErrorThreshold",
            json!({
                "type": "object",
                "additionalProperties": false,
                "description": "Pause the job when, among at least `min_finished` finished executions of the phase, failures reach `percent`.",
                "required": ["percent"],
                "properties": {
                    "percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                    "min_finished": {"type": "integer", "minimum": 1, "maximum": i64::MAX, "default": 1},
                },
            }),
        ),
        (
            "PhaseState",
            json!({
                "type": "object",
                "description": "Where a phased job is: the open phase, when later phases opened, whether the open phase's gate was approved, when it completed, and the phases whose errors paused the job.",
                "properties": {
                    "current": {"type": "integer", "minimum": 0},
                    "opened_at": {"type": "array", "items": {"type": "string", "format": "date-time"}},
                    "approved": {"type": "boolean"},
                    "completed_at": {"type": ["string", "null"], "format": "date-time"},
                    "error_paused": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                },
            }),
        ),
        (
            "DailyWindow",
            json!({
                "type": "object",
                "description": "A daily window of wall-clock time, `from` included, `to` excluded; `to` before `from` crosses midnight; equal is the whole day.",
                "required": ["from", "to"],
                "additionalProperties": false,
                "properties": {"from": time_of_day, "to": time_of_day},
            }),
        ),
        (
            "Schedule",
            json!({
                "type": "object",
                "description": "When a job may run: between `start` and `end`, on `days` (every day when empty), inside `window` (all day when null), in `timezone`.",
                "required": ["timezone", "days"],
                "properties": {
                    "start": {"type": ["string", "null"], "format": "date-time"},
                    "end": {"type": ["string", "null"], "format": "date-time"},
                    "timezone": {"type": "string", "description": "an IANA time zone"},
                    "days": {"type": "array", "items": weekday},
                    "window": {"oneOf": [reference("DailyWindow"), {"type": "null"}]},
                },
            }),
        ),
        (
            "ScheduleIn",
            json!({
                "type": "object",
                "description": "A schedule: `start`, `end`, `timezone` (IANA, default UTC), `days` and a daily `window`; or seed 001's form, `startSchedule` and `endSchedule` in seconds of the day, instead of `window`.",
                "additionalProperties": false,
                "properties": {
                    "start": {"type": ["string", "null"], "format": "date-time"},
                    "end": {"type": ["string", "null"], "format": "date-time"},
                    "timezone": {"type": ["string", "null"], "description": "an IANA time zone; UTC when absent"},
                    "days": {"type": ["array", "null"], "items": weekday},
                    "window": {"oneOf": [reference("DailyWindow"), {"type": "null"}]},
                    "startSchedule": {"type": ["integer", "null"], "minimum": 0, "maximum": 86399},
                    "endSchedule": {"type": ["integer", "null"], "minimum": 0, "maximum": 86399},
                },
            }),
        ),
        (
            "Progress",
            json!({
                "type": "object",
                "description": "Download or install progress as the device reported it.",
                "required": ["cnt"],
                "properties": {
                    "cnt": {"type": "integer", "minimum": 0},
                    "of": {"type": ["integer", "null"], "minimum": 0},
                },
            }),
        ),
        (
            "ExecutionEvent",
            json!({
                "type": "object",
                "required": ["at", "state", "source", "report", "details"],
                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "state": execution_state_value(),
                    "source": {"type": "string", "enum": ["device", "server", "operator"]},
                    "report": {"type": "string", "description": "what was reported, in the device API's words (`proceeding`, `closed/success`, …) or the server's"},
                    "code": {"type": ["integer", "null"]},
                    "progress": {"oneOf": [reference("Progress"), {"type": "null"}]},
                    "details": {"type": "array", "items": {"type": "string"}},
                },
            }),
        ),
        ("PropertyValue", json!({"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]})),
        ("FilterJson", filter_json(true)),
        ("FilterBlock", filter_json(false)),
    ]
}

/// The JSON form of a device filter (see `docs/filters.md`): categories, and
/// `any`/`all`/`not` blocks of the same shape (`FilterBlock`, without
/// `include` and `exclude`). Blocks nested in blocks are shown as objects:
/// a schema that refers to itself sends schemathesis's generator (Python's
/// parser, under Hypothesis) past its recursion limit.
fn filter_json(top: bool) -> Value {
    let value = json!({"description": "a string, number, boolean, or an array of them for `in`"});
    let condition = json!({
        "type": "object", "required": ["op"], "additionalProperties": false,
        "properties": {"op": {"type": "string"}, "value": value},
    });
    let conditions = json!({
        "description": "a value (equal to it), an array of strings (one of them), a condition, or an array of conditions",
        "oneOf": [
            {"type": "string"},
            {"type": "array", "minItems": 1, "items": {"type": "string"}},
            condition,
            {"type": "array", "minItems": 1, "items": condition},
        ],
    });
    let one_or_many =
        json!({"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]});
    let named = |key: &str| {
        json!({
            "type": "object", "required": [key], "additionalProperties": false,
            "properties": {key: {"type": "string"}, "op": {"type": "string", "default": "=="}, "value": value},
        })
    };
    let block = if top {
        reference("FilterBlock")
    } else {
        json!({"type": "object", "additionalProperties": true, "description": "a block of the same shape"})
    };
    let mut schema = json!({
        "type": "object",
        "description": if top {
            "A filter in its JSON form (see docs/filters.md)."
        } else {
            "A block of a filter's JSON form: it matches when all its conditions hold."
        },
        "additionalProperties": false,
        "properties": {
            "product": conditions, "id": conditions, "group": conditions,
            "status": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "connection_status": conditions, "time_since_activation": one_or_many,
                    "activated_after": one_or_many, "activated_before": one_or_many, "activated": conditions,
                    "connected_after": one_or_many, "connected_before": one_or_many, "connected": conditions,
                },
            },
            "versions": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "firmware": {"type": "array", "items": named("component")},
                    "hardware_version": conditions, "module_model": conditions,
                    "module_version": conditions, "template_id": conditions,
                },
            },
            "properties": {"type": "array", "items": named("name")},
            "metadata": {"type": "array", "items": named("key")},
            "any": {"type": "array", "items": block},
            "all": {"type": "array", "items": block},
            "not": block,
        },
    });
    if top {
        for list in ["include", "exclude"] {
            schema["properties"][list] = json!({"type": "array", "items": {"type": "string"}});
        }
    }
    schema
}

fn execution_state_value() -> Value {
    json!({"type": "string", "enum": ExecutionState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()})
}

pub fn ramp() -> RefOr<Schema> {
    or_null(reference("Ramp"))
}
pub fn abort_rules() -> RefOr<Schema> {
    schema(json!({"type": "array", "maxItems": 10, "items": reference("AbortRule")}))
}
pub fn retry() -> RefOr<Schema> {
    or_null(reference("Retry"))
}
pub fn retry_out() -> RefOr<Schema> {
    schema(reference("Retry"))
}
pub fn schedule_in() -> RefOr<Schema> {
    or_null(reference("ScheduleIn"))
}
pub fn phases() -> RefOr<Schema> {
    schema(json!({"type": "array", "maxItems": MAX_PHASES, "items": reference("Phase")}))
}
pub fn phase_state() -> RefOr<Schema> {
    schema(reference("PhaseState"))
}
pub fn schedule() -> RefOr<Schema> {
    or_null(reference("Schedule"))
}
pub fn progress() -> RefOr<Schema> {
    or_null(reference("Progress"))
}
pub fn history() -> RefOr<Schema> {
    schema(json!({"type": "array", "items": reference("ExecutionEvent")}))
}
pub fn properties() -> RefOr<Schema> {
    schema(json!({"type": "object", "additionalProperties": reference("PropertyValue")}))
}
pub fn properties_or_null() -> RefOr<Schema> {
    or_null(json!({"type": "object", "additionalProperties": reference("PropertyValue")}))
}
/// An inline filter: the text form (a string) or the JSON form.
pub fn filter_in() -> RefOr<Schema> {
    schema(
        json!({"oneOf": [{"type": "string", "description": "the text form"}, reference("FilterJson"), {"type": "null"}]}),
    )
}
/// The JSON form only.
pub fn filter_json_in() -> RefOr<Schema> {
    or_null(reference("FilterJson"))
}
pub fn filter_json_out() -> RefOr<Schema> {
    schema(reference("FilterJson"))
}
/// Parameters passed to devices as given: any JSON values, by name.
pub fn additional_params() -> RefOr<Schema> {
    schema(json!({"type": "object", "additionalProperties": true}))
}
pub fn timeout_seconds() -> RefOr<Schema> {
    schema(json!({"type": ["integer", "null"], "minimum": MIN_TIMEOUT_SECONDS, "maximum": MAX_TIMEOUT_SECONDS}))
}

fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}
pub fn job_state() -> RefOr<Schema> {
    schema(json!({"type": "string", "enum": JobState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()}))
}
pub fn execution_state() -> RefOr<Schema> {
    schema(execution_state_value())
}
/// A string enum's schema, and the same or `null` for optional fields.
macro_rules! string_enums {
    ($($name:ident, $or_null:ident => [$($value:literal),*];)*) => {$(
        pub fn $name() -> RefOr<Schema> {
            schema(one_of(&[$($value),*]))
        }
        pub fn $or_null() -> RefOr<Schema> {
            or_null(one_of(&[$($value),*]))
        }
    )*};
}

string_enums! {
    job_kind, job_kind_or_null => ["upgrade", "verify"];
    recurrence, recurrence_or_null => ["snapshot", "continuous"];
    connection_status, connection_status_or_null => ["online", "offline", "initializing"];
    version_scheme, version_scheme_or_null => ["semver", "free"];
    handling, handling_or_null => ["forced", "soft", "download_only"];
}

pub fn role() -> RefOr<Schema> {
    schema(one_of(&["admin", "operator", "viewer", "consent"]))
}
pub fn decision() -> RefOr<Schema> {
    schema(one_of(&["approve", "deny"]))
}

/// A schema-only body type: the document shows `$schema`, the handler reads the body itself.
macro_rules! body_schema {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                schema($schema)
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

body_schema!(
    /// An NDJSON import: one device object (as for `POST /api/v1/devices`) per line.
    NdjsonDevices => json!({"type": "array", "minItems": 1, "items": reference("DeviceIn")})
);
body_schema!(
    /// A CSV import: a header line, then one device per line.
    CsvDevices => json!({"type": "string", "minLength": 1})
);
body_schema!(
    /// A firmware upload: text fields and one or more file parts.
    FirmwareUpload => json!({
        "type": "object",
        "required": ["product", "version", "file"],
        "properties": {
            "product": {"type": "string", "description": "the product key"},
            "version": {"type": "string", "description": "the image's version (semver unless the product's scheme is free)"},
            "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
            "name": {"type": "string", "maxLength": 256},
            "release_notes": {"type": "string", "maxLength": 65536},
            "metadata": {"type": "string", "description": "a JSON object of strings"},
            "needs_verification": {"type": "string", "enum": ["true", "false", "1", "0"]},
            "files": {"type": "string", "description": "a JSON array of `{name, component, version, codeSigning}` describing the file parts; `codeSigning` is seed 002's (AWS IoT CreateOTAUpdate's) `{customCodeSigning: {certificateChain: {certificateName, inlineDocument}, hashAlgorithm, signature: {inlineDocument}, signatureAlgorithm}}`"},
            "file": {"type": "array", "minItems": 1, "maxItems": updraft_core::validate::MAX_FIRMWARE_FILES, "items": {"type": "string", "format": "binary"}},
        },
    })
);
body_schema!(
    /// The body of `PUT /api/v1/jobs/{id}/schedule`: a schedule, or `null`.
    ScheduleBody => json!({"oneOf": [reference("ScheduleIn"), {"type": "null"}]})
);
