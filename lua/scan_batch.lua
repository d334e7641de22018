#!lua flags=no-writes,allow-cross-slot-keys
-- Facts about the keys of one SCAN page, in one round trip, read-only.
-- KEYS[1..n] keys of one SCAN page (in a cluster: the page's keys of one slot)
-- ARGV[1] MEMORY USAGE SAMPLES ('' for the server default)
-- returns one tab-separated string: elapsed_us, then type, pttl, bytes, count per key; type 'none' and pttl -2 for a key that vanished; '' for bytes when MEMORY USAGE is refused and for count of module types. One string instead of an array: the client parses one reply, not four values per key
local t0 = redis.call('TIME')
local samples = ARGV[1]
local out = {''}
local n = 1
local function int(x)
  return string.format('%.0f', x) -- 1e15 stays digits
end
for i = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  local ttl, bytes, count = '-2', '', ''
  if kind ~= 'none' then
    ttl = int(redis.call('PTTL', KEYS[i]))
    local size
    if samples == '' then
      size = redis.pcall('MEMORY', 'USAGE', KEYS[i])
    else
      size = redis.pcall('MEMORY', 'USAGE', KEYS[i], 'SAMPLES', samples)
    end
    if type(size) == 'number' then
      bytes = int(size) -- else refused (ACL) or unknown: '' for the caller, not a failed batch
    end
    local len
    if kind == 'string' then
      len = redis.call('STRLEN', KEYS[i])
    elseif kind == 'hash' then
      len = redis.call('HLEN', KEYS[i])
    elseif kind == 'list' then
      len = redis.call('LLEN', KEYS[i])
    elseif kind == 'set' then
      len = redis.call('SCARD', KEYS[i])
    elseif kind == 'zset' then
      len = redis.call('ZCARD', KEYS[i])
    elseif kind == 'stream' then
      len = redis.call('XLEN', KEYS[i])
    end
    if len then
      count = int(len)
    end
  end
  out[n + 1] = kind
  out[n + 2] = ttl
  out[n + 3] = bytes
  out[n + 4] = count
  n = n + 4
end
local t1 = redis.call('TIME')
out[1] = int((t1[1] - t0[1]) * 1000000 + (t1[2] - t0[2]))
return table.concat(out, '\t')
