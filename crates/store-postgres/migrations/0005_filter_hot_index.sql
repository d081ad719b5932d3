-- Device filters: the criteria most filters combine (product, connection
-- status), carrying the installed versions' sort keys, so that an estimate
-- can be answered from the index (see the SQLite migration of the same number).
CREATE INDEX devices_filter_hot ON devices (tenant, product, connection_status) INCLUDE (firmware_keys);
