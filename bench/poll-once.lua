-- wrk script: each device of a tokens CSV polls the DDI root at most once. Thread k
-- of n takes every n-th device; a thread past its share asks for /livez instead
-- (run it for less time than the fleet takes, or count those requests out).
-- Usage: wrk -tN ... -s bench/poll-once.lua URL -- TOKENS_CSV TENANT N
local threads = 0

function setup(thread)
  thread:set("index", threads)
  threads = threads + 1
end

local ids, tokens = {}, {}
local tenant = "default"
local counter = 0

function init(args)
  tenant = args[2] or "default"
  local step = tonumber(args[3] or "1")
  local n = 0
  for line in io.lines(args[1]) do
    local id, token = line:match("^([^,]+),([^,]+)$")
    if id and id ~= "id" then
      if n % step == index then
        ids[#ids + 1] = id
        tokens[#tokens + 1] = token
      end
      n = n + 1
    end
  end
end

function request()
  counter = counter + 1
  if counter > #ids then
    return wrk.format("GET", "/livez")
  end
  return wrk.format("GET", "/" .. tenant .. "/controller/v1/" .. ids[counter],
    { ["Authorization"] = "TargetToken " .. tokens[counter] })
end
