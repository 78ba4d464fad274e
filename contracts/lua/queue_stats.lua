-- KEYS: lists...
-- ARGV: lists_per_queue:n workers_since
-- Returns per queue {ready, oldest publish ms}, then the queues of in-flight messages, delayed,
-- dead letters and the live workers' descriptions. Cost: list lengths, each list's oldest
-- message (for its publish stamp) and the in-flight entries, whose number is bounded by the
-- workers' total concurrency, never by the queue lengths; the messages in flight are not read.
local queues = {}
for q = 0, #lists / lists_per_queue - 1 do
  local ready, oldest = 0, 0
  for i = 1, lists_per_queue do
    local list = lists[q * lists_per_queue + i]
    ready = ready + redis.call('LLEN', list)
    local tail = redis.call('LINDEX', list, -1)
    if tail then
      local ms = published_at(tail)
      if ms and (oldest == 0 or ms < oldest) then oldest = ms end
    end
  end
  queues[#queues + 1] = {ready, oldest}
end
local inflight = {}
local entries = redis.call('HGETALL', K.inflight)
for i = 1, #entries, 2 do
  if redis.call('ZSCORE', K.unacked_index, entries[i]) then
    inflight[#inflight + 1] = inflight_queue(entries[i + 1])
  else
    -- Its message was acknowledged or restored by a process that does not keep K.inflight.
    redis.call('HDEL', K.inflight, entries[i])
  end
end
local workers = {}
for _, host in ipairs(redis.call('ZRANGEBYSCORE', K.workers, workers_since, '+inf')) do
  local info = redis.call('GET', worker_key(host))
  if info then workers[#workers + 1] = info end
end
return {queues, inflight, redis.call('ZCARD', K.delayed), redis.call('ZCARD', K.deadletter),
  workers}
