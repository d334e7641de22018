-- The window of a leaderboard around one member, read in one atomic step (read-only),
-- so the member is always inside it at the rank it had at that instant.
-- KEYS[1] the board (sorted set, highest score first)
-- ARGV[1] the member
-- ARGV[2] n, how many entries above and below it
-- returns false when the member is not on the board, else {start (0-based), m1, s1, m2, s2, ...}
local position = redis.call('ZREVRANK', KEYS[1], ARGV[1])
if not position then
  return false
end
local n = tonumber(ARGV[2])
local start = math.max(0, position - n)
local rows = redis.call('ZREVRANGE', KEYS[1], start, position + n, 'WITHSCORES')
table.insert(rows, 1, start)
return rows
