-- Sliding-window log rate limit on the server clock. One entry per unit of cost,
-- scored by server time in microseconds; an entry counts while it is younger than
-- the window. Denied requests leave nothing. One key per identity (its hash tag).
-- Idempotent: members carry the request's nonce, so a resend after a lost reply finds
-- its own first entry (ZADD NX adds nothing) and answers "allowed" again.
-- KEYS[1] the log (sorted set: member "<nonce>:<i>", score = server time in us)
-- ARGV[1] limit (units allowed within any window)
-- ARGV[2] window in milliseconds
-- ARGV[3] cost of this request (1..limit)
-- ARGV[4] nonce unique per request (keeps members of simultaneous requests apart)
-- returns {allowed 1/0, units in the window after this request, reset_after_us, retry_after_us}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000
local cost = tonumber(ARGV[3])
local first = ARGV[4] .. ':1'
local stamp = string.format('%.0f', now)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
if redis.call('ZADD', KEYS[1], 'NX', stamp, first) == 0 then
  local mine = redis.call('ZSCORE', KEYS[1], first)
  return {1, redis.call('ZCARD', KEYS[1]), tonumber(mine) + window - now, 0}
end
local count = redis.call('ZCARD', KEYS[1]) - 1
if count + cost <= limit then
  for i = 2, cost do
    redis.call('ZADD', KEYS[1], stamp, ARGV[4] .. ':' .. i)
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, count + cost, window, 0}
end
redis.call('ZREM', KEYS[1], first)
-- Denied: the (count + cost - limit)-th oldest entry must leave before this cost fits;
-- the newest one leaving empties the log.
local kth = redis.call('ZRANGE', KEYS[1], count + cost - limit - 1, count + cost - limit - 1, 'WITHSCORES')
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local reset = tonumber(newest[2]) + window - now
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
end
return {0, count, reset, tonumber(kth[2]) + window - now}
