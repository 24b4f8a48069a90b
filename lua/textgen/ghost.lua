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

--- How a Tab is drawn in `win` with 'list' on: 'listchars' tab:xy (or xyz), or nil where it is drawn
--- as blanks ('list' off, or no tab: item, where Neovim shows ^I: shown as blanks here).
local function list_tab(win)
  if not vim.wo[win].list then
    return nil
  end
  local chars = vim.wo[win].listchars:match("tab:([^,]+)")
  if not chars or vim.fn.strchars(chars) < 2 then
    return nil
  end
  return { vim.fn.strcharpart(chars, 0, 1), vim.fn.strcharpart(chars, 1, 1), vim.fn.strcharpart(chars, 2, 1) }
end

--- Tabs in virtual text would show as one cell: show each as the buffer would at its place, up to the
--- next multiple of 'tabstop' from `start` (the display column the text begins at, 0-based), in
--- 'listchars' where 'list' is on, so that accepting does not move the text.
local function expand_tabs(text, buf, start, tab_chars)
  if not text:find("\t", 1, true) then
    return text
  end
  local tabstop = vim.bo[buf].tabstop > 0 and vim.bo[buf].tabstop or 8
  local column, parts = start, {}
  for piece, tab in text:gmatch("([^\t]*)(\t?)") do
    parts[#parts + 1] = piece
    column = column + vim.fn.strdisplaywidth(piece, column)
    if tab ~= "" then
      local width = tabstop - column % tabstop
      if tab_chars then
        local last = tab_chars[3] ~= "" and width > 1 and tab_chars[3] or tab_chars[2]
        parts[#parts + 1] = width == 1 and (tab_chars[3] ~= "" and tab_chars[3] or tab_chars[1])
          or tab_chars[1] .. tab_chars[2]:rep(width - 2) .. last
      else
        parts[#parts + 1] = string.rep(" ", width)
      end
      column = column + width
    end
  end
  return table.concat(parts)
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

--- How many screen rows of `win` lie below its cursor's line once `first` (the ghost text's first
--- line) is drawn inline at the cursor, display column `at`: where the suggestion's further lines can show. Neovim does
--- not scroll for virtual lines, so lines past the window's bottom would be accepted unseen.
local function rows_below(win, buf, row, col, at, first)
  local height = vim.api.nvim_win_get_height(win)
  local below = height - vim.fn.winline()
  if vim.wo[win].wrap then
    local info = vim.fn.getwininfo(win)[1]
    local width = math.max(1, (info and info.width - info.textoff) or vim.api.nvim_win_get_width(win))
    local rest = vim.api.nvim_buf_get_text(buf, row, col, row, -1, {})[1] or ""
    local shown = at + vim.fn.strdisplaywidth(first, at)
    local last = shown + vim.fn.strdisplaywidth(rest:sub(1, 4096), shown) -- a huge line: at most a row off
    below = below - (math.floor(math.max(last - 1, 0) / width) - math.floor(at / width))
  end
  return math.max(0, below)
end

--- The part of `text` that `render` shows when the window has room for only some of its lines (the
--- lines that fit below the cursor's line), or `text` itself; accepting takes this part.
function M.visible_part(buf, text)
  local shown = last_render[buf] and last_render[buf].text
  if shown and #shown < #text and text:sub(1, #shown) == shown then
    return shown
  end
  return text
end

--- Show `text` at (row, col) in `buf`, or clear the ghost text when `text` is nil or "". Lines that
--- would fall below the window's bottom are brought into view by scrolling while the cursor's line
--- stays in it, and left out where they still do not fit (`visible_part`).
---@param buf integer
---@param row integer|nil 0-based
---@param col integer|nil byte column
---@param text string|nil
function M.render(buf, row, col, text)
  buf = buf == 0 and vim.api.nvim_get_current_buf() or buf
  local id = marks[buf]
  if text == nil or text == "" then
    if id then
      marks[buf] = nil
      pcall(vim.api.nvim_buf_del_extmark, buf, M.ns, id)
    end
    return
  end
  local lines = vim.split(text, "\n", { plain = true })
  local win = vim.api.nvim_get_current_win()
  local shown_here = vim.api.nvim_win_get_buf(win) == buf
  local start = 0 -- the display column the ghost text starts at, where it matters (a Tab, more lines)
  if shown_here and (#lines > 1 or lines[1]:find("\t", 1, true)) then
    start = vim.fn.strdisplaywidth(vim.api.nvim_buf_get_text(buf, row, 0, row, col, {})[1] or "")
  end
  local tab_chars = list_tab(win)
  local first = expand_tabs(lines[1], buf, start, tab_chars)
  if #lines > 1 and shown_here then
    local room = rows_below(win, buf, row, col, start, first)
    -- Scroll the text up (as Neovim scrolls for the cursor) while the cursor's line stays in view; what
    -- does not fit then, a window too small, is left out.
    local topline = vim.fn.line("w0", win)
    while room < #lines - 1 and topline < row + 1 and vim.fn.winline() > 1 do
      topline = topline + 1
      vim.fn.winrestview({ topline = topline })
      room = rows_below(win, buf, row, col, start, first)
    end
    if room < #lines - 1 then
      lines = vim.list_slice(lines, 1, room + 1)
      text = table.concat(lines, "\n")
      if text == "" then -- nothing of it would show: none, and <Tab> keeps its own meaning
        M.render(buf, nil, nil, nil)
        return
      end
    end
  end
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { expand_tabs(lines[i], buf, 0, tab_chars), M.HL } }
  end
  scope_to_current_window()
  local ok, new_id = pcall(vim.api.nvim_buf_set_extmark, buf, M.ns, row, col, {
    id = id,
    virt_text = first ~= "" and { { first, M.HL } } or nil,
    virt_text_pos = "inline",
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    -- its own look only: "combine" took the attributes of what the buffer shows at that column, so
    -- after `f(` with `)` next, matchparen's highlight made it look like selected, typed text
    hl_mode = "replace",
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
