-- wrk: POST /v1/sessions, cycling over the accounts that `scripts/bench
-- --accounts` registered (bench-user-0 ... bench-user-(N-1) at DOMAIN).
-- Usage: wrk -s bench/log_in.lua URL -- DOMAIN ACCOUNTS PASSWORD
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  domain = args[1]
  accounts = tonumber(args[2])
  password = args[3]
  counter = tid
end
function request()
  counter = counter + 1
  local body = string.format('{"email":"bench-user-%d@%s","password":"%s"}',
    counter % accounts, domain, password)
  return wrk.format("POST", "/v1/sessions", { ["Content-Type"] = "application/json" }, body)
end
