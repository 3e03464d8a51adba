-- wrk script for bench/bench.py: failed logins with random user names
-- from many client addresses, until each thread has made its share.
-- The addresses go in X-Forwarded-For, which the bench's lighttpd takes
-- as REMOTE_ADDR (mod_extforward, trusted from 127.0.0.1 only).  Each
-- thread writes how many it has made to PROGRESS.ID now and then: wrk
-- runs to its -d however early its threads stop, so bench.py watches
-- these and ends it with SIGINT.
--   args: addresses, total failures, PROGRESS (a path prefix)
local api = "/crmapi/rest/v2"
local addresses, quota, made, progress = 1000, 100000, 0, nil

function setup(thread)
   threads = threads or {}
   table.insert(threads, thread)
   thread:set("id", #threads)
end

function init(args)
   addresses = tonumber(args[1])
   quota = math.ceil(tonumber(args[2]) / 2)     -- two threads
   progress = args[3] .. "." .. (id or 1)
   math.randomseed(os.time() * 7919 + (id or 1))
end

function request()
   local name = {}
   for i = 1, 12 do name[i] = string.char(97 + math.random(0, 25)) end
   local a = math.random(0, addresses - 1)
   local addr = string.format("127.1.%d.%d", math.floor(a / 250), a % 250 + 1)
   return wrk.format("POST", api .. "/authentication/token",
      { ["Content-Type"] = "application/json", ["X-Forwarded-For"] = addr },
      '{"username":"' .. table.concat(name) .. '","password":"x","organisation":"ACME"}')
end

function response(status, headers, body)
   made = made + 1
   if made % 500 == 0 or made == quota then
      local f = io.open(progress, "w")
      f:write(made)
      f:close()
   end
   if made >= quota then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   io.write(string.format("FLOOD requests=%d seconds=%.3f non2xx=%d\n", summary.requests,
      summary.duration / 1e6, summary.errors.status))
end
