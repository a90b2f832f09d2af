-- wrk script for bench/workflow.sh. Each wrk thread has one connection
-- (run it with -t N -c N) and sends, over and over, one "operation":
--
--   MODE=workflow  one POST of $WF_BODY (the three-step SOAP call)
--   MODE=chain     three POSTs one after another: $A_BODY, then $B_BODY,
--                  then $C_BODY (the same steps as single-call operations)
--
-- SOAPActions: $WF_ACTION, $A_ACTION, $B_ACTION, $C_ACTION. Every answer
-- must be HTTP 200 with no sg:Degraded in it; anything else counts as an
-- error. At the end it prints one JSON line prefixed "RESULT " with the
-- operations completed, operations per second and percentiles (µs) of the
-- operation's latency; for chain also of A + max(B, C) from the same calls
-- (what running B and C at once would have taken) and of each call.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } wfbench_timespec;
  int clock_gettime(int clk_id, wfbench_timespec *tp);
]]
local ts = ffi.new("wfbench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local function read(name)
  local f = assert(io.open(assert(os.getenv(name), name .. " not set"), "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local mode = os.getenv("MODE") or "workflow"
local path = os.getenv("SOAP_PATH") or "/"

local function post(body_var, action_var)
  return wrk.format("POST", path, {
    ["Content-Type"] = "text/xml; charset=utf-8",
    ["SOAPAction"] = '"' .. os.getenv(action_var) .. '"',
  }, read(body_var))
end

local reqs
if mode == "chain" then
  reqs = { post("A_BODY", "A_ACTION"), post("B_BODY", "B_ACTION"), post("C_BODY", "C_ACTION") }
else
  reqs = { post("WF_BODY", "WF_ACTION") }
end

-- Per thread: latencies (µs) of each finished operation and of its calls.
ops, calls_a, calls_b, calls_c, bad = {}, {}, {}, {}, 0
local step, op_start, call_start, lat = 1, 0, 0, {}

function request()
  call_start = now_us()
  if step == 1 then op_start = call_start end
  return reqs[step]
end

function response(status, headers, body)
  local t = now_us()
  if status ~= 200 or (body and body:find("Degraded", 1, true)) then
    bad = bad + 1
  end
  lat[step] = t - call_start
  if step == #reqs then
    ops[#ops + 1] = t - op_start
    if #reqs == 3 then
      calls_a[#calls_a + 1] = lat[1]
      calls_b[#calls_b + 1] = lat[2]
      calls_c[#calls_c + 1] = lat[3]
    end
    step = 1
  else
    step = step + 1
  end
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

local function pct(list, p)
  if #list == 0 then return 0 end
  table.sort(list)
  local i = math.ceil(#list * p / 100)
  if i < 1 then i = 1 end
  return math.floor(list[i])
end

function done(summary, latency, requests)
  local all, a, b, c, errors = {}, {}, {}, {}, 0
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("ops")) do all[#all + 1] = v end
    for _, v in ipairs(t:get("calls_a")) do a[#a + 1] = v end
    for _, v in ipairs(t:get("calls_b")) do b[#b + 1] = v end
    for _, v in ipairs(t:get("calls_c")) do c[#c + 1] = v end
    errors = errors + t:get("bad")
  end
  local par = {}
  for i = 1, #a do par[i] = a[i] + math.max(b[i], c[i]) end
  local e = summary.errors
  errors = errors + e.connect + e.read + e.write + e.timeout
  local secs = summary.duration / 1e6
  io.write(string.format(
    'RESULT {"ops":%d,"requests":%d,"seconds":%.3f,"ops_per_s":%.2f,"p50_us":%d,"p99_us":%d,' ..
    '"par_p50_us":%d,"par_p99_us":%d,"a_p50_us":%d,"b_p50_us":%d,"c_p50_us":%d,"errors":%d}\n',
    #all, summary.requests, secs, #all / secs, pct(all, 50), pct(all, 99),
    pct(par, 50), pct(par, 99), pct(a, 50), pct(b, 50), pct(c, 50), errors))
end
