--- Small helpers more than one module needs, defined once.
local M = {}

--- One UTF-8 character (or a stray byte): its lead byte, then its continuation bytes.
M.UTF8_CHAR = "[%z\1-\127\194-\244][\128-\191]*"

--- Whether a value from Vimscript or RPC is missing: nil, or v:null (vim.NIL).
function M.is_null(v)
  return v == nil or v == vim.NIL
end

--- Whether Neovim is in a mode that inserts at the cursor (insert or replace, with their submodes).
function M.inserting()
  local mode = vim.api.nvim_get_mode().mode:sub(1, 1)
  return mode == "i" or mode == "R"
end

--- Whether the mode is Replace or Virtual Replace (`R`, `gR`, and a command of CTRL-O from them):
--- typed text overwrites there, and an accepted suggestion would be inserted instead, so that <BS>
--- then puts back characters that Replace mode never took. No suggestion shows there.
function M.replacing()
  local mode = vim.api.nvim_get_mode().mode
  return mode:sub(1, 1) == "R" or mode == "niR" or mode == "niV"
end

--- Append `item` to `list`, dropping the oldest items past `keep` (the last lines of a job's output).
function M.keep_last(list, item, keep)
  list[#list + 1] = item
  while #list > keep do
    table.remove(list, 1)
  end
end

--- "1:05" for 65 seconds (a duration on a progress line).
function M.clock(seconds)
  seconds = math.max(0, math.floor(seconds + 0.5))
  return ("%d:%02d"):format(math.floor(seconds / 60), seconds % 60)
end

--- Create an autocommand in `group` whose callback gets the event's buffer; its description is
--- "textgen: " .. `desc`.
---@param group integer
---@param events string|string[]
---@param desc string
---@param fn fun(buf: integer)
---@param pattern string|string[]|nil
function M.autocmd(group, events, desc, fn, pattern)
  vim.api.nvim_create_autocmd(events, {
    group = group,
    pattern = pattern,
    desc = "textgen: " .. desc,
    callback = function(ev)
      fn(ev.buf)
    end,
  })
end

return M
