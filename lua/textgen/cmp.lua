--- textgen as an nvim-cmp source named "textgen": the suggestion and its alternatives as menu items
--- (textgen.menu_items builds them). after/plugin/textgen_cmp.lua registers it when nvim-cmp is
--- loaded, so that a user only adds `{ name = "textgen" }` to cmp's sources. :help textgen-menus
local menu_items = require("textgen.menu_items")

local api = vim.api

---@class textgen.CmpSource
local source = {}
source.__index = source

local M = {}

---@return textgen.CmpSource
function M.new()
  return setmetatable({}, source)
end

function source:get_debug_name()
  return "textgen"
end

--- The items' columns are byte columns.
function source:get_position_encoding_kind()
  return "utf-8"
end

function source:is_available()
  return menu_items.available(api.nvim_get_current_buf())
end

--- nvim-cmp calls this as the user types; the answer comes back later, through `callback`. The items
--- change with every character typed, hence `isIncomplete`: cmp asks again instead of filtering.
---@param params {offset: integer, context: {cursor: {row: integer, col: integer}, cursor_line: string}}
---@param callback fun(response: {items: table[], isIncomplete: boolean})
function source:complete(params, callback)
  local ctx = params.context
  local place = {
    row = ctx.cursor.row - 1,
    col = ctx.cursor.col - 1,
    start = (params.offset or ctx.cursor.col) - 1,
    line = ctx.cursor_line,
  }
  menu_items.ask(place, function(items)
    callback({ items = items, isIncomplete = true })
  end)
end

--- The items carry their documentation already.
function source:resolve(item, callback)
  callback(item)
end

local registered = false

--- Register the source with nvim-cmp if nvim-cmp is loaded (once); returns whether it is registered.
function M.register()
  local cmp = package.loaded["cmp"]
  if not registered and type(cmp) == "table" and type(cmp.register_source) == "function" then
    registered = pcall(cmp.register_source, "textgen", M.new())
  end
  return registered
end

--- Register now if nvim-cmp is loaded, else as soon as it is (checked when insert mode starts, so a
--- lazily loaded nvim-cmp is found before its first completion, and nothing loads it before its time).
function M.register_when_loaded()
  if M.register() then
    return
  end
  local group = api.nvim_create_augroup("textgen_cmp", { clear = true })
  api.nvim_create_autocmd("InsertEnter", {
    group = group,
    desc = "textgen: register the nvim-cmp source once nvim-cmp is loaded",
    callback = function()
      if M.register() then
        api.nvim_del_augroup_by_id(group)
      end
    end,
  })
end

return M
