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
//! - [`huge_pages`]: asks for a large table's memory in 2 MiB pages (the MAC table's).
//! - [`netdev`]: interface lookups (index, queues, MTU, state).
//! - [`packet`]: packet sockets that send a TCP super-frame whole, with a virtio-net header.
//!
//! Every `unsafe` block carries a `// SAFETY:` comment naming the invariant it relies on.
#![allow(unsafe_code)]

pub mod bpf;
pub mod netdev;
pub mod packet;
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

/// Does this process run as root (effective user 0)? For tests that need the kernel's
/// privileges (BPF maps and programs): they run as root in CI and skip elsewhere.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Size of a transparent huge page on x86_64 and arm64 with 4 KiB base pages.
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the memory of `table` with 2 MiB pages, now (`MADV_COLLAPSE`, Linux
/// 6.1) and when its pages are faulted in again (`MADV_HUGEPAGE`): only the 2 MiB-aligned
/// stretches inside it. A table of 2 MiB or less has none; up to 4 MiB it depends on where the
/// allocator put it; from 4 MiB there is one at least. A table read at random (the MAC table of
/// a million addresses is 48 MiB) otherwise misses the TLB on nearly every access, and each
/// miss walks the page tables. Only advice: `Ok(true)` when the stretches were collapsed,
/// `Ok(false)` when there were none or the operator turned transparent huge pages off
/// (`/sys/kernel/mm/transparent_hugepage/enabled` is `never`, which `MADV_COLLAPSE` alone would
/// not respect), and the kernel's refusal otherwise (older kernels, or no huge page free); the
/// table is the same either way.
pub fn huge_pages<T>(table: &[T]) -> io::Result<bool> {
    let start = table.as_ptr() as usize;
    let end = start + core::mem::size_of_val(table);
    let from = start
        .checked_next_multiple_of(HUGE_PAGE)
        .unwrap_or(usize::MAX);
    let to = end & !(HUGE_PAGE - 1);
    if to <= from || huge_pages_off() {
        return Ok(false);
    }
    let (p, len) = (from as *mut libc::c_void, to - from);
    // SAFETY: advice on a range of whole pages inside `table`'s own allocation; neither call
    // changes what any byte of it holds (a collapse copies the pages' contents into the huge
    // page, atomically for the process), so the references to it stay valid.
    unsafe {
        libc::madvise(p, len, libc::MADV_HUGEPAGE);
        check(libc::madvise(p, len, libc::MADV_COLLAPSE))?;
    }
    Ok(true)
}

/// Has the operator turned transparent huge pages off for every process?
fn huge_pages_off() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFF.get_or_init(|| {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|s| s.contains("[never]"))
    })
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

/// The running kernel's version, `(major, minor)` (`(0, 0)` if unreadable).
pub fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release
        .split(['.', '-'])
        .map(|x| x.trim().parse::<u32>().unwrap_or(0));
    (v.next().unwrap_or(0), v.next().unwrap_or(0))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_table_keeps_its_contents_in_huge_pages_and_a_small_one_is_left_alone() {
        assert!(
            !huge_pages(&vec![0u64; 1 << 16]).unwrap(),
            "512 KiB holds no aligned huge page"
        );
        // 24 MiB: eleven aligned huge pages at least, wherever the allocator put it.
        let table: Vec<u64> = (0..3u64 << 20)
            .map(|i| i.wrapping_mul(0x9E37_79B9))
            .collect();
        let collapsed = huge_pages(&table);
        assert!(table
            .iter()
            .enumerate()
            .all(|(i, &v)| v == (i as u64).wrapping_mul(0x9E37_79B9)));
        // Where the kernel can (transparent huge pages not off; MADV_COLLAPSE since 6.1), it did,
        // unless it had no huge page to give at the moment (ENOMEM, EAGAIN: memory fragmented).
        let (major, minor) = kernel_version();
        match collapsed {
            Ok(done) => assert_eq!(done, !huge_pages_off()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOMEM | libc::EAGAIN)) => {
                eprintln!("no huge page to be had now: {e}");
            }
            Err(e) => assert!((major, minor) < (6, 1), "MADV_COLLAPSE refused: {e}"),
        }
    }
}
