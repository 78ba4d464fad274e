-- KEYS: record
-- ARGV: id list message due:n
-- Parks a copy of a task's message until `due`; then the start script decides again: a second
-- copy of a running task waits for the running execution's lease to end, a message this
-- worker's version of the task cannot validate waits for a worker of the version it was
-- validated against. Keyed by task id, so a re-sent call parks the same one copy.
local state = redis.call('HGET', record, F.state)
if not state or TERMINAL[state] then return 'gone' end
enqueue(id, list, message, due)
return 'deferred'
