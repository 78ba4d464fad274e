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
