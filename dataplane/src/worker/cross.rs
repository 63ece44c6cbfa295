//! Frames crossing between workers: each worker owns its ports and its UMEM, so a frame whose
//! egress port belongs to another worker is copied into a buffer handed to that worker.
//!
//! # Design
//! Every ordered pair of workers has one bounded channel of batches of [`Crossing`]s and one back
//! channel that returns them with their buffers. The sender owns a fixed pool of buffers per
//! peer, made once: nothing is allocated per frame, and a pool that is empty is a ring that is
//! full. The worker takes no more frames from its RX rings in a round than every peer pool can
//! carry, so a full ring holds frames back in the kernel's RX ring (as a full TX ring does) and
//! no buffer is lost.
//! The channels are `std::sync::mpsc::sync_channel`s: a lock-free bounded array queue. They carry
//! batches: the frames a worker copies for a peer from one ingress port's batch go over together
//! ([`Outbound::flush`], which the worker calls before that port's own sends so that the peer
//! starts at once; or as soon as a batch is full: [`BATCH`] frames, or a quarter of the pool
//! where the pool is small), and come back together as soon as the peer has taken the last of
//! them, so a channel operation is paid per batch, not per frame (four per frame before: the
//! frame, its return, and a look at each channel that found it). A batch's vector travels with
//! it and is reused: nothing is allocated once every vector has been made.
//!
//! A TCP super-frame that is to leave whole ([`crate::sys::packet`]) crosses whole, in a buffer
//! of a second, smaller pool ([`whole_depth`] per peer: 32 among two workers, fewer among more,
//! 2 at least; each buffer takes its 72 KiB when first used), swapped with the sender's own
//! buffer instead of copied. When that pool is empty the sender cuts the frame into segments,
//! which cross as any frame does.
//!
//! A flood crosses once per worker that owns some of the network's other ports, not once per
//! port: the receiving worker makes its own copies for its ports.
//!
//! The receiving worker gives a batch back only once its frames were sent (at the end of a
//! round, when the ports it holds frames for have sent every frame queued: [`Inbound::release`];
//! a stalled port's frames count as sent, so that it holds no buffer back), and the sender
//! counts, by egress port, the TCP frames it handed over that have not come back
//! ([`Outbound::in_flight`]): a worker sends a port's TCP straight ([`super::direct`]) only
//! while none of its TCP frames for that port is still crossing, so a flow's segments that go
//! straight do not overtake those that crossed before them (a segment that crossed because
//! the socket refused it, a FIN, the segments before the owner published the connection).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use super::direct::Direct;
use crate::fdb::PortRef;
use crate::sys::wake::Wake;

/// Where a crossing frame goes on the receiving worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// One port, with the generation the sender's snapshot gave it.
    Port(PortRef),
    /// The receiving worker's ports of the network (its flood targets).
    Flood,
}

/// A frame handed from one worker to another, in a buffer of the sender's pool.
#[derive(Debug)]
pub(crate) struct Crossing {
    pub(crate) target: Target,
    /// Network slot (for the tag on a trunk and the flood targets).
    pub(crate) net: u16,
    /// The network's generation in the sender's snapshot. With the port's, the receiver
    /// delivers the frame only where its own snapshot has the same in those slots: by then a
    /// slot may hold another port or network (of another VLAN), or none yet.
    pub(crate) net_gen: u32,
    /// The ingress port, with the generation the sender's snapshot gave it: never one of a
    /// flood's targets, unless the receiver's snapshot has another port in its slot by then.
    pub(crate) ingress: PortRef,
    /// Whether the bytes carry the network's tag (the frame came from a trunk).
    pub(crate) tagged: bool,
    /// Whether the frame's checksum was left for the device to finish (`csum::pending`): the
    /// receiving worker finishes it, or has its port's kernel finish it, per copy it sends.
    pub(crate) unfinished: bool,
    pub(crate) len: u32,
    pub(crate) buf: Box<[u8]>,
    /// A TCP super-frame to leave whole ([`Outbound::send_whole`]), in a buffer of the sender's
    /// pool of those (`buf` is empty then); empty for any other frame.
    pub(crate) whole: Vec<u8>,
    /// With `whole`: the largest segment, headers included, the sender's plan allowed.
    pub(crate) segment: u32,
    /// With `whole`: the segments merged into it (0 for a guest's super-frame), counted as
    /// `coalesced` where it leaves whole.
    pub(crate) merged: u32,
    /// A TCP frame, counted in [`Outbound::in_flight`] while out.
    pub(crate) tcp: bool,
}

impl Crossing {
    /// The frame's bytes.
    pub(crate) fn frame(&self) -> &[u8] {
        if self.is_whole() {
            return &self.whole[..(self.len as usize).min(self.whole.len())];
        }
        &self.buf[..self.len as usize]
    }

    /// Is this a super-frame to leave whole?
    pub(crate) fn is_whole(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Super-frames in flight from one worker towards all its peers together
/// ([`Outbound::send_whole`]), shared out among them; but at least [`MIN_WHOLE_DEPTH`] towards
/// each (so more in all among more than 17 workers).
pub(crate) const WHOLE_DEPTH: usize = 32;

/// Super-frames in flight towards one peer, at least.
const MIN_WHOLE_DEPTH: usize = 2;

/// Buffers for super-frames towards each peer, among `n` workers.
pub(crate) fn whole_depth(n: usize) -> usize {
    (WHOLE_DEPTH / n.saturating_sub(1).max(1)).max(MIN_WHOLE_DEPTH)
}

/// Frames handed over together, in order.
type Batch = Vec<Crossing>;

/// Most frames a batch holds before it is handed over without waiting for the worker's
/// [`Outbound::flush`].
pub(crate) const BATCH: usize = 64;

/// The sending end towards one peer.
#[derive(Debug)]
pub(crate) struct Outbound {
    tx: SyncSender<Batch>,
    back: Receiver<Batch>,
    free: Vec<Box<[u8]>>,
    /// Free buffers for super-frames handed over whole.
    free_whole: Vec<Vec<u8>>,
    /// Frames copied and not yet handed over ([`Outbound::flush`]).
    batch: Batch,
    /// Frames a batch holds before it goes over on its own: [`BATCH`], or a quarter of the pool.
    full: usize,
    /// Empty batches to fill.
    spare: Vec<Batch>,
    /// The peer's wake-up, if it can sleep: notified after the batches in which frames were
    /// handed over.
    pub(crate) wake: Option<Arc<Wake>>,
    /// By egress slot: the TCP frames for that port handed over (or copied to be) and not back.
    in_flight: Vec<u32>,
}

impl Outbound {
    /// Takes back the buffers the peer is done with. Returns how many are free.
    pub(crate) fn reclaim(&mut self) -> usize {
        while let Ok(mut b) = self.back.try_recv() {
            for c in b.drain(..) {
                self.put_back(c);
            }
            self.spare.push(b);
        }
        self.free.len()
    }

    /// Hands the frames copied since the last call over to the peer. If the peer is gone their
    /// buffers are kept and `lost` is called with each frame's ingress port and the frames it
    /// carries (a merged run's segments, else 1).
    pub(crate) fn flush(&mut self, mut lost: impl FnMut(u16, u32)) {
        if self.batch.is_empty() {
            return;
        }
        if let Err(mut b) = self.hand() {
            for c in b.drain(..) {
                lost(c.ingress.slot, c.merged.max(1));
                self.put_back(c);
            }
            self.spare.push(b);
        }
    }

    /// Hands a full batch over before the worker's [`Outbound::flush`]. If the peer is gone
    /// (shutting down) its frames stay, for that flush to count as lost.
    fn pass_on(&mut self) {
        if let Err(b) = self.hand() {
            let empty = core::mem::replace(&mut self.batch, b);
            self.spare.push(empty);
        }
    }

    /// Hands the batch over; gives it back if the peer is gone.
    fn hand(&mut self) -> Result<(), Batch> {
        let next = (self.spare.pop()).unwrap_or_else(|| Vec::with_capacity(self.full));
        let batch = core::mem::replace(&mut self.batch, next);
        self.tx.try_send(batch).map_err(|e| {
            // Full cannot happen: the channel holds as many batches as there are buffers (of
            // both pools), and a batch holds one at least.
            debug_assert!(matches!(e, TrySendError::Disconnected(_)));
            let (TrySendError::Full(b) | TrySendError::Disconnected(b)) = e;
            b
        })
    }

    /// Free buffers for super-frames (after a [`Outbound::reclaim`]).
    #[cfg(test)]
    pub(crate) fn whole_free(&self) -> usize {
        self.free_whole.len()
    }

    /// Takes every free buffer for super-frames, as if all were in flight.
    #[cfg(test)]
    pub(crate) fn hold_whole(&mut self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.free_whole)
    }

    /// Gives back buffers [`Outbound::hold_whole`] took.
    #[cfg(test)]
    pub(crate) fn unhold_whole(&mut self, held: Vec<Vec<u8>>) {
        self.free_whole.extend(held);
    }

    /// The TCP frames for port `slot` this worker handed over (or copied, to hand over) that
    /// the peer has not given back yet ([`Inbound::release`]): some may not have been sent.
    /// (Other frames are of other flows than the TCP that may go straight.)
    #[inline]
    pub(crate) fn in_flight(&self, slot: u16) -> u32 {
        self.in_flight.get(usize::from(slot)).copied().unwrap_or(0)
    }

    /// Counts a TCP frame for `target` into [`Outbound::in_flight`].
    fn counted(&mut self, target: Target) {
        if let Target::Port(p) = target {
            let i = usize::from(p.slot);
            if self.in_flight.len() <= i {
                self.in_flight.resize(i + 1, 0);
            }
            self.in_flight[i] += 1;
        }
    }

    /// Returns a crossing's buffer to its pool.
    fn put_back(&mut self, mut c: Crossing) {
        if let (Target::Port(p), true) = (c.target, c.tcp) {
            if let Some(n) = self.in_flight.get_mut(usize::from(p.slot)) {
                *n = n.saturating_sub(1);
            }
        }
        if c.is_whole() {
            c.whole.clear();
            self.free_whole.push(c.whole);
        } else {
            self.free.push(c.buf);
        }
    }

    /// Hands the super-frame in `frame` over whole, for port `port`: `frame` is swapped with an
    /// empty buffer of the pool of super-frames (nothing is copied; the caller gives the empty
    /// buffer its capacity, once). `false` (nothing sent, `frame` unchanged) when every buffer
    /// of that pool is in flight ([`whole_depth`]). `segment` is the largest segment, headers
    /// included, the frame may be cut into; `merged`, the segments merged into it.
    pub(crate) fn send_whole(
        &mut self,
        port: PortRef,
        (net, net_gen): (u16, u32),
        ingress: PortRef,
        tagged: bool,
        frame: &mut Vec<u8>,
        (segment, merged): (u32, u32),
    ) -> bool {
        let Some(mut buf) = self.free_whole.pop() else {
            return false;
        };
        core::mem::swap(&mut buf, frame);
        self.counted(Target::Port(port));
        self.batch.push(Crossing {
            tcp: true,
            target: Target::Port(port),
            net,
            net_gen,
            ingress,
            tagged,
            unfinished: true,
            len: buf.len() as u32,
            buf: Box::default(),
            whole: buf,
            segment,
            merged,
        });
        if self.batch.len() >= self.full {
            self.pass_on();
        }
        true
    }

    /// Copies `frame` into a free buffer for the peer (handed over at the next
    /// [`Outbound::flush`], or now if the batch is full); `false` (nothing sent) when every
    /// buffer is in flight.
    pub(crate) fn send(
        &mut self,
        target: Target,
        (net, net_gen): (u16, u32),
        ingress: PortRef,
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
        let tcp = crate::wire::carries_tcp(frame);
        if tcp {
            self.counted(target);
        }
        self.batch.push(Crossing {
            tcp,
            target,
            net,
            net_gen,
            ingress,
            tagged,
            unfinished,
            len: frame.len() as u32,
            buf,
            whole: Vec::new(),
            segment: 0,
            merged: 0,
        });
        if self.batch.len() >= self.full {
            self.pass_on();
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
    /// Batches whose frames were all taken, to go back once they were sent
    /// ([`Inbound::release`]).
    held: Vec<Batch>,
}

impl Inbound {
    /// The next frame, if any.
    pub(crate) fn next(&mut self) -> Option<Crossing> {
        if self.current.is_empty() {
            self.hold();
            // Empty, or the sender is gone: nothing more.
            let mut batch = self.rx.try_recv().ok()?;
            batch.reverse();
            let emptied = core::mem::replace(&mut self.current, batch);
            if self.taken.capacity() == 0 {
                // It holds the returns of this batch: nothing is allocated.
                self.taken = emptied;
            }
        }
        self.current.pop()
    }

    /// Returns a frame's buffer to its sender: with the rest of its batch, at the first
    /// [`Inbound::release`] after the batch's last frame is done.
    pub(crate) fn done(&mut self, c: Crossing) {
        self.taken.push(c);
        if self.current.is_empty() {
            self.hold();
        }
    }

    /// Keeps the frames taken (a whole batch) for [`Inbound::release`].
    fn hold(&mut self) {
        if !self.taken.is_empty() {
            self.held.push(core::mem::take(&mut self.taken));
        }
    }

    /// Sends the batches done back to their sender, those whose ports (`sent(slot)`) have sent
    /// every frame queued, so that the sender, which sends TCP straight into a port only while
    /// none of its TCP frames for the port is out ([`Outbound::in_flight`]), does not overtake
    /// them. The others wait for a later call.
    pub(crate) fn release(&mut self, mut sent: impl FnMut(u16) -> bool) {
        let mut k = 0;
        while k < self.held.len() {
            let done = self.held[k].iter().all(|c| match c.target {
                Target::Port(p) => !c.tcp || sent(p.slot),
                Target::Flood => true,
            });
            if done {
                // The back channel holds as many batches as there are buffers, so this never
                // blocks; a sender that is gone no longer needs them.
                let _ = self.back.try_send(self.held.swap_remove(k));
            } else {
                k += 1;
            }
        }
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
    /// The ports every worker of the switch sends TCP out of itself ([`super::direct`]).
    pub(crate) direct: Arc<Direct>,
}

impl Links {
    /// This worker's index among its peers.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The sending end towards worker `to` (none towards itself, or beyond the mesh).
    pub(crate) fn to(&mut self, to: u16) -> Option<&mut Outbound> {
        self.out.get_mut(usize::from(to)).and_then(Option::as_mut)
    }
}

/// The links of `n` workers (at most 64), `depth` buffers of `size` bytes for each ordered pair,
/// and each worker's wake-up (none if the system refuses an eventfd).
pub fn mesh(n: usize, depth: usize, size: usize) -> Vec<Links> {
    let n = n.clamp(1, 64);
    let direct = Arc::new(Direct::default());
    let mut links: Vec<Links> = (0..n)
        .map(|i| Links {
            direct: Arc::clone(&direct),
            id: i as u16,
            out: (0..n).map(|_| None).collect(),
            inbound: Vec::new(),
            wake: Wake::new()
                .map_err(|e| tracing::warn!("worker {i} cannot sleep on an eventfd ({e}); it naps"))
                .ok()
                .map(Arc::new),
        })
        .collect();
    let full = BATCH.min(depth / 4).max(1);
    for from in 0..n {
        for to in (0..n).filter(|&to| to != from) {
            // As many batches as there can be crossings in flight: a batch holds one at least.
            let (tx, rx) = sync_channel(depth + whole_depth(n));
            let (back_tx, back) = sync_channel(depth + whole_depth(n));
            let wake = links[to].wake.clone();
            links[from].out[to] = Some(Outbound {
                wake,
                tx,
                back,
                free: (0..depth)
                    .map(|_| vec![0u8; size].into_boxed_slice())
                    .collect(),
                free_whole: (0..whole_depth(n)).map(|_| Vec::new()).collect(),
                batch: Vec::with_capacity(full),
                full,
                spare: Vec::new(),
                in_flight: Vec::new(),
            });
            links[to].inbound.push(Inbound {
                rx,
                back: back_tx,
                current: Vec::new(),
                taken: Vec::new(),
                held: Vec::new(),
            });
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Port `k`, generation 1.
    fn port_ref(k: usize) -> PortRef {
        PortRef {
            slot: k as u16,
            gen: 1,
        }
    }

    /// Port `k`, generation 1, as a target.
    fn port(k: usize) -> Target {
        Target::Port(port_ref(k))
    }

    /// Sends a one-byte frame `k` for port `k`.
    fn send_k(out: &mut Outbound, k: usize) -> bool {
        out.send(port(k), (1, 1), port_ref(0), false, false, &[k as u8])
    }

    /// Takes the next frame, checks it is `k`, and is done with it.
    fn take_k(inbound: &mut Inbound, k: usize) {
        let c = inbound.next().unwrap_or_else(|| panic!("frame {k}"));
        assert_eq!((c.target, c.frame()), (port(k), &[k as u8][..]));
        inbound.done(c);
    }

    #[test]
    fn a_full_pool_refuses_and_returned_buffers_free_it() {
        // 8 buffers: a batch goes over on its own at 2.
        let mut m = mesh(2, 8, 64);
        let mut inbound = m[1].inbound.pop().unwrap();
        let out = m[0].out[1].as_mut().unwrap();
        assert_eq!(out.reclaim(), 8);
        assert!(out.send(port(3), (1, 1), port_ref(0), false, false, &[1, 2, 3]));
        assert!(
            inbound.next().is_none(),
            "nothing handed over before the flush"
        );
        out.flush(|_, _| unreachable!());
        let first = inbound.next().unwrap();
        assert_eq!(
            (first.target, first.frame(), first.unfinished, first.tagged),
            (port(3), &[1u8, 2, 3][..], false, false)
        );
        inbound.done(first);
        assert_eq!(out.reclaim(), 7, "done, not yet sent");
        inbound.release(|_| true);
        assert_eq!(out.reclaim(), 8, "back once released");
        for k in 0..8 {
            assert!(send_k(out, k), "frame {k}");
        }
        assert!(!send_k(out, 8), "pool empty");
        assert_eq!(out.reclaim(), 0);
        for k in 0..8 {
            take_k(&mut inbound, k);
        }
        assert!(inbound.next().is_none());
        inbound.release(|_| true);
        assert_eq!(out.reclaim(), 8);
        assert!(out.send(Target::Flood, (1, 7), port_ref(0), true, true, &[4; 64]));
        out.flush(|_, _| unreachable!());
        let c = inbound.next().unwrap();
        assert!(c.tagged && c.unfinished && c.frame() == [4; 64]);
        assert_eq!((c.target, c.net, c.net_gen), (Target::Flood, 1, 7));
    }

    /// TCP frames handed over count as in flight for their port until the batch goes back,
    /// once the ports it holds TCP for have sent it; other frames never count.
    #[test]
    fn tcp_frames_are_in_flight_until_their_port_sent_them() {
        // 64 buffers: the three frames go over in one batch.
        let mut m = mesh(2, 64, 128);
        let mut inbound = m[1].inbound.pop().unwrap();
        let out = m[0].out[1].as_mut().unwrap();
        let mut tcp = vec![0u8; 54];
        tcp[12..14].copy_from_slice(&[0x08, 0x00]);
        tcp[14] = 0x45;
        tcp[23] = 6;
        assert!(crate::wire::carries_tcp(&tcp));
        assert!(out.send(port(3), (1, 1), port_ref(0), false, false, &tcp));
        assert!(out.send(port(3), (1, 1), port_ref(0), false, false, &[0; 54]));
        assert!(out.send(port(4), (1, 1), port_ref(0), false, false, &tcp));
        assert_eq!(
            (out.in_flight(3), out.in_flight(4), out.in_flight(5)),
            (1, 1, 0)
        );
        out.flush(|_, _| unreachable!());
        while let Some(c) = inbound.next() {
            inbound.done(c);
        }
        // Port 4 still has frames queued: the batch waits.
        inbound.release(|slot| slot != 4);
        assert_eq!(out.reclaim(), 61);
        assert_eq!((out.in_flight(3), out.in_flight(4)), (1, 1));
        inbound.release(|_| true);
        assert_eq!(out.reclaim(), 64);
        assert_eq!((out.in_flight(3), out.in_flight(4)), (0, 0));
    }

    #[test]
    fn batches_keep_their_order_and_go_back_whole_as_each_is_done() {
        let mut m = mesh(2, 4 * BATCH, 8);
        let mut inbound = m[1].inbound.pop().unwrap();
        let out = m[0].out[1].as_mut().unwrap();
        // A full batch goes over at once; the frame after it waits for the flush.
        for k in 0..=BATCH {
            assert!(send_k(out, k));
        }
        for k in 0..BATCH - 1 {
            take_k(&mut inbound, k);
        }
        inbound.release(|_| true);
        assert_eq!(out.reclaim(), 3 * BATCH - 1, "a batch half done stays");
        take_k(&mut inbound, BATCH - 1);
        assert_eq!(out.reclaim(), 3 * BATCH - 1, "done: back once released");
        inbound.release(|_| true);
        assert_eq!(out.reclaim(), 4 * BATCH - 1);
        assert!(
            inbound.next().is_none(),
            "the last frame waits for the flush"
        );
        out.flush(|_, _| unreachable!());
        for k in BATCH + 1..BATCH + 3 {
            assert!(send_k(out, k));
        }
        out.flush(|_, _| unreachable!());
        for k in BATCH..BATCH + 3 {
            take_k(&mut inbound, k);
        }
        assert!(inbound.next().is_none());
        inbound.release(|_| true);
        assert_eq!(out.reclaim(), 4 * BATCH);
    }

    #[test]
    fn frames_for_a_peer_that_is_gone_are_counted_lost_and_keep_their_buffers() {
        // 8 buffers: a batch goes over on its own at 2.
        let mut m = mesh(2, 8, 8);
        drop(m[1].inbound.pop());
        let out = m[0].out[1].as_mut().unwrap();
        // Full batches that could not go over wait for the flush, which counts them.
        for k in 0..5 {
            assert!(send_k(out, k));
        }
        let mut lost = Vec::new();
        out.flush(|ingress, frames| lost.push((ingress, frames)));
        assert_eq!((lost, out.reclaim()), (vec![(0, 1); 5], 8));
        assert_eq!(out.in_flight(2), 0, "lost: not in flight");
        // A merged run of 5 segments, handed over whole: lost as its 5.
        let mut run = vec![0u8; 3000];
        assert!(out.send_whole(port_ref(2), (1, 1), port_ref(1), false, &mut run, (1514, 5)));
        let mut lost = Vec::new();
        out.flush(|ingress, frames| lost.push((ingress, frames)));
        assert_eq!(lost, vec![(1, 5)]);
    }

    #[test]
    fn a_frame_larger_than_a_buffer_is_refused_and_keeps_the_buffer() {
        let mut m = mesh(2, 1, 16);
        let out = m[0].out[1].as_mut().unwrap();
        assert!(!out.send(Target::Flood, (0, 1), port_ref(0), false, false, &[0; 17]));
        assert_eq!(out.reclaim(), 1);
    }
}
