-- Change a lock's TTL only while it still holds the caller's token.
-- Idempotent: "replace" sets the same TTL again; an "add" remembers its request id in the
-- info hash, and a resend of the same id answers the current TTL without adding twice.
-- KEYS[1] lock:{<resource>} the lock (a string holding the holder's token)
-- KEYS[2] lock:{<resource>}:info the per-lock info/stats hash
-- ARGV[1] the token the caller acquired with
-- ARGV[2] milliseconds
-- ARGV[3] "replace" (TTL becomes ARGV[2]) or "add" (ARGV[2] is added to the remaining TTL)
-- ARGV[4] info hash TTL in ms
-- ARGV[5] request id, unique per extend call
-- returns the new TTL in ms; 0 when the lock is gone; -1 when another holder has it
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then
  return redis.error_reply('lock ' .. KEYS[1] .. ': ' .. current['err'])
end
if not current then
  return 0
end
if current ~= ARGV[1] then
  return -1
end
local seen = redis.pcall('HGET', KEYS[2], 'extend_id')
local stats = type(seen) ~= 'table'
if stats and seen == ARGV[5] then
  return redis.call('PTTL', KEYS[1])
end
local ms = tonumber(ARGV[2])
if ARGV[3] == 'add' then
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl > 0 then
    ms = ms + pttl
  end
end
redis.call('PEXPIRE', KEYS[1], ms)
if stats then
  redis.call('HINCRBY', KEYS[2], 'extends', 1)
  redis.call('HSET', KEYS[2], 'extend_id', ARGV[5])
  redis.call('PEXPIRE', KEYS[2], math.max(tonumber(ARGV[4]), ms))
end
return ms
