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

local ACCEPTS = { accept = true, accept_word = true, accept_line = true }

function M.define_plug_maps()
  for name, plug in pairs(M.PLUG) do
    local desc = "textgen: " .. plug.desc
    if ACCEPTS[name] then
      -- CTRL-G u after accepting: what you type next is its own undo step.
      api.nvim_set_keymap("i", plug.lhs, ("<Cmd>lua require('textgen').%s()<CR><C-G>u"):format(name), {
        noremap = true,
        silent = true,
        desc = desc,
      })
      vim.keymap.set("n", plug.lhs, plug.run, { silent = true, desc = desc })
    else
      vim.keymap.set({ "i", "n" }, plug.lhs, plug.run, { silent = true, desc = desc })
    end
  end
end

---@type table<string, {lhs: string, saved: table|nil}>  keys mapped by apply(), and what they replaced
local applied = {}

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

return M
