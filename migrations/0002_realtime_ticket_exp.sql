-- A ticket carries its token's expiry, so a socket opened with it still closes (4401) when the token would have.
ALTER TABLE realtime_tickets ADD COLUMN token_exp bigint;
