"""The Lua of presences (``channels.backends.presence``), run on the shard
of the presence's group: ``scripts.py`` makes the scripts of it, with the
functions that add to a group and discard from it (``group_add``,
``group_discard``), since a presence's changes change its group too.

Keys, under PREFIX (built by ``presence_layout.py``): ``P:<name>`` one hash
per presence, with the fields ``c:<reply channel>`` (``"<process> <key>"``),
``k:<key>`` (the key's connections), ``m:<key>`` (its metadata, encoded),
``p:<process>`` (the process's connections) and ``v`` (the version;
an empty presence keeps it for an hour);
``Pe`` a sorted set of ``"<name> <reply channel>"`` by expiry (ms, the
server's clock); ``Pp`` the set of processes holding members on the shard
and ``Pp:<process>`` the presences in which one does; ``Pd`` when the next
sweep is due. Names, channels and process tokens have no spaces.

Every script is one atomic change and answers what it changed, so of two
clients that remove the same member only one hears that it left.
"""

LIBRARY = r"""
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local prefix = ARGV[1]

-- A new presence's versions start at the clock in ms times 1000 (as a
-- string: Redis 6 formats a Lua number that long with an exponent).
local function bump(h)
  if redis.call('HEXISTS', h, 'v') == 0 then redis.call('HSET', h, 'v', now .. '000') end
  return redis.call('HINCRBY', h, 'v', 1)
end

-- Removes a connection; notes its key's connections and meta after it in
-- ``dropped`` (key -> {count, meta}).
local function drop(name, h, channel, dropped)
  local record = redis.call('HGET', h, 'c:' .. channel)
  if not record then return end
  local process, key = string.match(record, '^(%S+) (.*)$')
  redis.call('HDEL', h, 'c:' .. channel)
  redis.call('ZREM', prefix .. 'Pe', name .. ' ' .. channel)
  if redis.call('HINCRBY', h, 'p:' .. process, -1) <= 0 then
    redis.call('HDEL', h, 'p:' .. process)
    if process ~= '-' then
      redis.call('SREM', prefix .. 'Pp:' .. process, name)
      if redis.call('EXISTS', prefix .. 'Pp:' .. process) == 0 then
        redis.call('SREM', prefix .. 'Pp', process)
      end
    end
  end
  local left = redis.call('HINCRBY', h, 'k:' .. key, -1)
  local meta = redis.call('HGET', h, 'm:' .. key)
  if left <= 0 then redis.call('HDEL', h, 'k:' .. key, 'm:' .. key) end
  dropped[key] = {left, meta}
end

-- The reply of a change: {version, {kind, key, count, meta, ...}}.
local function changes(version, dropped, out)
  out = out or {}
  for key, entry in pairs(dropped) do
    out[#out + 1] = entry[1] > 0 and 'u' or 'l'
    out[#out + 1] = key
    out[#out + 1] = entry[1]
    out[#out + 1] = entry[2]
  end
  return {version, out}
end

-- A presence with only its version left goes after a while: its next
-- versions continue from it meanwhile, and then from the clock.
local function tidy(h)
  if redis.call('HLEN', h) <= 1 then redis.call('PEXPIRE', h, 3600000) end
end

local function members(h)
  local fields = redis.call('HGETALL', h)
  local counts, metas, out = {}, {}, {}
  for i = 1, #fields, 2 do
    local kind, rest = string.sub(fields[i], 1, 2), string.sub(fields[i], 3)
    if kind == 'k:' then counts[rest] = fields[i + 1]
    elseif kind == 'm:' then metas[rest] = fields[i + 1] end
  end
  for key, count in pairs(counts) do
    out[#out + 1] = key
    out[#out + 1] = tonumber(count)
    out[#out + 1] = metas[key]
  end
  return out
end
"""

# ARGV: prefix, name, reply channel, process, key, meta, expiry (ms),
# with state (1 or 0), then the group's key, its version's key, the
# member's expiry there, now and a new version (the client's clock, as for
# groups): the connection joins (or renews) the group too. Returns {new (1
# or 0), version, changes, state}: a renewal of the same member is not
# new, and changes nothing unless its metadata changed; the state ({key,
# count, meta, ...}) is given for a new member if asked.
JOIN = r"""
local name, channel, process, key, meta = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
group_add(ARGV[9], ARGV[10], channel, ARGV[11], ARGV[12], ARGV[13])
local h = prefix .. 'P:' .. name
local record = process .. ' ' .. key
local old = redis.call('HGET', h, 'c:' .. channel)
local expiry = {now + tonumber(ARGV[7]), name .. ' ' .. channel}
if old == record then
  redis.call('ZADD', prefix .. 'Pe', unpack(expiry))
  if redis.call('HGET', h, 'm:' .. key) == meta then return {0, 0, {}, {}} end
  redis.call('HSET', h, 'm:' .. key, meta)
  local count = tonumber(redis.call('HGET', h, 'k:' .. key))
  return {0, bump(h), {'u', key, count, meta}, {}}
end
local dropped = {}
if old then drop(name, h, channel, dropped) end
redis.call('ZADD', prefix .. 'Pe', unpack(expiry))
redis.call('HSET', h, 'c:' .. channel, record, 'm:' .. key, meta)
redis.call('PERSIST', h)
redis.call('HINCRBY', h, 'p:' .. process, 1)
if process ~= '-' then
  redis.call('SADD', prefix .. 'Pp', process)
  redis.call('SADD', prefix .. 'Pp:' .. process, name)
end
local count = redis.call('HINCRBY', h, 'k:' .. key, 1)
local reply = changes(bump(h), dropped, {count == 1 and 'j' or 'u', key, count, meta})
return {1, reply[1], reply[2], ARGV[8] == '1' and members(h) or {}}
"""

# ARGV: prefix, name, reply channel, then the group's key, its version's
# key and a new version: the connection leaves the group too. Returns
# {version, changes}; {0, {}} if it was not a member.
LEAVE = r"""
local name = ARGV[2]
local h = prefix .. 'P:' .. name
group_discard(ARGV[4], ARGV[5], ARGV[3], ARGV[6])
local dropped = {}
drop(name, h, ARGV[3], dropped)
if next(dropped) == nil then return {0, {}} end
local reply = changes(bump(h), dropped)
tidy(h)
return reply
"""

# ARGV: prefix, name. Returns {version, state}.
MEMBERS = r"""
local h = prefix .. 'P:' .. ARGV[2]
return {tonumber(redis.call('HGET', h, 'v') or '0'), members(h)}
"""

# ARGV: prefix, the heartbeat records' key prefix of the holders' kind, the
# heartbeats' "since" key, TTL (ms), interval (ms), the prefixes of
# groups' keys and of their versions' keys, a new version. Unless a sweep is not
# due yet: removes every member of a process without a live record (once
# the shard has held heartbeats for a whole TTL), and every expired member
# (up to a thousand a call). Returns {ms until the next sweep is due,
# name, version, changes, ...}. The next is due at the earliest of: an
# interval from now, the expiry of a holding process's record, the expiry
# of a member, the end of the shard's first TTL of heartbeats. The members
# removed leave their groups too.
SWEEP = r"""
local beats, ttl, interval = ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5])
local function sweep(name, channel, dropped)
  drop(name, prefix .. 'P:' .. name, channel, dropped)
  group_discard(ARGV[6] .. name, ARGV[7] .. name, channel, ARGV[8])
end
local due = tonumber(redis.call('GET', prefix .. 'Pd') or '0')
if now < due then return {due - now} end
due = now + interval
local swept, order = {}, {}
local function dropped_in(name)
  if not swept[name] then
    swept[name] = {}
    order[#order + 1] = name
  end
  return swept[name]
end
redis.call('SET', ARGV[3], now, 'NX')
local covered = now - tonumber(redis.call('GET', ARGV[3]))
if covered < ttl then
  due = math.min(due, now + ttl - covered)
else
  for _, process in ipairs(redis.call('SMEMBERS', prefix .. 'Pp')) do
    local left = redis.call('PTTL', beats .. process)
    if left > 0 then
      due = math.min(due, now + left)
    else
      for _, name in ipairs(redis.call('SMEMBERS', prefix .. 'Pp:' .. process)) do
        local h = prefix .. 'P:' .. name
        local fields = redis.call('HGETALL', h)
        local mark = process .. ' '
        for i = 1, #fields, 2 do
          if string.sub(fields[i], 1, 2) == 'c:'
              and string.sub(fields[i + 1], 1, #mark) == mark then
            sweep(name, string.sub(fields[i], 3), dropped_in(name))
          end
        end
      end
      redis.call('DEL', prefix .. 'Pp:' .. process)
      redis.call('SREM', prefix .. 'Pp', process)
    end
  end
end
local expired = redis.call('ZRANGEBYSCORE', prefix .. 'Pe', '-inf', now, 'LIMIT', 0, 1000)
for _, entry in ipairs(expired) do
  local name, channel = string.match(entry, '^(%S+) (%S+)$')
  sweep(name, channel, dropped_in(name))
  redis.call('ZREM', prefix .. 'Pe', entry)
end
if #expired == 1000 then due = now end
local first = redis.call('ZRANGE', prefix .. 'Pe', 0, 0, 'WITHSCORES')
if first[2] then due = math.min(due, tonumber(first[2])) end
redis.call('SET', prefix .. 'Pd', due, 'PX', interval + 1)
local out = {due - now}
for _, name in ipairs(order) do
  local h = prefix .. 'P:' .. name
  local reply = changes(bump(h), swept[name])
  tidy(h)
  out[#out + 1] = name
  out[#out + 1] = reply[1]
  out[#out + 1] = reply[2]
end
return out
"""
