"""The Lua scripts: every write of the store is one of these, atomic on the server.

Conventions shared by every script (the PRELUDE):

* ``KEYS[1]`` is the queue's key prefix, ``<prefix>:{<queue>}:``: every key
  of one queue carries the queue name as its hash tag, so one script
  touches one cluster slot. ``KEYS[2]`` and ``KEYS[3]``, where given, are the
  store-wide id counter and queue registry.
* ``ARGV[1]`` is the time: empty for the server's ``TIME``, or an injected
  test clock's value; ``ARGV[2]`` the queue's wake-up channel. Script
  arguments start at ``ARGV[3]``.
* Times are IEEE doubles written with ``%.17g``, so they round-trip exactly
  (Lua's own number-to-string keeps only 14 digits).
* Optional strings travel as ``''`` (none) or ``'='`` followed by the value.
* A message is a hash ``m:<id>`` (ids zero-padded to 16 digits, so that
  members with equal scores sort by id), listed in ``all`` (score id), in
  ``p:<priority>`` while queued or inflight (score ``available_at``: the
  delay end or the lease end), in ``inflight`` while leased (score lease
  end) and in ``dead`` while dead (score id). ``prios`` holds the
  priorities that have messages (score ``-priority``), ``keys`` the live
  dedupe keys, ``workers`` the heartbeats, ``finished`` the running totals
  of acked and dead-lettered messages (fields ``acked`` and ``dead``).
"""

from __future__ import annotations

# Fields of a message hash, in the order every script returns them (after
# the member): payload, stored state, priority, attempts, created_at,
# available_at, leased_by, receipt, error type / message / traceback / time,
# failed_at, dedupe key.
FIELDS = ("pl", "st", "pr", "at", "ca", "av", "by", "rc", "et", "em", "etb", "eat", "fa", "dk")

PRELUDE = """
-- Redis before 5 replicates scripts verbatim and refuses TIME before a
-- write unless told to replicate the effects instead (later: the default).
if redis.replicate_commands and redis.REDIS_VERSION_NUM == nil then redis.replicate_commands() end
local P = KEYS[1]
local NOW
if ARGV[1] ~= '' then
  NOW = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.17g', x) end
local FNOW = fmt(NOW)
local function opt(s) if s == '' then return false end return string.sub(s, 2) end
local FIELDS = {'pl','st','pr','at','ca','av','by','rc','et','em','etb','eat','fa','dk'}
local function rec(m)
  return {m, unpack(redis.call('HMGET', P .. 'm:' .. m, unpack(FIELDS)))}
end
local function pset(pr) return P .. 'p:' .. pr end
local function unlist_prio(pr)
  if redis.call('ZCARD', pset(pr)) == 0 then redis.call('ZREM', P .. 'prios', pr) end
end
local function list_prio(pr, av, m)
  redis.call('ZADD', pset(pr), fmt(av), m)
  redis.call('ZADD', P .. 'prios', -tonumber(pr), pr)
end
local function derived(st, av)
  if st == '2' then return 'dead' end
  if tonumber(av) > NOW then
    if st == '1' then return 'inflight' end
    return 'delayed'
  end
  return 'ready'
end
-- The fence: the message is inflight under this receipt and its lease has
-- not ended (a lease is held while NOW < leased_until, strictly).
local function fenced(m, receipt)
  local k = P .. 'm:' .. m
  local v = redis.call('HMGET', k, 'st', 'rc', 'av')
  if v[1] ~= '1' or v[2] ~= receipt or tonumber(v[3]) <= NOW then return false end
  return k
end
-- An error given as (type, message, traceback, at); type '' keeps the old one.
local function set_error(k, et, em, etb, eat)
  if et == '' then return end
  redis.call('HSET', k, 'et', string.sub(et, 2), 'em', string.sub(em, 2))
  local tb = opt(etb)
  if tb then redis.call('HSET', k, 'etb', tb) else redis.call('HDEL', k, 'etb') end
  local at = opt(eat)
  if at then redis.call('HSET', k, 'eat', at) else redis.call('HDEL', k, 'eat') end
end
local function forget(m, k)
  local v = redis.call('HMGET', k, 'pr', 'dk', 'st')
  redis.call('DEL', k)
  redis.call('ZREM', P .. 'all', m)
  if v[3] == '2' then
    redis.call('ZREM', P .. 'dead', m)
  else
    redis.call('ZREM', pset(v[1]), m)
    unlist_prio(v[1])
    redis.call('ZREM', P .. 'inflight', m)
  end
  if v[2] and redis.call('HGET', P .. 'keys', v[2]) == m then
    redis.call('HDEL', P .. 'keys', v[2])
  end
end
-- Running totals of finished messages (finished_counts): 'acked' and 'dead'
-- in the queue's 'finished' hash, never decreased.
local function tally(field) redis.call('HINCRBY', P .. 'finished', field, 1) end
local function ack(m, receipt)
  local k = fenced(m, receipt)
  if not k then return false end
  forget(m, k)
  tally('acked')
  return true
end
local function release(m, receipt, delay, et, em, etb, eat)
  local k = fenced(m, receipt)
  if not k then return false end
  local av = NOW + tonumber(delay)
  local pr = redis.call('HGET', k, 'pr')
  redis.call('HSET', k, 'st', '0', 'av', fmt(av))
  redis.call('HDEL', k, 'by', 'rc')
  set_error(k, et, em, etb, eat)
  redis.call('ZADD', pset(pr), fmt(av), m)
  redis.call('ZREM', P .. 'inflight', m)
  return true
end
local function dead_letter(m, receipt, et, em, etb, eat)
  local k = fenced(m, receipt)
  if not k then return false end
  local pr = redis.call('HGET', k, 'pr')
  redis.call('HSET', k, 'st', '2', 'av', FNOW, 'fa', FNOW)
  redis.call('HDEL', k, 'by', 'rc')
  set_error(k, et, em, etb, eat)
  redis.call('ZREM', pset(pr), m)
  unlist_prio(pr)
  redis.call('ZREM', P .. 'inflight', m)
  redis.call('ZADD', P .. 'dead', tonumber(m), m)
  tally('dead')
  return true
end
-- Lease up to limit messages in delivery order (priority, available_at,
-- id); an expired lease on its last attempt is dead-lettered instead and
-- does not count toward limit. Receipts come from the caller, from ARGV[first].
local function claim(worker, limit, lease, maxa, etype, template, first)
  local leased, dead = {}, {}
  local funtil = fmt(NOW + lease)
  local n = 0
  local prios = redis.call('ZRANGE', P .. 'prios', 0, -1)
  for _, pr in ipairs(prios) do
    if n >= limit then break end
    local zk = pset(pr)
    while n < limit do
      local due = redis.call('ZRANGEBYSCORE', zk, '-inf', FNOW, 'LIMIT', 0, limit - n)
      if #due == 0 then break end
      for _, m in ipairs(due) do
        local k = P .. 'm:' .. m
        local v = redis.call('HMGET', k, 'st', 'at')
        local att = tonumber(v[2])
        if v[1] == '1' and maxa and att >= maxa then
          redis.call('HSET', k, 'st', '2', 'av', FNOW, 'fa', FNOW, 'et', etype,
            'em', string.format(template, att), 'eat', FNOW)
          redis.call('HDEL', k, 'by', 'rc', 'etb')
          redis.call('ZREM', zk, m)
          redis.call('ZREM', P .. 'inflight', m)
          redis.call('ZADD', P .. 'dead', tonumber(m), m)
          tally('dead')
          dead[#dead + 1] = rec(m)
        else
          n = n + 1
          redis.call('HSET', k, 'st', '1', 'at', string.format('%d', att + 1), 'av', funtil,
            'by', worker, 'rc', ARGV[first + n - 1])
          redis.call('ZADD', zk, funtil, m)
          redis.call('ZADD', P .. 'inflight', funtil, m)
          local r = rec(m)
          if v[1] == '1' then r[#r + 1] = 1 else r[#r + 1] = 0 end
          leased[#leased + 1] = r
        end
      end
    end
    if redis.call('ZCARD', zk) == 0 then redis.call('ZREM', P .. 'prios', pr) end
  end
  return {leased, dead}
end
local function maybe(s) if s == '' then return false end return tonumber(s) end
"""

# KEYS: prefix, id counter, queue registry. ARGV[3]: the queue's name; then
# (payload, delay, priority, dedupe key) per message. Returns the time and,
# per message, its member (added) or its existing record (a live dedupe key).
ENQUEUE = (
    PRELUDE
    + """
local out = {}
local added = false
local listed = {}
for i = 4, #ARGV, 4 do
  local key = opt(ARGV[i + 3])
  local existing = key and redis.call('HGET', P .. 'keys', key)
  if existing then
    out[#out + 1] = rec(existing)
  else
    local id = redis.call('INCR', KEYS[2])
    local m = string.format('%016d', id)
    local av = NOW + tonumber(ARGV[i + 1])
    local pr = ARGV[i + 2]
    redis.call('HSET', P .. 'm:' .. m, 'pl', ARGV[i], 'st', '0', 'pr', pr, 'at', '0',
      'ca', FNOW, 'av', fmt(av))
    if key then
      redis.call('HSET', P .. 'm:' .. m, 'dk', key)
      redis.call('HSET', P .. 'keys', key, m)
    end
    redis.call('ZADD', pset(pr), fmt(av), m)
    if not listed[pr] then
      redis.call('ZADD', P .. 'prios', -tonumber(pr), pr)
      listed[pr] = true
    end
    redis.call('ZADD', P .. 'all', id, m)
    out[#out + 1] = m
    added = true
  end
end
if added then
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('PUBLISH', ARGV[2], '1')
end
return {FNOW, out}
"""
)

# ARGV[3..]: worker, limit, lease seconds, max attempts ('' none), the
# exhausted error's type and message template, then limit receipts.
CLAIM = (
    PRELUDE
    + """
local result = claim(ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), maybe(ARGV[6]),
  ARGV[7], ARGV[8], 9)
return {FNOW, result[1], result[2]}
"""
)

# ARGV[3..]: (member, receipt) per lease. Returns the 1-based positions of the stale ones.
ACK = (
    PRELUDE
    + """
local stale = {}
local j = 0
for i = 3, #ARGV, 2 do
  j = j + 1
  if not ack(ARGV[i], ARGV[i + 1]) then stale[#stale + 1] = j end
end
return stale
"""
)

# ARGV[3..]: member, receipt, delay, error type, message, traceback, time.
RELEASE = (
    PRELUDE
    + """
if release(ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]) then
  redis.call('PUBLISH', ARGV[2], '1')
  return 1
end
return 0
"""
)

# ARGV[3..]: member, receipt, error type, message, traceback, time.
DEAD_LETTER = (
    PRELUDE
    + """
if dead_letter(ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]) then return 1 end
return 0
"""
)

# ARGV[3..]: member, receipt, seconds. Returns the new lease end, or nil when stale.
EXTEND = (
    PRELUDE
    + """
local k = fenced(ARGV[3], ARGV[4])
if not k then return false end
local av = fmt(NOW + tonumber(ARGV[5]))
redis.call('HSET', k, 'av', av)
redis.call('ZADD', pset(redis.call('HGET', k, 'pr')), av, ARGV[3])
redis.call('ZADD', P .. 'inflight', av, ARGV[3])
return av
"""
)

# ARGV[3..]: worker, limit, lease, max attempts, exhausted type, template,
# the number of settlements, then per settlement (action a/r/d, member,
# receipt, delay, error type, message, traceback, time), then the receipts.
# Returns the time, the stale positions and, if none was stale, the claim.
SETTLE_AND_CLAIM = (
    PRELUDE
    + """
local count = tonumber(ARGV[9])
local stale = {}
local released = false
for j = 1, count do
  local i = 10 + (j - 1) * 8
  local action, m, receipt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local done
  if action == 'a' then
    done = ack(m, receipt)
  elseif action == 'r' then
    done = release(m, receipt, ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7])
    released = released or done
  else
    done = dead_letter(m, receipt, ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7])
  end
  if not done then stale[#stale + 1] = j end
end
if released then redis.call('PUBLISH', ARGV[2], '1') end
if #stale > 0 then return {FNOW, stale, {}, {}} end
local result = claim(ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), maybe(ARGV[6]),
  ARGV[7], ARGV[8], 10 + count * 8)
return {FNOW, stale, result[1], result[2]}
"""
)

# ARGV[3..]: delay, then the members chosen. Moves those still dead; returns them.
REQUEUE = (
    PRELUDE
    + """
local moved = {}
local av = NOW + tonumber(ARGV[3])
for i = 4, #ARGV do
  local m = ARGV[i]
  local k = P .. 'm:' .. m
  if redis.call('HGET', k, 'st') == '2' then
    redis.call('HSET', k, 'st', '0', 'at', '0', 'av', fmt(av))
    redis.call('HDEL', k, 'fa')
    redis.call('ZREM', P .. 'dead', m)
    list_prio(redis.call('HGET', k, 'pr'), av, m)
    moved[#moved + 1] = m
  end
end
if #moved > 0 then redis.call('PUBLISH', ARGV[2], '1') end
return moved
"""
)

# ARGV[3..]: the state required ('' any), then the members chosen. Deletes
# those still in that state; returns how many.
PURGE = (
    PRELUDE
    + """
local n = 0
for i = 4, #ARGV do
  local m = ARGV[i]
  local k = P .. 'm:' .. m
  local v = redis.call('HMGET', k, 'st', 'av')
  if v[1] and (ARGV[3] == '' or derived(v[1], v[2]) == ARGV[3]) then
    forget(m, k)
    n = n + 1
  end
end
return n
"""
)

# Purge without a filter, a slice at a time so that no script holds the
# server long. ARGV[3..]: the state required ('' any), the set to walk
# ('all' or 'dead'), the id after which to start, how many to look at, '1'
# for a dry run. Returns how many matched, how many were looked at, and the
# last id looked at.
PURGE_SLICE = (
    PRELUDE
    + """
local n = 0
local ms = redis.call('ZRANGEBYSCORE', P .. ARGV[4], '(' .. ARGV[5], '+inf', 'LIMIT', 0, ARGV[6])
for _, m in ipairs(ms) do
  local k = P .. 'm:' .. m
  local v = redis.call('HMGET', k, 'st', 'av')
  if v[1] and (ARGV[3] == '' or derived(v[1], v[2]) == ARGV[3]) then
    if ARGV[7] ~= '1' then forget(m, k) end
    n = n + 1
  end
end
local last = '0'
if #ms > 0 then last = string.format('%d', tonumber(ms[#ms])) end
return {n, #ms, last}
"""
)

# ARGV[3] 'ids' then members, or 'page', the set ('all' or 'dead'), the id
# after which to start, how many, and 'lite' to leave the payloads out
# (selecting for purge or requeue). Returns the time and the records.
READ = (
    PRELUDE
    + """
local out = {}
if ARGV[3] == 'ids' then
  for i = 4, #ARGV do
    if redis.call('EXISTS', P .. 'm:' .. ARGV[i]) == 1 then out[#out + 1] = rec(ARGV[i]) end
  end
else
  local ms = redis.call('ZRANGEBYSCORE', P .. ARGV[4], '(' .. ARGV[5], '+inf', 'LIMIT', 0, ARGV[6])
  for _, m in ipairs(ms) do
    local r = rec(m)
    if ARGV[7] == 'lite' then r[2] = '' end
    out[#out + 1] = r
  end
end
return {FNOW, out}
"""
)

# Counts at one instant: time, ready, live (queued + inflight), inflight now,
# dead, the oldest ready available_at, worker/count pairs, heartbeats.
STATS = (
    PRELUDE
    + """
local ready, live, oldest = 0, 0, false
for _, pr in ipairs(redis.call('ZRANGE', P .. 'prios', 0, -1)) do
  local zk = pset(pr)
  live = live + redis.call('ZCARD', zk)
  ready = ready + redis.call('ZCOUNT', zk, '-inf', FNOW)
  local first = redis.call('ZRANGE', zk, 0, 0, 'WITHSCORES')
  if first[2] and tonumber(first[2]) <= NOW then
    if not oldest or tonumber(first[2]) < tonumber(oldest) then oldest = first[2] end
  end
end
local holders = {}
local inflight = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'inflight', '(' .. FNOW, '+inf')) do
  inflight = inflight + 1
  local by = redis.call('HGET', P .. 'm:' .. m, 'by') or ''
  holders[by] = (holders[by] or 0) + 1
end
local pairs_out = {}
for by, n in pairs(holders) do
  pairs_out[#pairs_out + 1] = by
  pairs_out[#pairs_out + 1] = n
end
return {FNOW, ready, live, inflight, redis.call('ZCARD', P .. 'dead'), oldest, pairs_out,
  redis.call('HGETALL', P .. 'workers')}
"""
)

# The time and the earliest available_at among queued and inflight messages.
NEXT_DUE = (
    PRELUDE
    + """
local due = false
for _, pr in ipairs(redis.call('ZRANGE', P .. 'prios', 0, -1)) do
  local first = redis.call('ZRANGE', pset(pr), 0, 0, 'WITHSCORES')
  if first[2] and (not due or tonumber(first[2]) < tonumber(due)) then due = first[2] end
end
return {FNOW, due}
"""
)

# ARGV[3..]: worker, '1' when it stopped, seconds after which silent workers are forgotten.
HEARTBEAT = (
    PRELUDE
    + """
local wk = P .. 'workers'
if ARGV[4] == '1' then
  redis.call('HDEL', wk, ARGV[3])
  return 0
end
redis.call('HSET', wk, ARGV[3], FNOW)
local all = redis.call('HGETALL', wk)
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) < NOW - tonumber(ARGV[5]) then redis.call('HDEL', wk, all[i]) end
end
return 0
"""
)

# KEYS: prefix, id counter, registry. ARGV[3]: the queue; then 15 values per
# record: id, payload, stored state, priority, attempts, created_at,
# available_at, leased_by, receipt, error type, message, traceback, time,
# failed_at, dedupe key (optional ones as ''/'='). All or none: returns
# {0, problem} on the first conflict and changes nothing.
IMPORT = (
    PRELUDE
    + """
for i = 4, #ARGV, 15 do
  local m = string.format('%016d', tonumber(ARGV[i]))
  if redis.call('EXISTS', P .. 'm:' .. m) == 1 then
    return {0, 'message id ' .. ARGV[i] .. ' exists'}
  end
  local key = opt(ARGV[i + 14])
  if key and redis.call('HEXISTS', P .. 'keys', key) == 1 then
    return {0, 'dedupe key ' .. key .. ' is live'}
  end
end
local top = tonumber(redis.call('GET', KEYS[2]) or '0')
for i = 4, #ARGV, 15 do
  local id = tonumber(ARGV[i])
  local m = string.format('%016d', id)
  local k = P .. 'm:' .. m
  local st, pr, av = ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 6])
  redis.call('HSET', k, 'pl', ARGV[i + 1], 'st', st, 'pr', pr, 'at', ARGV[i + 4],
    'ca', ARGV[i + 5], 'av', ARGV[i + 6])
  local names = {'by', 'rc', 'et', 'em', 'etb', 'eat', 'fa', 'dk'}
  for j, name in ipairs(names) do
    local value = opt(ARGV[i + 6 + j])
    if value then redis.call('HSET', k, name, value) end
  end
  local key = opt(ARGV[i + 14])
  if key then redis.call('HSET', P .. 'keys', key, m) end
  redis.call('ZADD', P .. 'all', id, m)
  if st == '2' then
    redis.call('ZADD', P .. 'dead', id, m)
  else
    list_prio(pr, av, m)
    if st == '1' then redis.call('ZADD', P .. 'inflight', ARGV[i + 6], m) end
  end
  if id > top then top = id end
end
redis.call('SET', KEYS[2], string.format('%d', top))
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PUBLISH', ARGV[2], '1')
return {1, ''}
"""
)
