//! The store's transactions: every read and write of [`Tx`] in SQL that SQLite and PostgreSQL
//! both run (see [`super::sql`] for the values and rows that cross, and
//! [`super::postgres`] for the rewrite of a statement's parameters).

use std::collections::HashMap;

use crate::agent::{Agent, HostReport, HostState, ReportedStatus};
use crate::error::Result;
use crate::ipam::{split_lines, Family};
use crate::model::{Interface, Network, NetworkType, Port, PortState};
use crate::neutron::{
    AddressPair, FixedIp, NetworkAttrs, NetworkRecord, PortAttrs, PortRecord, Subnet,
};
use crate::qos::{QosDirection, QosPolicy, QosRule, QosRuleType};
use crate::quota::Usage;
use crate::security::{SecurityGroup, SgRule};
use crate::store::postgres::PgConn;
use crate::store::sql::{args, sqlite_err, Row, Val};
use crate::store::{
    NetworkKey, NetworkQuery, PortKey, PortQuery, Revision, SubnetKey, SubnetQuery, Touched, Tx,
};

/// The ports a per-port read covers.
enum Which<'a> {
    One(&'a str),
    Many(&'a [String]),
    All,
}

impl<'a> From<Option<&'a str>> for Which<'a> {
    fn from(id: Option<&'a str>) -> Self {
        id.map_or(Which::All, Which::One)
    }
}

/// Text parameters as values.
fn vals(args: &[String]) -> Vec<Val<'_>> {
    args.iter().map(|a| Val::Text(a)).collect()
}

/// Above this many ports a page reads every port's pairs and addresses in one
/// scan instead of one index lookup per port.
const ATTACH_ALL_ABOVE: usize = 1_000;

/// Gives each network its subnets' ids from `(network_id, subnet_id)` rows in creation order.
fn fill_subnets(nets: &mut [NetworkRecord], rows: Vec<(String, String)>) {
    let mut by_net: HashMap<String, Vec<String>> = HashMap::new();
    for (n, s) in rows {
        by_net.entry(n).or_default().push(s);
    }
    for n in nets {
        n.subnets = by_net.remove(&n.network.id).unwrap_or_default();
    }
}

/// The host a port (`p`, its interface `i` joined on its attachment) is bound to: its
/// `binding:host_id`, else the host of the interface plugged into it; empty: none.
const BOUND_HOST: &str = "CASE WHEN p.host_id <> '' THEN p.host_id ELSE COALESCE(i.host, '') END";

/// Values per `IN (...)` list of ids: both engines bound a statement's parameters (PostgreSQL to
/// 65 535, SQLite to 32 766), so reads by long lists of ids go in chunks.
const IN_CHUNK: usize = 1000;

/// `?1, ?2, ... ?n`.
fn marks(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `?N, ?M, ...` for `values`, appended to `args`.
fn in_list(values: &[String], args: &mut Vec<String>) -> String {
    let marks: Vec<String> = values
        .iter()
        .map(|v| {
            args.push(v.clone());
            format!("?{}", args.len())
        })
        .collect();
    marks.join(", ")
}

/// `col IN (...)` for a filter's values; `boolean` columns store `true`/`false` as 1/0.
fn in_cond(col: &str, values: &[String], boolean: bool, args: &mut Vec<String>) -> String {
    let values: Vec<String> = if boolean {
        values
            .iter()
            .map(|v| if v == "true" { "1" } else { "0" }.to_owned())
            .collect()
    } else {
        values.to_vec()
    };
    format!("{col} IN ({})", in_list(&values, args))
}

/// Where and how a keyset page reads (see `SqlTx::keyset_page`).
struct Keyset<'a> {
    /// The `FROM` clause.
    from: &'a str,
    /// The alias of the paged table in it.
    alias: &'a str,
    /// The paged table (its `seq` is the order).
    table: &'a str,
    marker: Option<&'a str>,
    reverse: bool,
    limit: usize,
}

/// The revision log keeps the changes of this many revisions; a follower
/// further behind resyncs in full.
const KEEP_REVISIONS: i64 = 100_000;

/// How often (in revisions) older changes are pruned.
const PRUNE_EVERY: i64 = 1_000;

/// The connection a transaction runs on.
#[derive(Clone, Copy)]
pub(crate) enum Conn<'c> {
    Sqlite(&'c rusqlite::Connection),
    Pg(&'c PgConn),
}

/// One open transaction of either engine: every row-level read and write of [`Tx`], in SQL both
/// engines speak.
pub(crate) struct SqlTx<'c> {
    pub(crate) conn: Conn<'c>,
}

const AGENT_COLS: &str = "id, agent_type, binary_name, host, topic, admin_state_up, \
     description, configurations, created_at, started_at, heartbeat_at";

fn agent_row(r: &Row<'_>) -> Result<Agent> {
    Ok(Agent {
        id: r.get(0)?,
        agent_type: r.get(1)?,
        binary: r.get(2)?,
        host: r.get(3)?,
        topic: r.get(4)?,
        admin_state_up: r.get(5)?,
        description: r.get(6)?,
        configurations: r.get(7)?,
        created_at: r.get(8)?,
        started_at: r.get(9)?,
        heartbeat_at: r.get(10)?,
    })
}

const NETWORK_COLS: &str = "id, tenant_id, name, vlan, network_type, physical_network";
const PORT_COLS: &str = "p.id, p.network_id, p.state, p.interface_id";
const INTERFACE_COLS: &str = "id, tenant_id, device, host";

fn network_row(r: &Row<'_>) -> Result<Network> {
    // The segment by name: the column lists that hold it differ in what comes before.
    let network_type: String = r.get("network_type")?;
    Ok(Network {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        vlan: r.get(3)?,
        // The schema's CHECK constraint keeps this to the three values.
        network_type: NetworkType::parse(&network_type).unwrap_or_default(),
        physnet: r.get("physical_network")?,
    })
}

fn port_row(r: &Row<'_>) -> Result<Port> {
    let state: String = r.get(2)?;
    // The schema's CHECK constraint keeps this to the two values.
    let state = PortState::parse(&state).unwrap_or_default();
    Ok(Port {
        id: r.get(0)?,
        network_id: r.get(1)?,
        state,
        attachment: r.get(3)?,
    })
}

fn interface_row(r: &Row<'_>) -> Result<Interface> {
    Ok(Interface {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        device: r.get(2)?,
        host: r.get(3)?,
    })
}

const NETWORK_V2_COLS: &str =
    "id, tenant_id, name, vlan, admin_state_up, shared, mtu, description, \
     port_security_enabled, created_at, updated_at, revision_number, router_external, \
     network_type, physical_network, qos_policy_id";

fn network_record_row(r: &Row<'_>) -> Result<NetworkRecord> {
    Ok(NetworkRecord {
        network: network_row(r)?,
        attrs: NetworkAttrs {
            admin_state_up: r.get(4)?,
            shared: r.get(5)?,
            mtu: r.get(6)?,
            description: r.get(7)?,
            port_security_enabled: r.get(8)?,
            created_at: r.get(9)?,
            updated_at: r.get(10)?,
            revision_number: r.get(11)?,
            router_external: r.get(12)?,
            qos_policy_id: r.get("qos_policy_id")?,
        },
        subnets: Vec::new(),
    })
}

const PORT_V2_COLS: &str = "p.id, p.network_id, p.state, p.interface_id, \
     COALESCE(p.tenant_id, n.tenant_id), p.name, COALESCE(p.mac_address, ''), p.device_id, \
     p.device_owner, p.description, p.port_security_enabled, p.host_id, p.bind_tap, \
     p.created_at, p.updated_at, p.revision_number, p.qos_policy_id, \
     n.qos_policy_id AS network_qos_policy_id";

fn port_record_row(r: &Row<'_>) -> Result<PortRecord> {
    Ok(PortRecord {
        port: port_row(r)?,
        attrs: PortAttrs {
            tenant_id: r.get(4)?,
            name: r.get(5)?,
            mac_address: r.get(6)?,
            device_id: r.get(7)?,
            device_owner: r.get(8)?,
            description: r.get(9)?,
            port_security_enabled: r.get(10)?,
            host_id: r.get(11)?,
            bind_tap: r.get(12)?,
            created_at: r.get(13)?,
            updated_at: r.get(14)?,
            revision_number: r.get(15)?,
            qos_policy_id: r.get("qos_policy_id")?,
            network_qos_policy_id: r.get("network_qos_policy_id")?,
            allowed_address_pairs: Vec::new(),
            fixed_ips: Vec::new(),
            security_groups: Vec::new(),
        },
    })
}

const SG_COLS: &str = "id, tenant_id, name, description, stateful, is_default, created_at,      updated_at, revision_number";

fn sg_row(r: &Row<'_>) -> Result<SecurityGroup> {
    Ok(SecurityGroup {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        stateful: r.get(4)?,
        is_default: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        revision_number: r.get(8)?,
    })
}

const SG_RULE_COLS: &str = "id, security_group_id, tenant_id, direction, ethertype, protocol,      port_range_min, port_range_max, remote_ip_prefix, remote_group_id, description, created_at,      updated_at, revision_number";

fn sg_rule_row(r: &Row<'_>) -> Result<SgRule> {
    Ok(SgRule {
        id: r.get(0)?,
        security_group_id: r.get(1)?,
        tenant_id: r.get(2)?,
        direction: r.get(3)?,
        ethertype: r.get(4)?,
        protocol: r.get(5)?,
        port_range_min: r.get(6)?,
        port_range_max: r.get(7)?,
        remote_ip_prefix: r.get(8)?,
        remote_group_id: r.get(9)?,
        description: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        revision_number: r.get(13)?,
        in_default_group: false,
    })
}

const SUBNET_COLS: &str = "id, network_id, tenant_id, name, description, ip_version, cidr, \
     gateway_ip, enable_dhcp, allocation_pools, dns_nameservers, host_routes, ipv6_ra_mode, \
     ipv6_address_mode, created_at, updated_at, revision_number";

fn pairs_of(stored: &str, sep: char) -> Vec<(String, String)> {
    split_lines(stored)
        .into_iter()
        .filter_map(|l| l.split_once(sep).map(|(a, b)| (a.to_owned(), b.to_owned())))
        .collect()
}

fn join_pairs(items: &[(String, String)], sep: char) -> String {
    items
        .iter()
        .map(|(a, b)| format!("{a}{sep}{b}\n"))
        .collect()
}

fn join_lines(items: &[String]) -> String {
    items.iter().map(|i| format!("{i}\n")).collect()
}

fn subnet_row(r: &Row<'_>) -> Result<Subnet> {
    let version: u8 = r.get(5)?;
    let pools: String = r.get(9)?;
    let dns: String = r.get(10)?;
    let routes: String = r.get(11)?;
    Ok(Subnet {
        id: r.get(0)?,
        network_id: r.get(1)?,
        tenant_id: r.get(2)?,
        name: r.get(3)?,
        description: r.get(4)?,
        // The schema's CHECK keeps this to 4 or 6.
        family: Family::from_version(version).unwrap_or(Family::V4),
        cidr: r.get(6)?,
        gateway_ip: r.get(7)?,
        enable_dhcp: r.get(8)?,
        allocation_pools: pairs_of(&pools, '-'),
        dns_nameservers: split_lines(&dns),
        host_routes: pairs_of(&routes, ','),
        ipv6_ra_mode: r.get(12)?,
        ipv6_address_mode: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
        revision_number: r.get(16)?,
    })
}

/// A revision log row's kind and id (columns `at` and `at + 1`) as what it touched.
fn touched_row(r: &Row<'_>, at: usize) -> Result<Touched> {
    let kind: String = r.get(at)?;
    let id: String = r.get(at + 1)?;
    Ok(match kind.as_str() {
        "network" => Touched::Network(id),
        "network_ports" => Touched::NetworkPorts(id),
        "interface" => Touched::Interface(id),
        "device" => Touched::Device(id),
        "security_group" => Touched::SecurityGroup(id),
        "group_members" => Touched::GroupMembers(id),
        _ => Touched::Port(id),
    })
}

impl SqlTx<'_> {
    /// Runs `sql` and hands each row to `f` until it returns `false`.
    fn each(
        &self,
        sql: &str,
        args: &[Val<'_>],
        f: &mut dyn FnMut(&Row<'_>) -> Result<bool>,
    ) -> Result<()> {
        match self.conn {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql).map_err(sqlite_err)?;
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(args.iter()))
                    .map_err(sqlite_err)?;
                while let Some(r) = rows.next().map_err(sqlite_err)? {
                    if !f(&Row::Sqlite(r))? {
                        break;
                    }
                }
                Ok(())
            }
            Conn::Pg(c) => {
                for r in &c.query(sql, args)? {
                    if !f(&Row::Pg(r))? {
                        break;
                    }
                }
                Ok(())
            }
        }
    }

    fn query<T>(
        &self,
        sql: &str,
        args: &[Val<'_>],
        f: fn(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.each(sql, args, &mut |r| {
            out.push(f(r)?);
            Ok(true)
        })?;
        Ok(out)
    }

    fn query_one<T>(
        &self,
        sql: &str,
        args: &[Val<'_>],
        f: fn(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut out = None;
        self.each(sql, args, &mut |r| {
            out = Some(f(r)?);
            Ok(false)
        })?;
        Ok(out)
    }

    /// One keyset page in creation order (`seq`): the rows of `page.from` matching every
    /// condition (`args` are their `?N` parameters), after the marker (before it, when
    /// reverse), at most `page.limit` (0: all). A marker outside the filtered rows gives an
    /// empty page, as Neutron's emulated pagination does.
    fn keyset_page<T>(
        &self,
        page: &Keyset<'_>,
        conds: Vec<String>,
        mut args: Vec<String>,
        cols: &str,
        row: fn(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let a = page.alias;
        let filtered = if conds.is_empty() {
            "TRUE".to_owned()
        } else {
            conds.join(" AND ")
        };
        let mut cond = filtered.clone();
        if let Some(m) = page.marker {
            args.push(m.to_owned());
            let n = args.len();
            let member = self.query_one(
                &format!(
                    "SELECT 1 FROM {} WHERE {filtered} AND {a}.id = ?{n}",
                    page.from
                ),
                &vals(&args),
                |_| Ok(()),
            )?;
            if member.is_none() {
                return Ok(Vec::new());
            }
            let op = if page.reverse { "<" } else { ">" };
            cond = format!(
                "{cond} AND {a}.seq {op} (SELECT seq FROM {} WHERE id = ?{n})",
                page.table
            );
        }
        let dir = if page.reverse { "DESC" } else { "ASC" };
        let limit = match page.limit {
            0 => String::new(),
            n => format!(" LIMIT {n}"),
        };
        let sql = format!(
            "SELECT {cols} FROM {} WHERE {cond} ORDER BY {a}.seq {dir}{limit}",
            page.from
        );
        let mut rows = self.query(&sql, &vals(&args), row)?;
        if page.reverse {
            rows.reverse();
        }
        Ok(rows)
    }

    /// Fills the address pairs and fixed IPs of `ports`: of the one port named, or read for
    /// every port (`None`).
    fn attach_pairs_and_ips(&self, ports: &mut [PortRecord], port_id: Option<&str>) -> Result<()> {
        self.attach_of(ports, &Which::from(port_id))
    }

    /// As `attach_pairs_and_ips`, for the ports `which` names.
    fn attach_of(&self, ports: &mut [PortRecord], which: &Which<'_>) -> Result<()> {
        let port_id = which;
        let mut pairs = self.by_port(
            "SELECT port_id, mac_address, ip_address FROM port_address_pairs",
            port_id,
            |r| {
                Ok(AddressPair {
                    mac_address: r.get(1)?,
                    ip_address: r.get(2)?,
                })
            },
        )?;
        let mut ips = self.by_port(
            "SELECT port_id, subnet_id, ip_address FROM ip_allocations",
            port_id,
            |r| {
                Ok(FixedIp {
                    subnet_id: r.get(1)?,
                    ip_address: r.get(2)?,
                })
            },
        )?;
        let mut groups = self.by_port(
            "SELECT port_id, security_group_id FROM port_security_groups",
            port_id,
            |r| r.get(1),
        )?;
        for p in ports.iter_mut() {
            p.attrs.allowed_address_pairs = pairs.remove(&p.port.id).unwrap_or_default();
            p.attrs.fixed_ips = ips.remove(&p.port.id).unwrap_or_default();
            p.attrs.security_groups = groups.remove(&p.port.id).unwrap_or_default();
        }
        Ok(())
    }

    /// The rows of a per-port table (`select` reads `port_id` first), grouped by port in their
    /// order: of the ports `which` names.
    fn by_port<T>(
        &self,
        select: &str,
        which: &Which<'_>,
        row: fn(&Row<'_>) -> Result<T>,
    ) -> Result<HashMap<String, Vec<T>>> {
        let (sql, params): (String, Vec<Val<'_>>) = match which {
            Which::One(id) => (
                format!("{select} WHERE port_id = ?1 ORDER BY seq"),
                vec![Val::Text(id)],
            ),
            Which::All => (format!("{select} WHERE TRUE ORDER BY seq"), Vec::new()),
            Which::Many(ids) => {
                // A port's rows are all in its chunk, in their order.
                let mut out: HashMap<String, Vec<T>> = HashMap::new();
                for chunk in ids.chunks(IN_CHUNK) {
                    let sql = format!(
                        "{select} WHERE port_id IN ({}) ORDER BY seq",
                        marks(chunk.len())
                    );
                    let params: Vec<Val<'_>> = chunk.iter().map(|i| Val::Text(i)).collect();
                    self.each(&sql, &params, &mut |r| {
                        out.entry(r.get(0)?).or_default().push(row(r)?);
                        Ok(true)
                    })?;
                }
                return Ok(out);
            }
        };
        let mut out: HashMap<String, Vec<T>> = HashMap::new();
        self.each(&sql, &params, &mut |r| {
            out.entry(r.get(0)?).or_default().push(row(r)?);
            Ok(true)
        })?;
        Ok(out)
    }

    fn exec(&self, sql: &str, args: &[Val<'_>]) -> Result<u64> {
        match self.conn {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql).map_err(sqlite_err)?;
                let n = stmt
                    .execute(rusqlite::params_from_iter(args.iter()))
                    .map_err(sqlite_err)?;
                Ok(n as u64)
            }
            Conn::Pg(c) => c.execute(sql, args),
        }
    }
}

impl Tx for SqlTx<'_> {
    fn close_revision(&self) -> Result<Option<(u64, Vec<Touched>)>> {
        let touched = self.query(
            "SELECT kind, id FROM changes \
             WHERE revision = (SELECT revision + 1 FROM revision) \
             GROUP BY kind, id ORDER BY MIN(seq)",
            &[],
            |r| touched_row(r, 0),
        )?;
        if touched.is_empty() {
            return Ok(None);
        }
        let revision: i64 = self
            .query_one(
                "UPDATE revision SET revision = revision + 1 RETURNING revision",
                &[],
                |r| r.get(0),
            )?
            .unwrap_or_default();
        if revision % PRUNE_EVERY == 0 {
            self.exec(
                "DELETE FROM changes WHERE revision <= ?1",
                &args![revision - KEEP_REVISIONS],
            )?;
        }
        Ok(Some((u64::try_from(revision).unwrap_or_default(), touched)))
    }

    fn changes_after(&self, after: u64) -> Result<Option<Vec<Revision>>> {
        let now = self.revision()?;
        if now == after {
            return Ok(Some(Vec::new()));
        }
        if now < after {
            // The database went back (restored from a backup): what it holds now is all there is.
            return Ok(None);
        }
        let rows = self.query(
            "SELECT revision, kind, id FROM changes \
             WHERE revision > ?1 AND revision <= ?2 \
             GROUP BY revision, kind, id ORDER BY revision, MIN(seq)",
            &args![after, now],
            |r| Ok((r.get::<_, u64>(0)?, touched_row(r, 1)?)),
        )?;
        // Every revision has changes (a write that touched nothing closes none): a gap at the
        // start means the log was pruned past `after`.
        if rows.first().map(|(rev, _)| *rev) != Some(after + 1) {
            return Ok(None);
        }
        let mut out: Vec<Revision> = Vec::new();
        for (rev, t) in rows {
            match out.last_mut() {
                Some((r, ts)) if *r == rev => ts.push(t),
                _ => out.push((rev, vec![t])),
            }
        }
        Ok(Some(out))
    }

    fn revision(&self) -> Result<u64> {
        let r: Option<i64> = self.query_one("SELECT revision FROM revision", &[], |r| r.get(0))?;
        Ok(r.and_then(|r| u64::try_from(r).ok()).unwrap_or_default())
    }

    fn port_ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        // A range on the unique index: every id that starts with `prefix`.
        let end = format!("{prefix}\u{10FFFF}");
        self.query(
            "SELECT id FROM ports WHERE id >= ?1 AND id < ?2",
            &args![prefix, end],
            |r| r.get(0),
        )
    }

    fn network(&self, tenant_id: &str, net_id: &str) -> Result<Option<Network>> {
        self.query_one(
            &format!("SELECT {NETWORK_COLS} FROM networks WHERE id = ?1 AND tenant_id = ?2"),
            &args![net_id, tenant_id],
            network_row,
        )
    }

    fn networks(&self, tenant_id: &str) -> Result<Vec<Network>> {
        self.query(
            &format!("SELECT {NETWORK_COLS} FROM networks WHERE tenant_id = ?1 ORDER BY seq"),
            &args![tenant_id],
            network_row,
        )
    }

    fn all_networks(&self) -> Result<Vec<Network>> {
        self.query(
            &format!("SELECT {NETWORK_COLS} FROM networks ORDER BY seq"),
            &[],
            network_row,
        )
    }

    fn free_vlan(&self, physnet: &str, min: u16, max: u16) -> Result<Option<u16>> {
        // The lowest free id is either `min` itself or one above a used id
        // whose successor is free; the UNIQUE index on (physical network, vlan)
        // makes each probe a lookup.
        self.query_one(
            "SELECT v FROM ( \
                 SELECT ?1 AS v WHERE NOT EXISTS \
                     (SELECT 1 FROM networks WHERE physical_network = ?3 AND vlan = ?1) \
                 UNION ALL \
                 SELECT n.vlan + 1 FROM networks n \
                 WHERE n.physical_network = ?3 AND n.vlan >= ?1 AND n.vlan < ?2 \
                   AND NOT EXISTS (SELECT 1 FROM networks m \
                                   WHERE m.physical_network = ?3 AND m.vlan = n.vlan + 1) \
             ) AS free ORDER BY v LIMIT 1",
            &args![min, max, physnet],
            |r| r.get(0),
        )
    }

    fn segment_holder(&self, physnet: &str, vlan: u16) -> Result<Option<String>> {
        self.query_one(
            "SELECT id FROM networks WHERE physical_network = ?1 AND vlan = ?2",
            &args![physnet, vlan],
            |r| r.get(0),
        )
    }

    fn insert_network(&self, n: &Network) -> Result<()> {
        self.exec(
            "INSERT INTO networks (id, tenant_id, name, vlan, network_type, physical_network, \
             created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            &args![n.id, n.tenant_id, n.name, n.vlan, n.network_type.as_str(), n.physnet],
        )
        .map(drop)
    }

    fn rename_network(&self, net_id: &str, name: &str) -> Result<()> {
        self.exec(
            "UPDATE networks SET name = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), \
             revision_number = revision_number + 1 WHERE id = ?1",
            &args![net_id, name],
        )
        .map(drop)
    }

    fn delete_network(&self, net_id: &str) -> Result<()> {
        self.exec("DELETE FROM ports WHERE network_id = ?1", &args![net_id])?;
        self.exec("DELETE FROM networks WHERE id = ?1", &args![net_id])
            .map(drop)
    }

    fn port(&self, net_id: &str, port_id: &str) -> Result<Option<Port>> {
        self.query_one(
            &format!("SELECT {PORT_COLS} FROM ports p WHERE p.id = ?1 AND p.network_id = ?2"),
            &args![port_id, net_id],
            port_row,
        )
    }

    fn ports(&self, net_id: &str) -> Result<Vec<Port>> {
        self.query(
            &format!("SELECT {PORT_COLS} FROM ports p WHERE p.network_id = ?1 ORDER BY p.seq"),
            &args![net_id],
            port_row,
        )
    }

    fn tenant_ports(&self, tenant_id: &str) -> Result<Vec<Port>> {
        self.query(
            &format!(
                "SELECT {PORT_COLS} FROM ports p JOIN networks n ON n.id = p.network_id \
                 WHERE n.tenant_id = ?1 ORDER BY p.seq"
            ),
            &args![tenant_id],
            port_row,
        )
    }

    fn port_by_attachment(&self, interface_id: &str) -> Result<Option<Port>> {
        self.query_one(
            &format!("SELECT {PORT_COLS} FROM ports p WHERE p.interface_id = ?1"),
            &args![interface_id],
            port_row,
        )
    }

    fn plugged_ports(&self) -> Result<Vec<(Port, Interface)>> {
        self.query(
            &format!(
                "SELECT {PORT_COLS}, i.id, i.tenant_id, i.device, i.host FROM ports p \
                 JOIN interfaces i ON i.id = p.interface_id ORDER BY p.seq"
            ),
            &[],
            |r| {
                let iface = Interface {
                    id: r.get(4)?,
                    tenant_id: r.get(5)?,
                    device: r.get(6)?,
                    host: r.get(7)?,
                };
                Ok((port_row(r)?, iface))
            },
        )
    }

    fn insert_port(&self, p: &Port) -> Result<()> {
        self.exec(
            "INSERT INTO ports (id, network_id, state, interface_id, tenant_id, created_at, \
             updated_at) VALUES (?1, ?2, ?3, ?4, (SELECT tenant_id FROM networks WHERE id = ?2), \
             strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            &args![p.id, p.network_id, p.state.as_str(), p.attachment],
        )
        .map(drop)
    }

    fn set_port_state(&self, port_id: &str, state: PortState) -> Result<()> {
        self.exec(
            "UPDATE ports SET state = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), \
             revision_number = revision_number + 1 WHERE id = ?1",
            &args![port_id, state.as_str()],
        )
        .map(drop)
    }

    fn set_port_attachment(&self, port_id: &str, interface_id: Option<&str>) -> Result<()> {
        self.exec(
            "UPDATE ports SET interface_id = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), \
             revision_number = revision_number + 1 WHERE id = ?1",
            &args![port_id, interface_id],
        )
        .map(drop)
    }

    fn delete_port(&self, port_id: &str) -> Result<()> {
        self.exec("DELETE FROM ports WHERE id = ?1", &args![port_id])
            .map(drop)
    }

    fn interface(&self, interface_id: &str) -> Result<Option<Interface>> {
        self.query_one(
            &format!("SELECT {INTERFACE_COLS} FROM interfaces WHERE id = ?1"),
            &args![interface_id],
            interface_row,
        )
    }

    fn interfaces_by_device(&self, device: &str) -> Result<Vec<Interface>> {
        self.query(
            &format!("SELECT {INTERFACE_COLS} FROM interfaces WHERE device = ?1 ORDER BY seq"),
            &args![device],
            interface_row,
        )
    }

    fn all_interfaces(&self) -> Result<Vec<Interface>> {
        self.query(
            &format!("SELECT {INTERFACE_COLS} FROM interfaces ORDER BY seq"),
            &[],
            interface_row,
        )
    }

    fn interfaces(&self, tenant_id: &str) -> Result<Vec<Interface>> {
        self.query(
            &format!("SELECT {INTERFACE_COLS} FROM interfaces WHERE tenant_id = ?1 ORDER BY seq"),
            &args![tenant_id],
            interface_row,
        )
    }

    fn upsert_interface(&self, i: &Interface) -> Result<()> {
        self.exec(
            "INSERT INTO interfaces (id, tenant_id, device, host) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (id) DO UPDATE SET device = excluded.device, host = excluded.host \
             WHERE interfaces.tenant_id = excluded.tenant_id",
            &args![i.id, i.tenant_id, i.device, i.host],
        )
        .map(drop)
    }

    fn delete_interface(&self, interface_id: &str) -> Result<()> {
        self.exec("DELETE FROM interfaces WHERE id = ?1", &args![interface_id])
            .map(drop)
    }

    fn network_records(&self, net_id: Option<&str>) -> Result<Vec<NetworkRecord>> {
        let mut nets = self.query(
            &format!(
                "SELECT {NETWORK_V2_COLS} FROM networks WHERE {} ORDER BY seq",
                eq("id", 1, net_id)
            ),
            &args![net_id],
            network_record_row,
        )?;
        let subnets: Vec<(String, String)> = self.query(
            &format!(
                "SELECT network_id, id FROM subnets WHERE {} ORDER BY seq",
                eq("network_id", 1, net_id)
            ),
            &args![net_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        fill_subnets(&mut nets, subnets);
        Ok(nets)
    }

    fn save_network_attrs(&self, net_id: &str, name: &str, a: &NetworkAttrs) -> Result<()> {
        self.exec(
            "UPDATE networks SET name = ?2, admin_state_up = ?3, shared = ?4, mtu = ?5, \
             description = ?6, port_security_enabled = ?7, created_at = ?8, updated_at = ?9, \
             revision_number = ?10, router_external = ?11, qos_policy_id = ?12 WHERE id = ?1",
            &args![
                net_id,
                name,
                a.admin_state_up,
                a.shared,
                a.mtu,
                a.description,
                a.port_security_enabled,
                a.created_at,
                a.updated_at,
                a.revision_number,
                a.router_external,
                a.qos_policy_id
            ],
        )
        .map(drop)
    }

    fn port_records(&self, port_id: Option<&str>) -> Result<Vec<PortRecord>> {
        let mut ports = self.query(
            &format!(
                "SELECT {PORT_V2_COLS} FROM ports p JOIN networks n ON n.id = p.network_id \
                 WHERE {} ORDER BY p.seq",
                eq("p.id", 1, port_id)
            ),
            &args![port_id],
            port_record_row,
        )?;
        self.attach_pairs_and_ips(&mut ports, port_id)?;
        Ok(ports)
    }

    fn port_page(&self, q: &PortQuery) -> Result<Vec<PortRecord>> {
        let mut conds: Vec<String> = Vec::new();
        let mut args: Vec<String> = Vec::new();
        let arg = |v: &str, args: &mut Vec<String>| {
            args.push(v.to_owned());
            format!("?{}", args.len())
        };
        if let Some(t) = &q.tenant {
            conds.push(format!("p.tenant_id = {}", arg(t, &mut args)));
        }
        let mut ip_conds = Vec::new();
        for (key, values) in &q.filters {
            let list = |args: &mut Vec<String>| {
                values
                    .iter()
                    .map(|v| arg(v, args))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let col = match key {
                PortKey::Id => "p.id",
                PortKey::NetworkId => "p.network_id",
                PortKey::Tenant => "p.tenant_id",
                PortKey::DeviceId => "p.device_id",
                PortKey::DeviceOwner => "p.device_owner",
                PortKey::MacAddress => "p.mac_address",
                PortKey::Name => "p.name",
                PortKey::Description => "p.description",
                PortKey::HostId => "p.host_id",
                PortKey::AdminStateUp => {
                    let states: Vec<&str> = values
                        .iter()
                        .map(|v| if v == "true" { "ACTIVE" } else { "DOWN" })
                        .collect();
                    let l: Vec<String> = states.iter().map(|v| arg(v, &mut args)).collect();
                    conds.push(format!("p.state IN ({})", l.join(", ")));
                    continue;
                }
                PortKey::FixedIpAddress => {
                    ip_conds.push(format!("ip_address IN ({})", list(&mut args)));
                    continue;
                }
                PortKey::FixedIpSubnet => {
                    ip_conds.push(format!("subnet_id IN ({})", list(&mut args)));
                    continue;
                }
            };
            conds.push(format!("{col} IN ({})", list(&mut args)));
        }
        if !ip_conds.is_empty() {
            conds.push(format!(
                "p.id IN (SELECT port_id FROM ip_allocations WHERE {})",
                ip_conds.join(" OR ")
            ));
        }
        let from = "ports p JOIN networks n ON n.id = p.network_id";
        let page = Keyset {
            from,
            alias: "p",
            table: "ports",
            marker: q.marker.as_deref(),
            reverse: q.reverse,
            limit: q.limit,
        };
        let mut ports = self.keyset_page(&page, conds, args, PORT_V2_COLS, port_record_row)?;
        let one = (ports.len() == 1).then(|| ports[0].port.id.clone());
        if one.is_some() || ports.len() > ATTACH_ALL_ABOVE {
            self.attach_pairs_and_ips(&mut ports, one.as_deref())?;
        } else if matches!(self.conn, Conn::Pg(_)) && !ports.is_empty() {
            // A round trip per statement: the page's ports in one read per table, not three
            // reads per port (which cost nothing on SQLite's in-process engine).
            let ids: Vec<String> = ports.iter().map(|p| p.port.id.clone()).collect();
            self.attach_of(&mut ports, &Which::Many(&ids))?;
        } else {
            for p in &mut ports {
                let id = p.port.id.clone();
                self.attach_pairs_and_ips(std::slice::from_mut(p), Some(&id))?;
            }
        }
        Ok(ports)
    }

    fn network_page(&self, q: &NetworkQuery) -> Result<Vec<NetworkRecord>> {
        let mut conds: Vec<String> = Vec::new();
        let mut args: Vec<String> = Vec::new();
        if let Some(t) = &q.visible_to {
            let l = in_list(std::slice::from_ref(t), &mut args);
            conds.push(format!(
                "(n.tenant_id IN ({l}) OR n.shared OR n.router_external)"
            ));
        }
        for (key, values) in &q.filters {
            let (col, boolean) = match key {
                NetworkKey::Id => ("n.id", false),
                NetworkKey::Name => ("n.name", false),
                NetworkKey::Tenant => ("n.tenant_id", false),
                NetworkKey::Description => ("n.description", false),
                NetworkKey::AdminStateUp => ("n.admin_state_up", true),
                NetworkKey::Shared => ("n.shared", true),
            };
            conds.push(in_cond(col, values, boolean, &mut args));
        }
        let page = Keyset {
            from: "networks n",
            alias: "n",
            table: "networks",
            marker: q.marker.as_deref(),
            reverse: q.reverse,
            limit: q.limit,
        };
        let mut nets = self.keyset_page(&page, conds, args, NETWORK_V2_COLS, network_record_row)?;
        // Their subnets, in one read for the page.
        let ids: Vec<&str> = nets.iter().map(|n| n.network.id.as_str()).collect();
        let mut subnets: Vec<(String, String)> = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            subnets.extend(self.query(
                &format!(
                    "SELECT network_id, id FROM subnets WHERE network_id IN ({}) ORDER BY seq",
                    marks(chunk.len())
                ),
                &chunk.iter().map(|i| Val::Text(i)).collect::<Vec<_>>(),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?);
        }
        fill_subnets(&mut nets, subnets);
        Ok(nets)
    }

    fn subnet_page(&self, q: &SubnetQuery) -> Result<Vec<Subnet>> {
        let mut conds: Vec<String> = Vec::new();
        let mut args: Vec<String> = Vec::new();
        if let Some(t) = &q.visible_to {
            let l = in_list(std::slice::from_ref(t), &mut args);
            conds.push(format!(
                "(s.tenant_id IN ({l}) OR s.network_id IN (SELECT id FROM networks WHERE shared))"
            ));
        }
        for (key, values) in &q.filters {
            let col = match key {
                SubnetKey::Id => "s.id",
                SubnetKey::NetworkId => "s.network_id",
                SubnetKey::Name => "s.name",
                SubnetKey::Tenant => "s.tenant_id",
                SubnetKey::Description => "s.description",
                SubnetKey::Cidr => "s.cidr",
                SubnetKey::IpVersion => {
                    // An integer column: a value that is not an integer matches nothing.
                    let ints: Vec<String> = values
                        .iter()
                        .filter(|v| v.parse::<i64>().is_ok())
                        .cloned()
                        .collect();
                    conds.push(if ints.is_empty() {
                        "FALSE".to_owned()
                    } else {
                        in_cond("s.ip_version", &ints, false, &mut args)
                    });
                    continue;
                }
                SubnetKey::GatewayIp => "s.gateway_ip",
            };
            conds.push(in_cond(col, values, false, &mut args));
        }
        let page = Keyset {
            from: "subnets s",
            alias: "s",
            table: "subnets",
            marker: q.marker.as_deref(),
            reverse: q.reverse,
            limit: q.limit,
        };
        self.keyset_page(&page, conds, args, SUBNET_COLS, subnet_row)
    }

    fn save_port_attrs(&self, port_id: &str, a: &PortAttrs) -> Result<()> {
        self.exec(
            "UPDATE ports SET tenant_id = ?2, name = ?3, mac_address = ?4, device_id = ?5, \
             device_owner = ?6, description = ?7, port_security_enabled = ?8, host_id = ?9, \
             bind_tap = ?10, created_at = ?11, updated_at = ?12, revision_number = ?13, \
             qos_policy_id = ?14 WHERE id = ?1",
            &args![
                port_id,
                a.tenant_id,
                a.name,
                a.mac_address,
                a.device_id,
                a.device_owner,
                a.description,
                a.port_security_enabled,
                a.host_id,
                a.bind_tap,
                a.created_at,
                a.updated_at,
                a.revision_number,
                a.qos_policy_id
            ],
        )?;
        self.exec(
            "DELETE FROM port_address_pairs WHERE port_id = ?1",
            &args![port_id],
        )?;
        for pair in &a.allowed_address_pairs {
            self.exec(
                "INSERT INTO port_address_pairs (port_id, mac_address, ip_address) \
                 VALUES (?1, ?2, ?3)",
                &args![port_id, pair.mac_address, pair.ip_address],
            )?;
        }
        self.exec(
            "DELETE FROM ip_allocations WHERE port_id = ?1",
            &args![port_id],
        )?;
        for ip in &a.fixed_ips {
            self.exec(
                "INSERT INTO ip_allocations (port_id, subnet_id, ip_address) VALUES (?1, ?2, ?3)",
                &args![port_id, ip.subnet_id, ip.ip_address],
            )?;
        }
        self.exec(
            "DELETE FROM port_security_groups WHERE port_id = ?1",
            &args![port_id],
        )?;
        for g in &a.security_groups {
            self.exec(
                "INSERT INTO port_security_groups (port_id, security_group_id) VALUES (?1, ?2)",
                &args![port_id, g],
            )?;
        }
        Ok(())
    }

    fn mac_in_use(&self, net_id: &str, mac: &str, except: Option<&str>) -> Result<bool> {
        self.query_one(
            "SELECT 1 FROM ports WHERE network_id = ?1 AND mac_address = ?2 \
             AND (?3 IS NULL OR id <> ?3)",
            &args![net_id, mac, except],
            |_| Ok(()),
        )
        .map(|o| o.is_some())
    }

    fn subnets(&self, subnet_id: Option<&str>, net_id: Option<&str>) -> Result<Vec<Subnet>> {
        self.query(
            &format!(
                "SELECT {SUBNET_COLS} FROM subnets WHERE {} AND {} ORDER BY seq",
                eq("id", 1, subnet_id),
                eq("network_id", 2, net_id)
            ),
            &args![subnet_id, net_id],
            subnet_row,
        )
    }

    fn insert_subnet(&self, s: &Subnet) -> Result<()> {
        self.exec(
            "INSERT INTO subnets (id, network_id, tenant_id, ip_version, cidr) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            &args![s.id, s.network_id, s.tenant_id, s.family.version(), s.cidr],
        )?;
        self.update_subnet(s)
    }

    fn update_subnet(&self, s: &Subnet) -> Result<()> {
        self.exec(
            "UPDATE subnets SET name = ?2, description = ?3, gateway_ip = ?4, enable_dhcp = ?5, \
             allocation_pools = ?6, dns_nameservers = ?7, host_routes = ?8, ipv6_ra_mode = ?9, \
             ipv6_address_mode = ?10, created_at = ?11, updated_at = ?12, revision_number = ?13 \
             WHERE id = ?1",
            &args![
                s.id,
                s.name,
                s.description,
                s.gateway_ip,
                s.enable_dhcp,
                join_pairs(&s.allocation_pools, '-'),
                join_lines(&s.dns_nameservers),
                join_pairs(&s.host_routes, ','),
                s.ipv6_ra_mode,
                s.ipv6_address_mode,
                s.created_at,
                s.updated_at,
                s.revision_number
            ],
        )
        .map(drop)
    }

    fn security_groups(&self, id: Option<&str>) -> Result<Vec<SecurityGroup>> {
        self.query(
            &format!(
                "SELECT {SG_COLS} FROM security_groups WHERE {} ORDER BY seq",
                eq("id", 1, id)
            ),
            &args![id],
            sg_row,
        )
    }

    fn default_security_group(&self, tenant_id: &str) -> Result<Option<String>> {
        self.query_one(
            "SELECT id FROM security_groups WHERE tenant_id = ?1 AND is_default",
            &args![tenant_id],
            |r| r.get(0),
        )
    }

    fn insert_security_group(&self, g: &SecurityGroup) -> Result<()> {
        self.exec(
            "INSERT INTO security_groups (id, tenant_id, is_default) VALUES (?1, ?2, ?3)",
            &args![g.id, g.tenant_id, g.is_default],
        )?;
        self.save_security_group(g)
    }

    fn save_security_group(&self, g: &SecurityGroup) -> Result<()> {
        self.exec(
            "UPDATE security_groups SET name = ?2, description = ?3, stateful = ?4,              created_at = ?5, updated_at = ?6, revision_number = ?7 WHERE id = ?1",
            &args![
                g.id,
                g.name,
                g.description,
                g.stateful,
                g.created_at,
                g.updated_at,
                g.revision_number
            ],
        )
        .map(drop)
    }

    fn qos_policies(&self, id: Option<&str>) -> Result<Vec<QosPolicy>> {
        self.query(
            &format!(
                "SELECT {QOS_POLICY_COLS} FROM qos_policies WHERE {} ORDER BY seq",
                eq("id", 1, id)
            ),
            &args![id],
            qos_policy_row,
        )
    }

    fn port_qos_policy(&self, port_id: &str) -> Result<Option<QosPolicy>> {
        self.query_one(
            &format!("SELECT {QOS_POLICY_COLS} FROM qos_policies WHERE port_id = ?1"),
            &args![port_id],
            qos_policy_row,
        )
    }

    fn save_qos_policy(&self, p: &QosPolicy) -> Result<()> {
        self.exec(
            "INSERT INTO qos_policies (id, tenant_id, name, description, shared, is_default, \
             created_at, updated_at, revision_number, port_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (id) DO UPDATE SET name = ?3, description = ?4, shared = ?5, \
             is_default = ?6, updated_at = ?8, revision_number = ?9, port_id = ?10",
            &args![
                p.id,
                p.tenant_id,
                p.name,
                p.description,
                p.shared,
                p.is_default,
                p.created_at,
                p.updated_at,
                p.revision_number,
                p.port_id
            ],
        )
        .map(drop)
    }

    fn delete_qos_policy(&self, id: &str) -> Result<()> {
        self.exec("DELETE FROM qos_policies WHERE id = ?1", &args![id])
            .map(drop)
    }

    fn qos_rules(&self, policy_id: Option<&str>) -> Result<Vec<QosRule>> {
        self.query(
            &format!(
                "SELECT id, policy_id, type, direction, rate, burst FROM qos_rules \
                 WHERE {} ORDER BY seq",
                eq("policy_id", 1, policy_id)
            ),
            &args![policy_id],
            |r| {
                let ty: String = r.get(2)?;
                let dir: String = r.get(3)?;
                let n = |i| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
                Ok(QosRule {
                    id: r.get(0)?,
                    policy_id: r.get(1)?,
                    // The schema's CHECK constraints keep these to the known names.
                    rule_type: QosRuleType::parse(&ty).unwrap_or(QosRuleType::BandwidthLimit),
                    direction: QosDirection::parse(&dir).unwrap_or_default(),
                    rate: n(4)?,
                    burst: n(5)?,
                })
            },
        )
    }

    fn save_qos_rule(&self, q: &QosRule) -> Result<()> {
        self.exec(
            "INSERT INTO qos_rules (id, policy_id, type, direction, rate, burst) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (id) DO UPDATE SET direction = ?4, rate = ?5, burst = ?6",
            &args![
                q.id,
                q.policy_id,
                q.rule_type.as_str(),
                q.direction.as_str(),
                to_sql_u64(q.rate),
                to_sql_u64(q.burst)
            ],
        )
        .map(drop)
    }

    fn delete_qos_rule(&self, id: &str) -> Result<()> {
        self.exec("DELETE FROM qos_rules WHERE id = ?1", &args![id])
            .map(drop)
    }

    fn agents(&self, id: Option<&str>) -> Result<Vec<Agent>> {
        self.query(
            &format!(
                "SELECT {AGENT_COLS} FROM agents WHERE {} ORDER BY rowid",
                eq("id", 1, id)
            ),
            &args![id],
            agent_row,
        )
    }

    fn heartbeat_agent(&self, a: &Agent, start: bool) -> Result<()> {
        // One statement, no read: an admin's concurrent change of `admin_state_up` or the
        // description is never written over.
        let started = if start {
            ", started_at = excluded.started_at"
        } else {
            ""
        };
        self.exec(
            &format!(
                "INSERT INTO agents (id, agent_type, binary_name, host, topic, admin_state_up, \
                 description, configurations, created_at, started_at, heartbeat_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (agent_type, host) DO UPDATE SET \
                 heartbeat_at = excluded.heartbeat_at, \
                 configurations = excluded.configurations{started}"
            ),
            &args![
                a.id,
                a.agent_type,
                a.binary,
                a.host,
                a.topic,
                a.admin_state_up,
                a.description,
                a.configurations,
                a.created_at,
                a.started_at,
                a.heartbeat_at
            ],
        )
        .map(drop)
    }

    fn set_agent_admin(
        &self,
        id: &str,
        admin_state_up: bool,
        description: Option<&str>,
    ) -> Result<()> {
        self.exec(
            "UPDATE agents SET admin_state_up = ?2, description = ?3 WHERE id = ?1",
            &args![id, admin_state_up, description],
        )
        .map(drop)
    }

    fn save_port_reports(&self, host: &str, report: &HostReport<'_>) -> Result<()> {
        if report.full {
            self.exec("DELETE FROM port_status WHERE host = ?1", &args![host])?;
        }
        self.exec(
            "INSERT INTO host_status (host, revision) VALUES (?1, ?2) \
             ON CONFLICT (host) DO UPDATE SET revision = ?2",
            &args![host, report.revision],
        )?;
        for id in report.gone {
            self.exec(
                "DELETE FROM port_status WHERE port_id = ?1 AND host = ?2",
                &args![id, host],
            )?;
        }
        for r in report.changed {
            self.exec(
                "INSERT INTO port_status (port_id, host, status, reason) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (port_id, host) DO UPDATE SET status = ?3, reason = ?4",
                &args![r.port_id, host, r.status, r.reason],
            )?;
        }
        Ok(())
    }

    fn reported_statuses(&self, ids: Option<&[String]>) -> Result<Vec<ReportedStatus>> {
        // Only the host a port is bound to speaks for it; any host for an unbound port.
        let select = format!(
            "SELECT s.port_id, s.host, s.status, s.reason, \
             COALESCE(h.revision, 0), a.heartbeat_at \
             FROM port_status s JOIN ports p ON p.id = s.port_id \
             LEFT JOIN interfaces i ON i.id = p.interface_id \
             LEFT JOIN host_status h ON h.host = s.host \
             LEFT JOIN agents a ON a.host = s.host AND a.agent_type = 'qswitch agent' \
             WHERE ({BOUND_HOST}) IN ('', s.host)"
        );
        let row = |r: &Row<'_>| {
            Ok(ReportedStatus {
                port_id: r.get(0)?,
                host: r.get(1)?,
                status: r.get(2)?,
                reason: r.get(3)?,
                revision: r.get(4)?,
                heartbeat_at: r.get(5)?,
            })
        };
        let Some(ids) = ids else {
            return self.query(&select, &[], row);
        };
        let mut out = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            out.extend(self.query(
                &format!("{select} AND s.port_id IN ({})", marks(chunk.len())),
                &chunk.iter().map(|i| Val::Text(i)).collect::<Vec<_>>(),
                row,
            )?);
        }
        Ok(out)
    }

    fn bound_hosts(&self, ids: &[String]) -> Result<Vec<HostState>> {
        let mut out: Vec<HostState> = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            out.extend(self.query(
                &format!(
                    "SELECT DISTINCT b.host, COALESCE(h.revision, 0), a.heartbeat_at \
                     FROM (SELECT {BOUND_HOST} AS host FROM ports p \
                     LEFT JOIN interfaces i ON i.id = p.interface_id \
                     WHERE p.id IN ({})) b \
                     LEFT JOIN host_status h ON h.host = b.host \
                     LEFT JOIN agents a ON a.host = b.host AND a.agent_type = 'qswitch agent' \
                     WHERE b.host <> ''",
                    marks(chunk.len())
                ),
                &chunk.iter().map(|i| Val::Text(i)).collect::<Vec<_>>(),
                |r| {
                    Ok(HostState {
                        host: r.get(0)?,
                        revision: r.get(1)?,
                        heartbeat_at: r.get(2)?,
                    })
                },
            )?);
        }
        out.sort_by(|a, b| a.host.cmp(&b.host));
        out.dedup_by(|a, b| a.host == b.host);
        Ok(out)
    }

    fn delete_agent(&self, id: &str) -> Result<()> {
        self.exec("DELETE FROM agents WHERE id = ?1", &args![id])
            .map(drop)
    }

    fn qos_policy_user(
        &self,
        policy_id: &str,
        except_tenant: Option<&str>,
    ) -> Result<Option<(&'static str, String)>> {
        let net: Option<String> = self.query_one(
            "SELECT id FROM networks WHERE qos_policy_id = ?1 \
             AND (?2 IS NULL OR tenant_id <> ?2) LIMIT 1",
            &args![policy_id, except_tenant],
            |r| r.get(0),
        )?;
        if let Some(id) = net {
            return Ok(Some(("network", id)));
        }
        let port: Option<String> = self.query_one(
            "SELECT p.id FROM ports p JOIN networks n ON n.id = p.network_id \
             WHERE p.qos_policy_id = ?1 \
             AND (?2 IS NULL OR COALESCE(p.tenant_id, n.tenant_id) <> ?2) LIMIT 1",
            &args![policy_id, except_tenant],
            |r| r.get(0),
        )?;
        Ok(port.map(|id| ("port", id)))
    }

    fn default_qos_policy(&self, tenant_id: &str) -> Result<Option<String>> {
        self.query_one(
            "SELECT id FROM qos_policies WHERE tenant_id = ?1 AND is_default",
            &args![tenant_id],
            |r| r.get(0),
        )
    }

    fn delete_security_group(&self, id: &str) -> Result<()> {
        self.exec("DELETE FROM security_groups WHERE id = ?1", &args![id])
            .map(drop)
    }

    fn sg_rules(&self, group: Option<&str>, id: Option<&str>) -> Result<Vec<SgRule>> {
        self.query(
            &format!(
                "SELECT {SG_RULE_COLS} FROM security_group_rules WHERE {} AND {} ORDER BY seq",
                eq("security_group_id", 1, group),
                eq("id", 2, id)
            ),
            &args![group, id],
            sg_rule_row,
        )
    }

    fn insert_sg_rule(&self, r: &SgRule) -> Result<()> {
        self.exec(
            "INSERT INTO security_group_rules (id, security_group_id, tenant_id, direction,              ethertype, protocol, port_range_min, port_range_max, remote_ip_prefix,              remote_group_id, description, created_at, updated_at, revision_number)              VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            &args![
                r.id,
                r.security_group_id,
                r.tenant_id,
                r.direction,
                r.ethertype,
                r.protocol,
                r.port_range_min,
                r.port_range_max,
                r.remote_ip_prefix,
                r.remote_group_id,
                r.description,
                r.created_at,
                r.updated_at,
                r.revision_number
            ],
        )
        .map(drop)
    }

    fn save_sg_rule(&self, r: &SgRule) -> Result<()> {
        self.exec(
            "UPDATE security_group_rules SET description = ?2, updated_at = ?3,              revision_number = ?4 WHERE id = ?1",
            &args![r.id, r.description, r.updated_at, r.revision_number],
        )
        .map(drop)
    }

    fn delete_sg_rule(&self, id: &str) -> Result<()> {
        self.exec("DELETE FROM security_group_rules WHERE id = ?1", &args![id])
            .map(drop)
    }

    fn security_group_ports(&self, group: &str) -> Result<Vec<String>> {
        self.query(
            "SELECT port_id FROM port_security_groups WHERE security_group_id = ?1 ORDER BY seq",
            &args![group],
            |r| r.get(0),
        )
    }

    fn security_group_addresses(&self, group: &str) -> Result<Vec<String>> {
        self.query(
            "SELECT a.ip_address FROM port_security_groups g \
             JOIN ip_allocations a ON a.port_id = g.port_id WHERE g.security_group_id = ?1 \
             UNION SELECT p.ip_address FROM port_security_groups g \
             JOIN port_address_pairs p ON p.port_id = g.port_id WHERE g.security_group_id = ?1",
            &args![group],
            |r| r.get(0),
        )
    }

    fn security_usage(&self, tenant_id: &str) -> Result<(u64, u64)> {
        let count = |sql: &str| -> Result<u64> {
            self.query_one(sql, &args![tenant_id], |r| r.get::<_, i64>(0))
                .map(|n| n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
        };
        Ok((
            count("SELECT COUNT(*) FROM security_groups WHERE tenant_id = ?1")?,
            count("SELECT COUNT(*) FROM security_group_rules WHERE tenant_id = ?1")?,
        ))
    }

    fn delete_subnet(&self, subnet_id: &str) -> Result<()> {
        self.exec("DELETE FROM subnets WHERE id = ?1", &args![subnet_id])
            .map(drop)
    }

    fn subnet_allocations(&self, subnet_id: &str) -> Result<Vec<(String, String)>> {
        self.query(
            "SELECT ip_address, port_id FROM ip_allocations WHERE subnet_id = ?1 ORDER BY seq",
            &args![subnet_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    fn network_seq(&self, tenant_id: &str, net_id: &str) -> Result<Option<i64>> {
        self.query_one(
            "SELECT seq FROM networks WHERE id = ?1 AND tenant_id = ?2",
            &args![net_id, tenant_id],
            |r| r.get(0),
        )
    }

    fn networks_page(
        &self,
        tenant_id: &str,
        from: Option<i64>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(i64, Network)>> {
        let sql = networks_page_sql(from, reverse);
        self.query(&sql, &args![tenant_id, from, limit_param(limit)], |r| {
            Ok((r.get(r.len() - 1)?, network_row(r)?))
        })
    }

    fn port_seq(&self, net_id: &str, port_id: &str) -> Result<Option<i64>> {
        self.query_one(
            "SELECT seq FROM ports WHERE id = ?1 AND network_id = ?2",
            &args![port_id, net_id],
            |r| r.get(0),
        )
    }

    fn ports_page(
        &self,
        net_id: &str,
        from: Option<i64>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(i64, Port)>> {
        let sql = ports_page_sql(from, reverse);
        self.query(&sql, &args![net_id, from, limit_param(limit)], |r| {
            Ok((r.get(r.len() - 1)?, port_row(r)?))
        })
    }

    fn tenant_usage(&self, tenant_id: &str) -> Result<Usage> {
        self.query_one(
            "SELECT (SELECT COUNT(*) FROM networks WHERE tenant_id = ?1), \
                    (SELECT COUNT(*) FROM ports WHERE tenant_id = ?1), \
                    (SELECT COUNT(*) FROM interfaces WHERE tenant_id = ?1), \
                    (SELECT COUNT(*) FROM subnets WHERE tenant_id = ?1)",
            &args![tenant_id],
            |r| {
                let count = |i: usize| r.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
                Ok(Usage {
                    networks: count(0)?,
                    ports: count(1)?,
                    interfaces: count(2)?,
                    subnets: count(3)?,
                })
            },
        )
        .map(Option::unwrap_or_default)
    }
}

/// The keyset condition and order of a page: rows after `?2`, oldest first,
/// or before it, newest first; all rows when there is no marker (`?2` is then
/// NULL). The condition is a plain range on `col` so that the index on
/// (parent, `seq`) seeks straight to the marker: `?2 IS NULL OR col > ?2`
/// would make SQLite scan from the start of the list.
/// `col = ?n` when filtering on a value, else a condition that is always true
/// (`?n IS NULL`), so that a lookup by id is an index seek and not a scan that
/// tests `?n IS NULL OR col = ?n` on every row.
fn eq(col: &str, n: u8, value: Option<&str>) -> String {
    match value {
        Some(_) => format!("{col} = ?{n}"),
        None => format!("?{n} IS NULL"),
    }
}

fn keyset(col: &str, from: Option<i64>, reverse: bool) -> String {
    match (from.is_some(), reverse) {
        (false, false) => format!("?2 IS NULL ORDER BY {col}"),
        (false, true) => format!("?2 IS NULL ORDER BY {col} DESC"),
        (true, false) => format!("{col} > ?2 ORDER BY {col}"),
        (true, true) => format!("{col} < ?2 ORDER BY {col} DESC"),
    }
}

/// A page of a tenant's networks; the `seq` is the last column, whatever
/// NETWORK_COLS holds.
pub(super) fn networks_page_sql(from: Option<i64>, reverse: bool) -> String {
    format!(
        "SELECT {NETWORK_COLS}, seq FROM networks WHERE tenant_id = ?1 AND {} LIMIT ?3",
        keyset("seq", from, reverse)
    )
}

/// A page of a network's ports; the `seq` is the last column.
pub(super) fn ports_page_sql(from: Option<i64>, reverse: bool) -> String {
    format!(
        "SELECT {PORT_COLS}, p.seq FROM ports p WHERE p.network_id = ?1 AND {} LIMIT ?3",
        keyset("p.seq", from, reverse)
    )
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

const QOS_POLICY_COLS: &str = "id, tenant_id, name, description, shared, is_default, \
     created_at, updated_at, revision_number, port_id";

fn qos_policy_row(r: &Row<'_>) -> Result<QosPolicy> {
    Ok(QosPolicy {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        shared: r.get(4)?,
        is_default: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        revision_number: r.get(8)?,
        port_id: r.get(9)?,
    })
}

/// QoS values are validated far below `i64::MAX`; saturate all the same.
fn to_sql_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
