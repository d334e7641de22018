#!lua flags=no-writes,allow-cross-slot-keys
-- Facts about the keys of one SCAN page, in one round trip, read-only.
-- KEYS[1..n] keys of one SCAN page (standalone, Sentinel; in a cluster: keys of one slot), or none: see ARGV[2..n]
-- ARGV[1] MEMORY USAGE SAMPLES ('' for the server default)
-- ARGV[2..n] with no KEYS (a cluster page spanning slots): the page's keys, sent to the node whose SCAN returned them
-- returns one tab-separated string: elapsed_us, then type, pttl, bytes, count per key; type 'none' and pttl -2 for a key that vanished; '' for bytes when MEMORY USAGE is refused and for count of module types. One string instead of an array: the client parses one reply, not four values per key
--
-- Keys in ARGV are the one exception to "every key a script touches is passed in KEYS"
-- (DESIGN.md; tests/test_scripts.py names this script and no other). Redis 7.0 refuses
-- declared KEYS of different slots in one call, allow-cross-slot-keys or not, and the
-- keys of a SCAN page come in hash-table order, so in a cluster a page of n keys would
-- cost about n calls (docs/scan.md has the numbers). The node still checks undeclared
-- keys: one whose slot it does not serve fails the call ("Script attempted to access a
-- non local key in a cluster node"), and the caller reads that page again one call per
-- slot, keys in KEYS (dashboard/inspect/keyspace/scriptpage.py). no-writes: the server
-- refuses any write from this script, whichever form it is called in.
local t0 = redis.call('TIME')
local samples = ARGV[1]
local out = {''}
local n = 1
local function int(x)
  return string.format('%.0f', x) -- 1e15 stays digits
end
local function facts(key)
  local kind = redis.call('TYPE', key)['ok']
  local ttl, bytes, count = '-2', '', ''
  if kind ~= 'none' then
    ttl = int(redis.call('PTTL', key))
    local size
    if samples == '' then
      size = redis.pcall('MEMORY', 'USAGE', key)
    else
      size = redis.pcall('MEMORY', 'USAGE', key, 'SAMPLES', samples)
    end
    if type(size) == 'number' then
      bytes = int(size) -- else refused (ACL) or unknown: '' for the caller, not a failed batch
    end
    local len
    if kind == 'string' then
      len = redis.call('STRLEN', key)
    elseif kind == 'hash' then
      len = redis.call('HLEN', key)
    elseif kind == 'list' then
      len = redis.call('LLEN', key)
    elseif kind == 'set' then
      len = redis.call('SCARD', key)
    elseif kind == 'zset' then
      len = redis.call('ZCARD', key)
    elseif kind == 'stream' then
      len = redis.call('XLEN', key)
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
if #KEYS > 0 then
  for i = 1, #KEYS do
    facts(KEYS[i])
  end
else
  for i = 2, #ARGV do
    facts(ARGV[i])
  end
end
local t1 = redis.call('TIME')
out[1] = int((t1[1] - t0[1]) * 1000000 + (t1[2] - t0[2]))
return table.concat(out, '\t')
