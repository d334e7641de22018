#!lua flags=no-writes,allow-cross-slot-keys
-- Facts about the keys of one SCAN page, in one round trip, read-only.
-- KEYS[1..n] keys of one SCAN page (in a cluster: the page's keys of one slot)
-- ARGV[1] MEMORY USAGE SAMPLES ('' for the server default)
-- returns {elapsed_us, type_1, pttl_1, bytes_1, count_1, type_2, ...}: type 'none' for a key that vanished; bytes nil when MEMORY USAGE is refused; count nil for module types
local t0 = redis.call('TIME')
local samples = ARGV[1]
local out = {0}
local n = 1
for i = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  local ttl, bytes, count = -2, false, false
  if kind ~= 'none' then
    ttl = redis.call('PTTL', KEYS[i])
    if samples == '' then
      bytes = redis.pcall('MEMORY', 'USAGE', KEYS[i])
    else
      bytes = redis.pcall('MEMORY', 'USAGE', KEYS[i], 'SAMPLES', samples)
    end
    if type(bytes) ~= 'number' then
      bytes = false -- refused (ACL) or unknown: nil for the caller, not a failed batch
    end
    if kind == 'string' then
      count = redis.call('STRLEN', KEYS[i])
    elseif kind == 'hash' then
      count = redis.call('HLEN', KEYS[i])
    elseif kind == 'list' then
      count = redis.call('LLEN', KEYS[i])
    elseif kind == 'set' then
      count = redis.call('SCARD', KEYS[i])
    elseif kind == 'zset' then
      count = redis.call('ZCARD', KEYS[i])
    elseif kind == 'stream' then
      count = redis.call('XLEN', KEYS[i])
    end
  end
  out[n + 1] = kind
  out[n + 2] = ttl
  out[n + 3] = bytes
  out[n + 4] = count
  n = n + 4
end
local t1 = redis.call('TIME')
out[1] = (t1[1] - t0[1]) * 1000000 + (t1[2] - t0[2])
return out
