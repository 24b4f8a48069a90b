--- Telling the user something without getting in the way of typing.
---
--- A message wider than the command line makes Neovim stop at "Press ENTER", which in the middle
--- of typing is worse than the problem being reported. So messages that arise while typing are
--- fitted to one line (details are in :TextGenStatus and :checkhealth textgen). The answer to a
--- command can arrive after the user has started typing again, so that goes for every message.
local M = {}

local said = {}

--- `text` cut to the width of the command line, with "…" where it was cut.
function M.fit(text)
  local width = math.max(20, (vim.v.echospace or vim.o.columns) - 1)
  if vim.fn.strdisplaywidth(text) <= width then
    return text
  end
  local n = math.min(vim.fn.strchars(text), width)
  while n > 0 and vim.fn.strdisplaywidth(vim.fn.strcharpart(text, 0, n)) > width - 1 do
    n = n - 1
  end
  return vim.fn.strcharpart(text, 0, n) .. "…"
end

--- Say `text` (prefixed "textgen: ") on one line; at a safe moment, since callers may be in a callback.
function M.say(text, level)
  local line = M.fit("textgen: " .. text)
  vim.schedule(function()
    vim.notify(line, level or vim.log.levels.WARN)
  end)
end

--- Say `text` only the first time it comes up in this session.
function M.say_once(text, level)
  if said[text] then
    return
  end
  said[text] = true
  M.say(text, level)
end

--- Show `text` on the command line in place of the previous progress line (not kept in :messages).
--- Skipped while the user is typing a command, so it never overwrites their command line.
function M.progress(text)
  local line = M.fit("textgen: " .. text)
  vim.schedule(function()
    local mode = vim.api.nvim_get_mode().mode
    if mode:sub(1, 1) ~= "c" and mode:sub(1, 1) ~= "r" then
      vim.api.nvim_echo({ { line } }, false, {})
    end
  end)
end

return M
