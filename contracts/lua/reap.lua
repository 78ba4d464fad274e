-- KEYS: record, the task's queue list. ARGV: id now orphan_after_ms payload slack_ms.
-- Kombu's Redis transport pops a message (BRPOP) before it records it as unacknowledged, so a
-- worker killed in between takes the message with it and the task waits forever. A task
-- PENDING for longer than orphan_after whose message can be nowhere else is queued again:
-- not delayed, not unacknowledged, and its list holds no message older than it plus a slack
-- (lists are FIFO, but publish stamps of concurrent submits, and of API pods with skewed
-- clocks, are not strictly in list order). A copy queued although the original was still
-- there is harmless: start.lua runs a task once.
local rec, list, id, now = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
local f = redis.call('HMGET', rec, 'state', 'submitted_at', 'due_at', 'queued_at')
if f[1] ~= 'PENDING' and f[1] ~= 'RETRY' then return 'not-waiting' end
-- Since when the current message can have been in its list.
local since = math.max(tonumber(f[2]), tonumber(f[3] or '0'), tonumber(f[4] or '0'))
if since > now - tonumber(ARGV[3]) then return 'recent' end
if redis.call('ZSCORE', DELAYED, id) then return 'delayed' end
for _, v in ipairs(redis.call('HVALS', UNACKED)) do
  if string.find(v, id, 1, true) then return 'unacked' end
end
local tail = redis.call('LINDEX', list, -1)
if tail then
  local published = tonumber(string.match(tail, '"kt_published_at":%s*(%d+)'))
  if published and published <= since + tonumber(ARGV[5]) then return 'queued' end
end
-- The copy keeps the task's own age: were it stamped now and later put back at the tail of its
-- list (kombu restores there), every older task behind it would look lost in turn.
redis.call('HSET', rec, 'queued_at', now)
redis.call('LPUSH', list, (string.gsub(ARGV[4], '"kt_published_at":%s*%d+',
  '"kt_published_at":' .. string.format('%d', since), 1)))
return 'requeued'
