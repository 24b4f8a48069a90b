--- Telling the user something without getting in the way of typing.
---
--- A message wider than the command line makes Neovim stop at "Press ENTER", which in the middle
--- of typing is worse than the problem being reported. So messages that arise while typing are
--- fitted to one line (details are in :TextGenStatus and :checkhealth textgen, and :TextGenStatus
--- shows the last messages that were cut, whole). The answer to a command can arrive after the user
--- has started typing again, so that goes for every message.
local M = {}

local said = {}

--- `text` cut to `width` display cells, with "…" where it was cut.
local function cut(text, width)
  if vim.fn.strdisplaywidth(text) <= width then
    return text
  end
  local n = math.min(vim.fn.strchars(text), width)
  while n > 0 and vim.fn.strdisplaywidth(vim.fn.strcharpart(text, 0, n)) > width - 1 do
    n = n - 1
  end
  return vim.fn.strcharpart(text, 0, n) .. "…"
end

--- `text` and then `way_out` cut to the width of the command line, with "…" where it was cut: the
--- way out ("; choose one with :TextGenModel") is kept whole where it takes at most half the line.
---@param width integer|nil  the cells to fit (default: the command line's, v:echospace)
---@param way_out string|nil
function M.fit(text, width, way_out)
  width = math.max(20, (width or vim.v.echospace or vim.o.columns) - 1)
  way_out = way_out or ""
  if vim.fn.strdisplaywidth(text .. way_out) <= width then
    return text .. way_out
  end
  if vim.fn.strdisplaywidth(way_out) <= width / 2 then
    return cut(text, width - vim.fn.strdisplaywidth(way_out)) .. way_out
  end
  return cut(text .. way_out, width)
end

--- Say `text` (prefixed "textgen: ") and `way_out` on one line; at a safe moment, since callers may
--- be in a callback (and fitted then, to the command line as it is when shown).
function M.say(text, level, way_out)
  vim.schedule(function()
    local full = "textgen: " .. text .. (way_out or "")
    local shown = M.fit("textgen: " .. text, nil, way_out)
    if shown ~= full then
      M.cut_short = vim.tbl_filter(function(kept)
        return kept ~= full -- said again: kept once, as the latest
      end, M.cut_short)
      require("textgen.util").keep_last(M.cut_short, full, M.CUT_SHORT_KEPT)
    end
    vim.notify(shown, level or vim.log.levels.WARN)
  end)
end

--- The last messages that did not fit the command line, whole (oldest first): :TextGenStatus shows
--- them, since `:messages` keeps only what was shown.
---@type string[]
M.cut_short = {}
M.CUT_SHORT_KEPT = 5

--- Say `text` only the first time it comes up in this session.
function M.say_once(text, level, way_out)
  if said[text] then
    return
  end
  said[text] = true
  M.say(text, level, way_out)
end

--- Show `text` on the command line in place of the previous progress line (not kept in :messages).
--- Skipped while the user is typing a command, so it never overwrites their command line.
function M.progress(text)
  vim.schedule(function()
    local mode = vim.api.nvim_get_mode().mode
    if mode:sub(1, 1) ~= "c" and mode:sub(1, 1) ~= "r" then
      vim.api.nvim_echo({ { M.fit("textgen: " .. text) } }, false, {})
    end
  end)
end

--- How a job ended, by its exit code (above 128: the signal that killed it; the usual SIGKILL is
--- the kernel's out-of-memory killer).
local SIGNALS = {
  [1] = "SIGHUP",
  [2] = "SIGINT",
  [6] = "SIGABRT",
  [9] = "SIGKILL, e.g. out of memory",
  [11] = "SIGSEGV",
  [15] = "SIGTERM",
  [25] = "SIGXFSZ",
}

--- The signal that ended a job with exit code `code`, or nil when it exited by itself.
function M.signal_name(code)
  if code > 128 then
    return SIGNALS[code - 128] or ("signal " .. (code - 128))
  end
  return nil
end

--- "killed by SIGKILL, e.g. out of memory" or "exit code 1".
function M.exit_reason(code)
  local signal = M.signal_name(code)
  return signal and ("killed by " .. signal) or ("exit code " .. code)
end

--- `text` with the first `path` in it written as the user wrote it (`given`): "~/m/x", not "/home/u/m/x".
function M.as_written(text, path, given)
  local at = given and text:find(path, 1, true)
  if not at then
    return text
  end
  return text:sub(1, at - 1) .. given .. text:sub(at + #path)
end

return M
