//! The kernel boundary: the only module of the data plane that uses `unsafe`.
//!
//! - [`umem`]: the frame memory shared with the kernel, with per-frame ownership tracking that
//!   makes handing out `&mut [u8]` to a frame sound (a frame is either the kernel's or ours).
//! - [`ring`]: the four AF_XDP rings (fill, completion, RX, TX) as safe producer/consumer types.
//! - [`xsk`]: AF_XDP sockets: UMEM registration, shared UMEM binding, wakeups, statistics.
//! - [`bpf`]: the `bpf()` syscalls that create an XSKMAP, load the 6-instruction redirect
//!   program (or, for the benchmark's sink, a variant stamping arrival times) and attach it with
//!   a BPF link (which detaches by itself when its fd closes).
//! - [`monotonic_ns`]: the clock BPF programs read (`bpf_ktime_get_ns`).
//! - [`prefetch`]: the CPU's cache prefetch hint, for the worker's batches.
//! - [`netdev`]: interface lookups (index, queues, MTU, state).
//!
//! Every `unsafe` block carries a `// SAFETY:` comment naming the invariant it relies on.
#![allow(unsafe_code)]

pub mod bpf;
pub mod netdev;
pub mod ring;
pub mod umem;
pub mod wake;
pub mod xsk;

use std::io;

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `bpf_ktime_get_ns`, one for every process of
/// the host outside time namespaces.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Asks the CPU to bring the cache line at `p` closer: a hint, which performs no access the
/// program can observe, never faults (`p` need not point anywhere valid) and may be ignored; a
/// no-op on other architectures than x86_64. The worker issues it for the frames of a batch
/// ahead of their turn: in copy mode the kernel usually wrote each on another core (the one
/// that received it), so the first read of each would otherwise stall for the line's transfer,
/// one frame after another (VPP's graph nodes prefetch the same way).
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only hints the cache hierarchy: it reads nothing the program sees and
    // does not fault, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The CPUs this thread may run on (its affinity mask), in rising order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero bytes are a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: `set` is valid and writable and its exact size is passed; pid 0 is this thread.
    check(unsafe {
        libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set)
    })?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: every index is below the set's capacity, and `set` was filled in above.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// The last OS error, as an `io::Error`.
pub(crate) fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// Turns a `-1` return into the OS error.
pub(crate) fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(last_error())
    } else {
        Ok(ret)
    }
}

/// Pins the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero bytes are a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "CPU out of range",
        ));
    }
    // SAFETY: `cpu` was checked against the set's capacity just above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid, initialised set and its exact size is passed; pid 0 is this thread.
    check(unsafe { libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set) })
        .map(drop)
}
