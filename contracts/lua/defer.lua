-- KEYS: record
-- ARGV: id list message due:n
-- Parks a copy of a running task's message until the running execution's lease ends; then the
-- start script decides again. Keyed by task id, so a re-sent call parks the same one copy.
if redis.call('HGET', record, F.state) ~= S.STARTED then return 'gone' end
enqueue(id, list, message, due)
return 'deferred'
