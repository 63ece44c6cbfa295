//! A crash under write load loses no acknowledged write: four clients create ports through both
//! API versions as fast as the daemon answers, the daemon is killed with SIGKILL in the middle,
//! and after a restart on the same database every port whose create was answered is there.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::http::{request, wait_ready};
use common::*;

/// One request on its own connection; `None` when the daemon is gone (no panic: the kill is on
/// purpose).
fn try_request(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let conn = bench::http::Conn::open(addr).ok()?;
    let body = (!body.is_empty()).then_some(body);
    let r = conn.send(method, path, body, &[]).ok()?;
    Some((r.status, r.body))
}

fn id_in(body: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v[key]["id"].as_str().map(str::to_owned)
}

#[test]
fn sigkill_under_write_load_loses_no_acknowledged_write() {
    let dir = std::env::temp_dir().join(unique("d"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("qswitch.toml"),
        "[api.quotas]\nnetworks = -1\nsubnets = -1\nports = -1\n",
    )
    .unwrap();
    let addr = free_addr();
    let db = store(&dir);
    let args = [
        "--no-dataplane",
        "--config",
        "qswitch.toml",
        "--db",
        &db,
        "--listen",
        &addr,
    ];
    let mut daemon = Daemon::start_in(dir.clone(), &args);
    assert!(wait_ready(&addr), "daemon did not start:\n{}", daemon.log());

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, stop) = (addr.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let tenant = format!("crash-{w}");
                let (s, body) = try_request(
                    &addr,
                    "POST",
                    &format!("/v1.1/tenants/{tenant}/networks"),
                    r#"{"network": {"name": "n"}}"#,
                )
                .expect("the daemon answers before the kill");
                assert_eq!(s, 202, "{body}");
                let net = id_in(&body, "network").unwrap();
                let mut acked: Vec<(String, String)> = Vec::new();
                let mut quantum = true;
                while !stop.load(Ordering::Relaxed) {
                    // Both faces, alternately: a Quantum port and a Neutron port.
                    let (path, body) = if quantum {
                        (
                            format!("/v1.1/tenants/{tenant}/networks/{net}/ports"),
                            r#"{"port": {"state": "ACTIVE"}}"#.to_owned(),
                        )
                    } else {
                        (
                            "/v2.0/ports".to_owned(),
                            format!(
                                r#"{{"port": {{"network_id": "{net}", "project_id": "{tenant}"}}}}"#
                            ),
                        )
                    };
                    quantum = !quantum;
                    match try_request(&addr, "POST", &path, &body) {
                        Some((s, b)) if (200..300).contains(&s) => {
                            acked.push((net.clone(), id_in(&b, "port").unwrap()));
                        }
                        Some((s, b)) => panic!("create refused: {s} {b}"),
                        None => break,
                    }
                }
                (tenant, acked)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(daemon.signal("-KILL"), "the daemon did not die");
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<(String, Vec<(String, String)>)> =
        writers.into_iter().map(|w| w.join().unwrap()).collect();
    let total: usize = acked.iter().map(|(_, a)| a.len()).sum();
    assert!(
        total > 20,
        "too few writes before the kill to mean anything: {total}"
    );

    let daemon2 = Daemon::start_in(dir, &args);
    assert!(wait_ready(&addr), "no restart:\n{}", daemon2.log());
    for (tenant, ports) in &acked {
        for (net, port) in ports {
            let r = request(
                &addr,
                "GET",
                &format!("/v1.1/tenants/{tenant}/networks/{net}/ports/{port}"),
                None,
            );
            assert_eq!(r.status, 200, "acknowledged port {port} lost: {}", r.body);
        }
    }
}
