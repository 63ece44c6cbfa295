//! Shared fixtures of the end-to-end tests: namespaces and veth pairs that clean up after
//! themselves (even when a test fails), the daemon as a child process, and raw frames through
//! `tests/tools/frames.py`.
//!
//! Every name starts with `qs` and is unique to the test process; every address is in
//! 198.18.0.0/15. Nothing is sent anywhere else.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and reports whether it succeeded.
pub fn try_sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A short name unique to this test process: `qs` + 4 digits + a counter letter pair.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 10_000;
    format!("qs{tag}{pid:04}{n:02}")
}

/// The `--db` argument of a daemon whose scratch directory is `dir`: a SQLite file in it, or, when
/// the environment has `QSWITCH_TEST_STORE=postgres`, a fresh database on a private PostgreSQL
/// server shared by the test process (started on first use, stopped when the process ends).
/// `.ci/run` runs the end-to-end suites both ways.
pub fn store(dir: &Path) -> String {
    if std::env::var("QSWITCH_TEST_STORE").as_deref() != Ok("postgres") {
        return dir.join("q.db").to_str().unwrap().to_owned();
    }
    static SERVER: std::sync::OnceLock<control::testing::PrivatePostgres> =
        std::sync::OnceLock::new();
    let server = SERVER.get_or_init(|| {
        control::testing::PrivatePostgres::start(&["fsync=off", "full_page_writes=off"])
            .unwrap_or_else(|e| panic!("private PostgreSQL: {e}"))
    });
    server
        .create_database(&unique("db"), None)
        .unwrap_or_else(|e| panic!("createdb: {e}"))
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        sh(&["ip", "netns", "add", name]);
        let ns = Netns { name: name.into() };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns
    }

    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    pub fn try_exec(&self, args: &[&str]) -> bool {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        try_sh(&v)
    }

    /// Moves `bytes` pseudo-random bytes over TCP from this namespace to `server` (listening on `ip`),
    /// which answers with their count and SHA-256. Returns the seconds it took, or what went
    /// wrong.
    pub fn tcp_transfer(&self, server: &Netns, ip: &str, bytes: usize) -> Result<f64, String> {
        let port = next_port();
        let _srv = Server::start(&server.name, &["tcp-server", ip, &port]);
        let out = self.transport(&["tcp-client", ip, &port, &bytes.to_string()])?;
        if !out.contains("\"ok\": true") {
            return Err(format!("content differs: {out}"));
        }
        json_field(&out, "seconds").ok_or_else(|| format!("tcp-client said {out}"))
    }

    /// Streams TCP to a sink in `server` (on `ip`) for `seconds`, calling `meanwhile` once the
    /// stream has run for `after`; returns the bytes the sink received in each quarter second
    /// from the connection's start, and when `meanwhile` returned, counted from just before the
    /// source started (a little more than from the connection's start).
    pub fn tcp_stream(
        &self,
        server: &Netns,
        ip: &str,
        seconds: u32,
        after: Duration,
        meanwhile: impl FnOnce(),
    ) -> (Vec<u64>, Duration) {
        let port = next_port();
        let secs = seconds.to_string();
        let transport = tools_dir().join("transport.py");
        let sink = spawn_ready(
            &server.name,
            &transport,
            &["tcp-sink", ip, &port, &secs],
            Stdio::inherit(),
            Stdio::piped(),
            "tcp-sink",
        );
        let start = Instant::now();
        let source = Command::new("ip")
            .args(["netns", "exec", &self.name, "python3"])
            .arg(&transport)
            .args(["tcp-source", ip, &port, &secs])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcp-source");
        std::thread::sleep(after);
        meanwhile();
        let at = start.elapsed();
        let _ = source.wait_with_output();
        let out = sink.wait_with_output().expect("sink");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("tcp-sink said {text}: {e}"));
        let received = v["received"].as_array().expect("received");
        (received.iter().filter_map(|b| b.as_u64()).collect(), at)
    }

    /// Sends `count` UDP datagrams of `size` bytes to an echo server in `server` (on `ip`), one
    /// at a time. Returns (echoed intact, echoed altered).
    pub fn udp_echo(&self, server: &Netns, ip: &str, count: u32, size: usize) -> (u32, u32) {
        let port = next_port();
        let _srv = Server::start(&server.name, &["udp-server", ip, &port]);
        let out = self
            .transport(&[
                "udp-client",
                ip,
                &port,
                &count.to_string(),
                &size.to_string(),
            ])
            .unwrap_or_else(|e| panic!("udp-client: {e}"));
        let n = |k| json_field(&out, k).map_or(0, |v: f64| v as u32);
        (n("echoed"), n("mismatched"))
    }

    /// Sends `count` ICMP timestamp requests to `ip`, one at a time; returns how many the
    /// peer's kernel answered within a second each.
    pub fn icmp_timestamps(&self, ip: &str, count: u32) -> u32 {
        let out = self
            .transport(&["icmp-timestamp", ip, &count.to_string()])
            .unwrap_or_else(|e| panic!("icmp-timestamp: {e}"));
        json_field(&out, "answered").map_or(0, |v: f64| v as u32)
    }

    fn transport(&self, args: &[&str]) -> Result<String, String> {
        let tool = tools_dir().join("transport.py");
        let out = Command::new("timeout")
            .args(["60", "ip", "netns", "exec", &self.name, "python3"])
            .arg(tool)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "{args:?} failed: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(text)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = try_sh(&["ip", "netns", "del", &self.name]);
    }
}

/// A "VM": a namespace holding one end of a veth pair; the other end (`host`) stays in the
/// root namespace for the switch.
pub struct Vm {
    pub ns: Netns,
    pub host: String,
    pub dev: String,
    pub mac: String,
    pub ip: String,
}

impl Vm {
    /// Creates the namespace and the pair; `n` picks the MAC and the address 198.18.<net>.<n>.
    pub fn new(tag: &str, n: u8, subnet: u8) -> Vm {
        let base = unique(tag);
        let ns = Netns::new(&base);
        let vm = Vm {
            host: format!("{base}h"),
            dev: format!("{base}v"),
            mac: format!("02:00:00:00:{subnet:02x}:{n:02x}"),
            ip: format!("198.18.{subnet}.{n}"),
            ns,
        };
        vm.plug_cable();
        vm
    }

    /// (Re)creates the veth pair.
    pub fn plug_cable(&self) {
        sh(&[
            "ip",
            "link",
            "add",
            &self.host,
            "type",
            "veth",
            "peer",
            "name",
            &self.dev,
            "netns",
            &self.ns.name,
        ]);
        let _ = try_sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", self.host),
        ]);
        sh(&["ip", "link", "set", &self.host, "up"]);
        self.ns
            .exec(&["ip", "link", "set", &self.dev, "address", &self.mac]);
        self.ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/16", self.ip),
            "dev",
            &self.dev,
        ]);
        self.ns.exec(&["ip", "link", "set", &self.dev, "up"]);
    }

    /// Deletes the veth pair (the switch's port loses its device).
    pub fn unplug_cable(&self) {
        let _ = try_sh(&["ip", "link", "del", &self.host]);
    }

    /// One ping round; true if answered.
    pub fn ping(&self, ip: &str) -> bool {
        self.ns.try_exec(&["ping", "-c", "1", "-W", "1", "-q", ip])
    }

    /// Pings until answered or `timeout` passes.
    pub fn ping_until(&self, ip: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.ping(ip) {
                return true;
            }
        }
        false
    }

    /// Sends raw frames (hex) from the VM's interface.
    pub fn send(&self, frames: &[String]) {
        let tool = tools();
        let mut args = vec!["python3", tool.to_str().unwrap(), "send", &self.dev];
        args.extend(frames.iter().map(String::as_str));
        self.ns.exec(&args);
    }

    /// Sends `count` copies of one frame (hex) paced at `pps`; returns the seconds from the first
    /// send to the last.
    pub fn send_paced(&self, pps: u32, count: u32, frame: &str) -> f64 {
        let tool = tools();
        let (pps, count) = (pps.to_string(), count.to_string());
        let out = self.ns.exec(&[
            "python3",
            tool.to_str().unwrap(),
            "send-rate",
            &self.dev,
            &pps,
            &count,
            frame,
        ]);
        out.split("\"seconds\": ")
            .nth(1)
            .and_then(|v| v.trim().trim_end_matches('}').parse().ok())
            .unwrap_or_else(|| panic!("send-rate said {out:?}"))
    }

    /// Starts capturing frames of EtherType `etype` on the VM's interface, for at most `secs`
    /// (`Capture::finish` ends it earlier).
    pub fn capture(&self, secs: f32, etype: u16) -> Capture {
        Capture::start(&self.ns.name, &self.dev, "capture", secs, etype)
    }

    /// As [`Vm::capture`], counting the frames only (any number: nothing is printed per frame);
    /// read the count with [`Capture::finish_count`].
    pub fn count(&self, secs: f32, etype: u16) -> Capture {
        Capture::start(&self.ns.name, &self.dev, "count", secs, etype)
    }

    /// Turns IPv6 on in the VM (namespaces start with it off) and gives its interface `addr`
    /// (`/64`, no duplicate address detection, so that it is usable at once).
    pub fn enable_ipv6(&self, addr: &str) {
        for conf in ["all", "default", self.dev.as_str()] {
            self.ns.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{conf}.disable_ipv6=0"),
            ]);
        }
        self.ns.exec(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{addr}/64"),
            "dev",
            &self.dev,
            "nodad",
        ]);
    }

    /// The VM interface's offload settings as `ethtool -k` prints them.
    pub fn offloads(&self) -> String {
        self.ns.exec(&["ethtool", "-k", &self.dev])
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.unplug_cable();
    }
}

/// A server of `tests/tools/transport.py` in a namespace, killed on drop.
struct Server {
    child: Child,
}

impl Server {
    fn start(ns: &str, args: &[&str]) -> Server {
        let transport = tools_dir().join("transport.py");
        let child = spawn_ready(
            ns,
            &transport,
            args,
            Stdio::piped(),
            Stdio::null(),
            "server",
        );
        Server { child }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `python3 script args…` inside namespace `ns` and waits for the `ready` line the tool
/// writes to its stderr once its socket is bound (its stderr is not read after that line).
/// `what` names it in the failure.
fn spawn_ready(
    ns: &str,
    script: &Path,
    args: &[&str],
    stdin: Stdio,
    stdout: Stdio,
    what: &str,
) -> Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "python3"])
        .arg(script)
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut line = String::new();
    let _ = BufReader::new(child.stderr.take().unwrap()).read_line(&mut line);
    assert!(line.contains("ready"), "{what} did not start: {line}");
    child
}

/// A TCP/UDP port for a test server, unique within the test process.
fn next_port() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    (20_000 + N.fetch_add(1, Ordering::Relaxed)).to_string()
}

/// A number field of a one-line JSON object.
fn json_field(json: &str, key: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    v.get(key)?.as_f64()
}

/// A veth pair whose two ends stay in the root namespace (a cable between two switches' uplinks),
/// deleted on drop.
pub struct Cable {
    pub a: String,
    pub b: String,
}

impl Cable {
    pub fn new(tag: &str) -> Cable {
        let base = unique(tag);
        let c = Cable {
            a: format!("{base}a"),
            b: format!("{base}b"),
        };
        sh(&[
            "ip", "link", "add", &c.a, "type", "veth", "peer", "name", &c.b,
        ]);
        for end in [&c.a, &c.b] {
            let _ = try_sh(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{end}.disable_ipv6=1"),
            ]);
            sh(&["ip", "link", "set", end, "up"]);
        }
        c
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        let _ = try_sh(&["ip", "link", "del", &self.a]);
    }
}

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools")
}

fn tools() -> PathBuf {
    tools_dir().join("frames.py")
}

/// A frame seen by a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub hex: String,
    pub vlan: Option<u16>,
    /// Handed over with its transport checksum still to be finished (the receiving kernel's
    /// skb is `CHECKSUM_PARTIAL`, as from a local sender or through a bridge).
    pub partial: bool,
}

/// A running capture.
pub struct Capture {
    child: Child,
}

impl Capture {
    fn start(ns: &str, dev: &str, cmd: &str, secs: f32, etype: u16) -> Capture {
        let args = [cmd, dev, &secs.to_string(), &format!("{etype:x}")];
        let child = spawn_ready(
            ns,
            &tools(),
            &args,
            Stdio::piped(),
            Stdio::piped(),
            "capture",
        );
        Capture { child }
    }

    /// Lets frames in flight arrive (300 ms), ends the capture and returns its output.
    fn end(mut self) -> String {
        std::thread::sleep(Duration::from_millis(300));
        drop(self.child.stdin.take());
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let _ = self.child.wait();
        out
    }

    /// The number of frames a [`Vm::count`] saw.
    pub fn finish_count(self) -> usize {
        let out = self.end();
        out.split("\"count\": ")
            .nth(1)
            .and_then(|v| v.trim().trim_end_matches('}').parse().ok())
            .unwrap_or_else(|| panic!("count said {out:?}"))
    }

    /// Lets frames in flight arrive (300 ms), ends the capture and returns what it saw.
    pub fn finish(self) -> Vec<Seen> {
        self.end()
            .lines()
            .filter_map(|l| {
                let hex = l.split("\"hex\": \"").nth(1)?.split('"').next()?.to_owned();
                let vlan = l
                    .split("\"vlan\": ")
                    .nth(1)
                    .and_then(|v| v.trim_end_matches('}').trim().parse().ok());
                let partial = l.contains("\"partial\": true");
                Some(Seen { hex, vlan, partial })
            })
            .collect()
    }
}

/// EtherType the tests use for their own frames (IEEE local experimental), so captures ignore
/// everything else.
pub const TEST_ETHERTYPE: u16 = 0x88b5;

/// A test frame as hex: `dst`, `src` (colon MACs), optional VLAN tag, a marker payload.
pub fn frame_hex(dst: &str, src: &str, vlan: Option<u16>, marker: u8) -> String {
    let mut s = String::new();
    s.push_str(&dst.replace(':', ""));
    s.push_str(&src.replace(':', ""));
    if let Some(v) = vlan {
        s.push_str(&format!("8100{:04x}", v & 0x0fff));
    }
    s.push_str(&format!("{TEST_ETHERTYPE:04x}"));
    for _ in 0..46 {
        s.push_str(&format!("{marker:02x}"));
    }
    s
}

/// The daemon as a child process; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Daemon {
    pub child: Child,
    pub dir: PathBuf,
}

impl Daemon {
    /// Starts `qswitch serve` with `args`, in a fresh temporary directory.
    pub fn start(args: &[&str]) -> Daemon {
        let dir = std::env::temp_dir().join(unique("d"));
        std::fs::create_dir_all(&dir).unwrap();
        Daemon::start_in(dir, args)
    }

    pub fn start_in(dir: PathBuf, args: &[&str]) -> Daemon {
        let log = std::fs::File::create(dir.join("qswitch.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_qswitch"))
            .arg("serve")
            .args(args)
            .current_dir(&dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start qswitch");
        Daemon { child, dir }
    }

    /// Starts the daemon with a TOML configuration written to its directory.
    pub fn with_config(toml: &str, extra: &[&str]) -> Daemon {
        let dir = std::env::temp_dir().join(unique("d"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("qswitch.toml");
        std::fs::write(&cfg, toml).unwrap();
        // Each daemon gets its own API port and database, so tests can run side by side.
        let listen = free_addr();
        let db = (!extra.contains(&"--db")).then(|| store(&dir));
        let mut args = vec!["--config", cfg.to_str().unwrap()];
        if !extra.contains(&"--listen") {
            args.extend_from_slice(&["--listen", &listen]);
        }
        if let Some(db) = &db {
            args.extend_from_slice(&["--db", db]);
        }
        args.extend_from_slice(extra);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Daemon::start_in(dir, &refs)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("qswitch.log")).unwrap_or_default()
    }

    /// Sends a signal and waits up to 5 s for the exit. A daemon already reaped (stopped by an
    /// earlier signal) is not signalled again: its pid may belong to another process by now.
    pub fn signal(&mut self, sig: &str) -> bool {
        if let Ok(Some(_)) = self.child.try_wait() {
            return true;
        }
        let pid = self.child.id().to_string();
        let _ = try_sh(&["kill", sig, &pid]);
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.signal("-TERM") {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Its scratch directory (database, log, config) goes with it, unless the test failed:
        // then it is kept for a look. A second daemon started in the same directory is dropped
        // first, being declared later.
        if std::thread::panicking() {
            eprintln!("the daemon's directory is kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Does interface `dev` have an XDP program attached?
pub fn has_xdp(dev: &str) -> bool {
    sh(&["ip", "-o", "link", "show", "dev", dev]).contains(" xdp")
}

/// Waits until `f` holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// The tests' HTTP client: the harness's (`bench::http`, on `ureq`), one request at a time.
pub mod http {
    use std::net::TcpStream;
    use std::time::Duration;

    /// Status, headers and body of a response.
    #[derive(Debug)]
    pub struct Response(bench::http::Response);

    impl std::ops::Deref for Response {
        type Target = bench::http::Response;
        fn deref(&self) -> &Self::Target {
            &self.0
        }
    }

    impl Response {
        /// The body as JSON (panics with the body if it is not).
        pub fn json(&self) -> serde_json::Value {
            self.0.json().unwrap_or_else(|e| panic!("{e}"))
        }
    }

    /// Sends one request with a JSON body (if any) and returns the response.
    pub fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> Response {
        request_with(addr, method, path, body, &[])
    }

    /// As [`request`], with extra headers.
    pub fn request_with(
        addr: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        let conn = bench::http::Conn::open(addr).unwrap();
        Response(
            conn.send(method, path, body, headers)
                .unwrap_or_else(|e| panic!("{method} {addr}{path}: {e}")),
        )
    }

    /// Waits until the daemon answers `GET /`.
    pub fn wait_ready(addr: &str) -> bool {
        super::wait_for(Duration::from_secs(10), || TcpStream::connect(addr).is_ok())
    }
}

/// A Python interpreter with `packages` installed, in a virtual environment kept under the
/// target directory (made on first use; pip reaches PyPI).
pub fn python_with(packages: &[&str]) -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qs-pyenv");
    let python = venv.join("bin/python3");
    let missing = |p: &&str| {
        !Command::new(&python)
            .args(["-c", &format!("import {}", p.replace('-', "_"))])
            .status()
            .is_ok_and(|s| s.success())
    };
    let need: Vec<&str> = packages.iter().copied().filter(missing).collect();
    if need.is_empty() {
        return python;
    }
    if !python.exists() {
        sh(&["python3", "-m", "venv", venv.to_str().unwrap()]);
    }
    let pip = venv.join("bin/pip");
    let mut args = vec![pip.to_str().unwrap(), "install", "-q"];
    args.extend(need);
    sh(&args);
    python
}

/// A free loopback port for a daemon's API, below Linux's ephemeral range (32768-60999): a port
/// the kernel hands out for `bind(0)` or as another test's outgoing source port can be taken
/// again between this check and the daemon's bind, and a daemon that failed to bind would look
/// ready to `wait_ready` while another socket answered. Ports spread by process id and a
/// counter, each checked free.
pub fn free_addr() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    for _ in 0..1000 {
        let k = N.fetch_add(1, Ordering::Relaxed);
        let port = 10_000 + (std::process::id().wrapping_mul(7919).wrapping_add(k * 131)) % 9_000;
        let addr = format!("127.0.0.1:{port}");
        if std::net::TcpListener::bind(&addr).is_ok() {
            return addr;
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}
