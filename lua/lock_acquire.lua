-- Take a lock if it is free, bump its fencing counter and record the attempt: one step.
-- KEYS[1] lock:{<resource>} the lock (a string holding the holder's token)
-- KEYS[2] lock:{<resource>}:fence the fencing counter (never expires)
-- KEYS[3] lock:{<resource>}:info the per-lock info/stats hash
-- ARGV[1] the caller's new random token
-- ARGV[2] lock TTL in ms
-- ARGV[3] info hash TTL in ms (at least the lock TTL)
-- returns {1, fence} when acquired, {0, PTTL of the lock} when someone else holds it
local fence_type = redis.call('TYPE', KEYS[2])['ok']
if fence_type ~= 'none' and fence_type ~= 'string' then
  return redis.error_reply('fencing counter ' .. KEYS[2] .. ' holds a ' .. fence_type)
end
local info_type = redis.call('TYPE', KEYS[3])['ok']
if info_type ~= 'none' and info_type ~= 'hash' then
  return redis.error_reply('lock info ' .. KEYS[3] .. ' holds a ' .. info_type)
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'attempts', 1)
  redis.call('HINCRBY', KEYS[3], 'failures', 1)
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
  return {0, redis.call('PTTL', KEYS[1])}
end
-- INCR is the first write: a counter that is not an integer fails before anything changed
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX')
local t = redis.call('TIME')
local now_ms = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local previous = redis.call('HGET', KEYS[3], 'holder')
if previous and previous ~= '' then
  -- release clears the holder; one still recorded means that lock expired unreleased
  redis.call('HINCRBY', KEYS[3], 'expired', 1)
end
redis.call('HSET', KEYS[3], 'holder', ARGV[1], 'fence', fence, 'acquired_at_ms', now_ms,
  'ttl_ms', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'attempts', 1)
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return {1, fence}
