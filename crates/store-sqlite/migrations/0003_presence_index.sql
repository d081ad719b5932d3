-- Finding online devices that went silent, without scanning the fleet.
CREATE INDEX devices_presence ON devices (connection_status, last_seen_at);
