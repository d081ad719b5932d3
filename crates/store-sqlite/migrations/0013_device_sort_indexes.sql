-- Device lists sorted by when devices were last seen or registered, newest
-- first (the dashboard's sorts), read a page from an index instead of sorting
-- the tenant's devices: a page deep into 1,000,000 devices took a second.
-- (SQLite orders NULLs first, so a descending scan gives `DESC NULLS LAST`.)
CREATE INDEX devices_last_seen ON devices (tenant, last_seen_at, id);
CREATE INDEX devices_created ON devices (tenant, created_at, id);
