-- wrk: POST /v1/products with a unique sku and slug per request.
-- Usage: wrk -s bench/create_product.lua URL -- RUN_ID
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  run_id = args[1] or "run"
  counter = 0
end
function request()
  counter = counter + 1
  local key = string.format("%s-%d-%d", run_id, tid, counter)
  local body = string.format(
    '{"sku":"B-%s","name":"Bench product %s","slug":"bench-%s","regular_price":"1290.00","sale_price":990,"stock_quantity":25}',
    key, key, key)
  return wrk.format("POST", "/v1/products", { ["Content-Type"] = "application/json" }, body)
end
