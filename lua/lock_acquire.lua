-- Take a lock if it is free, bump its fencing counter and record the attempt: one step.
-- Idempotent (the caller may resend it after a lost reply): the token is new for every
-- acquisition, so finding it already in the lock or recorded as the last failed try means
-- this very request ran before, and its first answer is given again, counted once.
-- Nothing is written unless every key has the type this layout gives it. The counters
-- are read with the holder and written back in the same HSET (a field that does not
-- hold a number counts from 0), so a call costs one write to the info hash.
-- KEYS[1] lock:{<resource>} the lock (a string holding the holder's token)
-- KEYS[2] lock:{<resource>}:fence the fencing counter (never expires)
-- KEYS[3] lock:{<resource>}:info the per-lock info/stats hash
-- ARGV[1] the caller's new random token (also this request's id)
-- ARGV[2] lock TTL in ms
-- ARGV[3] info hash TTL in ms (at least the lock TTL)
-- returns {1, fence} when acquired, {0, PTTL of the lock} when someone else holds it
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then
  return redis.error_reply('lock ' .. KEYS[1] .. ' holds a ' .. redis.call('TYPE', KEYS[1])['ok']
    .. '; a lock is a string holding a token')
end
local info = redis.pcall('HMGET', KEYS[3], 'holder', 'tried', 'attempts', 'failures', 'expired')
if info['err'] then
  return redis.error_reply('lock info ' .. KEYS[3] .. ' holds a ' .. redis.call('TYPE', KEYS[3])['ok'])
end
local attempts = (tonumber(info[3]) or 0) + 1
if current then
  if current == ARGV[1] then
    return {1, tonumber(redis.call('GET', KEYS[2]))}
  end
  if info[2] ~= ARGV[1] then
    redis.call('HSET', KEYS[3], 'attempts', attempts, 'failures', (tonumber(info[4]) or 0) + 1,
      'tried', ARGV[1])
    redis.call('PEXPIRE', KEYS[3], ARGV[3])
  end
  return {0, redis.call('PTTL', KEYS[1])}
end
-- INCR is the first write: a counter of another type or not an integer fails before
-- anything changed
local fence = redis.pcall('INCR', KEYS[2])
if type(fence) == 'table' then
  return redis.error_reply('fencing counter ' .. KEYS[2] .. ': ' .. fence['err'])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local t = redis.call('TIME')
-- a Lua number is sent as text with 14 significant digits: whole milliseconds, exactly
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if info[1] and info[1] ~= '' then
  -- release clears the holder; one still recorded means that lock expired unreleased
  redis.call('HSET', KEYS[3], 'holder', ARGV[1], 'fence', fence, 'acquired_at_ms', now_ms,
    'ttl_ms', ARGV[2], 'attempts', attempts, 'expired', (tonumber(info[5]) or 0) + 1)
else
  redis.call('HSET', KEYS[3], 'holder', ARGV[1], 'fence', fence, 'acquired_at_ms', now_ms,
    'ttl_ms', ARGV[2], 'attempts', attempts)
end
-- the same server clock as TIME above: PEXPIREAT is PEXPIRE without the rewrite of
-- the command that PEXPIRE makes for replication
redis.call('PEXPIREAT', KEYS[3], now_ms + ARGV[3])
return {1, fence}
