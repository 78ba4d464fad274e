-- Shared by every script: key names (contracts/records.py) and the one way a task changes state.
local PREFIX = 'kt:'
local TASKS = PREFIX .. 'tasks'
local DELAYED = PREFIX .. 'delayed'
local DELAYED_MSG = PREFIX .. 'delayed:msg'
local DEADLETTER = PREFIX .. 'deadletter'
local TERMINAL = {SUCCESS = true, FAILURE = true, REVOKED = true}
-- kombu's Redis transport keeps the messages a worker holds unacknowledged here (its defaults).
local UNACKED, UNACKED_INDEX = 'unacked', 'unacked_index'

local function record_key(id) return PREFIX .. 'task:' .. id end
local function state_index(state) return TASKS .. ':state:' .. state end
local function name_state_index(name, state) return TASKS .. ':name:' .. name .. ':state:' .. state end

-- Move a task between the listing indexes of its old and new state (score: submit time).
local function reindex(id, name, score, old, new)
  redis.call('ZREM', state_index(old), id)
  redis.call('ZREM', name_state_index(name, old), id)
  redis.call('ZADD', state_index(new), score, id)
  redis.call('ZADD', name_state_index(name, new), score, id)
end

-- Record the new state and move the task between the listing indexes of its old and new state.
local function set_state(rec, id, new)
  local f = redis.call('HMGET', rec, 'state', 'name', 'submitted_at')
  local old = f[1]
  if old == new then return old end
  reindex(id, f[2], f[3], old, new)
  redis.call('HSET', rec, 'state', new)
  return old
end

-- Queue a message: now, or at `due` (ms) through the delayed set that the worker's mover drains.
local function enqueue(id, list, payload, due)
  if due > 0 then
    redis.call('ZADD', DELAYED, due, id)
    redis.call('HSET', DELAYED_MSG, id, list .. '\n' .. payload)
  else
    redis.call('LPUSH', list, payload)
  end
end
