-- wrk script for the echo service alone: PUTs to 100 objects in turn, each request with a
-- sampled W3C traceparent of its own, as the operator sends them. Both modes get the same
-- requests; only the server's telemetry differs.
local counter = 0

function init(args)
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
end

local function hex(digits)
    local out = {}
    for i = 1, digits do
        out[i] = string.format("%x", math.random(0, 15))
    end
    return table.concat(out)
end

function request()
    counter = counter + 1
    local headers = {
        ["Content-Type"] = "application/json",
        ["traceparent"] = "00-" .. hex(32) .. "-" .. hex(16) .. "-01",
    }
    return wrk.format("PUT", "/v1/echoes/bench/k" .. (counter % 100), headers, '{"message":"hello"}')
end
