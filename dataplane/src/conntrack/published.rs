//! The established TCP connections of a port that its worker lets other workers send into the
//! port themselves, without handing the frames over for the port's security group check.
//!
//! # Design
//! A port's connection table (its zone) belongs to the worker that owns the port, so on a
//! network with security groups every frame towards the port crossed to that worker to be
//! checked. Most of them are segments of established TCP connections, which the check passes
//! without reading a rule. The owner publishes such a connection here when a segment of it
//! crossed and passed; another worker then sends the connection's segments straight, as it does
//! on a network without security groups (`worker::direct`). Only segments without SYN, FIN or
//! RST go straight: the owner's check would pass them and change nothing in the entry but the
//! time a packet was last seen, which the port's own frames (the acknowledgments back, checked
//! where the port sends) keep. Everything else still crosses and is checked there.
//!
//! The owner is the only writer; any worker reads. A slot is a sequence lock over the key (the
//! zone included), the policy epoch it was published under and the second until which the
//! entry lives even without another packet: a reader that meets a write in progress, or a slot
//! changed while it read, treats the connection as unpublished and hands the frame over. The
//! table holds [`SLOTS`] connections, two to a bucket chosen by a hash of the key: a connection
//! whose bucket is full replaces the one published under an old epoch, else the one published
//! until the earliest second (the least recently published), whose segments cross again until
//! published anew. A collision can only
//! cost a crossing, never pass a frame: the whole key is compared.
//!
//! What is published is a connection the owner would pass:
//! - only under the epoch the owner applies now ([`Published::set_epoch`], on each snapshot it
//!   adopts): when rules or address sets change, every connection crosses again until the owner
//!   has checked it against the new rules (a cut one is not published while it stays cut);
//! - only until its entry's timeout could run out (a day for an established connection): past
//!   that second the next segment crosses, and the owner, whose entry the port's frames kept
//!   alive, publishes it again;
//! - the owner takes it out when its entry sees FIN or RST, and when the entry goes (replaced,
//!   or swept).
//!
//! The table belongs to one generation of the port's slot: a new port in the slot starts with
//! a new one.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::Key;

/// Connections a port's table holds: 16 KB a port.
pub const SLOTS: usize = 256;

/// Slots a connection may take: its bucket's ([`Published::insert`] says which).
const WAYS: usize = 2;

const BUCKETS: usize = SLOTS / WAYS;

const _: () = assert!(BUCKETS.is_power_of_two(), "`bucket` shifts the hash");

/// One published connection: a sequence lock (odd while the owner writes), the key's words, the
/// epoch it was published under and the second it is published until. Empty: the first word 0
/// (a TCP key's never is: its protocol is in it).
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    seq: AtomicU64,
    key: [AtomicU64; 5],
    epoch: AtomicU64,
    until: AtomicU64,
}

/// What a slot holds, read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    words: [u64; 5],
    epoch: u64,
    until: u64,
}

/// A port's published connections; written by its owner only.
#[derive(Debug)]
pub struct Published {
    /// The policy epoch the owner applies.
    epoch: AtomicU64,
    slots: Box<[Slot]>,
}

impl Default for Published {
    fn default() -> Self {
        Published {
            epoch: AtomicU64::new(0),
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
        }
    }
}

/// The bucket of `key`: a multiplicative hash of its words (not seeded: a collision costs a
/// crossing, never a pass).
#[inline]
fn bucket(key: &Key) -> usize {
    let h = key.w.iter().fold(0u64, |h, &w| {
        (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    });
    (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - BUCKETS.trailing_zeros())) as usize
}

impl Published {
    /// The owner applies policy epoch `epoch` from now on.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Release);
    }

    /// The owner no longer keeps the table (its port was withdrawn or closed, or a new port took
    /// the slot): it admits nothing from now on, whoever still reads it. (No policy epoch gets
    /// to `u64::MAX`.)
    pub fn retire(&self) {
        self.set_epoch(u64::MAX);
    }

    /// Does the owner let `key`'s connection go straight at second `now`: published under the
    /// epoch it applies, and not past its second?
    #[inline]
    pub fn admits(&self, key: &Key, now: u32) -> bool {
        self.ways(key).iter().any(|s| {
            self.read(s).is_some_and(|h| {
                Key { w: h.words } == *key
                    && u64::from(now) < h.until
                    && h.epoch == self.epoch.load(Ordering::Acquire)
            })
        })
    }

    /// The slots `key` may be in.
    #[inline]
    fn ways(&self, key: &Key) -> &[Slot] {
        let b = bucket(key) * WAYS;
        &self.slots[b..b + WAYS]
    }

    /// What slot `s` holds, as the owner last wrote it whole; `None` when a write was in
    /// progress or happened while it was read.
    #[inline]
    fn read(&self, s: &Slot) -> Option<Held> {
        let seq = s.seq.load(Ordering::Acquire);
        if seq & 1 != 0 {
            return None;
        }
        let held = Held {
            words: core::array::from_fn(|i| s.key[i].load(Ordering::Relaxed)),
            epoch: s.epoch.load(Ordering::Relaxed),
            until: s.until.load(Ordering::Relaxed),
        };
        fence(Ordering::Acquire);
        (s.seq.load(Ordering::Relaxed) == seq).then_some(held)
    }

    /// What slot `s` holds, read by the owner (the only writer: it reads what it wrote).
    fn own(s: &Slot) -> Held {
        Held {
            words: core::array::from_fn(|i| s.key[i].load(Ordering::Relaxed)),
            epoch: s.epoch.load(Ordering::Relaxed),
            until: s.until.load(Ordering::Relaxed),
        }
    }

    /// Publishes `key`'s connection under `epoch` until second `until` (the owner only), in its
    /// own slot if it has one (nothing is written when it is there so already), else in the
    /// first of its bucket's slots that is empty, else published under another epoch than the
    /// owner's, else published until the earliest second (the least recently published).
    pub(super) fn insert(&self, key: &Key, epoch: u64, until: u32) {
        let held = Held {
            words: key.w,
            epoch,
            until: u64::from(until),
        };
        let ways = self.ways(key);
        let current = self.epoch.load(Ordering::Relaxed);
        let cur: [Held; WAYS] = core::array::from_fn(|w| Published::own(&ways[w]));
        let own = cur.iter().position(|h| h.words == key.w);
        let w = own.unwrap_or_else(|| {
            let rank = |h: &Held| (h.words[0] != 0, h.epoch == current, h.until);
            (0..WAYS).min_by_key(|&w| rank(&cur[w])).unwrap_or(0)
        });
        if cur[w] != held {
            Published::write(&ways[w], &held);
        }
    }

    /// Takes `key`'s connection out, if it is published (the owner only).
    pub(super) fn remove(&self, key: &Key) {
        for s in self.ways(key) {
            if Published::own(s).words == key.w {
                let empty = Held {
                    words: [0; 5],
                    epoch: 0,
                    until: 0,
                };
                Published::write(s, &empty);
            }
        }
    }

    /// Writes slot `s` under its sequence lock: readers that overlap see the count odd or
    /// changed, and take nothing from it.
    fn write(s: &Slot, held: &Held) {
        let seq = s.seq.load(Ordering::Relaxed);
        s.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (a, w) in s.key.iter().zip(&held.words) {
            a.store(*w, Ordering::Relaxed);
        }
        s.epoch.store(held.epoch, Ordering::Relaxed);
        s.until.store(held.until, Ordering::Relaxed);
        s.seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Tuple;
    use crate::wire::ipproto::TCP;

    /// A TCP connection from 198.18.0.1:`sport` to 198.18.0.`host`:80, in zone `zone`.
    fn key(zone: u16, sport: u16, host: u8) -> Key {
        let mut src = [0u8; 16];
        src[10..].copy_from_slice(&[0xff, 0xff, 198, 18, 0, 1]);
        let mut dst = src;
        dst[15] = host;
        Key::of(
            zone,
            &Tuple {
                v6: false,
                proto: TCP,
                src,
                dst,
                sport,
                dport: 80,
                query: 0,
            },
        )
    }

    /// `n` connections of zone `zone` to host `host` in the bucket of `k`.
    fn colliding(k: &Key, zone: u16, host: u8, n: usize) -> Vec<Key> {
        let found: Vec<Key> = (1..u16::MAX)
            .map(|sport| key(zone, sport, host))
            .filter(|o| o != k && bucket(o) == bucket(k))
            .take(n)
            .collect();
        assert_eq!(found.len(), n, "collisions among 65 000 keys");
        found
    }

    #[test]
    fn a_connection_counts_in_its_zone_under_the_owner_s_epoch_until_taken_out() {
        let p = Published::default();
        p.set_epoch(3);
        let k = key(5, 40_000, 2);
        assert!(!p.admits(&k, 1), "nothing published");
        p.insert(&k, 3, 100);
        assert!(p.admits(&k, 1));
        assert!(!p.admits(&key(6, 40_000, 2), 1), "another zone's");
        assert!(!p.admits(&key(5, 40_001, 2), 1), "another connection");
        // The owner moves to a new epoch: unpublished until checked again and published anew.
        p.set_epoch(4);
        assert!(!p.admits(&k, 1));
        p.insert(&k, 4, 100);
        assert!(p.admits(&k, 1));
        p.remove(&key(5, 40_001, 2));
        assert!(p.admits(&k, 1), "taking out another connection leaves it");
        p.remove(&k);
        assert!(!p.admits(&k, 1));
        p.insert(&k, 4, 100);
        p.retire();
        assert!(!p.admits(&k, 1), "a table its owner no longer keeps");
    }

    #[test]
    fn a_connection_counts_only_before_its_second() {
        let p = Published::default();
        let k = key(5, 40_000, 2);
        p.insert(&k, 0, 100);
        assert!(p.admits(&k, 99));
        assert!(!p.admits(&k, 100), "its entry could have expired by now");
        // Published again by the owner, whose entry the port's own frames kept alive.
        p.insert(&k, 0, 200);
        assert!(p.admits(&k, 100));
    }

    #[test]
    fn a_full_bucket_gives_its_least_recently_published_slot_to_a_new_connection() {
        let p = Published::default();
        let k = key(1, 1, 2);
        let others = colliding(&k, 1, 2, 3);
        let both = |x: &Key, y: &Key| p.admits(x, 1) && p.admits(y, 1);
        p.insert(&k, 0, 200);
        p.insert(&others[0], 0, 100);
        assert!(both(&k, &others[0]), "two to a bucket");
        // Published again, a connection keeps its slot: the other, published until an earlier
        // second, is not pushed out.
        p.insert(&k, 0, 300);
        assert!(both(&k, &others[0]));
        // A third takes the slot published until the earliest second: others[0]'s.
        p.insert(&others[1], 0, 400);
        assert!(both(&k, &others[1]));
        assert!(
            !p.admits(&others[0], 1),
            "replaced: it crosses until published again"
        );
        // The earliest second is k's now (300 < 400), but others[1] was published under the
        // epoch before the owner's: its slot goes first.
        p.set_epoch(1);
        p.insert(&k, 1, 300);
        p.insert(&others[2], 1, 500);
        assert!(
            both(&k, &others[2]),
            "others[1], of an old epoch, gave up its slot"
        );
        // Taken out of either slot of the bucket.
        for x in [k, others[2]] {
            p.remove(&x);
            assert!(!p.admits(&x, 1));
        }
        p.insert(&others[0], 1, 100);
        p.insert(&others[1], 1, 100);
        assert!(both(&others[0], &others[1]), "the slots left empty");
    }

    #[test]
    fn a_reader_never_takes_a_slot_the_owner_is_writing() {
        // The owner writes three connections of one bucket in turn (each replacing another),
        // each with seconds of its own; a reader on another thread must only ever take one of
        // them whole (key and second) from either slot, or an empty slot.
        let p = std::sync::Arc::new(Published::default());
        let a = key(1, 1, 2);
        let more = colliding(&a, 2, 3, 2);
        let (b, c) = (more[0], more[1]);
        assert!(a.w.iter().zip(&b.w).filter(|(x, y)| x != y).count() >= 2);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ready = std::sync::Arc::new(std::sync::Barrier::new(2));
        let reader = {
            let (p, stop) = (std::sync::Arc::clone(&p), std::sync::Arc::clone(&stop));
            let ready = std::sync::Arc::clone(&ready);
            std::thread::spawn(move || {
                let mut whole = 0u64;
                ready.wait();
                loop {
                    // The last read comes after the owner stopped: it reads a whole slot.
                    let done = stop.load(Ordering::Acquire);
                    for s in p.ways(&a) {
                        if let Some(Held { words, until, .. }) = p.read(s) {
                            // a's seconds are 0 mod 3, b's 1, c's 2; an empty slot's 0.
                            let whose = [a.w, b.w, c.w].iter().position(|w| *w == words);
                            assert!(
                                whose.map(|i| i as u64) == Some(until % 3)
                                    || (words == [0; 5] && until == 0),
                                "a torn slot was read: {words:x?} until {until}"
                            );
                            whole += 1;
                        }
                    }
                    if done {
                        return whole;
                    }
                }
            })
        };
        ready.wait();
        for t in 0..300_000u32 {
            p.insert(&a, 0, 3 * t);
            p.insert(&b, 0, 3 * t + 1);
            p.insert(&c, 0, 3 * t + 2);
            p.remove(&b);
        }
        stop.store(true, Ordering::Release);
        assert!(reader.join().unwrap() > 0, "the reader read whole slots");
    }
}
