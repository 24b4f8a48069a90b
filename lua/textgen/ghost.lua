--- Ghost text: the only code that touches textgen's extmarks.
---
--- One extmark per buffer in namespace `textgen`: the suggestion's first line as inline virtual
--- text at the cursor, the following lines as virtual lines below. A new suggestion moves or
--- rewrites the same extmark, so the screen goes from the old text to the new in one redraw.
local M = {}

M.ns = vim.api.nvim_create_namespace("textgen")
M.HL = "TextGenSuggestion"

---@type table<integer, integer>  buffer → extmark id
local marks = {}

---@type table<integer, {tick: integer, first_ns: integer, time_ns: integer, text: string}>
local last_render = {}

--- Tabs in virtual text would show as one cell; show them as the buffer would.
local function expand_tabs(text, buf)
  if not text:find("\t", 1, true) then
    return text
  end
  local width = vim.bo[buf].tabstop
  return (text:gsub("\t", string.rep(" ", width > 0 and width or 8)))
end

-- The window the ghost text's namespace is scoped to: the one typed in, not every window showing the
-- buffer (a split of the same file showed the suggestion twice). nvim__ns_set is Neovim 0.11's and
-- marked experimental; without it (0.10) every window of the buffer shows it, as before.
local scoped_win = nil

local function scope_to_current_window()
  local win = vim.api.nvim_get_current_win()
  if win ~= scoped_win and vim.api.nvim__ns_set and pcall(vim.api.nvim__ns_set, M.ns, { wins = { win } }) then
    scoped_win = win
  end
end

--- Show `text` at (row, col) in `buf`, or clear the ghost text when `text` is nil or "".
---@param buf integer
---@param row integer|nil 0-based
---@param col integer|nil byte column
---@param text string|nil
function M.render(buf, row, col, text)
  local id = marks[buf]
  if text == nil or text == "" then
    if id then
      marks[buf] = nil
      pcall(vim.api.nvim_buf_del_extmark, buf, M.ns, id)
    end
    return
  end
  local lines = vim.split(text, "\n", { plain = true })
  local first = expand_tabs(lines[1], buf)
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { expand_tabs(lines[i], buf), M.HL } }
  end
  scope_to_current_window()
  local ok, new_id = pcall(vim.api.nvim_buf_set_extmark, buf, M.ns, row, col, {
    id = id,
    virt_text = first ~= "" and { { first, M.HL } } or nil,
    virt_text_pos = "inline",
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = "combine",
    priority = 200,
  })
  if ok then
    marks[buf] = new_id
    local tick, now, last = vim.api.nvim_buf_get_changedtick(buf), vim.uv.hrtime(), last_render[buf]
    last_render[buf] = {
      tick = tick,
      first_ns = last and last.tick == tick and last.first_ns or now,
      time_ns = now,
      text = text,
    }
  else
    M.render(buf, nil, nil, nil)
  end
end

--- Whether ghost text is on screen in `buf`.
function M.is_shown(buf)
  return marks[buf] ~= nil
end

--- When ghost text was last drawn in `buf` (monotonic ns), for which changedtick, and when it was
--- first drawn for that changedtick (a suggestion's first words, then the whole): for benchmarks.
function M.last_render(buf)
  return last_render[buf]
end

--- Forget a buffer that is gone.
function M.forget(buf)
  marks[buf] = nil
  last_render[buf] = nil
end

return M
