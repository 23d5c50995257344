"""The Lua of group membership (``channels.backends.membership``), run on
the group's shard; ``scripts.py`` makes the scripts of it.

Keys, under PREFIX: ``g:<group>`` the members that expire on their own (a
sorted set scored by expiry, ms) and ``v:<group>`` the group's version, as
before; the members bound to interface process ``<p>`` (a WebSocket's
reply channel, ``membership.bound_process``) in ``gm:<group>:<p>``, a
sorted set scored by their own expiry (``inf`` for none), and the set
``gp:<group>`` of the processes that have such a key. Per process, on
each shard: ``pg:<p>`` the groups on the shard where it has members, and
``pc:<p>`` a hash of each of its reply channels to the groups on the
shard that hold it (space-separated), or ``-`` for a closed socket's,
which ``pz:<p>`` (closed channel by when it may be forgotten, ms on the
server's clock) lists until then.

A bound member is added only while its process's heartbeat record
(``h:interface:<p>``, on every shard) lives, and its keys are given that
record's time to live. The process's heartbeat write renews them all, one
PEXPIRE per group it has members in (``RENEW``): so a process that stops
writing loses its members with its record, within HEARTBEAT_TTL, and an
idle socket costs nothing.
"""

# Keeps a key that exists for at least ``ms`` more.
_EXTEND = r"""
local function extend(key, ms)
  local left = redis.call('PTTL', key)
  if left >= 0 and left < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# The members' version changes whenever members come or go: a sender that
# knows the version need not fetch a thousand names again for each message.
# Drops a group's expired members (and the keys of processes whose members
# are gone); nil if the caller knows its version, else {version, the live
# members space-separated} (names have no spaces).
MEMBERS_LIBRARY = r"""
local function group_members(group, version_key, prefix, name, now, known, fresh)
  local changed = redis.call('ZREMRANGEBYSCORE', group, '-inf', now)
  local processes = prefix .. 'gp:' .. name
  local bound = {}
  for _, process in ipairs(redis.call('SMEMBERS', processes)) do
    local members = prefix .. 'gm:' .. name .. ':' .. process
    changed = changed + redis.call('ZREMRANGEBYSCORE', members, '-inf', now)
    if redis.call('EXISTS', members) == 0 then
      redis.call('SREM', processes, process)
      changed = changed + 1
    else
      bound[#bound + 1] = members
    end
  end
  if changed > 0 and redis.call('EXISTS', version_key) == 1 then
    redis.call('SET', version_key, fresh, 'KEEPTTL')
  end
  local version = redis.call('GET', version_key) or ''
  if version ~= '' and version == known then return nil end
  local out = redis.call('ZRANGE', group, 0, -1)
  -- A channel in both (a presence's member, bound too) is listed once.
  local plain = {}
  for _, member in ipairs(out) do plain[member] = true end
  for _, members in ipairs(bound) do
    for _, member in ipairs(redis.call('ZRANGE', members, 0, -1)) do
      if not plain[member] then out[#out + 1] = member end
    end
  end
  return {version, table.concat(out, ' ')}
end
"""

# KEYS: group, version. ARGV: now, known version, new version, prefix, name.
GROUP_MEMBERS = MEMBERS_LIBRARY + r"""
return group_members(KEYS[1], KEYS[2], ARGV[4], ARGV[5], ARGV[1], ARGV[2], ARGV[3])
  or {ARGV[2]}
"""

# Adding a member that expires on its own, and discarding it, as
# functions: the presence scripts (presence_scripts.py) change a group and
# its presence in one go. The keys outlive the longest-lived member, and
# no longer (the version lives as long as the bound members too).
PLAIN = _EXTEND + r"""
local function group_add(group, version, channel, expires, now, fresh)
  local changed = redis.call('ZREMRANGEBYSCORE', group, '-inf', now)
  changed = changed + redis.call('ZADD', group, expires, channel)
  local exists = redis.call('EXISTS', version) == 1
  if not exists then
    redis.call('SET', version, fresh)
  elseif changed > 0 then
    redis.call('SET', version, fresh, 'KEEPTTL')
  end
  local last = redis.call('ZRANGE', group, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', group, last[2])
  if exists then extend(version, last[2] - now) else redis.call('PEXPIREAT', version, last[2]) end
end

local function group_discard(group, version, channel, fresh)
  if redis.call('ZREM', group, channel) == 1 and redis.call('EXISTS', version) == 1 then
    redis.call('SET', version, fresh, 'KEEPTTL')
  end
end
"""

# KEYS: group, version. ARGV: channel, expires (ms; '' for none), now, new
# version, prefix, group name, process ('' for none), expires if not bound.
# A bound channel whose process has a heartbeat here joins its process's
# members (unless its socket closed); any other joins the group's own
# sorted set.
GROUP_ADD = PLAIN + r"""
local channel, expires, now, fresh = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local prefix, name, process = ARGV[5], ARGV[6], ARGV[7]
local ttl = -2
if process ~= '' then ttl = redis.call('PTTL', prefix .. 'h:interface:' .. process) end
if ttl <= 0 then
  group_add(KEYS[1], KEYS[2], channel, expires == '' and ARGV[8] or expires, now, fresh)
  return 1
end
local index = prefix .. 'pc:' .. process
local groups = redis.call('HGET', index, channel)
if groups == '-' then return 0 end
local members = prefix .. 'gm:' .. name .. ':' .. process
local changed = redis.call('ZREM', KEYS[1], channel)
changed = changed + redis.call('ZADD', members, expires == '' and 'inf' or expires, channel)
redis.call('PEXPIRE', members, ttl)
redis.call('SADD', prefix .. 'gp:' .. name, process)
redis.call('SADD', prefix .. 'pg:' .. process, name)
if not groups then
  redis.call('HSET', index, channel, name)
elseif not string.find(' ' .. groups .. ' ', ' ' .. name .. ' ', 1, true) then
  redis.call('HSET', index, channel, groups .. ' ' .. name)
end
for _, key in ipairs({prefix .. 'pg:' .. process, index}) do redis.call('PEXPIRE', key, ttl) end
extend(prefix .. 'gp:' .. name, ttl)
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], fresh, 'PX', ttl)
else
  if changed > 0 then redis.call('SET', KEYS[2], fresh, 'KEEPTTL') end
  extend(KEYS[2], ttl)
end
return 1
"""

# Takes ``channel`` out of group ``name``'s members of ``process`` and out
# of the process's index; true if it was there.
_UNBIND = r"""
local function unbind(prefix, name, process, channel)
  if redis.call('ZREM', prefix .. 'gm:' .. name .. ':' .. process, channel) == 0 then
    return false
  end
  if redis.call('EXISTS', prefix .. 'gm:' .. name .. ':' .. process) == 0 then
    redis.call('SREM', prefix .. 'gp:' .. name, process)
    redis.call('SREM', prefix .. 'pg:' .. process, name)
  end
  return true
end
"""

# KEYS: group, version. ARGV: channel, new version, prefix, name, process
# ('' for none).
GROUP_DISCARD = _UNBIND + r"""
local channel, prefix, name, process = ARGV[1], ARGV[3], ARGV[4], ARGV[5]
local changed = redis.call('ZREM', KEYS[1], channel) == 1
if process ~= '' and unbind(prefix, name, process, channel) then
  changed = true
  local index = prefix .. 'pc:' .. process
  local groups = redis.call('HGET', index, channel)
  if groups and groups ~= '-' then
    local kept = {}
    for other in string.gmatch(groups, '%S+') do
      if other ~= name then kept[#kept + 1] = other end
    end
    if #kept > 0 then
      redis.call('HSET', index, channel, table.concat(kept, ' '))
    else
      redis.call('HDEL', index, channel)
    end
  end
end
if changed and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('SET', KEYS[2], ARGV[2], 'KEEPTTL')
end
"""

# Closed sockets: every group on this shard lets them go, and keeps them
# out for ``keep`` ms. KEYS: none. ARGV: prefix, process, new version,
# keep (ms), then the channels.
GROUP_LEAVE = _EXTEND + _UNBIND + r"""
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local prefix, process, fresh, keep = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local index, closed = prefix .. 'pc:' .. process, prefix .. 'pz:' .. process
for i = 5, #ARGV do
  local channel = ARGV[i]
  local groups = redis.call('HGET', index, channel)
  if groups and groups ~= '-' then
    for name in string.gmatch(groups, '%S+') do
      local version = prefix .. 'v:' .. name
      if unbind(prefix, name, process, channel) and redis.call('EXISTS', version) == 1 then
        redis.call('SET', version, fresh, 'KEEPTTL')
      end
    end
  end
  redis.call('HSET', index, channel, '-')
  redis.call('ZADD', closed, now + keep, channel)
end
local ttl = math.max(redis.call('PTTL', prefix .. 'h:interface:' .. process), keep)
for _, key in ipairs({index, closed}) do
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
return 1
"""

# The part of HEARTBEAT_SET for an interface process (ARGV[1] its id,
# ARGV[3] the record's time to live in ms, ARGV[4] the prefix; ``now`` the
# server's clock): its members live as long as its record, and its closed
# sockets past their time are forgotten.
RENEW = _EXTEND + r"""
if ARGV[4] then
  local prefix, process, ttl = ARGV[4], ARGV[1], tonumber(ARGV[3])
  local groups = prefix .. 'pg:' .. process
  for _, name in ipairs(redis.call('SMEMBERS', groups)) do
    if redis.call('PEXPIRE', prefix .. 'gm:' .. name .. ':' .. process, ttl) == 1 then
      extend(prefix .. 'gp:' .. name, ttl)
      local version = prefix .. 'v:' .. name
      if not redis.call('SET', version, 'r' .. now .. process, 'PX', ttl, 'NX') then
        extend(version, ttl)
      end
    else
      redis.call('SREM', groups, name)
    end
  end
  local index, closed = prefix .. 'pc:' .. process, prefix .. 'pz:' .. process
  local gone = redis.call('ZRANGEBYSCORE', closed, '-inf', now)
  for c = 1, #gone, 1000 do
    redis.call('HDEL', index, unpack(gone, c, math.min(c + 999, #gone)))
  end
  redis.call('ZREMRANGEBYSCORE', closed, '-inf', now)
  for _, key in ipairs({groups, index, closed}) do
    if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  end
end
"""
