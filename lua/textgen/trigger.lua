--- When to ask for a suggestion while typing, and when to take one away.
---
--- Each edit in insert mode is one of: typing the suggestion (it shrinks, no request), deleting
--- (it goes, and nothing new comes while you delete), or anything else (a new request after
--- `debounce_ms`; the old ghost text lingers until the new one replaces it, at most `linger_ms`).
local config = require("textgen.config")
local context = require("textgen.context")
local host = require("textgen.host")
local menu = require("textgen.menu")
local suggestion = require("textgen.suggestion")
local util = require("textgen.util")

local api = vim.api
local M = {}

local debounce_timer = nil

---@class textgen.Seen  the buffer as of the last edit, to tell typing from deleting
---@field tick integer
---@field row integer
---@field col integer
---@field line_len integer
---@field line_count integer

---@type table<integer, textgen.Seen>
local seen = {}

local function remember(buf)
  local cursor = api.nvim_win_get_cursor(0)
  local now = {
    tick = api.nvim_buf_get_changedtick(buf),
    row = cursor[1] - 1,
    col = cursor[2],
    line_len = vim.fn.col("$") - 1,     -- the line's length without copying it (it may be megabytes)
    line_count = api.nvim_buf_line_count(buf),
  }
  local before = seen[buf]
  seen[buf] = now
  return before, now
end

--- Backspace, CTRL-W, CTRL-U, <Del>, joining lines: the text got shorter.
local function is_deletion(before, now)
  if not before then
    return false
  end
  if now.line_count < before.line_count then
    return true
  end
  return now.line_count == before.line_count and now.row == before.row and now.line_len < before.line_len
end

local function stop_debounce()
  if debounce_timer then
    debounce_timer:stop()
  end
end

--- Lines longer than this (minified code, logs) get no suggestions while typing: Neovim redraws such
--- a line slowly on every change, and ghost text there would double what each keystroke costs.
--- :TextGenComplete still asks.
M.LONG_LINE_BYTES = 10000

--- Whether an automatic suggestion may show at the cursor in `buf` now.
---@param cfg textgen.Config
function M.may_suggest(buf, cfg)
  -- Insert mode only: not Replace mode (`util.replacing`), one mode read on every keystroke
  if not cfg.auto_trigger or api.nvim_get_current_buf() ~= buf or api.nvim_get_mode().mode:sub(1, 1) ~= "i" then
    return false
  end
  if context.disabled_reason(buf, cfg) or menu.visible(cfg) then
    return false
  end
  if vim.fn.col("$") - 1 > M.LONG_LINE_BYTES then
    return false
  end
  local row, col = unpack(api.nvim_win_get_cursor(0))
  return context.mid_line_allows(context.after(buf, row - 1, col), cfg.mid_line)
end

--- Ask after `debounce_ms`. `now_ok`: the caller is TextChangedI, where the text and the cursor are
--- final (Neovim fires it once typeahead is used up, so a burst of keys is one event); with no
--- debounce the request then goes at once, not a loop iteration and a schedule later (0.13 ms of every
--- keystroke, AMD EPYC). Entering insert mode waits for the cursor's place (`a`, `A` move it after).
local function request_soon(buf, cfg, now_ok)
  debounce_timer = debounce_timer or vim.uv.new_timer()
  debounce_timer:stop()
  if now_ok and cfg.debounce_ms == 0 then
    suggestion.request()
    return
  end
  debounce_timer:start(
    cfg.debounce_ms,
    0,
    vim.schedule_wrap(function()
      local now = config.get()
      if M.may_suggest(buf, now) then
        suggestion.request()
      else
        suggestion.dismiss(buf)
      end
    end)
  )
end

--- An edit in insert mode (TextChangedI).
function M.on_text_changed(buf)
  local cfg = config.get()
  local followed = suggestion.follow_typing(buf)
  local before, now = remember(buf)
  if followed == "in_step" or followed == "typed_through" then
    return
  end
  if is_deletion(before, now) then
    stop_debounce()
    suggestion.dismiss(buf)
    return
  end
  if not M.may_suggest(buf, cfg) then
    stop_debounce()
    suggestion.dismiss(buf)
    return
  end
  suggestion.outdate(buf, cfg.linger_ms)
  request_soon(buf, cfg, true)
end

--- The cursor moved in insert mode without an edit (arrow keys, mouse).
function M.on_cursor_moved(buf)
  local before = seen[buf]
  if before and before.tick ~= api.nvim_buf_get_changedtick(buf) then
    return -- an edit: TextChangedI follows and decides
  end
  remember(buf)
  if suggestion.follow_typing(buf) == "in_step" then
    return
  end
  suggestion.dismiss(buf)
  local cfg = config.get()
  if M.may_suggest(buf, cfg) then
    request_soon(buf, cfg)
  else
    stop_debounce()
  end
end

function M.on_insert_enter(buf)
  remember(buf)
  local cfg = config.get()
  require("textgen.keys").follow(cfg.keys)
  if suggestion.follow_typing(buf) == "in_step" then
    return -- e.g. :TextGenComplete in normal mode, then `a`
  end
  suggestion.dismiss(buf)
  if cfg.auto_trigger and not context.disabled_reason(buf, cfg) then
    host.warm_up(cfg)
    if vim.v.insertmode == "i" and M.may_suggest(buf, cfg) then -- not on R or gR (`util.replacing`)
      request_soon(buf, cfg)
    end
  end
end

--- <Insert> switched between Insert and Replace mode: a suggestion showing goes (Replace mode shows
--- none: `util.replacing`); back in Insert mode the next key asks again.
function M.on_insert_change(buf)
  stop_debounce()
  suggestion.dismiss(buf)
end

function M.on_leave(buf)
  stop_debounce()
  suggestion.dismiss(buf)
end

--- Normal mode: a suggestion from :TextGenComplete goes when the text or the cursor moves away.
function M.on_normal_change(buf)
  if suggestion.get(buf) and suggestion.follow_typing(buf) ~= "in_step" then
    suggestion.dismiss(buf)
  end
end

--- Start the Python host and load the model before the first keystroke needs them (the host's
--- start holds Neovim for about a tenth of a second; better now than on the first `i`).
function M.warm_up()
  local cfg = config.get()
  local buf = api.nvim_get_current_buf()
  if cfg.auto_trigger and not context.disabled_reason(buf, cfg) then
    host.warm_up(cfg)
  end
end

--- Whether nothing is about to happen: no debounce timer running, no request on its way.
function M.is_idle()
  return not (debounce_timer and debounce_timer:is_active()) and not suggestion.is_pending()
end

--- Create the autocommands (idempotent).
function M.attach()
  local group = api.nvim_create_augroup("textgen", { clear = true })
  local function on(events, desc, fn, pattern)
    util.autocmd(group, events, desc, fn, pattern)
  end
  on("TextChangedI", "follow the typing, ask for a suggestion", M.on_text_changed)
  on("CursorMovedI", "a suggestion left behind by the cursor goes", M.on_cursor_moved)
  on("InsertEnter", "suggest on entering insert mode", M.on_insert_enter)
  on("InsertChange", "no suggestion in Replace mode", M.on_insert_change)
  on({ "InsertLeave", "BufLeave", "WinLeave" }, "dismiss on leaving", M.on_leave)
  on({ "CursorMoved", "TextChanged" }, "a normal-mode suggestion goes when the text moves", M.on_normal_change)
  -- A completion menu opened: hide the ghost text (keys keep their menu meaning meanwhile).
  on({ "CompleteChanged", "TextChangedP" }, "hide while a completion menu is open", function(buf)
    stop_debounce()
    suggestion.dismiss(buf)
  end)
  on("User", "hide when nvim-cmp or blink.cmp opens its menu", function(buf)
    stop_debounce()
    suggestion.dismiss(buf)
  end, { "BlinkCmpMenuOpen", "CmpMenuOpened" })
  on({ "BufUnload", "BufWipeout" }, "forget the buffer", function(buf)
    seen[buf] = nil
    suggestion.forget(buf)
  end)
  on("ColorScheme", "define the ghost text's colours again", function()
    require("textgen").define_highlight()
  end)
end

return M
