//! The list filters of Quantum v1.1 (`api/views/filters.py`): exact string
//! equality, several filters ANDed.

use crate::model::{NetworkView, PortView};

/// Filters on a network list. `None` means "not filtered on".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFilter {
    /// `name`: the network's name equals this.
    pub name: Option<String>,
    /// `op-status`: the network's op-status equals this.
    pub op_status: Option<String>,
    /// `port-op-status`: some port's op-status equals this.
    pub port_op_status: Option<String>,
    /// `port-state`: some port's admin state equals this.
    pub port_state: Option<String>,
    /// `has-attachment`: whether some port has an attachment (a network with
    /// no ports has none).
    pub has_attachment: Option<bool>,
    /// `attachment`: some port's attachment equals this.
    pub attachment: Option<String>,
    /// `port`: some port's id equals this.
    pub port: Option<String>,
}

/// Filters on a port list. `None` means "not filtered on".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortFilter {
    /// `state`: the port's admin state equals this.
    pub state: Option<String>,
    /// `op-status`: the port's op-status equals this.
    pub op_status: Option<String>,
    /// `has-attachment`: whether the port has an attachment.
    pub has_attachment: Option<bool>,
    /// `attachment`: the port's attachment equals this.
    pub attachment: Option<String>,
}

/// The original's reading of a `has-attachment` value: `v.lower() == "true"`.
pub fn parse_has_attachment(value: &str) -> bool {
    value.eq_ignore_ascii_case("true")
}

fn eq(want: &Option<String>, have: &str) -> bool {
    want.as_deref().is_none_or(|w| w == have)
}

impl NetworkFilter {
    /// True when no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether a filter that is set looks at the network's ports (a list
    /// that has none can skip reading them).
    pub fn needs_ports(&self) -> bool {
        self.port_op_status.is_some()
            || self.port_state.is_some()
            || self.has_attachment.is_some()
            || self.attachment.is_some()
            || self.port.is_some()
    }

    /// Whether a network passes every filter that is set.
    pub fn matches(&self, n: &NetworkView) -> bool {
        let any_port = |f: &dyn Fn(&PortView) -> bool| n.ports.iter().any(f);
        eq(&self.name, &n.network.name)
            && eq(&self.op_status, n.op_status.as_str())
            && self
                .port_op_status
                .as_deref()
                .is_none_or(|w| any_port(&|p| p.op_status.as_str() == w))
            && self
                .port_state
                .as_deref()
                .is_none_or(|w| any_port(&|p| p.port.state.as_str() == w))
            && self
                .has_attachment
                .is_none_or(|w| any_port(&|p| p.port.attachment.is_some()) == w)
            && self
                .attachment
                .as_deref()
                .is_none_or(|w| any_port(&|p| p.port.attachment.as_deref() == Some(w)))
            && self
                .port
                .as_deref()
                .is_none_or(|w| any_port(&|p| p.port.id == w))
    }
}

impl PortFilter {
    /// True when no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether a port passes every filter that is set.
    pub fn matches(&self, p: &PortView) -> bool {
        eq(&self.state, p.port.state.as_str())
            && eq(&self.op_status, p.op_status.as_str())
            && self
                .has_attachment
                .is_none_or(|w| p.port.attachment.is_some() == w)
            && self
                .attachment
                .as_deref()
                .is_none_or(|w| p.port.attachment.as_deref() == Some(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Network, OpStatus, Port, PortState};

    fn port(id: &str, state: PortState, att: Option<&str>, op: OpStatus) -> PortView {
        PortView {
            port: Port {
                id: id.into(),
                network_id: "n".into(),
                state,
                attachment: att.map(str::to_owned),
            },
            op_status: op,
        }
    }

    fn network(name: &str, ports: Vec<PortView>) -> NetworkView {
        NetworkView {
            network: Network {
                id: "n".into(),
                tenant_id: "t".into(),
                name: name.into(),
                vlan: 1,
                network_type: crate::model::NetworkType::Vlan,
                physnet: Some("physnet1".into()),
            },
            op_status: OpStatus::Up,
            ports,
        }
    }

    #[test]
    fn empty_filter_matches_everything() {
        assert!(NetworkFilter::default().matches(&network("x", vec![])));
        assert!(PortFilter::default().matches(&port("p", PortState::Down, None, OpStatus::Down)));
    }

    #[test]
    fn network_filters_are_anded_and_look_at_any_port() {
        let n = network(
            "net1",
            vec![
                port("p1", PortState::Active, Some("vif"), OpStatus::Up),
                port("p2", PortState::Down, None, OpStatus::Down),
            ],
        );
        let f = |f: NetworkFilter| f.matches(&n);
        assert!(f(NetworkFilter {
            name: Some("net1".into()),
            port_state: Some("DOWN".into()),
            ..Default::default()
        }));
        assert!(!f(NetworkFilter {
            name: Some("net1".into()),
            port: Some("p3".into()),
            ..Default::default()
        }));
        assert!(f(NetworkFilter {
            attachment: Some("vif".into()),
            port_op_status: Some("UP".into()),
            has_attachment: Some(true),
            ..Default::default()
        }));
        assert!(!f(NetworkFilter {
            has_attachment: Some(false),
            ..Default::default()
        }));
        assert!(!f(NetworkFilter {
            op_status: Some("DOWN".into()),
            ..Default::default()
        }));
    }

    #[test]
    fn network_without_ports_has_no_attachment() {
        let n = network("x", vec![]);
        assert!(NetworkFilter {
            has_attachment: Some(false),
            ..Default::default()
        }
        .matches(&n));
        assert!(!NetworkFilter {
            port_state: Some("DOWN".into()),
            ..Default::default()
        }
        .matches(&n));
    }

    #[test]
    fn port_filters_use_exact_equality() {
        let p = port("p", PortState::Active, Some("vif"), OpStatus::Down);
        assert!(PortFilter {
            state: Some("ACTIVE".into()),
            op_status: Some("DOWN".into()),
            ..Default::default()
        }
        .matches(&p));
        assert!(!PortFilter {
            state: Some("active".into()),
            ..Default::default()
        }
        .matches(&p));
        assert!(!PortFilter {
            attachment: Some("vi".into()),
            ..Default::default()
        }
        .matches(&p));
        assert!(parse_has_attachment("TRUE"));
        assert!(!parse_has_attachment("yes"));
    }
}
