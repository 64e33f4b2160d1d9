-- POST batch-put with BENCH_BATCH items per request, every key new (the insert path).
local batch = tonumber(os.getenv("BENCH_BATCH") or "100")
local counter = 0
local prefix = "x"
local entity = os.getenv("BENCH_ENTITY") or "batch"

function setup(thread)
  thread:set("tid", tostring(math.random(1, 1e9)))
end

function init(args)
  prefix = tid or tostring(math.random(1, 1e9))
end

request = function()
  local items = {}
  for i = 1, batch do
    counter = counter + 1
    items[i] = '{"key":"' .. prefix .. "-" .. counter ..
      '","value":{"position":"long","priceOpen":42000.5,"note":"bench"}}'
  end
  return wrk.format("POST", "/v1/bench/misc/" .. entity .. "/batch-put",
    {["Content-Type"] = "application/json"}, '{"items":[' .. table.concat(items, ",") .. ']}')
end
