--- What the open buffers hold, told to the Python host, which keeps them (and the project's files,
--- which it reads itself) as memory that suggestions draw on: :help textgen-project-memory.
---
--- A buffer's text goes to the host when it is entered, written, left in insert mode, or a second
--- after the last change in normal mode: never on a keystroke, and never twice for one
--- `b:changedtick` of one host. Only normal buffers where textgen may suggest are told; a buffer over
--- `MAX_BUFFER_BYTES` is named without its text.
local config = require("textgen.config")
local context = require("textgen.context")
local host = require("textgen.host")

local api = vim.api
local M = {}

--- A buffer larger than this is named to the host, but its text is not sent.
M.MAX_BUFFER_BYTES = 1024 * 1024
--- Quiet time after the last normal-mode change before the buffer's text is sent again.
M.QUIET_MS = 1000

---@type table<integer, {tick: integer, host: integer}>  the changedtick last sent, and to which host (pid)
local sent = {}
---@type table<integer, uv_timer_t>  the pending debounced send of each buffer
local timers = {}

--- Where the host caches project indexes (in its "projects" folder).
function M.cache_dir()
  return vim.fn.stdpath("cache") .. "/textgen"
end

--- `g:textgen.project` as the host takes it.
---@param cfg textgen.Config
function M.project_options(cfg)
  return {
    enabled = cfg.project.enabled,
    max_mb = cfg.project.max_mb,
    exclude = cfg.project.exclude,
    cache_dir = M.cache_dir(),
  }
end

local function stop_timer(buf)
  local timer = timers[buf]
  if timer then
    timers[buf] = nil
    timer:stop()
    timer:close()
  end
end

--- The buffer's whole text, lines joined with "\n" (NULs dropped: they would turn it into a Blob on
--- its way to Python), or nil when it is larger than MAX_BUFFER_BYTES (measured without copying it).
local function buffer_text(buf)
  local size = api.nvim_buf_get_offset(buf, api.nvim_buf_line_count(buf))
  if size > M.MAX_BUFFER_BYTES then
    return nil
  end
  return (table.concat(api.nvim_buf_get_lines(buf, 0, -1, false), "\n"):gsub("%z", ""))
end

--- What to tell the host about `buf` on `event` ("enter", "write", "leave", "unload"), or nil when
--- nothing: a buffer textgen stays off in, or one the host already has as it is. Decides only; `send`
--- sends and remembers.
---@param buf integer
---@param event "enter"|"write"|"leave"|"unload"
---@param cfg textgen.Config|nil
---@param only_new boolean|nil  an "enter" that tells nothing the host has (entering insert mode)
---@return table|nil
function M.message(buf, event, cfg, only_new)
  local pid = host.pid()
  if not pid or not api.nvim_buf_is_valid(buf) then
    return nil
  end
  local last = sent[buf]
  if last and last.host ~= pid then
    last = nil -- a host started since knows nothing of it
  end
  cfg = cfg or config.get()
  local info = {
    buf = buf,
    event = event,
    text = vim.NIL,
    project = M.project_options(cfg),
  }
  local name = api.nvim_buf_get_name(buf)
  info.path = name ~= "" and vim.fn.fnamemodify(name, ":p") or vim.NIL
  if event == "unload" then
    return last and info or nil -- only a buffer the host was told about
  end
  if vim.bo[buf].buftype ~= "" or context.disabled_reason(buf, cfg) then
    return nil
  end
  local tick = api.nvim_buf_get_changedtick(buf)
  if last and last.tick == tick then
    -- without the text the host has: a write may update the project, entering may switch projects,
    -- and project options changed since they were last sent take effect
    local told = event == "write" or event == "enter" and not only_new or not M.options_sent(pid, info.project)
    return told and info or nil
  end
  info.text = buffer_text(buf) or vim.NIL
  info.tick = tick
  return info
end

---@type {host: integer, options: string}|nil  the project options the host was last told, as text
local options_sent = nil

--- Whether host `pid` was last told `options` (g:textgen.project as `project_options` makes it).
function M.options_sent(pid, options)
  return options_sent ~= nil and options_sent.host == pid and options_sent.options == vim.inspect(options)
end

--- Tell the host about `buf` on `event` when there is something to tell; returns what was sent.
---@param only_new boolean|nil  see `message`
function M.send(buf, event, only_new)
  local info = M.message(buf, event, nil, only_new)
  if not info then
    return nil
  end
  local tick = info.tick
  info.tick = nil
  if not host.buffer(info) then
    return nil
  end
  options_sent = { host = host.pid(), options = vim.inspect(info.project) }
  stop_timer(buf) -- a quiet-time send still waiting would send what the host now has, or a keystroke's later text
  if event == "unload" then
    sent[buf] = nil
  elseif tick then
    sent[buf] = { tick = tick, host = host.pid() }
  end
  return info
end

--- Whether the user is typing in `buf` (insert or replace mode in its window): its text then goes
--- when they leave insert mode, not halfway through a word (the host counts a buffer again each time
--- it is sent: half a second of a core for a megabyte, taken from the suggestions being typed for).
function M.typing_in(buf)
  local mode = api.nvim_get_mode().mode
  return api.nvim_get_current_buf() == buf and (mode:sub(1, 1) == "i" or mode:sub(1, 1) == "R")
end

--- A change in normal mode: send the text once the buffer has been quiet for QUIET_MS (while the user
--- types in it then, the wait starts again: leaving insert mode sends it, or the wait after).
function M.changed_soon(buf)
  if not host.running() then
    return
  end
  local timer = timers[buf]
  if not timer then
    timer = vim.uv.new_timer()
    timers[buf] = timer
  end
  timer:stop()
  timer:start(
    M.QUIET_MS,
    0,
    vim.schedule_wrap(function()
      stop_timer(buf)
      if M.typing_in(buf) then
        M.changed_soon(buf) -- looked at again later: leaving insert mode with CTRL-C fires no InsertLeave
      else
        M.send(buf, "leave")
      end
    end)
  )
end

--- Whether a debounced send of `buf` is waiting (for tests).
function M.pending(buf)
  return timers[buf] ~= nil
end

--- The host has loaded its model (at the warm-up after Neovim starts, or at the first suggestion):
--- tell it about the current buffer, unless it already has it as it is.
function M.on_host_ready()
  M.send(api.nvim_get_current_buf(), "enter")
end

--- Create the autocommands in textgen's augroup (made by textgen.trigger; idempotent).
function M.attach()
  local group = api.nvim_create_augroup("textgen", { clear = false })
  local function on(events, desc, fn, pattern)
    require("textgen.util").autocmd(group, events, desc, fn, pattern)
  end
  on("BufEnter", "tell the host what the entered buffer holds", function(buf)
    M.send(buf, "enter")
  end)
  on("BufWritePost", "tell the host the written buffer's text", function(buf)
    M.send(buf, "write")
  end)
  -- A host started on entering insert mode (by the first suggestion) has not been told yet; one
  -- already told sends nothing here.
  on("InsertEnter", "tell a host just started what the buffer holds", function(buf)
    M.send(buf, "enter", true)
  end)
  on("InsertLeave", "tell the host the buffer's text after insert mode", function(buf)
    stop_timer(buf)
    M.send(buf, "leave")
  end)
  on("TextChanged", "tell the host the buffer's text a second after the last change", M.changed_soon)
  on({ "BufUnload", "BufWipeout" }, "the host forgets the buffer", function(buf)
    stop_timer(buf)
    M.send(buf, "unload")
    sent[buf] = nil
  end)
end

-- Status ---------------------------------------------------------------------------------------

local null = require("textgen.util").is_null

--- A size as a person reads it: KB below a megabyte (a small project is not "0.0 MB").
function M.size(bytes)
  bytes = bytes or 0
  if bytes < 1024 * 1024 then
    return ("%.1f KB"):format(bytes / 1024)
  end
  return ("%.1f MB"):format(bytes / 1024 / 1024)
end

--- "1 file", "3 files".
function M.files(count)
  return ("%d file%s"):format(count, count == 1 and "" or "s")
end

local function describe_project(p)
  local root = vim.fn.fnamemodify(p.root, ":~")
  if p.state == "off" or p.state == "failed" then
    return ("project %s: %s%s"):format(root, p.state, null(p.reason) and "" or (", " .. p.reason))
  end
  local parts = { M.files(p.files or 0) .. ", " .. M.size(p.bytes) }
  if p.state == "indexing" then
    parts[#parts + 1] = "indexing"
  else
    parts[#parts + 1] = p.state
  end
  if not null(p.built_at) then
    parts[#parts + 1] = "built " .. p.built_at .. (p.from_cache and " (from the cache)" or "")
  end
  if not null(p.seconds) then
    parts[#parts + 1] = ("in %.1f s"):format(p.seconds)
  end
  if (p.changed_files or 0) > 0 then
    parts[#parts + 1] = ("%d changed file%s counted apart"):format(p.changed_files, p.changed_files == 1 and "" or "s")
  end
  return ("project %s: %s"):format(root, table.concat(parts, ", "))
end

--- What :TextGenStatus and :TextGenProject say about memory, from the host's status answer's
--- `memory` (nil from a host without project memory: then only what the options say).
---@param memory table|nil
---@param cfg textgen.Config
---@return string[]
function M.status_lines(memory, cfg)
  local lines = {}
  if not cfg.project.enabled then
    lines[#lines + 1] = "memory: project memory off (g:textgen.project.enabled)"
  elseif not null(memory) and not null(memory.project) then
    lines[#lines + 1] = "memory: " .. describe_project(memory.project)
  elseif not null(memory) then
    lines[#lines + 1] = "memory: no project for this buffer (no git work tree or project marker above its file)"
  end
  if not null(memory) and not null(memory.buffers) then
    local count, private = memory.buffers.count or 0, memory.buffers.private or 0
    lines[#lines + 1] = ("memory: %d open buffer%s, %.1f KB%s"):format(
      count,
      count == 1 and "" or "s",
      (memory.buffers.bytes or 0) / 1024,
      private > 0
          and (", %d private (secret or excluded files: not remembered, not learned)"):format(private)
        or ""
    )
  end
  return lines
end

return M
