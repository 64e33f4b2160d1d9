-- PUT one small document per request, each to a key never written before (the insert path).
local counter = 0
local prefix = "x"
local entity = os.getenv("BENCH_ENTITY") or "put"

function setup(thread)
  thread:set("tid", tostring(math.random(1, 1e9)))
end

function init(args)
  prefix = tid or tostring(math.random(1, 1e9))
end

request = function()
  counter = counter + 1
  local path = "/v1/bench/misc/" .. entity .. "/records/" .. prefix .. "-" .. counter
  return wrk.format("PUT", path, {["Content-Type"] = "application/json"},
    '{"position":"long","priceOpen":42000.5,"note":"bench"}')
end
