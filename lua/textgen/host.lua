--- The Lua side of the Python host (rplugin/python3/textgen): every call into it, and every answer
--- out of it (the host calls `require('textgen.host')[name](...)` through its EditorBridge).
---
--- Calls into the host are notifications (they never wait for the model), except `status` and
--- `model_names`, which a user asked for and waits on.
local M = {}

---@type table|nil  what the host said about the model it serves (name, path, val_bpc, ...)
M.model = nil
---@type {name: string, backend: string, message: string}|nil  the configured model failed to load
M.model_error = nil
---@type string|nil  why the Python host cannot be used at all
M.broken = nil

local message = require("textgen.message")

--- Whether the remote plugin's functions are known to Neovim (the manifest registered them).
function M.registered()
  return vim.fn.exists("*TextGenHostRequest") == 1 or vim.fn.exists("#FuncUndefined#TextGenHostRequest") == 1
end

--- Whether the Python host process is running.
function M.running()
  local ok, running = pcall(vim.fn["remote#host#IsRunning"], "python3")
  return ok and running == 1
end

--- Call a function of the remote plugin; starts the Python host on first use (that one call waits
--- for the host to start: well under a second; the model itself loads in the background).
local function call(name, ...)
  if M.broken then
    return false, M.broken
  end
  if not M.registered() then
    M.broken = "the remote plugin is not registered: run :UpdateRemotePlugins and restart Neovim"
    message.say_once(M.broken, vim.log.levels.ERROR)
    return false, M.broken
  end
  local ok, result = pcall(vim.fn[name], ...)
  if not ok and not M.running() then
    M.broken = "the Python host does not start ("
      .. tostring(result):gsub("\n.*", "")
      .. "); set g:python3_host_prog to a Python with pynvim and numpy"
    message.say_once("the Python host does not start; see :checkhealth textgen", vim.log.levels.ERROR)
  end
  return ok, result
end

--- Whether a request can be answered with this configuration; when `explicit`, say why not.
---@param config textgen.Config
function M.can_serve(config, explicit)
  if M.broken then
    if explicit then
      message.say(M.broken, vim.log.levels.ERROR)
    end
    return false
  end
  local e = M.model_error
  if e and e.name == config.model and e.backend == config.backend then
    if explicit then
      message.say(M.short_reason(e.message) .. M.WAY_OUT, vim.log.levels.ERROR)
    end
    return false
  end
  return true
end

M.WAY_OUT = "; choose one with :TextGenModel"

--- The first clause of a load error ("no model named 'x'"), for a one-line message.
function M.short_reason(reason)
  return reason:match("^[^;]*")
end

--- Start the host and load the configured model in the background, before the first keystroke needs it.
---@param config textgen.Config
function M.warm_up(config)
  if M.model or M.warming then
    return
  end
  M.warming = true
  call("TextGenHostLoad", config.model, config.backend, false)
end

function M.request(payload)
  call("TextGenHostRequest", payload)
end

function M.cancel(buf)
  if M.running() then
    call("TextGenHostCancel", buf)
  end
end

--- Switch to a model; the host answers with on_model_loaded or on_model_error.
function M.load(name, backend)
  M.model_error = nil
  call("TextGenHostLoad", name, backend, true)
end

--- Serve a freshly trained model: loaded again even when its path is that of the model in use.
function M.swap(path, backend)
  M.model_error = nil
  call("TextGenHostSwap", path, backend)
end

--- The host's view (model, engine, latencies); waits for the host. Nil when it cannot be reached.
function M.status()
  local ok, status = call("TextGenHostStatus")
  return ok and status or nil
end

--- Model names for command-line completion (user models, then the shipped ones).
function M.model_names()
  local ok, names = call("TextGenHostModelNames")
  return ok and names or {}
end

-- Answers from the Python host ------------------------------------------------------------------

function M.on_result(ticket, texts, final, elapsed_ms, err)
  require("textgen.suggestion").on_result(ticket, texts, final, elapsed_ms, err)
end

function M.on_model_loaded(name, backend, summary, announce)
  M.warming = false
  M.model = summary
  M.model_error = nil
  local train = package.loaded["textgen.train"]
  if train then
    train.on_model_loaded(name, summary)
  end
  if announce then
    require("textgen.config").set("model", name)
    local bpc = summary.val_bpc ~= vim.NIL and summary.val_bpc and (", val bpc %.3f"):format(summary.val_bpc) or ""
    message.say(
      ("model '%s' loaded (%d×%d GRU%s)"):format(summary.name, summary.layers, summary.hidden, bpc),
      vim.log.levels.INFO
    )
  end
end

function M.on_model_error(name, backend, reason, explicit)
  M.warming = false
  M.model_error = { name = name, backend = backend, message = reason }
  local train = package.loaded["textgen.train"]
  if train then
    train.on_model_error(name, reason)
  end
  require("textgen.suggestion").drop_requests()
  -- One line, e.g. "no model named 'default'; choose one with :TextGenModel"; :TextGenStatus has it all.
  if explicit then
    message.say(M.short_reason(reason) .. " (details: :TextGenStatus)", vim.log.levels.ERROR)
  else
    message.say_once(M.short_reason(reason) .. M.WAY_OUT, vim.log.levels.WARN)
  end
end

--- A completion failed inside the engine (a bug or a broken model): say it once.
function M.report_error(reason)
  message.say_once("completion failed: " .. tostring(reason), vim.log.levels.WARN)
end

return M
