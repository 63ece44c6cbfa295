//! Learning segment limits from SYNs and ICMP errors, per network, with floors and expiry.

use super::*;
use crate::wire::{build_frame, Mac};

const A: Mac = Mac([0x02, 0, 0, 0, 0, 0xa]);
const B: Mac = Mac([0x02, 0, 0, 0, 0, 0xb]);
const HOST: [u8; 4] = [198, 18, 7, 7];
const HOST6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7];

fn syn_v4(src: [u8; 4], mss: Option<u16>, flags: u8) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[13] = flags;
    if let Some(m) = mss {
        // NOP, NOP, MSS, window scale: options in the order some stacks send them.
        tcp.extend_from_slice(&[1, 1, 2, 4]);
        tcp.extend_from_slice(&m.to_be_bytes());
        tcp.extend_from_slice(&[3, 3, 7, 0]);
    }
    tcp[12] = ((tcp.len() / 4) as u8) << 4;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&[198, 18, 0, 1]);
    ip.extend_from_slice(&tcp);
    let total = ip.len() as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    build_frame(B, A, None, 0x0800, &ip)
}

fn frag_needed(about: [u8; 4], mtu: u16) -> Vec<u8> {
    let mut icmp = vec![3, 4, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    // The quoted header: from the guest to `about`.
    icmp.extend_from_slice(&[0x45, 0, 5, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    icmp.extend_from_slice(&[198, 18, 0, 1]);
    icmp.extend_from_slice(&about);
    icmp.extend_from_slice(&[0; 8]);
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 9, 9, 198, 18, 0, 1,
    ];
    ip.extend_from_slice(&icmp);
    build_frame(B, A, None, 0x0800, &ip)
}

fn too_big_v6(about: [u8; 16], mtu: u32) -> Vec<u8> {
    let mut icmp = vec![2, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    let mut quoted = vec![0x60, 0, 0, 0, 0, 0, 6, 64];
    quoted.extend_from_slice(&[0; 16]);
    quoted.extend_from_slice(&about);
    icmp.extend_from_slice(&quoted);
    let mut ip = vec![0x60, 0, 0, 0, 0, icmp.len() as u8, 58, 64];
    ip.extend_from_slice(&[0; 32]);
    ip.extend_from_slice(&icmp);
    build_frame(B, A, None, 0x86dd, &ip)
}

#[test]
fn a_syns_mss_limits_packets_towards_its_sender() {
    let mut t = MssTable::default();
    assert_eq!(t.limit(1, &HOST, 0), None);
    t.observe(1, &syn_v4(HOST, Some(1200), 0x12), 1500, 5);
    assert_eq!(t.limit(1, &HOST, 5), Some(1240));
    // Another network has its own view.
    assert_eq!(t.limit(2, &HOST, 5), None);
    // A later, larger MSS does not raise it while the limit holds; a smaller one lowers it.
    t.observe(1, &syn_v4(HOST, Some(1400), 0x02), 1500, 6);
    assert_eq!(t.limit(1, &HOST, 6), Some(1240));
    t.observe(1, &syn_v4(HOST, Some(1000), 0x02), 1500, 7);
    assert_eq!(t.limit(1, &HOST, 7), Some(1040));
    // A larger MSS later does not keep the small limit alive: it expires on time.
    t.observe(1, &syn_v4(HOST, Some(1300), 0x12), 1500, 300);
    assert_eq!(t.limit(1, &HOST, 300), Some(1040));
    assert_eq!(t.limit(1, &HOST, 7 + EXPIRY_SECS), None);
    // Limits at or above the network's MTU are not kept.
    t.observe(1, &syn_v4(HOST, Some(1460), 0x12), 1500, 900);
    assert_eq!(t.limit(1, &HOST, 900), None);
    // Not a SYN, or no MSS option: nothing learned.
    let other = [198, 18, 7, 8];
    t.observe(1, &syn_v4(other, Some(500), 0x10), 1500, 8);
    t.observe(1, &syn_v4(other, None, 0x02), 1500, 8);
    assert_eq!(t.limit(1, &other, 8), None);
}

#[test]
fn icmp_errors_limit_packets_towards_the_quoted_destination_with_a_floor() {
    let mut t = MssTable::default();
    t.observe(3, &frag_needed(HOST, 1400), 1500, 1);
    assert_eq!(t.limit(3, &HOST, 1), Some(1400));
    // Nobody makes the switch cut segments below Linux's smallest path MTU.
    t.observe(3, &frag_needed(HOST, 68), 1500, 2);
    assert_eq!(t.limit(3, &HOST, 2), Some(552));
    t.observe(3, &too_big_v6(HOST6, 1300), 1500, 1);
    assert_eq!(t.limit(3, &HOST6, 1), Some(1300));
    t.observe(3, &too_big_v6(HOST6, 600), 1500, 1);
    assert_eq!(t.limit(3, &HOST6, 1), Some(1280));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut t = MssTable::default();
    let base = syn_v4(HOST, Some(1200), 0x02);
    for cut in 0..base.len() {
        t.observe(0, &base[..cut], 1500, 0);
    }
    let mut bad = base.clone();
    bad[14 + 20 + 12] = 0xf0; // data offset beyond the frame
    t.observe(0, &bad, 1500, 0);
    let mut loop_opts = base.clone();
    loop_opts[14 + 20 + 20 + 2] = 9; // an option whose length runs past the header
    t.observe(0, &loop_opts, 1500, 0);
    for cut in 0..too_big_v6(HOST6, 1300).len() {
        t.observe(0, &too_big_v6(HOST6, 1300)[..cut], 1500, 0);
    }
}

proptest::proptest! {
    /// The worker hands the watch only frames `csum::seen` does not call plain: no plain frame
    /// holds anything the watch would learn, whatever byte of a SYN's or an ICMP error's
    /// headers is changed (or none), with or without a tag.
    #[test]
    fn a_frame_seen_as_plain_teaches_the_watch_nothing(
        kind in 0usize..3,
        vlan in proptest::option::of(1u16..4095),
        tpid in proptest::sample::select(vec![0x8100u16, 0x88a8, 0x9100]),
        double in proptest::arbitrary::any::<bool>(),
        at in 0usize..100,
        flip in proptest::prop_oneof![proptest::strategy::Just(0u8), proptest::arbitrary::any::<u8>()],
    ) {
        let mut f = match kind {
            0 => syn_v4(HOST, Some(600), 0x02),
            1 => frag_needed(HOST, 700),
            _ => too_big_v6(HOST6, 1300),
        };
        if let Some(v) = vlan {
            // The same frame behind a tag of any kind the switch knows, or two (which neither
            // reads: the watch learns nothing from them, and they are not called plain).
            for _ in 0..1 + usize::from(double) {
                let mut tagged = f[..12].to_vec();
                tagged.extend_from_slice(&tpid.to_be_bytes());
                tagged.extend_from_slice(&v.to_be_bytes());
                tagged.extend_from_slice(&f[12..]);
                f = tagged;
            }
        }
        if let Some(b) = f.get_mut(at) {
            *b ^= flip;
        }
        let mut t = MssTable::default();
        t.observe(1, &f, 1500, 5);
        let learned = t.entries.iter().any(|e| e.limit != 0);
        if crate::csum::seen(&f).plain {
            proptest::prop_assert!(!learned);
        }
        if flip == 0 && !(vlan.is_some() && double) {
            // Unchanged, each teaches the watch a limit (so the check above is not empty).
            proptest::prop_assert!(learned);
        }
    }
}
