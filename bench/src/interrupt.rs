//! Ctrl-C (SIGINT), SIGTERM and SIGHUP end a run cleanly: a watcher thread stops the daemons the
//! harness started in the root namespace, stops every process inside the harness's namespaces,
//! deletes the namespaces and exits with status 130.
//!
//! The signal handler only sets a flag (`signal_hook::flag`); everything else happens on the
//! watcher thread, where it is safe to fork `ip` and `kill`.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
static TRACKED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Installs the handlers and starts the watcher. Call once, before building anything.
pub fn install() -> std::io::Result<()> {
    let flag = FLAG
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone();
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        // A second signal while the teardown runs ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || loop {
            if flag.load(Ordering::Relaxed) {
                crate::progress::clear();
                // stderr may be gone (SIGHUP, a closed pipe): never panic on it here.
                let say = |m: &str| {
                    let _ = writeln!(std::io::stderr(), "qswitch-bench: {m}");
                };
                say("interrupted, tearing down");
                let pids: Vec<String> = tracked().iter().map(u32::to_string).collect();
                crate::topo::terminate(&pids, Duration::from_secs(5));
                // The main thread may create a namespace or two before it notices: go again
                // until none is left.
                for _ in 0..5 {
                    if !crate::topo::teardown() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                say("torn down");
                crate::agent::release();
                std::process::exit(130);
            }
            std::thread::sleep(Duration::from_millis(20));
        })?;
    Ok(())
}

/// Has a stop been asked for? (The main thread then leaves the teardown to the watcher.)
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// Waits for the watcher to finish the teardown and exit (or exits after 60 s, if it could not).
pub fn wait_for_exit() -> ! {
    std::thread::sleep(Duration::from_secs(60));
    crate::agent::release();
    std::process::exit(130);
}

/// Fails once a stop has been asked for: building steps call it so that nothing new is created
/// while the watcher tears down.
pub fn check() -> Result<(), String> {
    if requested() {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Remembers a daemon the harness started, to stop it on interrupt.
pub fn track(pid: u32) {
    if let Ok(mut t) = TRACKED.lock() {
        t.push(pid);
    }
}

/// Forgets a daemon that has been stopped.
pub fn untrack(pid: u32) {
    if let Ok(mut t) = TRACKED.lock() {
        t.retain(|&p| p != pid);
    }
}

fn tracked() -> Vec<u32> {
    TRACKED.lock().map(|t| t.clone()).unwrap_or_default()
}
