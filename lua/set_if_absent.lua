-- SET NX PX, idempotent: a resend after a lost reply finds its own token and answers 1.
-- KEYS[1] the key to take (a string holding the taker's token)
-- ARGV[1] the taker's token (new for every attempt)
-- ARGV[2] TTL in milliseconds
-- returns 1 if the key now holds this token (set by this request), 0 if another holds it
local current = redis.call('GET', KEYS[1])
if current then
  if current == ARGV[1] then
    return 1
  end
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
