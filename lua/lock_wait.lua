-- Add the time one blocking acquire spent waiting to the lock's stats.
-- KEYS[1] lock:{<resource>}:info the per-lock info/stats hash
-- ARGV[1] milliseconds waited
-- ARGV[2] info hash TTL in ms
-- returns the new wait_ms_total
local total = redis.call('HINCRBY', KEYS[1], 'wait_ms_total', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'waits', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return total
