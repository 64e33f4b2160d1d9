-- PUT (upsert, update path) to a random key among BENCH_KEYS existing keys, fenced by a lease of
-- the namespace: BENCH_FENCE is "<name>=<token>", or several of them comma-separated (one picked
-- at random per request, as many bots each under its own lease).
local keys = tonumber(os.getenv("BENCH_KEYS") or "1000")
local entity = os.getenv("BENCH_ENTITY") or "scale"
local fences = {}
for fence in string.gmatch(os.getenv("BENCH_FENCE") or "", "[^,]+") do
  table.insert(fences, fence)
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

request = function()
  local path = "/v1/bench/misc/" .. entity .. "/records/k" .. math.random(0, keys - 1)
  local headers = {["Content-Type"] = "application/json",
                   ["Persistd-Fence"] = fences[math.random(1, #fences)]}
  return wrk.format("PUT", path, headers, '{"position":"long","priceOpen":42000.5,"note":"bench"}')
end
