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
//! A migration may have a backfill (`BACKFILLS`): data its schema change leaves
//! wrong in an existing database, put right in the same transaction, right
//! after it, only when it runs on that database.

use std::path::Path;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::{ControlError, Result};
use crate::store::sql::sqlite_err;
use crate::store::tx::{Conn, SqlTx};
use crate::store::{AfterCommit, Store, Tx};

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
    include_str!("../../migrations/0016_port_status.sql"),
    include_str!("../../migrations/0017_hosts.sql"),
];

/// Data a migration's schema change leaves wrong in an existing database, put right once: each
/// runs right after the migration of its version, in the same transaction, whenever that
/// migration runs (on a new database it finds nothing to do). A database already past that
/// version is not repaired: what it holds may since have been asked for.
const BACKFILLS: &[(usize, &str)] = &[(
    6,
    include_str!("../../migrations/0006_backfill_default_groups.sql"),
)];

/// How much of the database file each connection maps.
const MMAP_BYTES: u64 = 1 << 30;
/// Prepared statements kept per connection: more than the store has.
const STATEMENT_CACHE: usize = 256;
/// Each connection's page cache, in KiB.
const CACHE_KIB: u32 = 16 * 1024;

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
        let conn = Connection::open(path).map_err(sqlite_err)?;
        Self::init(conn, Some(path.to_owned()))
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(sqlite_err)?;
        Self::init(conn, None)
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(sqlite_err)?;
        if path.is_some() {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(sqlite_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(ControlError::Store {
                    detail: format!("could not enable WAL journal (got {mode})"),
                });
            }
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(sqlite_err)?;
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
            .map_err(sqlite_err)
    }

    fn open_reader(path: &Path) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(sqlite_err)?;
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(sqlite_err)?;
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
    .map_err(sqlite_err)?;
    // Statement journals (a copy of every page a statement or a group member's savepoint
    // changes) and sorts stay in memory: in temporary files they cost a write(2) per page, more
    // pages as the B-trees deepen. A sort that no index serves then stays in memory too (the
    // largest is the start-up read of every port).
    conn.execute_batch(&format!(
        "PRAGMA mmap_size={MMAP_BYTES}; PRAGMA cache_size=-{CACHE_KIB}; PRAGMA temp_store=MEMORY;"
    ))
    .map_err(sqlite_err)
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
    exec_cached(conn, "BEGIN DEFERRED").map_err(sqlite_err)?;
    let read = ReadTx(conn);
    f(&SqlTx {
        conn: Conn::Sqlite(read.0),
    })
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
            return (Err(sqlite_err(e)), None);
        }
    }
    let undo = |conn: &Connection| {
        if first {
            exec_cached(conn, "ROLLBACK")
        } else {
            rollback_member(conn)
        }
    };
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        f(&SqlTx {
            conn: Conn::Sqlite(conn),
        })
    }));
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
            (result.and(Err(sqlite_err(e))), panic)
        }
    }
}

/// A database file at schema `version` (the migrations up to it applied, as a binary of that
/// version left it), holding the rows `sql` inserts: for tests of what later migrations do to
/// existing data.
#[cfg(test)]
pub(crate) fn create_at_schema(path: &Path, version: usize, sql: &str) {
    let conn = Connection::open(path).unwrap();
    for m in &MIGRATIONS[..version] {
        conn.execute_batch(m).unwrap();
    }
    for (_, backfill) in BACKFILLS.iter().filter(|(v, _)| *v <= version) {
        conn.execute_batch(backfill).unwrap();
    }
    let version = u32::try_from(version).unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
    conn.execute_batch(sql).unwrap();
}

fn migrate(conn: &mut Connection) -> Result<()> {
    // A migration may rebuild a table others reference (SQLite's procedure for changing a
    // column's constraints): foreign keys are off while migrations run (the pragma has no
    // effect inside a transaction), checked before the commit, and on again after.
    conn.execute_batch("PRAGMA foreign_keys=OFF")
        .map_err(sqlite_err)?;
    let done = migrate_all(conn);
    conn.execute_batch("PRAGMA foreign_keys=ON")
        .map_err(sqlite_err)?;
    done
}

fn migrate_all(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_err)?;
    let current: u32 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    let current = current as usize;
    super::known_schema(current, MIGRATIONS.len())?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).map_err(sqlite_err)?;
        for (_, backfill) in BACKFILLS.iter().filter(|(v, _)| *v == i + 1) {
            tx.execute_batch(backfill).map_err(sqlite_err)?;
        }
        let version = u32::try_from(i + 1).unwrap_or(u32::MAX);
        tx.pragma_update(None, "user_version", version)
            .map_err(sqlite_err)?;
        tracing::info!(version = i + 1, "applied store migration");
    }
    // Only after migrations ran (the check reads every table).
    let broken: Option<String> = if current < MIGRATIONS.len() {
        tx.query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(sqlite_err)?
    } else {
        None
    };
    if let Some(table) = broken {
        return Err(ControlError::Store {
            detail: format!("a migration left rows of {table} referencing nothing"),
        });
    }
    tx.commit().map_err(sqlite_err)
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
                exec_cached(&w.conn, "BEGIN IMMEDIATE").map_err(sqlite_err)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interface, Network, NetworkType, Port, PortState};
    use crate::qos::{QosDirection, QosRuleType};
    use crate::store::tx::{networks_page_sql, ports_page_sql};
    use crate::store::Touched;
    use rusqlite::params;

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
    fn the_hosts_migration_keeps_interfaces_their_plugs_and_their_log() {
        // Schema 16: an interface plugged into a port, and a host's report.
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys=ON").unwrap();
        for sql in &MIGRATIONS[..16] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 16).unwrap();
        conn.execute_batch(
            "INSERT INTO networks (id, tenant_id, name, vlan, physical_network) \
                 VALUES ('n', 't', 'net', 42, 'physnet1'); \
             INSERT INTO interfaces (id, tenant_id, device) VALUES ('vif', 't', 'tap0'); \
             INSERT INTO ports (id, network_id, state, interface_id) \
                 VALUES ('p', 'n', 'ACTIVE', 'vif'); \
             INSERT INTO port_status (port_id, host, status) VALUES ('p', 'h', 'ACTIVE');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let (device, host, plugged): (String, String, u32) = conn
            .query_row(
                "SELECT device, host, (SELECT count(*) FROM ports WHERE interface_id = i.id) \
                 FROM interfaces i WHERE id = 'vif'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((device.as_str(), host.as_str(), plugged), ("tap0", "", 1));
        // One device name per host; the same name on two hosts.
        conn.execute_batch(
            "INSERT INTO interfaces (id, tenant_id, device, host) VALUES ('a', 't', 'tap1', 'h1'); \
             INSERT INTO interfaces (id, tenant_id, device, host) VALUES ('b', 't', 'tap1', 'h2');",
        )
        .unwrap();
        assert!(conn
            .execute_batch(
                "INSERT INTO interfaces (id, tenant_id, device, host) VALUES ('c', 't', 'tap1', 'h1')"
            )
            .is_err());
        // The plug still holds the interface, and the revision log still records it.
        assert!(conn
            .execute_batch("DELETE FROM interfaces WHERE id = 'vif'")
            .is_err());
        let logged: u32 = conn
            .query_row(
                "SELECT count(*) FROM changes WHERE kind = 'device' AND id = 'tap1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(logged, 2);
        // Reports start again: one per (port, host).
        let reports: u32 = conn
            .query_row("SELECT count(*) FROM port_status", [], |r| r.get(0))
            .unwrap();
        assert_eq!(reports, 0);
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
                host: String::new(),
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
                host: String::new(),
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
            SqlTx {
                conn: Conn::Sqlite(&w.conn),
            }
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
