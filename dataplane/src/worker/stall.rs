//! A port whose transmit falls behind: it no longer holds the worker's other ports back.
//!
//! A round takes no more frames than the smallest free TX room of its worker's ports, so that a
//! full ring holds frames back in the RX rings instead of losing them. That suits a port that is
//! busy for a moment: it sends, and its room comes back. It does not suit a port whose device
//! sends slower than it is sent to for longer (an uplink at its line rate), or stopped while its
//! carrier stays up (a NIC paused by its link partner's flow control, or hung until its watchdog
//! resets it; a tap whose VM stopped reading, on kernels where the tap then stops its queue):
//! every port of its worker would go at its pace, or stop with it, then every other worker,
//! whose frames for that worker's ports wait in full rings. Linux's own path drops there: a
//! device's queue fills its qdisc, and what comes after is dropped, for that device only.
//!
//! So a port whose TX ring has had less than a batch of room ([`MAX_BATCH`]) for [`STALL_NS`],
//! whether it sends or not, is *stalled*: it no longer bounds a round, and what a round sends it
//! beyond its room is dropped on it (`tx_stalled`). Its ring is then its queue, dropping at its
//! tail as a qdisc does. It stays stalled until its ring has a batch of room again: its device
//! has caught up with what it is sent. (A ring smaller than a batch is short of room while it
//! holds any frame.) A device that falls behind again soon (one that sends in bursts: a paused
//! NIC let go for a moment, a starved peer given the CPU now and then) stalls again sooner:
//! within [`RECENT_NS`] of its last stall's end, after [`RESTALL_NS`], so that each burst holds
//! the others back a millisecond, not ten. [`STALL_NS`] is long enough for a port's pause of a
//! few milliseconds (its peer scheduled late on a loaded host) to be held in the RX rings
//! without loss, as far as they hold, as before there was a stall.
//!
//! The time short of room is the worker's time spent looking at the port: a gap between two looks
//! counts at most [`LOOK_NS`], and at most half the time to stall (or a nap's). A worker that holds
//! frames back looks every round, at least every 200 µs (its nap) while it has its CPU; a longer
//! gap is the worker asleep, with nothing to hold back, or its CPU taken from it (its VM paused,
//! the host busy), when a copy-mode port could not send either: it sends only when the worker kicks
//! it. Counted by the wall clock, a pause of 10 ms stalled a port whose ring had been short of room
//! for a moment before it, and a pause of a millisecond one that had stalled within the second
//! before.
//!
//! A stalled port whose device still completes frames (within [`STALLED_KICK_NS`] of the last)
//! is kicked as any other port, so that it can catch up: in copy mode a device sends only on a
//! kick, a budget of frames each (32 on kernels without `XDP_MAX_TX_SKB_BUDGET`). One that
//! completes nothing is kicked only at a round's start, at most every [`STALLED_KICK_NS`]: in
//! copy mode a kick is a system call that copies a frame into a buffer the device refuses and
//! frees it, which a worker that kicked a dead port every round paid on every round, for every
//! other port.

use super::MAX_BATCH;

/// How long a port's TX ring may stay short of a batch's room before the port stops bounding
/// its worker's rounds, by default (`[switch] tx_stall_us`): far longer than a busy device takes
/// to send a batch (microseconds), or a veth's peer takes to be scheduled on a loaded host; about
/// as long as a port's RX ring holds back traffic at a million frames a second.
pub(super) const STALL_NS: u64 = 10_000_000;

/// How long a port that stalled within [`RECENT_NS`] may hold the others back again (or the
/// stall time, if that is shorter).
pub(super) const RESTALL_NS: u64 = 1_000_000;

/// How long after the end of a stall a port stalls again after [`RESTALL_NS`].
pub(super) const RECENT_NS: u64 = 1_000_000_000;

/// The most a gap between two looks at a port counts towards the time its ring is short of
/// room: longer than a round, or a held-back worker's nap (200 µs), with room for the worker to
/// be scheduled late. A gap counts at most half the time to stall, too, so that one pause alone
/// never stalls a port (a stall takes two gaps at least, and `stall time / LOOK_NS`), but always
/// up to [`NAP_NS`].
pub(super) const LOOK_NS: u64 = 1_000_000;

/// What a gap between two looks always counts up to, however short the stall time: a
/// held-back worker's nap (200 µs) and its wake-up. (Below a stall time of twice this, one
/// pause may stall a port.)
pub(super) const NAP_NS: u64 = 250_000;

/// How long frames may stay on an idle worker's port ring with nothing completed before the
/// worker sleeps rather than naps, waking to kick the port about this often.
pub(super) const UNDRAINED_NS: u64 = 10_000_000;

/// How often a stalled port that completes nothing is kicked, and how long after a frame it
/// completed it is kicked as any other port: a device that sends again is found within it.
pub(super) const STALLED_KICK_NS: u64 = 1_000_000;

/// Warnings about one port's stalls are logged at most this often.
const TELL_EVERY_NS: u64 = 10_000_000_000;

/// What became of a port's transmit, for the port's status and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// The port stalled; `tell`: worth logging (at most every 10 s per port).
    Stalled { tell: bool },
    /// The port has room again after a stall; `tell`: that stall was logged.
    Resumed { tell: bool },
}

/// How long a port's ring may stay short of room before it stalls: [`STALL_NS`] or as
/// configured, and [`RESTALL_NS`] (at most that) within [`RECENT_NS`] of its last stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StallTimes {
    pub(super) stall_ns: u64,
    pub(super) restall_ns: u64,
}

impl StallTimes {
    /// The times for a stall time of `stall_ns` (at least 1 ns).
    pub(super) fn new(stall_ns: u64) -> Self {
        let stall_ns = stall_ns.max(1);
        StallTimes {
            stall_ns,
            restall_ns: RESTALL_NS.min(stall_ns),
        }
    }
}

impl Default for StallTimes {
    fn default() -> Self {
        StallTimes::new(STALL_NS)
    }
}

/// A port's ring short of room: since when (ns), the time counted of it, and when it was last
/// looked at (ns).
#[derive(Debug, Clone, Copy)]
struct Short {
    since: u64,
    counted: u64,
    seen: u64,
}

/// The watch over one port's transmit.
#[derive(Debug, Default)]
pub(super) struct TxWatch {
    /// How long it may be short of room before it stalls.
    times: StallTimes,
    /// The most room its ring has been seen to have (its size, seen while it was empty): a ring
    /// smaller than a batch is short of room while it holds any frame.
    most_free: u32,
    /// Since when the ring has been short of room, if it is.
    short: Option<Short>,
    stalled: bool,
    /// When (ns) its last stall ended.
    resumed_at: Option<u64>,
    /// While stalled and completing nothing: when (ns) it is kicked next.
    next_kick: u64,
    /// Until when (ns) it counts as sending: a millisecond after it last completed a frame (a
    /// device's completions may come a while after the kick that sent its frames).
    sending_until: u64,
    /// Since when (ns) an idle worker has found frames on its ring with nothing completed.
    undrained_since: Option<u64>,
    /// When a stall of this port was last logged, and whether it is the current one.
    told_at: Option<u64>,
    told: bool,
    /// Up to when (ns) the current stall's time has been counted ([`TxWatch::stalled_ns`]).
    counted_to: u64,
    /// The ended stall's time not yet counted.
    uncounted: u64,
}

impl TxWatch {
    /// A watch that stalls the port after `times`.
    pub(super) fn new(times: StallTimes) -> Self {
        TxWatch {
            times,
            ..TxWatch::default()
        }
    }

    /// How long the port may be short of room before it stalls.
    pub(super) fn times(&self) -> StallTimes {
        self.times
    }

    /// The port stalled: it does not bound rounds, and what does not fit its ring is dropped.
    pub(super) fn stalled(&self) -> bool {
        self.stalled
    }

    /// Whether the port is kicked as any other at `now` (ns): it did not stall, or it completed
    /// a frame within [`STALLED_KICK_NS`].
    pub(super) fn kicked_freely(&self, now: u64) -> bool {
        !self.stalled || now < self.sending_until
    }

    /// Whether to kick the port's transmit at a round's start, at `now` (ns): as any other
    /// port ([`TxWatch::kicked_freely`]), else at most every [`STALLED_KICK_NS`].
    pub(super) fn kick_due(&mut self, now: u64) -> bool {
        if self.kicked_freely(now) {
            return true;
        }
        if now < self.next_kick {
            return false;
        }
        self.next_kick = now.saturating_add(STALLED_KICK_NS);
        true
    }

    /// The time (ns) the port has spent stalled since the last call, up to `now` (ns): the
    /// current stall's since then, and an ended one's rest. The worker adds it to the port's
    /// `tx_stalled_ns` each round.
    #[inline]
    pub(super) fn stalled_ns(&mut self, now: u64) -> u64 {
        let mut t = core::mem::take(&mut self.uncounted);
        if self.stalled {
            t += now.saturating_sub(self.counted_to);
            self.counted_to = now;
        }
        t
    }

    /// An idle worker found the port's ring `drained` or not, at `now` (ns). True if its ring
    /// does not drain: it stalled and completes nothing, or frames have stayed on it for
    /// [`UNDRAINED_NS`] with nothing completed (a device that stopped with a few frames on its
    /// ring, short of a stall). The worker then sleeps rather than naps, and wakes to kick the
    /// port about every [`UNDRAINED_NS`]. (A stalled port that sends, a slow device, is kicked
    /// as often as a napping worker looks: in copy mode it sends only then.)
    pub(super) fn stuck(&mut self, drained: bool, now: u64) -> bool {
        if drained {
            self.undrained_since = None;
            return false;
        }
        let since = *self.undrained_since.get_or_insert(now);
        !self.kicked_freely(now) || now.saturating_sub(since) >= UNDRAINED_NS
    }

    /// The port's TX ring has `free` room after the port completed `done` frames this round, at
    /// `now` (ns). Returns a stall or the end of one, and whether it is worth logging: a stall
    /// at most every 10 s per port, and the end of a stall that was logged.
    pub(super) fn observe(&mut self, free: u32, done: usize, now: u64) -> Option<Change> {
        self.most_free = self.most_free.max(free);
        if done > 0 {
            self.undrained_since = None;
            self.sending_until = now.saturating_add(STALLED_KICK_NS);
        }
        let roomy = free >= self.most_free.min(MAX_BATCH as u32);
        if roomy {
            self.short = None;
            if !self.stalled {
                return None;
            }
            self.stalled = false;
            self.resumed_at = Some(now);
            self.uncounted += now.saturating_sub(self.counted_to);
            let tell = core::mem::take(&mut self.told);
            return Some(Change::Resumed { tell });
        }
        if self.stalled {
            return None;
        }
        let short = self.short.get_or_insert(Short {
            since: now,
            counted: 0,
            seen: now,
        });
        let recent = self
            .resumed_at
            .is_some_and(|t| short.since.saturating_sub(t) < RECENT_NS);
        let after = if recent {
            self.times.restall_ns
        } else {
            self.times.stall_ns
        };
        let most = LOOK_NS.min((after / 2).max(NAP_NS));
        short.counted += now.saturating_sub(short.seen).min(most);
        short.seen = now;
        if short.counted < after {
            return None;
        }
        self.stalled = true;
        self.short = None;
        self.next_kick = 0;
        self.counted_to = now;
        self.told = self
            .told_at
            .is_none_or(|t| now.saturating_sub(t) >= TELL_EVERY_NS);
        if self.told {
            self.told_at = Some(now);
        }
        Some(Change::Stalled { tell: self.told })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    /// A stall and the end of one, told.
    const STALLED: Change = Change::Stalled { tell: true };
    const RESUMED: Change = Change::Resumed { tell: true };

    /// A watch over a port with a 2048-frame ring, as it opens: empty.
    fn watch() -> TxWatch {
        let mut w = TxWatch::default();
        assert_eq!(w.observe(2048, 0, 0), None);
        w
    }

    /// Looks at the port every 100 µs from `from` to `to` (ns), its ring with `free` room and
    /// `done` frames completed each time, as a worker whose rounds hold frames back does: none
    /// but the last may change anything. Returns what the last did.
    fn looks(w: &mut TxWatch, free: u32, done: usize, from: u64, to: u64) -> Option<Change> {
        let mut t = from;
        loop {
            let change = w.observe(free, done, t);
            if t == to {
                return change;
            }
            assert_eq!(change, None, "at {t} ns");
            t = (t + MS / 10).min(to);
        }
    }

    /// A watch over a port that stalled at the returned time.
    fn stalled() -> (TxWatch, u64) {
        let mut w = watch();
        assert_eq!(looks(&mut w, 0, 0, MS, MS + STALL_NS), Some(STALLED));
        (w, MS + STALL_NS)
    }

    #[test]
    fn the_time_stalled_is_counted_from_the_stall_to_its_end() {
        let (mut w, at) = stalled();
        assert_eq!(w.stalled_ns(at), 0);
        assert_eq!(w.stalled_ns(at + 3 * MS), 3 * MS);
        assert_eq!(w.observe(0, 0, at + 5 * MS), None);
        assert_eq!(w.observe(2048, 0, at + 7 * MS), Some(RESUMED));
        assert_eq!(w.stalled_ns(at + 9 * MS), 4 * MS, "to its end, not after");
        assert_eq!(w.stalled_ns(at + 20 * MS), 0);
        // Short of room again (a restall after 1 ms): counted from the new stall.
        // (Neither told: the first stall was logged less than 10 s before.)
        let stall = looks(&mut w, 0, 0, at + 30 * MS, at + 31 * MS);
        assert_eq!(stall, Some(Change::Stalled { tell: false }));
        let resume = w.observe(2048, 0, at + 33 * MS);
        assert_eq!(resume, Some(Change::Resumed { tell: false }));
        assert_eq!(w.stalled_ns(at + 40 * MS), 2 * MS);
    }

    #[test]
    fn a_pause_of_the_worker_counts_as_one_look_not_as_time_short_of_room() {
        // Short of room for a moment, then the worker does not look for 50 ms (its CPU taken
        // from it): no stall. Looked at again, short of room all along: a stall once the looks
        // add up to the stall time, the pause counted as a millisecond.
        let mut w = watch();
        assert_eq!(looks(&mut w, 0, 0, MS, 2 * MS), None);
        assert_eq!(w.observe(0, 0, 52 * MS), None);
        let stall = looks(&mut w, 0, 0, 52 * MS, 52 * MS + STALL_NS - 2 * MS - 1);
        assert_eq!(stall, None);
        assert_eq!(w.observe(0, 0, 52 * MS + STALL_NS - 2 * MS), Some(STALLED));
        // Resumed; short of room again within a second of it, and a pause of 5 ms: not one look
        // of a pause, though a millisecond short of room stalls it again now.
        let t = 100 * MS;
        assert_eq!(w.observe(2048, 9, t), Some(RESUMED));
        assert_eq!(w.observe(0, 0, t + MS), None);
        assert_eq!(w.observe(0, 0, t + 6 * MS), None);
        assert!(!w.stalled(), "one pause alone");
        let again = w.observe(0, 0, t + 6 * MS + RESTALL_NS / 2);
        assert_eq!(again, Some(Change::Stalled { tell: false }));
    }

    #[test]
    fn looks_10_ms_apart_count_a_millisecond_each() {
        // (As an idle worker looks at a port whose ring does not drain.)
        let mut w = watch();
        for k in 0..10 {
            assert_eq!(w.observe(0, 0, k * UNDRAINED_NS), None);
        }
        assert_eq!(w.observe(0, 0, 10 * UNDRAINED_NS), Some(STALLED));
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
    fn a_ring_short_of_room_stalls_after_the_time_and_not_before_whether_it_sends_or_not() {
        for sends in [0, 1, MAX_BATCH - 1] {
            let mut w = watch();
            let short = looks(&mut w, 3, sends, 100 * MS, 100 * MS + STALL_NS - 1);
            assert_eq!(short, None);
            assert!(!w.stalled());
            assert_eq!(w.observe(3, sends, 100 * MS + STALL_NS), Some(STALLED));
            assert!(w.stalled());
            // Frames sent, the ring kept short of room: still stalled, nothing more to tell.
            assert_eq!(w.observe(0, sends, 200 * MS), None);
            assert_eq!(w.observe(0, 0, 300 * MS), None);
            assert!(w.stalled());
            // A batch of room: resumed.
            assert_eq!(w.observe(MAX_BATCH as u32, 5, 301 * MS), Some(RESUMED));
            assert!(!w.stalled());
        }
    }

    #[test]
    fn a_batch_of_room_restarts_the_time() {
        let mut w = watch();
        assert_eq!(w.observe(0, 0, 0), None);
        assert_eq!(w.observe(MAX_BATCH as u32, 9, STALL_NS - 1), None);
        assert_eq!(looks(&mut w, 0, 0, STALL_NS, 2 * STALL_NS - 1), None);
        assert!(!w.stalled());
        assert_eq!(w.observe(0, 0, 2 * STALL_NS), Some(STALLED));
    }

    #[test]
    fn a_stalled_port_is_kicked_every_millisecond_and_every_round_once_a_kick_sends() {
        // Not stalled: every round.
        let mut w = watch();
        assert!((0..5).all(|k| w.kick_due(k)));
        let (mut w, t) = stalled();
        // Stalled, completing nothing: a kick, then none for a millisecond, then one.
        assert!(!w.kicked_freely(t));
        assert!(w.kick_due(t));
        assert!(!w.kick_due(t + 1));
        assert!(!w.kick_due(t + STALLED_KICK_NS - 1));
        assert!(w.kick_due(t + STALLED_KICK_NS));
        assert!(!w.kick_due(t + STALLED_KICK_NS + 1));
        // That kick sent a frame (its completion seen a round later): every round for a
        // millisecond after it.
        let t = t + STALLED_KICK_NS + 2;
        assert_eq!(w.observe(0, 1, t), None);
        assert!((1..10).all(|k| w.kick_due(t + k * STALLED_KICK_NS / 10)));
        assert!(w.kicked_freely(t + STALLED_KICK_NS - 1));
        // Then no frame completed for a millisecond: once a millisecond again.
        let u = t + STALLED_KICK_NS;
        assert_eq!(w.observe(0, 0, u), None);
        assert!(w.kick_due(u));
        assert!(!w.kick_due(u + 1));
        assert!(w.stalled());
    }

    #[test]
    fn a_ring_smaller_than_a_batch_stalls_only_while_it_holds_frames() {
        let mut w = TxWatch::default();
        // An idle 32-frame ring: never short of room.
        for k in 0..100 {
            assert_eq!(w.observe(32, 0, k * 10 * MS), None);
        }
        // One frame on it for 10 ms: stalled; its ring empty again: resumed.
        let t = 1_000 * MS;
        assert_eq!(looks(&mut w, 31, 0, t, t + STALL_NS), Some(STALLED));
        assert_eq!(w.observe(32, 1, t + STALL_NS + MS), Some(RESUMED));
    }

    #[test]
    fn an_idle_worker_sleeps_past_a_ring_that_does_not_drain() {
        let mut w = watch();
        // Drained: nothing to kick.
        assert!(!w.stuck(true, 0));
        // A few frames left on the ring: not before 10 ms without a frame sent.
        assert!(!w.stuck(false, MS));
        assert!(!w.stuck(false, MS + UNDRAINED_NS - 1));
        assert!(w.stuck(false, MS + UNDRAINED_NS));
        // A frame sent: the time starts again.
        w.observe(2000, 1, 20 * MS);
        assert!(!w.stuck(false, 21 * MS));
        assert!(w.stuck(false, 21 * MS + UNDRAINED_NS));
        // Drained since: nothing to kick.
        assert!(!w.stuck(true, 40 * MS));
        assert!(!w.stuck(false, 41 * MS));
        // A stalled port whose kick sent nothing at once; not one whose kick sent.
        looks(&mut w, 0, 0, 100 * MS, 100 * MS + STALL_NS);
        assert!(w.stalled());
        assert!(w.kick_due(112 * MS));
        w.observe(0, 1, 112 * MS);
        w.stuck(true, 112 * MS);
        assert!(!w.stuck(false, 112 * MS));
        assert!(w.kick_due(113 * MS));
        w.observe(0, 0, 113 * MS);
        assert!(w.stuck(false, 113 * MS));
    }

    #[test]
    fn a_port_that_stalls_again_soon_after_holds_the_others_back_a_millisecond() {
        let mut w = watch();
        assert_eq!(looks(&mut w, 0, 0, 0, STALL_NS), Some(STALLED));
        let end = STALL_NS + MS;
        assert_eq!(w.observe(MAX_BATCH as u32, 9, end), Some(RESUMED));
        // Short of room again soon after, sending or not: a stall after a millisecond (not
        // told: within 10 s).
        looks(&mut w, 0, 3, end + 5 * MS, end + 6 * MS - 1);
        assert!(!w.stalled());
        w.observe(0, 3, end + 6 * MS);
        assert!(w.stalled());
        // Short of room a second after the end of its last stall: ten milliseconds again.
        let end = end + 7 * MS;
        w.observe(MAX_BATCH as u32, 9, end);
        assert!(!w.stalled());
        let later = end + RECENT_NS;
        looks(&mut w, 0, 0, later, later + STALL_NS - 1);
        assert!(!w.stalled());
        w.observe(0, 0, later + STALL_NS);
        assert!(w.stalled());
    }

    #[test]
    fn a_configured_stall_time_is_kept_and_bounds_the_time_to_stall_again() {
        assert_eq!(StallTimes::default(), StallTimes::new(STALL_NS));
        let t = StallTimes::new(400_000);
        assert_eq!((t.stall_ns, t.restall_ns), (400_000, 400_000));
        let t = StallTimes::new(50 * MS);
        assert_eq!((t.stall_ns, t.restall_ns), (50 * MS, RESTALL_NS));
        let mut w = TxWatch::new(StallTimes::new(400_000));
        assert_eq!(w.observe(2048, 0, 0), None);
        assert_eq!(looks(&mut w, 0, 0, MS, MS + 399_999), None);
        assert_eq!(w.observe(0, 0, MS + 400_000), Some(STALLED));
        assert_eq!(w.observe(2048, 9, 2 * MS), Some(RESUMED));
        // Soon after: no longer than the stall time, which is shorter than the usual restall.
        assert_eq!(
            looks(&mut w, 0, 0, 3 * MS, 3 * MS + 400_000),
            Some(Change::Stalled { tell: false })
        );
    }

    #[test]
    fn however_short_the_stall_time_a_nap_counts_whole() {
        // 100 µs (the least `tx_stall_us`): a held-back worker's nap of 200 µs stalls the port.
        let mut w = TxWatch::new(StallTimes::new(100_000));
        assert_eq!(w.observe(2048, 0, 0), None);
        assert_eq!(w.observe(0, 0, MS), None);
        assert_eq!(w.observe(0, 0, MS + 200_000), Some(STALLED));
        // 1 ns: the first gap.
        let mut w = TxWatch::new(StallTimes::new(1));
        assert_eq!(w.observe(2048, 0, 0), None);
        assert_eq!(w.observe(0, 0, MS), None);
        assert_eq!(w.observe(0, 0, MS + 1), Some(STALLED));
    }

    #[test]
    fn stalls_are_told_at_most_every_ten_seconds_and_each_told_one_ends_told() {
        let mut w = watch();
        let stall = |w: &mut TxWatch, at: u64| {
            let told = looks(w, 0, 0, at, at + STALL_NS);
            assert!(w.stalled());
            let end = w.observe(MAX_BATCH as u32, 0, at + STALL_NS + MS);
            assert!(!w.stalled());
            (told, end)
        };
        let told = Some(STALLED);
        let ended = Some(RESUMED);
        assert_eq!(stall(&mut w, 0), (told, ended));
        let untold = (
            Some(Change::Stalled { tell: false }),
            Some(Change::Resumed { tell: false }),
        );
        assert_eq!(stall(&mut w, 2_000 * MS), untold);
        assert_eq!(stall(&mut w, 9_000 * MS), untold);
        // (More than a second after the last stall's end: 10 ms short of room again.)
        assert_eq!(stall(&mut w, 10_100 * MS), (told, ended));
    }
}
