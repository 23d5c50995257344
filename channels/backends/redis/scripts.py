"""The Lua scripts of the Redis backend.

Each runs atomically on one shard, so a capacity check and the push it
allows, or a pop and the bookkeeping that goes with it, cannot interleave
with another client's. They take key names in ARGV as well as KEYS: the
backend shards over independent servers itself and does not run on Redis
Cluster.

A message is stored as one string, ``b"<expires ms> <channel> <data>"``: the
expiry lets any reader drop it unread, and the channel tells an inbox's
reader (rule 1 of sharding.py) which response channel it was sent to.

A group message is stored once per inbox, not once per member, as
``b"<expires ms> * <member,member,...> <data>"``; the inbox's reader hands
it out to each member. Per-member work in Lua costs about a microsecond a
string operation, which for a thousand members is the whole time budget.

An inbox has a hash beside it (its "counts") of how many messages each of
its channels holds, and under the field ``*`` how many group messages it
holds. A response channel is full when its own messages plus the inbox's
group messages reach its capacity: a group message counts against every
channel of the inbox, a conservative count that needs no per-member work
while the inbox's reader keeps up.
"""

import hashlib

from channels.backends.redis import group_scripts, presence_scripts

# Shared by every script: parsing a stored message, counting an inbox, and
# finding how many live messages a list holds once the expired are gone.
_LIBRARY = r"""
local function expires(e) return tonumber(string.match(e, '^%d+')) end
local function channel_of(e) return string.match(e, '^%d+ (%S+)') end

local function uncount(counts, channel, n)
  if redis.call('HINCRBY', counts, channel, -n) <= 0 then
    redis.call('HDEL', counts, channel)
  end
end

-- Takes back what messages taken from an inbox counted: ``taken`` maps a
-- channel to how many of its messages went. A few bulk calls, not one per
-- channel: a broadcast puts a thousand channels in one batch.
local function uncount_all(counts, taken)
  local channels = {}
  for channel in pairs(taken) do channels[#channels + 1] = channel end
  local keep, drop = {}, {}
  for c = 1, #channels, 1000 do
    local upto = math.min(c + 999, #channels)
    local held = redis.call('HMGET', counts, unpack(channels, c, upto))
    for k = 1, #held do
      local channel = channels[c + k - 1]
      local left = tonumber(held[k] or '0') - taken[channel]
      if left > 0 then
        keep[#keep + 1] = channel
        keep[#keep + 1] = left
      else
        drop[#drop + 1] = channel
      end
    end
  end
  for c = 1, #keep, 1000 do
    redis.call('HSET', counts, unpack(keep, c, math.min(c + 999, #keep)))
  end
  for c = 1, #drop, 1000 do
    redis.call('HDEL', counts, unpack(drop, c, math.min(c + 999, #drop)))
  end
end

local function push_all(key, items)
  for i = 1, #items, 1000 do
    redis.call('RPUSH', key, unpack(items, i, math.min(i + 999, #items)))
  end
end

-- Pops expired messages off an inbox's head, so they stop counting.
local function trim_inbox(key, counts, now)
  while true do
    local head = redis.call('LINDEX', key, 0)
    if not head or expires(head) > now then return end
    redis.call('LPOP', key)
    uncount(counts, channel_of(head), 1)
  end
end

-- The number of live messages in a channel's own list, dropping expired
-- ones (also those behind a requeued message at the head).
local function live_length(key, now, ttl)
  while true do
    local head = redis.call('LINDEX', key, 0)
    if not head or expires(head) > now then break end
    redis.call('LPOP', key)
  end
  local items = redis.call('LRANGE', key, 0, -1)
  local live = {}
  for _, e in ipairs(items) do
    if expires(e) > now then live[#live + 1] = e end
  end
  if #live < #items then
    redis.call('DEL', key)
    push_all(key, live)
    if #live > 0 then redis.call('PEXPIRE', key, ttl) end
  end
  return #live
end

-- How many messages count against an inbox channel's capacity.
local function held(counts, channel)
  local n = redis.call('HMGET', counts, channel, '*')
  return tonumber(n[1] or '0') + tonumber(n[2] or '0')
end

-- Pushes one message unless its channel is full; 1 if sent, 0 if full.
local function send_one(key, counts, entry, channel, capacity, now, ttl)
  if counts == '' then
    if redis.call('LLEN', key) >= capacity and live_length(key, now, ttl) >= capacity then
      return 0
    end
    redis.call('RPUSH', key, entry)
    redis.call('PEXPIRE', key, ttl)
    return 1
  end
  if held(counts, channel) >= capacity then
    trim_inbox(key, counts, now)
    if held(counts, channel) >= capacity then return 0 end
  end
  redis.call('RPUSH', key, entry)
  redis.call('HINCRBY', counts, channel, 1)
  redis.call('PEXPIRE', key, ttl)
  redis.call('PEXPIRE', counts, ttl)
  return 1
end
"""

# KEYS: list, [counts]. ARGV: entry, channel, capacity, now, ttl.
SEND = _LIBRARY + r"""
return send_one(KEYS[1], KEYS[2] or '', ARGV[1], ARGV[2], tonumber(ARGV[3]),
                tonumber(ARGV[4]), ARGV[5])
"""

# ARGV: now, ttl, then per message: list, counts or '', entry, channel,
# capacity. Returns the (1-based) positions of messages whose channel was full.
# The messages for one channel's own list go in one push when it has room
# for them all, as it usually has: an interface server's batch is mostly
# for one busy channel, and each call from Lua costs Redis more than the
# push itself.
SEND_MANY = _LIBRARY + r"""
local now, ttl = tonumber(ARGV[1]), ARGV[2]
local full, lists, order = {}, {}, {}
for i = 3, #ARGV, 5 do
  if ARGV[i + 1] == '' then
    local key = ARGV[i]
    if not lists[key] then
      lists[key] = {}
      order[#order + 1] = key
    end
    table.insert(lists[key], i)
  elseif send_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]),
                  now, ttl) == 0 then
    full[#full + 1] = (i - 3) / 5 + 1
  end
end
for _, key in ipairs(order) do
  local at = lists[key]
  if #at > 1 and redis.call('LLEN', key) + #at <= tonumber(ARGV[at[1] + 4]) then
    local entries = {}
    for k, i in ipairs(at) do entries[k] = ARGV[i + 2] end
    push_all(key, entries)
    redis.call('PEXPIRE', key, ttl)
  else
    for _, i in ipairs(at) do
      if send_one(key, '', ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]), now, ttl) == 0 then
        full[#full + 1] = (i - 3) / 5 + 1
      end
    end
  end
end
table.sort(full)
return full
"""

# KEYS: list, [counts]. ARGV: entry, channel, ttl. Puts a message back at
# the head, whatever the capacity.
REQUEUE = r"""
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if KEYS[2] then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
"""

# Takes messages: ARGV: now, limit, first (0-based rotation, so no listed
# channel starves the others), settle counts and channel (a message that a
# blocking pop took from an inbox, or ''), then per source: list, counts or
# '', only. ``only`` non-empty takes just that channel's own messages from
# an inbox (its group messages are read through the process wildcard).
# Returns up to ``limit`` live messages as two strings, their lengths
# (comma-separated) and the messages end to end: redis-py parses two long
# strings much faster than a thousand short ones.
RECEIVE = _LIBRARY + r"""
local now, limit, first = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] ~= '' then uncount(ARGV[4], ARGV[5], 1) end
local sources = (#ARGV - 5) / 3
local out, lengths = {}, {}
local function take(e)
  out[#out + 1] = e
  lengths[#lengths + 1] = #e
end
for j = 0, sources - 1 do
  local base = 6 + ((first + j) % sources) * 3
  local key, counts, only = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  if only == '' then
    local taken = {}
    while #out < limit do
      local items = redis.call('LPOP', key, limit - #out)
      if not items then break end
      for _, e in ipairs(items) do
        if counts ~= '' then
          local channel = channel_of(e)
          taken[channel] = (taken[channel] or 0) + 1
        end
        if expires(e) > now then take(e) end
      end
    end
    if counts ~= '' then uncount_all(counts, taken) end
  else
    local start = 0
    while #out < limit do
      local items = redis.call('LRANGE', key, start, start + 199)
      if #items == 0 then break end
      for _, e in ipairs(items) do
        if channel_of(e) == only and expires(e) > now then
          redis.call('LREM', key, 1, e)
          uncount(counts, only, 1)
          take(e)
          if #out >= limit then break end
          start = start - 1
        end
      end
      start = start + 200
    end
  end
  if #out >= limit then break end
end
return {table.concat(lengths, ','), table.concat(out)}
"""

# Pauses or resumes an inbox channel. KEYS: counts. ARGV: channel, change
# (plus PAUSED to pause, minus to resume), ttl. A paused channel's count is
# raised far above any capacity, so that sends find it full at no cost of
# their own, and taking its waiting messages keeps it raised. The field
# ``<channel>#paused`` (``#`` is in no channel name) marks it paused, so that
# pausing is a state, not a count: a pause tried again after it took, or a
# resume of a running channel, changes nothing.
PAUSE = r"""
local marker = ARGV[1] .. '#paused'
local paused = redis.call('HEXISTS', KEYS[1], marker) == 1
if tonumber(ARGV[2]) > 0 then
  if not paused then
    redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
    redis.call('HSET', KEYS[1], marker, 1)
  end
elseif paused then
  if redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
  redis.call('HDEL', KEYS[1], marker)
end
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
"""

# Gives back messages that a blocking pop took but another shard's answer
# won: to the head, where they were. KEYS: list. ARGV: ttl, then the
# entries, last first (LPUSH puts each in front of the one before).
PUSH_BACK = r"""
redis.call('LPUSH', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
"""

# Group membership: group_scripts.py.
GROUP_ADD, GROUP_DISCARD, GROUP_MEMBERS, GROUP_LEAVE = (
    group_scripts.GROUP_ADD, group_scripts.GROUP_DISCARD, group_scripts.GROUP_MEMBERS,
    group_scripts.GROUP_LEAVE)

# The presences' scripts (presence_scripts.py), which add to and discard
# from their group too.
PRESENCE_JOIN, PRESENCE_LEAVE, PRESENCE_MEMBERS, PRESENCE_SWEEP = (
    group_scripts.PLAIN + presence_scripts.LIBRARY + body for body in (
        presence_scripts.JOIN, presence_scripts.LEAVE, presence_scripts.MEMBERS,
        presence_scripts.SWEEP))

# Pushes one group message to every member on this shard, skipping full
# ones. ARGV: now, ttl, expires, data; then, on the group's own shard, 'g',
# group, version key, known version, new version, prefix, group name ('' elsewhere): if the
# members changed since the known version, nothing is sent and the reply is
# that of GROUP_MEMBERS, for the caller to route them again; then per
# target: 'i', list, counts, capacity, members (an inbox and its members'
# names, comma-separated), or 'l', list, channel, capacity (a channel's own
# list).
GROUP_SEND = _LIBRARY + group_scripts.MEMBERS_LIBRARY + r"""
local now, ttl, head, data = tonumber(ARGV[1]), ARGV[2], ARGV[3] .. ' ', ' ' .. ARGV[4]
local i = 6
if ARGV[5] == 'g' then
  local changed = group_members(ARGV[6], ARGV[7], ARGV[10], ARGV[11], ARGV[1], ARGV[8],
                                ARGV[9])
  if changed then return changed end
  i = 12
end
while i <= #ARGV do
  local kind, key, third, capacity = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  if kind == 'l' then
    send_one(key, '', head .. third .. data, third, capacity, now, ttl)
    i = i + 4
  else
    local counts, members = third, ARGV[i + 4]
    local group = tonumber(redis.call('HGET', counts, '*') or '0')
    if group >= capacity then
      trim_inbox(key, counts, now)
      group = tonumber(redis.call('HGET', counts, '*') or '0')
    end
    if group >= capacity then
      members = ''
    elseif redis.call('HLEN', counts) > (group > 0 and 1 or 0) then
      -- Some members have messages of their own waiting: leave out the full.
      local names = {}
      for name in string.gmatch(members, '[^,]+') do names[#names + 1] = name end
      local kept = {}
      for c = 1, #names, 1000 do
        local upto = math.min(c + 999, #names)
        local own = redis.call('HMGET', counts, unpack(names, c, upto))
        for k = 1, #own do
          if tonumber(own[k] or '0') + group < capacity then kept[#kept + 1] = names[c + k - 1] end
        end
      end
      members = table.concat(kept, ',')
    end
    if members ~= '' then
      redis.call('RPUSH', key, head .. '* ' .. members .. data)
      redis.call('HINCRBY', counts, '*', 1)
      redis.call('PEXPIRE', key, ttl)
      redis.call('PEXPIRE', counts, ttl)
    end
    i = i + 5
  end
end
"""

# KEYS: lock. ARGV: token. Only the holder releases a lock.
UNLOCK = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Heartbeats carry the server's time (TIME), not the writer's: their ages
# are then measured on one clock, whatever the hosts' clocks say.
_NOW = r"""
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
"""

# KEYS: record, index, since. ARGV: id, record, ttl (ms), and for an
# interface process the prefix: its group members live as long as its
# record (group_scripts.RENEW). The index lives as long as the
# longest-lived record in it.
HEARTBEAT_SET = _NOW + group_scripts.RENEW + r"""
redis.call('SET', KEYS[3], now, 'NX')
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
"""

# KEYS: index, since. ARGV: the records' key prefix. Returns the ms since
# the shard began to hold heartbeats (from now, if it did not), then id,
# record and ms left of each live record; ids whose record expired leave
# the index.
HEARTBEATS = _NOW + r"""
local since = redis.call('GET', KEYS[2])
if since then
  since = tonumber(since)
else
  redis.call('SET', KEYS[2], now)
  since = now
end
local out = {now - since}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. id
  local record = redis.call('GET', key)
  if record then
    out[#out + 1] = id
    out[#out + 1] = record
    out[#out + 1] = redis.call('PTTL', key)
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: record, index. ARGV: id.
HEARTBEAT_CLEAR = r"""
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""


# name: (SHA1, source) of every script, for EVALSHA.
LOADED = {
    name: (hashlib.sha1(source.encode()).hexdigest(), source)
    for name, source in dict(globals()).items()
    if name.isupper() and not name.startswith("_") and isinstance(source, str)
}
