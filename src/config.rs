//! The daemon's configuration file (TOML): switch parameters, the uplink, and static networks
//! and ports. The format is documented in `docs/OPERATIONS.md`.

use std::path::Path;

use dataplane::{BindMode, NetworkConfig, PollMode, PortConfig, SwitchConfig, XdpMode};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default)]
    pub(crate) switch: SwitchSection,
    pub(crate) uplink: Option<UplinkSection>,
    #[serde(default, rename = "physnet")]
    pub(crate) physnets: Vec<PhysnetSection>,
    #[serde(default, rename = "network")]
    pub(crate) networks: Vec<NetworkSection>,
    #[serde(default, rename = "port")]
    pub(crate) ports: Vec<PortSection>,
    #[serde(default)]
    pub(crate) api: ApiSection,
    #[serde(default)]
    pub(crate) metrics: MetricsSection,
}

/// `[metrics]`: the label sets of `/metrics` (see `docs/OPERATIONS.md`, "Metrics").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MetricsSection {
    /// Label API refusals with the tenant id too (one series per refused tenant).
    pub(crate) tenant_labels: bool,
}

impl MetricsSection {
    pub(crate) fn options(&self) -> api::MetricsOptions {
        api::MetricsOptions {
            tenant_labels: self.tenant_labels,
        }
    }
}

/// `[api]`: page size, rate limits and quotas of the HTTP API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApiSection {
    pub(crate) max_page_size: usize,
    /// The project (tenant) of Neutron v2.0 requests that name none, in noauth mode.
    pub(crate) default_project: String,
    pub(crate) rate_limit: RateLimitSection,
    pub(crate) quotas: QuotaSection,
    /// The largest network MTU and the default one (Neutron's `global_physnet_mtu`).
    pub(crate) global_physnet_mtu: u32,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            max_page_size: api::DEFAULT_MAX_PAGE_SIZE,
            default_project: api::DEFAULT_TENANT.to_owned(),
            rate_limit: RateLimitSection::default(),
            quotas: QuotaSection::default(),
            global_physnet_mtu: 1500,
        }
    }
}

/// `[api.rate_limit]`: requests per minute and burst per tenant, for reads (GET, HEAD) and
/// writes (POST, PUT, PATCH, DELETE). Absent: unlimited.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitSection {
    pub(crate) read_per_minute: Option<u32>,
    pub(crate) read_burst: Option<u32>,
    pub(crate) write_per_minute: Option<u32>,
    pub(crate) write_burst: Option<u32>,
}

/// `[api.quotas]`: most networks, subnets, ports and interfaces per tenant. Absent: Neutron's
/// defaults (100 networks, 100 subnets, 500 ports; interfaces unlimited); `-1`: unlimited.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuotaSection {
    pub(crate) networks: Option<i64>,
    pub(crate) subnets: Option<i64>,
    pub(crate) ports: Option<i64>,
    pub(crate) interfaces: Option<i64>,
}

/// One quota from the file: absent keeps the default, `-1` is unlimited, other negatives are
/// refused.
fn quota(name: &str, value: Option<i64>, default: Option<u64>) -> Result<Option<u64>, String> {
    match value {
        None => Ok(default),
        Some(-1) => Ok(None),
        Some(v) => u64::try_from(v)
            .map(Some)
            .map_err(|_| format!("[api.quotas] {name} = {v}: expected -1 (unlimited) or a count")),
    }
}

/// The API part of the file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiConfig {
    pub(crate) max_page_size: usize,
    pub(crate) default_project: String,
    pub(crate) rate_limits: api::RateLimits,
    pub(crate) quotas: control::Quotas,
    pub(crate) physnet_mtu: u32,
}

/// A class's rate: `per_minute` at least 1; the burst defaults to a tenth of a minute's worth.
fn rate(
    class: &str,
    per_minute: Option<u32>,
    burst: Option<u32>,
) -> Result<Option<api::Rate>, String> {
    match (per_minute, burst) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(format!(
            "[api.rate_limit] {class}_burst needs {class}_per_minute"
        )),
        (Some(0), _) | (_, Some(0)) => Err(format!(
            "[api.rate_limit] {class}: rates and bursts are at least 1 (leave them out for no limit)"
        )),
        (Some(per_minute), burst) => Ok(Some(api::Rate {
            per_minute,
            burst: burst.unwrap_or((per_minute / 10).max(1)),
        })),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SwitchSection {
    pub(crate) xdp_mode: String,
    pub(crate) bind_mode: String,
    pub(crate) umem_frames: u32,
    pub(crate) max_fill: u32,
    /// The longest a frame may wait for its worker, µs of the worker's work (0: no bound).
    pub(crate) max_queue_us: u64,
    pub(crate) aging_secs: u32,
    pub(crate) max_macs: usize,
    pub(crate) conntrack_per_port: u32,
    pub(crate) mac_limit: u32,
    pub(crate) poll: String,
    /// How long an adaptive worker spins without traffic before it sleeps, µs.
    pub(crate) idle_spin_us: u64,
    pub(crate) cpu: Option<usize>,
    /// Poll-mode workers; 0 (the default): one per CPU the process may use.
    pub(crate) workers: usize,
    /// `whole` (the default) or `segment`: how a guest's TCP super-frames leave.
    pub(crate) super_frames: String,
    /// Merge consecutive TCP segments of a flow into super-frames sent whole (with
    /// `super_frames = "whole"` only).
    pub(crate) coalesce: bool,
    /// Forward known unicast between plain VM ports inside the ports' XDP programs.
    pub(crate) xdp_shortcut: bool,
    /// How long a port's full TX ring may hold the others back before the port stalls, µs.
    pub(crate) tx_stall_us: u64,
}

impl Default for SwitchSection {
    fn default() -> Self {
        let w = dataplane::WorkerConfig::default();
        SwitchSection {
            xdp_mode: "auto".into(),
            bind_mode: "auto".into(),
            super_frames: "whole".into(),
            coalesce: w.coalesce_segments,
            umem_frames: w.frames,
            max_fill: w.max_fill,
            max_queue_us: w.max_queue_ns / 1000,
            aging_secs: w.aging_secs,
            max_macs: w.max_macs,
            conntrack_per_port: w.conntrack_per_port,
            mac_limit: dataplane::fdb::DEFAULT_MAC_LIMIT,
            poll: "adaptive".into(),
            idle_spin_us: w.idle_spin_ns / 1000,
            cpu: None,
            workers: 0,
            xdp_shortcut: false,
            tx_stall_us: w.tx_stall_ns / 1000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UplinkSection {
    pub(crate) device: String,
    /// The worker that serves it (default: the least loaded).
    pub(crate) worker: Option<u16>,
}

/// `[[physnet]]`: a physical network, its uplink on this host (if any) and the VLAN ranges
/// tenant networks draw from (Neutron's `network_vlan_ranges`). `[uplink]` is the same as a
/// physical network named `physnet1` with the ranges `1:4094`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PhysnetSection {
    pub(crate) name: String,
    pub(crate) device: Option<String>,
    /// `"100:199,300:399"`; absent or empty: provider networks only.
    #[serde(default)]
    pub(crate) vlan_ranges: String,
    pub(crate) worker: Option<u16>,
}

/// Parses `"100:199,300:399"` into inclusive ranges within 1..=4094.
fn vlan_ranges(name: &str, text: &str) -> Result<Vec<(u16, u16)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            let bad =
                || format!("[[physnet]] {name}: vlan range {r:?}: expected MIN:MAX within 1..4094");
            let (a, b) = r.split_once(':').ok_or_else(bad)?;
            let a: u16 = a.trim().parse().map_err(|_| bad())?;
            let b: u16 = b.trim().parse().map_err(|_| bad())?;
            if a == 0 || a > b || b > 4094 {
                return Err(bad());
            }
            Ok((a, b))
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkSection {
    pub(crate) id: String,
    /// The VLAN on its physical network's uplink; 0: untagged there (a flat network).
    pub(crate) vlan: u16,
    pub(crate) mac_limit: Option<u32>,
    /// Its physical network (default `physnet1`).
    pub(crate) physnet: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortSection {
    pub(crate) id: String,
    pub(crate) device: String,
    pub(crate) network: String,
    #[serde(default = "yes")]
    pub(crate) admin_up: bool,
    #[serde(default)]
    pub(crate) static_macs: Vec<String>,
    pub(crate) mtu: Option<u32>,
    /// The worker that serves it (default: the least loaded).
    pub(crate) worker: Option<u16>,
}

fn yes() -> bool {
    true
}

/// Id of the uplink port in the switch configuration.
pub(crate) const UPLINK_ID: &str = "uplink";

impl FileConfig {
    pub(crate) fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub(crate) fn options(&self) -> Result<dataplane::SwitchOptions, String> {
        let s = &self.switch;
        let xdp_mode = match s.xdp_mode.as_str() {
            "auto" => XdpMode::Auto,
            "native" => XdpMode::Native,
            "generic" => XdpMode::Generic,
            m => return Err(format!("xdp_mode {m:?}: expected auto, native or generic")),
        };
        let bind_mode = match s.bind_mode.as_str() {
            "auto" => BindMode::Auto,
            "copy" => BindMode::Copy,
            "zerocopy" => BindMode::ZeroCopy,
            m => return Err(format!("bind_mode {m:?}: expected auto, copy or zerocopy")),
        };
        let whole_super_frames = match s.super_frames.as_str() {
            "whole" => true,
            "segment" => false,
            m => return Err(format!("super_frames {m:?}: expected whole or segment")),
        };
        let poll = match s.poll.as_str() {
            "adaptive" => PollMode::Adaptive,
            "busy" => PollMode::Busy,
            m => return Err(format!("poll {m:?}: expected adaptive or busy")),
        };
        if s.workers > 64 {
            return Err(format!(
                "workers {}: expected 0 (one per CPU) to 64",
                s.workers
            ));
        }
        let mut o = dataplane::SwitchOptions {
            xdp_mode,
            bind_mode,
            cpu: s.cpu,
            workers: s.workers,
            xdp_shortcut: s.xdp_shortcut,
            ..Default::default()
        };
        if !(16..=8192).contains(&s.max_fill) {
            return Err(format!(
                "max_fill {}: expected 16..=8192 (the fill ring's size)",
                s.max_fill
            ));
        }
        if s.max_queue_us > 1_000_000 {
            return Err(format!(
                "max_queue_us {}: expected 0 (no bound) to 1000000 (a second)",
                s.max_queue_us
            ));
        }
        if s.idle_spin_us > 1_000_000 {
            return Err(format!(
                "idle_spin_us {}: expected 0 (sleep at once) to 1000000 (a second)",
                s.idle_spin_us
            ));
        }
        if !(100..=1_000_000).contains(&s.tx_stall_us) {
            return Err(format!(
                "tx_stall_us {}: expected 100 to 1000000 (a second)",
                s.tx_stall_us
            ));
        }
        o.worker.tx_stall_ns = s.tx_stall_us * 1000;
        o.worker.idle_spin_ns = s.idle_spin_us * 1000;
        o.worker.frames = s.umem_frames;
        o.worker.max_fill = s.max_fill;
        o.worker.max_queue_ns = s.max_queue_us * 1000;
        o.worker.aging_secs = s.aging_secs;
        o.worker.max_macs = s.max_macs;
        if s.conntrack_per_port == 0 {
            return Err("conntrack_per_port 0: expected at least 1".into());
        }
        o.worker.conntrack_per_port = s.conntrack_per_port;
        o.worker.poll = poll;
        o.worker.whole_super_frames = whole_super_frames;
        o.worker.coalesce_segments = s.coalesce;
        Ok(o)
    }

    /// The physical networks, in order: `[uplink]`'s (`physnet1`, VLANs 1 to 4094) and each
    /// `[[physnet]]`'s; `physnet1` alone when the file names none.
    pub(crate) fn physnets(&self) -> Result<Vec<control::Physnet>, String> {
        let mut out = Vec::new();
        if self.uplink.is_some() || self.physnets.is_empty() {
            out = control::Physnet::default_set();
        }
        for p in &self.physnets {
            if p.name.is_empty() || p.name.contains(char::is_whitespace) {
                return Err(format!("[[physnet]] name {:?}: a non-empty word", p.name));
            }
            if out.iter().any(|o: &control::Physnet| o.name == p.name) {
                return Err(format!(
                    "[[physnet]] {}: named twice (or also the [uplink]'s, {})",
                    p.name,
                    dataplane::DEFAULT_PHYSNET
                ));
            }
            out.push(control::Physnet {
                name: p.name.clone(),
                vlan_ranges: vlan_ranges(&p.name, &p.vlan_ranges)?,
            });
        }
        Ok(out)
    }

    /// The `[api]` section, checked.
    pub(crate) fn api_config(&self) -> Result<ApiConfig, String> {
        let a = &self.api;
        if a.max_page_size == 0 {
            return Err("[api] max_page_size is at least 1".into());
        }
        if a.default_project.is_empty() || a.default_project.len() > 255 {
            return Err("[api] default_project is 1 to 255 characters".into());
        }
        if !(68..=65535).contains(&a.global_physnet_mtu) {
            return Err("[api] global_physnet_mtu is 68 to 65535".into());
        }
        let r = &a.rate_limit;
        Ok(ApiConfig {
            max_page_size: a.max_page_size,
            default_project: a.default_project.clone(),
            physnet_mtu: a.global_physnet_mtu,
            rate_limits: api::RateLimits {
                read: rate("read", r.read_per_minute, r.read_burst)?,
                write: rate("write", r.write_per_minute, r.write_burst)?,
            },
            quotas: {
                let d = control::Quotas::default();
                let q = &a.quotas;
                control::Quotas {
                    networks: quota("networks", q.networks, d.networks)?,
                    subnets: quota("subnets", q.subnets, d.subnets)?,
                    ports: quota("ports", q.ports, d.ports)?,
                    interfaces: quota("interfaces", q.interfaces, d.interfaces)?,
                }
            },
        })
    }

    /// The static part of the switch configuration: the uplink and the file's networks and ports.
    pub(crate) fn switch_config(&self) -> Result<SwitchConfig, String> {
        let mut cfg = SwitchConfig::default();
        let physnets = self.physnets()?;
        for n in &self.networks {
            let physnet = n.physnet.as_deref().unwrap_or(dataplane::DEFAULT_PHYSNET);
            if !physnets.iter().any(|p| p.name == physnet) {
                return Err(format!(
                    "[[network]] {}: physical network {physnet:?} is not configured",
                    n.id
                ));
            }
            cfg.networks.push(NetworkConfig {
                id: n.id.clone(),
                vlan: n.vlan,
                mac_limit: n.mac_limit.unwrap_or(self.switch.mac_limit),
                physnet: Some(
                    n.physnet
                        .clone()
                        .unwrap_or_else(|| dataplane::DEFAULT_PHYSNET.into()),
                ),
            });
        }
        for p in &self.ports {
            let mut pc = PortConfig::access(&p.id, &p.device, &p.network);
            pc.admin_up = p.admin_up;
            pc.mtu = p.mtu;
            pc.worker = p.worker;
            for m in &p.static_macs {
                pc.static_macs
                    .push(dataplane::Mac::parse(m).ok_or_else(|| format!("bad MAC {m:?}"))?);
            }
            cfg.ports.push(pc);
        }
        if let Some(u) = &self.uplink {
            let mut trunk = PortConfig::trunk(UPLINK_ID, &u.device);
            trunk.worker = u.worker;
            cfg.ports.push(trunk);
        }
        for p in &self.physnets {
            if let Some(device) = &p.device {
                let mut trunk =
                    PortConfig::uplink(&format!("{UPLINK_ID}:{}", p.name), device, &p.name);
                trunk.worker = p.worker;
                cfg.ports.push(trunk);
            }
        }
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses() {
        let f: FileConfig = toml::from_str(
            r#"
            [switch]
            xdp_mode = "generic"
            aging_secs = 60
            max_fill = 4096
            max_queue_us = 5000
            idle_spin_us = 200
            conntrack_per_port = 1000
            workers = 2
            super_frames = "segment"
            coalesce = false
            xdp_shortcut = true
            tx_stall_us = 2500
            [uplink]
            device = "eth1"
            worker = 1
            [[network]]
            id = "blue"
            vlan = 100
            [[port]]
            id = "vm1"
            device = "tap1"
            network = "blue"
            static_macs = ["02:00:00:00:00:01"]
            "#,
        )
        .unwrap();
        let o = f.options().unwrap();
        assert_eq!(o.xdp_mode, XdpMode::Generic);
        assert_eq!(o.worker.aging_secs, 60);
        assert_eq!(o.worker.max_fill, 4096);
        assert_eq!(o.worker.max_queue_ns, 5_000_000);
        assert_eq!(o.worker.idle_spin_ns, 200_000);
        assert_eq!(o.worker.tx_stall_ns, 2_500_000);
        assert_eq!(
            FileConfig::default().options().unwrap().worker.tx_stall_ns,
            10_000_000
        );
        assert_eq!(o.worker.conntrack_per_port, 1000);
        assert_eq!((o.workers, o.worker_count()), (2, 2));
        assert!(o.xdp_shortcut);
        assert!(!SwitchSection::default().xdp_shortcut, "off by default");
        assert!(!o.worker.whole_super_frames);
        assert!(!o.worker.coalesce_segments);
        assert!(
            FileConfig::default()
                .options()
                .unwrap()
                .worker
                .coalesce_segments
        );
        assert!(
            FileConfig::default()
                .options()
                .unwrap()
                .worker
                .whole_super_frames
        );
        assert!(FileConfig::default().options().unwrap().worker_count() >= 1);
        assert_eq!(
            FileConfig::default().options().unwrap().worker.max_fill,
            8192
        );
        let c = f.switch_config().unwrap();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[1].worker, Some(1));
        assert_eq!(f.physnets().unwrap(), control::Physnet::default_set());
        assert_eq!(c.networks[0].mac_limit, 8192);
    }

    #[test]
    fn api_section_sets_page_size_rates_and_quotas() {
        let f: FileConfig = toml::from_str(
            r#"
            [api]
            max_page_size = 50
            [api.rate_limit]
            read_per_minute = 600
            write_per_minute = 60
            write_burst = 5
            [api.quotas]
            networks = 10
            ports = -1
            "#,
        )
        .unwrap();
        let a = f.api_config().unwrap();
        assert_eq!(a.max_page_size, 50);
        assert_eq!(
            a.rate_limits.read,
            Some(api::Rate {
                per_minute: 600,
                burst: 60
            })
        );
        assert_eq!(a.rate_limits.write.unwrap().burst, 5);
        assert_eq!(a.quotas.networks, Some(10));
        assert_eq!(a.quotas.ports, None, "-1 is unlimited");
        assert_eq!(
            a.quotas.subnets,
            Some(100),
            "absent keeps Neutron's default"
        );
        assert_eq!(a.quotas.interfaces, None);
        let d = FileConfig::default().api_config().unwrap();
        assert_eq!(d.quotas, control::Quotas::default());
        assert!(d.rate_limits.is_unlimited());
        assert_eq!(d.max_page_size, api::DEFAULT_MAX_PAGE_SIZE);
        for bad in [
            "[api]\nmax_page_size = 0",
            "[api.rate_limit]\nread_burst = 3",
            "[api.rate_limit]\nwrite_per_minute = 0",
        ] {
            let f: FileConfig = toml::from_str(bad).unwrap();
            assert!(f.api_config().is_err(), "{bad}");
        }
        assert!(toml::from_str::<FileConfig>("[api.quotas]\nrouters = 1").is_err());
        let f: FileConfig = toml::from_str("[api.quotas]\nports = -2").unwrap();
        assert!(f.api_config().is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<FileConfig>("[switch]\nbogus = 1").is_err());
        for bad in [
            "[switch]\npoll = \"sometimes\"",
            "[switch]\nmax_fill = 8",
            "[switch]\nmax_fill = 16384",
            "[switch]\nmax_queue_us = 1000001",
            "[switch]\nidle_spin_us = 1000001",
            "[switch]\ntx_stall_us = 99",
            "[switch]\ntx_stall_us = 1000001",
            "[switch]\nworkers = 65",
        ] {
            let f: FileConfig = toml::from_str(bad).unwrap();
            assert!(f.options().is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod api_section_tests {
    use super::*;

    #[test]
    fn default_project_is_configurable_and_checked() {
        let f: FileConfig = toml::from_str("").unwrap();
        assert_eq!(f.api_config().unwrap().default_project, api::DEFAULT_TENANT);
        let f: FileConfig = toml::from_str("[api]\ndefault_project = \"ops\"").unwrap();
        assert_eq!(f.api_config().unwrap().default_project, "ops");
        let f: FileConfig = toml::from_str("[api]\ndefault_project = \"\"").unwrap();
        assert!(f.api_config().is_err());
    }
}

#[cfg(test)]
mod physnet_tests {
    use super::*;
    use dataplane::PortRole;

    #[test]
    fn physnets_name_their_uplinks_and_ranges() {
        let f: FileConfig = toml::from_str(
            r#"
            [[physnet]]
            name = "datacentre"
            device = "eth1"
            vlan_ranges = "100:199, 300:300"
            [[physnet]]
            name = "storage"
            [[network]]
            id = "outside"
            vlan = 0
            physnet = "datacentre"
            "#,
        )
        .unwrap();
        let p = f.physnets().unwrap();
        assert_eq!(p.len(), 2, "no [uplink]: no physnet1");
        assert_eq!(p[0].vlan_ranges, vec![(100, 199), (300, 300)]);
        assert!(p[1].vlan_ranges.is_empty());
        let c = f.switch_config().unwrap();
        assert_eq!(c.ports.len(), 1, "storage has no uplink on this host");
        assert_eq!(
            c.ports[0].role,
            PortRole::Trunk {
                physnet: "datacentre".into()
            }
        );
        assert_eq!(c.networks[0].physnet.as_deref(), Some("datacentre"));
        for bad in [
            "[[physnet]]\nname = \"a\"\nvlan_ranges = \"5:4\"",
            "[[physnet]]\nname = \"a\"\nvlan_ranges = \"0:4\"",
            "[[physnet]]\nname = \"a\"\nvlan_ranges = \"1-4\"",
            "[uplink]\ndevice = \"x\"\n[[physnet]]\nname = \"physnet1\"",
            "[[physnet]]\nname = \"a\"\n[[physnet]]\nname = \"a\"",
        ] {
            let f: FileConfig = toml::from_str(bad).unwrap();
            assert!(f.physnets().is_err(), "{bad}");
        }
    }
}
