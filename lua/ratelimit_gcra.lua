-- GCRA (generic cell rate algorithm) on the server clock: one key holds the
-- theoretical arrival time (TAT), the server time at which the budget is full again.
-- Each unit of cost moves the TAT one emission interval later; a request is allowed
-- while the TAT it would set is at most limit * interval ahead of now. Integer
-- microseconds throughout, so burst = limit exactly. Denied requests write nothing.
-- KEYS[1] the TAT (string: server time in us; TTL = until the TAT, for cleanup only)
-- ARGV[1] limit (burst: units allowed at once after a quiet period)
-- ARGV[2] emission interval in whole microseconds (period / limit, rounded up)
-- ARGV[3] cost of this request (1..limit)
-- returns {allowed 1/0, remaining units, reset_after_us, retry_after_us}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local span = limit * interval
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = tonumber(stored)
  if not tat then
    return redis.error_reply('ERR rate limit TAT does not hold a number')
  end
  if tat < now then
    tat = now
  end
end
local new_tat = tat + cost * interval
if new_tat - now > span then
  return {0, math.floor((span - (tat - now)) / interval), tat - now, new_tat - now - span}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((span - (new_tat - now)) / interval), new_tat - now, 0}
