//! The UMEM: frame memory registered with the kernel and shared by all ports of a worker, so
//! forwarding moves descriptors, not bytes.
//!
//! # Design
//! The region is an anonymous mapping of `frames x chunk_size` bytes. Every chunk has an owner:
//! free (in the pool), the worker (user space, between RX and TX), or a port (the kernel holds it
//! in that port's fill, RX, TX or completion ring). Every move between owners goes through this
//! type and is checked, which gives three things:
//! * soundness: [`Umem::chunk_mut`] hands out `&mut [u8]` only for chunks the worker owns, so
//!   user space never touches memory the kernel may be writing;
//! * frame accounting: free + worker + sum over ports = all frames, at all times, and the tests
//!   check it ([`Umem::accounting`]);
//! * clean port removal: after a socket is closed, [`Umem::reclaim_port`] returns every chunk
//!   that port's rings held, without knowing which ring held it. A port whose sockets close on
//!   another thread is *buried* ([`Umem::bury`]): its chunks stay its own until that thread
//!   reports the sockets gone, then [`Umem::reap`] returns them. Dropping the UMEM waits (2 s
//!   at most) for buried ports' sockets to close first; were it unmapped before, the kernel
//!   would still write only into the pages it pinned, never into memory reused since.
//!
//! The region starts on a huge-page boundary and asks for transparent huge pages, which makes
//! each registration with the kernel (one per port) about ten times cheaper.

use super::HUGE_PAGE;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Owner value of a chunk in the free pool.
pub const OWNER_FREE: u16 = u16::MAX;
/// Owner value of a chunk held by the worker.
pub const OWNER_USER: u16 = u16::MAX - 1;

/// Bytes the kernel leaves before a received frame (`XDP_PACKET_HEADROOM`).
pub const KERNEL_HEADROOM: u32 = 256;

/// Frame memory with ownership tracking.
pub struct Umem {
    base: NonNull<u8>,
    len: usize,
    chunk_shift: u32,
    owner: Vec<u16>,
    free: Vec<u32>,
    reserve: usize,
    /// Closed ports whose sockets another thread is still releasing, each with the flag set
    /// once they are: their chunks stay theirs until then.
    graves: Vec<(u16, Arc<AtomicBool>)>,
}

// SAFETY: the region is plain memory owned by this value; the raw pointer is only dereferenced
// through `&mut self` methods, so moving the value to another thread moves exclusive access.
unsafe impl Send for Umem {}

impl core::fmt::Debug for Umem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Umem")
            .field("frames", &self.owner.len())
            .field("chunk_size", &self.chunk_size())
            .field("free", &self.free.len())
            .finish()
    }
}

/// What registering a UMEM with a socket (`XDP_UMEM_REG`) needs: where its frames are and their
/// size. Plain values, so that a port can be opened on another thread than its worker's: the
/// kernel only ever writes into chunks the worker hands it on a fill ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub(crate) addr: usize,
    pub(crate) len: usize,
    pub(crate) chunk_size: u32,
}

/// Where the frames are, as counted by [`Umem::accounting`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounting {
    /// All frames.
    pub total: usize,
    /// In the free pool.
    pub free: usize,
    /// Held by the worker.
    pub user: usize,
    /// Held by the kernel for each port slot (index = slot).
    pub by_port: Vec<(u16, usize)>,
}

impl Accounting {
    /// Frames held by the kernel, over all ports.
    pub fn in_kernel(&self) -> usize {
        self.by_port.iter().map(|(_, n)| n).sum()
    }
}

fn base_page() -> usize {
    // SAFETY: sysconf reads a constant of the system; no memory is involved.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096).max(4096)
}

/// Maps `len` bytes of zeroed, populated memory starting on a huge-page boundary and asks for
/// transparent huge pages. Registering the region with the kernel (`XDP_UMEM_REG` pins and maps
/// every page) is what a port that registers the UMEM waits for: 64 MiB in 4 KiB pages took 3 to
/// 4 ms idle and 10 ms under load here, in 2 MiB pages 0.3 to 0.5 ms. Where transparent huge
/// pages are off (`/sys/kernel/mm/transparent_hugepage/enabled` = `never`) the region is
/// plain pages, as before.
fn map_huge(len: usize) -> io::Result<NonNull<u8>> {
    let page = base_page();
    let mapped = len.next_multiple_of(page);
    let align = HUGE_PAGE.max(page);
    let span = mapped + align;
    // SAFETY: an anonymous private mapping with no address hint; the result is checked below.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(super::last_error());
    }
    let start = p as usize;
    let head = start.next_multiple_of(align) - start;
    let tail = span - head - mapped;
    // SAFETY: both ranges lie inside the mapping just made, are page-aligned (mmap returns
    // page-aligned addresses and `head`, `mapped` and `align` are page multiples) and nothing
    // refers to them yet; what stays mapped is exactly `[start + head, start + head + mapped)`,
    // which `Drop` unmaps (munmap rounds `len` up to `mapped`).
    unsafe {
        if head > 0 {
            libc::munmap(p, head);
        }
        if tail > 0 {
            libc::munmap((start + head + mapped) as *mut libc::c_void, tail);
        }
    }
    let base = (start + head) as *mut libc::c_void;
    // SAFETY: advice on the range this function owns; neither call changes its contents (fresh
    // anonymous memory reads as zeros either way). Huge pages are a hint: an error (THP compiled
    // out) leaves plain pages.
    let populated = unsafe {
        libc::madvise(base, mapped, libc::MADV_HUGEPAGE);
        libc::madvise(base, mapped, libc::MADV_POPULATE_WRITE) == 0
    };
    if !populated {
        // Kernels before 5.14: fault every page in now, so that the data path never faults.
        for off in (0..mapped).step_by(page) {
            // SAFETY: `off < mapped`, inside the writable mapping owned here.
            unsafe { core::ptr::write_volatile(base.cast::<u8>().add(off), 0) };
        }
    }
    NonNull::new(base.cast::<u8>()).ok_or_else(super::last_error)
}

impl Umem {
    /// Maps `frames` chunks of `chunk_size` bytes (a power of two, 2048 or 4096).
    pub fn new(frames: u32, chunk_size: u32) -> io::Result<Umem> {
        if !chunk_size.is_power_of_two() || !(2048..=65536).contains(&chunk_size) || frames == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad UMEM geometry",
            ));
        }
        let len = frames as usize * chunk_size as usize;
        let base = map_huge(len)?;
        Ok(Umem {
            base,
            len,
            chunk_shift: chunk_size.trailing_zeros(),
            owner: vec![OWNER_FREE; frames as usize],
            free: (0..frames).rev().collect(),
            reserve: frames as usize / 8,
            graves: Vec::new(),
        })
    }

    /// Where the frames are and their geometry, for `XDP_UMEM_REG`.
    pub fn region(&self) -> Region {
        Region {
            addr: self.base.as_ptr() as usize,
            len: self.len,
            chunk_size: self.chunk_size(),
        }
    }

    /// Bytes per chunk.
    pub fn chunk_size(&self) -> u32 {
        1 << self.chunk_shift
    }

    /// Number of chunks.
    pub fn frames(&self) -> usize {
        self.owner.len()
    }

    /// Chunks in the free pool.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    #[inline]
    fn index(&self, addr: u64) -> Option<usize> {
        let i = usize::try_from(addr >> self.chunk_shift).ok()?;
        (i < self.owner.len()).then_some(i)
    }

    #[inline]
    fn base_of(&self, index: usize) -> u64 {
        (index as u64) << self.chunk_shift
    }

    /// The address of the chunk containing `addr`.
    #[inline]
    pub fn chunk_base(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.chunk_size()) - 1)
    }

    /// Takes a free chunk for the worker. Returns its base address.
    #[inline]
    pub fn alloc(&mut self) -> Option<u64> {
        let i = self.free.pop()? as usize;
        self.owner[i] = OWNER_USER;
        Some(self.base_of(i))
    }

    /// Takes a free chunk and gives it straight to port `slot` (for its fill ring), unless the
    /// pool is down to its reserve: fill rings cannot be drained back, so an eighth of the frames
    /// is kept for flood copies and tag pushes, whatever the number of ports.
    #[inline]
    pub fn alloc_for(&mut self, slot: u16) -> Option<u64> {
        // (A slot that reads as an owner mark, such as the "no slot" of a socket bound ahead,
        // holds nothing.)
        if self.free.len() <= self.reserve || slot >= OWNER_USER {
            return None;
        }
        let i = self.free.pop()? as usize;
        self.owner[i] = slot;
        Some(self.base_of(i))
    }

    /// Returns a worker-held chunk to the pool.
    #[inline]
    pub fn release(&mut self, addr: u64) {
        if let Some(i) = self.index(addr) {
            if self.owner[i] == OWNER_USER {
                self.owner[i] = OWNER_FREE;
                self.free.push(i as u32);
            }
        }
    }

    /// Hands a worker-held chunk to port `slot` (its TX ring). False if the worker did not hold it.
    #[inline]
    pub fn give(&mut self, addr: u64, slot: u16) -> bool {
        match self.index(addr) {
            Some(i) if self.owner[i] == OWNER_USER && slot < OWNER_USER => {
                self.owner[i] = slot;
                true
            }
            _ => false,
        }
    }

    /// Takes back a chunk port `slot` returned (RX or completion). False for an address that port
    /// did not hold (a kernel bug or a stale descriptor): the caller counts and ignores it.
    #[inline]
    pub fn take(&mut self, addr: u64, slot: u16) -> bool {
        match self.index(addr) {
            Some(i) if self.owner[i] == slot && slot < OWNER_USER => {
                self.owner[i] = OWNER_USER;
                true
            }
            _ => false,
        }
    }

    /// Takes back a completed TX chunk of port `slot` straight into the pool.
    #[inline]
    pub fn complete(&mut self, addr: u64, slot: u16) -> bool {
        match self.index(addr) {
            Some(i) if self.owner[i] == slot && slot < OWNER_USER => {
                self.owner[i] = OWNER_FREE;
                self.free.push(i as u32);
                true
            }
            _ => false,
        }
    }

    /// Returns to the pool every chunk port `slot` holds. Call only once the kernel can no longer
    /// use them (the port's sockets are closed). Returns how many were reclaimed.
    pub fn reclaim_port(&mut self, slot: u16) -> usize {
        if slot >= OWNER_USER {
            // An owner mark, not a port: the free pool would get its chunks twice.
            return 0;
        }
        let mut n = 0;
        for (i, o) in self.owner.iter_mut().enumerate() {
            if *o == slot {
                *o = OWNER_FREE;
                self.free.push(i as u32);
                n += 1;
            }
        }
        n
    }

    /// Leaves every chunk port `slot` holds with it until `released` is set: its sockets are
    /// being closed on another thread (closing an AF_XDP socket waits for an RCU grace period,
    /// 5 to 30 ms here, which the worker does not spend). [`Umem::reap`] then reclaims them.
    /// Until then the slot must not be reused ([`Umem::unbury`]).
    pub fn bury(&mut self, slot: u16, released: Arc<AtomicBool>) {
        self.graves.push((slot, released));
    }

    /// Are chunks of closed ports waiting for their sockets' release?
    pub fn has_graves(&self) -> bool {
        !self.graves.is_empty()
    }

    /// Reclaims the chunks of buried ports whose sockets are released. Returns how many. A slot
    /// buried twice (a port that was opened for it and closed again before the first was
    /// released) is reclaimed once both are released: its chunks carry no mark of which port
    /// held them.
    pub fn reap(&mut self) -> usize {
        if self.graves.is_empty() {
            return 0;
        }
        let mut n = 0;
        let mut i = 0;
        while i < self.graves.len() {
            let slot = self.graves[i].0;
            let released = self
                .graves
                .iter()
                .filter(|(s, _)| *s == slot)
                .all(|(_, r)| r.load(Ordering::Acquire));
            if released {
                self.graves.retain(|(s, _)| *s != slot);
                n += self.reclaim_port(slot);
                i = 0;
            } else {
                i += 1;
            }
        }
        n
    }

    /// Waits (at most `timeout`) until port `slot`, if buried, is released, and reclaims its
    /// chunks, so that the slot can be opened again. False if it is still held.
    pub fn unbury(&mut self, slot: u16, timeout: Duration) -> bool {
        self.settle_graves(timeout, |s| s == slot)
    }

    /// Waits (at most `timeout`) until every buried port is released, and reclaims their
    /// chunks. False if some are still held.
    pub fn reap_all(&mut self, timeout: Duration) -> bool {
        self.settle_graves(timeout, |_| true)
    }

    fn settle_graves(&mut self, timeout: Duration, which: impl Fn(u16) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            self.reap();
            if !self.graves.iter().any(|(s, _)| which(*s)) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// The whole chunk containing `addr`, if the worker holds it, and `addr`'s offset in it.
    #[inline]
    pub fn chunk_mut(&mut self, addr: u64) -> Option<(&mut [u8], usize)> {
        let i = self.index(addr)?;
        if self.owner[i] != OWNER_USER {
            return None;
        }
        let size = self.chunk_size() as usize;
        let off = (addr - self.base_of(i)) as usize;
        // SAFETY: `i` is a valid chunk index, so `i * size .. (i + 1) * size` lies inside the
        // mapping. The chunk is owned by the worker (checked above): it is in no ring, so the
        // kernel does not access it, and the `&mut self` borrow makes this the only reference.
        let chunk =
            unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr().add(i * size), size) };
        Some((chunk, off))
    }

    /// The `len` bytes at `addr`, if the worker holds the chunk and they lie inside it.
    #[inline]
    pub fn frame(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        let (chunk, off) = self.chunk_mut(addr)?;
        chunk.get_mut(off..off.checked_add(len as usize)?)
    }

    /// Prefetches the first cache line of the frame at `addr` (see [`super::prefetch`]); an
    /// address outside the region is ignored. Reads nothing, so the chunk may be anyone's.
    #[inline]
    pub fn prefetch(&self, addr: u64) {
        if let Ok(off) = usize::try_from(addr) {
            if off < self.len {
                super::prefetch(self.base.as_ptr().wrapping_add(off));
            }
        }
    }

    /// The `len` bytes just before the frame at `addr` (where its XDP metadata lands), if the
    /// worker holds the chunk and they lie inside it.
    pub fn meta(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let (chunk, off) = self.chunk_mut(addr)?;
        chunk.get_mut(off.checked_sub(len)?..off)
    }

    /// Copies the frame at `src` (`len` bytes) into a new chunk at offset `KERNEL_HEADROOM`.
    /// Returns the new frame's address, or `None` if the pool is empty.
    pub fn copy_frame(&mut self, src: u64, len: u32) -> Option<u64> {
        let dst = self.alloc()?;
        let size = self.chunk_size() as usize;
        let (Some(si), Some(di)) = (self.index(src), self.index(dst)) else {
            self.release(dst);
            return None;
        };
        let soff = (src - self.base_of(si)) as usize;
        let doff = KERNEL_HEADROOM as usize;
        let n = len as usize;
        if self.owner[si] != OWNER_USER || soff + n > size || doff + n > size {
            self.release(dst);
            return None;
        }
        // SAFETY: both chunks are worker-owned (checked above and by `alloc`), distinct (a chunk
        // just taken from the pool is not the source), and both ranges were checked to lie inside
        // their chunks, which lie inside the mapping.
        unsafe {
            let b = self.base.as_ptr();
            core::ptr::copy_nonoverlapping(b.add(si * size + soff), b.add(di * size + doff), n);
        }
        Some(dst + u64::from(KERNEL_HEADROOM))
    }

    /// Where every frame is.
    pub fn accounting(&self) -> Accounting {
        let mut free = 0;
        let mut user = 0;
        let mut by_port = std::collections::BTreeMap::new();
        for &o in &self.owner {
            match o {
                OWNER_FREE => free += 1,
                OWNER_USER => user += 1,
                s => *by_port.entry(s).or_insert(0usize) += 1,
            }
        }
        debug_assert_eq!(free, self.free.len());
        Accounting {
            total: self.owner.len(),
            free,
            user,
            by_port: by_port.into_iter().collect(),
        }
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // Sockets still closing on other threads go first (a worker that stops waits for them;
        // this covers one that unwinds).
        if !self.reap_all(Duration::from_secs(2)) {
            tracing::warn!("UMEM unmapped while a closed port's sockets were still being released");
        }
        // SAFETY: `base`/`len` are exactly the mapping made in `new`, and nothing in this process
        // refers to it past this point (the worker's borrows of frames end before it drops its
        // UMEM). A socket still bound to it (one whose release outlasted the wait above, or one
        // bound ahead on this worker's UMEM by the switch) does not make this unsound:
        // `XDP_UMEM_REG` pinned the pages, so the kernel and a device keep writing into pages
        // that stay allocated until the last registration goes, never into memory mapped here
        // later.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_moves_are_checked_and_accounted() {
        let mut u = Umem::new(8, 2048).unwrap();
        let a = u.alloc_for(3).unwrap();
        // Fill rings may take the pool down to its reserve (an eighth), copies may take the rest.
        let fills: Vec<u64> = std::iter::from_fn(|| u.alloc_for(4)).collect();
        assert_eq!(fills.len(), 8 - 1 - 1);
        let copy = u.alloc().expect("the reserve serves copies");
        u.release(copy);
        for f in fills {
            assert!(u.take(f, 4));
            u.release(f);
        }
        assert!(
            u.chunk_mut(a).is_none(),
            "kernel-held chunk must not be readable"
        );
        assert!(!u.take(a, 4), "another port cannot return it");
        assert!(u.take(a + 256, 3));
        u.frame(a + 256, 64).unwrap().fill(7);
        let c = u.copy_frame(a + 256, 64).unwrap();
        assert_eq!(u.frame(c, 64).unwrap(), &[7; 64][..]);
        assert!(u.frame(a + 2000, 64).is_none(), "range past the chunk");
        assert!(u.give(a, 5));
        let acc = u.accounting();
        assert_eq!((acc.total, acc.free, acc.user), (8, 6, 1));
        assert_eq!(acc.by_port, vec![(5, 1)]);
        assert_eq!(u.reclaim_port(5), 1);
        u.release(c);
        assert_eq!(u.free_frames(), 8);
    }

    /// The owner marks are no port's slot: a socket that carries one (bound ahead, "no slot")
    /// is given no chunk, and reclaiming "its" chunks does not put the free ones in the pool
    /// twice.
    #[test]
    fn an_owner_mark_is_no_ports_slot() {
        let mut u = Umem::new(8, 2048).unwrap();
        for mark in [OWNER_FREE, OWNER_USER] {
            assert_eq!(u.alloc_for(mark), None);
            let a = u.alloc().unwrap();
            assert!(!u.give(a, mark));
            u.release(a);
            // A free chunk is not taken back from "port" OWNER_FREE (it would be handed out
            // twice), nor completed into the pool again.
            assert!(!u.take(a, mark));
            assert!(!u.complete(a, mark));
            assert_eq!(u.reclaim_port(mark), 0);
            assert_eq!(u.free_frames(), 8);
            let acc = u.accounting();
            assert_eq!((acc.free, acc.user), (8, 0));
        }
    }

    #[test]
    fn a_closed_ports_chunks_come_back_once_its_sockets_are_released() {
        let mut u = Umem::new(64, 2048).unwrap();
        let held: Vec<u64> = (0..10).map(|_| u.alloc_for(2).unwrap()).collect();
        u.alloc_for(3).unwrap();
        let released = Arc::new(AtomicBool::new(false));
        u.bury(2, Arc::clone(&released));
        assert_eq!(u.reap(), 0, "still being released");
        assert!(
            !u.unbury(2, Duration::from_millis(2)),
            "the slot is still held"
        );
        assert!(u.unbury(3, Duration::ZERO), "another slot is not");
        assert_eq!(u.accounting().by_port, vec![(2, 10), (3, 1)]);
        released.store(true, Ordering::Release);
        assert_eq!(u.reap(), held.len());
        assert_eq!(u.accounting().by_port, vec![(3, 1)]);
        assert!(u.unbury(2, Duration::ZERO));

        // Released from another thread while the worker waits.
        let late = Arc::new(AtomicBool::new(false));
        u.bury(3, Arc::clone(&late));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            late.store(true, Ordering::Release);
        });
        assert!(u.reap_all(Duration::from_secs(5)));
        t.join().unwrap();
        assert_eq!(u.free_frames(), 64);

        // A slot buried twice (the second port never started) is reclaimed only once both
        // ports' sockets are released, in whichever order.
        let first: Vec<u64> = (0..4).map(|_| u.alloc_for(5).unwrap()).collect();
        let (old, new) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        u.bury(5, Arc::clone(&old));
        u.bury(5, Arc::clone(&new));
        new.store(true, Ordering::Release);
        assert_eq!(u.reap(), 0, "the first port's sockets may still write");
        assert!(!u.unbury(5, Duration::ZERO));
        old.store(true, Ordering::Release);
        assert_eq!(u.reap(), first.len());
        assert_eq!(u.free_frames(), 64);
    }

    #[test]
    fn the_region_starts_on_a_huge_page_and_reads_as_zeros() {
        // 4 MiB: two huge pages, and a chunk count that is not a page multiple below.
        let mut u = Umem::new(2048, 2048).unwrap();
        let r = u.region();
        assert_eq!(r.addr % HUGE_PAGE, 0);
        assert_eq!((r.len, r.chunk_size), (2048 * 2048, 2048));
        let first = u.alloc().unwrap();
        assert!(u.chunk_mut(first).unwrap().0.iter().all(|&b| b == 0));
        u.chunk_mut(first).unwrap().0.fill(1);
        // An odd number of 2 KiB chunks ends mid-page: still mapped and usable to the end.
        let mut odd = Umem::new(3, 2048).unwrap();
        for _ in 0..3 {
            let a = odd.alloc().unwrap();
            odd.chunk_mut(a).unwrap().0.fill(9);
        }
    }

    #[test]
    fn a_prefetch_moves_no_chunk_and_changes_no_byte() {
        let mut u = Umem::new(4, 2048).unwrap();
        let a = u.alloc().unwrap();
        u.chunk_mut(a).unwrap().0.fill(7);
        let free = u.free_frames();
        // A chunk of the worker's, one still free (the kernel's, in a real port), the region's
        // end and beyond: a hint for each, and nothing moves or changes.
        for addr in [a + 256, 3 * 2048, 4 * 2048, u64::MAX] {
            u.prefetch(addr);
        }
        assert_eq!(u.free_frames(), free);
        assert!(u.chunk_mut(a).unwrap().0.iter().all(|&b| b == 7));
    }
}
