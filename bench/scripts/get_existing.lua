-- GET a random key among BENCH_KEYS existing keys k0..k{N-1}.
local keys = tonumber(os.getenv("BENCH_KEYS") or "1000")
local entity = os.getenv("BENCH_ENTITY") or "read"

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

request = function()
  return wrk.format("GET", "/v1/bench/misc/" .. entity .. "/records/k" .. math.random(0, keys - 1))
end
