-- wrk script for bench/run.py: every request as a random seeded user, with that user's
-- real token, on one of its real tasks. The request templates are bench/endpoints.py's.
--
-- Environment:
--   BENCH_USERS_FILE     lines of `user_id token tag id id ...` (bench/seed.py)
--   BENCH_METHOD         GET, POST, PATCH
--   BENCH_PATH           e.g. /api/{user}/tasks/{id}: {user} the user's id, {id} one of its
--                        tasks, {tag} its most used tag
--   BENCH_BODY           the body, {n} a counter (empty: no body)
--   BENCH_VERSIONS_FILE  for If-Match: lines of `user_id token id version`. Each thread
--                        takes every BENCH_THREADS-th line and goes round them in turn,
--                        sending If-Match with the version and counting it up (a task
--                        comes round again long after its previous PATCH has returned)
--   BENCH_THREADS        wrk's -t
--   BENCH_COUNT_STATUS   1: count responses per status code (printed by done()); off by
--                        default, since a response() hook makes wrk parse every
--                        response, which takes CPU from the server on a small machine

local method = os.getenv("BENCH_METHOD") or "GET"
local path_template = os.getenv("BENCH_PATH") or error("BENCH_PATH is not set")
local body_template = os.getenv("BENCH_BODY") or ""
local users_file = os.getenv("BENCH_USERS_FILE") or error("BENCH_USERS_FILE is not set")
local versions_file = os.getenv("BENCH_VERSIONS_FILE") or ""
local thread_count = tonumber(os.getenv("BENCH_THREADS") or "1")
local count_status = os.getenv("BENCH_COUNT_STATUS") == "1"

local threads = {}

-- Runs in the main Lua state once per thread, before the thread's init().
function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_number", #threads)
end

local users = {}
local entries = {}
local position = 1
local counter = 0
statuses = {}

local function words(line)
   local fields = {}
   for word in line:gmatch("%S+") do
      fields[#fields + 1] = word
   end
   return fields
end

local function load()
   for line in io.lines(users_file) do
      local fields = words(line)
      if #fields >= 4 then
         local ids = {}
         for i = 4, #fields do
            ids[#ids + 1] = fields[i]
         end
         users[#users + 1] = {
            id = fields[1], auth = "Bearer " .. fields[2], tag = fields[3], ids = ids,
         }
      end
   end
   if #users == 0 then
      error("no users with task ids in " .. users_file)
   end
   if versions_file ~= "" then
      local index = 0
      for line in io.lines(versions_file) do
         local fields = words(line)
         if #fields == 4 then
            if index % thread_count == (thread_number or 1) - 1 then
               entries[#entries + 1] = {
                  id = fields[1], auth = "Bearer " .. fields[2], tag = "",
                  task = fields[3], version = tonumber(fields[4]),
               }
            end
            index = index + 1
         end
      end
      if #entries == 0 then
         error("no tasks for this thread in " .. versions_file)
      end
   end
end

function init(args)
   load()
   -- Each thread its own sequence, so the threads do not hit the same rows in lockstep.
   math.randomseed(os.time() * 100 + (thread_number or 0))
end

local verified = false

function request()
   -- wrk calls request() once on the first thread before the run, to count the requests
   -- it returns (pipelining); that call must not use up a task's version.
   if thread_number == 1 and not verified then
      verified = true
      return wrk.format("GET", "/healthz")
   end
   counter = counter + 1
   local user, task
   local headers = {}
   if #entries > 0 then
      user = entries[position]
      position = position % #entries + 1
      task = user.task
      headers["If-Match"] = '"' .. user.version .. '"'
      user.version = user.version + 1
   else
      user = users[math.random(#users)]
      task = user.ids[math.random(#user.ids)]
   end
   headers["Authorization"] = user.auth
   local path = path_template:gsub("{user}", user.id):gsub("{id}", task):gsub("{tag}", user.tag)
   local body = nil
   if body_template ~= "" then
      body = body_template:gsub("{n}", tostring(counter))
      headers["Content-Type"] = "application/json"
   end
   return wrk.format(method, path, headers, body)
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
