//! Agents, as Neutron's `agent` extension shows them: each host whose data plane runs reports
//! itself (`qswitch serve` with its data plane on is its own host's agent) with a heartbeat, and
//! an agent is alive while its last heartbeat is recent. Admins may change an agent's
//! `admin_state_up` and description and delete it; a deleted agent that is still running
//! reports itself again, under a new id, at its next heartbeat, as in Neutron.

use std::time::{SystemTime, UNIX_EPOCH};

/// The `agent_type` of a qswitch host agent.
pub const AGENT_TYPE: &str = "qswitch agent";
/// Its `binary`.
pub const BINARY: &str = "qswitch";
/// Its `topic` (it takes no RPC topic: it follows the store).
pub const TOPIC: &str = "N/A";
/// How often a running agent reports (Neutron's `report_interval`).
pub const REPORT_INTERVAL_SECS: u64 = 30;
/// How long after its last heartbeat an agent is taken for dead (Neutron's `agent_down_time`).
pub const DOWN_TIME_SECS: i64 = 75;

/// An agent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Its id (a UUID).
    pub id: String,
    /// `agent_type`.
    pub agent_type: String,
    /// `binary`.
    pub binary: String,
    /// The host it runs on.
    pub host: String,
    /// `topic`.
    pub topic: String,
    /// `admin_state_up`.
    pub admin_state_up: bool,
    /// `description` (`None`: null).
    pub description: Option<String>,
    /// `configurations`, a JSON object as text.
    pub configurations: String,
    /// First report, in seconds since the epoch.
    pub created_at: i64,
    /// The report at its process's start.
    pub started_at: i64,
    /// Its last report.
    pub heartbeat_at: i64,
}

impl Agent {
    /// Is its last heartbeat recent enough, at `now` (seconds since the epoch)?
    pub fn alive(&self, now: i64) -> bool {
        alive_at(Some(self.heartbeat_at), now)
    }
}

/// Whether an agent whose last heartbeat was `heartbeat` (`None`: none) is alive at `now`.
fn alive_at(heartbeat: Option<i64>, now: i64) -> bool {
    heartbeat.is_some_and(|h| now.saturating_sub(h) <= DOWN_TIME_SECS)
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

/// An agent timestamp as Neutron shows it: `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn timestamp(secs: i64) -> String {
    crate::neutron::iso8601(u64::try_from(secs).unwrap_or(0))
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_owned()
}

/// What a host's data plane says about one port it forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortReport {
    /// The port's id.
    pub port_id: String,
    /// `ACTIVE` (forwarding), `DOWN` (no device here yet, or closed) or `ERROR`.
    pub status: &'static str,
    /// Why the data plane refuses the port (`ERROR`).
    pub reason: Option<String>,
}

/// One report of a host's data plane about its ports.
#[derive(Debug, Clone, Copy)]
pub struct HostReport<'a> {
    /// The store revision it has applied: every port state in the report is as of it or later.
    pub revision: u64,
    /// The ports whose state changed since its last report; with `full`, every port it reports.
    pub changed: &'a [PortReport],
    /// The ports it reported before and no longer does (empty with `full`).
    pub gone: &'a [String],
    /// `changed` is the whole of what it says: nothing it reported before stands.
    pub full: bool,
}

/// A port's status as its host reported it, with that host agent's last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedStatus {
    /// The port's id.
    pub port_id: String,
    /// The reporting host.
    pub host: String,
    /// `ACTIVE`, `DOWN` or `ERROR`.
    pub status: String,
    /// Why (`ERROR`).
    pub reason: Option<String>,
    /// The store revision the host's data plane had applied when it reported.
    pub revision: u64,
    /// The reporting agent's last heartbeat (seconds since the epoch); `None` if it has none.
    pub heartbeat_at: Option<i64>,
}

/// A host as the store knows it: the revision its data plane last reported having applied
/// (0: none), and its agent's last heartbeat (`None`: no agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// The host's name.
    pub host: String,
    /// The store revision its data plane had applied at its last report.
    pub revision: u64,
    /// Its agent's last heartbeat (seconds since the epoch).
    pub heartbeat_at: Option<i64>,
}

impl HostState {
    /// Whether its agent is alive at `now`.
    pub fn alive(&self, now: i64) -> bool {
        alive_at(self.heartbeat_at, now)
    }
}

impl ReportedStatus {
    /// How much a report says for its port, when several hosts report an unbound one: one that
    /// forwards, then one that refuses it (ERROR), then DOWN; a live agent's over a dead one's.
    pub fn weight(&self, now: i64) -> u8 {
        let alive = alive_at(self.heartbeat_at, now);
        let status = match self.status.as_str() {
            "ACTIVE" => 3,
            "ERROR" => 2,
            _ => 1,
        };
        if alive {
            status + 3
        } else {
            status
        }
    }

    /// Forwarding, as reported by an agent that is alive at `now`: a dead agent's ports are
    /// DOWN whatever it last said.
    pub fn forwarding(&self, now: i64) -> bool {
        self.status == "ACTIVE" && alive_at(self.heartbeat_at, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_until_the_down_time_has_passed_and_shown_as_neutron_shows_it() {
        let a = Agent {
            id: "a".into(),
            agent_type: AGENT_TYPE.into(),
            binary: BINARY.into(),
            host: "h".into(),
            topic: TOPIC.into(),
            admin_state_up: true,
            description: None,
            configurations: "{}".into(),
            created_at: 0,
            started_at: 0,
            heartbeat_at: 1_000,
        };
        assert!(a.alive(1_000 + DOWN_TIME_SECS));
        assert!(!a.alive(1_001 + DOWN_TIME_SECS));
        assert_eq!(timestamp(1_764_825_600), "2025-12-04 05:20:00");
    }

    #[test]
    fn a_port_forwards_while_its_host_says_so_and_its_agent_is_alive() {
        let r = ReportedStatus {
            port_id: "p".into(),
            host: "h".into(),
            status: "ACTIVE".into(),
            reason: None,
            revision: 7,
            heartbeat_at: Some(1_000),
        };
        assert!(r.forwarding(1_000 + DOWN_TIME_SECS));
        // Its agent is dead: DOWN, whatever it last said.
        assert!(!r.forwarding(1_001 + DOWN_TIME_SECS));
        let gone = ReportedStatus {
            heartbeat_at: None,
            ..r.clone()
        };
        assert!(!gone.forwarding(1_000));
        let down = ReportedStatus {
            status: "DOWN".into(),
            ..r
        };
        assert!(!down.forwarding(1_000));
    }
}
