--- Where suggestions may appear, and what the model reads: the text before the cursor.
local message = require("textgen.message")

local M = {}

--- The model reads at most this many bytes before the cursor (the engine windows it further).
M.MAX_CONTEXT_BYTES = 4096

--- Characters that may follow the cursor for `mid_line = "closing"`: closing brackets, quotes, punctuation.
local CLOSING_ONLY = "^[%s%)%]%}'\"`;,%.:>]*$"

local hook_failure_said = false

--- What `g:textgen.enabled` says about `buf`: nil (on) or why textgen stays off there. It is asked
--- before every request, so a hook that throws is reported once, in one line, and counts as off
--- for that request: never an error per keystroke (the reason stays in :TextGenStatus).
---@param enabled boolean|function|string  a Lua function, or a Vimscript function's name
---@param buf integer
---@return string|nil
local function hook_reason(enabled, buf)
  if enabled == true or enabled == nil then
    return nil
  elseif enabled == false then
    return "g:textgen.enabled is false"
  end
  local ok, result
  if type(enabled) == "function" then
    ok, result = pcall(enabled, buf)
  else
    ok, result = pcall(vim.fn[enabled], buf)
  end
  if not ok then
    local why = tostring(result):match("^[^\n]*")
    if not hook_failure_said then
      hook_failure_said = true
      message.say(("g:textgen.enabled failed (%s); no suggestions where it fails"):format(why))
    end
    return "g:textgen.enabled failed: " .. why
  end
  if result == false or result == 0 or result == nil or result == vim.NIL then
    return "g:textgen.enabled returned false for this buffer"
  end
  return nil
end

--- Why textgen's own rules keep it off in `buf` (buffer kind, b:textgen_enabled, filetypes), or nil.
local function builtin_reason(buf, config)
  local bo = vim.bo[buf]
  if bo.buftype ~= "" and bo.buftype ~= "acwrite" then
    return ("it is a %s buffer"):format(bo.buftype)
  end
  if not bo.modifiable then
    return "the buffer is not modifiable"
  end
  if bo.readonly then
    return "the buffer is read-only"
  end
  local flag = vim.b[buf].textgen_enabled
  if flag == false or flag == 0 then
    return "b:textgen_enabled is off"
  end
  local ft = bo.filetype
  local filetypes = config.filetypes
  if ft ~= "" then
    if filetypes[ft] ~= nil then
      return not filetypes[ft] and ("filetype '%s' is excluded by g:textgen.filetypes"):format(ft) or nil
    end
    for part in ft:gmatch("[^.]+") do
      if filetypes[part] == false then
        return ("filetype '%s' is excluded by g:textgen.filetypes"):format(part)
      end
    end
  end
  if filetypes["*"] == false and not (ft ~= "" and filetypes[ft]) then
    return ("filetype '%s' is not enabled in g:textgen.filetypes"):format(ft)
  end
  return nil
end

--- Why textgen stays off in buffer `buf`, or nil when it may suggest there. The user's
--- g:textgen.enabled comes last: it is asked only about buffers textgen would otherwise serve.
---@param buf integer
---@param config textgen.Config
---@return string|nil
function M.disabled_reason(buf, config)
  return builtin_reason(buf, config) or hook_reason(config.enabled, buf)
end

--- Whether a suggestion may show with `after` (the rest of the line) following the cursor.
---@param after string
---@param mid_line string
function M.mid_line_allows(after, mid_line)
  if mid_line == "always" or after:match("^%s*$") then
    return true
  end
  return mid_line == "closing" and after:match(CLOSING_ONLY) ~= nil
end

local OPENS = { ["("] = true, ["["] = true, ["{"] = true }
local CLOSES = { [")"] = true, ["]"] = true, ["}"] = true }
local QUOTES = { ["'"] = true, ['"'] = true, ["`"] = true }
local PUNCTUATION = { ["."] = true, [","] = true, [";"] = true, [":"] = true }

--- Whether `line`'s byte `i`, outside brackets the suggestion opened and the character that `after`
--- starts with, is where the suggestion reaches `after`: a quote not escaped and not inside a word
--- (`don't`); punctuation at a word's end (`U.S.`, `3.14` go on); a closing bracket always.
local function reaches(line, i)
  local char, before, next = line:sub(i, i), line:sub(i - 1, i - 1), line:sub(i + 1, i + 1)
  if QUOTES[char] then
    return before ~= "\\" and not (before:match("%w") and next:match("%w"))
  elseif PUNCTUATION[char] then
    return next == "" or next:match("%s") ~= nil
  end
  return true
end

--- What of a suggestion goes before `after`, the rest of the line, when that holds closing characters
--- only (`mid_line = "closing"`: `print("hello, |")`). The model writes its own `")` where the line has
--- one already: the suggestion is cut where it reaches the first character `after` holds (`World")` →
--- `World`; `f(x), y)` before `)` → `f(x), y`; `bar)` before `);` → `bar`), and to its first line (a
--- line break would carry `after` to the end of the inserted text). Other text is as it is.
---@param text string
---@param after string
---@return string
function M.fit_before(text, after)
  local first = after:match("%S")
  if not first or not after:match(CLOSING_ONLY) then
    return text
  end
  local line = text:match("^[^\n]*")
  local depth = 0
  for i = 1, #line do
    local char = line:sub(i, i)
    if depth == 0 and char == first and reaches(line, i) then
      return line:sub(1, i - 1)
    end
    if OPENS[char] then
      depth = depth + 1
    elseif CLOSES[char] and depth > 0 then
      depth = depth - 1
    end
  end
  return line
end

--- Drop UTF-8 continuation bytes at the start of a byte-cut string, so no character is split.
local function from_char_start(text)
  local i = 1
  while i <= #text and i <= 4 do
    local b = text:byte(i)
    if b < 0x80 or b >= 0xC0 then
      break
    end
    i = i + 1
  end
  return text:sub(i)
end

--- The rest of line `row` after byte `col`, read without copying the whole line (which may be megabytes).
function M.after(buf, row, col)
  local ok, rest = pcall(vim.api.nvim_buf_get_text, buf, row, col, row, -1, {})
  return ok and rest[1] or ""
end

--- The text before (row, col) (0-based row, byte col): at most MAX_CONTEXT_BYTES, whole characters.
--- Only the needed tail of the cursor's line is read: a line may be megabytes long.
---@return string text, integer end_offset  the byte offset of (row, col) in the buffer
function M.before(buf, row, col)
  local first_col = math.max(0, col - M.MAX_CONTEXT_BYTES)
  local ok, head = pcall(vim.api.nvim_buf_get_text, buf, row, first_col, row, col, {})
  local parts = { ok and head[1] or "" }
  local size = #parts[1]
  local top = row
  while size < M.MAX_CONTEXT_BYTES and top > 0 do
    local first = math.max(0, top - 64)
    local lines = vim.api.nvim_buf_get_lines(buf, first, top, false)
    for i = #lines, 1, -1 do
      table.insert(parts, 1, lines[i] .. "\n")
      size = size + #lines[i] + 1
      if size >= M.MAX_CONTEXT_BYTES then
        break
      end
    end
    top = first
  end
  local text = table.concat(parts):gsub("%z", "") -- a NUL would turn the string into a Blob on its way to Python
  if #text > M.MAX_CONTEXT_BYTES then
    text = from_char_start(text:sub(-M.MAX_CONTEXT_BYTES))
  end
  local line_start = vim.api.nvim_buf_call(buf, function()
    return vim.fn.line2byte(row + 1)
  end)
  local end_offset = line_start > 0 and line_start - 1 + col or #text
  return text, math.max(end_offset, #text)
end

return M
