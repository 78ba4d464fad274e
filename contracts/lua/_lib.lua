-- Shared helpers: sent after the generated names (F, K, S, H, key functions) and before the
-- script's own line that unpacks KEYS and ARGV (contracts/scripts.py).

-- Move a task between the listing indexes of its old and new state (score: submit time).
local function reindex(id, name, score, old, new)
  redis.call('ZREM', state_index(old), id)
  redis.call('ZREM', name_state_index(name, old), id)
  redis.call('ZADD', state_index(new), score, id)
  redis.call('ZADD', name_state_index(name, new), score, id)
end

-- Record a new state and move the task between the listing indexes with it. start.lua and
-- finish.lua, on the path every task takes, do the same with reindex inside the one read and the
-- one write they make of the record, instead of the extra read this costs.
local function set_state(rec, id, new)
  local f = redis.call('HMGET', rec, F.state, F.name, F.submitted_at)
  local old = f[1]
  if old == new then return old end
  reindex(id, f[2], f[3], old, new)
  redis.call('HSET', rec, F.state, new)
  return old
end

-- A change of a record that its watchers see (api/events.py): the record's version goes up,
-- and, while an API process listens, the record as it is now (without its arguments, which no
-- view shows) is published on K.events with its version and the time (µs), in the same atomic
-- step as the change, so a watcher that subscribed before reading the record misses nothing.
-- Nobody listening costs the version and one EXISTS on the flag the listeners keep (PUBSUB
-- NUMSUB cost the three scripts of a task 30 us more: docs/benchmarks.md, issue 18).
local function changed(record, id)
  local version = redis.call('HINCRBY', record, F.version, 1)
  if redis.call('EXISTS', K.events_listening) == 0 then return end
  local fields, all = {}, redis.call('HGETALL', record)
  for i = 1, #all, 2 do
    if all[i] ~= F.args then fields[all[i]] = all[i + 1] end
  end
  local time = redis.call('TIME')
  redis.call('PUBLISH', K.events, cjson.encode({id = id, version = version,
    at = time[1] .. string.format('%06d', tonumber(time[2])), record = fields}))
end

-- Write a new task's record and list it (submit.lua, adopt.lua). A task whose name is not in the
-- catalogue (adopt.lua refusing it) is not listed by name: those listings are the catalogue's.
local function create_record(record, id, name, queue, priority, args, now, due, state, by_name)
  redis.call('HSET', record, F.name, name, F.queue, queue, F.priority, priority, F.args, args,
    F.state, state, F.submitted_at, now, F.attempts, 0, F.retries, 0, F.deliveries, 0)
  if due > 0 then redis.call('HSET', record, F.due_at, due) end
  redis.call('ZADD', K.tasks, now, id)
  redis.call('ZADD', state_index(state), now, id)
  if by_name then
    redis.call('ZADD', name_index(name), now, id)
    redis.call('ZADD', name_state_index(name, state), now, id)
  end
end

-- Queue a message: now, or at `due` (ms) through the delayed set that the worker's mover drains.
local function enqueue(id, list, message, due)
  if due > 0 then
    redis.call('ZADD', K.delayed, due, id)
    redis.call('HSET', K.delayed_messages, id, list .. '\n' .. message)
  else
    redis.call('LPUSH', list, message)
  end
end

-- A message's publish time (ms) is read and rewritten as text: decoding a message of up to
-- 700 KB to touch one number would cost more than the rest of the script. Any JSON spacing is
-- accepted (kombu re-serializes restored messages with a space after the colon).
local STAMP = '"' .. string.gsub(H.published_at, '%p', '%%%0') .. '":%s*'
local function published_at(message)
  return tonumber(string.match(message, STAMP .. '(%d+)'))
end
local function restamp(message, ms)
  return (string.gsub(message, STAMP .. '%d+',
    '"' .. H.published_at .. '":' .. string.format('%d', ms), 1))
end

-- Acknowledge a message as kombu's ack would, and forget its in-flight entry.
local function ack(tag)
  redis.call('ZREM', K.unacked_index, tag)
  redis.call('HDEL', K.unacked, tag)
  redis.call('HDEL', K.inflight, tag)
end

-- The parts of a K.inflight value (inflight_entry(queue, worker, id)).
local function inflight_queue(entry) return string.match(entry, '^[^ ]*') end
local function inflight_worker(entry) return string.match(entry, '^[^ ]* ([^ ]*)') or '' end
local function inflight_task(entry) return string.match(entry, '^[^ ]* [^ ]* (.*)$') or '' end

-- UTC time of `ms` as Celery writes it in results (datetime.isoformat), without os.date, which
-- Redis's Lua lacks (Howard Hinnant's civil_from_days).
local function iso_utc(ms)
  local s = math.floor(ms / 1000)
  local z = math.floor(s / 86400) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  local t = s % 86400
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00', year, month, day,
    math.floor(t / 3600), math.floor(t % 3600 / 60), t % 60, (ms % 1000) * 1000)
end

-- A task a Celery producer queued itself (adopt.lua set F.celery_result to the result's TTL)
-- ends in Celery's own result too, as its Redis result backend would write and announce it, so
-- that the producer's AsyncResult sees the end. `result` is JSON (a success's value); a failure
-- or a revocation gives its error's type and message instead (no traceback: the API shows one
-- only when KUBETASKS_SHOW_TRACEBACKS says so, and this is no place to decide that).
local function celery_result(ttl, id, status, now, result, error_type, error_message)
  if not ttl then return end
  if status ~= S.SUCCESS then
    local module = status == S.REVOKED and cjson.encode('celery.exceptions') or 'null'
    result = '{"exc_type": ' .. cjson.encode(error_type) .. ', "exc_message": ['
      .. cjson.encode(error_message) .. '], "exc_module": ' .. module .. '}'
  end
  local key = celery_result_key(id)
  local meta = '{"status": ' .. cjson.encode(status) .. ', "result": ' .. result
    .. ', "traceback": null, "children": [], "date_done": "' .. iso_utc(now) .. '", "task_id": '
    .. cjson.encode(id) .. '}'
  redis.call('SET', key, meta, 'EX', ttl)
  redis.call('PUBLISH', key, meta)
end

-- Workflows (api/workflows.py plans them, docs/workflows.md tells the rules). A step is a task
-- with a record of its own; its workflow moves on inside the same script that ends the step, so
-- a process killed at any instant neither loses the next step nor queues it twice.

-- Queue a step whose earlier steps all succeeded: the message the submit left in the workflow's
-- keeping, stamped now (its wait starts now, and the reaper dates it from now).
local function release(wf_id, step, now)
  local messages = workflow_messages_key(wf_id)
  local queued = redis.call('HGET', messages, step)
  redis.call('HDEL', messages, step)
  local id = redis.call('HGET', workflow_key(wf_id), step_field(step, P.id))
  local record = record_key(id)
  -- A step cancelled on its own while it waited stays so.
  if not queued or redis.call('HGET', record, F.state) ~= S.PENDING then return end
  local list, message = string.match(queued, '^([^\n]*)\n(.*)$')
  redis.call('HDEL', record, F.waiting)
  redis.call('HSET', record, F.queued_at, now)
  redis.call('LPUSH', list, restamp(message, now))
end

local function end_workflow(wf_id, now, ttl)
  local wf = workflow_key(wf_id)
  local f = redis.call('HMGET', wf, W.cancelled, ended_field(S.FAILURE), ended_field(S.REVOKED))
  local state = S.SUCCESS
  if f[1] then state = S.REVOKED elseif f[2] then state = S.FAILURE elseif f[3] then
    state = S.REVOKED
  end
  redis.call('HSET', wf, W.state, state, W.finished_at, now)
  redis.call('EXPIRE', wf, ttl)
  redis.call('DEL', workflow_messages_key(wf_id))
end

-- Step `step` of workflow `wf_id` ended in `state` (`result`, JSON, for a SUCCESS): the steps
-- it was the last one holding back are queued; if it did not succeed, every step after it is
-- revoked unrun (a chain stops; a group's other members run on); the last step to end ends the
-- workflow. A step that ends twice (a dead letter requeued after its workflow ended runs
-- alone) and a workflow that is gone change nothing.
local function step_ended(wf_id, step, state, result, now, ttl)
  local wf = workflow_key(wf_id)
  local f = redis.call('HMGET', wf, W.steps, step_field(step, P.state), step_field(step, P.next))
  if not f[1] or f[2] then return end
  redis.call('HSET', wf, step_field(step, P.state), state)
  redis.call('HINCRBY', wf, ended_field(state), 1)
  if state == S.SUCCESS then
    redis.call('HSET', wf, step_field(step, P.result), result)
    for _, n in ipairs(cjson.decode(f[3])) do
      if redis.call('HINCRBY', wf, step_field(n, P.wait), -1) == 0 then release(wf_id, n, now) end
    end
  else
    for _, n in ipairs(cjson.decode(f[3])) do
      local id = redis.call('HGET', wf, step_field(n, P.id))
      local record = record_key(id)
      local later = redis.call('HGET', record, F.state)
      if later and not TERMINAL[later] then
        set_state(record, id, S.REVOKED)
        redis.call('HSET', record, F.finished_at, now, F.error_type, 'NotRun', F.error_message,
          'step ' .. step .. ' of its workflow, which it waited for, ended ' .. state)
        redis.call('HDEL', record, F.waiting)
        redis.call('EXPIRE', record, ttl)
        changed(record, id)
        redis.call('HDEL', workflow_messages_key(wf_id), n)
        step_ended(wf_id, n, S.REVOKED, nil, now, ttl)
      end
    end
  end
  if redis.call('HINCRBY', wf, W.open, -1) == 0 then end_workflow(wf_id, now, ttl) end
end

-- Revoke a waiting or running task (a running one's worker stops it: worker/cancellation.py),
-- with its workflow step; returns the state it was in.
local function revoke(record, id, now, ttl)
  local old = set_state(record, id, S.REVOKED)
  redis.call('HSET', record, F.finished_at, now)
  redis.call('HDEL', record, F.lease_until, F.waiting)
  redis.call('EXPIRE', record, ttl)
  redis.call('ZREM', K.delayed, id)
  redis.call('HDEL', K.delayed_messages, id)
  local f = redis.call('HMGET', record, F.celery_result, F.workflow, F.step)
  celery_result(f[1], id, S.REVOKED, now, nil, 'TaskRevokedError', 'cancelled')
  changed(record, id)
  if f[2] then step_ended(f[2], f[3], S.REVOKED, nil, now, ttl) end
  return old
end
