-- API servers waiting for a write to take effect on its ports' hosts LISTEN on qswitch_report:
-- each host report that moves the host's applied revision wakes them when its transaction
-- commits, instead of their polling host_status. The payload is `host:revision`.
CREATE FUNCTION qs_host_reported() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('qswitch_report', NEW.host || ':' || NEW.revision::text);
    RETURN NULL;
END $$;
CREATE TRIGGER notify_report_new AFTER INSERT ON host_status
    FOR EACH ROW EXECUTE FUNCTION qs_host_reported();
CREATE TRIGGER notify_report AFTER UPDATE ON host_status
    FOR EACH ROW WHEN (OLD.revision IS DISTINCT FROM NEW.revision)
    EXECUTE FUNCTION qs_host_reported();
