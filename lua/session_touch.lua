-- Sliding renewal of a session: optionally change fields, stamp the access time and
-- re-apply the TTL, all only if the session still exists. An expired or deleted
-- session is never resurrected as a hash without TTL.
-- KEYS[1] the session hash (session:<sid>)
-- ARGV[1] idle TTL in milliseconds
-- ARGV[2] now in milliseconds (the store's clock; written as last_access_ms)
-- ARGV[3] absolute max age in milliseconds counted from created_ms, 0 for none
-- ARGV[4] 1 to return every field, 0 to return only the user id
-- ARGV[5] k, the number of field names to delete; they follow from ARGV[6], then field, value pairs to set
-- returns false if the session is gone, else {applied_ttl_ms, uid} or {applied_ttl_ms, f1, v1, ...}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local ttl = tonumber(ARGV[1])
local max_age = tonumber(ARGV[3])
if max_age > 0 then
  local created = tonumber(redis.call('HGET', KEYS[1], 'created_ms'))
  if created then
    local left = created + max_age - tonumber(ARGV[2])
    if left <= 0 then
      redis.call('DEL', KEYS[1])
      return false
    end
    if left < ttl then
      ttl = left
    end
  end
end
local k = tonumber(ARGV[5])
if k > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 6, 5 + k))
end
if #ARGV > 5 + k then
  redis.call('HSET', KEYS[1], unpack(ARGV, 6 + k))
end
redis.call('HSET', KEYS[1], 'last_access_ms', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
if ARGV[4] == '1' then
  local reply = redis.call('HGETALL', KEYS[1])
  table.insert(reply, 1, ttl)
  return reply
end
return {ttl, redis.call('HGET', KEYS[1], 'uid')}
