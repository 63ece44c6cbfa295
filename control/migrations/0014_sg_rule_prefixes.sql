-- qswitch control store, schema version 14: a security group rule's remote_ip_prefix is stored as
-- Neutron converts it (netaddr's IPNetwork): an address with its prefix length. Rules written
-- before with a bare address take the host length, so that they show as Neutron shows them and
-- a rule written either way is the same rule. What they match does not change.
UPDATE security_group_rules
   SET remote_ip_prefix = remote_ip_prefix ||
       CASE WHEN instr(remote_ip_prefix, ':') > 0 THEN '/128' ELSE '/32' END
 WHERE remote_ip_prefix IS NOT NULL AND instr(remote_ip_prefix, '/') = 0;
