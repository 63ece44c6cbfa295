//! Frames crossing between workers: each worker owns its ports and its UMEM, so a frame whose
//! egress port belongs to another worker is copied into a buffer handed to that worker.
//!
//! # Design
//! Every ordered pair of workers has one bounded channel of [`Crossing`]s and one back channel
//! that returns their buffers. The sender owns a fixed pool of buffers per peer, made once:
//! nothing is allocated per frame, and a pool that is empty is a ring that is full. The worker
//! takes no more frames from its RX rings in a round than every peer pool can carry, so a full
//! ring holds frames back in the kernel's RX ring (as a full TX ring does) and no buffer is lost.
//! The channels are `std::sync::mpsc::sync_channel`s: a lock-free bounded array queue.
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

/// The sending end towards one peer.
#[derive(Debug)]
pub(crate) struct Outbound {
    tx: SyncSender<Crossing>,
    back: Receiver<Box<[u8]>>,
    free: Vec<Box<[u8]>>,
    /// The peer's wake-up, if it can sleep: notified once a round in which frames were sent.
    pub(crate) wake: Option<Arc<Wake>>,
}

impl Outbound {
    /// Takes back the buffers the peer is done with. Returns how many are free.
    pub(crate) fn reclaim(&mut self) -> usize {
        while let Ok(b) = self.back.try_recv() {
            self.free.push(b);
        }
        self.free.len()
    }

    /// Copies `frame` into a free buffer and hands it over; `false` (nothing sent) when every
    /// buffer is in flight or the peer is gone.
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
        let c = Crossing {
            target,
            net,
            ingress,
            tagged,
            unfinished,
            len: frame.len() as u32,
            buf,
        };
        match self.tx.try_send(c) {
            Ok(()) => true,
            Err(e) => {
                // Full cannot happen (the channel holds every buffer of the pool); the peer
                // stopped: keep the buffer.
                let (TrySendError::Full(c) | TrySendError::Disconnected(c)) = e;
                self.free.push(c.buf);
                false
            }
        }
    }
}

/// The receiving end from one peer.
#[derive(Debug)]
pub(crate) struct Inbound {
    rx: Receiver<Crossing>,
    back: SyncSender<Box<[u8]>>,
}

impl Inbound {
    /// The next frame, if any.
    pub(crate) fn next(&self) -> Option<Crossing> {
        // Empty, or the sender is gone: nothing more.
        self.rx.try_recv().ok()
    }

    /// Returns a frame's buffer to its sender.
    pub(crate) fn done(&self, c: Crossing) {
        // The back channel holds the whole pool, so this never blocks; a sender that is gone
        // no longer needs it.
        let _ = self.back.try_send(c.buf);
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
            });
            links[to].inbound.push(Inbound { rx, back: back_tx });
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
        let inbound = m[1].inbound.pop().unwrap();
        let out = m[0].out[1].as_mut().unwrap();
        assert_eq!(out.reclaim(), 2);
        assert!(out.send(Target::Port(3), 1, 0, false, false, &[1, 2, 3]));
        assert!(out.send(Target::Flood, 1, 0, true, true, &[4; 64]));
        assert!(
            !out.send(Target::Flood, 1, 0, false, false, &[5]),
            "pool empty"
        );
        let first = inbound.next().unwrap();
        assert_eq!(
            (first.target, first.frame()),
            (Target::Port(3), &[1u8, 2, 3][..])
        );
        let first_unfinished = first.unfinished;
        inbound.done(first);
        assert_eq!(out.reclaim(), 1);
        let second = inbound.next().unwrap();
        assert!(second.tagged && second.unfinished && second.frame() == [4; 64]);
        assert!(!first_unfinished);
        assert!(inbound.next().is_none());
    }

    #[test]
    fn a_frame_larger_than_a_buffer_is_refused_and_keeps_the_buffer() {
        let mut m = mesh(2, 1, 16);
        let out = m[0].out[1].as_mut().unwrap();
        assert!(!out.send(Target::Flood, 0, 0, false, false, &[0; 17]));
        assert_eq!(out.reclaim(), 1);
    }
}
