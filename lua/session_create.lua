-- Create a session hash and its TTL in one step, so no session ever exists without a TTL.
-- Idempotent: a resend after a lost reply finds the hash it created (same uid and
-- created_ms, under a 256-bit random id) and answers 1 again.
-- KEYS[1] the session hash (session:<sid>)
-- ARGV[1] idle TTL in milliseconds
-- ARGV[2] first field name; ARGV[2..n] are field, value pairs: uid, created_ms come first
-- returns 1 if created (or created by this very request), 0 if the id is taken (nothing written)
if redis.call('EXISTS', KEYS[1]) == 1 then
  local seen = redis.call('HMGET', KEYS[1], 'uid', 'created_ms')
  if seen[1] == ARGV[3] and seen[2] == ARGV[5] then
    return 1
  end
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
