-- Create a session hash and its TTL in one step, so no session ever exists without a TTL.
-- KEYS[1] the session hash (session:<sid>)
-- ARGV[1] idle TTL in milliseconds
-- ARGV[2] first field name; ARGV[2..n] are field, value pairs
-- returns 1 if created, 0 if the id is already taken (nothing written)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
