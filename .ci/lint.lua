-- The Lua half of `make lint`, run by Neovim's own LuaJIT (`nvim -l .ci/lint.lua FILE...`): every file
-- compiles, writes no global variable (a missing `local`), reads only the globals Neovim's Lua has,
-- and every autocmd it creates has a `desc` (what `:autocmd` shows users). stylua, when installed,
-- checks the formatting (`make lint`); it cannot be installed from PyPI, so this does not need it.
local util = require("jit.util")
local vmdef = require("jit.vmdef")

local KNOWN = {}
for name in
  ([[vim require pairs ipairs type tostring tonumber string table math os io pcall xpcall error select
  unpack next setmetatable getmetatable rawget rawset rawequal print debug assert coroutine bit jit
  package _G load loadstring setfenv getfenv collectgarbage newproxy]]):gmatch("%S+")
do
  KNOWN[name] = true
end

local function opname(ins)
  local op = bit.band(ins, 0xff)
  return vmdef.bcnames:sub(op * 6 + 1, op * 6 + 6):gsub("%s+$", "")
end

--- Every global read (GGET) and written (GSET) in `fn` and the functions it defines: name → first line.
local function globals(fn, found)
  local info = util.funcinfo(fn)
  local pc = 1
  while true do
    local ins = util.funcbc(fn, pc)
    if not ins then
      break
    end
    local name = opname(ins)
    if name == "GGET" or name == "GSET" then
      local d = bit.rshift(ins, 16)
      local constant = util.funck(fn, -d - 1)
      found[#found + 1] = { op = name, name = constant, line = util.funcinfo(fn, pc).currentline }
    end
    pc = pc + 1
  end
  for i = 1, info.gcconsts or 0 do
    local child = util.funck(fn, -i)
    if type(child) == "proto" then
      globals(child, found)
    end
  end
  return found
end

local problems = 0
local function problem(file, line, text)
  problems = problems + 1
  io.stderr:write(("%s:%s: %s\n"):format(file, line or "?", text))
end

for _, file in ipairs(_G.arg) do
  local chunk, err = loadfile(file)
  if not chunk then
    problem(file, nil, err)
  else
    for _, g in ipairs(globals(chunk, {})) do
      if g.op == "GSET" then
        problem(file, g.line, ("writes the global '%s' (a missing `local`?)"):format(g.name))
      elseif not KNOWN[g.name] then
        problem(file, g.line, ("reads the unknown global '%s'"):format(g.name))
      end
    end
    local text = io.open(file):read("*a")
    local from = 1
    while true do
      local at, open = text:find("nvim_create_autocmd%s*%(", from)
      if not at then
        break
      end
      local call = text:match("^%b()", open) or ""
      if not call:find("desc%s*=") then
        local _, newlines = text:sub(1, at):gsub("\n", "")
        problem(file, newlines + 1, "an autocmd without `desc` (what :autocmd shows)")
      end
      from = open + 1
    end
  end
end
if problems > 0 then
  io.stderr:write(("lint: %d problem(s) in Lua\n"):format(problems))
  os.exit(1)
end
print(("lint: %d Lua files, no problems"):format(#_G.arg))
