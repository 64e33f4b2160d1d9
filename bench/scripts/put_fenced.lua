-- PUT (upsert, update path) to a random key among BENCH_KEYS existing keys, fenced by the lease
-- BENCH_FENCE ("<name>=<token>") of the namespace.
local keys = tonumber(os.getenv("BENCH_KEYS") or "1000")
local entity = os.getenv("BENCH_ENTITY") or "scale"
local fence = os.getenv("BENCH_FENCE")

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

request = function()
  local path = "/v1/bench/misc/" .. entity .. "/records/k" .. math.random(0, keys - 1)
  return wrk.format("PUT", path, {["Content-Type"] = "application/json", ["Persistd-Fence"] = fence},
    '{"position":"long","priceOpen":42000.5,"note":"bench"}')
end
