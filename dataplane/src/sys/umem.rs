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
//!   that port's rings held, without knowing which ring held it.

use std::io;
use std::ptr::NonNull;

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
        // SAFETY: an anonymous private mapping with no address hint; the result is checked below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(super::last_error());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(super::last_error)?;
        Ok(Umem {
            base,
            len,
            chunk_shift: chunk_size.trailing_zeros(),
            owner: vec![OWNER_FREE; frames as usize],
            free: (0..frames).rev().collect(),
            reserve: frames as usize / 8,
        })
    }

    /// The region's start and length, for `XDP_UMEM_REG`.
    pub(crate) fn region(&self) -> (*mut u8, usize) {
        (self.base.as_ptr(), self.len)
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
        if self.free.len() <= self.reserve {
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
            Some(i) if self.owner[i] == OWNER_USER => {
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
            Some(i) if self.owner[i] == slot => {
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
            Some(i) if self.owner[i] == slot => {
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
        // SAFETY: `base`/`len` are exactly the mapping made in `new`; all sockets using it hold a
        // borrow-free registration that the owning worker closes before dropping the UMEM.
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
}
