-- wrk script for tests/soak.py: every method, mixed, on each connection.
-- Each token obtained is used once, released or checked, so every answer
-- must be 200; anything else is counted as unexpected.
local api = "/crmapi/rest/v2"
local json = { ["Content-Type"] = "application/json" }
local tokens = {}
unexpected = 0
local n = 0
local plain = {}

function setup(thread)
   threads = threads or {}
   table.insert(threads, thread)
end

function init(args)
   local key, ck = args[1], args[2]
   plain = {
      wrk.format("POST", api .. "/authentication/token", json,
         '{"username":"alice","password":"alice-pw","organisation":"ACME"}'),
      wrk.format("POST", api .. "/authentication/web_api_key/token",
         { ["Authorization"] = "Basic " .. key, ["Content-Length"] = "0" }, ""),
      wrk.format("POST", api .. "/authentication/consumer_application_key/token",
         { ["Authorization"] = "Basic " .. ck, ["Content-Type"] = "application/json" },
         '{"access_token_identifier":{"authentication_code":"CODE-1"}}'),
      wrk.format("GET", api .. "/health"),
   }
end

function request()
   n = n + 1
   if #tokens > 0 and n % 3 ~= 0 then
      local t = table.remove(tokens, 1)
      if n % 2 == 0 then
         return wrk.format("POST", api .. "/authentication/token/release", json,
            '{"token":"' .. t .. '"}')
      end
      return wrk.format("GET", api .. "/authentication/token/check", { ["Authorization"] = "Bearer " .. t })
   end
   return plain[n % #plain + 1]
end

function response(status, headers, body)
   if status ~= 200 then
      unexpected = unexpected + 1
      return
   end
   local t = string.match(body, '"token":"([^"]+)"')
   if t and #tokens < 1000 then
      table.insert(tokens, t)
   end
end

function done(summary, latency, requests)
   local u = 0
   for _, t in ipairs(threads) do
      u = u + t:get("unexpected")
   end
   local e = summary.errors
   io.write(string.format("SOAK requests=%d unexpected=%d socket_errors=%d " ..
      "p50_ms=%.2f p99_ms=%.2f\n", summary.requests, u,
      e.connect + e.read + e.write + e.timeout,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
