//! The AF_XDP rings as safe single-producer / single-consumer types.
//!
//! # Design
//! Each ring is a power-of-two array of entries in memory shared with the kernel, with a producer
//! and a consumer index (free-running `u32`s) and a flags word. User space produces on the fill
//! and TX rings and consumes on the RX and completion rings. Indices are cached: the other side's
//! index is read (with `Acquire`) only when the cached view says the ring is full or empty, and
//! ours is published with `Release` once per batch. A push never takes more items than there is
//! room for, so no buffer can be lost on a full ring.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// `struct xdp_desc`: one RX or TX descriptor.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpDesc {
    /// Address of the frame in the UMEM.
    pub addr: u64,
    /// Length of the frame.
    pub len: u32,
    /// Options: `XDP_PKT_CONTD` on every chunk of a multi-buffer frame but the last.
    pub options: u32,
}

/// `struct xdp_ring_offset`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RingOffset {
    pub(crate) producer: u64,
    pub(crate) consumer: u64,
    pub(crate) desc: u64,
    pub(crate) flags: u64,
}

/// Entries a ring can hold: descriptors or addresses.
pub trait Entry: Copy + Default {}
impl Entry for u64 {}
impl Entry for XdpDesc {}

/// The ring's `NEED_WAKEUP` flag.
const XDP_RING_NEED_WAKEUP: u32 = 1;

struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<u8>,
    mask: u32,
}

impl Mapping {
    fn new<T: Entry>(
        fd: BorrowedFd<'_>,
        off: &RingOffset,
        size: u32,
        pgoff: i64,
    ) -> io::Result<Self> {
        let len = usize::try_from(off.desc)
            .unwrap_or(usize::MAX)
            .saturating_add(size as usize * core::mem::size_of::<T>());
        // SAFETY: a shared mapping of the ring the kernel created for this socket at `pgoff`, of
        // the size the kernel's own offsets imply; the result is checked below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(super::last_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(super::last_error)?;
        let at = |o: u64| -> io::Result<NonNull<u8>> {
            let o = usize::try_from(o).map_err(|_| io::Error::other("ring offset"))?;
            if o >= len {
                return Err(io::Error::other("ring offset outside mapping"));
            }
            // SAFETY: `o < len`, so the result stays inside the mapping.
            Ok(unsafe { ptr.add(o) })
        };
        let m = Mapping {
            ptr,
            len,
            producer: at(off.producer)?.cast(),
            consumer: at(off.consumer)?.cast(),
            flags: at(off.flags)?.cast(),
            entries: at(off.desc)?,
            mask: size - 1,
        };
        Ok(m)
    }

    #[inline]
    fn producer(&self) -> &AtomicU32 {
        // SAFETY: the kernel places a naturally aligned u32 index at this offset of the mapping,
        // which lives as long as `self`; it is only accessed atomically.
        unsafe { self.producer.as_ref() }
    }

    #[inline]
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    #[inline]
    fn flags(&self) -> u32 {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed)
    }

    #[inline]
    fn entry<T: Entry>(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask < size`, and the mapping holds `size` entries of `T` after `desc`.
        unsafe {
            self.entries
                .cast::<T>()
                .as_ptr()
                .add((idx & self.mask) as usize)
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; no reference into it outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A ring user space produces on (fill, TX).
pub struct ProdRing<T: Entry> {
    map: Mapping,
    size: u32,
    cached_prod: u32,
    cached_cons: u32,
    _t: core::marker::PhantomData<T>,
}

/// A ring user space consumes from (RX, completion).
pub struct ConsRing<T: Entry> {
    map: Mapping,
    cached_prod: u32,
    cached_cons: u32,
    _t: core::marker::PhantomData<T>,
}

// SAFETY: a ring is a handle to shared memory whose user-space side is single-threaded by
// construction (`&mut self` on every operation); moving it to the worker thread is fine.
unsafe impl<T: Entry> Send for ProdRing<T> {}
// SAFETY: as above.
unsafe impl<T: Entry> Send for ConsRing<T> {}

impl<T: Entry> core::fmt::Debug for ProdRing<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ProdRing")
            .field("size", &self.size)
            .finish()
    }
}

impl<T: Entry> core::fmt::Debug for ConsRing<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConsRing")
            .field("size", &(self.map.mask + 1))
            .finish()
    }
}

impl<T: Entry> ProdRing<T> {
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        off: &RingOffset,
        size: u32,
        pgoff: i64,
    ) -> io::Result<Self> {
        let map = Mapping::new::<T>(fd, off, size, pgoff)?;
        let cached_prod = map.producer().load(Ordering::Relaxed);
        let cached_cons = map.consumer().load(Ordering::Acquire);
        Ok(ProdRing {
            map,
            size,
            cached_prod,
            cached_cons,
            _t: core::marker::PhantomData,
        })
    }

    /// Free entries, re-reading the kernel's consumer index only when fewer than `want` are
    /// known to be free.
    #[inline]
    pub fn free(&mut self, want: u32) -> u32 {
        let mut free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free < want {
            self.cached_cons = self.map.consumer().load(Ordering::Acquire);
            free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        }
        free
    }

    /// Entries produced and not yet consumed by the kernel (as last seen).
    pub fn outstanding(&mut self) -> u32 {
        self.cached_cons = self.map.consumer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Pushes as many of `items` as fit and publishes them. Returns how many were pushed; the
    /// rest stay with the caller.
    #[inline]
    pub fn push(&mut self, items: &[T]) -> usize {
        let n = (self.free(items.len() as u32) as usize).min(items.len());
        for (i, item) in items[..n].iter().enumerate() {
            let p = self.map.entry::<T>(self.cached_prod.wrapping_add(i as u32));
            // SAFETY: the entry is in the free part of the ring (`n <= free`), which the kernel
            // does not read until the producer index below is published.
            unsafe { p.write(*item) };
        }
        if n > 0 {
            self.cached_prod = self.cached_prod.wrapping_add(n as u32);
            self.map
                .producer()
                .store(self.cached_prod, Ordering::Release);
        }
        n
    }

    /// Does the kernel ask for a wakeup syscall?
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.map.flags() & XDP_RING_NEED_WAKEUP != 0
    }

    /// Wakes the kernel (`kick`) if it asks for it, or if `force`, and says how many entries
    /// remain on the ring, for another call later.
    ///
    /// A TX ring's `NEED_WAKEUP` flag is how the kernel asks. A zero-copy driver that clears it
    /// while it polls the ring on its own sets it when it stops: a kick it did not ask for is a
    /// wasted syscall, and one it asked for and never got leaves the frames on the ring for
    /// good. So the caller calls again for as long as entries remain. Copy mode, where the kernel
    /// sends only inside the call (a budget of frames a call), is always kicked (`force`): the
    /// flag is set there on current kernels, but was not on some older ones. A kick is also how
    /// a device that went down is found (the call fails), so a ring that stays full is kicked
    /// now and then whatever the flag says.
    #[inline]
    pub fn wake(&mut self, force: bool, kick: impl FnOnce() -> io::Result<()>) -> io::Result<u32> {
        if force || self.needs_wakeup() {
            kick()?;
        }
        Ok(self.outstanding())
    }
}

impl<T: Entry> ConsRing<T> {
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        off: &RingOffset,
        size: u32,
        pgoff: i64,
    ) -> io::Result<Self> {
        let map = Mapping::new::<T>(fd, off, size, pgoff)?;
        let cached_cons = map.consumer().load(Ordering::Relaxed);
        let cached_prod = map.producer().load(Ordering::Acquire);
        Ok(ConsRing {
            map,
            cached_prod,
            cached_cons,
            _t: core::marker::PhantomData,
        })
    }

    /// Entries available to consume, re-reading the kernel's producer index if none are cached.
    #[inline]
    pub fn available(&mut self) -> u32 {
        let mut n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n == 0 {
            self.cached_prod = self.map.producer().load(Ordering::Acquire);
            n = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        n
    }

    /// Moves up to `out.len()` entries into `out` and releases them to the kernel.
    #[inline]
    pub fn pop(&mut self, out: &mut [T]) -> usize {
        let n = (self.available() as usize).min(out.len());
        for (i, slot) in out[..n].iter_mut().enumerate() {
            let p = self.map.entry::<T>(self.cached_cons.wrapping_add(i as u32));
            // SAFETY: the entry lies between our consumer and the kernel's published producer
            // index (read with Acquire), so the kernel has finished writing it.
            *slot = unsafe { p.read() };
        }
        if n > 0 {
            self.cached_cons = self.cached_cons.wrapping_add(n as u32);
            self.map
                .consumer()
                .store(self.cached_cons, Ordering::Release);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::fd::AsFd;

    use super::*;

    /// Producer index at 0, consumer at 64, flags at 128, entries from 192: a layout like the
    /// kernel's, in a file both rings map (two shared mappings of one file see each other's
    /// writes), so that a `ConsRing` plays the kernel for a `ProdRing` and the other way round.
    const OFF: RingOffset = RingOffset {
        producer: 0,
        consumer: 64,
        flags: 128,
        desc: 192,
    };

    /// A producer and a consumer over one ring of `size` entries whose indices start at `start`.
    fn pair(size: u32, start: u32) -> (ProdRing<u64>, ConsRing<u64>, std::fs::File) {
        let path =
            std::env::temp_dir().join(format!("qsring-{}-{size}-{start}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.set_len(192 + u64::from(size) * 8).unwrap();
        for at in [0, 64] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&start.to_ne_bytes()).unwrap();
        }
        let p = ProdRing::<u64>::map(f.as_fd(), &OFF, size, 0).unwrap();
        let c = ConsRing::<u64>::map(f.as_fd(), &OFF, size, 0).unwrap();
        (p, c, f)
    }

    #[test]
    fn a_full_ring_takes_nothing_more_and_an_empty_one_gives_nothing() {
        let (mut p, mut c, _f) = pair(8, 0);
        let mut out = [0u64; 16];
        assert_eq!(c.pop(&mut out), 0, "empty");
        assert_eq!(p.free(8), 8);
        assert_eq!(p.push(&[1, 2, 3, 4, 5]), 5);
        assert_eq!(p.push(&[6, 7, 8, 9, 10]), 3, "only the room there is");
        assert_eq!(p.free(1), 0);
        assert_eq!(p.push(&[11]), 0);
        assert_eq!(p.outstanding(), 8);
        assert_eq!(c.available(), 8);
        assert_eq!(c.pop(&mut out[..3]), 3);
        assert_eq!(&out[..3], &[1, 2, 3]);
        // The producer's cached view still says full until it looks again.
        assert_eq!(p.free(3), 3);
        assert_eq!(p.push(&[9, 10, 11]), 3);
        // The consumer takes what its cached view holds first, and looks again only when that
        // is used up.
        assert_eq!(c.pop(&mut out), 5);
        assert_eq!(&out[..5], &[4, 5, 6, 7, 8]);
        assert_eq!(c.pop(&mut out), 3);
        assert_eq!(&out[..3], &[9, 10, 11]);
        assert_eq!(c.pop(&mut out), 0);
        assert_eq!(p.outstanding(), 0);
    }

    /// Sets or clears the ring's `NEED_WAKEUP` flag, as the kernel does.
    fn ask_for_wakeup(f: &mut std::fs::File, ask: bool) {
        f.seek(SeekFrom::Start(OFF.flags)).unwrap();
        f.write_all(&u32::from(ask).to_ne_bytes()).unwrap();
    }

    #[test]
    fn a_ring_is_woken_only_when_its_consumer_asks_and_called_again_while_entries_remain() {
        let (mut p, mut c, mut f) = pair(8, 0);
        let mut out = [0u64; 8];
        let mut kicks = 0;
        let mut wake = |p: &mut ProdRing<u64>| {
            p.wake(false, || {
                kicks += 1;
                Ok(())
            })
            .unwrap()
                > 0
        };
        // A zero-copy driver polling the ring on its own: no kick, and the entries it has not
        // taken yet are reported, so that the ring is looked at again.
        assert_eq!(p.push(&[1, 2, 3, 4, 5, 6, 7, 8]), 8);
        assert!(wake(&mut p), "8 entries remain");
        // It stops with the ring full and asks for a wake-up: the next call kicks, though
        // nothing more could be pushed in between.
        assert_eq!(p.push(&[9]), 0);
        ask_for_wakeup(&mut f, true);
        assert!(wake(&mut p));
        // It takes part of the ring and polls again on its own.
        assert_eq!(c.pop(&mut out[..5]), 5);
        ask_for_wakeup(&mut f, false);
        assert!(wake(&mut p), "3 entries remain");
        assert_eq!(c.pop(&mut out), 3);
        assert!(!wake(&mut p), "nothing remains");
        // The flag set: every call kicks while entries remain.
        ask_for_wakeup(&mut f, true);
        assert_eq!(p.push(&[10, 11]), 2);
        assert!(wake(&mut p));
        assert_eq!(c.pop(&mut out), 2);
        assert!(!wake(&mut p));
        assert_eq!(kicks, 3);
        // Forced (copy mode, or a ring that stays full): a kick whatever the flag says.
        ask_for_wakeup(&mut f, false);
        assert_eq!(p.push(&[12]), 1);
        let mut forced = 0;
        let left = p.wake(true, || {
            forced += 1;
            Ok(())
        });
        assert_eq!(left.unwrap(), 1);
        assert_eq!(forced, 1);
        // A kick that fails (a device gone down) is the caller's to see.
        let e = p.wake(true, || Err(io::ErrorKind::BrokenPipe.into()));
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn order_holds_across_the_end_of_the_ring_and_the_index_wrap() {
        // Indices start 5 short of u32::MAX: they wrap within the first rounds.
        let (mut p, mut c, _f) = pair(16, u32::MAX - 5);
        let mut next = 0u64;
        let mut expect = 0u64;
        let mut out = [0u64; 16];
        for round in 0..500u64 {
            // Uneven batches on both sides, so that every offset in the ring is crossed.
            let want = (round * 7 % 13 + 1) as usize;
            let items: Vec<u64> = (next..next + want as u64).collect();
            let pushed = p.push(&items);
            assert!(pushed <= want);
            next += pushed as u64;
            let take = (round * 5 % 11 + 1) as usize;
            let got = c.pop(&mut out[..take]);
            for v in &out[..got] {
                assert_eq!(*v, expect, "round {round}");
                expect += 1;
            }
            assert!(
                next - expect <= 16,
                "never more in flight than the ring holds"
            );
        }
        assert!(expect > 1_000, "the rings moved {expect} entries");
    }
}
