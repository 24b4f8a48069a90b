--- Training on demand: the Python packages that training needs (TensorFlow and Keras, the `train`
--- extra of pyproject.toml), which the base install leaves out. Whether the host's Python has them,
--- the offer to install them, and the pip job that does.
---
--- Key design ideas:
--- - The check is a job (`python -c`, importlib.util.find_spec: nothing is imported), so the editor
---   never waits on it. A yes is kept for the session, per Python; a no is asked again next time.
--- - The offer is a vim.ui.select: a user's picker (telescope, fzf-lua, snacks, dressing) asks it, else
---   Neovim's own numbered list, which a test answers like a user. No answer counts as no, and a no
---   changes nothing but one message saying how to add training later.
--- - pip runs as a job the way training does: its lines drive the same progress line,
---   :TextGenTrainStop cancels it, Neovim's exit ends it; when it succeeds, the training that was
---   asked for starts.
--- - Nothing is installed into a Python outside a virtual environment: that user gets the command.
local child = require("textgen.child")
local message = require("textgen.message")
local save_place = require("textgen.save_place")
local util = require("textgen.util")

local M = {}

-- What `pip install -e '<root>[train]'` adds to a Python that has the base install (numpy, pynvim),
-- measured on Linux x86_64, Python 3.11, with tensorflow 2.21.0, keras 3.15.1, tensorboard 2.21.0 and
-- their 32 dependencies: 635 MB of wheels downloaded (tensorflow's alone 572 MB), 2.2 GB on disk (`du`
-- of the 35 distributions' files; tensorflow alone 1.9 GB), 37 s in all on a fast link to PyPI.
M.DOWNLOAD = "635 MB"
M.DISK = "2.2 GB"
M.TIME = "about a minute on a fast connection"

-- Which of training's modules this Python lacks, and whether it is a virtual environment's.
local CHECK = [[
import sys
sys.path[:] = [p for p in sys.path if p != ""]  # not the working directory's modules (lua/textgen/child.lua)
import importlib.util, json
missing = [name for name in ("tensorflow", "keras") if importlib.util.find_spec(name) is None]
print(json.dumps({"missing": missing, "venv": sys.prefix != sys.base_prefix}))
]]

local NAMES = { tensorflow = "TensorFlow", keras = "Keras" }
local OUTPUT_LINES = 20
local OUTPUT_LINES_SHOWN = 3

---@class textgen.TrainingRequest
---@field python string
---@field start fun()          starts the training that was asked for
---@field phase "checking"|"asking"|"installing"
---@field installed boolean|nil   pip has run and succeeded
---@field id integer|nil       pip's job id
---@field pid integer|nil
---@field started number|nil   vim.uv.hrtime() when pip started
---@field line string|nil      pip's last line on stdout
---@field output string[]|nil  pip's last lines
---@field cancelled boolean|nil
---@field quiet_until number|nil

---@type textgen.TrainingRequest|nil  a training waiting on its packages
M.pending = nil
--- The last install that did not succeed: how it ended, pip's last lines, the command to run by hand.
---@type {outcome: string, message: string, output: string[], command: string}|nil
M.last = nil
local ready = {} ---@type table<string, boolean>  the Pythons that have training's packages

--- A path or word as a shell command takes it: quoted only where needed.
local function shell_word(word)
  return word:match("^[%w/._+=:@%%-]+$") and word or vim.fn.shellescape(word)
end

--- Whether `python` is the plugin's own .venv's, as written (a venv's python is a link to the base
--- interpreter, so links are not followed).
local function is_plugin_venv(python)
  local function path(p)
    return vim.fs.normalize(vim.fn.fnamemodify(p, ":p"))
  end
  return path(python) == path(save_place.PLUGIN_ROOT .. "/.venv/bin/python")
end

--- The pip command that adds training's packages to `python`, as a user types it.
function M.pip_command(python)
  return ("%s -m pip install -e %s"):format(shell_word(python), vim.fn.shellescape(save_place.PLUGIN_ROOT .. "[train]"))
end

--- The one command that adds training to `python`: `make install-train` for the plugin's own .venv,
--- else pip's.
function M.add_command(python)
  if is_plugin_venv(python) then
    return ("make -C %s install-train"):format(shell_word(save_place.PLUGIN_ROOT))
  end
  return M.pip_command(python)
end

local function names(missing)
  local words = vim.tbl_map(function(module)
    return NAMES[module] or module
  end, missing)
  return table.concat(words, " and ")
end

local function elapsed(p)
  return (vim.uv.hrtime() - p.started) / 1e9
end

local function progress_text(p)
  return ("installing TensorFlow for training %s · :TextGenTrainStop cancels · %s"):format(
    util.clock(elapsed(p)),
    p.line or "starting pip…"
  )
end

local function show_progress(p)
  if M.pending ~= p or p.cancelled or (p.quiet_until and vim.uv.now() < p.quiet_until) then
    return
  end
  message.progress(progress_text(p))
end

local function stop_timer(p)
  if p.timer then
    p.timer:stop()
    p.timer:close()
    p.timer = nil
  end
end

--- `p` waits no more.
local function settle(p)
  stop_timer(p)
  if M.pending == p then
    M.pending = nil
  end
end

local install

--- Ask whether to install what is missing; a yes installs, anything else declines.
local function offer(p, missing)
  p.phase = "asking"
  local prompt = ("textgen: training needs %s, which %s lacks. Install %s there (%s download, %s on disk, %s)?"):format(
    names(missing),
    p.python,
    #missing > 1 and "them" or "it",
    M.DOWNLOAD,
    M.DISK,
    M.TIME
  )
  local yes = "Install now, in the background (:TextGenTrainStop cancels)"
  vim.ui.select({ yes, "Not now" }, { prompt = prompt, kind = "textgen.install_training" }, function(choice)
    -- Neovim's own list scrolled the screen up: redrawn, the next message is not a "Press ENTER".
    vim.cmd("redraw")
    if M.pending ~= p then
      return -- cancelled while the question was open
    end
    if choice == yes then
      install(p)
    else
      settle(p)
      message.say(
        ("training stays off; to add %s later: %s"):format(names(missing), M.add_command(p.python)),
        vim.log.levels.INFO
      )
    end
  end)
end

--- What to do once the check has answered (`found`: its JSON, nil when the check could not run).
local function on_checked(p, found)
  if M.pending ~= p then
    return
  end
  if not found or #found.missing == 0 then
    -- Ready, or the check could not tell: the training job reports any problem with this Python itself.
    if found then
      ready[p.python] = true
      M.last = nil
    end
    settle(p)
    p.start()
    return
  end
  if p.installed then
    settle(p)
    M.last = {
      outcome = "failed",
      message = "pip succeeded, but " .. names(found.missing) .. " still does not import",
      output = p.output,
      command = M.pip_command(p.python),
    }
    message.say(
      ("pip installed the training packages, but %s still cannot import %s; try: %s"):format(
        p.python,
        names(found.missing),
        M.pip_command(p.python)
      ),
      vim.log.levels.ERROR
    )
  elseif not found.venv then
    settle(p)
    local text = "training needs %s, which %s lacks; it is not a virtual environment, "
      .. "so textgen installs nothing there: run %s"
    message.say(
      text:format(
        names(found.missing),
        p.python,
        M.pip_command(p.python)
      ),
      vim.log.levels.WARN
    )
  else
    vim.schedule(function()
      offer(p, found.missing)
    end)
  end
end

--- Ask `p.python` what it lacks, in a job; calls on_checked when it has answered.
local function check(p)
  p.phase = "checking"
  local output = {}
  local ok, id = pcall(vim.fn.jobstart, { p.python, "-c", CHECK }, {
    env = { PYTHONPATH = child.pythonpath() },
    stdout_buffered = true,
    on_stdout = function(_, data)
      output = data
    end,
    on_exit = function(_, code)
      local decoded_ok, found = pcall(vim.json.decode, table.concat(output, "\n"))
      local valid = code == 0 and decoded_ok and type(found) == "table" and type(found.missing) == "table"
      on_checked(p, valid and found or nil)
    end,
  })
  if not ok or id <= 0 then
    on_checked(p, nil) -- the training job says why this Python cannot run
  end
end

local function remember_output(p, line)
  if line:match("%S") then
    util.keep_last(p.output, line, OUTPUT_LINES)
  end
end

--- pip has ended with `code`.
local function on_pip_exit(p, code)
  stop_timer(p)
  if code ~= 0 or p.cancelled then
    settle(p)
  end
  if p.cancelled then
    M.last = {
      outcome = "cancelled",
      message = "stopped by :TextGenTrainStop",
      output = p.output,
      command = M.pip_command(p.python),
    }
    message.say(
      "installing TensorFlow cancelled: training did not start; :TextGenTrain offers it again",
      vim.log.levels.INFO
    )
  elseif code == 0 then
    p.installed = true -- checked once more: a yes from the check, not pip's exit code, starts training
    message.say(("installed TensorFlow for training in %s"):format(util.clock(elapsed(p))), vim.log.levels.INFO)
    check(p)
  else
    local last = p.stderr_last or p.output[#p.output] or message.exit_reason(code)
    M.last = {
      outcome = "failed",
      message = ("%s: %s"):format(message.exit_reason(code), vim.trim(last)),
      output = p.output,
      command = M.pip_command(p.python),
    }
    message.say(
      ("installing TensorFlow failed; run by hand: %s (pip: %s)"):format(M.pip_command(p.python), vim.trim(last)),
      vim.log.levels.ERROR
    )
  end
end

--- Start pip on `p.python` in the background.
function install(p)
  p.phase = "installing"
  p.started = vim.uv.hrtime()
  p.output = {}
  local args = { "install", "--progress-bar", "off", "-e", save_place.PLUGIN_ROOT .. "[train]" }
  local ok, id = pcall(vim.fn.jobstart, child.command(p.python, "pip", args), {
    cwd = save_place.PLUGIN_ROOT,
    -- pip never waits for an answer (a password, a confirmation) and ends on its own error, not on a
    -- notice that a newer pip exists.
    env = child.env({ PIP_NO_INPUT = "1", PIP_DISABLE_PIP_VERSION_CHECK = "1" }),
    on_stdout = child.line_reader(function(line)
      remember_output(p, line)
      if line:match("%S") then
        p.line = vim.trim(line)
        show_progress(p)
      end
    end),
    on_stderr = child.line_reader(function(line)
      remember_output(p, line)
      if line:match("%S") then
        p.stderr_last = line
      end
    end),
    on_exit = function(_, code)
      on_pip_exit(p, code)
    end,
  })
  if not ok or id <= 0 then
    settle(p)
    message.say(
      ("cannot start pip with %s (%s); run by hand: %s"):format(p.python, tostring(id), M.pip_command(p.python)),
      vim.log.levels.ERROR
    )
    return
  end
  p.id = id
  p.pid = vim.fn.jobpid(id)
  -- pip is silent for long stretches (a 572 MB download): the elapsed time shows it is alive.
  p.timer = vim.uv.new_timer()
  p.timer:start(1000, 1000, function()
    vim.schedule(function()
      show_progress(p)
    end)
  end)
  show_progress(p)
end

--- Run `start` once `python` can train: at once when it is known to, else after a check and, where
--- packages are missing, the user's yes and pip's install. False (and one message) while an earlier
--- request is still on its way.
---@param python string
---@param start fun()
---@return boolean accepted
function M.when_ready(python, start)
  if M.pending then
    M.say_busy()
    return false
  end
  if ready[python] then
    start()
    return true
  end
  M.pending = { python = python, start = start, phase = "checking" }
  check(M.pending)
  return true
end

--- Say what the waiting training waits on (the message stays a while before progress comes back).
function M.say_busy()
  local p = M.pending
  if not p then
    return
  end
  if p.phase == "installing" then
    p.quiet_until = vim.uv.now() + require("textgen.train").QUIET_MS
    message.say(
      ("installing TensorFlow first (%s); the training starts after it; :TextGenTrainStop cancels"):format(
        util.clock(elapsed(p))
      ),
      vim.log.levels.WARN
    )
  elseif p.phase == "asking" then
    message.say("answer whether to install TensorFlow first", vim.log.levels.WARN)
  else
    message.say("a training is about to start (checking for TensorFlow)", vim.log.levels.WARN)
  end
end

--- Cancel the waiting training: pip is stopped (SIGTERM), a check's or question's answer is ignored.
---@return boolean cancelled  false when no training waits
function M.stop()
  local p = M.pending
  if not p then
    return false
  end
  if p.phase == "installing" then
    p.cancelled = true
    vim.fn.jobstop(p.id)
  else
    settle(p)
    message.say("training cancelled before it started", vim.log.levels.INFO)
  end
  return true
end

--- For statuslines (train.status): the install under way, or nil.
function M.status()
  local p = M.pending
  if not (p and p.phase == "installing") then
    return nil
  end
  return {
    state = "installing",
    pid = p.pid,
    text = "installing TensorFlow " .. util.clock(elapsed(p)),
  }
end

--- What :TextGenStatus says about training's packages: the install under way, or the last one
--- that did not succeed (with pip's last lines).
---@return string[]
function M.status_lines()
  local p = M.pending
  if p and p.phase == "installing" then
    return { ("training: %s (%s)"):format(progress_text(p), M.pip_command(p.python)) }
  end
  local last = M.last
  if not last then
    return {}
  end
  local lines = { ("install of TensorFlow %s (%s); by hand: %s"):format(last.outcome, last.message, last.command) }
  for i = math.max(1, #last.output - OUTPUT_LINES_SHOWN + 1), #last.output do
    lines[#lines + 1] = "  | " .. last.output[i]
  end
  return lines
end

--- Neovim is exiting: end pip now.
function M.on_exit()
  local p = M.pending
  if p and p.phase == "installing" then
    p.cancelled = true
    pcall(vim.fn.jobstop, p.id)
  end
end

return M
