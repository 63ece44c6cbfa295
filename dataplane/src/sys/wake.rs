//! Waking an idle worker: an `eventfd` that the switch (a command) and the other workers (a frame
//! crossing to it) write, and `poll(2)` on it and on the worker's AF_XDP sockets, whose readiness
//! the kernel signals when it puts frames on their RX rings.
//!
//! The handshake is the classic one for a sleeper and its wakers. The worker sets `sleeping`,
//! then looks at everything once more (commands, crossing frames, RX rings), and only then
//! blocks; a waker first publishes its work (a command's flag, a frame in a channel), then reads
//! `sleeping` and writes the eventfd only if it is set. With sequentially consistent fences on
//! both sides, either the worker's last look sees the work or the waker sees the flag: no wake-up
//! is lost, and a busy worker costs its wakers one load.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::time::Duration;

use super::check;

/// One worker's wake-up: see the module's documentation.
#[derive(Debug)]
pub struct Wake {
    fd: OwnedFd,
    sleeping: AtomicBool,
}

impl Wake {
    /// A non-blocking eventfd.
    pub fn new() -> io::Result<Wake> {
        // SAFETY: plain eventfd creation; the result is checked and owned right away.
        let raw = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        Ok(Wake {
            // SAFETY: `raw` is a fresh fd that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
            sleeping: AtomicBool::new(false),
        })
    }

    /// Wakes the worker if it sleeps (or is about to). Call after publishing the work.
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd this struct owns. A full
            // counter (EAGAIN) means a wake-up is pending already.
            let _ = unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    (&one as *const u64).cast(),
                    core::mem::size_of::<u64>(),
                )
            };
        }
    }

    /// Marks the worker as about to sleep; it must look for work once more before [`Wake::wait`]
    /// (and call [`Wake::awake`] if it finds some).
    pub fn going_to_sleep(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Marks the worker awake: wakers stop writing.
    pub fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Blocks until a waker writes, one of `fds` is readable, or `timeout` passes; then marks
    /// the worker awake and consumes the wake-up. `fds` is scratch space the caller keeps:
    /// its sockets' descriptors, the eventfd is added here.
    pub fn wait(&self, fds: &mut Vec<libc::pollfd>, timeout: Duration) {
        fds.push(libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let ms = i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a live, exclusively borrowed array of `fds.len()` pollfd structs,
        // which the kernel only writes the `revents` fields of. An error (EINTR) only ends the
        // wait early.
        let _ = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        fds.pop();
        self.awake();
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from the non-blocking eventfd this struct owns;
        // with no pending wake-up it fails with EAGAIN, which is ignored.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                core::mem::size_of::<u64>(),
            )
        };
    }
}

/// The entry [`Wake::wait`] needs for a socket that signals received frames.
pub fn readable(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_notify_while_sleeping_ends_the_wait_and_one_while_awake_costs_nothing() {
        let w = Arc::new(Wake::new().unwrap());
        // Awake: nothing is written, so a later wait runs to its timeout.
        w.notify();
        let mut fds = Vec::new();
        w.going_to_sleep();
        let t = Instant::now();
        w.wait(&mut fds, Duration::from_millis(30));
        assert!(t.elapsed() >= Duration::from_millis(25));
        assert!(fds.is_empty());
        // Asleep: a notify from another thread ends the wait long before its timeout.
        w.going_to_sleep();
        let waker = Arc::clone(&w);
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            waker.notify();
        });
        let t = Instant::now();
        w.wait(&mut fds, Duration::from_secs(30));
        assert!(t.elapsed() < Duration::from_secs(10));
        h.join().unwrap();
        // The wake-up was consumed: the next wait sleeps again.
        w.going_to_sleep();
        let t = Instant::now();
        w.wait(&mut fds, Duration::from_millis(30));
        assert!(t.elapsed() >= Duration::from_millis(25));
    }
}
