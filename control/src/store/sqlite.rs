//! The SQLite store: one file, WAL journal, `synchronous=FULL`, versioned
//! migrations. All of the crate's SQL is in this module.
//!
//! # Durability
//!
//! With WAL and `synchronous=FULL` the WAL is synced at every commit, so a
//! write answered to a client survives a power loss, not only a crash of the
//! process (`NORMAL` would only guarantee the latter).
//!
//! # Migrations
//!
//! `migrations/NNNN_*.sql` are applied in order inside one transaction, and
//! `PRAGMA user_version` records how many have been applied. A database newer
//! than this binary is refused rather than guessed at.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::error::{ControlError, Result};
use crate::model::{Interface, Network, Port, PortState};
use crate::store::{Store, Tx};

/// The schema migrations, in order; the database's `user_version` is the
/// number applied.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/0001_init.sql")];

/// How long a writer waits for another connection's lock before failing.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// A [`Store`] on one SQLite connection.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up
    /// to date.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(store_err)?;
        Self::init(conn, true)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(store_err)?;
        Self::init(conn, false)
    }

    fn init(mut conn: Connection, file: bool) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(store_err)?;
        if file {
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
        migrate(&mut conn)?;
        Ok(Self { conn })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(store_err)
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
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
    tx.commit().map_err(store_err)
}

impl Store for SqliteStore {
    fn begin(&mut self, write: bool) -> Result<Box<dyn Tx + '_>> {
        let behavior = if write {
            TransactionBehavior::Immediate
        } else {
            TransactionBehavior::Deferred
        };
        let tx = self
            .conn
            .transaction_with_behavior(behavior)
            .map_err(store_err)?;
        Ok(Box::new(SqliteTx { tx }))
    }
}

struct SqliteTx<'c> {
    tx: rusqlite::Transaction<'c>,
}

fn store_err(e: rusqlite::Error) -> ControlError {
    ControlError::Store {
        detail: e.to_string(),
    }
}

const NETWORK_COLS: &str = "id, tenant_id, name, vlan";
const PORT_COLS: &str = "p.id, p.network_id, p.state, p.interface_id";
const INTERFACE_COLS: &str = "id, tenant_id, device";

fn network_row(r: &Row<'_>) -> rusqlite::Result<Network> {
    Ok(Network {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        vlan: r.get(3)?,
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

    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> Result<usize> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(store_err)?;
        stmt.execute(params).map_err(store_err)
    }
}

impl Tx for SqliteTx<'_> {
    fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().map_err(store_err)
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

    fn free_vlan(&self, min: u16, max: u16) -> Result<Option<u16>> {
        // The lowest free id is either `min` itself or one above a used id
        // whose successor is free; the UNIQUE index on `vlan` makes each
        // probe a lookup.
        self.query_one(
            "SELECT v FROM ( \
                 SELECT ?1 AS v WHERE NOT EXISTS (SELECT 1 FROM networks WHERE vlan = ?1) \
                 UNION ALL \
                 SELECT n.vlan + 1 FROM networks n \
                 WHERE n.vlan >= ?1 AND n.vlan < ?2 \
                   AND NOT EXISTS (SELECT 1 FROM networks m WHERE m.vlan = n.vlan + 1) \
             ) ORDER BY v LIMIT 1",
            params![min, max],
            |r| r.get(0),
        )
    }

    fn insert_network(&self, n: &Network) -> Result<()> {
        self.exec(
            "INSERT INTO networks (id, tenant_id, name, vlan) VALUES (?1, ?2, ?3, ?4)",
            params![n.id, n.tenant_id, n.name, n.vlan],
        )
        .map(drop)
    }

    fn rename_network(&self, net_id: &str, name: &str) -> Result<()> {
        self.exec(
            "UPDATE networks SET name = ?2 WHERE id = ?1",
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
            "INSERT INTO ports (id, network_id, state, interface_id) VALUES (?1, ?2, ?3, ?4)",
            params![p.id, p.network_id, p.state.as_str(), p.attachment],
        )
        .map(drop)
    }

    fn set_port_state(&self, port_id: &str, state: PortState) -> Result<()> {
        self.exec(
            "UPDATE ports SET state = ?2 WHERE id = ?1",
            params![port_id, state.as_str()],
        )
        .map(drop)
    }

    fn set_port_attachment(&self, port_id: &str, interface_id: Option<&str>) -> Result<()> {
        self.exec(
            "UPDATE ports SET interface_id = ?2 WHERE id = ?1",
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(id: &str, tenant: &str, vlan: u16) -> Network {
        Network {
            id: id.into(),
            tenant_id: tenant.into(),
            name: format!("name-{id}"),
            vlan,
        }
    }

    #[test]
    fn file_is_created_with_its_schema_and_reopened_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        {
            let mut s = SqliteStore::open(&path).unwrap();
            assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as u32);
            let tx = s.begin(true).unwrap();
            tx.insert_network(&net("n1", "t", 1)).unwrap();
            tx.commit().unwrap();
        }
        let mut s = SqliteStore::open(&path).unwrap();
        {
            let tx = s.begin(false).unwrap();
            assert_eq!(tx.all_networks().unwrap(), vec![net("n1", "t", 1)]);
        }
        let mode: String = s
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
        let mut s = SqliteStore::open_in_memory().unwrap();
        {
            let tx = s.begin(true).unwrap();
            tx.insert_network(&net("n1", "t", 1)).unwrap();
        }
        let tx = s.begin(false).unwrap();
        assert!(tx.all_networks().unwrap().is_empty());
    }

    #[test]
    fn free_vlan_is_the_lowest_unused_in_range() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        let tx = s.begin(true).unwrap();
        assert_eq!(tx.free_vlan(1, 4094).unwrap(), Some(1));
        tx.insert_network(&net("a", "t", 1)).unwrap();
        tx.insert_network(&net("b", "t", 2)).unwrap();
        tx.insert_network(&net("c", "t", 4)).unwrap();
        assert_eq!(tx.free_vlan(1, 4094).unwrap(), Some(3));
        tx.insert_network(&net("d", "t", 3)).unwrap();
        assert_eq!(tx.free_vlan(1, 4094).unwrap(), Some(5));
        assert_eq!(tx.free_vlan(1, 4).unwrap(), None);
        assert_eq!(tx.free_vlan(10, 12).unwrap(), Some(10));
    }

    #[test]
    fn schema_rejects_duplicate_vlans_and_attachments() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        let tx = s.begin(true).unwrap();
        tx.insert_network(&net("a", "t", 7)).unwrap();
        assert!(tx.insert_network(&net("b", "t", 7)).is_err());
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
    }

    #[test]
    fn upsert_never_moves_an_interface_to_another_tenant() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        let tx = s.begin(true).unwrap();
        let iface = |tenant: &str, dev: &str| Interface {
            id: "vif".into(),
            tenant_id: tenant.into(),
            device: dev.into(),
        };
        tx.upsert_interface(&iface("a", "tap0")).unwrap();
        tx.upsert_interface(&iface("a", "tap1")).unwrap();
        tx.upsert_interface(&iface("b", "tap2")).unwrap();
        assert_eq!(tx.interface("vif").unwrap(), Some(iface("a", "tap1")));
    }

    #[test]
    fn deleting_a_network_deletes_its_ports() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        let tx = s.begin(true).unwrap();
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
    }
}
