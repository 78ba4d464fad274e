-- KEYS: record list
-- ARGV: id now:n orphan_after_ms:n message slack_ms:n
-- A worker killed between taking a message off its list and recording it as unacknowledged
-- (kombu's BRPOP, then its MULTI) took the message with it, and the task would wait forever. A
-- task PENDING for longer than orphan_after whose message can be nowhere else is queued again:
-- not delayed, not unacknowledged, and its list holds no message older than it plus a slack
-- (lists are FIFO, but publish stamps of concurrent submits, and of API pods with skewed
-- clocks, are not strictly in list order). A copy queued although the original was still
-- there is harmless: start.lua runs a task once.
local f = redis.call('HMGET', record, F.state, F.submitted_at, F.due_at, F.queued_at, F.waiting)
if f[1] ~= S.PENDING and f[1] ~= S.RETRY then return 'not-waiting' end
if f[5] then return 'step-waits' end  -- a workflow step, queued when its earlier steps end
-- Since when the current message can have been in its list.
local since = math.max(tonumber(f[2]), tonumber(f[3] or '0'), tonumber(f[4] or '0'))
if since > now - orphan_after_ms then return 'recent' end
if redis.call('ZSCORE', K.delayed, id) then return 'delayed' end
for _, entry in ipairs(redis.call('HVALS', K.inflight)) do
  if inflight_task(entry) == id then return 'in-flight' end
end
local tail = redis.call('LINDEX', list, -1)
if tail then
  local published = published_at(tail)
  if published and published <= since + slack_ms then return 'queued' end
end
-- The copy keeps the task's own age: were it stamped now and later put back at the tail of its
-- list (kombu restores there), every older task behind it would look lost in turn.
redis.call('HSET', record, F.queued_at, now)
redis.call('LPUSH', list, restamp(message, since))
return 'requeued'
