-- Record (or push back) a session's expiry in its user's index and keep the index
-- alive at least as long as that session: its TTL is raised, never lowered.
-- KEYS[1] the user's index (sorted set sid -> expiry time in ms)
-- ARGV[1] session id
-- ARGV[2] the session's expiry time in ms (score; only ever raised)
-- ARGV[3] minimum remaining TTL for the index in milliseconds
-- returns the index's TTL in milliseconds after the call
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return redis.call('PTTL', KEYS[1])
