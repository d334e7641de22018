-- Release a lock only while it still holds the caller's token, and record the hold time.
-- Idempotent: the released token is remembered in the info hash, so a resend after a lost
-- reply answers 1 again instead of "the lock is gone", and the hold is counted once.
-- The counters are read with the holder and written back in one HSET.
-- KEYS[1] lock:{<resource>} the lock (a string holding the holder's token)
-- KEYS[2] lock:{<resource>}:info the per-lock info/stats hash
-- ARGV[1] the token the caller acquired with
-- returns 1 released, 0 the lock is gone (expired or deleted), -1 another holder has it
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then
  return redis.error_reply('lock ' .. KEYS[1] .. ': ' .. current['err'])
end
local info = redis.pcall('HMGET', KEYS[2], 'holder', 'acquired_at_ms', 'released',
  'hold_ms_total', 'releases')
local stats = not info['err']
if current ~= ARGV[1] then
  if current then
    return -1
  end
  if stats and info[3] == ARGV[1] then
    return 1
  end
  return 0
end
redis.call('DEL', KEYS[1])
if stats and info[1] == ARGV[1] then
  local at = tonumber(info[2])
  if at then
    local t = redis.call('TIME')
    local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('HSET', KEYS[2], 'holder', '', 'acquired_at_ms', '', 'released', ARGV[1],
      'hold_ms_total', string.format('%d', (tonumber(info[4]) or 0) + math.max(0, now_ms - at)),
      'releases', (tonumber(info[5]) or 0) + 1)
  else
    redis.call('HSET', KEYS[2], 'holder', '', 'acquired_at_ms', '', 'released', ARGV[1])
  end
  -- no PEXPIRE: this holder's acquire (or extend) set the hash's TTL a day past a
  -- lease that has not ended yet, so it already lasts a day past this release
end
return 1
