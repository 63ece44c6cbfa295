//! PostgreSQL connections driven by the thread that waits on them.
//!
//! A tokio-postgres connection is a future: something must poll it to write requests and read
//! answers. Run as a task on a runtime, each statement costs four thread wake-ups (the caller
//! hands the request to the runtime's thread, which writes it; the server answers that thread,
//! which hands the rows back). Here the caller polls the connection itself ([`Direct::run`])
//! over a plain blocking socket ([`Wire`]): it writes its request, then blocks in `read` until
//! the server answers, as libpq does. A statement is one round trip and two wake-ups (a port
//! write about 20 % faster under load, docs/BENCHMARKS.md), and the caller may be any thread,
//! inside an async runtime or not (it blocks, as on SQLite's file I/O).
//!
//! Connections that wait for notifications (`LISTEN`) are polled all the time by a task instead
//! (see `PgStore::listen`); this module is for the request/answer ones.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::{Host, LoadBalanceHosts, TargetSessionAttrs};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{Client, Config, Connection, NoTls, SimpleQueryMessage};

use super::postgres::lock;
use super::sql::{pg_err, unavailable};
use crate::error::Result;

/// The socket to the server, blocking.
#[derive(Debug)]
enum Sock {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Sock {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => (&*s).read(buf),
            Sock::Tcp(s) => (&*s).read(buf),
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => (&*s).write(buf),
            Sock::Tcp(s) => (&*s).write(buf),
        }
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Sock::Unix(s) => s.set_nonblocking(on),
            Sock::Tcp(s) => s.set_nonblocking(on),
        }
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Unix(s) => s.set_read_timeout(t),
            Sock::Tcp(s) => s.set_read_timeout(t),
        }
    }

    fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match self {
            Sock::Unix(s) => s.shutdown(how),
            Sock::Tcp(s) => s.shutdown(how),
        }
    }
}

/// What was read from the socket and not yet taken by the connection.
#[derive(Debug, Default)]
struct Inbox {
    bytes: Vec<u8>,
    taken: usize,
    /// The socket's end: EOF (`None` inside) or a read error, handed to the connection once
    /// its bytes are taken.
    ended: Option<Option<io::Error>>,
    /// The connection asked for more than the inbox held since this was last cleared.
    starved: bool,
    /// The connection took bytes from the inbox or wrote to the socket since this was last
    /// cleared.
    moved: bool,
}

/// The socket and what was read from it. The connection reads only what is already in the
/// inbox (it never blocks inside a poll); the caller fills the inbox, blocking, when the
/// connection and the request both wait ([`Wire::wait`]). Writes block.
#[derive(Debug)]
struct Wire {
    sock: Sock,
    inbox: Mutex<Inbox>,
}

/// How much one read takes from the socket at most.
const READ_CHUNK: usize = 16 * 1024;

impl Wire {
    /// Blocks until the server sends something (or the socket ends), and keeps it.
    fn wait(&self) {
        let mut chunk = [0u8; READ_CHUNK];
        let got = loop {
            match self.sock.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        self.keep(got, &chunk);
    }

    fn keep(&self, got: io::Result<usize>, chunk: &[u8]) {
        let mut inbox = lock(&self.inbox);
        match got {
            Ok(0) => inbox.ended = Some(None),
            Ok(n) => {
                if inbox.taken == inbox.bytes.len() {
                    inbox.bytes.clear();
                    inbox.taken = 0;
                }
                inbox.bytes.extend_from_slice(&chunk[..n]);
            }
            Err(e) => inbox.ended = Some(Some(e)),
        }
    }

    /// Reads what the socket holds without waiting, into the inbox: whether the socket ended
    /// (the server closed the connection, or it failed), and whether anything came (a server
    /// that shuts down says so before it closes).
    fn look(&self) -> (bool, bool) {
        if lock(&self.inbox).ended.is_some() {
            return (true, false);
        }
        if self.sock.set_nonblocking(true).is_err() {
            return (true, false);
        }
        let mut came = false;
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            match self.sock.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                got => {
                    let end = !matches!(got, Ok(n) if n > 0);
                    came |= !end;
                    self.keep(got, &chunk);
                    if end {
                        break;
                    }
                }
            }
        }
        let back = self.sock.set_nonblocking(false);
        (back.is_err() || lock(&self.inbox).ended.is_some(), came)
    }
}

/// The connection's side of the [`Wire`].
struct Stream(Arc<Wire>);

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut inbox = lock(&self.0.inbox);
        let inbox = &mut *inbox;
        let have = &inbox.bytes[inbox.taken..];
        if !have.is_empty() {
            let n = have.len().min(buf.remaining());
            buf.put_slice(&have[..n]);
            inbox.taken += n;
            inbox.moved = true;
            return Poll::Ready(Ok(()));
        }
        match inbox.ended.take() {
            Some(Some(e)) => Poll::Ready(Err(e)),
            // EOF stays EOF.
            Some(None) => {
                inbox.ended = Some(None);
                Poll::Ready(Ok(()))
            }
            // The caller waits for the server (Wire::wait), then polls again.
            None => {
                inbox.starved = true;
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        lock(&self.0.inbox).moved = true;
        loop {
            match self.0.sock.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.sock.shutdown(std::net::Shutdown::Write))
    }
}

/// A connection polled by its callers: the connection future and its wire.
pub(crate) struct Direct {
    wire: Arc<Wire>,
    /// `None` once it ended.
    connection: Mutex<Option<Connection<Stream, NoTlsStream>>>,
}

impl Direct {
    /// Opens a connection as `config` says (its hosts in turn, as libpq does), over a blocking
    /// socket this process polls itself.
    pub(crate) fn connect(config: &Config) -> Result<(Client, Direct)> {
        let hosts = config.get_hosts();
        let addrs = config.get_hostaddrs();
        let ports = config.get_ports();
        let mut last = None;
        let n = hosts.len().max(addrs.len());
        // `load_balance_hosts=random`: the hosts from a rotating start rather than in order.
        let first = match config.get_load_balance_hosts() {
            LoadBalanceHosts::Random => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                nanos as usize % n.max(1)
            }
            _ => 0,
        };
        for i in (0..n).map(|k| (first + k) % n) {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let host = match (addrs.get(i), hosts.get(i)) {
                (Some(ip), _) => Host::Tcp(ip.to_string()),
                (None, Some(h)) => h.clone(),
                (None, None) => continue,
            };
            match connect_host(config, &host, port) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| unavailable("error connecting: the database URL names no host")))
    }

    /// Runs `f` (a request of this connection's client) to its end, polling the connection on
    /// this thread and blocking on the socket while both wait for the server.
    pub(crate) fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        drive(&self.wire, &mut lock(&self.connection), f)
    }

    /// Whether the connection ended (the server closed it, or it failed): what the socket
    /// holds is read without waiting, and handed to the connection (a server's error with no
    /// request outstanding, such as its shutdown's, ends it).
    pub(crate) fn is_closed(&self) -> bool {
        let mut connection = lock(&self.connection);
        if connection.is_some() {
            let (ended, came) = self.wire.look();
            if ended || came {
                poll_connection(&mut connection, &mut Context::from_waker(Waker::noop()));
            }
            if ended {
                *connection = None;
            }
        }
        connection.is_none()
    }
}

/// Polls `f` and the connection (when there is one yet) on this thread until `f` ends, blocking
/// on the socket while both wait for the server.
///
/// A round polls `f` (which may queue a request, or take what the connection handed it), then
/// the connection (which writes what was queued and hands over what was read). While the
/// connection moves (reads from the inbox, writes to the socket) rounds go on; once it stood
/// still and starved (it wants bytes the socket has not given yet) for two rounds in a row (the
/// first may have handed `f` rows it held, with which `f` ends or queues its next request),
/// everything sent waits for the server, and the thread blocks reading the socket. A
/// connection that stands still without being starved holds rows for `f`, which the next round
/// takes.
fn drive<F: std::future::Future>(
    wire: &Wire,
    connection: &mut Option<Connection<Stream, NoTlsStream>>,
    f: F,
) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = std::pin::pin!(f);
    let mut still = 0u32;
    let mut quiet = 0u32;
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        {
            let mut inbox = lock(&wire.inbox);
            inbox.starved = false;
            inbox.moved = false;
        }
        poll_connection(connection, &mut cx);
        let (starved, moved) = {
            let inbox = lock(&wire.inbox);
            (inbox.starved, inbox.moved)
        };
        if moved {
            still = 0;
            quiet = 0;
            continue;
        }
        if starved || connection.is_none() {
            // The connection may have handed `f` rows it held (that moves nothing on the
            // wire), and `f` may then queue a request: one more round before blocking.
            quiet += 1;
            if quiet < 2 {
                continue;
            }
            // A socket that ended keeps saying so at once: the connection ends, which closes
            // the request's channel and ends the request with an error at its next poll.
            quiet = 0;
            still = 0;
            wire.wait();
            continue;
        }
        quiet = 0;
        // A thousand rounds standing still are not rows but a state this loop does not know:
        // the connection is given up (the request then fails) rather than spun on.
        still += 1;
        if still > 1000 {
            tracing::error!("a PostgreSQL request made no progress; dropping its connection");
            let _ = wire.sock.shutdown(std::net::Shutdown::Both);
            *connection = None;
        }
    }
}

/// Polls the connection until it waits; drops it when it ends.
fn poll_connection(connection: &mut Option<Connection<Stream, NoTlsStream>>, cx: &mut Context<'_>) {
    while let Some(c) = connection.as_mut() {
        match c.poll_message(cx) {
            // A notice or a notification: nothing here listens for them.
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "PostgreSQL connection ended");
                *connection = None;
            }
            Poll::Ready(None) => *connection = None,
            Poll::Pending => break,
        }
    }
}

/// One host: the socket, the startup (bounded by the connect timeout), and the check of
/// `target_session_attrs`.
fn connect_host(config: &Config, host: &Host, port: u16) -> Result<(Client, Direct)> {
    let timeout = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(Duration::from_secs(5));
    let failed = |e: io::Error| unavailable(format!("error connecting to {host:?}: {e}"));
    let sock = match host {
        Host::Unix(dir) => {
            Sock::Unix(unix(&dir.join(format!(".s.PGSQL.{port}")), timeout).map_err(failed)?)
        }
        Host::Tcp(name) => Sock::Tcp(tcp(config, name, port, timeout).map_err(failed)?),
    };
    sock.set_read_timeout(Some(timeout)).map_err(failed)?;
    let wire = Arc::new(Wire {
        sock,
        inbox: Mutex::default(),
    });
    let mut none = None;
    let (client, connection) = drive(
        &wire,
        &mut none,
        config.connect_raw(Stream(Arc::clone(&wire)), NoTls),
    )
    .map_err(pg_err)?;
    let direct = Direct {
        wire,
        connection: Mutex::new(Some(connection)),
    };
    let wanted = config.get_target_session_attrs();
    if wanted != TargetSessionAttrs::Any {
        let rows = direct
            .run(client.simple_query("SHOW transaction_read_only"))
            .map_err(pg_err)?;
        let read_only = rows.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(|v| v == "on"),
            _ => None,
        });
        let fits = match wanted {
            TargetSessionAttrs::ReadWrite => read_only == Some(false),
            TargetSessionAttrs::ReadOnly => read_only == Some(true),
            _ => true,
        };
        if !fits {
            return Err(unavailable(format!(
                "error connecting to {host:?}: not a {wanted:?} server"
            )));
        }
    }
    // Past the startup a statement may wait as long as it must (lock_timeout bounds the waits
    // for locks; over TCP, keepalives and the user timeout notice a server that vanished).
    direct.wire.sock.set_read_timeout(None).map_err(failed)?;
    Ok((client, direct))
}

/// A connection to the Unix socket at `path`, given up after `timeout` (a server whose backlog
/// is full).
fn unix(path: &std::path::Path, timeout: Duration) -> io::Result<UnixStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    s.connect_timeout(&SockAddr::unix(path)?, timeout)?;
    Ok(UnixStream::from(s))
}

/// A TCP connection to `name`:`port`, its addresses in turn, with the configuration's
/// keepalives and user timeout (how long sent data may go unacknowledged: a server that
/// vanished while a request waits fails it then), and without Nagle's delay (requests are
/// small and answered one by one).
fn tcp(config: &Config, name: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};
    let mut last = None;
    for addr in (name, port).to_socket_addrs()? {
        let attempt = (|| {
            let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            if config.get_keepalives() {
                let mut k = TcpKeepalive::new().with_time(config.get_keepalives_idle());
                if let Some(i) = config.get_keepalives_interval() {
                    k = k.with_interval(i);
                }
                if let Some(r) = config.get_keepalives_retries() {
                    k = k.with_retries(r);
                }
                s.set_tcp_keepalive(&k)?;
            }
            s.set_tcp_user_timeout(config.get_tcp_user_timeout().copied())?;
            s.set_tcp_nodelay(true)?;
            s.connect_timeout(&SocketAddr::into(addr), timeout)?;
            Ok::<_, io::Error>(TcpStream::from(s))
        })();
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::PrivatePostgres;

    fn connect(pg: &PrivatePostgres) -> (Client, Direct) {
        let config = crate::store::postgres::config(&pg.url("postgres")).unwrap();
        Direct::connect(&config).unwrap()
    }

    #[test]
    fn requests_are_answered_through_notices_errors_and_many_rows() {
        let pg = PrivatePostgres::start(&[]).unwrap();
        let (client, d) = connect(&pg);
        // A notice arrives with the answer: taken and dropped, the request ends.
        d.run(client.batch_execute("DO $$ BEGIN RAISE NOTICE 'hello'; END $$"))
            .unwrap();
        // A statement's error fails that request only: the connection answers the next.
        let e = d.run(client.batch_execute("SELECT nope")).unwrap_err();
        assert!(e.as_db_error().is_some(), "{e}");
        let one: i32 = d.run(client.query_one("SELECT 1", &[])).unwrap().get(0);
        assert_eq!(one, 1);
        // Rows that span many reads of the socket and many batches of the connection.
        let rows = d
            .run(client.query(
                "SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g",
                &[],
            ))
            .unwrap();
        assert_eq!(rows.len(), 20000);
        assert_eq!(rows[19999].get::<_, i32>(0), 20000);
        assert!(!d.is_closed());
    }

    #[test]
    fn a_connection_the_server_ended_while_idle_is_seen_closed() {
        let pg = PrivatePostgres::start(&[]).unwrap();
        let (client, d) = connect(&pg);
        let pid: i32 = d
            .run(client.query_one("SELECT pg_backend_pid()", &[]))
            .unwrap()
            .get(0);
        let (other, od) = connect(&pg);
        od.run(other.execute("SELECT pg_terminate_backend($1)", &[&pid]))
            .unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while !d.is_closed() {
            assert!(std::time::Instant::now() < end, "never seen closed");
            std::thread::sleep(Duration::from_millis(10));
        }
        // A request on it fails at once, never waits.
        assert!(d.run(client.batch_execute("SELECT 1")).is_err());
    }

    #[test]
    fn tcp_connections_try_the_hosts_in_turn_and_take_a_writable_one() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let _pg = PrivatePostgres::start(&["listen_addresses=127.0.0.1", &format!("port={port}")])
            .unwrap();
        // The first host refuses (nothing listens on port 1); the second is the server, over
        // TCP with keepalives and a user timeout, and it takes writes.
        let url = format!(
            "postgresql://postgres@127.0.0.1:1,127.0.0.1:{port}/postgres\
             ?target_session_attrs=read-write"
        );
        let config = crate::store::postgres::config(&url).unwrap();
        let (client, d) = Direct::connect(&config).unwrap();
        let rows = d
            .run(client.query("SELECT g FROM generate_series(1, 5000) g", &[]))
            .unwrap();
        assert_eq!(rows.len(), 5000);
        // A server that takes no writes is passed over: here, the only one.
        d.run(client.batch_execute("ALTER SYSTEM SET default_transaction_read_only = on"))
            .unwrap();
        d.run(client.batch_execute("SELECT pg_reload_conf()"))
            .unwrap();
        let only = format!(
            "postgresql://postgres@127.0.0.1:{port}/postgres?target_session_attrs=read-write"
        );
        let config = crate::store::postgres::config(&only).unwrap();
        let e = Direct::connect(&config).err().unwrap();
        assert!(
            matches!(&e, crate::ControlError::Unavailable { detail } if detail.contains("ReadWrite")),
            "{e:?}"
        );
    }

    #[test]
    fn connecting_where_no_server_listens_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("postgresql://postgres@/x?host={}", dir.path().display());
        let config = crate::store::postgres::config(&url).unwrap();
        let e = Direct::connect(&config).err().unwrap();
        assert!(
            matches!(e, crate::ControlError::Unavailable { .. }),
            "{e:?}"
        );
    }
}
