-- Fixed-window rate limit: check, then count. The window is anchored at its first
-- allowed hit by the counter's TTL (server clock, no client time). Denied requests
-- are not counted, so the counter never exceeds the limit and hammering while
-- blocked does not change when the window ends. A counter that lost its TTL
-- (PERSIST, a restore without TTL) would block forever, so it is re-anchored.
-- KEYS[1] the window counter (string: units allowed in this window; PTTL = time left)
-- ARGV[1] limit (units allowed per window)
-- ARGV[2] window in milliseconds
-- ARGV[3] cost of this request (1..limit)
-- returns {allowed 1/0, units counted in the window after this request, window left in ms}
local limit = tonumber(ARGV[1])
local cost = tonumber(ARGV[3])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if not count then
  return redis.error_reply('ERR rate limit counter does not hold an integer')
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  pttl = tonumber(ARGV[2])
end
if count + cost > limit then
  return {0, count, pttl}
end
count = redis.call('INCRBY', KEYS[1], cost)
if pttl == -2 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  pttl = tonumber(ARGV[2])
end
return {1, count, pttl}
