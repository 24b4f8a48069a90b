--- The Python host: a pynvim remote-plugin host of textgen's own (rplugin/python3/textgen), started
--- with the plugin's Python, and every call into it and answer out of it.
---
--- The host is a job of this Neovim with an RPC channel, started on first use with the plugin's
--- `.venv` Python (or `g:textgen.python`): the user's `g:python3_host_prog`, their python3 provider
--- and the remote-plugin manifest are neither needed nor touched. Calls are notifications that
--- never wait for the model; what a user asked for and waits on (`status`, `model_names`) waits at
--- most `ANSWER_TIMEOUT_MS`. A host that dies (an out-of-memory kill) is reported once and a fresh one
--- is started by the next request, at most `RESTARTS_PER_MINUTE` times a minute. The host calls back
--- `require('textgen.host')[name](...)` through its EditorBridge.
local message = require("textgen.message")
local save_place = require("textgen.save_place")
local util = require("textgen.util")

local M = {}

---@type table|nil  what the host said about the model it serves (name, path, val_bpc, ...)
M.model = nil
---@type {name: string, backend: string, message: string}|nil  the configured model failed to load
M.model_error = nil
---@type string|nil  why the Python host cannot be used at all (no Python to run it with)
M.broken = nil
---@type {code: integer, stderr: string[], at: number|nil}|nil  how the last host ended (`at`: nil while it runs)
M.last_exit = nil

M.PLUGIN_PATH = save_place.PLUGIN_ROOT .. "/rplugin/python3/textgen"
M.ANSWER_TIMEOUT_MS = 2000
M.RESTARTS_PER_MINUTE = 3

-- pynvim's host on our plugin alone; '' is dropped from sys.path so the current directory's Python
-- files cannot shadow a module of the host. asyncio, under pynvim, imports ssl (and OpenSSL's
-- libraries) for TLS connections, which the host never makes: kept out (None in sys.modules, which
-- asyncio takes as a Python without ssl), 5 ms of every start (AMD EPYC).
local HOST_MAIN = "import sys; sys.path = [p for p in sys.path if p != '']; sys.modules.setdefault('ssl', None); "
  .. "import pynvim; pynvim.start_host()"
local STDERR_LINES = 20

local channel = nil ---@type integer|nil
local starts = {} ---@type number[]  when recent hosts were started (seconds, monotonic)
local answers = {} ---@type table<integer, any>
local last_question = 0
local exiting = false

local function now_s()
  return vim.uv.hrtime() / 1e9
end

--- g:textgen.python (expanded), or nil where the user did not set it.
local function configured_python()
  local cfg = type(vim.g.textgen) == "table" and vim.g.textgen or {}
  if type(cfg.python) == "string" and cfg.python ~= "" then
    return vim.fn.expand(cfg.python)
  end
end

--- The Python that runs the host and training: g:textgen.python, else the plugin's own `.venv`.
---@return string
function M.python()
  return configured_python() or save_place.PLUGIN_ROOT .. "/.venv/bin/python"
end

--- Why the host cannot be started with `python`, or nil.
function M.python_problem(python)
  if vim.fn.executable(python) == 1 then
    return nil
  end
  if configured_python() then
    local state = vim.uv.fs_stat(python) and "is not an executable program" or "is missing"
    return ("no Python to run textgen with: g:textgen.python (%s) %s; point it at a Python, or unset it to use %s/.venv (`make install` makes it)"):format(
      python,
      state,
      save_place.PLUGIN_ROOT
    )
  end
  return ("no Python to run textgen with: %s is missing; run `make install` in %s, or set g:textgen.python"):format(
    python,
    save_place.PLUGIN_ROOT
  )
end

--- Whether the Python host process is running.
function M.running()
  return channel ~= nil
end

--- The host's process id, or nil.
function M.pid()
  if not channel then
    return nil
  end
  local ok, pid = pcall(vim.fn.jobpid, channel)
  return ok and pid or nil
end

local function describe_exit(exit)
  local last = exit.stderr[#exit.stderr]
  return message.exit_reason(exit.code) .. (last and (": " .. last) or "")
end

local function on_exit(id, code)
  if id ~= channel then
    return
  end
  channel = nil
  M.last_exit.code, M.last_exit.at = code, now_s()
  M.model = nil
  M.warming = false
  answers = {}
  require("textgen.suggestion").drop_requests()
  if not exiting then
    if not M.say_held_back() then
      message.say(
        ("the Python host stopped (%s); a new one starts with the next suggestion"):format(describe_exit(M.last_exit)),
        vim.log.levels.WARN
      )
    end
  end
end

--- Seconds until a host may be started again, after `RESTARTS_PER_MINUTE` of them stopped within a
--- minute (a host that dies at once must not be started on every keystroke); nil when one may start.
---@return number|nil
function M.held_back()
  if channel then
    return nil
  end
  local t = now_s()
  starts = vim.tbl_filter(function(s)
    return t - s < 60
  end, starts)
  if #starts < M.RESTARTS_PER_MINUTE then
    return nil
  end
  return math.max(0, 60 - (t - starts[1]))
end

--- Why no host runs while `held_back()`: one line, the way out first.
function M.held_back_reason()
  local last = M.last_exit and M.last_exit.at and describe_exit(M.last_exit)
  return ("the Python host stopped %d times within a minute; the next suggestion after %.0f s starts one%s"):format(
    M.RESTARTS_PER_MINUTE,
    math.ceil(M.held_back() or 0),
    last and (" (last: " .. last .. ")") or ""
  )
end

--- Say why no host runs when it is `held_back()`; whether it is.
function M.say_held_back()
  if not M.held_back() then
    return false
  end
  message.say(M.held_back_reason(), vim.log.levels.ERROR)
  return true
end

--- Start the host now; returns its channel, or nil (and says why) when it cannot be started.
local function start()
  local python = M.python()
  local problem = M.python_problem(python)
  if problem then
    M.broken = problem
    message.say_once(problem, vim.log.levels.ERROR)
    return nil
  end
  local t = now_s()
  if M.held_back() then
    return nil -- said when the last one stopped; :TextGenStatus and :TextGenComplete say it again
  end
  local stderr = {}
  local ok, id = pcall(vim.fn.jobstart, { python, "-c", HOST_MAIN, M.PLUGIN_PATH }, {
    rpc = true,
    -- Where models are named, where the host caches what it counts (stdpath('cache'), as
    -- memory.cache_dir), and the runtime whose help and Lua files the corpus n-gram counts.
    env = {
      TEXTGEN_MODELS_DIR = save_place.models_dir(),
      TEXTGEN_CACHE_DIR = vim.fn.stdpath("cache") .. "/textgen",
      VIMRUNTIME = vim.env.VIMRUNTIME,
    },
    on_stderr = function(_, data)
      for _, line in ipairs(data) do
        if line:match("%S") then
          util.keep_last(stderr, line, STDERR_LINES)
        end
      end
    end,
    on_exit = function(job, code)
      on_exit(job, code)
    end,
  })
  if not ok or id <= 0 then
    M.broken = ("cannot start the Python host with %s (%s)"):format(python, ok and ("jobstart: " .. id) or id)
    message.say_once(M.broken, vim.log.levels.ERROR)
    return nil
  end
  starts[#starts + 1] = t
  channel = id
  M.broken = nil
  M.last_exit = { code = -1, stderr = stderr, at = nil }
  return channel
end

local function method(name)
  return M.PLUGIN_PATH .. ":function:" .. name
end

--- The last `SENT_KEPT` notifications sent, oldest first, for tests and debugging
--- (`:lua =require('textgen.host').sent`): each `{ name = ..., event = ..., buf = ..., text_bytes = ... }`,
--- the last three for TextGenHostBuffer only (`text_bytes`: nil when no text went). Never any text.
---@type {name: string, event: string|nil, buf: integer|nil, text_bytes: integer|nil}[]
M.sent = {}
M.SENT_KEPT = 50

local function remember_sent(name, info)
  local entry = { name = name }
  if name == "TextGenHostBuffer" then
    entry.event, entry.buf = info.event, info.buf
    entry.text_bytes = type(info.text) == "string" and #info.text or nil
  end
  util.keep_last(M.sent, entry, M.SENT_KEPT)
end

--- Send a notification to the host, starting it if needed.
local function notify(name, ...)
  local chan = channel or start()
  if not chan then
    return false
  end
  local ok = pcall(vim.rpcnotify, chan, method(name), { ... })
  if ok then
    remember_sent(name, ...)
  end
  return ok
end

--- Ask the host something and wait for the answer, at most ANSWER_TIMEOUT_MS (Neovim stays
--- responsive meanwhile: vim.wait handles events). Returns the answer, or nil and why not.
local function ask(question, ...)
  if not channel then
    return nil, M.held_back() and M.held_back_reason() or "not running (it starts with the first suggestion)"
  end
  last_question = last_question + 1
  local id = last_question
  if not notify("TextGenHostAsk", id, question, ...) then
    return nil, "not running"
  end
  local answered = vim.wait(M.ANSWER_TIMEOUT_MS, function()
    return answers[id] ~= nil or channel == nil
  end, 5)
  local answer = answers[id]
  answers[id] = nil
  if answer == nil then
    return nil,
      answered and "stopped" or ("busy or stuck (no answer within %.0f s)"):format(M.ANSWER_TIMEOUT_MS / 1000)
  end
  return answer
end

--- Whether a request can be answered with this configuration; when `explicit`, say why not.
---@param config textgen.Config
function M.can_serve(config, explicit)
  if M.broken and M.python_problem(M.python()) then
    if explicit then
      message.say(M.broken, vim.log.levels.ERROR)
    end
    return false
  end
  if explicit and M.say_held_back() or M.held_back() then
    return false
  end
  local e = M.model_error
  if e and e.name == config.model and e.backend == config.backend then
    if explicit then
      message.say(M.short_reason(e.message), vim.log.levels.ERROR, M.WAY_OUT)
    end
    return false
  end
  return true
end

M.WAY_OUT = "; choose one with :TextGenModel"

---@type table<string, string>  absolute model folder → the path as the user wrote it (:TextGenModel)
M.given = {}

--- `reason` with the absolute folders the user named shown as they wrote them ("~/m/novel/...").
function M.as_given(reason, name)
  return message.as_written(reason, name, M.given[name])
end

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
  M.warming = notify("TextGenHostLoad", config.model, config.backend, false)
end

--- Ask for a suggestion; false when no host could take the request.
function M.request(payload)
  return notify("TextGenHostRequest", payload)
end

function M.cancel(buf)
  if channel then
    notify("TextGenHostCancel", buf)
  end
end

--- Switch to a model; the host answers with on_model_loaded or on_model_error.
function M.load(name, backend)
  M.model_error = nil
  if not notify("TextGenHostLoad", name, backend, true) then
    M.say_held_back()
  end
end

--- Serve a freshly trained model: loaded again even when its path is that of the model in use.
function M.swap(path, backend)
  M.model_error = nil
  if not notify("TextGenHostSwap", path, backend) then
    M.say_held_back()
  end
end

--- The host's view (model, engine, latencies), or nil and why not (waits ANSWER_TIMEOUT_MS at most).
function M.status()
  return ask("status")
end

--- Whether the running host keeps project memory: its loaded model's summary says so (`memory`);
--- a host from before it would report the unknown TextGenHostBuffer as an error in Neovim, which a
--- pcall cannot catch. nil: no model loaded yet.
---@return boolean|nil
function M.keeps_memory()
  if not channel or not M.model then
    return nil
  end
  return M.model.memory == true
end

--- Tell a running host what buffer `info.buf` holds (textgen.memory builds `info`); false when none
--- runs or it keeps no memory (yet): memory never starts a host, and tells it at its next event.
function M.buffer(info)
  if not M.keeps_memory() then
    return false
  end
  return notify("TextGenHostBuffer", info)
end

--- Ask the host to "rebuild" or "clear" the project memory; `callback(answer, why_not)` gets
--- `{ message = ... }`, or nil and why not (it waits ANSWER_TIMEOUT_MS at most).
---@param action "rebuild"|"clear"
---@param callback fun(answer: {message: string}|nil, why: string|nil)
function M.project(action, callback)
  if channel and M.model and not M.keeps_memory() then
    callback(nil, "one without project memory (started before the plugin was updated?)")
    return
  end
  callback(ask("project", action))
end

--- Why the host would refuse to save a model at `path` (a folder holding what is not a model:
--- `check_save_target`), or nil: it may, or the host cannot say now (not running, as with
--- `auto_trigger` off before the first suggestion, or busy for ANSWER_TIMEOUT_MS; the training job
--- checks again before any work).
---@param path string
---@return string|nil
function M.save_refusal(path)
  local answer = ask("save_refusal", path)
  return type(answer) == "string" and answer ~= "" and answer or nil
end

--- Model names for command-line completion (user models, then the shipped ones).
function M.model_names()
  local names = ask("model_names")
  return names or {}
end

--- Neovim is exiting: the host's end is expected, not news.
function M.on_vim_leave()
  exiting = true
end

-- Answers from the Python host ------------------------------------------------------------------

function M.on_answer(id, value)
  if id == last_question then -- the one being waited for; a late answer to an older one is dropped
    answers[id] = value
  end
end

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
  local memory = package.loaded["textgen.memory"]
  if memory then
    memory.on_host_ready()
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

--- A model did not load. `kept`: it is the one in use, whose folder no longer loads (changed or
--- deleted since): the copy in memory goes on serving, and the user is told why.
function M.on_model_error(name, backend, reason, explicit, kept)
  M.warming = false
  reason = M.as_given(reason, name)
  if kept then
    message.say(("%s; still serving the copy loaded before"):format(M.short_reason(reason)), vim.log.levels.WARN)
    return
  end
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
    message.say_once(M.short_reason(reason), vim.log.levels.WARN, M.WAY_OUT)
  end
end

--- A completion failed inside the engine (a bug or a broken model): say it once.
function M.report_error(reason)
  message.say_once("completion failed: " .. tostring(reason), vim.log.levels.WARN)
end

return M
