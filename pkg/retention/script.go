package retention

import "github.com/redis/go-redis/v9"

// trimScript trims one stream and reports its consumer groups, atomically.
//
// KEYS[1] the stream. ARGV[1] maxlen, ARGV[2] the read budget (the most
// entries it reads to count a group's undelivered entries when Redis does
// not), ARGV[3] the most entries one pass removes.
//
// Each group needs the entries from its floor on: its oldest pending entry
// (delivered, not acknowledged), or, with nothing pending, those after its
// last-delivered-id. The stream is cut at min(the smallest floor, the id that
// leaves maxlen entries): XTRIM MINID ~ floor LIMIT (length - maxlen)
// removes whole macro nodes that end before the floor, and stops before
// removing more than the excess over maxlen. Without groups the cut is
// MAXLEN ~ maxlen. Approximate cuts keep up to a macro node more, never
// less.
//
// It returns {length after, entries removed, groups}, each group {name,
// pending, undelivered, exact}: exact is 0 when undelivered is an upper
// bound (entries were deleted after the group's last-delivered-id, so Redis
// does not count its lag, and the budget ran out counting them).
var trimScript = redis.NewScript(`
local key = KEYS[1]
local maxlen = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])

-- Ids are compared as (ms, seq) pairs of 64-bit decimals without leading
-- zeros: by length, then as text (Lua numbers lose precision above 2^53).
local function ncmp(x, y)
  if #x ~= #y then
    if #x < #y then return -1 end
    return 1
  end
  if x == y then return 0 end
  if x < y then return -1 end
  return 1
end
local function cmp(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  local c = ncmp(am, bm)
  if c ~= 0 then return c end
  return ncmp(as, bs)
end

if redis.call('EXISTS', key) == 0 then return {0, 0, {}} end
local len = redis.call('XLEN', key)
local raw = redis.call('XINFO', 'GROUPS', key)
local first, last
if len > 0 then
  first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1][1]
  last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1][1]
end

local groups = {}
local floor
for i, g in ipairs(raw) do
  local f = {}
  for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
  local name, pending, ld, lag = f['name'], tonumber(f['pending']), f['last-delivered-id'], f['lag']

  -- Undelivered: the entries after the last delivered one.
  local u, exact = 0, 1
  if len == 0 or cmp(ld, last) >= 0 then
    u = 0
  elseif lag then
    -- Redis counts it when no entry after ld was deleted (XDEL); it also
    -- counts entries trimmed before they were delivered.
    u = math.min(lag, len)
  elseif budget > 0 then
    local n = #redis.call('XRANGE', key, '(' .. ld, '+', 'COUNT', budget)
    budget = budget - n
    if budget > 0 then u = n else u, exact = len, 0 end
  else
    -- (XRANGE with COUNT 0 answers nil.)
    u, exact = len, 0
  end

  local gFloor = ld
  if pending > 0 then
    local p = redis.call('XPENDING', key, name)[2]
    if p and cmp(p, ld) < 0 then gFloor = p end
  end
  if floor == nil or cmp(gFloor, floor) < 0 then floor = gFloor end
  groups[i] = {name, pending, u, exact}
end

local removed = 0
if len > maxlen then
  local excess = math.min(len - maxlen, limit)
  if floor == nil then
    removed = redis.call('XTRIM', key, 'MAXLEN', '~', maxlen, 'LIMIT', excess)
  elseif cmp(floor, first) > 0 then
    removed = redis.call('XTRIM', key, 'MINID', '~', floor, 'LIMIT', excess)
  end
end
return {redis.call('XLEN', key), removed, groups}
`)
