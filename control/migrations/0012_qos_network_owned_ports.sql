-- qswitch control store, schema version 12: a network's QoS policy does not apply to the
-- network's own ports (`device_owner` starting with `network:`: DHCP, router interfaces), as in
-- Neutron, so a port whose owner changes may change limits: the revision log records it.
CREATE TRIGGER log_port_device_owner AFTER UPDATE OF device_owner ON ports
    WHEN OLD.device_owner IS NOT NEW.device_owner BEGIN
    INSERT INTO changes (revision, kind, id)
        SELECT revision + 1, 'port', NEW.id FROM revision;
END;
