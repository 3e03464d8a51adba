-- wrk script for bench/bench.py: one method, the same request again and
-- again; for release, a fresh pre-signed token each time (file in args).
local api = "/crmapi/rest/v2"
local req, tokens, next_token = nil, nil, 1
local method_name

function setup(thread)
   threads = threads or {}
   table.insert(threads, thread)
   thread:set("id", #threads)
end

function init(args)
   method_name = args[1]
   local key, ck = args[2], args[3]
   local json = { ["Content-Type"] = "application/json" }
   if method_name == "login" then
      req = wrk.format("POST", api .. "/authentication/token", json,
         '{"username":"alice","password":"alice-pw","organisation":"ACME"}')
   elseif method_name == "apikey" then
      req = wrk.format("POST", api .. "/authentication/web_api_key/token",
         { ["Authorization"] = "Basic " .. key, ["Content-Length"] = "0" }, "")
   elseif method_name == "consumer" then
      req = wrk.format("POST", api .. "/authentication/consumer_application_key/token",
         { ["Authorization"] = "Basic " .. ck, ["Content-Type"] = "application/json" },
         '{"access_token_identifier":{"authentication_code":"CODE-1"}}')
   elseif method_name == "check" then
      req = wrk.format("GET", api .. "/authentication/token/check",
         { ["Authorization"] = "Bearer " .. args[4] })
   elseif method_name == "health" then
      req = wrk.format("GET", api .. "/health")
   elseif method_name == "release" then
      tokens = {}
      local n, i = 0, 0
      for line in io.lines(args[4]) do
         n = n + 1
         -- every thread takes every n-th token of its own
         if n % 2 == (id or 1) % 2 then
            i = i + 1
            tokens[i] = line
         end
      end
   end
end

function request()
   if tokens then
      local t = tokens[next_token]
      next_token = next_token % #tokens + 1
      return wrk.format("POST", api .. "/authentication/token/release",
         { ["Content-Type"] = "application/json" }, '{"token":"' .. t .. '"}')
   end
   return req
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("BENCH requests=%d seconds=%.3f non2xx=%d errors=%d " ..
      "p50_ms=%.3f p99_ms=%.3f\n", summary.requests, summary.duration / 1e6,
      e.status, e.connect + e.read + e.write + e.timeout,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
