--- Whether a completion menu is open: Neovim's own popup menu, nvim-cmp, blink.cmp, or the
--- user's `g:textgen.menu_visible` hook. While one is open, ghost text is hidden and keys keep
--- their menu meaning.
local M = {}

local function call(hook)
  local ok, result
  if type(hook) == "function" then
    ok, result = pcall(hook)
  elseif type(hook) == "string" then
    ok, result = pcall(vim.fn[hook])
  else
    ok, result = pcall(vim.fn.call, hook, {})
  end
  return ok and result ~= nil and result ~= false and result ~= 0
end

--- Plugins whose menus are floating windows (pumvisible() does not see them), if loaded.
local function plugin_menu_visible()
  local cmp = package.loaded["cmp"]
  if type(cmp) == "table" and type(cmp.visible) == "function" then
    local ok, visible = pcall(cmp.visible)
    if ok and visible then
      return true
    end
  end
  local blink = package.loaded["blink.cmp"]
  if type(blink) == "table" then
    local is_visible = blink.is_menu_visible or blink.is_visible
    if type(is_visible) == "function" then
      local ok, visible = pcall(is_visible)
      if ok and visible then
        return true
      end
    end
  end
  return false
end

---@param config textgen.Config
function M.visible(config)
  if vim.fn.pumvisible() == 1 then
    return true
  end
  if config.menu_visible ~= nil then
    return call(config.menu_visible)
  end
  return plugin_menu_visible()
end

return M
