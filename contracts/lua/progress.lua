-- KEYS: record
-- ARGV: id tag progress
-- Returns the state; anything but STARTED means stop ('superseded': another delivery holds
-- the lease now).
local f = redis.call('HMGET', record, F.state, F.tag)
if f[1] ~= S.STARTED then return f[1] or 'missing' end
if f[2] ~= tag then return 'superseded' end
redis.call('HSET', record, F.progress, progress)
changed(record, id)
return S.STARTED
