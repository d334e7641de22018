-- Store a cache entry unless another write replaced the one the writer saw when it started.
-- KEYS[1] the entry key
-- ARGV[1] write id the writer saw before reading its source ('' if the key was absent or foreign)
-- ARGV[2] the new entry (envelope bytes)
-- ARGV[3] physical TTL in ms
-- returns 1 if stored, 0 if the key now holds a different entry (a newer write or a tombstone)
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, 5) == 'rdc1 ' then
  if string.sub(current, 6, 21) ~= ARGV[1] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
