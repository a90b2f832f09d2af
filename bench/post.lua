-- wrk script for bench/load.sh: POSTs the file $BODY_FILE with the
-- Content-Type $CONTENT_TYPE (and SOAPAction $SOAP_ACTION when set) on every
-- request, and at the end prints one JSON line prefixed "RESULT " with the
-- request count, throughput, latency percentiles (µs) and error counts.
--
--   BODY_FILE=req.xml CONTENT_TYPE='text/xml; charset=utf-8' \
--     wrk -t1 -c1 -d10s -s bench/post.lua http://127.0.0.1:8080/soap/SupportDesk

local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE")
local action = os.getenv("SOAP_ACTION")
if action and action ~= "" then
  wrk.headers["SOAPAction"] = action
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
