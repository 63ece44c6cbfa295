//! Agents: the harness binary re-executed inside a namespace (`qswitch-bench agent gen|sink DEV`)
//! to generate or receive traffic there, driven over its stdin and answering on its stdout.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// An agent process (this binary's `agent` command inside a namespace), talked to line by line.
#[derive(Debug)]
pub struct Agent {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Agent {
    pub fn start(ns: &str, cpu: Option<usize>, role: &str, dev: &str) -> Result<Agent, String> {
        Self::start_with(ns, cpu, false, role, dev)
    }

    /// [`Agent::start_with`] real time, else (no right to the real-time policy here) with the
    /// normal policy and a warning.
    pub fn start_realtime(
        ns: &str,
        cpu: Option<usize>,
        role: &str,
        dev: &str,
    ) -> Result<Agent, String> {
        Self::start_with(ns, cpu, true, role, dev).or_else(|e| {
            eprintln!(
                "warning: the {role} agent cannot run real time ({e}); behind busy threads it \
                 may read its ring late (and, without arrival stamps, count its wait as latency)"
            );
            Self::start_with(ns, cpu, false, role, dev)
        })
    }

    /// Starts an agent, pinned to `cpu` when given, and with the real-time policy
    /// (`SCHED_FIFO` 10) when `realtime`: its wake-ups then preempt whatever runs on its CPU, so
    /// a sink reads its ring before it fills even beside a busy generator or a polling switch
    /// (and, where its frames carry no arrival stamp, a wait for a time slice does not count as
    /// the switch's latency).
    pub fn start_with(
        ns: &str,
        cpu: Option<usize>,
        realtime: bool,
        role: &str,
        dev: &str,
    ) -> Result<Agent, String> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]);
        if let Some(c) = cpu {
            cmd.args(["taskset", "-c", &c.to_string()]);
        }
        if realtime {
            cmd.args(["chrt", "-f", "10"]);
        }
        let mut child = cmd
            .arg(me)
            .args(["agent", role, dev])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut a = Agent {
            child,
            stdin,
            stdout,
        };
        let hello = a.read()?;
        if hello != "ready" {
            return Err(format!("{role} agent: {hello}"));
        }
        Ok(a)
    }

    pub fn write(&mut self, cmd: &str) -> Result<(), String> {
        writeln!(self.stdin, "{cmd}").map_err(|e| e.to_string())?;
        self.stdin.flush().map_err(|e| e.to_string())
    }

    pub fn read(&mut self) -> Result<String, String> {
        let mut l = String::new();
        self.stdout.read_line(&mut l).map_err(|e| e.to_string())?;
        if l.is_empty() {
            return Err("agent exited".into());
        }
        Ok(l.trim().to_owned())
    }

    pub fn ask(&mut self, cmd: &str) -> Result<Vec<f64>, String> {
        self.write(cmd)?;
        let r = self.read()?;
        Ok(r.split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect())
    }

    /// The agent's pid, to read its namespace's counters.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops a daemon the harness started: SIGTERM (it closes its ports and detaches its programs),
/// then SIGKILL if it has not exited within 5 s.
pub fn stop(mut child: Child) {
    crate::interrupt::untrack(child.id());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end && !matches!(child.try_wait(), Ok(Some(_))) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The machine-wide harness lock, held while this lives: the harness's namespaces have fixed
/// names, so two runs on one machine take turns instead of tearing down each other's topologies.
/// Its file is removed when it is dropped (while still held), so a run leaves nothing behind.
#[derive(Debug)]
pub struct HarnessLock {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Drop for HarnessLock {
    fn drop(&mut self) {
        // Removed while locked: a run waiting on this file finds it gone once it gets the lock,
        // and opens a new one (`HarnessLock::take`).
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

impl HarnessLock {
    /// Waits for the lock whose file is `path`. A file a holder removed while this waited on
    /// it is no longer the lock: then again with the file now at `path`.
    pub fn take(path: &std::path::Path) -> std::io::Result<HarnessLock> {
        use std::os::unix::fs::MetadataExt;
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)?;
            file.lock()?;
            let held = file.metadata()?;
            match std::fs::metadata(path) {
                Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => {
                    return Ok(HarnessLock {
                        file,
                        path: path.to_owned(),
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The harness lock this process holds, if any ([`exclusive`]).
static HELD: std::sync::Mutex<Option<HarnessLock>> = std::sync::Mutex::new(None);

/// Takes the machine-wide harness lock ([`HarnessLock`], `qswitch-bench.lock` in the temporary
/// directory) for this process, until [`release`].
pub fn exclusive() -> std::io::Result<()> {
    let lock = HarnessLock::take(&std::env::temp_dir().join("qswitch-bench.lock"))?;
    *HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(lock);
    Ok(())
}

/// Releases the harness lock this process holds, its file removed; nothing if it holds none.
/// The process calls it before it exits, on every path (a run's end, a failure, an interrupt's
/// teardown): `process::exit` runs no destructors.
pub fn release() {
    let held = HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    drop(held);
}

#[cfg(test)]
mod tests {
    use super::HarnessLock;

    #[test]
    fn the_harness_lock_is_taken_in_turn_and_leaves_no_file() {
        let path = std::env::temp_dir().join(format!("qsb-lock-test-{}", std::process::id()));
        let first = HarnessLock::take(&path).expect("lock");
        assert!(path.exists());
        // A second taker waits until the first is dropped, then holds a file of its own.
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                let l = HarnessLock::take(&path).expect("lock");
                let held = std::time::Instant::now();
                drop(l);
                held
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        let released = std::time::Instant::now();
        drop(first);
        let held = waiter.join().expect("waiter");
        assert!(
            held >= released,
            "the second took the lock while the first held it"
        );
        assert!(!path.exists(), "the lock's file was left behind");
    }
}
