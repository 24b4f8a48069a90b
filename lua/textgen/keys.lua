--- The <Plug> maps (the contract users map their own keys to) and the default insert-mode keys.
---
--- A default key acts only while a suggestion is on screen and no completion menu is open;
--- otherwise it does what it did before textgen mapped it: its earlier mapping if there was one,
--- else the key itself (<Tab> inserts a Tab, <C-]> expands an abbreviation).
local config = require("textgen.config")
local menu = require("textgen.menu")

local api = vim.api
local M = {}

local function verb(name)
  return function()
    require("textgen")[name]()
  end
end

--- name in g:textgen.keys → <Plug> map, what it does, and whether it acts with nothing shown.
M.PLUG = {
  accept = { lhs = "<Plug>(textgen-accept)", run = verb("accept"), desc = "accept the suggestion" },
  accept_word = { lhs = "<Plug>(textgen-accept-word)", run = verb("accept_word"), desc = "accept one word" },
  accept_line = { lhs = "<Plug>(textgen-accept-line)", run = verb("accept_line"), desc = "accept one line" },
  next = { lhs = "<Plug>(textgen-next)", run = verb("next"), desc = "next alternative", always = true },
  prev = { lhs = "<Plug>(textgen-prev)", run = verb("prev"), desc = "previous alternative", always = true },
  dismiss = { lhs = "<Plug>(textgen-dismiss)", run = verb("dismiss"), desc = "dismiss the suggestion" },
  complete = { lhs = "<Plug>(textgen-complete)", run = verb("complete"), desc = "suggest now", always = true },
}

function M.define_plug_maps()
  for _, plug in pairs(M.PLUG) do
    vim.keymap.set({ "i", "n" }, plug.lhs, plug.run, { silent = true, desc = "textgen: " .. plug.desc })
  end
  M.watch_inserts()
end

-- Accepted text in undo, `.` and macros -----------------------------------------------------------
--
-- An accept in insert mode pastes the text (suggestion.lua), and Neovim keeps a paste in the insert
-- that `.` repeats. What is left for the keys:
-- - Undo: the accept is an undo step of its own (CTRL-G u after it), except in the insert of a visual
--   block's I, A or c, which Neovim repeats on the block's other lines at <Esc> as one change: a
--   break in it would make those lines an undo step of their own (three `u` to undo one change).
-- - Macros: a recording holds the keys typed, so an accept would replay as the key that accepted
--   (<Tab>: a real Tab, as no suggestion shows during a replay), and Neovim records no paste made by
--   a plugin. So, while recording, each accept puts a mark (<Ignore>) into the recording after that
--   key; when the recording ends, each key and its mark become the accepted text as a paste, which
--   Neovim replays as it is (and `.` after the replay too).

local MARK = vim.keycode("<Ignore>")
-- Neovim's own keys around a paste in a recording (K_PASTE_START, K_PASTE_END; no <> names).
local PASTE_START, PASTE_END = "\128PS", "\128PE"
local block_insert = false
---@type {typed: string, accepts: {key: string, text: string}[]}|nil  the recording going on
local recording = nil
local on_key_ns = api.nvim_create_namespace("textgen_recording")

--- Whether this insert is a visual block's I, A or c (or a block selection typed over).
function M.in_block_insert()
  return block_insert
end

--- After an accept in insert mode has pasted `text`.
function M.after_accept(text)
  if recording then
    recording.accepts[#recording.accepts + 1] = { key = recording.typed, text = text }
    api.nvim_feedkeys(MARK, "int", false) -- typed: recorded, right after the key that accepted
  end
  if not block_insert then
    api.nvim_feedkeys(vim.keycode("<C-G>u"), "in", false) -- processed before the mark: not recorded
  end
end

--- The recording in register `name` with each accept's key and mark made the accepted text.
local function rewrite_recording(name, accepts)
  local parts = vim.split(vim.fn.getreg(name), MARK, { plain = true })
  if #parts ~= #accepts + 1 then
    return -- a mark did not get into the recording (keys mapped after the accept): keep it as it is
  end
  local out = { parts[1] }
  for i, accept in ipairs(accepts) do
    local before = out[#out]
    if accept.key ~= "" and before:sub(-#accept.key) == accept.key then
      out[#out] = before:sub(1, #before - #accept.key)
    end
    out[#out + 1] = PASTE_START .. accept.text .. PASTE_END
    out[#out + 1] = parts[i + 1]
  end
  vim.fn.setreg(name, table.concat(out), vim.fn.getregtype(name))
end

--- Follow what kind of insert this is, and what a macro recording holds.
function M.watch_inserts()
  local group = api.nvim_create_augroup("textgen_keys", { clear = true })
  api.nvim_create_autocmd("ModeChanged", {
    group = group,
    desc = "textgen: tell the insert of a visual block's I, A or c",
    callback = function()
      local old, new = vim.v.event.old_mode, vim.v.event.new_mode
      if new:sub(1, 1) == "i" then
        block_insert = block_insert or old == "\22" or old == "\22s" or old == "\19"
      elseif new:sub(1, 1) ~= "c" then -- not for CTRL-R = on the command line
        block_insert = false
      end
    end,
  })
  if vim.fn.has("nvim-0.11") == 0 then
    return -- Neovim 0.10 does not replay a paste in a macro
  end
  api.nvim_create_autocmd("RecordingEnter", {
    group = group,
    desc = "textgen: note the keys that accept while recording",
    callback = function()
      recording = { typed = "", accepts = {} }
      vim.on_key(function(_, typed)
        if recording and typed ~= "" then
          recording.typed = typed
        end
      end, on_key_ns)
    end,
  })
  api.nvim_create_autocmd("RecordingLeave", {
    group = group,
    desc = "textgen: put the accepted text into the recording",
    callback = function()
      vim.on_key(nil, on_key_ns)
      local done = recording
      recording = nil
      if done and #done.accepts > 0 then
        local name = vim.v.event.regname:lower()
        vim.schedule(function() -- Neovim sets the register after this autocommand
          rewrite_recording(name, done.accepts)
        end)
      end
    end,
  })
end

---@type table<string, {lhs: string, saved: table|nil}>  keys mapped by apply(), and what they replaced
local applied = {}
local applied_keys = nil ---@type string|nil  the `keys` option last applied, as vim.inspect shows it

local function fallback_lhs(name)
  return ("<Plug>(textgen-fallback-%s)"):format(name:gsub("_", "-"))
end

local function is_ours(lhs)
  local current = vim.fn.maparg(lhs, "i", false, true)
  return type(current) == "table" and type(current.desc) == "string" and current.desc:find("^textgen:") ~= nil
end

--- Keep what `lhs` did before under a <Plug> name, so the default key can fall through to it.
local function save_fallback(name, lhs)
  local plug = fallback_lhs(name)
  local saved = vim.fn.maparg(lhs, "i", false, true)
  if type(saved) ~= "table" or vim.tbl_isempty(saved) or saved.buffer == 1 or is_ours(lhs) then
    saved = nil
  end
  if saved then
    local copy = vim.deepcopy(saved)
    copy.lhs = plug
    copy.lhsraw = vim.keycode(plug)
    copy.lhsrawalt = nil
    vim.fn.mapset("i", false, copy)
  else
    api.nvim_set_keymap("i", plug, lhs, { noremap = true, desc = "textgen: what " .. lhs .. " did before" })
  end
  return saved
end

--- Take a default key back, and give it back what it did before (unless the user has remapped it since).
local function unmap(name)
  local entry = applied[name]
  applied[name] = nil
  pcall(api.nvim_del_keymap, "i", fallback_lhs(name))
  if not entry or not is_ours(entry.lhs) then
    return
  end
  pcall(api.nvim_del_keymap, "i", entry.lhs)
  if entry.saved then
    vim.fn.mapset("i", false, entry.saved)
  end
end

--- Map the insert-mode keys of `g:textgen.keys` (again: setup() may change them).
---@param keys textgen.Keys
function M.apply(keys)
  applied_keys = vim.inspect(keys)
  for name in pairs(applied) do
    unmap(name)
  end
  for name, lhs in pairs(keys) do
    local plug = M.PLUG[name]
    if lhs and plug then
      local saved = save_fallback(name, lhs)
      local fallback = fallback_lhs(name)
      vim.keymap.set("i", lhs, function()
        local suggestion = require("textgen.suggestion")
        if menu.visible(config.get()) then
          return fallback
        end
        if plug.always or suggestion.is_visible() then
          return plug.lhs
        end
        return fallback
      end, { expr = true, remap = true, silent = true, desc = "textgen: " .. plug.desc })
      applied[name] = { lhs = lhs, saved = saved }
    end
  end
end

--- Apply `keys` again where g:textgen.keys changed since they were applied (set after the plugin
--- loaded, as a plugin manager's `config` does, without setup()); called on InsertEnter, before the
--- keys are used. Keys the user mapped since are left alone while the option stays the same.
function M.follow(keys)
  if vim.inspect(keys) ~= applied_keys then
    M.apply(keys)
  end
end

return M
