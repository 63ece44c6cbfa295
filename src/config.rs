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
    #[serde(default, rename = "network")]
    pub(crate) networks: Vec<NetworkSection>,
    #[serde(default, rename = "port")]
    pub(crate) ports: Vec<PortSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SwitchSection {
    pub(crate) xdp_mode: String,
    pub(crate) bind_mode: String,
    pub(crate) umem_frames: u32,
    pub(crate) aging_secs: u32,
    pub(crate) max_macs: usize,
    pub(crate) mac_limit: u32,
    pub(crate) poll: String,
    pub(crate) cpu: Option<usize>,
}

impl Default for SwitchSection {
    fn default() -> Self {
        let w = dataplane::WorkerConfig::default();
        SwitchSection {
            xdp_mode: "auto".into(),
            bind_mode: "auto".into(),
            umem_frames: w.frames,
            aging_secs: w.aging_secs,
            max_macs: w.max_macs,
            mac_limit: dataplane::fdb::DEFAULT_MAC_LIMIT,
            poll: "adaptive".into(),
            cpu: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UplinkSection {
    pub(crate) device: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkSection {
    pub(crate) id: String,
    pub(crate) vlan: u16,
    pub(crate) mac_limit: Option<u32>,
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
        let poll = match s.poll.as_str() {
            "adaptive" => PollMode::Adaptive,
            "busy" => PollMode::Busy,
            m => return Err(format!("poll {m:?}: expected adaptive or busy")),
        };
        let mut o = dataplane::SwitchOptions {
            xdp_mode,
            bind_mode,
            cpu: s.cpu,
            ..Default::default()
        };
        o.worker.frames = s.umem_frames;
        o.worker.aging_secs = s.aging_secs;
        o.worker.max_macs = s.max_macs;
        o.worker.poll = poll;
        Ok(o)
    }

    /// The static part of the switch configuration: the uplink and the file's networks and ports.
    pub(crate) fn switch_config(&self) -> Result<SwitchConfig, String> {
        let mut cfg = SwitchConfig::default();
        for n in &self.networks {
            cfg.networks.push(NetworkConfig {
                id: n.id.clone(),
                vlan: n.vlan,
                mac_limit: n.mac_limit.unwrap_or(self.switch.mac_limit),
            });
        }
        for p in &self.ports {
            let mut pc = PortConfig::access(&p.id, &p.device, &p.network);
            pc.admin_up = p.admin_up;
            pc.mtu = p.mtu;
            for m in &p.static_macs {
                pc.static_macs
                    .push(dataplane::Mac::parse(m).ok_or_else(|| format!("bad MAC {m:?}"))?);
            }
            cfg.ports.push(pc);
        }
        if let Some(u) = &self.uplink {
            cfg.ports.push(PortConfig::trunk(UPLINK_ID, &u.device));
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
            [uplink]
            device = "eth1"
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
        let c = f.switch_config().unwrap();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.networks[0].mac_limit, 8192);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<FileConfig>("[switch]\nbogus = 1").is_err());
        let f: FileConfig = toml::from_str("[switch]\npoll = \"sometimes\"").unwrap();
        assert!(f.options().is_err());
    }
}
