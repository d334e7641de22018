-- Fixed-window rate limit. The window is anchored at its first allowed hit by the
-- counter's TTL (server clock, no client time). A denied request is taken back in the
-- same script, so it is never counted: the counter never exceeds the limit and
-- hammering while blocked does not change when the window ends. A counter that lost
-- its TTL (PERSIST, a restore without TTL) would block forever, so it is re-anchored.
-- Not idempotent: the pattern layer never resends it after a lost reply.
-- KEYS[1] the window counter (string: units allowed in this window; PTTL = time left)
-- ARGV[1] limit (units allowed per window)
-- ARGV[2] window in milliseconds
-- ARGV[3] cost of this request (1..limit)
-- returns {allowed 1/0, units counted in the window after this request, window left in ms}
local cost = tonumber(ARGV[3])
local count = redis.pcall('INCRBY', KEYS[1], cost)
if type(count) == 'table' then
  return redis.error_reply('ERR rate limit counter does not hold an integer (' .. count['err'] .. ')')
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  pttl = tonumber(ARGV[2])
end
if count > tonumber(ARGV[1]) then
  return {0, redis.call('DECRBY', KEYS[1], cost), pttl}
end
return {1, count, pttl}
