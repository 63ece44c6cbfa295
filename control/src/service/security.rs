//! Neutron v2.0 security groups and rules: the API operations (see `crate::security` for the
//! model and the rule checks).

use super::{new_id, Control};
use crate::error::{ControlError, Result};
use crate::neutron::{now_iso8601, Scope};
use crate::security::{
    checked_rule, GroupView, SecurityGroup, SecurityGroupSpec, SecurityGroupUpdate, SgRule,
    SgRuleSpec, DEFAULT_DESCRIPTION, DEFAULT_NAME, GROUP_QUOTA, RULE_QUOTA,
};
use crate::store::Tx;

fn conflict(kind: &'static str, message: impl Into<String>) -> ControlError {
    ControlError::SecurityGroupConflict {
        kind,
        message: message.into(),
    }
}

/// Neutron's `name_not_default` check of a group's name, on create and update alike: `default`,
/// in any case, is taken.
fn name_not_default(name: &str) -> Result<()> {
    if name.eq_ignore_ascii_case(DEFAULT_NAME) {
        return Err(conflict(
            "SecurityGroupDefaultAlreadyExists",
            "Default security group already exists.",
        ));
    }
    Ok(())
}

fn not_found(id: &str) -> ControlError {
    ControlError::SecurityGroupNotFound { id: id.to_owned() }
}

/// A rule to store: `direction` and `ethertype` of an any-protocol rule.
fn base_rule(group: &SecurityGroup, direction: &str, ethertype: &str, now: &str) -> SgRule {
    SgRule {
        id: new_id(),
        security_group_id: group.id.clone(),
        tenant_id: group.tenant_id.clone(),
        direction: direction.into(),
        ethertype: ethertype.into(),
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: None,
        description: String::new(),
        created_at: now.into(),
        updated_at: now.into(),
        revision_number: 0,
        in_default_group: group.is_default,
    }
}

/// Inserts a group with Neutron's rules for it: any egress (IPv4, IPv6), and for the default
/// group also ingress from its own members.
fn insert_group(tx: &dyn Tx, group: &SecurityGroup) -> Result<()> {
    tx.insert_security_group(group)?;
    let now = &group.created_at;
    for ethertype in ["IPv4", "IPv6"] {
        tx.insert_sg_rule(&base_rule(group, "egress", ethertype, now))?;
        if group.is_default {
            let mut r = base_rule(group, "ingress", ethertype, now);
            r.remote_group_id = Some(group.id.clone());
            tx.insert_sg_rule(&r)?;
        }
    }
    Ok(())
}

/// The id of a project's default group, made now if it has none yet.
pub(super) fn ensure_default(tx: &dyn Tx, tenant_id: &str) -> Result<String> {
    if let Some(id) = tx.default_security_group(tenant_id)? {
        return Ok(id);
    }
    let now = now_iso8601();
    let g = SecurityGroup {
        id: new_id(),
        tenant_id: tenant_id.to_owned(),
        name: DEFAULT_NAME.into(),
        description: DEFAULT_DESCRIPTION.into(),
        stateful: true,
        is_default: true,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 0,
    };
    insert_group(tx, &g)?;
    Ok(g.id)
}

/// The groups of a port of `tenant_id`: those asked for (each must be the project's), else the
/// project's default one; none when port security is off (asking for some then is 400).
pub(super) fn port_groups(
    tx: &dyn Tx,
    tenant_id: &str,
    port_security: bool,
    requested: Option<Vec<String>>,
) -> Result<Vec<String>> {
    if !port_security {
        if requested.as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(ControlError::SecurityGroupInvalid {
                kind: "PortSecurityAndIPRequiredForSecurityGroups",
                message: "Port security must be enabled and port must have an IP address in \
                          order to use security groups."
                    .into(),
            });
        }
        return Ok(Vec::new());
    }
    let Some(requested) = requested else {
        return Ok(vec![ensure_default(tx, tenant_id)?]);
    };
    let mut out: Vec<String> = Vec::with_capacity(requested.len());
    let mut statefulness = None;
    for id in requested {
        let group = tx
            .security_groups(Some(&id))?
            .pop()
            .filter(|g| g.tenant_id == tenant_id)
            .ok_or_else(|| not_found(&id))?;
        // As Neutron: a port's groups are all stateful or all stateless.
        if *statefulness.get_or_insert(group.stateful) != group.stateful {
            return Err(conflict(
                "SecurityGroupConflict",
                "Error Cannot apply both stateful and stateless security groups on the same \
                 port at the same time. while attempting the operation.",
            ));
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn visible_group(tx: &dyn Tx, scope: &Scope, id: &str) -> Result<SecurityGroup> {
    tx.security_groups(Some(id))?
        .pop()
        .filter(|g| scope.owns(&g.tenant_id))
        .ok_or_else(|| not_found(id))
}

fn view(tx: &dyn Tx, g: SecurityGroup) -> Result<GroupView> {
    let rules = rules_of(tx, Some(&g))?;
    Ok((g, rules))
}

/// The rules of a group (or all), each knowing whether its group is a default one.
fn rules_of(tx: &dyn Tx, group: Option<&SecurityGroup>) -> Result<Vec<SgRule>> {
    let mut rules = tx.sg_rules(group.map(|g| g.id.as_str()), None)?;
    let defaults: Vec<String> = match group {
        Some(g) if g.is_default => vec![g.id.clone()],
        Some(_) => Vec::new(),
        None => tx
            .security_groups(None)?
            .into_iter()
            .filter(|g| g.is_default)
            .map(|g| g.id)
            .collect(),
    };
    for r in &mut rules {
        r.in_default_group = defaults.contains(&r.security_group_id);
    }
    Ok(rules)
}

fn touch(tx: &dyn Tx, group: &str) -> Result<()> {
    if let Some(mut g) = tx.security_groups(Some(group))?.pop() {
        g.updated_at = now_iso8601();
        g.revision_number += 1;
        tx.save_security_group(&g)?;
    }
    Ok(())
}

impl Control {
    /// The caller's project's default group exists (made on first use, as Neutron does when a
    /// project lists its groups).
    fn ensure_own_default(&self, scope: &Scope) -> Result<()> {
        let exists = self.read(|tx| tx.default_security_group(&scope.tenant_id))?;
        if exists.is_none() {
            self.write(|tx| ensure_default(tx, &scope.tenant_id).map(drop))?;
        }
        Ok(())
    }

    /// The groups the caller sees, with their rules, in creation order.
    pub fn security_groups(&self, scope: &Scope) -> Result<Vec<GroupView>> {
        self.ensure_own_default(scope)?;
        self.read(|tx| {
            let rules = rules_of(tx, None)?;
            Ok(tx
                .security_groups(None)?
                .into_iter()
                .filter(|g| scope.owns(&g.tenant_id))
                .map(|g| {
                    let mine = rules
                        .iter()
                        .filter(|r| r.security_group_id == g.id)
                        .cloned()
                        .collect();
                    (g, mine)
                })
                .collect())
        })
    }

    /// One group the caller sees.
    pub fn security_group(&self, scope: &Scope, id: &str) -> Result<GroupView> {
        self.read(|tx| {
            let g = visible_group(tx, scope, id)?;
            view(tx, g)
        })
    }

    /// Creates groups (one transaction), each with rules allowing any egress.
    pub fn create_security_groups(
        &self,
        scope: &Scope,
        specs: Vec<SecurityGroupSpec>,
    ) -> Result<Vec<GroupView>> {
        for s in &specs {
            crate::model::validate_tenant_id(&s.tenant_id)?;
        }
        let _ = scope;
        self.write(|tx| {
            let mut out = Vec::with_capacity(specs.len());
            for s in specs {
                ensure_default(tx, &s.tenant_id)?;
                name_not_default(&s.name)?;
                let (groups, rules) = tx.security_usage(&s.tenant_id)?;
                if groups >= GROUP_QUOTA {
                    return Err(ControlError::OverQuota {
                        resource: "security_groups",
                        limit: GROUP_QUOTA,
                        used: groups,
                    });
                }
                if rules + 2 > RULE_QUOTA {
                    return Err(ControlError::OverQuota {
                        resource: "security_group_rules",
                        limit: RULE_QUOTA,
                        used: rules,
                    });
                }
                let now = now_iso8601();
                let g = SecurityGroup {
                    id: new_id(),
                    tenant_id: s.tenant_id,
                    name: s.name,
                    description: s.description,
                    stateful: s.stateful,
                    is_default: false,
                    created_at: now.clone(),
                    updated_at: now,
                    revision_number: 0,
                };
                insert_group(tx, &g)?;
                out.push(view(tx, g)?);
            }
            Ok(out)
        })
    }

    /// Changes a group's name, description or statefulness (the default group keeps its name;
    /// no group takes the name `default`).
    pub fn update_security_group(
        &self,
        scope: &Scope,
        id: &str,
        upd: SecurityGroupUpdate,
    ) -> Result<GroupView> {
        self.write(|tx| {
            let mut g = visible_group(tx, scope, id)?;
            if let Some(name) = upd.name {
                name_not_default(&name)?;
                if g.is_default && name != g.name {
                    return Err(conflict(
                        "SecurityGroupCannotUpdateDefault",
                        "Updating default security group not allowed.",
                    ));
                }
                g.name = name;
            }
            if let Some(d) = upd.description {
                g.description = d;
            }
            if let Some(s) = upd.stateful {
                if s != g.stateful && !tx.security_group_ports(id)?.is_empty() {
                    return Err(conflict(
                        "SecurityGroupInUse",
                        format!("Security Group {id} in use."),
                    ));
                }
                g.stateful = s;
            }
            g.updated_at = now_iso8601();
            g.revision_number += 1;
            tx.save_security_group(&g)?;
            view(tx, g)
        })
    }

    /// Deletes a group that no port uses, with its rules and the rules naming it as their
    /// remote group. Only an admin deletes a default group (it comes back on the project's
    /// next use).
    pub fn delete_security_group(&self, scope: &Scope, id: &str) -> Result<()> {
        self.write(|tx| {
            let g = visible_group(tx, scope, id)?;
            if g.is_default && !scope.admin {
                return Err(conflict(
                    "SecurityGroupCannotRemoveDefault",
                    "Removing default security group not allowed.",
                ));
            }
            if !tx.security_group_ports(id)?.is_empty() {
                return Err(conflict(
                    "SecurityGroupInUse",
                    format!("Security Group {id} in use."),
                ));
            }
            tx.delete_security_group(id)
        })
    }

    /// The rules the caller sees, in creation order.
    pub fn sg_rules(&self, scope: &Scope) -> Result<Vec<SgRule>> {
        self.ensure_own_default(scope)?;
        self.read(|tx| {
            let owners: std::collections::HashMap<String, String> = tx
                .security_groups(None)?
                .into_iter()
                .map(|g| (g.id, g.tenant_id))
                .collect();
            Ok(rules_of(tx, None)?
                .into_iter()
                .filter(|r| {
                    scope.owns(&r.tenant_id)
                        || owners
                            .get(&r.security_group_id)
                            .is_some_and(|t| scope.owns(t))
                })
                .collect())
        })
    }

    /// One rule the caller sees.
    pub fn sg_rule(&self, scope: &Scope, id: &str) -> Result<SgRule> {
        self.read(|tx| visible_rule(tx, scope, id))
    }

    /// Creates rules (one transaction, all or nothing).
    pub fn create_sg_rules(&self, scope: &Scope, specs: Vec<SgRuleSpec>) -> Result<Vec<SgRule>> {
        let mut checked = Vec::with_capacity(specs.len());
        for s in &specs {
            checked.push(checked_rule(s)?);
        }
        self.write(|tx| {
            let mut out = Vec::with_capacity(checked.len());
            for mut r in checked {
                let g = visible_group(tx, scope, &r.security_group_id)?;
                if let Some(remote) = &r.remote_group_id {
                    visible_group(tx, scope, remote)?;
                }
                if r.tenant_id.is_empty() {
                    r.tenant_id.clone_from(&g.tenant_id);
                }
                if let Some(dup) = tx
                    .sg_rules(Some(&g.id), None)?
                    .iter()
                    .find(|o| o.same_match(&r))
                {
                    return Err(conflict(
                        "SecurityGroupRuleExists",
                        format!("Security group rule already exists. Rule id is {}.", dup.id),
                    ));
                }
                let (_, used) = tx.security_usage(&r.tenant_id)?;
                if used >= RULE_QUOTA {
                    return Err(ControlError::OverQuota {
                        resource: "security_group_rules",
                        limit: RULE_QUOTA,
                        used,
                    });
                }
                let now = now_iso8601();
                r.id = new_id();
                r.created_at.clone_from(&now);
                r.updated_at = now;
                r.in_default_group = g.is_default;
                tx.insert_sg_rule(&r)?;
                touch(tx, &g.id)?;
                out.push(r);
            }
            Ok(out)
        })
    }

    /// Changes a rule's description (the only attribute a rule lets change).
    pub fn update_sg_rule(
        &self,
        scope: &Scope,
        id: &str,
        description: Option<String>,
    ) -> Result<SgRule> {
        self.write(|tx| {
            let mut r = visible_rule(tx, scope, id)?;
            if let Some(d) = description {
                r.description = d;
                r.updated_at = now_iso8601();
                r.revision_number += 1;
                tx.save_sg_rule(&r)?;
            }
            Ok(r)
        })
    }

    /// Deletes a rule.
    pub fn delete_sg_rule(&self, scope: &Scope, id: &str) -> Result<()> {
        self.write(|tx| {
            let r = visible_rule(tx, scope, id)?;
            tx.delete_sg_rule(id)?;
            touch(tx, &r.security_group_id)
        })
    }
}

/// A rule the caller sees: its own, or one in a group it owns.
fn visible_rule(tx: &dyn Tx, scope: &Scope, id: &str) -> Result<SgRule> {
    let missing = || ControlError::SecurityGroupRuleNotFound { id: id.to_owned() };
    let r = tx.sg_rules(None, Some(id))?.pop().ok_or_else(missing)?;
    let group = tx.security_groups(Some(&r.security_group_id))?.pop();
    if !scope.owns(&r.tenant_id) && !group.as_ref().is_some_and(|g| scope.owns(&g.tenant_id)) {
        return Err(missing());
    }
    Ok(SgRule {
        in_default_group: group.is_some_and(|g| g.is_default),
        ..r
    })
}
