//! Test support: a private PostgreSQL server, started by the tests themselves.
//!
//! [`PrivatePostgres::start`] runs Debian's `postgresql` server binaries (`initdb`, `postgres`)
//! as the `postgres` user (the server refuses to run as root) in a fresh directory under the
//! system's temporary directory, listening only on a Unix socket in that directory: a
//! filesystem path, which tests reach from any network namespace. The server lives as long as
//! the [`PrivatePostgres`] value, and never longer than the test process: a shell that holds a
//! pipe from this process stops the server and removes its directory when the pipe closes, also
//! when the process is killed.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The server's binaries: the newest installed major version, and that version.
fn bin_dir() -> Result<(u32, PathBuf), String> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("PostgreSQL is not installed (/usr/lib/postgresql: {e})"))?
        .filter_map(|d| d.ok())
        .filter_map(|d| {
            let v = d.file_name().to_str()?.parse().ok()?;
            let bin = d.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop()
        .ok_or_else(|| "no PostgreSQL server under /usr/lib/postgresql".into())
}

/// A running private server.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    /// The shell that owns the server; its stdin is the pipe whose end stops it.
    keeper: Child,
    /// The server's options (`pg_ctl -o`).
    opts: String,
    /// Its major version.
    version: u32,
}

impl PrivatePostgres {
    /// Creates a cluster and starts its server, settings as `postgres -c` options (for
    /// example `fsync=off` where durability is not under test).
    pub fn start(settings: &[&str]) -> Result<Self, String> {
        let (version, bin) = bin_dir()?;
        let dir = std::env::temp_dir().join(format!(
            "qs-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        run(Command::new("chown").arg("postgres:").arg(&dir))?;
        let data = dir.join("data");
        run(as_postgres(&bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--locale=C",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null()))?;
        let mut opts = format!(
            "-c listen_addresses= -c unix_socket_directories={} -c max_connections=300",
            dir.display()
        );
        for s in settings {
            opts.push_str(" -c ");
            opts.push_str(s);
        }
        // The keeper: waits for its stdin to close, then stops the server (immediately: the
        // data is thrown away) and removes the directory. It holds none of this process's
        // output, which a caller may be reading to its end.
        let script = format!(
            "cat >/dev/null; runuser -u postgres -- {ctl} stop -D {data} -m immediate \
             >/dev/null 2>&1; rm -rf {dir}",
            ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        // In a process group of its own: a Ctrl-C to the test run does not kill it before it
        // stops the server (the pipe closing does that).
        let keeper = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("sh: {e}"))?;
        let server = Self {
            dir,
            bin,
            version,
            keeper,
            opts,
        };
        server.pg_ctl(&["start", "-w", "-t", "60"])?;
        Ok(server)
    }

    /// Runs `pg_ctl` on the server's data directory, with its options and log.
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        run(as_postgres(&self.bin.join("pg_ctl"))
            .args(args)
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-o")
            .arg(&self.opts)
            .arg("-l")
            .arg(self.dir.join("log"))
            .stdout(Stdio::null()))
        .map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            format!("{e}\n{log}")
        })
    }

    /// Stops the server (fast shutdown: clients are disconnected) and waits until it is down.
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-w", "-m", "fast"])
    }

    /// Starts the stopped server again and waits until it accepts connections.
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl(&["start", "-w", "-t", "60"])
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@/{name}?host={}", self.dir.display())
    }

    /// Creates database `name` (from `template`, when given) and returns its URL.
    pub fn create_database(&self, name: &str, template: Option<&str>) -> Result<String, String> {
        let mut cmd = as_postgres(&self.bin.join("createdb"));
        cmd.arg("-h").arg(&self.dir);
        if let Some(t) = template {
            cmd.args(["-T", t]);
        }
        // A file copy of the template, not a WAL-logged one (the default since 15): much less to
        // write per database.
        if self.version >= 15 {
            cmd.args(["-S", "file_copy"]);
        }
        run(cmd.arg(name))?;
        Ok(self.url(name))
    }

    /// Runs one SQL command through `psql` on database `db`.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = as_postgres(&self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Closing the pipe stops the server; wait so that its directory is gone after.
        if let Some(mut stdin) = self.keeper.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.keeper.wait();
    }
}

fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(program);
    // The server's tools resolve relative paths against the working directory, which the
    // postgres user may not be allowed to enter.
    c.current_dir("/");
    c
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
