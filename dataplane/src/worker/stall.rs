//! A port whose transmit stopped: it no longer holds the worker's other ports back.
//!
//! A round takes no more frames than the smallest free TX room of its worker's ports, so that a
//! full ring holds frames back in the RX rings instead of losing them. That suits a port that is
//! busy: it sends, and its room comes back. It does not suit a port whose device stopped sending
//! while its carrier stays up (a NIC paused by its link partner's flow control, or hung until its
//! watchdog resets it; a tap whose VM stopped reading, on kernels where the tap then stops its
//! queue): every kick is refused, its room never comes back, and every port of its worker would
//! stop with it, then every other worker, whose frames for that worker's ports wait in full
//! rings. Linux's own path drops there: a stopped queue fills its qdisc, and what comes after is
//! dropped, for that device only.
//!
//! So a port whose TX ring has had less than a batch of room ([`MAX_BATCH`]) and completed no
//! frame for [`STALL_NS`] is *stalled*: it no longer bounds a round, and what a round sends it
//! beyond its room is dropped on it (`tx_stalled`). It stays stalled until it has a batch of room
//! again. A device that sends a frame now and then while traffic keeps its ring full therefore
//! stays stalled, rather than holding the others back for another [`STALL_NS`] after each frame.

use super::MAX_BATCH;

/// How long a port's TX ring may stay short of a batch's room, completing nothing, before the
/// port stops bounding its worker's rounds: far longer than a busy device takes to send a batch
/// (microseconds), or a veth's peer takes to be scheduled on a loaded host; about as long as a
/// port's RX ring holds back traffic at a million frames a second.
pub(super) const STALL_NS: u64 = 10_000_000;

/// Warnings about one port's stalls are logged at most this often.
const TELL_EVERY_NS: u64 = 10_000_000_000;

/// What became of a port's transmit, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// The port stalled.
    Stalled,
    /// The port has room again after a stall that was logged.
    Resumed,
}

/// The watch over one port's transmit.
#[derive(Debug, Default)]
pub(super) struct TxWatch {
    /// Since when (ns) the ring has been short of room with nothing completed.
    since: Option<u64>,
    stalled: bool,
    /// When a stall of this port was last logged, and whether it is the current one.
    told_at: Option<u64>,
    told: bool,
}

impl TxWatch {
    /// The port stalled: it does not bound rounds, and what does not fit its ring is dropped.
    pub(super) fn stalled(&self) -> bool {
        self.stalled
    }

    /// The port's TX ring has `free` room after the port completed `done` frames this round, at
    /// `now` (ns). Returns a change worth logging: a stall (at most every 10 s per port) and the
    /// end of a stall that was logged.
    pub(super) fn observe(&mut self, free: u32, done: usize, now: u64) -> Option<Change> {
        if free >= MAX_BATCH as u32 {
            self.since = None;
            if !core::mem::take(&mut self.stalled) {
                return None;
            }
            return core::mem::take(&mut self.told).then_some(Change::Resumed);
        }
        if self.stalled {
            return None;
        }
        if done > 0 {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_sub(since) < STALL_NS {
            return None;
        }
        self.stalled = true;
        self.told = self
            .told_at
            .is_none_or(|t| now.saturating_sub(t) >= TELL_EVERY_NS);
        if !self.told {
            return None;
        }
        self.told_at = Some(now);
        Some(Change::Stalled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_ring_with_room_never_stalls() {
        let mut w = TxWatch::default();
        for t in 0..100 {
            assert_eq!(w.observe(MAX_BATCH as u32, 0, t * 10 * MS), None);
            assert!(!w.stalled());
        }
    }

    #[test]
    fn a_full_ring_that_sends_never_stalls() {
        let mut w = TxWatch::default();
        for t in 0..100 {
            assert_eq!(w.observe(0, 1, t * 10 * MS), None);
            assert!(!w.stalled());
        }
    }

    #[test]
    fn a_full_ring_that_sends_nothing_stalls_after_the_time_and_not_before() {
        let mut w = TxWatch::default();
        assert_eq!(w.observe(3, 0, 100 * MS), None);
        assert_eq!(w.observe(3, 0, 100 * MS + STALL_NS - 1), None);
        assert!(!w.stalled());
        assert_eq!(w.observe(3, 0, 100 * MS + STALL_NS), Some(Change::Stalled));
        assert!(w.stalled());
        // A frame sent now and then, the ring kept full: still stalled, nothing more to tell.
        assert_eq!(w.observe(0, 1, 200 * MS), None);
        assert_eq!(w.observe(0, 0, 300 * MS), None);
        assert!(w.stalled());
        // A batch of room: resumed.
        assert_eq!(
            w.observe(MAX_BATCH as u32, 5, 301 * MS),
            Some(Change::Resumed)
        );
        assert!(!w.stalled());
    }

    #[test]
    fn a_frame_sent_restarts_the_time() {
        let mut w = TxWatch::default();
        assert_eq!(w.observe(0, 0, 0), None);
        assert_eq!(w.observe(0, 1, STALL_NS - MS), None);
        assert_eq!(w.observe(0, 0, STALL_NS), None);
        assert_eq!(w.observe(0, 0, 2 * STALL_NS - 1), None);
        assert!(!w.stalled());
        assert_eq!(w.observe(0, 0, 2 * STALL_NS), Some(Change::Stalled));
    }

    #[test]
    fn stalls_are_told_at_most_every_ten_seconds_and_each_told_one_ends_told() {
        let mut w = TxWatch::default();
        let stall = |w: &mut TxWatch, at: u64| {
            let first = w.observe(0, 0, at);
            assert_eq!(first, None);
            let told = w.observe(0, 0, at + STALL_NS);
            assert!(w.stalled());
            let end = w.observe(MAX_BATCH as u32, 0, at + STALL_NS + MS);
            assert!(!w.stalled());
            (told, end)
        };
        let told = Some(Change::Stalled);
        let ended = Some(Change::Resumed);
        assert_eq!(stall(&mut w, 0), (told, ended));
        assert_eq!(stall(&mut w, 1_000 * MS), (None, None));
        assert_eq!(stall(&mut w, 9_000 * MS), (None, None));
        assert_eq!(stall(&mut w, 10_000 * MS), (told, ended));
    }
}
