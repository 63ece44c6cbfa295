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
//! again, or sends a batch within a millisecond (a device sending again at full speed, whose ring
//! the traffic keeps full). A device that sends a frame now and then while traffic keeps its ring
//! full therefore stays stalled, rather than holding the others back for another [`STALL_NS`]
//! after each frame. (A ring smaller than a batch is short of room while it holds any frame.)
//! One that sends in bursts (a paused NIC let go for a moment; a starved peer given the CPU now
//! and then) empties its ring and stalls again: within [`RECENT_NS`] of its last stall's end it
//! stalls after [`RESTALL_NS`], so that each burst holds the others back a millisecond, not ten.
//!
//! A stalled port is kicked at most every [`STALLED_KICK_NS`] while its kicks send nothing, and
//! every round again once one does (in copy mode a kick is a system call that copies a frame
//! into a buffer the device refuses and frees it: a worker that kicked a dead port every round
//! paid that on every round, for every other port).

use super::MAX_BATCH;

/// How long a port's TX ring may stay short of a batch's room, completing nothing, before the
/// port stops bounding its worker's rounds: far longer than a busy device takes to send a batch
/// (microseconds), or a veth's peer takes to be scheduled on a loaded host; about as long as a
/// port's RX ring holds back traffic at a million frames a second.
pub(super) const STALL_NS: u64 = 10_000_000;

/// How long a port that stalled within [`RECENT_NS`] may hold the others back again.
pub(super) const RESTALL_NS: u64 = 1_000_000;

/// How long after the end of a stall a port stalls again after [`RESTALL_NS`].
pub(super) const RECENT_NS: u64 = 1_000_000_000;

/// How often a stalled port whose kicks send nothing is kicked: a device that sends again is
/// found within it, and then kicked every round.
pub(super) const STALLED_KICK_NS: u64 = 1_000_000;

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
    /// The most room its ring has been seen to have (its size, seen while it was empty): a ring
    /// smaller than a batch is short of room while it holds any frame.
    most_free: u32,
    /// Since when (ns) the ring has been short of room with nothing completed.
    since: Option<u64>,
    stalled: bool,
    /// While stalled: when the current millisecond began (ns), the frames completed in it, and
    /// when the port was last watched.
    window: (u64, usize, u64),
    /// When (ns) its last stall ended.
    resumed_at: Option<u64>,
    /// While stalled: when (ns) it is kicked next; 0 once a kick sent something.
    next_kick: u64,
    /// Since when (ns) an idle worker has found frames on its ring with nothing completed.
    undrained_since: Option<u64>,
    /// When a stall of this port was last logged, and whether it is the current one.
    told_at: Option<u64>,
    told: bool,
}

impl TxWatch {
    /// The port stalled: it does not bound rounds, and what does not fit its ring is dropped.
    pub(super) fn stalled(&self) -> bool {
        self.stalled
    }

    /// Whether to kick the port's transmit at `now` (ns): always, unless it stalled; a stalled
    /// port once its last kick sent something, else at most every [`STALLED_KICK_NS`].
    pub(super) fn kick_due(&mut self, now: u64) -> bool {
        if !self.stalled {
            return true;
        }
        if now < self.next_kick {
            return false;
        }
        self.next_kick = now.saturating_add(STALLED_KICK_NS);
        true
    }

    /// An idle worker found the port's ring `drained` or not, at `now` (ns). True if its ring
    /// does not drain: it stalled, or frames have stayed on it for [`STALL_NS`] with nothing
    /// completed (a device that stopped with a few frames on its ring, short of a stall). The
    /// worker then sleeps rather than naps, and wakes to kick the port at least every
    /// [`STALL_NS`].
    pub(super) fn stuck(&mut self, drained: bool, now: u64) -> bool {
        if drained {
            self.undrained_since = None;
            return false;
        }
        let since = *self.undrained_since.get_or_insert(now);
        self.stalled || now.saturating_sub(since) >= STALL_NS
    }

    /// The port's TX ring has `free` room after the port completed `done` frames this round, at
    /// `now` (ns). Returns a change worth logging: a stall (at most every 10 s per port) and the
    /// end of a stall that was logged.
    pub(super) fn observe(&mut self, free: u32, done: usize, now: u64) -> Option<Change> {
        self.most_free = self.most_free.max(free);
        if done > 0 {
            self.undrained_since = None;
        }
        let roomy = free >= self.most_free.min(MAX_BATCH as u32);
        if self.stalled {
            // It resumes with a batch of room, or once it sends a batch at a batch a millisecond
            // or faster: a device sending again at full speed, whose ring the traffic keeps full.
            // The rate is over the window since `began`; a window longer than a millisecond that
            // falls short moves on, to begin at the last look. (Frames completed over a long
            // gap, the worker off its CPU, are not sent fast.)
            if done > 0 {
                // Its kick sent: kick it every round while that lasts.
                self.next_kick = 0;
            }
            let (began, sent, last) = &mut self.window;
            *sent += done;
            let span = now.saturating_sub(*began).max(1);
            let fast = *sent >= MAX_BATCH && *sent as u64 * RESTALL_NS >= MAX_BATCH as u64 * span;
            if !roomy && !fast {
                if span > RESTALL_NS {
                    (*began, *sent) = (*last, done);
                }
                *last = now;
                return None;
            }
            self.stalled = false;
            self.resumed_at = Some(now);
            return core::mem::take(&mut self.told).then_some(Change::Resumed);
        }
        if roomy || done > 0 {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert(now);
        let recent = self
            .resumed_at
            .is_some_and(|t| since.saturating_sub(t) < RECENT_NS);
        if now.saturating_sub(since) < if recent { RESTALL_NS } else { STALL_NS } {
            return None;
        }
        self.stalled = true;
        self.since = None;
        self.window = (now, 0, now);
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

    /// A watch over a port with a 2048-frame ring, as it opens: empty.
    fn watch() -> TxWatch {
        let mut w = TxWatch::default();
        assert_eq!(w.observe(2048, 0, 0), None);
        w
    }

    #[test]
    fn a_ring_with_room_never_stalls() {
        let mut w = watch();
        for t in 0..100 {
            assert_eq!(w.observe(MAX_BATCH as u32, 0, t * 10 * MS), None);
            assert!(!w.stalled());
        }
    }

    #[test]
    fn a_full_ring_that_sends_never_stalls() {
        let mut w = watch();
        for t in 0..100 {
            assert_eq!(w.observe(0, 1, t * 10 * MS), None);
            assert!(!w.stalled());
        }
    }

    #[test]
    fn a_full_ring_that_sends_nothing_stalls_after_the_time_and_not_before() {
        let mut w = watch();
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
    fn a_stalled_port_that_sends_a_batch_within_a_millisecond_resumes_its_ring_still_full() {
        let mut w = watch();
        w.observe(0, 0, MS);
        assert_eq!(w.observe(0, 0, MS + STALL_NS), Some(Change::Stalled));
        let t = MS + STALL_NS;
        // A frame a millisecond: stalled still.
        for k in 1..=20 {
            assert_eq!(w.observe(0, 1, t + k * MS), None);
        }
        assert!(w.stalled());
        // A batch over 8 ms without a look (the worker off its CPU): not at full speed.
        let t = t + 30 * MS;
        assert_eq!(w.observe(0, 0, t), None);
        assert_eq!(w.observe(0, MAX_BATCH, t + 8 * MS), None);
        assert!(w.stalled());
        // 32 frames a kick, two kicks within a millisecond: sending at full speed.
        let t = t + 10 * MS;
        assert_eq!(w.observe(0, 0, t), None);
        assert_eq!(w.observe(0, 32, t + MS / 4), None);
        assert_eq!(w.observe(0, 32, t + MS / 2), Some(Change::Resumed));
        assert!(!w.stalled());
    }

    #[test]
    fn the_rate_a_stalled_port_resumes_at_spans_looks_far_apart() {
        // Looks 0.6 ms apart: 70 frames a millisecond resume it, 60 do not.
        for (rate, resumes) in [(70, true), (60, false)] {
            let mut w = watch();
            w.observe(0, 0, MS);
            assert_eq!(w.observe(0, 0, MS + STALL_NS), Some(Change::Stalled));
            let t = MS + STALL_NS;
            let gap = 6 * MS / 10;
            let resumed = (1..=20).any(|k| {
                w.observe(0, rate * 6 / 10, t + k * gap);
                !w.stalled()
            });
            assert_eq!(resumed, resumes, "{rate} frames a millisecond");
        }
    }

    #[test]
    fn a_stalled_port_is_kicked_every_millisecond_and_every_round_once_a_kick_sends() {
        let mut w = watch();
        // Not stalled: every round.
        assert!((0..5).all(|k| w.kick_due(k)));
        w.observe(0, 0, MS);
        assert_eq!(w.observe(0, 0, MS + STALL_NS), Some(Change::Stalled));
        let t = MS + STALL_NS;
        // Stalled: a kick, then none for a millisecond, then one.
        assert!(w.kick_due(t));
        assert!(!w.kick_due(t + 1));
        assert!(!w.kick_due(t + STALLED_KICK_NS - 1));
        assert!(w.kick_due(t + STALLED_KICK_NS));
        assert!(!w.kick_due(t + STALLED_KICK_NS + 1));
        // That kick sent a frame: the next round kicks again, and the one after if it sends.
        let t = t + STALLED_KICK_NS + 2;
        assert_eq!(w.observe(0, 1, t), None);
        assert!(w.kick_due(t + 1));
        assert_eq!(w.observe(0, 1, t + 2), None);
        assert!(w.kick_due(t + 3));
        // A kick that sends nothing: a millisecond's wait again.
        assert_eq!(w.observe(0, 0, t + 4), None);
        assert!(!w.kick_due(t + 5));
        assert!(w.stalled());
    }

    #[test]
    fn a_ring_smaller_than_a_batch_stalls_only_while_it_holds_frames() {
        let mut w = TxWatch::default();
        // An idle 32-frame ring: never short of room.
        for k in 0..100 {
            assert_eq!(w.observe(32, 0, k * 10 * MS), None);
        }
        // One frame it does not send for 10 ms: stalled; its ring empty again: resumed.
        let t = 1_000 * MS;
        w.observe(31, 0, t);
        assert_eq!(w.observe(31, 0, t + STALL_NS), Some(Change::Stalled));
        assert_eq!(w.observe(32, 1, t + STALL_NS + MS), Some(Change::Resumed));
    }

    #[test]
    fn an_idle_worker_sleeps_past_a_ring_that_does_not_drain() {
        let mut w = watch();
        // Drained: nothing to kick.
        assert!(!w.stuck(true, 0));
        // A few frames left on the ring: not before 10 ms without a frame sent.
        assert!(!w.stuck(false, MS));
        assert!(!w.stuck(false, MS + STALL_NS - 1));
        assert!(w.stuck(false, MS + STALL_NS));
        // A frame sent: the time starts again.
        w.observe(2000, 1, 20 * MS);
        assert!(!w.stuck(false, 21 * MS));
        assert!(w.stuck(false, 21 * MS + STALL_NS));
        // Drained since: nothing to kick.
        assert!(!w.stuck(true, 40 * MS));
        assert!(!w.stuck(false, 41 * MS));
        // A stalled port at once.
        w.observe(0, 0, 100 * MS);
        w.observe(0, 0, 100 * MS + STALL_NS);
        assert!(w.stalled());
        w.stuck(true, 111 * MS);
        assert!(w.stuck(false, 111 * MS));
    }

    #[test]
    fn a_frame_sent_restarts_the_time() {
        let mut w = watch();
        assert_eq!(w.observe(0, 0, 0), None);
        assert_eq!(w.observe(0, 1, STALL_NS - MS), None);
        assert_eq!(w.observe(0, 0, STALL_NS), None);
        assert_eq!(w.observe(0, 0, 2 * STALL_NS - 1), None);
        assert!(!w.stalled());
        assert_eq!(w.observe(0, 0, 2 * STALL_NS), Some(Change::Stalled));
    }

    #[test]
    fn a_port_that_stalls_again_soon_after_holds_the_others_back_a_millisecond() {
        let mut w = watch();
        w.observe(0, 0, 0);
        assert_eq!(w.observe(0, 0, STALL_NS), Some(Change::Stalled));
        let end = STALL_NS + MS;
        assert_eq!(w.observe(MAX_BATCH as u32, 9, end), Some(Change::Resumed));
        // Short of room again soon after: a stall after a millisecond (not told: within 10 s).
        w.observe(0, 0, end + 5 * MS);
        w.observe(0, 0, end + 6 * MS - 1);
        assert!(!w.stalled());
        w.observe(0, 0, end + 6 * MS);
        assert!(w.stalled());
        // Short of room a second after the end of its last stall: ten milliseconds again.
        let end = end + 7 * MS;
        w.observe(MAX_BATCH as u32, 9, end);
        assert!(!w.stalled());
        w.observe(0, 0, end + RECENT_NS);
        w.observe(0, 0, end + RECENT_NS + STALL_NS - 1);
        assert!(!w.stalled());
        w.observe(0, 0, end + RECENT_NS + STALL_NS);
        assert!(w.stalled());
    }

    #[test]
    fn stalls_are_told_at_most_every_ten_seconds_and_each_told_one_ends_told() {
        let mut w = watch();
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
