-- KEYS: the lists of every queue, LISTS_PER_QUEUE each. ARGV: lists_per_queue workers_since.
-- Returns per queue {ready, oldest publish ms}, then in-flight routing keys, delayed,
-- dead letters and the live workers' descriptions. Cost: list lengths, each list's oldest
-- message (for its publish-time header) and the unacknowledged messages, whose number is
-- bounded by the workers' total concurrency, never by the queue lengths.
local per = tonumber(ARGV[1])
local queues = {}
for q = 0, #KEYS / per - 1 do
  local ready, oldest = 0, 0
  for i = 1, per do
    local list = KEYS[q * per + i]
    ready = ready + redis.call('LLEN', list)
    local tail = redis.call('LINDEX', list, -1)
    if tail then
      local ms = tonumber(string.match(tail, '"kt_published_at":%s*(%d+)'))
      if ms and (oldest == 0 or ms < oldest) then oldest = ms end
    end
  end
  queues[#queues + 1] = {ready, oldest}
end
local inflight = {}
for _, v in ipairs(redis.call('HVALS', UNACKED)) do
  inflight[#inflight + 1] = string.match(v, '"([^"]*)"%]%s*$') or ''
end
local workers = {}
for _, host in ipairs(redis.call('ZRANGEBYSCORE', PREFIX .. 'workers', ARGV[2], '+inf')) do
  local info = redis.call('GET', PREFIX .. 'worker:' .. host)
  if info then workers[#workers + 1] = info end
end
return {queues, inflight, redis.call('ZCARD', DELAYED), redis.call('ZCARD', DEADLETTER), workers}
