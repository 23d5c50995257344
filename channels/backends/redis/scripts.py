"""The Lua scripts of the Redis backend.

Each runs atomically on one shard, so a capacity check and the push it
allows, or a pop and the bookkeeping that goes with it, cannot interleave
with another client's. They take key names in ARGV as well as KEYS: the
backend shards over independent servers itself and does not run on Redis
Cluster.

A message is stored as one string, ``b"<expires ms> <channel> <data>"``: the
expiry lets any reader drop it unread, and the channel tells an inbox's
reader (rule 1 of sharding.py) which response channel it was sent to.
An inbox has a hash beside it (its "counts") of how many messages each of its
channels holds, which is what capacity checks read.
"""

import hashlib

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
  if tonumber(redis.call('HGET', counts, channel) or '0') >= capacity then
    trim_inbox(key, counts, now)
    if tonumber(redis.call('HGET', counts, channel) or '0') >= capacity then return 0 end
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
SEND_MANY = _LIBRARY + r"""
local now, ttl = tonumber(ARGV[1]), ARGV[2]
local full = {}
for i = 3, #ARGV, 5 do
  if send_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]),
              now, ttl) == 0 then
    full[#full + 1] = (i - 3) / 5 + 1
  end
end
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
# '', only. ``only`` non-empty takes just that channel's messages from an
# inbox. Returns up to ``limit`` live messages.
RECEIVE = _LIBRARY + r"""
local now, limit, first = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] ~= '' then uncount(ARGV[4], ARGV[5], 1) end
local sources = (#ARGV - 5) / 3
local out = {}
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
        if expires(e) > now then out[#out + 1] = e end
      end
    end
    for channel, n in pairs(taken) do uncount(counts, channel, n) end
  else
    local start = 0
    while #out < limit do
      local items = redis.call('LRANGE', key, start, start + 199)
      if #items == 0 then break end
      for _, e in ipairs(items) do
        if channel_of(e) == only and expires(e) > now then
          redis.call('LREM', key, 1, e)
          uncount(counts, only, 1)
          out[#out + 1] = e
          if #out >= limit then break end
          start = start - 1
        end
      end
      start = start + 200
    end
  end
  if #out >= limit then break end
end
return out
"""

# Settles a message that a blocking pop took from an inbox. KEYS: counts.
# ARGV: channel.
SETTLE = r"""
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
"""

# Gives back a message that a blocking pop took but another shard's
# answer won: to the head, where it was. KEYS: list. ARGV: entry, ttl.
PUSH_BACK = r"""
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS: group. ARGV: channel, expires, now. The group outlives its
# longest-lived member, and no longer.
GROUP_ADD = r"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
"""

# KEYS: group. ARGV: now. Drops expired members, returns the live ones.
GROUP_MEMBERS = r"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# Pushes one group message to every member on this shard, skipping full
# ones. The payload travels once; per member only the channel name does.
# ARGV: now, ttl, expires, data, then per target: 'i' (an inbox: list,
# counts, capacity, n, n channels) or 'l' (a channel's own list: list,
# channel, capacity).
GROUP_SEND = _LIBRARY + r"""
-- How many messages each of ARGV[first..last] holds; .full if any is full.
local function read_counts(counts, first, last, capacity)
  local held = {full = false}
  for c = first, last, 1000 do
    local values = redis.call('HMGET', counts, unpack(ARGV, c, math.min(c + 999, last)))
    for k = 1, #values do
      local n = tonumber(values[k] or '0')
      if n >= capacity then held.full = true end
      held[#held + 1] = n
    end
  end
  return held
end

local now, ttl, head, data = tonumber(ARGV[1]), ARGV[2], ARGV[3] .. ' ', ' ' .. ARGV[4]
local i = 5
while i <= #ARGV do
  if ARGV[i] == 'l' then
    send_one(ARGV[i + 1], '', head .. ARGV[i + 2] .. data, ARGV[i + 2], tonumber(ARGV[i + 3]),
             now, ttl)
    i = i + 4
  else
    local key, counts, capacity, n = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]),
                                     tonumber(ARGV[i + 4])
    local first, last = i + 5, i + 4 + n
    local held = read_counts(counts, first, last, capacity)
    if held.full then
      trim_inbox(key, counts, now)
      held = read_counts(counts, first, last, capacity)
    end
    local entries, updates = {}, {}
    for c = first, last do
      local count = held[c - first + 1]
      if count < capacity then
        entries[#entries + 1] = head .. ARGV[c] .. data
        updates[#updates + 1] = ARGV[c]
        updates[#updates + 1] = count + 1
      end
    end
    if #entries > 0 then
      push_all(key, entries)
      for u = 1, #updates, 1000 do
        redis.call('HSET', counts, unpack(updates, u, math.min(u + 999, #updates)))
      end
      redis.call('PEXPIRE', key, ttl)
      redis.call('PEXPIRE', counts, ttl)
    end
    i = last + 1
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


# name: (SHA1, source) of every script, for EVALSHA.
LOADED = {
    name: (hashlib.sha1(source.encode()).hexdigest(), source)
    for name, source in dict(globals()).items()
    if name.isupper() and not name.startswith("_") and isinstance(source, str)
}
