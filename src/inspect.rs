//! `qswitch ports|macs|stats`: the operator's view of a running daemon, through its API (the
//! port statistics and MAC table extensions), printed as tables.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// Where the daemon is and how to talk to it.
pub(crate) struct Target {
    api: String,
    token: Option<String>,
    tenant: String,
}

/// Parses `[--api ADDR] [--token T] --tenant T` and returns the target and the other arguments.
pub(crate) fn parse(args: impl Iterator<Item = String>) -> Result<(Target, Vec<String>), String> {
    let mut t = Target {
        api: "127.0.0.1:9696".into(),
        token: std::env::var("QSWITCH_TOKEN").ok(),
        tenant: String::new(),
    };
    let mut rest = Vec::new();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--api" => t.api = value("--api")?,
            "--token" => t.token = Some(value("--token")?),
            "--tenant" => t.tenant = value("--tenant")?,
            _ => rest.push(a),
        }
    }
    if t.tenant.is_empty() {
        return Err("--tenant is required".into());
    }
    Ok((t, rest))
}

impl Target {
    /// `GET /v1.1/tenants/{tenant}{path}` as JSON.
    fn get(&self, path: &str) -> Result<Value, String> {
        let path = format!("/v1.1/tenants/{}{path}", self.tenant);
        let mut s = TcpStream::connect(&self.api).map_err(|e| format!("{}: {e}", self.api))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let token = self
            .token
            .as_ref()
            .map(|t| format!("X-Auth-Token: {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n{token}Connection: close\r\n\r\n",
            self.api
        )
        .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).unwrap_or("?");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        if status != "200" {
            return Err(format!("GET {path}: {status} {}", body.trim()));
        }
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}"))
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// `qswitch ports --tenant T NETWORK`: the network's ports, state, op-status and attachment.
pub(crate) fn ports(t: &Target, args: &[String]) -> Result<(), String> {
    let [net] = args else {
        return Err("usage: qswitch ports --tenant T NETWORK_ID".into());
    };
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
pub(crate) fn macs(t: &Target, args: &[String]) -> Result<(), String> {
    let [net] = args else {
        return Err("usage: qswitch macs --tenant T NETWORK_ID".into());
    };
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
pub(crate) fn stats(t: &Target, args: &[String]) -> Result<(), String> {
    let [net, port] = args else {
        return Err("usage: qswitch stats --tenant T NETWORK_ID PORT_ID".into());
    };
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
    ] {
        println!("{key:<28} {}", s[key].as_u64().unwrap_or(0));
    }
    for (group, prefix) in [("drops", "drop."), ("kernel", "kernel.")] {
        if let Some(m) = s[group].as_object() {
            for (k, n) in m.iter().filter(|(_, n)| n.as_u64().unwrap_or(0) > 0) {
                println!("{:<28} {}", format!("{prefix}{k}"), n.as_u64().unwrap_or(0));
            }
        }
    }
    Ok(())
}
