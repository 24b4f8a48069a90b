--- :TextGenTrain and :TextGenTrainStop: one training job at a time, run by Neovim's job control.
---
--- The job is `python -m textgen_core train - --json ...` in the Python host's interpreter, started
--- from here rather than from the Python host: TensorFlow never enters the host, the host stays free
--- to answer keystrokes, and Neovim itself stops the job when it exits (plus a parent-death signal,
--- so even a killed Neovim leaves no training process behind). Its JSON lines drive one progress line
--- that is rewritten in place; the finished model is hot-swapped into the engine. A Python without
--- TensorFlow is offered to install it first (textgen.train_deps), in a job that shows and stops the same way.
local child = require("textgen.child")
local config = require("textgen.config")
local host = require("textgen.host")
local message = require("textgen.message")
local save_place = require("textgen.save_place")
local train_deps = require("textgen.train_deps")
local training_text = require("textgen.training_text")
local util = require("textgen.util")

local M = {}

---@class textgen.TrainingJob
---@field id integer          job id (jobstop)
---@field pid integer         process id
---@field place {path: string, name: string}
---@field base string        the model fine-tuned from
---@field files string[]      what else it trains on, as given: file arguments, g:textgen.train_files
---@field source string       "this buffer", or the range's lines
---@field bytes integer       bytes of buffer text sent
---@field started number      vim.uv.hrtime() at start
---@field percent number
---@field val_bpc number|nil
---@field initial_val_bpc number|nil
---@field eta_s number|nil
---@field done table|nil      the "done" event
---@field error string|nil    the "error" event's message
---@field stderr string[]     last lines of its stderr
---@field cancelled boolean

---@type textgen.TrainingJob|nil  the job running now
M.job = nil
---@type table|nil  how the last job ended: outcome ("done", "cancelled", "failed"), message, place, ...
M.last = nil

--- TensorFlow threads for a training job: all cores but one, which stays with Neovim and its host.
function M.trainer_threads()
  local uv = vim.uv
  local cores = uv.available_parallelism and uv.available_parallelism() or #uv.cpu_info()
  return math.max(1, cores - 1)
end

local STDERR_LINES = 20
local STDERR_LINES_SHOWN = 3

local clock = util.clock

local function is_number(v)
  return type(v) == "number"
end

--- "val bpc 2.413 → 1.702 (29% lower)", or what is known of it.
local function before_after(before, after)
  if not is_number(after) then
    return "val bpc unknown"
  end
  if not is_number(before) then
    return ("val bpc %.3f"):format(after)
  end
  local change = before > 0 and (before - after) / before * 100 or 0
  return ("val bpc %.3f → %.3f (%d%% %s)"):format(
    before,
    after,
    math.floor(math.abs(change) + 0.5),
    change >= 0 and "lower" or "higher"
  )
end
M.before_after = before_after

local function elapsed(job)
  return (vim.uv.hrtime() - job.started) / 1e9
end

--- The progress line: "training 'proj' 42% · val bpc 2.10 (was 2.41) · ETA 0:31 · :TextGenTrainStop cancels".
local function progress_text(job)
  if job.percent == nil then
    local files = job.files or {}
    local also = #files == 1 and (" and " .. files[1]) or #files > 1 and (" and %d more"):format(#files) or ""
    return ("training '%s' on %s (%s)%s: starting TensorFlow…"):format(
      job.place.name,
      job.source or "this buffer",
      training_text.kilobytes(job.bytes),
      also
    )
  end
  local parts = { ("training '%s' %d%%"):format(job.place.name, math.floor(job.percent)) }
  if is_number(job.val_bpc) then
    parts[#parts + 1] = ("val bpc %.3f"):format(job.val_bpc)
      .. (is_number(job.initial_val_bpc) and (" (was %.3f)"):format(job.initial_val_bpc) or "")
  elseif is_number(job.initial_val_bpc) then
    parts[#parts + 1] = ("val bpc %.3f before"):format(job.initial_val_bpc)
  end
  if is_number(job.eta_s) then
    parts[#parts + 1] = "ETA " .. clock(job.eta_s)
  end
  parts[#parts + 1] = ":TextGenTrainStop cancels"
  return table.concat(parts, " · ")
end

--- How long a message about the running job stays in sight before progress lines come back.
M.QUIET_MS = 4000

local function show_progress(job)
  job.progress_line = progress_text(job)
  if job.quiet_until and vim.uv.now() < job.quiet_until then
    return -- a message the user needs to read is on the command line
  end
  message.progress(job.progress_line)
end

local function on_event(job, event)
  local kind = event.event
  if kind == "start" then
    job.initial_val_bpc = event.initial_val_bpc
    job.parameters = event.parameters
    job.train_bytes = event.train_bytes
    job.percent = 0
  elseif kind == "progress" or kind == "epoch" then
    job.percent = is_number(event.percent) and event.percent or job.percent
    job.eta_s = event.eta_s
    if is_number(event.val_bpc) then
      job.val_bpc = event.val_bpc
    end
  elseif kind == "done" then
    job.done = event
    job.percent = 100
  elseif kind == "error" then
    job.error = tostring(event.message)
    return
  else
    return
  end
  if not job.cancelled and kind ~= "done" then
    show_progress(job)
  end
end

local function finish(job, outcome, text, level)
  M.last = {
    outcome = outcome,
    message = text,
    place = job.place,
    base = job.base,
    before = job.done and job.done.initial_val_bpc or job.initial_val_bpc,
    after = job.done and job.done.val_bpc or nil,
    seconds = job.done and job.done.seconds or elapsed(job),
    stderr = job.stderr,
    pid = job.pid,
  }
  if M.job == job then
    M.job = nil
  end
  if text then
    message.say(text, level)
  end
end

--- Tell other plugins that a training ended (User TextGenTrainDone, :help textgen-events), once
--- M.last, the model setting and the swap say so. `reason`: "cancelled" or "failed"; `message`: what
--- the user was told (nil when it went well: that message comes once the new model is loaded).
local function announce_end(last)
  local ok = last.outcome == "done"
  require("textgen.events").fire("TextGenTrainDone", {
    ok = ok,
    model = ok and last.place.name or nil,
    path = last.place.path,
    reason = not ok and last.outcome or nil,
    message = last.message,
    base = last.base,
    seconds = is_number(last.seconds) and last.seconds or nil,
    initial_val_bpc = is_number(last.before) and last.before or nil,
    val_bpc = is_number(last.after) and last.after or nil,
  })
end

local function on_exit(job, code)
  if job.cancelled then
    finish(job, "cancelled", "training cancelled: nothing saved; the model in use is unchanged", vim.log.levels.INFO)
  elseif code == 0 and job.done then
    finish(job, "done", nil)
    M.last.swapping = job.place.path
    M.last.previous_model = config.get().model
    -- From here on requests name the new model; the swap reloads it even when its path is the old one's.
    config.set("model", job.place.path)
    host.swap(job.place.path, config.get().backend)
  elseif job.error then
    local why = message.as_written(job.error:gsub("<stdin>", "this buffer"), job.place.path, job.place.given)
    local prefix = job.percent == nil and "not training: " or "training failed: "
    finish(job, "failed", why:match("^training ") and why or (prefix .. why), vim.log.levels.ERROR)
  elseif message.signal_name(code) then
    local text = ("training killed (%s); the model in use is unchanged"):format(message.signal_name(code))
    finish(job, "failed", text, vim.log.levels.ERROR)
  else
    local last = job.stderr[#job.stderr]
    last = last and last:gsub("^textgen train: ", "")
    -- One line (the rest of its output is in :TextGenStatus).
    local text = ("training crashed (exit code %d)%s"):format(code, last and (": " .. last) or "")
    finish(job, "failed", text, vim.log.levels.ERROR)
  end
  announce_end(M.last)
end

--- The model to fine-tune from: the one in use (its folder when loaded), else the configured one.
local function base_model(cfg)
  local m = host.model
  if m and m.choice == cfg.model and type(m.path) == "string" then
    return m.path
  end
  return cfg.model
end

---@class textgen.TrainingAsked   what :TextGenTrain asked for, read when it was asked
---@field cmd string[]
---@field cwd string
---@field text string
---@field place {path: string, name: string}
---@field base string        the model fine-tuned from
---@field files string[]     what else it trains on, as given: file arguments, g:textgen.train_files
---@field source string      "this buffer", or the range's lines

--- Start the training job `asked` describes; false (and one message) when it cannot be started.
local function launch(asked)
  ---@type textgen.TrainingJob
  local job = {
    place = asked.place,
    base = asked.base,
    bytes = #asked.text,
    files = asked.files,
    source = asked.source,
    started = vim.uv.hrtime(),
    stderr = {},
    cancelled = false,
  }
  local env = child.env({
    PYTHONPATH = child.pythonpath(),
    TEXTGEN_MODELS_DIR = save_place.models_dir(),
    -- Where the host counted the default model's corpus n-gram, and the runtime to count it from
    -- if it did not yet: a model trained from the default one carries it over.
    TEXTGEN_CACHE_DIR = vim.fn.stdpath("cache") .. "/textgen",
    VIMRUNTIME = vim.env.VIMRUNTIME,
    TF_CPP_MIN_LOG_LEVEL = "3",
    -- Leave a core to the editor: at nice 19 TensorFlow's busy threads still delay the host's
    -- wake-ups and evict the model from the cache. A user's own setting wins.
    TF_NUM_INTRAOP_THREADS = vim.env.TF_NUM_INTRAOP_THREADS or tostring(M.trainer_threads()),
    TF_NUM_INTEROP_THREADS = vim.env.TF_NUM_INTEROP_THREADS or "1",
  })
  local ok, id = pcall(vim.fn.jobstart, asked.cmd, {
    cwd = asked.cwd,
    env = env,
    on_stdout = child.line_reader(function(line)
      local decoded_ok, event = pcall(vim.json.decode, line)
      if decoded_ok and type(event) == "table" then
        on_event(job, event)
      end
    end),
    on_stderr = child.line_reader(function(line)
      if line:match("%S") then
        util.keep_last(job.stderr, line, STDERR_LINES)
      end
    end),
    on_exit = function(_, code)
      on_exit(job, code)
    end,
  })
  if not ok or id <= 0 then
    message.say(
      ("cannot start training with %s (%s); run `make install` in the plugin's folder or set g:textgen.python"):format(
        asked.cmd[1],
        ok and ("jobstart returned " .. tostring(id)) or tostring(id)
      ),
      vim.log.levels.ERROR
    )
    return false
  end
  job.id = id
  job.pid = vim.fn.jobpid(id)
  M.job = job
  vim.fn.chansend(id, asked.text)
  vim.fn.chanclose(id, "stdin")
  show_progress(job)
  return true
end

--- Start training. `opts.args`: the command's words (a model name or path to save as, and files);
--- `opts.first`/`opts.last`: the range (whole buffer when nil). The text is read now; the job starts
--- once the Python has TensorFlow (textgen.train_deps checks, and offers to install it).
---@return boolean started  true also when it waits on the check or the install
function M.start(opts)
  if M.job then
    M.job.quiet_until = vim.uv.now() + M.QUIET_MS
    message.say(
      ("training '%s' is already running (%d%%); :TextGenTrainStop cancels it"):format(
        M.job.place.name,
        math.floor(M.job.percent or 0)
      ),
      vim.log.levels.WARN
    )
    return false
  end
  if train_deps.pending then
    train_deps.say_busy()
    return false
  end
  local cfg = config.get()
  local buf = vim.api.nvim_get_current_buf()
  local files, names = {}, {}
  for _, arg in ipairs(opts.args or {}) do
    if training_text.is_file_argument(arg) then
      files[#files + 1] = arg
    else
      names[#names + 1] = arg
    end
  end
  if #names > 1 then
    message.say(
      ("give one model name or folder to save as, not %d (%s); files to train on must exist"):format(
        #names,
        table.concat(names, ", ")
      ),
      vim.log.levels.ERROR
    )
    return false
  end
  local place, why = save_place.resolve(buf, names[1])
  why = why or save_place.unwritable(place.path)
  if why then
    message.say(why, vim.log.levels.ERROR)
    return false
  end
  -- Named in the first progress line: an argument that is an existing file is one, never the name.
  local given_files = vim.deepcopy(files)
  if #cfg.train_files > 0 then
    given_files[#given_files + 1] = "g:textgen.train_files"
  end
  files = training_text.files(vim.list_extend(vim.deepcopy(cfg.train_files), files))
  local text = training_text.buffer_text(
    buf,
    opts.first or 1,
    opts.last or vim.api.nvim_buf_line_count(buf)
  )
  local problem = training_text.problem(text, #files > 0)
  if problem then
    message.say(problem, vim.log.levels.ERROR)
    return false
  end

  local base = base_model(cfg)
  -- A place the job would refuse is refused now, before TensorFlow is looked for or offered.
  local refused = host.save_refusal(place.path)
  if refused then
    local job = { place = place, base = base, stderr = {}, started = vim.uv.hrtime() }
    finish(job, "failed", "not training: " .. message.as_written(refused, place.path, place.given), vim.log.levels.ERROR)
    announce_end(M.last)
    return false
  end
  local python = host.python()
  local args = { "train", "-" }
  vim.list_extend(args, files)
  vim.list_extend(args, { "--out", place.path, "--base", base, "--max-minutes", tostring(cfg.train_minutes), "--json" })
  vim.list_extend(args, cfg.train_args)
  ---@type textgen.TrainingAsked
  local asked = {
    cmd = child.command(python, "textgen_core", args),
    cwd = vim.fn.getcwd(),
    text = text,
    place = place,
    base = base,
    files = given_files,
    source = opts.first and ("lines %d–%d"):format(opts.first, opts.last) or "this buffer",
  }
  return train_deps.when_ready(python, function()
    launch(asked)
  end)
end

--- Cancel the running job: SIGTERM, then SIGKILL if it has not ended after Neovim's grace period (2 s).
---@return boolean cancelled
function M.stop()
  local job = M.job
  if not job and train_deps.stop() then
    return true
  end
  if not job then
    message.say("no training is running", vim.log.levels.INFO)
    return false
  end
  job.cancelled = true
  vim.fn.jobstop(job.id)
  return true
end

--- Called by textgen.host when a model is loaded: announce the end of a training whose model it is.
function M.on_model_loaded(name, summary)
  local last = M.last
  if not (last and last.swapping and last.swapping == name) then
    return
  end
  last.swapping = nil
  last.in_use = true
  last.message = ("trained '%s', now in use: %s in %s; saved in %s"):format(
    last.place.name,
    before_after(last.before, last.after),
    clock(last.seconds or 0),
    vim.fn.fnamemodify(last.place.path, ":~")
  )
  message.say(last.message, vim.log.levels.INFO)
end

function M.on_model_error(name, reason)
  local last = M.last
  if last and last.swapping == name then
    last.swapping = nil
    last.message = ("trained and saved %s, but it cannot be loaded: %s"):format(last.place.path, reason)
    config.set("model", last.previous_model) -- the engine still serves that one
    message.say(last.message, vim.log.levels.ERROR)
  end
end

--- For statuslines: state, percent, val bpc, ETA (never waits on anything).
function M.status()
  local job = M.job
  local installing = not job and train_deps.status()
  if installing then
    return installing
  end
  if job then
    return {
      state = "running",
      name = job.place.name,
      path = job.place.path,
      percent = job.percent or 0,
      val_bpc = job.val_bpc,
      initial_val_bpc = job.initial_val_bpc,
      eta_s = job.eta_s,
      pid = job.pid,
      text = ("training %d%%"):format(math.floor(job.percent or 0))
        .. (is_number(job.eta_s) and (" ETA " .. clock(job.eta_s)) or ""),
    }
  end
  local last = M.last
  if last then
    return {
      state = last.outcome,
      name = last.place.name,
      path = last.place.path,
      val_bpc = last.after,
      initial_val_bpc = last.before,
      pid = last.pid,
      text = "",
    }
  end
  return { state = "idle", text = "" }
end

--- What :TextGenStatus says about training.
---@return string[]
function M.status_lines()
  local job = M.job
  if job then
    return { ("training: %s → %s (from %s)"):format(progress_text(job), job.place.path, job.base) }
  end
  local lines = train_deps.status_lines()
  local last = M.last
  if not last then
    if #lines == 0 then
      lines[1] = "training: none this session (:TextGenTrain)"
    end
    return lines
  end
  if last.outcome == "done" then
    lines[#lines + 1] = ("last training: %s in %s, from %s; saved %s%s"):format(
      before_after(last.before, last.after),
      clock(last.seconds or 0),
      last.base,
      last.place.path,
      last.in_use and " (in use)" or ""
    )
  else
    lines[#lines + 1] = ("last training (%s → %s): %s"):format(
      last.place.name,
      last.place.path,
      last.message or last.outcome
    )
    if last.outcome == "failed" then
      for i = math.max(1, #last.stderr - STDERR_LINES_SHOWN + 1), #last.stderr do
        lines[#lines + 1] = "  | " .. last.stderr[i]
      end
    end
  end
  return lines
end

--- Neovim is exiting: end the job now (Neovim would too, this just does not wait for it).
function M.on_exit()
  train_deps.on_exit()
  if M.job then
    M.job.cancelled = true
    pcall(vim.fn.jobstop, M.job.id)
  end
end

return M
