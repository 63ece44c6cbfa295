//! The harness's sink on a real veth pair: its XDP program stamps each frame's arrival time into
//! the frame's metadata, so a frame's latency ends when it reached the interface, whenever the
//! sink reads it (over the frame's Ethernet addresses on a kernel that allows XDP programs no
//! metadata). Needs root (CI runs as root) and python3 (the sender).

use std::process::Command;
use std::time::Duration;

use bench::traffic::Sink;
use dataplane::sys::bpf::Stamp;

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .is_ok_and(|s| s.success())
}

/// A veth pair: the sink's end in this namespace, the sender's in namespace `ns`. Removed when
/// dropped, also when an assertion fails.
struct Pair {
    ns: String,
    host: String,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = sh(&["ip", "link", "del", &self.host]);
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

/// Sends `count` harness frames (`QSB1`, sequence number, send time on `CLOCK_MONOTONIC`) out of
/// `dev` in namespace `ns`, 1 ms apart.
const SENDER: &str = r#"
import socket, struct, sys, time
dev, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
for i in range(count):
    f = b"\xff" * 6 + b"\x02\xbe\x00\x00\x00\x01" + b"\x88\xb5" + b"QSB1"
    f += struct.pack(">QQ", i, time.monotonic_ns())
    s.send(f.ljust(60, b"\0"))
    time.sleep(0.001)
"#;

#[test]
fn the_sink_takes_each_frames_latency_from_its_arrival_stamp() {
    let base = format!("qsst{}", std::process::id() % 100_000);
    let pair = Pair {
        ns: base.clone(),
        host: format!("{base}h"),
    };
    let vm = format!("{base}v");
    assert!(sh(&["ip", "netns", "add", &pair.ns]));
    assert!(sh(&[
        "ip", "link", "add", &pair.host, "type", "veth", "peer", "name", &vm, "netns", &pair.ns
    ]));
    assert!(sh(&["ip", "link", "set", &pair.host, "up"]));
    assert!(sh(&[
        "ip", "netns", "exec", &pair.ns, "ip", "link", "set", &vm, "up"
    ]));

    // As the harness opens it, and with the stamp over the Ethernet addresses, which the
    // harness takes only where the kernel refuses metadata.
    for forced in [None, Some(Stamp::Header)] {
        let mut sink = match forced {
            None => Sink::open(&pair.host),
            Some(stamp) => Sink::open_with(&pair.host, stamp),
        }
        .expect("sink");
        let (ns, dev) = (pair.ns.clone(), vm.clone());
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            sh(&[
                "ip", "netns", "exec", &ns, "python3", "-c", SENDER, &dev, "20",
            ])
        });
        let seen = sink.receive(
            Duration::from_millis(600),
            Duration::from_secs(3),
            Duration::from_millis(100),
        );
        assert!(sender.join().unwrap(), "the sender failed");

        assert_eq!(seen.frames, 20, "{forced:?}: {seen:?}");
        assert_eq!(
            seen.stamped, 20,
            "{forced:?}: every frame carries its arrival time: {seen:?}"
        );
        if forced.is_none() {
            // In metadata; only a kernel that allows XDP programs none may have the stamp
            // written over the frame's Ethernet addresses instead (not a fault of the
            // program's).
            match sink.why_no_metadata() {
                None => assert_eq!(sink.stamp(), Stamp::Metadata),
                Some(why) => {
                    assert!(
                        why.contains("cannot use helper bpf_xdp_adjust_meta"),
                        "the stamping program was refused: {why}"
                    );
                    assert_eq!(sink.stamp(), Stamp::Header);
                }
            }
        }
        // Stamped by the kernel moments after the sender's own stamp, on the same clock.
        assert_eq!(seen.latencies.len(), 20);
        for l in &seen.latencies {
            assert!(*l > 0 && *l < 50_000_000, "latency {l} ns: {seen:?}");
        }
    }
}
