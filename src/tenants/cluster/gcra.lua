-- soapgate's shared rate limits: one run decides a call against every
-- bucket it names, atomically (GCRA). Each key holds the time, in
-- microseconds of the server's clock, at which its bucket is empty again;
-- a key that has drained expires.
--
-- ARGV[1] is the mode; then, for each key of KEYS, four numbers: the
-- microseconds one unit takes to drain, the bucket's capacity in
-- microseconds, the units that must fit, the units to add.
--   admit:  when every bucket has room for what must fit, each gets what
--           is added; otherwise nothing changes. Answers {0, 0}, or the
--           1-based index of the first bucket without room and the
--           microseconds until it would have room.
--   charge: each bucket gets what is added, however full. Answers {0, 0}.
-- Only the server's clock (TIME) is read, so the instances' clocks need
-- not agree.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local admit = ARGV[1] == 'admit'
local empty_at = {}
for i, key in ipairs(KEYS) do
  local per_unit = tonumber(ARGV[4 * i - 2])
  local capacity = tonumber(ARGV[4 * i - 1])
  local need = tonumber(ARGV[4 * i])
  local stored = tonumber(redis.call('GET', key) or '0') or 0
  empty_at[i] = math.max(stored, now)
  if admit then
    local over = empty_at[i] + need * per_unit - now - capacity
    if over > 0 then
      return {i, math.ceil(over)}
    end
  end
end
for i, key in ipairs(KEYS) do
  local add = tonumber(ARGV[4 * i + 1])
  if add > 0 then
    local until_empty = empty_at[i] + add * tonumber(ARGV[4 * i - 2])
    local ttl_ms = math.ceil((until_empty - now) / 1000) + 1000
    redis.call('SET', key, string.format('%.0f', until_empty), 'PX', ttl_ms)
  end
end
return {0, 0}
