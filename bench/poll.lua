-- wrk script: each request polls the DDI root as one of many devices, in turn.
-- Usage: wrk ... -s bench/poll.lua URL -- TOKENS_CSV TENANT
local ids, tokens = {}, {}
local tenant = "default"
local counter = 0

function init(args)
  tenant = args[2] or "default"
  for line in io.lines(args[1]) do
    local id, token = line:match("^([^,]+),([^,]+)$")
    if id and id ~= "id" then
      ids[#ids + 1] = id
      tokens[#tokens + 1] = token
    end
  end
  counter = math.random(#ids)
end

function request()
  counter = counter % #ids + 1
  return wrk.format("GET", "/" .. tenant .. "/controller/v1/" .. ids[counter],
    { ["Authorization"] = "TargetToken " .. tokens[counter] })
end
