//! Neutron QoS policies and their rules; a port's limits come from its own policy, else its
//! network's (see `reconcile`). Writes are admins' (the API checks the role, as Neutron's
//! policy); reads show a project its own policies and the shared ones.

use super::{new_id, Control};
use crate::error::{ControlError, Result};
use crate::neutron::{now_iso8601, Scope};
use crate::qos::{QosDirection, QosPolicy, QosRule, QosRuleType};
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
    /// `max_kbps` or `max_kpps`.
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
    pub fn v2_qos_policies(&self, scope: &Scope) -> Result<Vec<PolicyView>> {
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
    pub fn v2_qos_policy(&self, scope: &Scope, id: &str) -> Result<PolicyView> {
        self.read(|tx| {
            let p = visible_policy(tx, scope, id)?;
            Ok((p, tx.qos_rules(Some(id))?))
        })
    }

    /// Creates a policy.
    pub fn v2_create_qos_policy(&self, spec: QosPolicySpec) -> Result<PolicyView> {
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
            };
            tx.save_qos_policy(&p)?;
            Ok((p, Vec::new()))
        })
    }

    /// Changes a policy.
    pub fn v2_update_qos_policy(
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
    pub fn v2_delete_qos_policy(&self, scope: &Scope, id: &str) -> Result<()> {
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
    pub fn v2_qos_rules(
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
    pub fn v2_qos_rule(
        &self,
        scope: &Scope,
        policy_id: &str,
        ty: QosRuleType,
        rule_id: &str,
    ) -> Result<QosRule> {
        self.read(|tx| find_rule(tx, scope, policy_id, ty, rule_id))
    }

    /// Adds a rule to a policy: one per type and direction.
    pub fn v2_create_qos_rule(
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
                rate: spec.rate.unwrap_or(0),
                burst: spec.burst.unwrap_or(0),
            };
            no_twin(tx, &rule)?;
            tx.save_qos_rule(&rule)?;
            bump(tx, policy_id)?;
            Ok(rule)
        })
    }

    /// Changes a rule.
    pub fn v2_update_qos_rule(
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
            rule.rate = spec.rate.unwrap_or(rule.rate);
            rule.burst = spec.burst.unwrap_or(rule.burst);
            no_twin(tx, &rule)?;
            tx.save_qos_rule(&rule)?;
            bump(tx, policy_id)?;
            Ok(rule)
        })
    }

    /// Deletes a rule.
    pub fn v2_delete_qos_rule(
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
