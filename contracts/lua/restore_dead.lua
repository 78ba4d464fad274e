-- KEYS: none
-- ARGV: now:n since:n
-- A worker whose heartbeat is older than the max age (`since`, seconds: killed, frozen, its
-- node lost) holds its messages unacknowledged, and kombu would bring them back only after the
-- visibility timeout (hours). They go back to their queues now, next to be served, each under a
-- new delivery tag; a task that worker was running waits again (PENDING, its lease ended), so
-- its new copy runs at once. A worker that was only frozen and comes back finds its task taken:
-- its next progress report answers 'superseded' and its finish is refused (the old tag holds
-- nothing any more). Every live worker runs this; it is atomic, so they can overlap. Entries
-- with no worker named (written by a process that is not a worker) are left to kombu. Returns
-- how many messages went back.
local function enc(s) return (string.gsub(cjson.encode(s), '\\/', '/')) end
local function esc(s) return (string.gsub(s, '%p', '%%%0')) end
local alive, restored = {}, 0
local entries = redis.call('HGETALL', K.inflight)
for i = 1, #entries, 2 do
  local tag, entry = entries[i], entries[i + 1]
  local worker = inflight_worker(entry)
  if worker ~= '' and alive[worker] == nil then
    local beat = redis.call('ZSCORE', K.workers, worker)
    alive[worker] = beat and tonumber(beat) >= since or false
  end
  if worker ~= '' and not alive[worker] then
    local stored = redis.call('HGET', K.unacked, tag)
    ack(tag)
    local ok, held = pcall(cjson.decode, stored or '')
    if ok and type(held) == 'table' and type(held[1]) == 'table' then
      local message, queue = held[1], inflight_queue(entry)
      local fresh = tag .. '.r' .. string.format('%d', now)
      -- The message verbatim (kombu keeps it as [message, exchange, routing_key], with or
      -- without spaces), its tag replaced; re-encoded only if its text is not as expected.
      local tail = string.find(stored, ',%s*' .. esc(enc(held[2])) .. '%s*,%s*'
        .. esc(enc(held[3])) .. '%s*%]%s*$')
      local text, replaced = nil, 0
      if tail then
        text, replaced = string.gsub(string.sub(stored, 1, tail - 1),
          '"delivery_tag"%s*:%s*' .. esc(enc(tag)), '"delivery_tag": ' .. enc(fresh), 1)
        text = string.gsub(text, '^%[%s*', '')
      end
      if replaced ~= 1 then
        message.properties.delivery_tag = fresh
        text = cjson.encode(message)
      end
      local priority = tonumber(message.properties.priority) or 0
      local step = PRIORITY_STEPS[1]
      for _, s in ipairs(PRIORITY_STEPS) do if s <= priority then step = s end end
      redis.call('RPUSH', queue_list(queue, step), text)
      restored = restored + 1
      local id = inflight_task(entry)
      local record = record_key(id)
      local f = redis.call('HMGET', record, F.state, F.tag)
      if id ~= '' and f[1] == S.STARTED and f[2] == tag then
        set_state(record, id, S.PENDING)
        redis.call('HDEL', record, F.lease_until)
        redis.call('HSET', record, F.queued_at, now)
        changed(record, id)
      end
    end
  end
end
return restored
