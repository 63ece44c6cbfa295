//! Neutron QoS policies and their rules; a port's limits come from its own policy, else its
//! network's (see `reconcile`). Writes are admins' (the API checks the role, as Neutron's
//! policy); reads show a project its own policies and the shared ones.
//!
//! The Quantum v1.1 qos extension is a view of the same policies: a port's limit is the egress
//! rules of the policy that applies to it, and setting one writes them into a policy of the
//! port's own (`QosPolicy::port_id`), made on first use and set on the port.

use super::{find_port, new_id, Control};
use crate::error::{ControlError, Result};
use crate::neutron::{now_iso8601, PortRecord, Scope};
use crate::qos::NEUTRON_UNIT;
use crate::qos::{policy_limits, QosDirection, QosLimit, QosPolicy, QosRule, QosRuleType};
use crate::store::Tx;

/// A QoS policy to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QosPolicySpec {
    /// Owning project.
    pub tenant_id: String,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `shared`.
    pub shared: bool,
    /// `is_default`.
    pub is_default: bool,
}

/// Changes to a QoS policy; `None` leaves a value as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QosPolicyUpdate {
    /// `name`.
    pub name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `shared`.
    pub shared: Option<bool>,
    /// `is_default`.
    pub is_default: Option<bool>,
}

/// A rule's values as given; `None` keeps the current one (or the default on create: burst 0,
/// direction egress).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QosRuleSpec {
    /// `max_kbps` or `max_kpps` (Neutron's units).
    pub rate: Option<u64>,
    /// `max_burst_kbps` or `max_burst_kpps`.
    pub burst: Option<u64>,
    /// `direction`.
    pub direction: Option<QosDirection>,
}

/// A policy with its rules.
pub type PolicyView = (QosPolicy, Vec<QosRule>);

impl Control {
    /// The QoS policies the caller sees: its own and the shared ones (an admin: all).
    pub fn qos_policies(&self, scope: &Scope) -> Result<Vec<PolicyView>> {
        self.read(|tx| {
            let mut rules = tx.qos_rules(None)?;
            let out = tx
                .qos_policies(None)?
                .into_iter()
                .filter(|p| visible(scope, p))
                .map(|p| {
                    let (mine, rest) = rules.drain(..).partition(|r| r.policy_id == p.id);
                    rules = rest;
                    (p, mine)
                })
                .collect();
            Ok(out)
        })
    }

    /// One policy the caller sees.
    pub fn qos_policy(&self, scope: &Scope, id: &str) -> Result<PolicyView> {
        self.read(|tx| {
            let p = visible_policy(tx, scope, id)?;
            Ok((p, tx.qos_rules(Some(id))?))
        })
    }

    /// Creates a policy.
    pub fn create_qos_policy(&self, spec: QosPolicySpec) -> Result<PolicyView> {
        crate::model::validate_tenant_id(&spec.tenant_id)?;
        self.write(|tx| {
            if spec.is_default {
                one_default(tx, &spec.tenant_id, None)?;
            }
            let now = now_iso8601();
            let p = QosPolicy {
                id: new_id(),
                tenant_id: spec.tenant_id.clone(),
                name: spec.name.clone(),
                description: spec.description.clone(),
                shared: spec.shared,
                is_default: spec.is_default,
                created_at: now.clone(),
                updated_at: now,
                revision_number: 1,
                port_id: None,
            };
            tx.save_qos_policy(&p)?;
            Ok((p, Vec::new()))
        })
    }

    /// Changes a policy.
    pub fn update_qos_policy(
        &self,
        scope: &Scope,
        id: &str,
        upd: QosPolicyUpdate,
    ) -> Result<PolicyView> {
        self.write(|tx| {
            let mut p = writable_policy(tx, scope, id)?;
            if upd.is_default == Some(true) && !p.is_default {
                one_default(tx, &p.tenant_id, Some(id))?;
            }
            // Other projects' networks and ports keep a policy shared while they use it.
            if upd.shared == Some(false) && p.shared {
                if let Some((kind, user)) = tx.qos_policy_user(id, Some(&p.tenant_id))? {
                    return Err(ControlError::QosConflict {
                        kind: "RbacPolicyInUse",
                        message: format!(
                            "RBAC policy on object {id} cannot be removed because other objects \
                             depend on it: {kind} {user} of another project uses it."
                        ),
                    });
                }
            }
            if let Some(v) = &upd.name {
                p.name.clone_from(v);
            }
            if let Some(v) = &upd.description {
                p.description.clone_from(v);
            }
            p.shared = upd.shared.unwrap_or(p.shared);
            p.is_default = upd.is_default.unwrap_or(p.is_default);
            p.updated_at = now_iso8601();
            p.revision_number += 1;
            tx.save_qos_policy(&p)?;
            Ok((p, tx.qos_rules(Some(id))?))
        })
    }

    /// Deletes a policy; refused while a network or a port has it.
    pub fn delete_qos_policy(&self, scope: &Scope, id: &str) -> Result<()> {
        self.write(|tx| {
            writable_policy(tx, scope, id)?;
            if let Some((kind, user)) = tx.qos_policy_user(id, None)? {
                return Err(ControlError::QosConflict {
                    kind: "QosPolicyInUse",
                    message: format!("QoS Policy {id} is used by {kind} {user}."),
                });
            }
            tx.delete_qos_policy(id)
        })
    }

    /// The rules of one type of a policy the caller sees.
    pub fn qos_rules(
        &self,
        scope: &Scope,
        policy_id: &str,
        ty: QosRuleType,
    ) -> Result<Vec<QosRule>> {
        self.read(|tx| {
            visible_policy(tx, scope, policy_id)?;
            let mut rules = tx.qos_rules(Some(policy_id))?;
            rules.retain(|r| r.rule_type == ty);
            Ok(rules)
        })
    }

    /// One rule of a policy the caller sees.
    pub fn qos_rule(
        &self,
        scope: &Scope,
        policy_id: &str,
        ty: QosRuleType,
        rule_id: &str,
    ) -> Result<QosRule> {
        self.read(|tx| find_rule(tx, scope, policy_id, ty, rule_id))
    }

    /// Adds a rule to a policy: one per type and direction.
    pub fn create_qos_rule(
        &self,
        scope: &Scope,
        policy_id: &str,
        ty: QosRuleType,
        spec: QosRuleSpec,
    ) -> Result<QosRule> {
        self.write(|tx| {
            writable_policy(tx, scope, policy_id)?;
            let rule = QosRule {
                id: new_id(),
                policy_id: policy_id.to_owned(),
                rule_type: ty,
                direction: spec.direction.unwrap_or_default(),
                rate: stored(spec.rate.unwrap_or(0)),
                burst: stored(spec.burst.unwrap_or(0)),
            };
            no_twin(tx, &rule)?;
            tx.save_qos_rule(&rule)?;
            bump(tx, policy_id)?;
            Ok(rule)
        })
    }

    /// Changes a rule.
    pub fn update_qos_rule(
        &self,
        scope: &Scope,
        policy_id: &str,
        ty: QosRuleType,
        rule_id: &str,
        spec: QosRuleSpec,
    ) -> Result<QosRule> {
        self.write(|tx| {
            writable_policy(tx, scope, policy_id)?;
            let mut rule = find_rule(tx, scope, policy_id, ty, rule_id)?;
            rule.direction = spec.direction.unwrap_or(rule.direction);
            rule.rate = spec.rate.map_or(rule.rate, stored);
            rule.burst = spec.burst.map_or(rule.burst, stored);
            no_twin(tx, &rule)?;
            tx.save_qos_rule(&rule)?;
            bump(tx, policy_id)?;
            Ok(rule)
        })
    }

    /// Deletes a rule.
    pub fn delete_qos_rule(
        &self,
        scope: &Scope,
        policy_id: &str,
        ty: QosRuleType,
        rule_id: &str,
    ) -> Result<()> {
        self.write(|tx| {
            writable_policy(tx, scope, policy_id)?;
            find_rule(tx, scope, policy_id, ty, rule_id)?;
            tx.delete_qos_rule(rule_id)?;
            bump(tx, policy_id)
        })
    }
}

/// A value in Neutron's units (kbps, kpps) as stored (bit/s, packets/s).
fn stored(v: u64) -> u64 {
    v.saturating_mul(NEUTRON_UNIT)
}

/// The Quantum v1.1 qos extension.
impl Control {
    /// A port's limit of what its VM sends: the egress rules of the policy that applies to it
    /// (its own, else its network's); `None` when no rule limits it.
    pub fn port_qos(
        &self,
        tenant_id: &str,
        net_id: &str,
        port_id: &str,
    ) -> Result<Option<QosLimit>> {
        self.read(|tx| {
            find_port(tx, tenant_id, net_id, port_id)?;
            Ok(
                match port_record(tx, net_id, port_id)?.effective_qos_policy() {
                    Some(id) => policy_limits(&tx.qos_rules(Some(id))?).0,
                    None => None,
                },
            )
        })
    }

    /// Sets a port's limit of what its VM sends, from the next frame on, and answers the limit
    /// now in force: the egress rules of the port's own policy (made on first use, owned by the
    /// port's project). Whenever that policy takes the place of another on the port, it takes
    /// that one's ingress rules, so that what the port receives stays limited as it was.
    pub fn set_port_qos(
        &self,
        tenant_id: &str,
        net_id: &str,
        port_id: &str,
        qos: &QosLimit,
    ) -> Result<Option<QosLimit>> {
        self.write(|tx| {
            find_port(tx, tenant_id, net_id, port_id)?;
            qos.validate()?;
            let mut r = port_record(tx, net_id, port_id)?;
            let policy = match tx.port_qos_policy(port_id)? {
                Some(p) => p,
                None => {
                    let now = now_iso8601();
                    let owner = if r.attrs.tenant_id.is_empty() {
                        tenant_id
                    } else {
                        &r.attrs.tenant_id
                    };
                    let p = QosPolicy {
                        id: new_id(),
                        tenant_id: owner.to_owned(),
                        name: format!("port-{port_id}"),
                        description: format!(
                            "The limit of port {port_id} set through the Quantum v1.1 qos \
                             extension"
                        ),
                        created_at: now.clone(),
                        updated_at: now,
                        revision_number: 0,
                        port_id: Some(port_id.to_owned()),
                        ..QosPolicy::default()
                    };
                    tx.save_qos_policy(&p)?;
                    p
                }
            };
            let mut rules = tx.qos_rules(Some(&policy.id))?;
            let taking_over = r.attrs.qos_policy_id.as_deref() != Some(policy.id.as_str());
            if taking_over {
                let before = match r.effective_qos_policy() {
                    Some(id) => tx.qos_rules(Some(id))?,
                    None => Vec::new(),
                };
                for old in rules
                    .iter()
                    .filter(|r| r.direction == QosDirection::Ingress)
                {
                    tx.delete_qos_rule(&old.id)?;
                }
                for rule in before
                    .into_iter()
                    .filter(|r| r.direction == QosDirection::Ingress)
                {
                    tx.save_qos_rule(&QosRule {
                        id: new_id(),
                        policy_id: policy.id.clone(),
                        ..rule
                    })?;
                }
                rules.retain(|r| r.direction == QosDirection::Egress);
            }
            let limits = [
                (QosRuleType::BandwidthLimit, qos.rate_bps, qos.burst_bits),
                (
                    QosRuleType::PacketRateLimit,
                    qos.rate_pps,
                    qos.burst_packets,
                ),
            ];
            for (ty, rate, burst) in limits {
                let old = rules
                    .iter()
                    .find(|r| r.rule_type == ty && r.direction == QosDirection::Egress);
                match (old, rate) {
                    (None, 0) => {}
                    (Some(old), 0) => tx.delete_qos_rule(&old.id)?,
                    (old, rate) => tx.save_qos_rule(&QosRule {
                        id: old.map_or_else(new_id, |o| o.id.clone()),
                        policy_id: policy.id.clone(),
                        rule_type: ty,
                        direction: QosDirection::Egress,
                        rate,
                        burst,
                    })?,
                }
            }
            bump(tx, &policy.id)?;
            if taking_over {
                r.attrs.qos_policy_id = Some(policy.id.clone());
                save_port_change(tx, &mut r)?;
            }
            Ok(policy_limits(&tx.qos_rules(Some(&policy.id))?).0)
        })
    }

    /// Removes the limit set through the Quantum extension: the port's own policy comes off the
    /// port (it takes its network's again, if any) and goes, unless something else has been
    /// given it meanwhile (then it is an ordinary policy from now on). A policy set on the port
    /// through Neutron stays. A no-op when there is nothing to remove.
    pub fn clear_port_qos(&self, tenant_id: &str, net_id: &str, port_id: &str) -> Result<()> {
        self.write(|tx| {
            find_port(tx, tenant_id, net_id, port_id)?;
            let Some(mut own) = tx.port_qos_policy(port_id)? else {
                return Ok(());
            };
            let mut r = port_record(tx, net_id, port_id)?;
            if r.attrs.qos_policy_id.as_deref() == Some(own.id.as_str()) {
                r.attrs.qos_policy_id = None;
                save_port_change(tx, &mut r)?;
            }
            if tx.qos_policy_user(&own.id, None)?.is_none() {
                tx.delete_qos_policy(&own.id)
            } else {
                own.port_id = None;
                tx.save_qos_policy(&own)
            }
        })
    }
}

fn port_record(tx: &dyn Tx, net_id: &str, port_id: &str) -> Result<PortRecord> {
    tx.port_records(Some(port_id))?
        .pop()
        .ok_or_else(|| ControlError::PortNotFound {
            net_id: net_id.to_owned(),
            port_id: port_id.to_owned(),
        })
}

/// Saves a port's changed attributes as a v2.0 update does (a new revision).
fn save_port_change(tx: &dyn Tx, r: &mut PortRecord) -> Result<()> {
    r.attrs.updated_at = now_iso8601();
    r.attrs.revision_number += 1;
    tx.save_port_attrs(&r.port.id, &r.attrs)
}

fn visible(scope: &Scope, p: &QosPolicy) -> bool {
    p.shared || scope.owns(&p.tenant_id)
}

/// The policy, if the caller sees it (else 404, as Neutron hides it).
pub(crate) fn visible_policy(tx: &dyn Tx, scope: &Scope, id: &str) -> Result<QosPolicy> {
    tx.qos_policies(Some(id))?
        .pop()
        .filter(|p| visible(scope, p))
        .ok_or_else(|| ControlError::QosPolicyNotFound { id: id.to_owned() })
}

/// A policy the caller may change: one of its own project (an admin: any); others' are not
/// found, as Neutron hides them.
fn writable_policy(tx: &dyn Tx, scope: &Scope, id: &str) -> Result<QosPolicy> {
    visible_policy(tx, scope, id)
        .ok()
        .filter(|p| scope.owns(&p.tenant_id))
        .ok_or_else(|| ControlError::QosPolicyNotFound { id: id.to_owned() })
}

fn find_rule(
    tx: &dyn Tx,
    scope: &Scope,
    policy_id: &str,
    ty: QosRuleType,
    rule_id: &str,
) -> Result<QosRule> {
    visible_policy(tx, scope, policy_id)?;
    tx.qos_rules(Some(policy_id))?
        .into_iter()
        .find(|r| r.id == rule_id && r.rule_type == ty)
        .ok_or_else(|| ControlError::QosRuleNotFound {
            rule_id: rule_id.to_owned(),
            policy_id: policy_id.to_owned(),
        })
}

/// A project has at most one default policy.
fn one_default(tx: &dyn Tx, tenant_id: &str, except: Option<&str>) -> Result<()> {
    match tx.default_qos_policy(tenant_id)? {
        Some(d) if Some(d.as_str()) != except => Err(ControlError::QosConflict {
            kind: "QoSPolicyDefaultAlreadyExists",
            message: format!("A default QoS policy exists for project {tenant_id}."),
        }),
        _ => Ok(()),
    }
}

/// A policy has at most one rule of a type per direction.
fn no_twin(tx: &dyn Tx, rule: &QosRule) -> Result<()> {
    let twin = tx
        .qos_rules(Some(&rule.policy_id))?
        .into_iter()
        .any(|r| r.id != rule.id && r.rule_type == rule.rule_type && r.direction == rule.direction);
    if twin {
        return Err(ControlError::QosConflict {
            kind: "QoSRulesConflict",
            message: format!(
                "Rule {} of direction {} already exists in QoS policy {}.",
                rule.rule_type.as_str(),
                rule.direction.as_str(),
                rule.policy_id
            ),
        });
    }
    Ok(())
}

/// A rule change is a change of its policy.
fn bump(tx: &dyn Tx, policy_id: &str) -> Result<()> {
    if let Some(mut p) = tx.qos_policies(Some(policy_id))?.pop() {
        p.updated_at = now_iso8601();
        p.revision_number += 1;
        tx.save_qos_policy(&p)?;
    }
    Ok(())
}
