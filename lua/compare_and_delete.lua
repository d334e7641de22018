-- Delete a key only while it still holds the caller's token (safe lock release).
-- KEYS[1] the guarded key (a string holding a token)
-- ARGV[1] the token the caller set
-- returns 1 if the key held the token and was deleted, 0 otherwise
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
