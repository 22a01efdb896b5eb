-- wrk: POST /v1/products with a unique sku and slug per request.
-- Usage: BENCH_TOKEN=... wrk -s bench/create_product.lua URL -- RUN_ID [DELAY_MS]
-- BENCH_TOKEN is an admin's bearer token (catalog writes are the admins').
-- With DELAY_MS, each connection waits that long before each request, which
-- paces the load: about CONNECTIONS * 1000 / (DELAY_MS + latency) requests/s.
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  run_id = args[1] or "run"
  token = os.getenv("BENCH_TOKEN") or ""
  pause = tonumber(args[2] or "0")
  counter = 0
end
function delay()
  return pause
end
function request()
  counter = counter + 1
  local key = string.format("%s-%d-%d", run_id, tid, counter)
  local body = string.format(
    '{"sku":"B-%s","name":"Bench product %s","slug":"bench-%s","regular_price":"1290.00","sale_price":990,"stock_quantity":25}',
    key, key, key)
  return wrk.format("POST", "/v1/products",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }, body)
end
