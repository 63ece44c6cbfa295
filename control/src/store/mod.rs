//! The store: where the model is persisted.
//!
//! # Design
//!
//! A [`Store`] opens transactions; a [`Tx`] offers the row-level reads and
//! writes the control plane needs and is committed explicitly (dropping it
//! rolls back). The rules of the model run in [`crate::Control`], inside one
//! transaction per API call, so a failed rule leaves nothing half applied and
//! a write is durable before its answer is sent. All SQL lives in the store
//! implementations ([`sqlite`] today); a PostgreSQL store implements the same
//! two traits.
//!
//! Uniqueness that the rules check (one port per attachment, one network per
//! VLAN, one interface per device) is also enforced by the schema, so that a
//! second writer on a shared database cannot break it.

mod pgwire;
pub mod postgres;
mod sql;
pub mod sqlite;
mod tx;

use crate::error::Result;

/// A database whose schema is newer than this binary's migrations (`known`) is refused rather
/// than guessed at.
fn known_schema(current: usize, known: usize) -> Result<()> {
    if current > known {
        return Err(crate::error::ControlError::Store {
            detail: format!(
                "database schema version {current} is newer than this binary ({known})"
            ),
        });
    }
    Ok(())
}

/// What `--db` names, for logs: the SQLite file's path, or the PostgreSQL database and its
/// hosts without the URL's password.
pub fn describe(db: &str) -> String {
    if !postgres::is_url(db) {
        return db.to_owned();
    }
    match postgres::config(db) {
        Ok(c) => format!(
            "PostgreSQL database {} on {:?}",
            c.get_dbname().unwrap_or("(default)"),
            c.get_hosts()
        ),
        Err(_) => "PostgreSQL (unparsable URL)".into(),
    }
}
use crate::model::{Interface, Network, Port, PortState};
use crate::neutron::{NetworkAttrs, NetworkRecord, PortAttrs, PortRecord, Subnet};
use crate::qos::{QosPolicy, QosRule};
use crate::quota::Usage;
use crate::security::{SecurityGroup, SgRule};

/// A persistent home for the model. Its methods take `&self`: the backend
/// owns its concurrency (SQLite: one writer connection and a pool of readers).
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Runs `f` in a read transaction on a consistent committed state. Reads
    /// never wait for writers.
    fn read(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()>;

    /// Runs `f` in a write transaction and commits it durably when `f`
    /// succeeds (an error rolls everything back). Write transactions take the
    /// write lock up front (SQLite `BEGIN IMMEDIATE`) so that check-then-write
    /// rules are atomic. The step `f` returns runs once the commit is durable,
    /// before any later write's step: what steps do happens in commit order.
    /// It has run when `write` returns `Ok`; it never runs when the write
    /// fails.
    fn write(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<Option<AfterCommit>>) -> Result<()>;

    /// Runs `f` in a read transaction (one snapshot) and then its step, in this process's write
    /// order (after the steps of the writes before it, before those after it), without
    /// stopping other processes' writers: how a process with a data plane follows what other
    /// processes committed to a shared store. A store no other process writes runs it as a
    /// write.
    fn follow(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<Option<AfterCommit>>) -> Result<()> {
        self.write(f)
    }

    /// Runs `f` in a write transaction that takes no part in the store's write order: for
    /// rows no rule reads and no revision covers (a host's reports, heartbeats), so that many
    /// hosts reporting do not queue behind each other or the API's writes. A store with one
    /// writer runs it as a write.
    fn write_unordered(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()> {
        self.write(&mut |tx| f(tx).map(|()| None))
    }

    /// Whether other processes write to this store too (a database several servers and agents
    /// share): their revisions reach this process's data plane only through the revision log.
    fn shared(&self) -> bool {
        false
    }

    /// Waits until another process may have committed a revision, or `timeout` passed. A store
    /// no other process writes has nothing to wait for: it sleeps.
    fn wait_for_change(&self, timeout: std::time::Duration) {
        std::thread::sleep(timeout);
    }

    /// Listens for host reports (agents' applied revisions, PostgreSQL's `NOTIFY`), from the
    /// first call on, and returns how many this process has heard so far: every report
    /// committed after a call that answered `Some` is heard. `None` when the store cannot
    /// listen (or has no notifications): the caller then reads the reports instead.
    fn hear_reports(&self) -> Option<u64> {
        None
    }

    /// The revision `host` last reported applied, as heard after the count `since` (see
    /// [`Store::hear_reports`]); `None` when nothing was heard of it since.
    fn heard_revision(&self, _host: &str, _since: u64) -> Option<u64> {
        None
    }

    /// Waits until more than `seen` host reports were heard or `timeout` passed, and returns
    /// the count. A store without notifications sleeps.
    fn wait_for_report(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        std::thread::sleep(timeout);
        seen
    }
}

/// What a write does once its commit is durable (hand its changes to the data plane). It may
/// run on another writer's thread: the one that commits the group the write joined runs every
/// member's step, in order, without a hand-off between threads per member.
pub type AfterCommit = Box<dyn FnOnce() + Send>;

/// A committed revision and what it touched.
pub type Revision = (u64, Vec<Touched>);

/// What a write touched, as the revision log records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Touched {
    /// A network (its VLAN, owner or admin state, or the network itself).
    Network(String),
    /// Every port of a network (its admin state changed).
    NetworkPorts(String),
    /// A port or one of its addresses, pairs or QoS limit.
    Port(String),
    /// A registered interface (what it is plugged into may change device).
    Interface(String),
    /// A host device name registered or released.
    Device(String),
    /// A security group's rules or statefulness: every port in the group.
    SecurityGroup(String),
    /// A security group's members or their addresses (its address set), or the group itself.
    GroupMembers(String),
}

/// A port attribute a v2.0 list can filter on in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKey {
    /// `id`.
    Id,
    /// `network_id`.
    NetworkId,
    /// `tenant_id` / `project_id`.
    Tenant,
    /// `device_id`.
    DeviceId,
    /// `device_owner`.
    DeviceOwner,
    /// `mac_address`.
    MacAddress,
    /// `name`.
    Name,
    /// `description`.
    Description,
    /// `binding:host_id`.
    HostId,
    /// `admin_state_up` (values `true`/`false`).
    AdminStateUp,
    /// `fixed_ips=ip_address=…`.
    FixedIpAddress,
    /// `fixed_ips=subnet_id=…`.
    FixedIpSubnet,
}

/// A key of a v2.0 network list filter the store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkKey {
    /// `id`.
    Id,
    /// `name`.
    Name,
    /// `tenant_id` / `project_id`.
    Tenant,
    /// `description`.
    Description,
    /// `admin_state_up` (values `true`/`false`).
    AdminStateUp,
    /// `shared` (values `true`/`false`).
    Shared,
}

/// A key of a v2.0 subnet list filter the store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubnetKey {
    /// `id`.
    Id,
    /// `network_id`.
    NetworkId,
    /// `name`.
    Name,
    /// `tenant_id` / `project_id`.
    Tenant,
    /// `description`.
    Description,
    /// `cidr` (as stored: normalised).
    Cidr,
    /// `ip_version`.
    IpVersion,
    /// `gateway_ip`.
    GatewayIp,
}

/// A v2.0 network or subnet list pushed into the store: visibility, filters, and a keyset page
/// in creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery<K> {
    /// Only what this project sees: its own, the shared and the external networks (and the
    /// subnets of its own and the shared ones); `None`: everything.
    pub visible_to: Option<String>,
    /// Each key matches one of its values; all keys must match.
    pub filters: Vec<(K, Vec<String>)>,
    /// The page starts after this item (before it when `reverse`); a marker that is not in the
    /// filtered list gives an empty page.
    pub marker: Option<String>,
    /// Page backwards from the marker (or from the end).
    pub reverse: bool,
    /// At most this many items (0: all).
    pub limit: usize,
}

/// A v2.0 network list pushed into the store.
pub type NetworkQuery = ListQuery<NetworkKey>;
/// A v2.0 subnet list pushed into the store.
pub type SubnetQuery = ListQuery<SubnetKey>;

/// A v2.0 port list pushed into the store: visibility, filters, and a
/// keyset page in creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortQuery {
    /// Only this project's ports (`None`: every port).
    pub tenant: Option<String>,
    /// Each key matches one of its values; all keys must match. The fixed IP
    /// keys together match a port holding any of their values.
    pub filters: Vec<(PortKey, Vec<String>)>,
    /// The page starts after this port (before it when `reverse`); a marker
    /// that is not in the filtered list gives an empty page.
    pub marker: Option<String>,
    /// Page backwards from the marker (or from the end).
    pub reverse: bool,
    /// At most this many ports (0: all).
    pub limit: usize,
}

/// One transaction on the store, inside [`Store::read`] or [`Store::write`].
pub trait Tx {
    /// Ends a write's revision: when the write touched anything, takes the
    /// next revision and returns it with what was touched (from the revision
    /// log, kept by the store in the same transaction); `None` when nothing
    /// was touched.
    fn close_revision(&self) -> Result<Option<(u64, Vec<Touched>)>>;
    /// The last committed revision.
    fn revision(&self) -> Result<u64>;

    /// What each committed revision after `after` touched, in revision order; `None` when the
    /// revision log no longer holds all of them (pruned), or the store's revision is below
    /// `after` (a database restored from a backup): the reader must derive the whole state.
    fn changes_after(&self, after: u64) -> Result<Option<Vec<Revision>>>;
    /// The ids of the ports whose id starts with `prefix`.
    fn port_ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>>;

    /// A tenant's network, if it exists and the tenant owns it.
    fn network(&self, tenant_id: &str, net_id: &str) -> Result<Option<Network>>;
    /// A tenant's networks in creation order.
    fn networks(&self, tenant_id: &str) -> Result<Vec<Network>>;
    /// Every network of every tenant, in creation order.
    fn all_networks(&self) -> Result<Vec<Network>>;
    /// The lowest VLAN id in `min..=max` that no network of physical network `physnet` uses.
    fn free_vlan(&self, physnet: &str, min: u16, max: u16) -> Result<Option<u16>>;
    /// The network holding segment `vlan` (0: the untagged one) of physical network `physnet`.
    fn segment_holder(&self, physnet: &str, vlan: u16) -> Result<Option<String>>;
    /// Inserts a network.
    fn insert_network(&self, network: &Network) -> Result<()>;
    /// Renames a network.
    fn rename_network(&self, net_id: &str, name: &str) -> Result<()>;
    /// Deletes a network and its ports.
    fn delete_network(&self, net_id: &str) -> Result<()>;

    /// A port of a network.
    fn port(&self, net_id: &str, port_id: &str) -> Result<Option<Port>>;
    /// A network's ports in creation order.
    fn ports(&self, net_id: &str) -> Result<Vec<Port>>;
    /// The ports of all the given tenant's networks, in creation order.
    fn tenant_ports(&self, tenant_id: &str) -> Result<Vec<Port>>;
    /// The port an interface is plugged into, if any.
    fn port_by_attachment(&self, interface_id: &str) -> Result<Option<Port>>;
    /// Every plugged port with its interface, in creation order.
    fn plugged_ports(&self) -> Result<Vec<(Port, Interface)>>;
    /// Inserts a port.
    fn insert_port(&self, port: &Port) -> Result<()>;
    /// Sets a port's admin state.
    fn set_port_state(&self, port_id: &str, state: PortState) -> Result<()>;
    /// Plugs (`Some`) or unplugs (`None`) a port's attachment.
    fn set_port_attachment(&self, port_id: &str, interface_id: Option<&str>) -> Result<()>;
    /// Deletes a port.
    fn delete_port(&self, port_id: &str) -> Result<()>;

    /// An interface by id, whoever owns it.
    fn interface(&self, interface_id: &str) -> Result<Option<Interface>>;
    /// The interfaces registered for a host device name (on one host each, or on any host),
    /// in registration order.
    fn interfaces_by_device(&self, device: &str) -> Result<Vec<Interface>>;
    /// A tenant's interfaces in registration order.
    fn interfaces(&self, tenant_id: &str) -> Result<Vec<Interface>>;
    /// Every tenant's interfaces in registration order.
    fn all_interfaces(&self) -> Result<Vec<Interface>>;
    /// Registers an interface or changes its device.
    fn upsert_interface(&self, interface: &Interface) -> Result<()>;
    /// Removes an interface from the registry.
    fn delete_interface(&self, interface_id: &str) -> Result<()>;

    // ---- Neutron v2.0 ---------------------------------------------------

    /// Networks with their v2.0 attributes and subnet ids, in creation
    /// order: one (`Some(id)`) or all.
    fn network_records(&self, net_id: Option<&str>) -> Result<Vec<NetworkRecord>>;
    /// Sets a network's name and v2.0 attributes.
    fn save_network_attrs(&self, net_id: &str, name: &str, attrs: &NetworkAttrs) -> Result<()>;
    /// Ports with their v2.0 attributes, in creation order: one or all.
    fn port_records(&self, port_id: Option<&str>) -> Result<Vec<PortRecord>>;
    /// One page of a port list, in creation order, with index range reads.
    fn port_page(&self, query: &PortQuery) -> Result<Vec<PortRecord>>;
    /// One page of v2.0 networks, with their subnet ids: visibility, filters and keyset paging
    /// in the store.
    fn network_page(&self, query: &NetworkQuery) -> Result<Vec<NetworkRecord>>;
    /// One page of v2.0 subnets: visibility, filters and keyset paging in the store.
    fn subnet_page(&self, query: &SubnetQuery) -> Result<Vec<Subnet>>;

    // ---- security groups ------------------------------------------------

    /// Security groups in creation order: one (`id`) or all.
    fn security_groups(&self, id: Option<&str>) -> Result<Vec<SecurityGroup>>;
    /// The id of a project's default group, if it has one yet.
    fn default_security_group(&self, tenant_id: &str) -> Result<Option<String>>;
    /// Inserts a group.
    fn insert_security_group(&self, group: &SecurityGroup) -> Result<()>;
    /// Rewrites a group's name, description, statefulness and timestamps.
    fn save_security_group(&self, group: &SecurityGroup) -> Result<()>;
    /// Deletes a group with its rules (and the rules naming it as their remote group).
    fn delete_security_group(&self, id: &str) -> Result<()>;
    /// QoS policies, all or the one with this id, in creation order.
    fn qos_policies(&self, id: Option<&str>) -> Result<Vec<QosPolicy>>;
    /// The policy the Quantum qos extension made for a port, if any.
    fn port_qos_policy(&self, port_id: &str) -> Result<Option<QosPolicy>>;
    /// Creates or replaces a QoS policy.
    fn save_qos_policy(&self, policy: &QosPolicy) -> Result<()>;
    /// Deletes a QoS policy with its rules.
    fn delete_qos_policy(&self, id: &str) -> Result<()>;
    /// The rules of one policy, or of all, in creation order.
    fn qos_rules(&self, policy_id: Option<&str>) -> Result<Vec<QosRule>>;
    /// Creates or replaces a QoS rule.
    fn save_qos_rule(&self, rule: &QosRule) -> Result<()>;
    /// Deletes a QoS rule.
    fn delete_qos_rule(&self, id: &str) -> Result<()>;
    /// A network or a port the policy is set on (of a project other than `except_tenant`, when
    /// given): (`"network"` or `"port"`, its id).
    fn qos_policy_user(
        &self,
        policy_id: &str,
        except_tenant: Option<&str>,
    ) -> Result<Option<(&'static str, String)>>;
    /// The project's default QoS policy.
    fn default_qos_policy(&self, tenant_id: &str) -> Result<Option<String>>;
    /// Agents in the order they first reported: one (`id`) or all.
    fn agents(&self, id: Option<&str>) -> Result<Vec<crate::agent::Agent>>;
    /// Records a running agent's heartbeat: creates `agent` if no agent of its type is on its
    /// host, else renews only its heartbeat and configurations (and, with `start`, its start
    /// time); what admins set stays.
    fn heartbeat_agent(&self, agent: &crate::agent::Agent, start: bool) -> Result<()>;
    /// Sets what admins change of an agent.
    fn set_agent_admin(
        &self,
        id: &str,
        admin_state_up: bool,
        description: Option<&str>,
    ) -> Result<()>;
    /// Deletes an agent.
    fn delete_agent(&self, id: &str) -> Result<()>;

    /// Records what `host` reports of its ports: the revision its data plane has applied and
    /// the ports' states (all of them, replacing what it said before, or what changed).
    fn save_port_reports(&self, host: &str, report: &crate::agent::HostReport<'_>) -> Result<()>;

    /// What hosts reported of these ports (all of them: `None`), with the reporting agents'
    /// heartbeats: only the bound host's report of a bound port, every host's of an unbound one.
    fn reported_statuses(
        &self,
        ids: Option<&[String]>,
    ) -> Result<Vec<crate::agent::ReportedStatus>>;
    /// The hosts these ports are bound to (each once, by name), with the revision each reported
    /// and its agent's heartbeat.
    fn bound_hosts(&self, ids: &[String]) -> Result<Vec<crate::agent::HostState>>;
    /// Rules in creation order: one (`id`), a group's, or all.
    fn sg_rules(&self, group: Option<&str>, id: Option<&str>) -> Result<Vec<SgRule>>;
    /// Inserts a rule.
    fn insert_sg_rule(&self, rule: &SgRule) -> Result<()>;
    /// Rewrites a rule's description and timestamps.
    fn save_sg_rule(&self, rule: &SgRule) -> Result<()>;
    /// Deletes a rule.
    fn delete_sg_rule(&self, id: &str) -> Result<()>;
    /// The ports a group is attached to.
    fn security_group_ports(&self, group: &str) -> Result<Vec<String>>;
    /// The addresses of a group's member ports: their fixed IPs and allowed address pairs (as
    /// given: an address or a CIDR), without duplicates.
    fn security_group_addresses(&self, group: &str) -> Result<Vec<String>>;
    /// A project's groups and rules (for quotas).
    fn security_usage(&self, tenant_id: &str) -> Result<(u64, u64)>;
    /// Sets a port's v2.0 attributes, replacing its address pairs and its
    /// fixed IPs.
    fn save_port_attrs(&self, port_id: &str, attrs: &PortAttrs) -> Result<()>;
    /// Is the MAC used by a port of the network other than `except`?
    fn mac_in_use(&self, net_id: &str, mac: &str, except: Option<&str>) -> Result<bool>;
    /// Subnets in creation order: one (`subnet_id`), a network's, or all.
    fn subnets(&self, subnet_id: Option<&str>, net_id: Option<&str>) -> Result<Vec<Subnet>>;
    /// Inserts a subnet.
    fn insert_subnet(&self, subnet: &Subnet) -> Result<()>;
    /// Rewrites a subnet's mutable attributes.
    fn update_subnet(&self, subnet: &Subnet) -> Result<()>;
    /// Deletes a subnet.
    fn delete_subnet(&self, subnet_id: &str) -> Result<()>;
    /// The addresses held in a subnet, with the holding port ids.
    fn subnet_allocations(&self, subnet_id: &str) -> Result<Vec<(String, String)>>;

    // ---- paging, quotas and QoS -----------------------------------------

    /// The creation-order key (`seq`) of a tenant's network.
    fn network_seq(&self, tenant_id: &str, net_id: &str) -> Result<Option<i64>>;
    /// Up to `limit` of a tenant's networks strictly after `from` in
    /// creation order (before it, newest first, when `reverse`), each with
    /// its `seq`.
    fn networks_page(
        &self,
        tenant_id: &str,
        from: Option<i64>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(i64, Network)>>;
    /// The creation-order key (`seq`) of a network's port.
    fn port_seq(&self, net_id: &str, port_id: &str) -> Result<Option<i64>>;
    /// As [`Tx::networks_page`], for a network's ports.
    fn ports_page(
        &self,
        net_id: &str,
        from: Option<i64>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(i64, Port)>>;
    /// How many networks, ports (on its networks) and interfaces a tenant
    /// holds.
    fn tenant_usage(&self, tenant_id: &str) -> Result<Usage>;
}
