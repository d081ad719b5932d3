//! The reserved topics of AWS IoT Jobs and of AWS IoT's lifecycle events:
//! built for a thing, and read back into what they ask.

/// The prefix of every thing's reserved topics.
pub const THINGS: &str = "$aws/things/";
/// The prefix of the lifecycle (presence) events.
pub const PRESENCE: &str = "$aws/events/presence/";

/// What a device publishes on its jobs topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `jobs/get`: the pending executions.
    GetPending,
    /// `jobs/start-next`: start the next pending execution.
    StartNext,
    /// `jobs/{jobId}/get` (`jobId` may be `$next`).
    Describe(String),
    /// `jobs/{jobId}/update`.
    Update(String),
}

impl Request {
    /// The topic the request is published on, for `thing`.
    pub fn topic(&self, thing: &str) -> String {
        match self {
            Request::GetPending => format!("{THINGS}{thing}/jobs/get"),
            Request::StartNext => format!("{THINGS}{thing}/jobs/start-next"),
            Request::Describe(job) => format!("{THINGS}{thing}/jobs/{job}/get"),
            Request::Update(job) => format!("{THINGS}{thing}/jobs/{job}/update"),
        }
    }

    /// The topic its `accepted` answer comes on.
    pub fn accepted(&self, thing: &str) -> String {
        format!("{}/accepted", self.topic(thing))
    }

    /// The topic its `rejected` answer comes on.
    pub fn rejected(&self, thing: &str) -> String {
        format!("{}/rejected", self.topic(thing))
    }
}

/// What a topic a device published on names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A jobs request of `thing`.
    Jobs { thing: &'a str, request: Request },
    /// A topic under `$aws/things/{thing}/jobs/` that names no operation.
    InvalidTopic { thing: &'a str, topic: &'a str },
    /// A lifecycle event: `connected` or `disconnected`, of client `thing`.
    Presence { thing: &'a str, connected: bool },
}

/// Reads a topic: a jobs request, an unknown jobs topic, a presence event, or
/// nothing of this API (answers this API publishes, other topics).
pub fn parse(topic: &str) -> Option<Parsed<'_>> {
    if let Some(rest) = topic.strip_prefix(PRESENCE) {
        let (event, thing) = rest.split_once('/')?;
        if thing.is_empty() || thing.contains('/') {
            return None;
        }
        return match event {
            "connected" => Some(Parsed::Presence { thing, connected: true }),
            "disconnected" => Some(Parsed::Presence { thing, connected: false }),
            _ => None,
        };
    }
    let rest = topic.strip_prefix(THINGS)?;
    let (thing, rest) = rest.split_once('/')?;
    let ops = rest.strip_prefix("jobs/")?;
    if thing.is_empty() {
        return None;
    }
    let segments: Vec<&str> = ops.split('/').collect();
    // The service's own answers and notifications are not requests.
    if matches!(segments.last(), Some(&"accepted") | Some(&"rejected"))
        || matches!(segments.as_slice(), ["notify"] | ["notify-next"])
    {
        return None;
    }
    let request = match segments.as_slice() {
        ["get"] => Request::GetPending,
        ["start-next"] => Request::StartNext,
        [job, "get"] if !job.is_empty() => Request::Describe((*job).to_owned()),
        [job, "update"] if !job.is_empty() => Request::Update((*job).to_owned()),
        _ => return Some(Parsed::InvalidTopic { thing, topic }),
    };
    Some(Parsed::Jobs { thing, request })
}

/// `$aws/things/{thing}/jobs/notify`.
pub fn notify(thing: &str) -> String {
    format!("{THINGS}{thing}/jobs/notify")
}

/// `$aws/things/{thing}/jobs/notify-next`.
pub fn notify_next(thing: &str) -> String {
    format!("{THINGS}{thing}/jobs/notify-next")
}

/// `$aws/events/presence/connected/{thing}` or `…/disconnected/{thing}`.
pub fn presence(thing: &str, connected: bool) -> String {
    format!("{PRESENCE}{}/{thing}", if connected { "connected" } else { "disconnected" })
}

/// The thing name of a device: its id in the broker's default tenant,
/// `{tenant}@{device}` in any other.
pub fn thing_name(default_tenant: &str, tenant: &str, device: &str) -> String {
    if tenant.eq_ignore_ascii_case(default_tenant) { device.to_owned() } else { format!("{tenant}@{device}") }
}

/// The (tenant, device) a thing name names, the tenant lowercased.
pub fn parse_thing(default_tenant: &str, thing: &str) -> Option<(String, String)> {
    let (tenant, device) = match thing.split_once('@') {
        Some((t, d)) => (t.to_ascii_lowercase(), d),
        None => (default_tenant.to_ascii_lowercase(), thing),
    };
    (!tenant.is_empty() && !device.is_empty()).then(|| (tenant, device.to_owned()))
}

/// The `rejected` topic of a topic that names no operation.
pub fn rejected_of(topic: &str) -> String {
    format!("{topic}/rejected")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_their_topics() {
        for r in [
            Request::GetPending,
            Request::StartNext,
            Request::Describe("job-1".into()),
            Request::Describe("$next".into()),
            Request::Update("job-1".into()),
        ] {
            let topic = r.topic("dev-1");
            assert_eq!(parse(&topic), Some(Parsed::Jobs { thing: "dev-1", request: r.clone() }));
            assert_eq!(parse(&r.accepted("dev-1")), None);
            assert_eq!(parse(&r.rejected("dev-1")), None);
        }
        assert_eq!(parse(&notify("a@b")), None);
        assert_eq!(parse(&notify_next("a@b")), None);
    }

    #[test]
    fn thing_names_carry_the_tenant_outside_the_default_one() {
        assert_eq!(thing_name("default", "default", "dev-1"), "dev-1");
        assert_eq!(thing_name("default", "acme", "dev-1"), "acme@dev-1");
        assert_eq!(parse_thing("default", "dev-1"), Some(("default".into(), "dev-1".into())));
        assert_eq!(parse_thing("default", "Acme@dev-1"), Some(("acme".into(), "dev-1".into())));
        assert_eq!(parse_thing("default", "@dev-1"), None);
        assert_eq!(parse_thing("default", "acme@"), None);
    }

    #[test]
    fn other_topics_are_not_requests() {
        assert_eq!(parse("$aws/things/dev-1/shadow/get"), None);
        assert_eq!(parse("plain/topic"), None);
        assert_eq!(
            parse("$aws/things/dev-1/jobs/a/b/c"),
            Some(Parsed::InvalidTopic { thing: "dev-1", topic: "$aws/things/dev-1/jobs/a/b/c" })
        );
        assert_eq!(parse(&presence("dev-1", true)), Some(Parsed::Presence { thing: "dev-1", connected: true }));
        assert_eq!(parse(&presence("dev-1", false)), Some(Parsed::Presence { thing: "dev-1", connected: false }));
        assert_eq!(parse("$aws/events/presence/connected/a/b"), None);
    }
}
