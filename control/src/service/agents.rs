//! Agents (see [`crate::agent`]): a running agent's reports, and what admins see and change.
//! Only admins see agents (Neutron's policy): anyone else lists none and finds none.

use super::{new_id, Control};
use crate::agent::{self, Agent};
use crate::error::{ControlError, Result};
use crate::neutron::Scope;

impl Control {
    /// A running agent's report for `host`: its agent is created at its first report (and
    /// again, under a new id, after an admin deleted it), and its heartbeat and
    /// `configurations` (a JSON object) renewed at each; `start` marks the first report of its
    /// process. Nothing the switch forwards changes.
    pub fn report_agent(&self, host: &str, configurations: &str, start: bool) -> Result<()> {
        self.report_agent_at(host, configurations, start, agent::now_secs())
    }

    /// As [`Control::report_agent`], reported at `now` (seconds since the epoch).
    pub fn report_agent_at(
        &self,
        host: &str,
        configurations: &str,
        start: bool,
        now: i64,
    ) -> Result<()> {
        self.report(host, configurations, start, now, None)
    }

    /// As [`Control::report_agent`], with what the host's data plane says of its ports. On a
    /// shared store, ports' statuses come from these reports (a plug waits for its host's). One
    /// write with the heartbeat, outside the store's write order (hosts reporting never queue
    /// behind the API's writes).
    pub fn report_host(
        &self,
        host: &str,
        configurations: &str,
        start: bool,
        ports: &agent::HostReport<'_>,
    ) -> Result<()> {
        self.report(host, configurations, start, agent::now_secs(), Some(ports))
    }

    fn report(
        &self,
        host: &str,
        configurations: &str,
        start: bool,
        now: i64,
        ports: Option<&agent::HostReport<'_>>,
    ) -> Result<()> {
        let mut once = Some(());
        self.store.write_unordered(&mut |tx| {
            once.take().ok_or_else(super::ran_twice)?;
            if let Some(r) = ports {
                tx.save_port_reports(host, r)?;
            }
            tx.heartbeat_agent(
                &Agent {
                    id: new_id(),
                    agent_type: agent::AGENT_TYPE.to_owned(),
                    binary: agent::BINARY.to_owned(),
                    host: host.to_owned(),
                    topic: agent::TOPIC.to_owned(),
                    admin_state_up: true,
                    description: None,
                    configurations: configurations.to_owned(),
                    created_at: now,
                    started_at: now,
                    heartbeat_at: now,
                },
                start,
            )
        })
    }

    /// The agents the caller sees: every one for an admin, none for anyone else.
    pub fn agents(&self, scope: &Scope) -> Result<Vec<Agent>> {
        if !scope.admin {
            return Ok(Vec::new());
        }
        self.read(|tx| tx.agents(None))
    }

    /// One agent, for an admin.
    pub fn agent(&self, scope: &Scope, id: &str) -> Result<Agent> {
        self.read(|tx| visible_agent(tx, scope, id))
    }

    /// Sets an agent's `admin_state_up` and description (`Some(None)`: null); an admin's.
    pub fn update_agent(
        &self,
        scope: &Scope,
        id: &str,
        admin_state_up: Option<bool>,
        description: Option<Option<String>>,
    ) -> Result<Agent> {
        self.write(|tx| {
            let mut a = visible_agent(tx, scope, id)?;
            if let Some(up) = admin_state_up {
                a.admin_state_up = up;
            }
            if let Some(d) = description {
                a.description = d;
            }
            tx.set_agent_admin(&a.id, a.admin_state_up, a.description.as_deref())?;
            Ok(a)
        })
    }

    /// Deletes an agent; an admin's. One still running reports itself again.
    pub fn delete_agent(&self, scope: &Scope, id: &str) -> Result<()> {
        self.write(|tx| {
            visible_agent(tx, scope, id)?;
            tx.delete_agent(id)
        })
    }
}

fn visible_agent(tx: &dyn crate::store::Tx, scope: &Scope, id: &str) -> Result<Agent> {
    let found = if scope.admin {
        tx.agents(Some(id))?.pop()
    } else {
        None
    };
    found.ok_or_else(|| ControlError::AgentNotFound { id: id.to_owned() })
}
