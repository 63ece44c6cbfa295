-- qswitch control store, schema version 9: a network's `router:external`, stored and shown
-- (admins set it; no routers exist to use it).
ALTER TABLE networks ADD COLUMN router_external INTEGER NOT NULL DEFAULT 0;
