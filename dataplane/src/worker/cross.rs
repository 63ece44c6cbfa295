//! Frames crossing between workers: each worker owns its ports and its UMEM, so a frame whose
//! egress port belongs to another worker is copied into a buffer handed to that worker.
//!
//! # Design
//! Every ordered pair of workers has one bounded channel of [`Crossing`]s and one back channel
//! that returns their buffers. The sender owns a fixed pool of buffers per peer, made once:
//! nothing is allocated per frame, and a pool that is empty is a ring that is full. The worker
//! takes no more frames from its RX rings in a round than every peer pool can carry, so a full
//! ring holds frames back in the kernel's RX ring (as a full TX ring does) and no buffer is lost.
//! The channels are `std::sync::mpsc::sync_channel`s: a lock-free bounded array queue. They carry
//! batches: the frames a worker copies for a peer from one ingress port's batch go over together
//! ([`Outbound::flush`], which the worker calls before that port's own sends so that the peer
//! starts at once; or as soon as [`BATCH`] of them wait), and come back together once the peer
//! has taken them all, so a channel operation is paid per batch, not per frame (four per frame
//! before: the frame, its return, and a look at each channel that found it). A batch's vector travels with
//! it and is reused: nothing is allocated once every vector has been made.
//!
//! A flood crosses once per worker that owns some of the network's other ports, not once per
//! port: the receiving worker makes its own copies for its ports.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use crate::sys::wake::Wake;

/// Where a crossing frame goes on the receiving worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// One port.
    Port(u16),
    /// The receiving worker's ports of the network (its flood targets).
    Flood,
}

/// A frame handed from one worker to another, in a buffer of the sender's pool.
#[derive(Debug)]
pub(crate) struct Crossing {
    pub(crate) target: Target,
    /// Network slot (for the tag on a trunk and the flood targets).
    pub(crate) net: u16,
    /// The ingress port (never a flood target).
    pub(crate) ingress: u16,
    /// Whether the bytes carry the network's tag (the frame came from a trunk).
    pub(crate) tagged: bool,
    /// Whether the frame's checksum was left for the device to finish (`csum::pending`): the
    /// receiving worker finishes it, or has its port's kernel finish it, per copy it sends.
    pub(crate) unfinished: bool,
    pub(crate) len: u32,
    pub(crate) buf: Box<[u8]>,
}

impl Crossing {
    /// The frame's bytes.
    pub(crate) fn frame(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// Frames handed over together, in order.
type Batch = Vec<Crossing>;

/// Most frames a batch holds before it is handed over without waiting for the round's end.
pub(crate) const BATCH: usize = 64;

/// The sending end towards one peer.
#[derive(Debug)]
pub(crate) struct Outbound {
    tx: SyncSender<Batch>,
    back: Receiver<Batch>,
    free: Vec<Box<[u8]>>,
    /// Frames copied and not yet handed over ([`Outbound::flush`]).
    batch: Batch,
    /// Empty batches to fill.
    spare: Vec<Batch>,
    /// The peer's wake-up, if it can sleep: notified once a round in which frames were sent.
    pub(crate) wake: Option<Arc<Wake>>,
}

impl Outbound {
    /// Takes back the buffers the peer is done with. Returns how many are free.
    pub(crate) fn reclaim(&mut self) -> usize {
        while let Ok(mut b) = self.back.try_recv() {
            self.free.extend(b.drain(..).map(|c| c.buf));
            self.spare.push(b);
        }
        self.free.len()
    }

    /// Hands the frames copied since the last call over to the peer. If the peer is gone their
    /// buffers are kept (the frames are lost with it).
    pub(crate) fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = self.spare.pop().unwrap_or_default();
        let batch = core::mem::replace(&mut self.batch, next);
        if let Err(e) = self.tx.try_send(batch) {
            // Full cannot happen (the channel holds as many batches as there are buffers).
            let (TrySendError::Full(mut b) | TrySendError::Disconnected(mut b)) = e;
            self.free.extend(b.drain(..).map(|c| c.buf));
            self.spare.push(b);
        }
    }

    /// Copies `frame` into a free buffer for the peer (handed over at the next
    /// [`Outbound::flush`], or now if [`BATCH`] frames wait); `false` (nothing sent) when every
    /// buffer is in flight.
    pub(crate) fn send(
        &mut self,
        target: Target,
        net: u16,
        ingress: u16,
        tagged: bool,
        unfinished: bool,
        frame: &[u8],
    ) -> bool {
        let Some(mut buf) = self.free.pop() else {
            return false;
        };
        let Some(dst) = buf.get_mut(..frame.len()) else {
            self.free.push(buf);
            return false;
        };
        dst.copy_from_slice(frame);
        self.batch.push(Crossing {
            target,
            net,
            ingress,
            tagged,
            unfinished,
            len: frame.len() as u32,
            buf,
        });
        if self.batch.len() >= BATCH {
            self.flush();
        }
        true
    }
}

/// The receiving end from one peer.
#[derive(Debug)]
pub(crate) struct Inbound {
    rx: Receiver<Batch>,
    back: SyncSender<Batch>,
    /// The batch being taken, last frame first (popped from the end).
    current: Batch,
    /// The frames taken, to go back to the sender together once `current` is empty.
    taken: Batch,
}

impl Inbound {
    /// The next frame, if any.
    pub(crate) fn next(&mut self) -> Option<Crossing> {
        if self.current.is_empty() {
            if !self.taken.is_empty() {
                // The back channel holds as many batches as there are buffers, so this never
                // blocks; a sender that is gone no longer needs them. The emptied batch holds
                // the next returns.
                let empty = core::mem::take(&mut self.current);
                let _ = self
                    .back
                    .try_send(core::mem::replace(&mut self.taken, empty));
            }
            // Empty, or the sender is gone: nothing more.
            let mut batch = self.rx.try_recv().ok()?;
            batch.reverse();
            let spare = core::mem::replace(&mut self.current, batch);
            if self.taken.capacity() == 0 {
                self.taken = spare;
            }
        }
        self.current.pop()
    }

    /// Returns a frame's buffer to its sender (with the rest of its batch).
    pub(crate) fn done(&mut self, c: Crossing) {
        self.taken.push(c);
    }
}

/// One worker's ends of the mesh between all workers.
#[derive(Debug, Default)]
pub struct Links {
    /// This worker's index.
    pub(crate) id: u16,
    /// Towards each worker (none towards itself).
    pub(crate) out: Vec<Option<Outbound>>,
    /// From each other worker.
    pub(crate) inbound: Vec<Inbound>,
    /// What wakes this worker when it sleeps (none: it naps instead, see `Worker::run`).
    pub(crate) wake: Option<Arc<Wake>>,
}

impl Links {
    /// This worker's index among its peers.
    pub fn id(&self) -> u16 {
        self.id
    }
}

/// The links of `n` workers (at most 64), `depth` buffers of `size` bytes for each ordered pair,
/// and each worker's wake-up (none if the system refuses an eventfd).
pub fn mesh(n: usize, depth: usize, size: usize) -> Vec<Links> {
    let n = n.clamp(1, 64);
    let mut links: Vec<Links> = (0..n)
        .map(|i| Links {
            id: i as u16,
            out: (0..n).map(|_| None).collect(),
            inbound: Vec::new(),
            wake: Wake::new()
                .map_err(|e| tracing::warn!("worker {i} cannot sleep on an eventfd ({e}); it naps"))
                .ok()
                .map(Arc::new),
        })
        .collect();
    for from in 0..n {
        for to in (0..n).filter(|&to| to != from) {
            let (tx, rx) = sync_channel(depth);
            let (back_tx, back) = sync_channel(depth);
            let wake = links[to].wake.clone();
            links[from].out[to] = Some(Outbound {
                wake,
                tx,
                back,
                free: (0..depth)
                    .map(|_| vec![0u8; size].into_boxed_slice())
                    .collect(),
                batch: Vec::with_capacity(BATCH),
                spare: Vec::new(),
            });
            links[to].inbound.push(Inbound {
                rx,
                back: back_tx,
                current: Vec::new(),
                taken: Vec::new(),
            });
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pool_refuses_and_returned_buffers_free_it() {
        let mut m = mesh(2, 2, 64);
        let mut inbound = m[1].inbound.pop().unwrap();
        let out = m[0].out[1].as_mut().unwrap();
        assert_eq!(out.reclaim(), 2);
        assert!(out.send(Target::Port(3), 1, 0, false, false, &[1, 2, 3]));
        assert!(out.send(Target::Flood, 1, 0, true, true, &[4; 64]));
        assert!(
            !out.send(Target::Flood, 1, 0, false, false, &[5]),
            "pool empty"
        );
        assert!(
            inbound.next().is_none(),
            "nothing handed over before the flush"
        );
        out.flush();
        let first = inbound.next().unwrap();
        assert_eq!(
            (first.target, first.frame(), first.unfinished),
            (Target::Port(3), &[1u8, 2, 3][..], false)
        );
        inbound.done(first);
        assert_eq!(out.reclaim(), 0, "a batch goes back whole");
        let second = inbound.next().unwrap();
        assert!(second.tagged && second.unfinished && second.frame() == [4; 64]);
        inbound.done(second);
        assert!(inbound.next().is_none());
        assert_eq!(out.reclaim(), 2);
        // Again, with the vectors the first batch left: in order, and back whole.
        for k in 0..2u8 {
            assert!(out.send(Target::Port(u16::from(k)), 1, 0, false, false, &[k]));
        }
        out.flush();
        for k in 0..2u8 {
            let c = inbound.next().unwrap();
            assert_eq!(
                (c.target, c.frame()),
                (Target::Port(u16::from(k)), &[k][..])
            );
            inbound.done(c);
        }
        assert!(inbound.next().is_none());
        assert_eq!(out.reclaim(), 2);
    }

    #[test]
    fn a_full_batch_goes_over_without_waiting_for_the_flush() {
        let mut m = mesh(2, 2 * BATCH, 8);
        let mut inbound = m[1].inbound.pop().unwrap();
        let out = m[0].out[1].as_mut().unwrap();
        for k in 0..BATCH + 1 {
            assert!(out.send(Target::Flood, 0, 0, false, false, &[k as u8]));
        }
        for k in 0..BATCH {
            assert_eq!(inbound.next().unwrap().frame(), [k as u8]);
        }
        assert!(
            inbound.next().is_none(),
            "the last frame waits for the flush"
        );
    }

    #[test]
    fn a_frame_larger_than_a_buffer_is_refused_and_keeps_the_buffer() {
        let mut m = mesh(2, 1, 16);
        let out = m[0].out[1].as_mut().unwrap();
        assert!(!out.send(Target::Flood, 0, 0, false, false, &[0; 17]));
        assert_eq!(out.reclaim(), 1);
    }
}
