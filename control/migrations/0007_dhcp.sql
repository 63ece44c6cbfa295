-- qswitch control store, schema version 7: the switch answers DHCP from each port's subnet and
-- network, so the settings it answers with are logged as changes of the ports they reach.
CREATE TRIGGER log_subnet_dhcp AFTER UPDATE ON subnets
    WHEN OLD.enable_dhcp IS NOT NEW.enable_dhcp OR OLD.gateway_ip IS NOT NEW.gateway_ip
      OR OLD.dns_nameservers IS NOT NEW.dns_nameservers OR OLD.host_routes IS NOT NEW.host_routes
      OR OLD.cidr IS NOT NEW.cidr BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT r.revision + 1, 'port', a.port_id
        FROM revision r, ip_allocations a WHERE a.subnet_id = NEW.id;
END;
CREATE TRIGGER log_network_mtu AFTER UPDATE OF mtu ON networks
    WHEN OLD.mtu IS NOT NEW.mtu BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'network_ports', NEW.id FROM revision;
END;
