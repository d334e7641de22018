-- Release a lock only while it still holds the caller's token, and record the hold time.
-- KEYS[1] lock:{<resource>} the lock (a string holding the holder's token)
-- KEYS[2] lock:{<resource>}:info the per-lock info/stats hash
-- ARGV[1] the token the caller acquired with
-- ARGV[2] info hash TTL in ms
-- returns 1 released, 0 the lock is gone (expired or deleted), -1 another holder has it
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
if current ~= ARGV[1] then
  return -1
end
redis.call('DEL', KEYS[1])
if redis.call('TYPE', KEYS[2])['ok'] ~= 'hash' then
  return 1
end
if redis.call('HGET', KEYS[2], 'holder') == ARGV[1] then
  local at = tonumber(redis.call('HGET', KEYS[2], 'acquired_at_ms'))
  if at then
    local t = redis.call('TIME')
    local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('HINCRBY', KEYS[2], 'hold_ms_total', math.max(0, now_ms - at))
    redis.call('HINCRBY', KEYS[2], 'releases', 1)
  end
  redis.call('HDEL', KEYS[2], 'holder', 'acquired_at_ms')
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
