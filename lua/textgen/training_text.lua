--- What :TextGenTrain trains on: the buffer (or the lines of a range), plus files from
--- `g:textgen.train_files` and the command's file arguments.
---
--- A buffer too small or not text is refused here, at once, rather than after the training job has
--- spent seconds importing TensorFlow; files are checked by textgen_core itself.
local M = {}

-- textgen_core.train.training.MIN_TRAIN_BYTES: the least text a model can be trained and validated on.
M.MIN_BYTES = 256

--- The text of `buf` from line `first` to `last` (1-based, inclusive), as the bytes a file would hold.
function M.buffer_text(buf, first, last)
  local lines = vim.api.nvim_buf_get_lines(buf, first - 1, last, false)
  if #lines == 1 and lines[1] == "" then
    return "" -- an empty buffer
  end
  local text = table.concat(lines, "\n")
  if #lines > 0 and (last < vim.api.nvim_buf_line_count(buf) or vim.bo[buf].eol) then
    text = text .. "\n"
  end
  return text
end

local function has_glob(text)
  return text:find("[*?%[{]") ~= nil
end

--- Files (or globs) named by `g:textgen.train_files` and by the command, `~` expanded.
---@param globs string[]
---@return string[]
function M.files(globs)
  local files = {}
  for _, pattern in ipairs(globs) do
    if has_glob(pattern) then
      files[#files + 1] = (pattern:gsub("^~/", (vim.env.HOME or "~") .. "/")) -- expanded by textgen_core
    else
      files[#files + 1] = vim.fn.fnamemodify(vim.fn.expand(pattern), ":p")
    end
  end
  return files
end

--- Whether a command argument names training input (an existing file or a glob) rather than a model.
function M.is_file_argument(arg)
  return has_glob(arg) or vim.fn.filereadable(vim.fn.expand(arg)) == 1
end

local function kilobytes(n)
  return n < 1024 and (n .. (n == 1 and " byte" or " bytes")) or ("%.1f KB"):format(n / 1024)
end

--- Why `text` (the buffer's part) cannot be trained on, or nil; `with_files` when files add text.
function M.problem(text, with_files)
  if text:find("\0", 1, true) then
    return "this buffer looks binary (it holds NUL bytes); train on a text buffer"
  end
  if not with_files and #text < M.MIN_BYTES then
    return ("this buffer holds %s; training needs at least %d bytes (a few KB is better)"):format(
      kilobytes(#text),
      M.MIN_BYTES
    )
  end
  return nil
end

M.kilobytes = kilobytes

return M
