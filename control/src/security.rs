//! Neutron security groups: the groups, their rules, and the rules' validation with Neutron's
//! error types and messages (`neutron/db/securitygroups_db.py`, `neutron/extensions/
//! securitygroup.py`).
//!
//! Every project has one group named `default`, made on its first use with Neutron's default
//! rules: any egress (IPv4 and IPv6), and ingress (IPv4 and IPv6) from members of the group.

use crate::error::{ControlError, Result};
use crate::ipam::{Cidr, Family, IpPrefix};

/// Security groups per project (Neutron's default quota).
pub const GROUP_QUOTA: u64 = 10;
/// Security group rules per project (Neutron's default quota).
pub const RULE_QUOTA: u64 = 100;
/// The name of every project's default group.
pub const DEFAULT_NAME: &str = "default";
/// Its description.
pub const DEFAULT_DESCRIPTION: &str = "Default security group";

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    /// Its id.
    pub id: String,
    /// Owning project.
    pub tenant_id: String,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `stateful`: replies of allowed connections pass without a rule.
    pub stateful: bool,
    /// The project's `default` group.
    pub is_default: bool,
    /// `created_at`.
    pub created_at: String,
    /// `updated_at`.
    pub updated_at: String,
    /// `revision_number`.
    pub revision_number: i64,
}

/// A security group rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgRule {
    /// Its id.
    pub id: String,
    /// The group it belongs to.
    pub security_group_id: String,
    /// Owning project.
    pub tenant_id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// A protocol name or number as given; `None`: any.
    pub protocol: Option<String>,
    /// Lowest port (or ICMP type).
    pub port_range_min: Option<u32>,
    /// Highest port (or ICMP code).
    pub port_range_max: Option<u32>,
    /// Remote addresses: an address and a prefix length (`10.9.0.5/24`, host bits kept).
    pub remote_ip_prefix: Option<String>,
    /// Remote group: the addresses of its member ports.
    pub remote_group_id: Option<String>,
    /// `description`.
    pub description: String,
    /// `created_at`.
    pub created_at: String,
    /// `updated_at`.
    pub updated_at: String,
    /// `revision_number`.
    pub revision_number: i64,
    /// Its group is a project's default group (`belongs_to_default_sg`; derived, not stored).
    pub in_default_group: bool,
}

impl SgRule {
    /// The remote prefix with its host bits cleared (`normalized_cidr`).
    pub fn normalized_cidr(&self) -> Option<String> {
        self.remote_ip_prefix
            .as_deref()
            .and_then(Cidr::parse)
            .map(|c| c.to_string())
    }

    /// The protocol number, when there is a protocol.
    pub fn protocol_number(&self) -> Option<u8> {
        self.protocol.as_deref().and_then(protocol_number)
    }

    /// Same match as `other` (Neutron's duplicate check: everything but id, description and
    /// timestamps; protocols by number, prefixes as given).
    pub fn same_match(&self, other: &SgRule) -> bool {
        self.security_group_id == other.security_group_id
            && self.direction == other.direction
            && self.ethertype == other.ethertype
            && self.protocol_number() == other.protocol_number()
            && self.port_range_min == other.port_range_min
            && self.port_range_max == other.port_range_max
            && self.remote_ip_prefix == other.remote_ip_prefix
            && self.remote_group_id == other.remote_group_id
    }
}

/// A group with its rules, as answered.
pub type GroupView = (SecurityGroup, Vec<SgRule>);

/// A new group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroupSpec {
    /// Owning project.
    pub tenant_id: String,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `stateful` (default true).
    pub stateful: bool,
}

/// Changes to a group; `None` leaves a value as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityGroupUpdate {
    /// `name`.
    pub name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `stateful`.
    pub stateful: Option<bool>,
}

/// A new rule, as requested.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SgRuleSpec {
    /// The group.
    pub security_group_id: String,
    /// Owning project (default: the group's).
    pub tenant_id: Option<String>,
    /// `ingress` or `egress` (checked by the API).
    pub direction: String,
    /// `IPv4` (default) or `IPv6`.
    pub ethertype: Option<String>,
    /// A name, a number, `any` or nothing.
    pub protocol: Option<String>,
    /// `port_range_min`.
    pub port_range_min: Option<i64>,
    /// `port_range_max`.
    pub port_range_max: Option<i64>,
    /// `remote_ip_prefix`, host bits kept.
    pub remote_ip_prefix: Option<IpPrefix>,
    /// `remote_group_id`.
    pub remote_group_id: Option<String>,
    /// `description`.
    pub description: String,
}

/// The protocol names Neutron accepts, with their numbers.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ip", 0),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// The name Neutron gives protocol `n` (its first, for a number with two), if any.
pub fn protocol_name(n: u8) -> Option<&'static str> {
    PROTOCOLS
        .iter()
        .find(|(_, v)| *v == n)
        .map(|(name, _)| *name)
}

/// The number of a protocol given by name or number.
pub fn protocol_number(p: &str) -> Option<u8> {
    PROTOCOLS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(p))
        .map(|(_, v)| *v)
        .or_else(|| p.parse().ok())
}

fn invalid(kind: &'static str, message: impl Into<String>) -> ControlError {
    ControlError::SecurityGroupInvalid {
        kind,
        message: message.into(),
    }
}

/// Checks a rule's protocol (a name Neutron knows, a number 0 to 255, `any` or none), as Neutron's
/// converter does before any other check of the rule.
pub fn check_protocol(protocol: Option<&str>) -> Result<()> {
    match protocol {
        None | Some("any") => Ok(()),
        Some(p) if protocol_number(p).is_some() => Ok(()),
        Some(p) => {
            let names: Vec<String> = PROTOCOLS.iter().map(|(n, _)| format!("'{n}'")).collect();
            Err(invalid(
                "SecurityGroupRuleInvalidProtocol",
                format!(
                    "Security group rule protocol {p} not supported. Only protocol values \
                     (None, 'any', {}) and integer representations [0 to 255] are supported.",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// Checks a rule as Neutron does and returns its stored form (protocol `any` as none, ethertype
/// defaulted, ports as numbers).
pub fn checked_rule(spec: &SgRuleSpec) -> Result<SgRule> {
    let ethertype = spec.ethertype.clone().unwrap_or_else(|| "IPv4".into());
    if ethertype != "IPv4" && ethertype != "IPv6" {
        return Err(invalid(
            "SecurityGroupRuleInvalidEtherType",
            format!(
                "Security group rule for ethertype '{ethertype}' not supported. Allowed values \
                 are ['IPv4', 'IPv6']."
            ),
        ));
    }
    check_protocol(spec.protocol.as_deref())?;
    let protocol = match spec.protocol.as_deref() {
        None | Some("any") => None,
        Some(p) => Some(p.to_owned()),
    };
    if spec.remote_ip_prefix.is_some() && spec.remote_group_id.is_some() {
        return Err(invalid(
            "SecurityGroupMultipleRemoteEntites",
            "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be \
             provided.",
        ));
    }
    let number = protocol.as_deref().and_then(protocol_number);
    // IPv6's own protocols (ICMPv6, the extension headers) on an IPv4 rule.
    if ethertype == "IPv4" && matches!(number, Some(41 | 43 | 44 | 58 | 59 | 60)) {
        return Err(invalid(
            "SecurityGroupEthertypeConflictWithProtocol",
            format!(
                "Invalid ethertype IPv4 for protocol {}.",
                protocol.as_deref().unwrap_or_default()
            ),
        ));
    }
    let (min, max) = (spec.port_range_min, spec.port_range_max);
    if (min.is_some() || max.is_some()) && protocol.is_none() {
        return Err(invalid(
            "SecurityGroupProtocolRequiredWithPorts",
            "Must also specify protocol if port range is given.",
        ));
    }
    match number {
        Some(1 | 58) => {
            for (attr, field, v) in [
                ("type", "port_range_min", min),
                ("code", "port_range_max", max),
            ] {
                if let Some(v) = v.filter(|v| !(0..=255).contains(v)) {
                    return Err(invalid(
                        "SecurityGroupInvalidIcmpValue",
                        format!(
                            "Invalid value for ICMP {attr} ({field}) {v}. It must be 0 to 255."
                        ),
                    ));
                }
            }
            if let (None, Some(code)) = (min, max) {
                return Err(invalid(
                    "SecurityGroupMissingIcmpType",
                    format!(
                        "ICMP code (port-range-max) {code} is provided but ICMP type \
                         (port-range-min) is missing."
                    ),
                ));
            }
        }
        Some(6 | 17 | 33 | 132 | 136) => {
            for v in [min, max].into_iter().flatten() {
                if !(1..=65535).contains(&v) {
                    return Err(invalid(
                        "SecurityGroupInvalidPortValue",
                        format!("Invalid value for port {v}"),
                    ));
                }
            }
            match (min, max) {
                (Some(a), Some(b)) if a > b => {
                    return Err(invalid(
                        "SecurityGroupInvalidPortRange",
                        "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                    ))
                }
                (Some(_), None) | (None, Some(_)) => {
                    return Err(invalid(
                        "SecurityGroupInvalidPortRange",
                        "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                    ))
                }
                _ => {}
            }
        }
        Some(n) if min.is_some() || max.is_some() => {
            return Err(invalid(
                "SecurityGroupInvalidProtocolForPort",
                format!(
                    "Ports cannot be specified for protocol {n}. Ports are only supported for \
                     DCCP, SCTP, TCP, UDP, UDPLITE."
                ),
            ));
        }
        _ => {}
    }
    if let Some(prefix) = &spec.remote_ip_prefix {
        let cidr = prefix.cidr();
        let family = if ethertype == "IPv4" {
            Family::V4
        } else {
            Family::V6
        };
        if cidr.family != family {
            return Err(invalid(
                "SecurityGroupRuleParameterConflict",
                format!("Conflicting value ethertype {ethertype} for CIDR {prefix}"),
            ));
        }
    }
    let port = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    Ok(SgRule {
        id: String::new(),
        security_group_id: spec.security_group_id.clone(),
        tenant_id: spec.tenant_id.clone().unwrap_or_default(),
        direction: spec.direction.clone(),
        ethertype,
        protocol,
        port_range_min: port(min),
        port_range_max: port(max),
        remote_ip_prefix: spec.remote_ip_prefix.map(|p| p.to_string()),
        remote_group_id: spec.remote_group_id.clone(),
        description: spec.description.clone(),
        created_at: String::new(),
        updated_at: String::new(),
        revision_number: 0,
        in_default_group: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(f: impl FnOnce(&mut SgRuleSpec)) -> std::result::Result<SgRule, String> {
        let mut s = SgRuleSpec {
            security_group_id: "g".into(),
            direction: "ingress".into(),
            ..Default::default()
        };
        f(&mut s);
        checked_rule(&s).map_err(|e| match e {
            ControlError::SecurityGroupInvalid { kind, message } => format!("{kind}: {message}"),
            e => e.to_string(),
        })
    }

    #[test]
    fn rules_are_checked_with_neutrons_types_and_messages() {
        let r = rule(|s| {
            s.protocol = Some("tcp".into());
            s.port_range_min = Some(80);
            s.port_range_max = Some(80);
        })
        .unwrap();
        assert_eq!(
            (r.ethertype.as_str(), r.protocol_number()),
            ("IPv4", Some(6))
        );
        assert!(rule(|s| s.protocol = Some("any".into()))
            .unwrap()
            .protocol
            .is_none());
        let e = rule(|s| {
            s.protocol = Some("icmp".into());
            s.port_range_max = Some(0);
        })
        .unwrap_err();
        assert_eq!(
            e,
            "SecurityGroupMissingIcmpType: ICMP code (port-range-max) 0 is provided but ICMP \
             type (port-range-min) is missing."
        );
        let e = rule(|s| {
            s.protocol = Some("icmp".into());
            s.port_range_min = Some(256);
        })
        .unwrap_err();
        assert_eq!(
            e,
            "SecurityGroupInvalidIcmpValue: Invalid value for ICMP type (port_range_min) 256. \
             It must be 0 to 255."
        );
        let e = rule(|s| {
            s.protocol = Some("gre".into());
            s.port_range_min = Some(1);
        })
        .unwrap_err();
        assert!(
            e.starts_with(
                "SecurityGroupInvalidProtocolForPort: Ports cannot be specified for protocol 47."
            ),
            "{e}"
        );
        let e = rule(|s| s.port_range_min = Some(1)).unwrap_err();
        assert!(
            e.starts_with("SecurityGroupProtocolRequiredWithPorts"),
            "{e}"
        );
        let e = rule(|s| {
            s.protocol = Some("tcp".into());
            s.port_range_min = Some(0);
            s.port_range_max = Some(80);
        })
        .unwrap_err();
        assert_eq!(e, "SecurityGroupInvalidPortValue: Invalid value for port 0");
        let e = rule(|s| {
            s.ethertype = Some("IPv6".into());
            s.remote_ip_prefix = IpPrefix::parse("198.18.0.0/16");
        })
        .unwrap_err();
        assert_eq!(
            e,
            "SecurityGroupRuleParameterConflict: Conflicting value ethertype IPv6 for CIDR \
             198.18.0.0/16"
        );
        let e = rule(|s| s.protocol = Some("256".into())).unwrap_err();
        assert!(e.starts_with("SecurityGroupRuleInvalidProtocol: Security group rule protocol 256 not supported. Only protocol values (None, 'any', 'ah', 'dccp',"), "{e}");
        // A bad prefix never reaches the rule's checks (the API refuses it as InvalidCIDR); a
        // bare address is a host prefix, shown with its length, as Neutron converts it.
        assert_eq!(IpPrefix::parse("198.18.0.1/33"), None);
        let host = rule(|s| s.remote_ip_prefix = IpPrefix::parse("198.18.0.5")).unwrap();
        assert_eq!(host.remote_ip_prefix.as_deref(), Some("198.18.0.5/32"));
        let a = rule(|s| {
            s.protocol = Some("udp".into());
            s.remote_ip_prefix = IpPrefix::parse("198.18.0.5/24");
        })
        .unwrap();
        let b = rule(|s| {
            s.protocol = Some("17".into());
            s.remote_ip_prefix = IpPrefix::parse("198.18.0.5/24");
        })
        .unwrap();
        assert!(a.same_match(&b), "same protocol number");
        let c = rule(|s| {
            s.protocol = Some("udp".into());
            s.remote_ip_prefix = IpPrefix::parse("198.18.0.0/24");
        })
        .unwrap();
        assert!(!a.same_match(&c), "prefixes compare as given, as Neutron's");
        assert_eq!(a.normalized_cidr().as_deref(), Some("198.18.0.0/24"));
    }
}
