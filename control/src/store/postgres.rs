//! The PostgreSQL store: the same model and the same SQL as the SQLite store, on a database that
//! several API servers and agents share (`--db postgres://user@host:port/dbname`).
//!
//! # Concurrency
//!
//! Every write transaction first takes one transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`), held until its commit or rollback. Writers are so serialized
//! across every server on the database, as SQLite's single writer serializes them in one
//! process, and every rule the control plane checks before it writes (a free VLAN, a free IP, a
//! MAC unique on its network, quotas, a device plugged once) holds under concurrent writers on
//! any server: a check and the write it allows run with no other writer between them. The
//! writes are short (one API call's rows, no client round trips inside), so one lock costs less
//! than the alternative, SERIALIZABLE with retries, which would need every write to be
//! re-runnable and turns hot rows (the revision counter every write bumps) into retry storms.
//! The schema enforces the same uniqueness as SQLite's (unique indexes), so a bug in that
//! discipline is a 409, never a duplicate. Reads run in `REPEATABLE READ, READ ONLY`
//! transactions on pooled connections: one snapshot per read, never waiting for a writer.
//!
//! # Migrations
//!
//! `migrations/postgres/NNNN_*.sql` are applied in order, each in its transaction, under a
//! second advisory lock, so that servers starting together apply each once; `qswitch_schema`
//! records the version. A database newer than this binary is refused.
//!
//! # Connections
//!
//! The store's callers block on their requests (as on SQLite's file I/O), from any thread,
//! inside an async runtime or not. Request connections are polled by the thread that waits on
//! them, over a blocking socket: a statement is one round trip with no hand-off between threads
//! (`pgwire`). The connections that LISTEN are polled all the time by tasks of the store's own
//! small runtime. A connection that fails is dropped and a new one opened for the next
//! transaction; a pooled one the server closed while it was idle is noticed when it is taken.

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Statement};

use crate::error::{ControlError, Result};
use crate::store::pgwire::Direct;
use crate::store::sql::{pg_err, Val};
use crate::store::tx::{Conn, SqlTx};
use crate::store::{AfterCommit, Store, Tx};

/// The schema migrations, in order; `qswitch_schema.version` is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_schema.sql"),
    include_str!("../../migrations/postgres/0002_port_status.sql"),
    include_str!("../../migrations/postgres/0003_hosts.sql"),
    include_str!("../../migrations/postgres/0004_report_notify.sql"),
];

/// The advisory lock every write transaction holds: writers are serialized across servers.
const WRITE_LOCK: i64 = 0x7173_7769_7463_6801;
/// The advisory lock migrations run under.
const MIGRATE_LOCK: i64 = 0x7173_7769_7463_6802;

/// Prepared statements kept per connection (the store has about 120 distinct ones).
const STATEMENT_CACHE: usize = 256;

/// How long a write waits for the write lock (another server's write) before the store reports
/// itself unavailable; a write holds it for milliseconds.
const LOCK_TIMEOUT_MS: u32 = 10_000;

/// Read connections kept open for reuse.
const READERS_KEPT: usize = 16;

/// How long opening a connection may take before the store reports itself unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `db` names a PostgreSQL database (a `postgres://` or `postgresql://` URL) rather
/// than an SQLite file.
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// Waits for `f` on the calling thread (parked between wake-ups). The futures of a
/// tokio-postgres client only exchange messages with their connection's task, which runs on the
/// store's runtime, so they need no runtime of their own here.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Rewrites a statement of the store's SQL for PostgreSQL: SQLite's numbered parameters `?N`
/// become `$N` (a parameter only tested for NULL gets a type, `$N::text`, which PostgreSQL
/// could not infer), and SQLite's clock becomes PostgreSQL's, in the same format.
fn translate(sql: &str) -> String {
    let sql = sql
        .replace(
            "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
            "to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
        )
        .replace("ORDER BY rowid", "ORDER BY seq");
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quoted = false;
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '?' || quoted {
            out.push(c);
            continue;
        }
        let mut end = i + 1;
        while let Some(&(j, d)) = chars.peek() {
            if !d.is_ascii_digit() {
                break;
            }
            end = j + 1;
            chars.next();
        }
        out.push('$');
        out.push_str(&sql[i + 1..end]);
        if sql[end..].starts_with(" IS NULL") {
            out.push_str("::text");
        }
    }
    out
}

/// One connection and the statements prepared on it.
pub struct PgConn {
    client: Client,
    /// The connection, polled by the callers of its requests; `None` where a task of the
    /// store's runtime polls it (a connection that LISTENs).
    direct: Option<Direct>,
    statements: Mutex<HashMap<String, Statement>>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("closed", &self.client.is_closed())
            .finish_non_exhaustive()
    }
}

impl PgConn {
    /// Waits for a request of this connection's client.
    fn wait<F: Future>(&self, f: F) -> F::Output {
        match &self.direct {
            Some(d) => d.run(f),
            None => block_on(f),
        }
    }

    fn prepare(&self, sql: &str) -> Result<Statement> {
        if let Some(s) = lock(&self.statements).get(sql) {
            return Ok(s.clone());
        }
        let stmt = self
            .wait(self.client.prepare(&translate(sql)))
            .map_err(pg_err)?;
        let mut cache = lock(&self.statements);
        // Statements whose text varies (IN lists, LIMITs) must not pile up on the server: past
        // the bound, the cache starts again (a dropped statement is closed on the server).
        if cache.len() >= STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    pub(crate) fn query(&self, sql: &str, args: &[Val<'_>]) -> Result<Vec<tokio_postgres::Row>> {
        let stmt = self.prepare(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        self.wait(self.client.query(&stmt, &params)).map_err(pg_err)
    }

    pub(crate) fn execute(&self, sql: &str, args: &[Val<'_>]) -> Result<u64> {
        let stmt = self.prepare(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        self.wait(self.client.execute(&stmt, &params))
            .map_err(pg_err)
    }

    /// Statements without parameters, in one round trip (transaction control, migrations).
    fn batch(&self, sql: &str) -> Result<()> {
        self.wait(self.client.batch_execute(sql)).map_err(pg_err)
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed() || self.direct.as_ref().is_some_and(Direct::is_closed)
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A [`Store`] on a PostgreSQL database.
pub struct PgStore {
    config: Config,
    runtime: Option<tokio::runtime::Runtime>,
    /// This server's writer connection: its writes run one at a time, in the order their
    /// after-commit steps then run.
    writer: Mutex<Option<PgConn>>,
    readers: Mutex<Vec<PgConn>>,
    /// The connection that LISTENs for closed revisions, and the wake-ups it receives.
    listener: Mutex<Option<Listener>>,
    /// The connection that LISTENs for host reports (opened on first use), and what it heard.
    report_listener: Mutex<ReportListener>,
    reports: Arc<Heard>,
}

/// The connection in `LISTEN qswitch_report`, or when opening one last failed (tried again a
/// second later, not by every waiting write).
#[derive(Default)]
struct ReportListener {
    conn: Option<PgConn>,
    failed_at: Option<std::time::Instant>,
    /// A caller is opening the connection (outside the lock): the others do not wait for it.
    connecting: bool,
}

/// What a LISTENing connection's task does with each notification's payload.
type OnNotification = Box<dyn FnMut(&str) + Send>;

/// A connection in `LISTEN qswitch_revision`; its task sends one wake-up per notification.
struct Listener {
    _conn: PgConn,
    wakeups: Receiver<()>,
}

/// The host reports heard (`LISTEN qswitch_report`): each host's last reported revision, a
/// count of reports that only grows, and the writes waiting for more.
#[derive(Default)]
struct Heard {
    state: Mutex<HeardState>,
    grew: std::sync::Condvar,
}

#[derive(Default)]
struct HeardState {
    count: u64,
    /// Each host's last revision heard, with the count it was heard at.
    revisions: HashMap<String, (u64, u64)>,
}

impl Heard {
    /// A notification's payload, `host:revision`.
    fn heard(&self, payload: &str) {
        let Some((host, rev)) = payload.rsplit_once(':') else {
            return;
        };
        let Ok(rev) = rev.parse() else { return };
        let mut st = lock(&self.state);
        st.count += 1;
        let at = st.count;
        st.revisions.insert(host.to_owned(), (rev, at));
        drop(st);
        self.grew.notify_all();
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("host", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async caller may not do.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The connection settings of `url`, completed from the `PG*` environment variables as libpq
/// completes them (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`); the host defaults
/// to the local server's Unix socket directory.
pub fn config(url: &str) -> Result<Config> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut c = Config::from_str(url).map_err(|e| ControlError::Store {
        detail: format!("database URL: {e}"),
    })?;
    if c.get_hosts().is_empty() {
        let hosts = env("PGHOST").unwrap_or_else(|| "/var/run/postgresql".into());
        for h in hosts.split(',') {
            c.host(h);
        }
    }
    if c.get_ports().is_empty() {
        if let Some(p) = env("PGPORT").and_then(|p| p.parse().ok()) {
            c.port(p);
        }
    }
    if c.get_user().is_none() {
        if let Some(u) = env("PGUSER") {
            c.user(u);
        }
    }
    if c.get_password().is_none() {
        if let Some(p) = env("PGPASSWORD") {
            c.password(p);
        }
    }
    if c.get_dbname().is_none() {
        if let Some(d) = env("PGDATABASE") {
            c.dbname(d);
        }
    }
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(CONNECT_TIMEOUT);
    }
    // A server that vanishes without closing the connection (a host or network failure) is
    // noticed in about 20 s, not hours later: by TCP keepalives on an idle connection, and by
    // the user timeout (how long sent data may go unacknowledged) on one waiting for an answer.
    c.keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(3))
        .keepalives_retries(3);
    if c.get_tcp_user_timeout().is_none() {
        c.tcp_user_timeout(Duration::from_secs(20));
    }
    if c.get_options().is_none() {
        c.options(format!("-c lock_timeout={LOCK_TIMEOUT_MS}"));
    }
    c.application_name("qswitch");
    Ok(c)
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to date.
    pub fn open(url: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qswitch-pg")
            .enable_all()
            .build()
            .map_err(|e| ControlError::Store {
                detail: format!("PostgreSQL client runtime: {e}"),
            })?;
        let store = Self {
            config: config(url)?,
            runtime: Some(runtime),
            writer: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
            listener: Mutex::new(None),
            report_listener: Mutex::default(),
            reports: Arc::default(),
        };
        let conn = store.connect()?;
        migrate(&conn)?;
        *lock(&store.writer) = Some(conn);
        Ok(store)
    }

    /// A new connection for requests, polled by their callers (see `pgwire`).
    fn connect(&self) -> Result<PgConn> {
        if self.runtime.is_none() {
            return Err(ControlError::Store {
                detail: "the store is closed".into(),
            });
        }
        let (client, direct) = Direct::connect(&self.config)?;
        Ok(PgConn {
            client,
            direct: Some(direct),
            statements: Mutex::new(HashMap::new()),
        })
    }

    /// A new connection in `LISTEN channel`, polled all the time by a task of the store's
    /// runtime: each notification it receives calls `heard` with its payload.
    fn listen(&self, channel: &str, mut heard: OnNotification) -> Result<PgConn> {
        let Some(rt) = &self.runtime else {
            return Err(ControlError::Store {
                detail: "the store is closed".into(),
            });
        };
        let config = self.config.clone();
        let (client, mut connection) =
            block_on(rt.spawn(async move { config.connect(NoTls).await }))
                .map_err(|e| ControlError::Store {
                    detail: format!("PostgreSQL connection task: {e}"),
                })?
                .map_err(pg_err)?;
        rt.spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => heard(n.payload()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "PostgreSQL connection ended");
                        break;
                    }
                    None => break,
                }
            }
        });
        let conn = PgConn {
            client,
            direct: None,
            statements: Mutex::new(HashMap::new()),
        };
        conn.batch(&format!("LISTEN {channel}"))?;
        Ok(conn)
    }

    /// A pooled connection (one still open), or a new one.
    fn pooled(&self) -> Result<PgConn> {
        let pooled = {
            let mut readers = lock(&self.readers);
            std::iter::from_fn(|| readers.pop()).find(|c| !c.is_closed())
        };
        match pooled {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    /// Keeps `conn` for reuse (up to [`READERS_KEPT`]).
    fn give_back(&self, conn: PgConn) {
        let mut readers = lock(&self.readers);
        if readers.len() < READERS_KEPT {
            readers.push(conn);
        }
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<u32> {
        let w = lock(&self.writer);
        match w.as_ref() {
            Some(c) => schema_version(c),
            None => Ok(0),
        }
    }
}

fn schema_version(c: &PgConn) -> Result<u32> {
    let rows = c.query("SELECT version FROM qswitch_schema", &[])?;
    let v: i64 = rows
        .first()
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(pg_err)?
        .unwrap_or(0);
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

fn migrate(c: &PgConn) -> Result<()> {
    c.batch("BEGIN")?;
    let done = (|| {
        c.execute(
            "SELECT pg_advisory_xact_lock(?1)",
            &[Val::Int(MIGRATE_LOCK)],
        )?;
        c.batch("CREATE TABLE IF NOT EXISTS qswitch_schema (version BIGINT NOT NULL)")?;
        let current = schema_version(c)? as usize;
        super::known_schema(current, MIGRATIONS.len())?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            c.batch(sql)?;
            c.batch(&format!(
                "DELETE FROM qswitch_schema; INSERT INTO qswitch_schema VALUES ({})",
                i + 1
            ))?;
            tracing::info!(version = i + 1, "applied store migration");
        }
        Ok(())
    })();
    match done {
        Ok(()) => c.batch("COMMIT"),
        Err(e) => {
            let _ = c.batch("ROLLBACK");
            Err(e)
        }
    }
}

impl PgStore {
    /// A connection for the writer slot: the one kept there, or a new one when it failed.
    fn writer_conn<'a>(&self, slot: &'a mut Option<PgConn>) -> Result<&'a PgConn> {
        if slot.as_ref().is_none_or(PgConn::is_closed) {
            *slot = Some(self.connect()?);
        }
        slot.as_ref().ok_or_else(|| ControlError::Store {
            detail: "no writer connection".into(),
        })
    }
}

impl Store for PgStore {
    fn shared(&self) -> bool {
        true
    }

    fn follow(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<Option<AfterCommit>>) -> Result<()> {
        // This process's writer (its write order), but no advisory lock: other servers write on.
        let mut slot = lock(&self.writer);
        let conn = self.writer_conn(&mut slot)?;
        conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f(&SqlTx {
                conn: Conn::Pg(conn),
            })
        }));
        if conn.batch("ROLLBACK").is_err() {
            *slot = None;
        }
        let step = match run {
            Ok(r) => r?,
            Err(p) => {
                drop(slot);
                std::panic::resume_unwind(p)
            }
        };
        if let Some(step) = step {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).is_err() {
                tracing::error!("a follower's step panicked");
            }
        }
        Ok(())
    }

    fn write_unordered(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()> {
        let conn = self.pooled()?;
        // Reports are re-sent, never acknowledged to a client: their commit need not wait for
        // the WAL flush.
        conn.batch(
            "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE; SET LOCAL synchronous_commit = off",
        )?;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f(&SqlTx {
                conn: Conn::Pg(&conn),
            })
        }));
        let end = match &run {
            Ok(Ok(())) => conn.batch("COMMIT"),
            _ => conn.batch("ROLLBACK"),
        };
        if end.is_ok() {
            self.give_back(conn);
        }
        match run {
            Ok(r) => r.and(end),
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    fn wait_for_change(&self, timeout: Duration) {
        let mut slot = lock(&self.listener);
        if slot.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let listening = self.listen(
                "qswitch_revision",
                Box::new(move |_| {
                    let _ = tx.send(());
                }),
            );
            match listening {
                Ok(conn) => {
                    *slot = Some(Listener {
                        _conn: conn,
                        wakeups: rx,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for revisions; polling");
                    drop(slot);
                    std::thread::sleep(timeout);
                    return;
                }
            }
            // Whatever was committed before the LISTEN took effect: the caller looks now.
            return;
        }
        let Some(l) = slot.as_ref() else { return };
        match l.wakeups.recv_timeout(timeout) {
            Ok(()) => while l.wakeups.try_recv().is_ok() {},
            Err(RecvTimeoutError::Timeout) => {}
            // The connection ended: a new one at the next call, and a look now.
            Err(RecvTimeoutError::Disconnected) => *slot = None,
        }
    }

    fn hear_reports(&self) -> Option<u64> {
        let mut slot = lock(&self.report_listener);
        if slot.conn.as_ref().is_none_or(PgConn::is_closed) {
            slot.conn = None;
            let failed_lately = slot
                .failed_at
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
            if failed_lately || slot.connecting {
                return None;
            }
            // Opened without the lock: a connect that hangs (up to its timeout) holds up this
            // write only, while the others read the hosts' reports instead of hearing them.
            slot.connecting = true;
            drop(slot);
            /// Clears `connecting` however the connect ends (a panic included).
            struct Connecting<'a>(&'a Mutex<ReportListener>);
            impl Drop for Connecting<'_> {
                fn drop(&mut self) {
                    lock(self.0).connecting = false;
                }
            }
            let connecting = Connecting(&self.report_listener);
            let reports = Arc::clone(&self.reports);
            let listening = self.listen("qswitch_report", Box::new(move |p| reports.heard(p)));
            drop(connecting);
            slot = lock(&self.report_listener);
            match listening {
                Ok(conn) => {
                    slot.conn = Some(conn);
                    slot.failed_at = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for host reports");
                    slot.failed_at = Some(std::time::Instant::now());
                    return None;
                }
            }
        }
        drop(slot);
        Some(lock(&self.reports.state).count)
    }

    fn heard_revision(&self, host: &str, since: u64) -> Option<u64> {
        let st = lock(&self.reports.state);
        let &(rev, at) = st.revisions.get(host)?;
        (at > since).then_some(rev)
    }

    fn wait_for_report(&self, seen: u64, timeout: Duration) -> u64 {
        let st = lock(&self.reports.state);
        let (st, _) = self
            .reports
            .grew
            .wait_timeout_while(st, timeout, |st| st.count <= seen)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.count
    }

    fn read(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()> {
        let conn = self.pooled()?;
        conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f(&SqlTx {
                conn: Conn::Pg(&conn),
            })
        }));
        // A connection whose transaction could not be ended is dropped, never reused.
        if conn.batch("ROLLBACK").is_ok() {
            self.give_back(conn);
        }
        match out {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    fn write(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<Option<AfterCommit>>) -> Result<()> {
        let mut slot = lock(&self.writer);
        let conn = self.writer_conn(&mut slot)?;
        // READ COMMITTED whatever the server's default: each statement after the lock sees every
        // write committed before it.
        conn.batch("BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE")?;
        let run = (|| {
            conn.execute("SELECT pg_advisory_xact_lock(?1)", &[Val::Int(WRITE_LOCK)])?;
            Ok(())
        })()
        .map(|()| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                f(&SqlTx {
                    conn: Conn::Pg(conn),
                })
            }))
        });
        let step = match run {
            Ok(Ok(Ok(step))) => match conn.batch("COMMIT") {
                Ok(()) => step,
                Err(e) => {
                    // The connection may have gone with the commit sent: its outcome is unknown.
                    // If it committed, the revision log has it, and the next write or the
                    // follower hands it to the data plane (a gap in revisions resyncs).
                    tracing::warn!(error = %e, "COMMIT failed; the write's outcome is unknown");
                    *slot = None;
                    return Err(e);
                }
            },
            Ok(Ok(Err(e))) | Err(e) => {
                if conn.batch("ROLLBACK").is_err() {
                    *slot = None;
                }
                return Err(e);
            }
            Ok(Err(p)) => {
                if conn.batch("ROLLBACK").is_err() {
                    *slot = None;
                }
                drop(slot);
                std::panic::resume_unwind(p);
            }
        };
        // The step runs while this server's writer is held: steps run in commit order.
        if let Some(step) = step {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).is_err() {
                tracing::error!("a write's after-commit step panicked");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{translate, PgStore, STATEMENT_CACHE};
    use crate::store::sql::Val;
    use crate::testing::PrivatePostgres;

    #[test]
    fn statements_of_varying_text_never_pile_up_on_the_server() {
        let pg = PrivatePostgres::start(&["fsync=off"]).unwrap_or_else(|e| panic!("{e}"));
        let url = pg.create_database("stmts", None).unwrap();
        let store = PgStore::open(&url).unwrap();
        let conn = store.connect().unwrap();
        // As an IN list of every length would: a new statement text each time.
        for n in 1..=3 * STATEMENT_CACHE {
            let marks: Vec<String> = (1..=n.min(5)).map(|i| format!("?{i}")).collect();
            let sql = format!("SELECT {n} WHERE 1 IN ({})", marks.join(", "));
            let args: Vec<Val<'_>> = (0..n.min(5)).map(|_| Val::Int(1)).collect();
            conn.query(&sql, &args).unwrap();
        }
        let rows = conn
            .query("SELECT count(*) FROM pg_prepared_statements", &[])
            .unwrap();
        let held: i64 = rows[0].get(0);
        assert!(
            held as usize <= STATEMENT_CACHE + 1,
            "{held} statements prepared on the server"
        );
    }

    #[test]
    fn parameters_and_clock_are_rewritten_outside_quotes() {
        assert_eq!(
            translate("SELECT '?1' FROM t WHERE a = ?1 AND (?12 IS NULL OR b = ?12)"),
            "SELECT '?1' FROM t WHERE a = $1 AND ($12::text IS NULL OR b = $12)"
        );
        assert!(translate("VALUES (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))").contains("to_char"));
    }
}
