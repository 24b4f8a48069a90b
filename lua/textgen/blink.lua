--- textgen as a blink.cmp source: the suggestion and its alternatives as menu items (textgen.menu_items
--- builds them). In blink.cmp's sources:
---   providers = { textgen = { name = "textgen", module = "textgen.blink" } }, and "textgen" in `default`.
--- :help textgen-menus
local menu_items = require("textgen.menu_items")

local api = vim.api

---@class textgen.BlinkSource
local source = {}
source.__index = source

local M = {}

--- blink.cmp calls `new(opts, config)` with the provider's `opts` and config; textgen's own options
--- (g:textgen) apply.
---@return textgen.BlinkSource
function M.new(opts, _)
  return setmetatable({ opts = opts or {} }, source)
end

function source:enabled()
  return menu_items.available(api.nvim_get_current_buf())
end

--- blink.cmp calls this as the user types and cancels it with the function returned; the answer
--- comes back later, through `callback`. The items change with every character typed: incomplete
--- both ways, so blink asks again instead of filtering.
---@param ctx {cursor: integer[], line: string, bounds: {start_col: integer}}
---@param callback fun(response: {items: table[], is_incomplete_forward: boolean, is_incomplete_backward: boolean})
---@return fun()
function source:get_completions(ctx, callback)
  local col = ctx.cursor[2]
  local place = {
    row = ctx.cursor[1] - 1,
    col = col,
    start = ctx.bounds and ctx.bounds.start_col and ctx.bounds.start_col - 1 or col,
    line = ctx.line,
  }
  return menu_items.ask(place, function(items)
    callback({ items = items, is_incomplete_forward = true, is_incomplete_backward = true })
  end)
end

--- The items carry their documentation already.
function source:resolve(item, callback)
  callback(item)
end

return M
