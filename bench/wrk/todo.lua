-- wrk script for bench/run.py: rotates real tokens over many users and their real tasks.
--
-- Environment:
--   BENCH_USERS_FILE    lines of `kind user_id token id id ...` (from bench/seed.py)
--   BENCH_ENDPOINT      list | list_filtered | get | create | patch | complete
--   BENCH_SELECT        user (default) | heavy | all: which lines of the file to use
--   BENCH_COUNT_STATUS  1 to count responses per status code (printed by done()); off
--                       by default because a Lua response() callback makes wrk parse
--                       every response, taking CPU from the server on a 2-core machine.

local endpoint = os.getenv("BENCH_ENDPOINT") or "list"
local users_file = os.getenv("BENCH_USERS_FILE") or error("BENCH_USERS_FILE is not set")
local select_kind = os.getenv("BENCH_SELECT") or "user"
local count_status = os.getenv("BENCH_COUNT_STATUS") == "1"

local threads = {}

-- Runs in the main Lua state once per thread, before the thread's init().
function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_number", #threads)
end

local users = {}
local counter = 0
statuses = {}

local function load_users()
   for line in io.lines(users_file) do
      local fields = {}
      for word in line:gmatch("%S+") do
         fields[#fields + 1] = word
      end
      if #fields >= 4 and (select_kind == "all" or fields[1] == select_kind) then
         local ids = {}
         for i = 4, #fields do
            ids[#ids + 1] = fields[i]
         end
         users[#users + 1] = { auth = "Bearer " .. fields[3], ids = ids }
      end
   end
   if #users == 0 then
      error("no '" .. select_kind .. "' users with task ids in " .. users_file)
   end
end

function init(args)
   load_users()
   -- Each thread its own sequence, so the threads do not hit the same rows in lockstep.
   math.randomseed(os.time() * 100 + (thread_number or 0))
end

local function pick()
   local user = users[math.random(#users)]
   return user, user.ids[math.random(#user.ids)]
end

function request()
   counter = counter + 1
   local user, id = pick()
   if endpoint == "list" then
      return wrk.format("GET", "/api/me/tasks?limit=20", { Authorization = user.auth })
   elseif endpoint == "list_filtered" then
      return wrk.format("GET", "/api/me/tasks?status=pending&sort=title&limit=20",
                        { Authorization = user.auth })
   elseif endpoint == "get" then
      return wrk.format("GET", "/api/me/tasks/" .. id, { Authorization = user.auth })
   elseif endpoint == "create" then
      local body = '{"title":"Load test task ' .. counter
         .. '","description":"Created by bench/run.py."}'
      return wrk.format("POST", "/api/me/tasks",
                        { Authorization = user.auth, ["Content-Type"] = "application/json" }, body)
   elseif endpoint == "patch" then
      local body = '{"title":"Renamed by the load test ' .. counter .. '"}'
      return wrk.format("PATCH", "/api/me/tasks/" .. id,
                        { Authorization = user.auth, ["Content-Type"] = "application/json" }, body)
   elseif endpoint == "complete" then
      return wrk.format("PATCH", "/api/me/tasks/" .. id .. "/complete",
                        { Authorization = user.auth })
   end
   error("unknown BENCH_ENDPOINT " .. endpoint)
end

if count_status then
   function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   if not count_status then
      return
   end
   local totals = {}
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         totals[status] = (totals[status] or 0) + n
      end
   end
   local parts = {}
   for status, n in pairs(totals) do
      parts[#parts + 1] = '"' .. status .. '":' .. n
   end
   io.write("BENCH_STATUS {" .. table.concat(parts, ",") .. "}\n")
end
