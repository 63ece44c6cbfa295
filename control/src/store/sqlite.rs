//! The SQLite store: one file, WAL journal, `synchronous=FULL`, versioned
//! migrations. All of the crate's SQL is in this module.
//!
//! # Durability
//!
//! With WAL and `synchronous=FULL` the WAL is synced at every commit, so a
//! write answered to a client survives a power loss, not only a crash of the
//! process (`NORMAL` would only guarantee the latter).
//!
//! # Group commit
//!
//! Writers that arrive while another write runs share its transaction and its fsync: each runs
//! its closure inside a savepoint of the open transaction (a failed one rolls back only its own
//! savepoint; the write that opened the transaction needs none, and a failure of it rolls the
//! transaction back), and the last writer in (none waiting behind it, or [`GROUP_MAX`] reached)
//! commits for all of them. Every writer is answered only after that commit is durable. The
//! committer then runs every member's after-commit step itself, in the order the writes ran
//! (revision order), while the writer connection stays locked, so the next group's steps come
//! after; then it wakes all the members at once.
//!
//! # Migrations
//!
//! `migrations/NNNN_*.sql` are applied in order inside one transaction, and
//! `PRAGMA user_version` records how many have been applied. A database newer
//! than this binary is refused rather than guessed at.

use std::path::Path;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use crate::agent::Agent;
use crate::error::{ControlError, Result};
use std::collections::HashMap;

use crate::ipam::{split_lines, Family};
use crate::model::{Interface, Network, NetworkType, Port, PortState};
use crate::neutron::{
    AddressPair, FixedIp, NetworkAttrs, NetworkRecord, PortAttrs, PortRecord, Subnet,
};
use crate::qos::{QosDirection, QosPolicy, QosRule, QosRuleType};
use crate::quota::Usage;
use crate::security::{SecurityGroup, SgRule};
use crate::store::{
    AfterCommit, NetworkKey, NetworkQuery, PortKey, PortQuery, Store, SubnetKey, SubnetQuery,
    Touched, Tx,
};

/// The schema migrations, in order; the database's `user_version` is the
/// number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_neutron.sql"),
    include_str!("../../migrations/0003_qos.sql"),
    include_str!("../../migrations/0004_revisions.sql"),
    include_str!("../../migrations/0005_list_indexes.sql"),
    include_str!("../../migrations/0006_security_groups.sql"),
    include_str!("../../migrations/0007_dhcp.sql"),
    include_str!("../../migrations/0008_security_changes.sql"),
    include_str!("../../migrations/0009_router_external.sql"),
    include_str!("../../migrations/0010_provider_networks.sql"),
    include_str!("../../migrations/0011_qos_policies.sql"),
    include_str!("../../migrations/0012_qos_network_owned_ports.sql"),
    include_str!("../../migrations/0013_one_qos_model.sql"),
    include_str!("../../migrations/0014_sg_rule_prefixes.sql"),
    include_str!("../../migrations/0015_agents.sql"),
];

/// How much of the database file each connection maps.
const MMAP_BYTES: u64 = 1 << 30;
/// Prepared statements kept per connection: more than the store has.
const STATEMENT_CACHE: usize = 256;
/// Each connection's page cache, in KiB.
const CACHE_KIB: u32 = 16 * 1024;

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

/// Where and how a keyset page reads (see `SqliteTx::keyset_page`).
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

/// How long a writer waits for another connection's lock before failing.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Read connections kept open for reuse; more are opened when more readers
/// run at once, and closed when they finish.
const READERS_KEPT: usize = 16;

/// A [`Store`] on one SQLite database: one writer connection and a pool of
/// readers (WAL lets readers run beside the writer, each on the last
/// committed state).
#[derive(Debug)]
pub struct SqliteStore {
    writer: Mutex<Writer>,
    /// Writers waiting for the writer connection: while there are, a group stays open for them.
    waiting: AtomicUsize,
    /// The database file; `None` for a private in-memory database, whose
    /// reads go through the writer connection.
    path: Option<PathBuf>,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up
    /// to date.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(store_err)?;
        Self::init(conn, Some(path.to_owned()))
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(store_err)?;
        Self::init(conn, None)
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(store_err)?;
        if path.is_some() {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(store_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(ControlError::Store {
                    detail: format!("could not enable WAL journal (got {mode})"),
                });
            }
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(store_err)?;
        tune(&conn)?;
        migrate(&mut conn)?;
        Ok(Self {
            writer: Mutex::new(Writer {
                conn,
                group: None,
                steps: Vec::new(),
            }),
            waiting: AtomicUsize::new(0),
            path,
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32> {
        lock(&self.writer)
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(store_err)
    }

    fn open_reader(path: &Path) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(store_err)?;
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(store_err)?;
        tune(&conn)?;
        Ok(conn)
    }
}

/// Reads through a memory map of the file (no system call per page: a large
/// store reads as fast as a small one) and a page cache sized for indexes of
/// a few hundred thousand rows, on every connection.
fn tune(conn: &Connection) -> Result<()> {
    // Every statement the store runs stays prepared (the default keeps 16: lists re-parsed).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans do not depend on bound values (query planner stability): without it, a cached
    // statement is parsed and planned again whenever a parameter the planner looked at (one
    // compared against a partial index's condition) gets a new value, on every show.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(store_err)?;
    // Statement journals (a copy of every page a statement or a group member's savepoint
    // changes) and sorts stay in memory: in temporary files they cost a write(2) per page, more
    // pages as the B-trees deepen. A sort that no index serves then stays in memory too (the
    // largest is the start-up read of every port).
    conn.execute_batch(&format!(
        "PRAGMA mmap_size={MMAP_BYTES}; PRAGMA cache_size=-{CACHE_KIB}; PRAGMA temp_store=MEMORY;"
    ))
    .map_err(store_err)
}

/// A poisoned lock means a panic while the lock was held; a write's own panic is caught and
/// rolled back (its savepoint, or the whole transaction for the write that opened it) before
/// the lock is released, so the connection is sound.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` in one read transaction (its statements see one snapshot). `BEGIN` and `ROLLBACK`
/// come from the statement cache: a point read is a few microseconds, and parsing them again
/// on every read cost a quarter of that.
fn run(conn: &mut Connection, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()> {
    exec_cached(conn, "BEGIN DEFERRED").map_err(store_err)?;
    let read = ReadTx(conn);
    f(&SqliteTx { tx: read.0 })
}

/// An open read transaction, ended when dropped (also when the reader panics, so that the
/// connection never goes back to use with a transaction open).
struct ReadTx<'c>(&'c Connection);

impl Drop for ReadTx<'_> {
    fn drop(&mut self) {
        // A read has nothing to keep: a failed ROLLBACK leaves nothing behind that matters
        // (SQLite ends the transaction on its own when it cannot).
        let _ = exec_cached(self.0, "ROLLBACK");
    }
}

/// The most writes one group commit carries.
const GROUP_MAX: usize = 64;

/// The writer connection and the group transaction open on it, if any.
struct Writer {
    conn: Connection,
    /// The open group and how many writes (that succeeded) it holds.
    group: Option<(Arc<Group>, usize)>,
    /// The after-commit steps of the open group's writes, in the order they ran.
    steps: Vec<AfterCommit>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("conn", &self.conn)
            .field("group", &self.group)
            .field("steps", &self.steps.len())
            .finish()
    }
}

/// One group commit: the writes that share a transaction, each waiting for its commit.
#[derive(Debug, Default)]
struct Group {
    /// The commit's outcome (its steps have run), once it is known.
    outcome: Mutex<Option<std::result::Result<(), String>>>,
    cv: Condvar,
}

impl Group {
    /// Waits for the commit's outcome.
    fn outcome(&self) -> Result<()> {
        let mut o = lock(&self.outcome);
        while o.is_none() {
            o = self.cv.wait(o).unwrap_or_else(|e| e.into_inner());
        }
        o.clone()
            .unwrap_or(Ok(()))
            .map_err(|detail| ControlError::Store { detail })
    }

    fn finish(&self, outcome: std::result::Result<(), String>) {
        *lock(&self.outcome) = Some(outcome);
        self.cv.notify_all();
    }
}

/// A panic inside a write's closure, carried past the group's bookkeeping.
type Panic = Box<dyn std::any::Any + Send>;

/// Runs one statement from the statement cache: the transaction statements of every write
/// and read are parsed once per connection, not on every use.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Undoes a group member's changes and ends its savepoint.
fn rollback_member(conn: &Connection) -> rusqlite::Result<()> {
    exec_cached(conn, "ROLLBACK TO member")?;
    exec_cached(conn, "RELEASE member")
}

/// Runs one write's closure: kept when it succeeds, rolled back (alone) when it fails or
/// panics. A write that opened the transaction (`first`) runs without a savepoint and a failure
/// rolls the whole transaction back: there is nothing else in it yet. A savepoint journals every
/// page a write changes (a copy into the statement journal), which costs more as the B-trees
/// deepen, so only the writes that join an open group pay it.
fn run_member(
    conn: &Connection,
    first: bool,
    f: &mut dyn FnMut(&dyn Tx) -> Result<Option<AfterCommit>>,
) -> (Result<Option<AfterCommit>>, Option<Panic>) {
    if !first {
        if let Err(e) = exec_cached(conn, "SAVEPOINT member") {
            return (Err(store_err(e)), None);
        }
    }
    let undo = |conn: &Connection| {
        if first {
            exec_cached(conn, "ROLLBACK")
        } else {
            rollback_member(conn)
        }
    };
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&SqliteTx { tx: conn })));
    let (result, panic) = match run {
        Ok(r) => (r, None),
        Err(p) => (
            Err(ControlError::Store {
                detail: "a write panicked".into(),
            }),
            Some(p),
        ),
    };
    let end = match (&result, first) {
        (Ok(_), true) => Ok(()),
        (Ok(_), false) => exec_cached(conn, "RELEASE member"),
        (Err(_), _) => undo(conn),
    };
    match end {
        Ok(()) => (result, panic),
        Err(e) => {
            // If this write's changes still cannot be undone alone, the whole transaction goes,
            // so that none of them is committed with the group (which then fails as lost).
            if undo(conn).is_err() && !conn.is_autocommit() {
                let _ = exec_cached(conn, "ROLLBACK");
            }
            (result.and(Err(store_err(e))), panic)
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    // A migration may rebuild a table others reference (SQLite's procedure for changing a
    // column's constraints): foreign keys are off while migrations run (the pragma has no
    // effect inside a transaction), checked before the commit, and on again after.
    conn.execute_batch("PRAGMA foreign_keys=OFF")
        .map_err(store_err)?;
    let done = migrate_all(conn);
    conn.execute_batch("PRAGMA foreign_keys=ON")
        .map_err(store_err)?;
    done
}

fn migrate_all(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_err)?;
    let current: u32 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(store_err)?;
    let current = current as usize;
    if current > MIGRATIONS.len() {
        return Err(ControlError::Store {
            detail: format!(
                "database schema version {current} is newer than this binary ({})",
                MIGRATIONS.len()
            ),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).map_err(store_err)?;
        let version = u32::try_from(i + 1).unwrap_or(u32::MAX);
        tx.pragma_update(None, "user_version", version)
            .map_err(store_err)?;
        tracing::info!(version = i + 1, "applied store migration");
    }
    // Only after migrations ran (the check reads every table).
    let broken: Option<String> = if current < MIGRATIONS.len() {
        tx.query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(store_err)?
    } else {
        None
    };
    if let Some(table) = broken {
        return Err(ControlError::Store {
            detail: format!("a migration left rows of {table} referencing nothing"),
        });
    }
    tx.commit().map_err(store_err)
}

impl Store for SqliteStore {
    fn read(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()> {
        let Some(path) = &self.path else {
            return run(&mut lock(&self.writer).conn, f);
        };
        // A pooled connection is never inside a transaction; one that is (whatever left it so)
        // would refuse the read's BEGIN: it is dropped and another taken.
        let pooled = {
            let mut readers = lock(&self.readers);
            std::iter::from_fn(|| readers.pop()).find(Connection::is_autocommit)
        };
        let mut conn = match pooled {
            Some(c) => c,
            None => Self::open_reader(path)?,
        };
        let out = run(&mut conn, f);
        let mut readers = lock(&self.readers);
        // A connection whose transaction could not be ended (a failed ROLLBACK) is dropped, never
        // reused: it would pin an old snapshot and refuse every later BEGIN.
        if readers.len() < READERS_KEPT && conn.is_autocommit() {
            readers.push(conn);
        }
        out
    }

    fn write(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<Option<AfterCommit>>) -> Result<()> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut w = lock(&self.writer);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let (group, members, first) = match w.group.clone() {
            Some((g, m)) => (g, m, false),
            None => {
                // A transaction a failed COMMIT and ROLLBACK left open is ended first.
                if !w.conn.is_autocommit() {
                    tracing::warn!("the writer's transaction was left open; rolling it back");
                    let _ = exec_cached(&w.conn, "ROLLBACK");
                }
                exec_cached(&w.conn, "BEGIN IMMEDIATE").map_err(store_err)?;
                (Arc::default(), 0, true)
            }
        };
        let (own, panic) = run_member(&w.conn, first, f);
        let own = own.map(|step| w.steps.extend(step));
        let members = members + usize::from(own.is_ok());
        // The transaction is gone when the write that opened it failed (and rolled it back), or
        // when SQLite rolled it back by itself (disk full, I/O error): then the group ends here,
        // failed, and nothing runs outside a transaction.
        let lost = w.conn.is_autocommit() || (first && own.is_err());
        // A private in-memory database shares its connection with readers: no group stays open
        // while the lock is released.
        let more = !lost
            && self.path.is_some()
            && self.waiting.load(Ordering::SeqCst) > 0
            && members < GROUP_MAX;
        if more {
            w.group = Some((Arc::clone(&group), members));
            drop(w);
            if let Some(p) = panic {
                std::panic::resume_unwind(p);
            }
            return own.and_then(|()| group.outcome());
        }
        // The last writer in commits for the whole group.
        w.group = None;
        let steps = std::mem::take(&mut w.steps);
        let outcome = if lost {
            Err("the store rolled the transaction back".to_owned())
        } else {
            match exec_cached(&w.conn, "COMMIT") {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = exec_cached(&w.conn, "ROLLBACK");
                    Err(format!("commit failed: {e}"))
                }
            }
        };
        if outcome.is_ok() {
            // Every member's step, in revision order, before the next group may start. A step
            // that panics is a bug of its own write: the others and the store go on.
            for step in steps {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).is_err() {
                    tracing::error!("a write's after-commit step panicked");
                }
            }
        }
        group.finish(outcome);
        drop(w);
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
        own.and_then(|()| group.outcome())
    }
}

struct SqliteTx<'c> {
    tx: &'c Connection,
}

/// A constraint the schema enforces (unique VLAN, MAC per network, one port per attachment, ...)
/// is a conflict (409), not a failure of the store: the rules check first, so only a concurrent
/// writer on a shared database gets here.
fn store_err(e: rusqlite::Error) -> ControlError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => {
            tracing::info!(error = %e, "write refused by a store constraint");
            ControlError::Conflict {
                detail: e.to_string(),
            }
        }
        _ => ControlError::Store {
            detail: e.to_string(),
        },
    }
}

const AGENT_COLS: &str = "id, agent_type, binary_name, host, topic, admin_state_up, \
     description, configurations, created_at, started_at, heartbeat_at";

fn agent_row(r: &Row<'_>) -> rusqlite::Result<Agent> {
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
const INTERFACE_COLS: &str = "id, tenant_id, device";

fn network_row(r: &Row<'_>) -> rusqlite::Result<Network> {
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

fn port_row(r: &Row<'_>) -> rusqlite::Result<Port> {
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

fn interface_row(r: &Row<'_>) -> rusqlite::Result<Interface> {
    Ok(Interface {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        device: r.get(2)?,
    })
}

const NETWORK_V2_COLS: &str =
    "id, tenant_id, name, vlan, admin_state_up, shared, mtu, description, \
     port_security_enabled, created_at, updated_at, revision_number, router_external, \
     network_type, physical_network, qos_policy_id";

fn network_record_row(r: &Row<'_>) -> rusqlite::Result<NetworkRecord> {
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

fn port_record_row(r: &Row<'_>) -> rusqlite::Result<PortRecord> {
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

fn sg_row(r: &Row<'_>) -> rusqlite::Result<SecurityGroup> {
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

fn sg_rule_row(r: &Row<'_>) -> rusqlite::Result<SgRule> {
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

fn subnet_row(r: &Row<'_>) -> rusqlite::Result<Subnet> {
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

impl SqliteTx<'_> {
    fn query<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(store_err)?;
        let rows = stmt.query_map(params, f).map_err(store_err)?;
        rows.collect::<rusqlite::Result<Vec<T>>>()
            .map_err(store_err)
    }

    fn query_one<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(store_err)?;
        stmt.query_row(params, f).optional().map_err(store_err)
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
        row: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let a = page.alias;
        let filtered = if conds.is_empty() {
            "1".to_owned()
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
                rusqlite::params_from_iter(args.iter()),
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
        let limit = if page.limit == 0 {
            -1
        } else {
            i64::try_from(page.limit).unwrap_or(i64::MAX)
        };
        let sql = format!(
            "SELECT {cols} FROM {} WHERE {cond} ORDER BY {a}.seq {dir} LIMIT {limit}",
            page.from
        );
        let mut rows = self.query(&sql, rusqlite::params_from_iter(args.iter()), row)?;
        if page.reverse {
            rows.reverse();
        }
        Ok(rows)
    }

    /// Fills the address pairs and fixed IPs of `ports`: of the one port named, or read for
    /// every port (`None`).
    fn attach_pairs_and_ips(&self, ports: &mut [PortRecord], port_id: Option<&str>) -> Result<()> {
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
    /// order: of one port, or of every port (`None`).
    fn by_port<T>(
        &self,
        select: &str,
        port_id: Option<&str>,
        row: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<HashMap<String, Vec<T>>> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!(
                "{select} WHERE {} ORDER BY seq",
                eq("port_id", 1, port_id)
            ))
            .map_err(store_err)?;
        let rows = stmt
            .query_map(params![port_id], |r| Ok((r.get::<_, String>(0)?, row(r)?)))
            .map_err(store_err)?;
        let mut out: HashMap<String, Vec<T>> = HashMap::new();
        for r in rows {
            let (port, item) = r.map_err(store_err)?;
            out.entry(port).or_default().push(item);
        }
        Ok(out)
    }

    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> Result<usize> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(store_err)?;
        stmt.execute(params).map_err(store_err)
    }
}

impl Tx for SqliteTx<'_> {
    fn close_revision(&self) -> Result<Option<(u64, Vec<Touched>)>> {
        let touched = self.query(
            "SELECT kind, id FROM changes \
             WHERE revision = (SELECT revision + 1 FROM revision) \
             GROUP BY kind, id ORDER BY MIN(seq)",
            [],
            |r| {
                let kind: String = r.get(0)?;
                let id: String = r.get(1)?;
                Ok(match kind.as_str() {
                    "network" => Touched::Network(id),
                    "network_ports" => Touched::NetworkPorts(id),
                    "interface" => Touched::Interface(id),
                    "device" => Touched::Device(id),
                    "security_group" => Touched::SecurityGroup(id),
                    "group_members" => Touched::GroupMembers(id),
                    _ => Touched::Port(id),
                })
            },
        )?;
        if touched.is_empty() {
            return Ok(None);
        }
        let revision: i64 = self
            .query_one(
                "UPDATE revision SET revision = revision + 1 RETURNING revision",
                [],
                |r| r.get(0),
            )?
            .unwrap_or_default();
        if revision % PRUNE_EVERY == 0 {
            self.exec(
                "DELETE FROM changes WHERE revision <= ?1",
                params![revision - KEEP_REVISIONS],
            )?;
        }
        Ok(Some((u64::try_from(revision).unwrap_or_default(), touched)))
    }

    fn revision(&self) -> Result<u64> {
        let r: Option<i64> = self.query_one("SELECT revision FROM revision", [], |r| r.get(0))?;
        Ok(r.and_then(|r| u64::try_from(r).ok()).unwrap_or_default())
    }

    fn port_ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        // A range on the unique index: every id that starts with `prefix`.
        let end = format!("{prefix}\u{10FFFF}");
        self.query(
            "SELECT id FROM ports WHERE id >= ?1 AND id < ?2",
            params![prefix, end],
            |r| r.get(0),
        )
    }

    fn network(&self, tenant_id: &str, net_id: &str) -> Result<Option<Network>> {
        self.query_one(
            &format!("SELECT {NETWORK_COLS} FROM networks WHERE id = ?1 AND tenant_id = ?2"),
            params![net_id, tenant_id],
            network_row,
        )
    }

    fn networks(&self, tenant_id: &str) -> Result<Vec<Network>> {
        self.query(
            &format!("SELECT {NETWORK_COLS} FROM networks WHERE tenant_id = ?1 ORDER BY seq"),
            params![tenant_id],
            network_row,
        )
    }

    fn all_networks(&self) -> Result<Vec<Network>> {
        self.query(
            &format!("SELECT {NETWORK_COLS} FROM networks ORDER BY seq"),
            [],
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
             ) ORDER BY v LIMIT 1",
            params![min, max, physnet],
            |r| r.get(0),
        )
    }

    fn segment_holder(&self, physnet: &str, vlan: u16) -> Result<Option<String>> {
        self.query_one(
            "SELECT id FROM networks WHERE physical_network = ?1 AND vlan = ?2",
            params![physnet, vlan],
            |r| r.get(0),
        )
    }

    fn insert_network(&self, n: &Network) -> Result<()> {
        self.exec(
            "INSERT INTO networks (id, tenant_id, name, vlan, network_type, physical_network, \
             created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            params![n.id, n.tenant_id, n.name, n.vlan, n.network_type.as_str(), n.physnet],
        )
        .map(drop)
    }

    fn rename_network(&self, net_id: &str, name: &str) -> Result<()> {
        self.exec(
            "UPDATE networks SET name = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), \
             revision_number = revision_number + 1 WHERE id = ?1",
            params![net_id, name],
        )
        .map(drop)
    }

    fn delete_network(&self, net_id: &str) -> Result<()> {
        self.exec("DELETE FROM ports WHERE network_id = ?1", params![net_id])?;
        self.exec("DELETE FROM networks WHERE id = ?1", params![net_id])
            .map(drop)
    }

    fn port(&self, net_id: &str, port_id: &str) -> Result<Option<Port>> {
        self.query_one(
            &format!("SELECT {PORT_COLS} FROM ports p WHERE p.id = ?1 AND p.network_id = ?2"),
            params![port_id, net_id],
            port_row,
        )
    }

    fn ports(&self, net_id: &str) -> Result<Vec<Port>> {
        self.query(
            &format!("SELECT {PORT_COLS} FROM ports p WHERE p.network_id = ?1 ORDER BY p.seq"),
            params![net_id],
            port_row,
        )
    }

    fn tenant_ports(&self, tenant_id: &str) -> Result<Vec<Port>> {
        self.query(
            &format!(
                "SELECT {PORT_COLS} FROM ports p JOIN networks n ON n.id = p.network_id \
                 WHERE n.tenant_id = ?1 ORDER BY p.seq"
            ),
            params![tenant_id],
            port_row,
        )
    }

    fn port_by_attachment(&self, interface_id: &str) -> Result<Option<Port>> {
        self.query_one(
            &format!("SELECT {PORT_COLS} FROM ports p WHERE p.interface_id = ?1"),
            params![interface_id],
            port_row,
        )
    }

    fn plugged_ports(&self) -> Result<Vec<(Port, String)>> {
        self.query(
            &format!(
                "SELECT {PORT_COLS}, i.device FROM ports p \
                 JOIN interfaces i ON i.id = p.interface_id ORDER BY p.seq"
            ),
            [],
            |r| Ok((port_row(r)?, r.get(4)?)),
        )
    }

    fn insert_port(&self, p: &Port) -> Result<()> {
        self.exec(
            "INSERT INTO ports (id, network_id, state, interface_id, tenant_id, created_at, \
             updated_at) VALUES (?1, ?2, ?3, ?4, (SELECT tenant_id FROM networks WHERE id = ?2), \
             strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            params![p.id, p.network_id, p.state.as_str(), p.attachment],
        )
        .map(drop)
    }

    fn set_port_state(&self, port_id: &str, state: PortState) -> Result<()> {
        self.exec(
            "UPDATE ports SET state = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), \
             revision_number = revision_number + 1 WHERE id = ?1",
            params![port_id, state.as_str()],
        )
        .map(drop)
    }

    fn set_port_attachment(&self, port_id: &str, interface_id: Option<&str>) -> Result<()> {
        self.exec(
            "UPDATE ports SET interface_id = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), \
             revision_number = revision_number + 1 WHERE id = ?1",
            params![port_id, interface_id],
        )
        .map(drop)
    }

    fn delete_port(&self, port_id: &str) -> Result<()> {
        self.exec("DELETE FROM ports WHERE id = ?1", params![port_id])
            .map(drop)
    }

    fn interface(&self, interface_id: &str) -> Result<Option<Interface>> {
        self.query_one(
            &format!("SELECT {INTERFACE_COLS} FROM interfaces WHERE id = ?1"),
            params![interface_id],
            interface_row,
        )
    }

    fn interface_by_device(&self, device: &str) -> Result<Option<Interface>> {
        self.query_one(
            &format!("SELECT {INTERFACE_COLS} FROM interfaces WHERE device = ?1"),
            params![device],
            interface_row,
        )
    }

    fn all_interfaces(&self) -> Result<Vec<Interface>> {
        self.query(
            &format!("SELECT {INTERFACE_COLS} FROM interfaces ORDER BY seq"),
            [],
            interface_row,
        )
    }

    fn interfaces(&self, tenant_id: &str) -> Result<Vec<Interface>> {
        self.query(
            &format!("SELECT {INTERFACE_COLS} FROM interfaces WHERE tenant_id = ?1 ORDER BY seq"),
            params![tenant_id],
            interface_row,
        )
    }

    fn upsert_interface(&self, i: &Interface) -> Result<()> {
        self.exec(
            "INSERT INTO interfaces (id, tenant_id, device) VALUES (?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET device = excluded.device \
             WHERE interfaces.tenant_id = excluded.tenant_id",
            params![i.id, i.tenant_id, i.device],
        )
        .map(drop)
    }

    fn delete_interface(&self, interface_id: &str) -> Result<()> {
        self.exec(
            "DELETE FROM interfaces WHERE id = ?1",
            params![interface_id],
        )
        .map(drop)
    }

    fn network_records(&self, net_id: Option<&str>) -> Result<Vec<NetworkRecord>> {
        let mut nets = self.query(
            &format!(
                "SELECT {NETWORK_V2_COLS} FROM networks WHERE {} ORDER BY seq",
                eq("id", 1, net_id)
            ),
            params![net_id],
            network_record_row,
        )?;
        let subnets: Vec<(String, String)> = self.query(
            &format!(
                "SELECT network_id, id FROM subnets WHERE {} ORDER BY seq",
                eq("network_id", 1, net_id)
            ),
            params![net_id],
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
            params![
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
            params![port_id],
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
        if !ids.is_empty() {
            let marks: Vec<String> = (1..=ids.len()).map(|i| format!("?{i}")).collect();
            let subnets: Vec<(String, String)> = self.query(
                &format!(
                    "SELECT network_id, id FROM subnets WHERE network_id IN ({}) ORDER BY seq",
                    marks.join(", ")
                ),
                rusqlite::params_from_iter(ids.iter()),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            fill_subnets(&mut nets, subnets);
        }
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
                SubnetKey::IpVersion => "s.ip_version",
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
            params![
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
            params![port_id],
        )?;
        for pair in &a.allowed_address_pairs {
            self.exec(
                "INSERT INTO port_address_pairs (port_id, mac_address, ip_address) \
                 VALUES (?1, ?2, ?3)",
                params![port_id, pair.mac_address, pair.ip_address],
            )?;
        }
        self.exec(
            "DELETE FROM ip_allocations WHERE port_id = ?1",
            params![port_id],
        )?;
        for ip in &a.fixed_ips {
            self.exec(
                "INSERT INTO ip_allocations (port_id, subnet_id, ip_address) VALUES (?1, ?2, ?3)",
                params![port_id, ip.subnet_id, ip.ip_address],
            )?;
        }
        self.exec(
            "DELETE FROM port_security_groups WHERE port_id = ?1",
            params![port_id],
        )?;
        for g in &a.security_groups {
            self.exec(
                "INSERT INTO port_security_groups (port_id, security_group_id) VALUES (?1, ?2)",
                params![port_id, g],
            )?;
        }
        Ok(())
    }

    fn mac_in_use(&self, net_id: &str, mac: &str, except: Option<&str>) -> Result<bool> {
        self.query_one(
            "SELECT 1 FROM ports WHERE network_id = ?1 AND mac_address = ?2 \
             AND (?3 IS NULL OR id <> ?3)",
            params![net_id, mac, except],
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
            params![subnet_id, net_id],
            subnet_row,
        )
    }

    fn insert_subnet(&self, s: &Subnet) -> Result<()> {
        self.exec(
            "INSERT INTO subnets (id, network_id, tenant_id, ip_version, cidr) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![s.id, s.network_id, s.tenant_id, s.family.version(), s.cidr],
        )?;
        self.update_subnet(s)
    }

    fn update_subnet(&self, s: &Subnet) -> Result<()> {
        self.exec(
            "UPDATE subnets SET name = ?2, description = ?3, gateway_ip = ?4, enable_dhcp = ?5, \
             allocation_pools = ?6, dns_nameservers = ?7, host_routes = ?8, ipv6_ra_mode = ?9, \
             ipv6_address_mode = ?10, created_at = ?11, updated_at = ?12, revision_number = ?13 \
             WHERE id = ?1",
            params![
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
            params![id],
            sg_row,
        )
    }

    fn default_security_group(&self, tenant_id: &str) -> Result<Option<String>> {
        self.query_one(
            "SELECT id FROM security_groups WHERE tenant_id = ?1 AND is_default",
            params![tenant_id],
            |r| r.get(0),
        )
    }

    fn insert_security_group(&self, g: &SecurityGroup) -> Result<()> {
        self.exec(
            "INSERT INTO security_groups (id, tenant_id, is_default) VALUES (?1, ?2, ?3)",
            params![g.id, g.tenant_id, g.is_default],
        )?;
        self.save_security_group(g)
    }

    fn save_security_group(&self, g: &SecurityGroup) -> Result<()> {
        self.exec(
            "UPDATE security_groups SET name = ?2, description = ?3, stateful = ?4,              created_at = ?5, updated_at = ?6, revision_number = ?7 WHERE id = ?1",
            params![
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
            params![id],
            qos_policy_row,
        )
    }

    fn port_qos_policy(&self, port_id: &str) -> Result<Option<QosPolicy>> {
        self.query_one(
            &format!("SELECT {QOS_POLICY_COLS} FROM qos_policies WHERE port_id = ?1"),
            params![port_id],
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
            params![
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
        self.exec("DELETE FROM qos_policies WHERE id = ?1", params![id])
            .map(drop)
    }

    fn qos_rules(&self, policy_id: Option<&str>) -> Result<Vec<QosRule>> {
        self.query(
            &format!(
                "SELECT id, policy_id, type, direction, rate, burst FROM qos_rules \
                 WHERE {} ORDER BY seq",
                eq("policy_id", 1, policy_id)
            ),
            params![policy_id],
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
            params![
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
        self.exec("DELETE FROM qos_rules WHERE id = ?1", params![id])
            .map(drop)
    }

    fn agents(&self, id: Option<&str>) -> Result<Vec<Agent>> {
        self.query(
            &format!(
                "SELECT {AGENT_COLS} FROM agents WHERE {} ORDER BY rowid",
                eq("id", 1, id)
            ),
            params![id],
            agent_row,
        )
    }

    fn agent_on(&self, agent_type: &str, host: &str) -> Result<Option<Agent>> {
        self.query_one(
            &format!("SELECT {AGENT_COLS} FROM agents WHERE agent_type = ?1 AND host = ?2"),
            params![agent_type, host],
            agent_row,
        )
    }

    fn save_agent(&self, a: &Agent) -> Result<()> {
        self.exec(
            "INSERT INTO agents (id, agent_type, binary_name, host, topic, admin_state_up, \
             description, configurations, created_at, started_at, heartbeat_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (id) DO UPDATE SET binary_name = ?3, topic = ?5, admin_state_up = ?6, \
             description = ?7, configurations = ?8, started_at = ?10, heartbeat_at = ?11",
            params![
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

    fn delete_agent(&self, id: &str) -> Result<()> {
        self.exec("DELETE FROM agents WHERE id = ?1", params![id])
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
            params![policy_id, except_tenant],
            |r| r.get(0),
        )?;
        if let Some(id) = net {
            return Ok(Some(("network", id)));
        }
        let port: Option<String> = self.query_one(
            "SELECT p.id FROM ports p JOIN networks n ON n.id = p.network_id \
             WHERE p.qos_policy_id = ?1 \
             AND (?2 IS NULL OR COALESCE(p.tenant_id, n.tenant_id) <> ?2) LIMIT 1",
            params![policy_id, except_tenant],
            |r| r.get(0),
        )?;
        Ok(port.map(|id| ("port", id)))
    }

    fn default_qos_policy(&self, tenant_id: &str) -> Result<Option<String>> {
        self.query_one(
            "SELECT id FROM qos_policies WHERE tenant_id = ?1 AND is_default",
            params![tenant_id],
            |r| r.get(0),
        )
    }

    fn delete_security_group(&self, id: &str) -> Result<()> {
        self.exec("DELETE FROM security_groups WHERE id = ?1", params![id])
            .map(drop)
    }

    fn sg_rules(&self, group: Option<&str>, id: Option<&str>) -> Result<Vec<SgRule>> {
        self.query(
            &format!(
                "SELECT {SG_RULE_COLS} FROM security_group_rules WHERE {} AND {} ORDER BY seq",
                eq("security_group_id", 1, group),
                eq("id", 2, id)
            ),
            params![group, id],
            sg_rule_row,
        )
    }

    fn insert_sg_rule(&self, r: &SgRule) -> Result<()> {
        self.exec(
            "INSERT INTO security_group_rules (id, security_group_id, tenant_id, direction,              ethertype, protocol, port_range_min, port_range_max, remote_ip_prefix,              remote_group_id, description, created_at, updated_at, revision_number)              VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
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
            params![r.id, r.description, r.updated_at, r.revision_number],
        )
        .map(drop)
    }

    fn delete_sg_rule(&self, id: &str) -> Result<()> {
        self.exec(
            "DELETE FROM security_group_rules WHERE id = ?1",
            params![id],
        )
        .map(drop)
    }

    fn security_group_ports(&self, group: &str) -> Result<Vec<String>> {
        self.query(
            "SELECT port_id FROM port_security_groups WHERE security_group_id = ?1 ORDER BY seq",
            params![group],
            |r| r.get(0),
        )
    }

    fn security_group_addresses(&self, group: &str) -> Result<Vec<String>> {
        self.query(
            "SELECT a.ip_address FROM port_security_groups g \
             JOIN ip_allocations a ON a.port_id = g.port_id WHERE g.security_group_id = ?1 \
             UNION SELECT p.ip_address FROM port_security_groups g \
             JOIN port_address_pairs p ON p.port_id = g.port_id WHERE g.security_group_id = ?1",
            params![group],
            |r| r.get(0),
        )
    }

    fn security_usage(&self, tenant_id: &str) -> Result<(u64, u64)> {
        let count = |sql: &str| -> Result<u64> {
            self.query_one(sql, params![tenant_id], |r| r.get::<_, i64>(0))
                .map(|n| n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
        };
        Ok((
            count("SELECT COUNT(*) FROM security_groups WHERE tenant_id = ?1")?,
            count("SELECT COUNT(*) FROM security_group_rules WHERE tenant_id = ?1")?,
        ))
    }

    fn delete_subnet(&self, subnet_id: &str) -> Result<()> {
        self.exec("DELETE FROM subnets WHERE id = ?1", params![subnet_id])
            .map(drop)
    }

    fn subnet_allocations(&self, subnet_id: &str) -> Result<Vec<(String, String)>> {
        self.query(
            "SELECT ip_address, port_id FROM ip_allocations WHERE subnet_id = ?1 ORDER BY seq",
            params![subnet_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    fn network_seq(&self, tenant_id: &str, net_id: &str) -> Result<Option<i64>> {
        self.query_one(
            "SELECT seq FROM networks WHERE id = ?1 AND tenant_id = ?2",
            params![net_id, tenant_id],
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
        self.query(&sql, params![tenant_id, from, limit_param(limit)], |r| {
            Ok((r.get(r.as_ref().column_count() - 1)?, network_row(r)?))
        })
    }

    fn port_seq(&self, net_id: &str, port_id: &str) -> Result<Option<i64>> {
        self.query_one(
            "SELECT seq FROM ports WHERE id = ?1 AND network_id = ?2",
            params![port_id, net_id],
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
        self.query(&sql, params![net_id, from, limit_param(limit)], |r| {
            Ok((r.get(r.as_ref().column_count() - 1)?, port_row(r)?))
        })
    }

    fn tenant_usage(&self, tenant_id: &str) -> Result<Usage> {
        self.query_one(
            "SELECT (SELECT COUNT(*) FROM networks WHERE tenant_id = ?1), \
                    (SELECT COUNT(*) FROM ports WHERE tenant_id = ?1), \
                    (SELECT COUNT(*) FROM interfaces WHERE tenant_id = ?1), \
                    (SELECT COUNT(*) FROM subnets WHERE tenant_id = ?1)",
            params![tenant_id],
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
fn networks_page_sql(from: Option<i64>, reverse: bool) -> String {
    format!(
        "SELECT {NETWORK_COLS}, seq FROM networks WHERE tenant_id = ?1 AND {} LIMIT ?3",
        keyset("seq", from, reverse)
    )
}

/// A page of a network's ports; the `seq` is the last column.
fn ports_page_sql(from: Option<i64>, reverse: bool) -> String {
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

fn qos_policy_row(r: &Row<'_>) -> rusqlite::Result<QosPolicy> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a write transaction and commits it.
    fn write(s: &SqliteStore, f: impl FnOnce(&dyn Tx)) {
        let mut f = Some(f);
        s.write(&mut |tx| {
            (f.take().unwrap())(tx);
            Ok(None)
        })
        .unwrap();
    }

    /// Runs `f` in a read transaction.
    fn read(s: &SqliteStore, f: impl FnOnce(&dyn Tx)) {
        let mut f = Some(f);
        s.read(&mut |tx| {
            (f.take().unwrap())(tx);
            Ok(())
        })
        .unwrap();
    }

    fn net(id: &str, tenant: &str, vlan: u16) -> Network {
        Network {
            id: id.into(),
            tenant_id: tenant.into(),
            name: format!("name-{id}"),
            vlan,
            network_type: NetworkType::Vlan,
            physnet: Some("physnet1".into()),
        }
    }

    #[test]
    fn every_connection_keeps_its_plans_whatever_the_bound_values() {
        // Without query planner stability, SQLite parses and plans a cached statement again
        // whenever a parameter it compared against a partial index gets a new value: a show
        // cost three times what it should.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let s = SqliteStore::open(&path).unwrap();
        let qpsg = rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG;
        assert!(lock(&s.writer).conn.db_config(qpsg).unwrap());
        assert!(SqliteStore::open_reader(&path)
            .unwrap()
            .db_config(qpsg)
            .unwrap());
    }

    #[test]
    fn file_is_created_with_its_schema_and_reopened_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as u32);
            write(&s, |tx| tx.insert_network(&net("n1", "t", 1)).unwrap());
        }
        let s = SqliteStore::open(&path).unwrap();
        read(&s, |tx| {
            assert_eq!(tx.all_networks().unwrap(), vec![net("n1", "t", 1)]);
        });
        let mode: String = lock(&s.writer)
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(err, ControlError::Store { .. }), "{err:?}");
    }

    #[test]
    fn dropped_transaction_rolls_back() {
        let s = SqliteStore::open_in_memory().unwrap();
        let failed = s.write(&mut |tx| {
            tx.insert_network(&net("n1", "t", 1))?;
            Err(ControlError::Invalid {
                reason: "no".into(),
            })
        });
        assert!(failed.is_err());
        read(&s, |tx| assert!(tx.all_networks().unwrap().is_empty()));
    }

    #[test]
    fn free_vlan_is_the_lowest_unused_in_range() {
        let s = SqliteStore::open_in_memory().unwrap();
        write(&s, |tx| {
            assert_eq!(tx.free_vlan("physnet1", 1, 4094).unwrap(), Some(1));
            tx.insert_network(&net("a", "t", 1)).unwrap();
            tx.insert_network(&net("b", "t", 2)).unwrap();
            tx.insert_network(&net("c", "t", 4)).unwrap();
            assert_eq!(tx.free_vlan("physnet1", 1, 4094).unwrap(), Some(3));
            tx.insert_network(&net("d", "t", 3)).unwrap();
            assert_eq!(tx.free_vlan("physnet1", 1, 4094).unwrap(), Some(5));
            assert_eq!(tx.free_vlan("physnet1", 1, 4).unwrap(), None);
            assert_eq!(tx.free_vlan("physnet1", 10, 12).unwrap(), Some(10));
        });
    }

    #[test]
    fn a_segment_is_unique_per_physical_network() {
        let s = SqliteStore::open_in_memory().unwrap();
        write(&s, |tx| {
            tx.insert_network(&net("a", "t", 7)).unwrap();
            let other = Network {
                physnet: Some("physnet2".into()),
                ..net("b", "t", 7)
            };
            tx.insert_network(&other).unwrap();
            let flat = |id: &str| Network {
                vlan: 0,
                network_type: NetworkType::Flat,
                ..net(id, "t", 1)
            };
            tx.insert_network(&flat("f1")).unwrap();
            assert!(matches!(
                tx.insert_network(&flat("f2")),
                Err(ControlError::Conflict { .. })
            ));
            let local = |id: &str| Network {
                vlan: 0,
                network_type: NetworkType::Local,
                physnet: None,
                ..net(id, "t", 1)
            };
            tx.insert_network(&local("l1")).unwrap();
            tx.insert_network(&local("l2")).unwrap();
            assert_eq!(
                tx.segment_holder("physnet2", 7).unwrap().as_deref(),
                Some("b")
            );
            assert_eq!(
                tx.segment_holder("physnet1", 0).unwrap().as_deref(),
                Some("f1")
            );
            assert_eq!(tx.free_vlan("physnet2", 7, 9).unwrap(), Some(8));
            assert_eq!(tx.free_vlan("physnet3", 7, 9).unwrap(), Some(7));
            // The schema's rule: a flat network has a physical network.
            let bad = Network {
                physnet: None,
                ..flat("f3")
            };
            assert!(tx.insert_network(&bad).is_err());
            let back = tx.network_records(Some("l1")).unwrap().pop().unwrap();
            assert_eq!(
                (back.network.network_type, back.network.physnet),
                (NetworkType::Local, None)
            );
        });
    }

    #[test]
    fn bare_rule_prefixes_take_their_host_length() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys=ON").unwrap();
        for sql in &MIGRATIONS[..13] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 13).unwrap();
        conn.execute_batch(
            "INSERT INTO security_groups (id, tenant_id) VALUES ('g', 't'); \
             INSERT INTO security_group_rules (id, security_group_id, tenant_id, direction, \
                 ethertype, remote_ip_prefix) VALUES \
               ('a', 'g', 't', 'ingress', 'IPv4', '198.18.0.5'), \
               ('b', 'g', 't', 'ingress', 'IPv6', '2001:db8::5'), \
               ('c', 'g', 't', 'ingress', 'IPv4', '198.18.0.5/24'), \
               ('d', 'g', 't', 'ingress', 'IPv4', NULL);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let mut q = conn
            .prepare("SELECT remote_ip_prefix FROM security_group_rules ORDER BY id")
            .unwrap();
        let got: Vec<Option<String>> = q
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            got,
            [
                Some("198.18.0.5/32".to_owned()),
                Some("2001:db8::5/128".to_owned()),
                Some("198.18.0.5/24".to_owned()),
                None
            ]
        );
    }

    #[test]
    fn the_provider_migration_keeps_every_network_and_what_references_it() {
        // A database at schema 9 with a network, a port and a subnet on it.
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys=ON").unwrap();
        for sql in &MIGRATIONS[..9] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 9).unwrap();
        conn.execute_batch(
            "INSERT INTO networks (id, tenant_id, name, vlan, mtu) VALUES ('n', 't', 'net', 42, 1400); \
             INSERT INTO ports (id, network_id, state) VALUES ('p', 'n', 'ACTIVE');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
        let (vlan, ty, physnet, mtu): (u16, String, String, u32) = conn
            .query_row(
                "SELECT vlan, network_type, physical_network, mtu FROM networks WHERE id = 'n'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            (vlan, ty.as_str(), physnet.as_str(), mtu),
            (42, "vlan", "physnet1", 1400)
        );
        let ports: u32 = conn
            .query_row(
                "SELECT count(*) FROM ports WHERE network_id = 'n'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(ports, 1, "the rebuild deleted no port");
        let fk: bool = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(fk, "foreign keys are on again");
        // Deleting the network still cascades to its ports, and the log still records it.
        conn.execute_batch("DELETE FROM networks WHERE id = 'n'")
            .unwrap();
        let left: u32 = conn
            .query_row("SELECT count(*) FROM ports", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        let logged: u32 = conn
            .query_row(
                "SELECT count(*) FROM changes WHERE kind = 'network' AND id = 'n'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(logged >= 1);
    }

    #[test]
    fn quantum_limits_become_policies_of_their_ports() {
        // Schema 12: a network whose policy limits what its ports receive (500 kbit/s) and send,
        // a port with a Quantum limit (500 packets/s) and one without.
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys=ON").unwrap();
        for sql in &MIGRATIONS[..12] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 12).unwrap();
        conn.execute_batch(
            "INSERT INTO qos_policies (id, tenant_id) VALUES ('np', 't'); \
             INSERT INTO qos_rules (id, policy_id, type, direction, rate, burst) VALUES \
                 ('r1', 'np', 'bandwidth_limit', 'ingress', 500, 50), \
                 ('r2', 'np', 'bandwidth_limit', 'egress', 800, 0); \
             INSERT INTO networks (id, tenant_id, name, vlan, physical_network, qos_policy_id) \
                 VALUES ('n', 't', 'net', 42, 'physnet1', 'np'); \
             INSERT INTO ports (id, network_id, state) VALUES ('p', 'n', 'ACTIVE'), \
                 ('p2', 'n', 'ACTIVE'); \
             INSERT INTO port_qos (port_id, rate_bps, burst_bits, rate_pps, burst_packets) \
                 VALUES ('p', 0, 0, 500, 50);",
        )
        .unwrap();
        let s = SqliteStore::init(conn, None).unwrap();
        read(&s, |tx| {
            let rules = |id: &str| {
                let mut r: Vec<_> = tx
                    .qos_rules(Some(id))
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.rule_type, r.direction, r.rate, r.burst))
                    .collect();
                r.sort_by_key(|r| (r.1 as u8, r.0 as u8));
                r
            };
            use QosDirection::*;
            use QosRuleType::*;
            assert_eq!(
                rules("np"),
                [
                    (BandwidthLimit, Egress, 800_000, 0),
                    (BandwidthLimit, Ingress, 500_000, 50_000)
                ],
                "Neutron's values are kept in bits"
            );
            let own = tx.port_qos_policy("p").unwrap().expect("p has a policy");
            assert_eq!(
                (own.tenant_id.as_str(), own.port_id.as_deref()),
                ("t", Some("p"))
            );
            assert_eq!(
                rules(&own.id),
                [
                    (PacketRateLimit, Egress, 500, 50),
                    (BandwidthLimit, Ingress, 500_000, 50_000)
                ]
            );
            let on = |port: &str| tx.port_records(Some(port)).unwrap()[0].clone();
            assert_eq!(on("p").attrs.qos_policy_id, Some(own.id.clone()));
            assert_eq!(on("p2").attrs.qos_policy_id, None);
            assert!(tx.port_qos_policy("p2").unwrap().is_none());
        });
        // The port's policy goes with it.
        write(&s, |tx| tx.delete_network("n").unwrap());
        read(&s, |tx| {
            let left: Vec<String> = tx
                .qos_policies(None)
                .unwrap()
                .into_iter()
                .map(|p| p.id)
                .collect();
            assert_eq!(left, ["np"]);
        });
    }

    #[test]
    fn schema_rejects_duplicate_vlans_and_attachments() {
        let s = SqliteStore::open_in_memory().unwrap();
        write(&s, |tx| {
            tx.insert_network(&net("a", "t", 7)).unwrap();
            assert!(matches!(
                tx.insert_network(&net("b", "t", 7)),
                Err(ControlError::Conflict { .. })
            ));
            tx.upsert_interface(&Interface {
                id: "vif".into(),
                tenant_id: "t".into(),
                device: "tap0".into(),
            })
            .unwrap();
            let port = |id: &str, att: Option<&str>| Port {
                id: id.into(),
                network_id: "a".into(),
                state: PortState::Active,
                attachment: att.map(str::to_owned),
            };
            tx.insert_port(&port("p1", Some("vif"))).unwrap();
            assert!(tx.insert_port(&port("p2", Some("vif"))).is_err());
            // Unregistered interfaces cannot be referenced.
            assert!(tx.insert_port(&port("p3", Some("nope"))).is_err());
            assert_eq!(tx.plugged_ports().unwrap().len(), 1);
        });
    }

    #[test]
    fn upsert_never_moves_an_interface_to_another_tenant() {
        let s = SqliteStore::open_in_memory().unwrap();
        write(&s, |tx| {
            let iface = |tenant: &str, dev: &str| Interface {
                id: "vif".into(),
                tenant_id: tenant.into(),
                device: dev.into(),
            };
            tx.upsert_interface(&iface("a", "tap0")).unwrap();
            tx.upsert_interface(&iface("a", "tap1")).unwrap();
            tx.upsert_interface(&iface("b", "tap2")).unwrap();
            assert_eq!(tx.interface("vif").unwrap(), Some(iface("a", "tap1")));
        });
    }

    #[test]
    fn pages_seek_to_their_marker_through_the_index() {
        let s = SqliteStore::open_in_memory().unwrap();
        for reverse in [false, true] {
            for (sql, index) in [
                (networks_page_sql(Some(7), reverse), "networks_by_tenant"),
                (ports_page_sql(Some(7), reverse), "ports_by_network"),
            ] {
                let w = lock(&s.writer);
                let mut stmt = w
                    .conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .unwrap();
                let plan: Vec<String> = stmt
                    .query_map(params!["x", 7, 10], |r| r.get(3))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                let want = if reverse { "seq<?" } else { "seq>?" };
                assert!(
                    plan.iter().any(|p| p.contains(index) && p.contains(want)),
                    "{sql}: {plan:?}"
                );
            }
        }
    }

    #[test]
    fn pages_walk_both_ways_from_a_marker() {
        let s = SqliteStore::open_in_memory().unwrap();
        write(&s, |tx| {
            for i in 1..=5u16 {
                tx.insert_network(&net(&format!("n{i}"), "t", i)).unwrap();
            }
            tx.insert_network(&net("other", "u", 9)).unwrap();
            let ids = |v: Vec<(i64, Network)>| v.into_iter().map(|(_, n)| n.id).collect::<Vec<_>>();
            assert_eq!(
                ids(tx.networks_page("t", None, false, 2).unwrap()),
                ["n1", "n2"]
            );
            let m = tx.network_seq("t", "n2").unwrap();
            assert_eq!(
                ids(tx.networks_page("t", m, false, 2).unwrap()),
                ["n3", "n4"]
            );
            let m = tx.network_seq("t", "n4").unwrap();
            assert_eq!(
                ids(tx.networks_page("t", m, true, 9).unwrap()),
                ["n3", "n2", "n1"]
            );
            assert_eq!(ids(tx.networks_page("t", None, true, 1).unwrap()), ["n5"]);
            assert_eq!(tx.network_seq("t", "other").unwrap(), None);
        });
    }

    #[test]
    fn deleting_a_network_deletes_its_ports() {
        let s = SqliteStore::open_in_memory().unwrap();
        write(&s, |tx| {
            tx.insert_network(&net("a", "t", 1)).unwrap();
            tx.insert_port(&Port {
                id: "p".into(),
                network_id: "a".into(),
                state: PortState::Down,
                attachment: None,
            })
            .unwrap();
            tx.delete_network("a").unwrap();
            assert!(tx.ports("a").unwrap().is_empty());
            assert!(tx.port_by_attachment("x").unwrap().is_none());
        });
    }

    /// Closes a write's revision and returns what it touched.
    fn touched(s: &SqliteStore, f: impl FnOnce(&dyn Tx)) -> Option<(u64, Vec<Touched>)> {
        let mut f = Some(f);
        let mut out = None;
        s.write(&mut |tx| {
            (f.take().unwrap())(tx);
            out = tx.close_revision()?;
            Ok(None)
        })
        .unwrap();
        out
    }

    #[test]
    fn the_revision_log_names_what_each_write_touched() {
        let s = SqliteStore::open_in_memory().unwrap();
        let port = Port {
            id: "p".into(),
            network_id: "a".into(),
            state: PortState::Down,
            attachment: None,
        };
        let (r1, t) = touched(&s, |tx| {
            tx.insert_network(&net("a", "t", 1)).unwrap();
            tx.insert_port(&port).unwrap();
        })
        .unwrap();
        assert_eq!(t, [Touched::Network("a".into()), Touched::Port("p".into())]);
        // A rename touches nothing the data plane sees: no revision.
        assert!(touched(&s, |tx| tx.rename_network("a", "b").unwrap()).is_none());
        let (r2, t) = touched(&s, |tx| tx.set_port_state("p", PortState::Active).unwrap()).unwrap();
        assert_eq!((r2, t), (r1 + 1, vec![Touched::Port("p".into())]));
        // Deleting a network logs its ports too (the cascade fires the port triggers).
        let (_, t) = touched(&s, |tx| tx.delete_network("a").unwrap()).unwrap();
        assert!(t.contains(&Touched::Port("p".into())), "{t:?}");
        assert!(t.contains(&Touched::Network("a".into())), "{t:?}");
        read(&s, |tx| assert_eq!(tx.revision().unwrap(), r2 + 1));
    }

    #[test]
    fn concurrent_writes_share_commits_and_keep_their_order_and_their_failures() {
        use std::sync::atomic::AtomicU64;
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(SqliteStore::open(&dir.path().join("q.db")).unwrap());
        // Steps run in revision order, and only for committed writes.
        let last_step = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (s, last_step) = (Arc::clone(&s), Arc::clone(&last_step));
                std::thread::spawn(move || {
                    for i in 0..40u16 {
                        let id = format!("n{t}-{i}");
                        let vlan = 1 + t * 40 + i;
                        let fail = i % 10 == 9;
                        let ran = Arc::new(AtomicU64::new(0));
                        let r = s.write(&mut |tx| {
                            tx.insert_network(&net(&id, "t", vlan))?;
                            let r = tx.close_revision()?.unwrap().0;
                            if fail {
                                return Err(ControlError::Invalid {
                                    reason: "no".into(),
                                });
                            }
                            let (last_step, ran) = (Arc::clone(&last_step), Arc::clone(&ran));
                            Ok(Some(Box::new(move || {
                                let before = last_step.swap(r, Ordering::SeqCst);
                                assert!(before < r, "step of revision {r} after {before}");
                                ran.store(r, Ordering::SeqCst);
                            })))
                        });
                        assert_eq!(r.is_err(), fail, "{id}: {r:?}");
                        // A write is answered after its step has run, and only then.
                        assert_eq!(ran.load(Ordering::SeqCst) != 0, !fail, "{id}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        read(&s, |tx| {
            let nets = tx.all_networks().unwrap();
            assert_eq!(
                nets.len(),
                8 * 36,
                "every write that succeeded, none that failed"
            );
            assert!(nets
                .iter()
                .all(|n| !n.id.ends_with("-9") && !n.id.ends_with("-19")));
            assert_eq!(tx.revision().unwrap(), 8 * 36);
        });
        assert_eq!(last_step.load(Ordering::SeqCst), 8 * 36);
        // A write that panics leaves nothing behind, and the store goes on.
        let s2 = Arc::clone(&s);
        let panicked = std::thread::spawn(move || {
            write(&s2, |tx| {
                tx.insert_network(&net("boom", "t", 4000)).unwrap();
                panic!("a bug in a write");
            })
        })
        .join();
        assert!(panicked.is_err());
        write(&s, |tx| {
            tx.insert_network(&net("after", "t", 4001)).unwrap()
        });
        let ids = network_ids(&s);
        assert!(ids.contains(&"after".to_owned()) && !ids.contains(&"boom".to_owned()));
    }

    #[test]
    fn a_failed_first_write_ends_the_transaction_and_a_failed_member_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(SqliteStore::open(&dir.path().join("q.db")).unwrap());
        let no = || {
            Err(ControlError::Invalid {
                reason: "no".into(),
            })
        };
        // A pretend waiter keeps every group open after its writes.
        s.waiting.fetch_add(1, Ordering::SeqCst);
        // The write that opens the transaction fails: the transaction ends, no group is left.
        let r = s.write(&mut |tx| {
            tx.insert_network(&net("x", "t", 1))?;
            no()
        });
        assert!(r.is_err());
        {
            let w = lock(&s.writer);
            assert!(w.group.is_none() && w.conn.is_autocommit());
        }
        // A write opens a group and waits for its commit; a member that joins it fails alone.
        let s2 = Arc::clone(&s);
        let a = std::thread::spawn(move || {
            write(&s2, |tx| tx.insert_network(&net("a", "t", 2)).unwrap());
        });
        while lock(&s.writer).group.is_none() {
            std::thread::yield_now();
        }
        let r = s.write(&mut |tx| {
            tx.insert_network(&net("b", "t", 3))?;
            no()
        });
        assert!(r.is_err());
        // The last writer in commits for the group.
        s.waiting.fetch_sub(1, Ordering::SeqCst);
        write(&s, |tx| tx.insert_network(&net("c", "t", 4)).unwrap());
        a.join().unwrap();
        let mut ids = network_ids(&s);
        ids.sort();
        assert_eq!(ids, ["a", "c"]);
    }

    #[test]
    fn a_panicking_commit_step_does_not_stop_later_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(SqliteStore::open(&dir.path().join("q.db")).unwrap());
        let s2 = Arc::clone(&s);
        let panicked = std::thread::spawn(move || {
            s2.write(&mut |tx| {
                tx.insert_network(&net("a", "t", 1))?;
                Ok(Some(Box::new(|| panic!("a bug after the commit"))))
            })
        })
        .join();
        // The step's panic is its own: the write committed and is answered.
        assert!(matches!(panicked, Ok(Ok(()))), "{panicked:?}");
        write(&s, |tx| tx.insert_network(&net("b", "t", 2)).unwrap());
        read(&s, |tx| {
            assert_eq!(tx.all_networks().unwrap().len(), 2, "both committed")
        });
    }

    /// The ids of every stored network.
    fn network_ids(s: &SqliteStore) -> Vec<String> {
        let mut ids = Vec::new();
        read(s, |tx| {
            ids = tx
                .all_networks()
                .unwrap()
                .into_iter()
                .map(|n| n.id)
                .collect();
        });
        ids
    }

    #[test]
    fn a_write_after_a_transaction_left_open_rolls_it_back_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("q.db")).unwrap();
        // What a failed COMMIT followed by a failed ROLLBACK leaves: the writer's transaction
        // open, with a change in it that was never acknowledged.
        {
            let w = lock(&s.writer);
            w.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            SqliteTx { tx: &w.conn }
                .insert_network(&net("lost", "t", 1))
                .unwrap();
            assert!(!w.conn.is_autocommit());
        }
        write(&s, |tx| tx.insert_network(&net("b", "t", 2)).unwrap());
        assert_eq!(
            network_ids(&s),
            ["b"],
            "the unacknowledged change is gone, the new one committed"
        );
        // And it is durable: a new process sees it.
        drop(s);
        let s = SqliteStore::open(&dir.path().join("q.db")).unwrap();
        read(&s, |tx| assert_eq!(tx.all_networks().unwrap().len(), 1));
    }

    #[test]
    fn a_pooled_reader_inside_a_transaction_is_dropped_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("q.db")).unwrap();
        write(&s, |tx| tx.insert_network(&net("a", "t", 1)).unwrap());
        read(&s, |tx| assert_eq!(tx.all_networks().unwrap().len(), 1));
        // A reader whose ROLLBACK failed, pinned to the snapshot before "b".
        let stale = SqliteStore::open_reader(s.path.as_ref().unwrap()).unwrap();
        stale
            .execute_batch("BEGIN DEFERRED; SELECT count(*) FROM networks;")
            .unwrap();
        assert!(!stale.is_autocommit());
        lock(&s.readers).push(stale);
        write(&s, |tx| tx.insert_network(&net("b", "t", 2)).unwrap());
        // The read neither fails on BEGIN nor sees the old snapshot.
        read(&s, |tx| assert_eq!(tx.all_networks().unwrap().len(), 2));
        assert!(lock(&s.readers).iter().all(Connection::is_autocommit));
    }

    #[test]
    fn ports_are_found_by_id_prefix() {
        let s = SqliteStore::open_in_memory().unwrap();
        write(&s, |tx| {
            tx.insert_network(&net("a", "t", 1)).unwrap();
            for id in ["abc-1", "abc-2", "abd-1"] {
                tx.insert_port(&Port {
                    id: id.into(),
                    network_id: "a".into(),
                    state: PortState::Down,
                    attachment: None,
                })
                .unwrap();
            }
            assert_eq!(tx.port_ids_with_prefix("abc").unwrap(), ["abc-1", "abc-2"]);
            assert!(tx.port_ids_with_prefix("x").unwrap().is_empty());
        });
    }
}
