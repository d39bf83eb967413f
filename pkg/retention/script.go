package retention

import "github.com/redis/go-redis/v9"

// trimScript trims one stream and reports its consumer groups, atomically.
//
// KEYS[1] the stream. ARGV[1] maxlen, ARGV[2] the read budget: how many
// entries the script may read to count, and again to cut (XRANGE replies
// carry whole entries: the budget bounds the time Redis is busy).
//
// Each group needs the entries from its floor on: the oldest entry it has
// pending (delivered, not acknowledged), or, with nothing pending, those
// after its last-delivered-id. The stream is cut at min(floor over groups,
// the id that leaves maxlen entries); without groups, at maxlen. Cutting is
// approximate (whole macro nodes, "~"), so it only ever removes less.
//
// Where the cut is depends on counts Redis keeps for free (a group's lag)
// or counts the script must read (entries between a group's oldest pending
// and its last delivered entry, or an undelivered range Redis cannot
// count). When the budget does not settle whether the floor lies before
// the maxlen cut, the script removes (exactly) only entries it has read
// and found before the floor, with a budget of its own, so each call moves
// the cut forward.
//
// It returns {length after, entries removed, how, groups}, how being
// "none", "maxlen", "minid" (cut at the floor), "partial" (cut before the
// floor, budget spent) or "held" (the oldest entry is needed), and each group
// {name, pending, undelivered, exact}: exact is 0 when undelivered is an
// upper bound (the budget ran out counting it).
var trimScript = redis.NewScript(`
local key = KEYS[1]
local maxlen = tonumber(ARGV[1])
local left = tonumber(ARGV[2])

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
-- count returns how many entries XRANGE start stop holds, reading at most
-- what is left of the budget, and whether it counted them all.
local function count(start, stop)
  local want = left
  if want <= 0 then return 0, false end
  local n = #redis.call('XRANGE', key, start, stop, 'COUNT', want)
  left = left - n
  return n, n < want
end

if redis.call('EXISTS', key) == 0 then return {0, 0, 'none', {}} end
local len = redis.call('XLEN', key)
local raw = redis.call('XINFO', 'GROUPS', key)
local first, last
if len > 0 then
  first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1][1]
  last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1][1]
end
local over = len > maxlen

local groups = {}
local floor
-- need: entries from a group's floor on that it still needs, as a lower and
-- an upper bound over groups (the largest of each).
local needLo, needHi = 0, 0
for i, g in ipairs(raw) do
  local f = {}
  for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
  local name, pending, ld, lag = f['name'], tonumber(f['pending']), f['last-delivered-id'], f['lag']

  -- Undelivered: the entries after the last delivered one.
  local u, uLo, exact = 0, 0, 1
  if len == 0 or cmp(ld, last) >= 0 then
    u = 0
  elseif cmp(ld, first) < 0 then
    u = len
  elseif lag then
    -- Redis counts it when no entry after ld was deleted (XDEL).
    u = math.min(lag, len)
  else
    local n, done = count('(' .. ld, '+')
    if done then u = n else u, uLo, exact = len, n, 0 end
  end
  if exact == 1 then uLo = u end

  local gFloor, lo, hi = ld, uLo, u
  if pending > 0 then
    local p = redis.call('XPENDING', key, name)[2]
    if p and cmp(p, ld) < 0 then
      gFloor = p
      if over then
        -- Entries between the oldest pending one and the last delivered one
        -- stay while it is pending, acknowledged or not.
        local n, done = count(p, ld)
        lo = lo + n
        if done then hi = hi + n else hi = len end
      else
        hi = len
      end
    end
  end
  if floor == nil or cmp(gFloor, floor) < 0 then floor = gFloor end
  needLo = math.max(needLo, lo)
  needHi = math.max(needHi, math.min(hi, len))
  groups[i] = {name, pending, u, exact}
end

local removed, how = 0, 'none'
if over then
  if #raw == 0 then
    removed, how = redis.call('XTRIM', key, 'MAXLEN', '~', maxlen), 'maxlen'
  elseif cmp(floor, first) <= 0 then
    how = 'held'
  elseif needLo > maxlen then
    -- Some group needs more than maxlen entries: its floor is before the
    -- maxlen cut, and so is the smallest floor.
    removed, how = redis.call('XTRIM', key, 'MINID', '~', floor), 'minid'
  elseif needHi <= maxlen then
    -- Every group needs at most maxlen entries: the maxlen cut spares them.
    removed, how = redis.call('XTRIM', key, 'MAXLEN', '~', maxlen), 'maxlen'
  else
    -- Unsettled: read from the head what lies before the floor, up to the
    -- excess over maxlen.
    -- This read has a budget of its own, so that each pass moves the cut.
    local excess = len - maxlen
    local want = math.min(excess, tonumber(ARGV[2]))
    local r = redis.call('XRANGE', key, '-', '(' .. floor, 'COUNT', want)
    if #r == excess then
      removed, how = redis.call('XTRIM', key, 'MAXLEN', '~', maxlen), 'maxlen'
    elseif #r < want then
      removed, how = redis.call('XTRIM', key, 'MINID', '~', floor), 'minid'
    else
      -- Exactly: an approximate cut this short could remove nothing.
      removed, how = redis.call('XTRIM', key, 'MINID', r[#r][1]), 'partial'
    end
  end
end
return {redis.call('XLEN', key), removed, how, groups}
`)
