//! `qswitch ports|macs|stats|connections`: the operator's view of a running daemon, through its
//! API (the port statistics, MAC table and tracked connections extensions), printed as tables.

use serde_json::Value;

/// Where the daemon is and how to talk to it.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The daemon's API address
    #[arg(long, env = "QSWITCH_API", default_value = "127.0.0.1:9696")]
    api: String,
    /// The token (token mode)
    #[arg(long, env = "QSWITCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The tenant whose network to show
    #[arg(long, env = "QSWITCH_TENANT")]
    tenant: String,
}

impl Target {
    /// `GET /v1.1/tenants/{tenant}{path}` as JSON.
    fn get(&self, path: &str) -> Result<Value, String> {
        let path = format!("/v1.1/tenants/{}{path}", self.tenant);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        let mut req = agent
            .get(format!("http://{}{path}", self.api))
            .header("Accept", "application/json");
        if let Some(t) = &self.token {
            req = req.header("X-Auth-Token", t);
        }
        let mut resp = req.call().map_err(|e| format!("{}: {e}", self.api))?;
        let body = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .map_err(|e| format!("GET {path}: {e}"))?;
        if resp.status() != 200 {
            return Err(format!("GET {path}: {} {}", resp.status(), body.trim()));
        }
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}"))
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// `qswitch ports --tenant T NETWORK`: the network's ports, state, op-status and attachment.
pub(crate) fn ports(t: &Target, net: &str) -> Result<(), String> {
    let v = t.get(&format!("/networks/{net}/ports/detail"))?;
    println!(
        "{:<36}  {:<6}  {:<9}  attachment",
        "port", "state", "op-status"
    );
    for p in v["ports"].as_array().into_iter().flatten() {
        let att = p["attachment"]["id"].as_str().unwrap_or("-");
        println!(
            "{:<36}  {:<6}  {:<9}  {att}",
            str_of(p, "id"),
            str_of(p, "state"),
            str_of(p, "op-status")
        );
    }
    Ok(())
}

/// `qswitch macs --tenant T NETWORK`: the switch's MAC table of a network (admin).
pub(crate) fn macs(t: &Target, net: &str) -> Result<(), String> {
    let v = t.get(&format!("/networks/{net}/mac_table"))?;
    println!("{:<17}  {:<36}  {:>6}  static", "mac", "port", "age s");
    for e in v["macs"].as_array().into_iter().flatten() {
        println!(
            "{:<17}  {:<36}  {:>6}  {}",
            str_of(e, "address"),
            str_of(e, "port_id"),
            e["age"].as_u64().unwrap_or(0),
            e["static"].as_bool().unwrap_or(false)
        );
    }
    Ok(())
}

/// `qswitch stats --tenant T NETWORK PORT`: a port's live counters, non-zero drops by reason.
pub(crate) fn stats(t: &Target, net: &str, port: &str) -> Result<(), String> {
    let v = t.get(&format!("/networks/{net}/ports/{port}/stats"))?;
    let s = &v["stats"];
    for key in [
        "rx_packets",
        "rx_bytes",
        "rx_errors",
        "tx_packets",
        "tx_bytes",
        "tx_errors",
        "dropped",
        "floods",
        "csum_completed",
        "gso_segmented",
        "gso_whole",
        "coalesced",
        "dhcp_replies",
        "arp_replies",
        "ra_replies",
        "xdp_forwarded",
        "tx_stalls",
        "tx_stalled_ms",
    ] {
        println!("{key:<28} {}", s[key].as_u64().unwrap_or(0));
    }
    println!(
        "{:<28} {}",
        "tx_stalled",
        if s["tx_stalled"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        }
    );
    for (group, prefix) in [("drops", "drop."), ("kernel", "kernel.")] {
        if let Some(m) = s[group].as_object() {
            for (k, n) in m.iter().filter(|(_, n)| n.as_u64().unwrap_or(0) > 0) {
                println!("{:<28} {}", format!("{prefix}{k}"), n.as_u64().unwrap_or(0));
            }
        }
    }
    Ok(())
}

/// `qswitch connections --tenant T NETWORK PORT`: the connections a port's security groups
/// track in the switch (admin), one a line: protocol, direction for the port, the opening
/// packet's endpoints, state, and its idle and remaining seconds.
pub(crate) fn connections(t: &Target, net: &str, port: &str) -> Result<(), String> {
    let v = t.get(&format!("/networks/{net}/ports/{port}/connections"))?;
    // One layout for the header and the rows.
    let line = |cols: [&str; 7]| {
        let [proto, dir, src, dst, state, idle, expires] = cols;
        println!(
            "{proto:<9}  {dir:<7}  {src:<45}  {dst:<45}  {state:<17}  {idle:>6}  {expires:>8}"
        );
    };
    line([
        "protocol",
        "dir",
        "source",
        "destination",
        "state",
        "idle s",
        "expires",
    ]);
    for c in v["connections"].as_array().into_iter().flatten() {
        // An address, with its port when the protocol has ports (IPv6 then in brackets).
        let end = |addr: &str, port: &str| {
            let a = str_of(c, addr);
            match c[port].as_u64() {
                Some(p) if a.contains(':') => format!("[{a}]:{p}"),
                Some(p) => format!("{a}:{p}"),
                None => a.to_owned(),
            }
        };
        let mut src = end("source", "source_port");
        if let Some(ty) = c["icmp_type"].as_u64() {
            // ICMP: the type, code and echo identifier after the source.
            src = format!(
                "{src} type {ty} code {} id {}",
                c["icmp_code"].as_u64().unwrap_or(0),
                c["icmp_id"].as_u64().unwrap_or(0)
            );
        }
        let dst = end("destination", "destination_port");
        let state = match c["cut"].as_bool() {
            Some(true) => format!("{} (cut)", str_of(c, "state")),
            _ => str_of(c, "state").to_owned(),
        };
        let secs = |key: &str| c[key].as_u64().unwrap_or(0).to_string();
        line([
            str_of(c, "protocol"),
            str_of(c, "direction"),
            &src,
            &dst,
            &state,
            &secs("idle"),
            &secs("expires"),
        ]);
    }
    Ok(())
}
