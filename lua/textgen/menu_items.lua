--- What textgen offers to completion menus (nvim-cmp: textgen/cmp.lua, blink.cmp: textgen/blink.lua):
--- the suggestion and its alternatives as LSP completion items. Both menus filter their items by the
--- word before the cursor, so an item replaces that word with itself followed by the suggestion:
--- accepted, it leaves the text before the cursor followed by the whole suggestion (several lines
--- when the suggestion has them), as the ghost text would.
local config = require("textgen.config")
local context = require("textgen.context")
local host = require("textgen.host")
local suggestion = require("textgen.suggestion")

local api = vim.api
local M = {}

--- Display width of a label; the documentation shows the whole text.
M.LABEL_WIDTH = 40
--- Bytes of the cursor's line before the suggestion that the documentation shows with it.
local DOC_LINE_BYTES = 200

local KIND_TEXT = 1 -- lsp.CompletionItemKind.Text
local PLAIN_TEXT = 1 -- lsp.InsertTextFormat.PlainText: a suggestion is no snippet ("$1" stays "$1")

--- Whether textgen may offer items in `buf` now: where it would suggest (filetypes, buffer kind,
--- g:textgen.enabled), with a model to ask, in a buffer (not on the command line or in a terminal).
function M.available(buf)
  local mode = api.nvim_get_mode().mode:sub(1, 1)
  if mode == "c" or mode == "t" then
    return false
  end
  local cfg = config.get()
  return context.disabled_reason(buf or api.nvim_get_current_buf(), cfg) == nil and host.can_serve(cfg, false)
end

local function label_of(keyword, text)
  local first = text:match("^[^\n]*")
  local label = keyword .. first
  if vim.fn.strdisplaywidth(label) > M.LABEL_WIDTH then
    label = vim.fn.strcharpart(label, 0, M.LABEL_WIDTH - 1) .. "…"
  elseif #first < #text then
    label = label .. " …"
  end
  return label
end

--- A Markdown code block of `text` in the buffer's filetype, fenced with more backticks than it holds.
local function code_block(text, filetype)
  local fence = "```"
  while text:find(fence, 1, true) do
    fence = fence .. "`"
  end
  return ("%s%s\n%s\n%s"):format(fence, filetype, text, fence)
end

---@class textgen.MenuPlace  where a menu asks (0-based row, byte columns)
---@field row integer
---@field col integer        the cursor
---@field start integer      where the word before the cursor starts (the menu's keyword)
---@field line string        the cursor's line

--- LSP completion items for `texts` (each the text to insert at the cursor), at `place` in `buf`.
---@param texts string[]
---@param place textgen.MenuPlace
---@return lsp.CompletionItem[]
function M.build(texts, place, buf)
  local start = math.max(0, math.min(place.start, place.col))
  local keyword = place.line:sub(start + 1, place.col)
  local before = place.line:sub(1, place.col):sub(-DOC_LINE_BYTES):gsub("^[\128-\191]+", "")
  local filetype = vim.bo[buf].filetype
  local items = {}
  for i, text in ipairs(texts) do
    items[#items + 1] = {
      label = label_of(keyword, text),
      filterText = keyword .. text:match("^[^\n]*"),
      sortText = ("%02d"):format(i), -- the current suggestion first, then the alternatives
      kind = KIND_TEXT,
      insertTextFormat = PLAIN_TEXT,
      textEdit = {
        newText = keyword .. text,
        range = {
          start = { line = place.row, character = start },
          ["end"] = { line = place.row, character = place.col },
        },
      },
      documentation = { kind = "markdown", value = code_block(before .. text, filetype) },
    }
  end
  return items
end

local function nothing() end

--- Ask for the items at `place` in the current buffer; `answer(items)` is called once: at once from
--- the suggestion on screen, else when the model answers (never waiting for it), `{}` when there is
--- nothing to offer or the buffer changed meanwhile. Returns a function that cancels the request.
---@param place textgen.MenuPlace
---@param answer fun(items: lsp.CompletionItem[])
---@return fun()
function M.ask(place, answer)
  local buf = api.nvim_get_current_buf()
  if not M.available(buf) or not context.mid_line_allows(place.line:sub(place.col + 1), config.get().mid_line) then
    answer({})
    return nothing
  end
  local id = suggestion.request_items(function(texts)
    answer(M.build(texts, place, buf))
  end)
  if not id then
    return nothing
  end
  return function()
    suggestion.cancel_items(id)
  end
end

return M
