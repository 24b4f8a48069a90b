--- The User autocommands other plugins listen to (:help textgen-events): TextGenSuggestion,
--- TextGenAccept, TextGenTrainDone.
---
--- Callers fire only once their own state is up to date, so that a handler sees textgen as it is
--- (is_visible(), status()) and nothing a handler does or throws can leave it half-changed.
local M = {}

--- Run the `User {name}` autocommands with `data` (their `ev.data`). Neovim reports an error in a
--- handler itself and goes on; the pcall keeps even a refused call (e.g. under 'textlock') from
--- reaching the keystroke or the host callback that fired it.
---@param name string
---@param data table
function M.fire(name, data)
  pcall(vim.api.nvim_exec_autocmds, "User", { pattern = name, modeline = false, data = data })
end

return M
