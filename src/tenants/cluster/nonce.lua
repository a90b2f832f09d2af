-- soapgate's shared UsernameToken nonces: one run remembers one nonce of
-- one user, atomically.
--
-- KEYS[1] is the nonce's key (SET NX, living as long as the Created
-- window: a token carrying it could be accepted that long); KEYS[2] is the
-- user's window, a sorted set of the nonces it holds by arrival time
-- (milliseconds of the server's clock), which bounds how many one user
-- may have at once. ARGV[1] is the window in milliseconds, ARGV[2] the
-- bound.
-- Answers {0, 0}: fresh, now remembered; {1, 0}: a replay; {2, ms}: the
-- user's window is full, and its oldest nonce leaves it in ms. A full
-- window forgets nothing: the nonce is refused instead.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1, 0}
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {2, math.max(tonumber(oldest[2]) + ttl - now, 1)}
end
redis.call('SET', KEYS[1], '1', 'PX', ttl, 'NX')
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('PEXPIRE', KEYS[2], ttl)
return {0, 0}
