//! Ports any worker sends TCP out of itself, straight through the port's packet socket.
//!
//! # Design
//! A frame whose egress port belongs to another worker crosses to that worker (`cross`): copied
//! into a buffer of the ring, again into the owner's UMEM, then sent by the owner, whose
//! `sendmsg` runs the receiving guest's stack. Between two VMs on different workers every TCP
//! segment made that trip, and each worker ran half of every flow. For TCP towards a VM's port
//! that sends super-frames whole, the worker that decided the frames sends them itself instead,
//! through the port's packet socket, as each core of a host transmits on its own queue of a
//! multi-queue NIC (a packet socket takes `sendmsg` from any thread): segments merged
//! ([`crate::coalesce`]) into one frame, those that may not be merged on their own, super-frames
//! whole; every TCP frame, so that nothing of a flow crosses while the rest goes straight. A
//! flow then stays on the worker of the port it enters by, and the acknowledgments going back
//! run the sending guest's stack (and the data it sends on) on the worker of the receiving
//! guest's port: the two directions of a flow load two workers.
//!
//! The owner offers the socket while the port is up and takes super-frames whole, and withdraws
//! it when the port closes (its own offer only: the slot may be another port's by then) or stops
//! taking them; the offer names the slot's generation and the port's network (slot and
//! generation), so a sender whose snapshot gives the slot to another port, or the port another
//! network, does not use it. Every worker keeps its own copy of the table,
//! refreshed when the table's version changes: one atomic load a round.
//!
//! Only where the owner has nothing to apply: the port has no rate limit (the owner's policers)
//! and, where its network has security groups and the port has rules, the frame is a TCP segment
//! of an established connection that the owner has published ([`DirectPort::published`],
//! [`crate::conntrack::published`]): the owner's connection table holds the port's connections,
//! and its check would pass the segment without a change. What is sent straight is counted on the
//! port by the sender ([`crate::stats::PortCounters::sent_direct`]).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::PortShared;
use crate::conntrack::Published;
use crate::port::WholeTx;
use crate::sys::packet::VnetHdr;

/// A port's packet socket, offered by the worker that owns the port.
#[derive(Debug)]
pub struct DirectPort {
    /// The slot's generation in the owner's snapshot when offered.
    pub gen: u32,
    /// The port's network there, slot and generation: a sender whose snapshot gives the port
    /// another network (changed in place, the port keeping its slot and generation), or the
    /// network another segment, does not send into it.
    pub net: (u16, u32),
    /// The socket.
    pub tx: Arc<dyn WholeTx>,
    /// The port's state and counters.
    pub shared: Arc<PortShared>,
    /// The port's established TCP connections that may be sent into it from here where its
    /// network has security groups ([`crate::conntrack::published`]).
    pub published: Arc<Published>,
    /// The owner's snapshot filters the port (its network has security groups and the port
    /// rules), or rate-limits it: a sender whose snapshot is older or newer does not decide
    /// alone (only published connections go straight into a port either filters; none into
    /// one the owner limits).
    pub guarded: bool,
    pub policed: bool,
    /// Set once the offer is withdrawn or replaced: a sender holding a copy from before its
    /// round sends nothing more through it ([`DirectPort::send`]).
    pub revoked: AtomicBool,
}

impl DirectPort {
    /// A new offer, not revoked.
    pub fn new(
        gen: u32,
        net: (u16, u32),
        tx: Arc<dyn WholeTx>,
        shared: Arc<PortShared>,
        published: Arc<Published>,
        (guarded, policed): (bool, bool),
    ) -> DirectPort {
        DirectPort {
            gen,
            net,
            tx,
            shared,
            published,
            guarded,
            policed,
            revoked: AtomicBool::new(false),
        }
    }

    /// Sends through the socket, unless the offer was revoked (an error: the frame crosses to
    /// the owner, which decides by its own snapshot).
    pub fn send(&self, hdr: &VnetHdr, parts: &[&[u8]]) -> io::Result<()> {
        if self.revoked.load(Ordering::Acquire) {
            return Err(io::Error::from(io::ErrorKind::NotConnected));
        }
        self.tx.send(hdr, parts)
    }
}

/// The ports offered, by slot; shared by every worker of a switch.
#[derive(Debug, Default)]
pub struct Direct {
    version: AtomicU64,
    ports: Mutex<Vec<Option<Arc<DirectPort>>>>,
}

impl Direct {
    /// Offers `port` for `slot`, or withdraws the slot's offer (`None`). The version changes
    /// only if the offer does.
    pub fn offer(&self, slot: u16, port: Option<Arc<DirectPort>>) {
        let Ok(mut ports) = self.ports.lock() else {
            return;
        };
        let i = usize::from(slot);
        let same = match (ports.get(i).and_then(Option::as_ref), &port) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.gen == b.gen
                    && a.net == b.net
                    && (a.guarded, a.policed) == (b.guarded, b.policed)
                    && Arc::ptr_eq(&a.shared, &b.shared)
                    && Arc::ptr_eq(&a.published, &b.published)
            }
            _ => false,
        };
        if same {
            return;
        }
        if ports.len() <= i {
            ports.resize(i + 1, None);
        }
        if let Some(old) = core::mem::replace(&mut ports[i], port) {
            old.revoked.store(true, Ordering::Release);
        }
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Withdraws the offer for `slot` if it is that of the port whose state and counters are
    /// `shared` (a port closing: the slot may be another worker's port by now).
    pub fn withdraw(&self, slot: u16, shared: &Arc<PortShared>) {
        let Ok(mut ports) = self.ports.lock() else {
            return;
        };
        if let Some(entry) = ports.get_mut(usize::from(slot)) {
            if entry
                .as_ref()
                .is_some_and(|p| Arc::ptr_eq(&p.shared, shared))
            {
                if let Some(old) = entry.take() {
                    old.revoked.store(true, Ordering::Release);
                }
                self.version.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// The table's version.
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Copies the table into `out`; returns the version copied.
    pub fn copy_into(&self, out: &mut Vec<Option<Arc<DirectPort>>>) -> u64 {
        match self.ports.lock() {
            Ok(ports) => {
                out.clone_from(&ports);
                self.version()
            }
            Err(_) => {
                out.clear();
                self.version()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::mem::MemWholeTx;

    fn port(gen: u32, shared: &Arc<PortShared>, table: &Arc<Published>) -> Option<Arc<DirectPort>> {
        in_net((0, 1), gen, shared, table)
    }

    fn in_net(
        net: (u16, u32),
        gen: u32,
        shared: &Arc<PortShared>,
        table: &Arc<Published>,
    ) -> Option<Arc<DirectPort>> {
        Some(Arc::new(DirectPort::new(
            gen,
            net,
            Arc::new(MemWholeTx::default()),
            Arc::clone(shared),
            Arc::clone(table),
            (false, false),
        )))
    }

    #[test]
    fn the_version_changes_only_with_the_offer() {
        let d = Direct::default();
        let shared = Arc::new(PortShared::default());
        let (table, next) = (Arc::default(), Arc::default());
        let v0 = d.version();
        d.offer(3, None);
        assert_eq!(d.version(), v0, "withdrawing nothing changes nothing");
        let first = port(1, &shared, &table);
        d.offer(3, first.clone());
        let v1 = d.version();
        assert_ne!(v1, v0);
        d.offer(3, port(1, &shared, &table));
        assert_eq!(d.version(), v1, "the same port offered again");
        assert!(!first.as_ref().unwrap().revoked.load(Ordering::Relaxed));
        d.offer(3, port(1, &shared, &next));
        assert_ne!(d.version(), v1, "another table of connections");
        let first = first.unwrap();
        assert!(
            first.revoked.load(Ordering::Relaxed),
            "the copies senders hold"
        );
        let hdr = VnetHdr::default();
        assert!(first.send(&hdr, &[&[0u8; 60]]).is_err());
        let v1 = d.version();
        d.offer(3, port(2, &shared, &next));
        assert_ne!(d.version(), v1, "the slot's next generation");
        let v1 = d.version();
        d.offer(3, in_net((1, 1), 2, &shared, &next));
        assert_ne!(d.version(), v1, "another network");
        let v1 = d.version();
        d.offer(3, in_net((1, 2), 2, &shared, &next));
        assert_ne!(d.version(), v1, "the network's next generation");
        let mut copy = Vec::new();
        assert_eq!(d.copy_into(&mut copy), d.version());
        assert_eq!(copy.len(), 4);
        assert_eq!(copy[3].as_ref().map(|p| p.gen), Some(2));
        assert!(copy[..3].iter().all(Option::is_none));
        // A closing port withdraws its own offer only: the slot may be another port's by now.
        let other = Arc::new(PortShared::default());
        let v = d.version();
        d.withdraw(3, &other);
        assert_eq!(d.version(), v);
        let held = Arc::clone(copy[3].as_ref().unwrap());
        assert!(held.send(&hdr, &[&[0u8; 60]]).is_ok());
        d.withdraw(3, &shared);
        assert_ne!(d.version(), v);
        assert!(held.send(&hdr, &[&[0u8; 60]]).is_err(), "revoked");
        d.copy_into(&mut copy);
        assert!(copy.iter().all(Option::is_none));
        d.offer(3, None);
        d.withdraw(9, &shared);
        assert_eq!(d.copy_into(&mut copy), d.version());
    }
}
