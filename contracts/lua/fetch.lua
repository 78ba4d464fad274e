-- KEYS: lists...
-- ARGV: now worker
-- The worker transport's fetch (worker/broker.py). kombu fetches a message (BRPOP) and then
-- records it as unacknowledged (a MULTI): two round trips in the loop that sets a worker's pace,
-- and a moment when a worker killed between them has lost the message. Here both happen in one
-- step. `lists` come in the order kombu's BRPOP would try them; `now` is the worker's clock,
-- which kombu's restore compares the unacked_index scores with; `worker` its hostname. Returns {list, message,
-- recorded}, or nil when every list is empty (the worker then blocks in BRPOP). A message without
-- kombu's delivery fields is returned unrecorded, for kombu to handle as it would.
for _, list in ipairs(lists) do
  local item = redis.call('RPOP', list)
  if item then
    local ok, message = pcall(cjson.decode, item)
    local p = ok and type(message) == 'table' and message.properties
    local info = type(p) == 'table' and p.delivery_info
    if type(info) ~= 'table' or type(p.delivery_tag) ~= 'string'
        or type(info.exchange) ~= 'string' or type(info.routing_key) ~= 'string' then
      return {list, item, 0}
    end
    local tag = p.delivery_tag
    redis.call('ZADD', K.unacked_index, now, tag)
    -- kombu's own layout ([message, exchange, routing_key]), with the message verbatim; cjson
    -- escapes '/', which Python's json does not.
    local ex = cjson.encode(info.exchange):gsub('\\/', '/')
    local rk = cjson.encode(info.routing_key):gsub('\\/', '/')
    redis.call('HSET', K.unacked, tag, '[' .. item .. ',' .. ex .. ',' .. rk .. ']')
    local headers = type(message.headers) == 'table' and message.headers or {}
    local id = type(headers.id) == 'string' and headers.id or ''
    redis.call('HSET', K.inflight, tag, inflight_entry(info.routing_key, worker, id))
    return {list, item, 1}
  end
end
return nil
