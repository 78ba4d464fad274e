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

-- The parts of a K.inflight value (inflight_entry(queue, id)).
local function inflight_queue(entry) return string.match(entry, '^[^ ]*') end
local function inflight_task(entry) return string.match(entry, '^[^ ]* (.*)$') or '' end
