--- textgen.nvim: inline ghost-text completion from a small character-level GRU on your CPU.
---
--- The Lua API users call from their own mappings (e.g. from an nvim-cmp <Tab> mapping):
--- `require('textgen').accept()`, `.is_visible()`, `.setup(opts)`, `.status()`.
local config = require("textgen.config")
local context = require("textgen.context")
local host = require("textgen.host")
local message = require("textgen.message")
local suggestion = require("textgen.suggestion")

local api = vim.api
local util = require("textgen.util")
local null = util.is_null
local M = {}

--- Merge `opts` into g:textgen (deep) and apply it: keys are mapped again.
---@param opts table|nil
function M.setup(opts)
  local cfg = config.merge(opts)
  require("textgen.keys").apply(cfg.keys)
  return cfg
end

--- The ghost text's default colours: a grey of its own (as copilot.vim and neocodeium have), not
--- Comment's, which many colour schemes (Neovim's default among them) colour for 'termguicolors' only:
--- without it the ghost text looked like typed text. TextGenSuggestion is a default link to the grey,
--- so that a colour scheme or the user that defines it wins, `:highlight link` too, before or after
--- this (after nvim_set_hl with `default`, or on a group with colours, `:highlight link` does nothing).
--- Called again on ColorScheme, after `:highlight clear` took both away.
function M.define_highlight()
  local colors = tonumber(vim.fn.eval("&t_Co")) or 256
  local grey = colors >= 256 and 244 or 8 -- 8: the bright black of a terminal with 8 or 16 colours
  api.nvim_set_hl(0, "TextGenGrey", { fg = "#808080", ctermfg = grey })
  vim.cmd("highlight default link TextGenSuggestion TextGenGrey")
end

-- Verbs ----------------------------------------------------------------------------------------

--- Accept the whole suggestion; returns false when none is shown.
function M.accept()
  return suggestion.accept("all")
end

function M.accept_word()
  return suggestion.accept("word")
end

function M.accept_line()
  return suggestion.accept("line")
end

function M.next()
  suggestion.cycle(1)
end

function M.prev()
  suggestion.cycle(-1)
end

function M.dismiss()
  suggestion.dismiss()
end

function M.is_visible()
  return suggestion.is_visible()
end

--- Ask for a suggestion at the cursor now, in insert or normal mode; `n` > 1 asks for alternatives.
---@param n integer|nil
function M.complete(n)
  local buf = api.nvim_get_current_buf()
  local reason = context.disabled_reason(buf, config.get())
    or (util.replacing() and "not in Replace mode (typed text overwrites there; a suggestion would be inserted)")
  if reason then
    message.say("no suggestions here: " .. reason)
    return false
  end
  suggestion.dismiss(buf)
  return suggestion.request({ n = n or 1, explicit = true })
end

--- Turn suggestions while typing on or off (for this session); returns the new state.
function M.toggle()
  local on = not config.get().auto_trigger
  config.set("auto_trigger", on)
  if not on then
    suggestion.dismiss()
  end
  message.say("suggestions while typing " .. (on and "on" or "off"), vim.log.levels.INFO)
  return on
end

--- Switch to another model (a name or a folder); the host says when it is loaded.
function M.set_model(name)
  if name:find("/", 1, true) or name:find("^[.~]") then
    -- A path is taken as written, from Neovim's current directory (the host's may differ).
    local given = name
    name = require("textgen.save_place").absolute(name)
    host.given[name] = given
  end
  host.load(name, config.get().backend)
end

--- Train on this buffer (or `first`..`last`) in the background; `args`: a name or folder to save
--- as, and files to add. See :help :TextGenTrain.
---@param opts {args: string[]|nil, first: integer|nil, last: integer|nil}|nil
function M.train(opts)
  return require("textgen.train").start(opts or {})
end

--- Cancel the running training: nothing is saved, the model in use stays.
function M.train_stop()
  return require("textgen.train").stop()
end

--- :TextGenProject: no `action`, what project memory holds; "rebuild" or "clear", asked of the host.
---@param action string|nil
function M.project(action)
  local memory = require("textgen.memory")
  if action == nil or action == "" then
    local h, why = host.status()
    local lines = memory.status_lines(h and h.memory, config.get())
    if h == nil then
      lines[#lines + 1] = "python host: " .. (host.broken or why)
    elseif #lines == 0 then
      lines[#lines + 1] = "memory: this Python host keeps no project memory"
    end
    api.nvim_echo({ { table.concat(lines, "\n") } }, true, {})
    return lines
  end
  if action ~= "rebuild" and action ~= "clear" then
    message.say(("no :TextGenProject %s; use :TextGenProject, :TextGenProject rebuild or clear"):format(action),
      vim.log.levels.ERROR)
    return nil
  end
  host.project(action, function(answer, why)
    if answer == nil or null(answer.message) then
      message.say(("could not %s the project memory: the Python host is %s"):format(action, why or "not answering"),
        vim.log.levels.ERROR)
    else
      message.say(answer.message, vim.log.levels.INFO)
    end
  end)
  return action
end

-- Status -----------------------------------------------------------------------------------------

--- A cheap summary for statuslines: never waits for the Python host.
---@return {enabled: boolean, auto_trigger: boolean, model: string|nil, model_error: string|nil,
---         visible: boolean, pending: boolean, last_latency_ms: number|nil, disabled_reason: string|nil,
---         training: table, text: string}
function M.status()
  local cfg = config.get()
  local buf = api.nvim_get_current_buf()
  local reason = context.disabled_reason(buf, cfg)
  local e = host.model_error
  local training = require("textgen.train").status()
  local model = host.model and host.model.name or nil
  return {
    training = training,
    text = (training.state == "running" or training.state == "installing") and training.text or (model or ""),
    enabled = reason == nil and host.broken == nil,
    auto_trigger = cfg.auto_trigger,
    model = model,
    model_error = host.broken or (e and e.name == cfg.model and e.message) or nil,
    visible = suggestion.is_visible(buf),
    pending = suggestion.is_pending(buf),
    last_latency_ms = suggestion.stats.last_latency_ms,
    disabled_reason = reason,
  }
end

local function human_size(bytes)
  if bytes >= 1024 * 1024 then
    return ("%.1f MB"):format(bytes / 1024 / 1024)
  end
  return ("%.1f KB"):format(bytes / 1024)
end

--- Where the model's corpus n-gram comes from (:help textgen-ngram): its folder, the cache, a count
--- in the background, a failed count, or none; from the host's model summary.
---@param m table
---@return string[]
local function ngram_lines(m)
  local source = type(m.ngram_source) == "table" and m.ngram_source or {}
  if not null(m.ngram_contexts) and source.state == "cache" then
    return {
      ("  corpus n-gram: %.1f M contexts counted on this machine in %d files (%s), from the cache %s"):format(
        m.ngram_contexts / 1e6,
        source.files or 0,
        human_size(source.counted_bytes or 0),
        vim.fn.fnamemodify(source.cache or "", ":~")
      ),
    }
  elseif not null(m.ngram_contexts) then
    local counted = null(m.ngram_bytes) and "" or (" in %d files (%s)"):format(m.ngram_file_count or 0, human_size(m.ngram_bytes))
    local folder = ("  corpus n-gram: %.1f M contexts counted%s, from the model's folder"):format(
      m.ngram_contexts / 1e6,
      counted
    )
    return { folder }
  elseif source.state == "counting" then
    local since = ("since %s (%d s so far)"):format(tostring(source.started_at), source.elapsed_s or 0)
    return { "  corpus n-gram: counting in the background " .. since .. "; suggestions come without it meanwhile" }
  elseif source.state == "failed" then
    local retry = null(source.retry) and "" or ("; to count it again: " .. source.retry)
    local failed = ("  corpus n-gram: could not be counted (%s); suggestions come without it%s"):format(
      tostring(source.reason),
      retry
    )
    return { failed }
  elseif m.ngram_missing then
    return { "  corpus n-gram: not in the model's folder; suggestions come without it" }
  end
  return { "  corpus n-gram: none (this model was built without one)" }
end

--- Whether the model summary `m` has mixing weights fitted per kind of text (`textgen fit`).
local function has_kinds(m)
  return type(m) == "table" and type(m.mixing_kinds) == "table" and #m.mixing_kinds > 0
end

local function describe_model(m)
  local lines = {}
  lines[#lines + 1] = ("model: %s (%s), %d×%d GRU, %s parameters, %s backend"):format(
    m.name,
    null(m.path) and m.choice or m.path,
    m.layers,
    m.hidden,
    tostring(m.parameters),
    m.backend
  )
  local quality = null(m.val_bpc) and "val bpc unknown" or ("val bpc %.3f"):format(m.val_bpc)
  local average = (m.averaged or 0) > 0 and ("an average of %d models"):format(m.averaged) or nil
  local data = average or "training data unknown"
  if not null(m.training_bytes) then
    local names = {}
    for i, file in ipairs(m.training_files or {}) do
      if i > 3 then
        break
      end
      names[#names + 1] = vim.fs.basename(file)
    end
    local count = m.training_file_count or #names
    local files = table.concat(names, ", ") .. (count > #names and (" and %d more files"):format(count - #names) or "")
    data = ("%s %s (%s)"):format(average and average .. " fitted to" or "trained on", files, human_size(m.training_bytes))
  end
  lines[#lines + 1] = "  " .. quality .. ", " .. data
  vim.list_extend(lines, ngram_lines(m))
  if has_kinds(m) then
    local kinds = table.concat(m.mixing_kinds, ", ")
    lines[#lines + 1] = "  mixing weights fitted per kind of text (by filetype): "
      .. kinds
      .. "; other text: those fitted on all of it"
  end
  return lines
end

--- What :TextGenStatus shows: model, its quality and data, engine state, latency, this buffer.
---@return string[]
function M.status_lines()
  local cfg = config.get()
  local s = M.status()
  local lines = {
    ("textgen: suggestions while typing %s; model setting '%s'"):format(s.auto_trigger and "on" or "off", cfg.model),
  }
  local h, why = host.status()
  if h == nil then
    lines[#lines + 1] = ("python host (%s): %s"):format(host.python(), host.broken or why)
    if host.last_exit and host.last_exit.at then
      lines[#lines + 1] = ("  the last one ended %d s ago, %s"):format(
        vim.uv.hrtime() / 1e9 - host.last_exit.at,
        message.exit_reason(host.last_exit.code)
      )
      for _, line in ipairs(host.last_exit.stderr) do
        lines[#lines + 1] = "  | " .. line
      end
    end
  else
    if null(h.model) then
      lines[#lines + 1] = "model: none loaded yet"
    else
      vim.list_extend(lines, describe_model(h.model))
    end
    for _, f in ipairs(h.failures or {}) do
      lines[#lines + 1] = ("could not load '%s' (%s): %s"):format(f.name, f.backend, f.reason)
    end
    if not null(h.reload_failure) then
      lines[#lines + 1] = "  its folder no longer loads (" .. h.reload_failure .. "); serving the copy loaded before"
    end
    local e = h.engine
    if null(e) then
      lines[#lines + 1] = "engine: not started"
    else
      local latency = null(e.last_latency_ms) and "no request served yet"
        or ("last latency %.1f ms, median %.1f ms"):format(e.last_latency_ms, e.median_latency_ms)
      lines[#lines + 1] = ("engine: %s, %s; %d served (%d foreseen while typing), %d errors; %s"):format(
        e.alive and "running" or "stopped",
        e.pending > 0 and (e.pending .. " pending") or (e.learning and "learning" or "idle"),
        e.served,
        e.guessed or 0,
        e.errors,
        latency
      )
      if e.served > 0 and has_kinds(h.model) then
        local kind = null(e.last_kind) and "all of the model's text" or (e.last_kind .. " text")
        lines[#lines + 1] = "  the last suggestion was mixed by the weights fitted on " .. kind
      end
      if not cfg.learn then
        lines[#lines + 1] = "learning: off (g:textgen.learn), suggestions come from the model as loaded"
      elseif (e.learned_bytes or 0) > 0 then
        lines[#lines + 1] = ("learned: %d bytes of this session's text (g:textgen.learn)"):format(e.learned_bytes)
      end
    end
    lines[#lines + 1] = ("python host: %s (Python %s, pid %s)%s"):format(
      host.python(),
      tostring(h.python),
      tostring(host.pid()),
      h.tensorflow_imported and ", TensorFlow loaded in the host" or ""
    )
  end
  vim.list_extend(lines, require("textgen.memory").status_lines(h and h.memory, cfg))
  vim.list_extend(lines, require("textgen.train").status_lines())
  local _, problems = config.validate(type(vim.g.textgen) == "table" and vim.g.textgen or {})
  for _, problem in ipairs(problems) do
    lines[#lines + 1] = "option problem: " .. problem
  end
  lines[#lines + 1] = "this buffer: "
    .. (s.disabled_reason and ("off, " .. s.disabled_reason) or (s.visible and "suggestion shown" or "on"))
  local cut_short = require("textgen.message").cut_short
  if #cut_short > 0 then
    lines[#lines + 1] = "messages cut to fit the command line, whole:"
    for _, text in ipairs(cut_short) do
      lines[#lines + 1] = "  " .. text
    end
  end
  return lines
end

function M.show_status()
  api.nvim_echo({ { table.concat(M.status_lines(), "\n") } }, true, {})
end

return M
