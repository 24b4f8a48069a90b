--- Where :TextGenTrain saves a model: a name in the user's model folder, or a folder the user gives.
---
--- The user's model folder is the one textgen_core looks names up in first ($TEXTGEN_MODELS_DIR,
--- else stdpath("data")/textgen/models), so a saved name works with :TextGenModel at once. Models are
--- never saved inside the plugin's own folder (a plugin update would delete them).
local M = {}

M.PLUGIN_ROOT = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h:h")

--- The folder model names resolve to (the Python host and the training job see the same one).
function M.models_dir()
  local env = vim.env.TEXTGEN_MODELS_DIR
  if env and env ~= "" then
    return (vim.fn.fnamemodify(vim.fn.expand(env), ":p"):gsub("/$", ""))
  end
  return vim.fn.stdpath("data") .. "/textgen/models"
end

--- `text` made into a model name textgen_core accepts: [A-Za-z0-9_.+-], not starting with . + -.
function M.sanitise(text)
  local name = text:gsub("[^%w_.+-]+", "-"):gsub("^[.+-]+", ""):gsub("%-+$", ""):gsub("%.%.+", "."):sub(1, 128)
  return name ~= "" and name or "buffer"
end

--- The project a buffer belongs to: its git root's name, else the current directory's name.
function M.project_name(buf)
  local file = vim.api.nvim_buf_get_name(buf)
  local start = file ~= "" and vim.fs.dirname(file) or vim.fn.getcwd()
  local git = vim.fs.find(".git", { upward = true, path = start })[1]
  local root = git and vim.fs.dirname(git) or vim.fn.getcwd()
  return M.sanitise(vim.fs.basename(root))
end

--- A path as the user wrote it, made absolute from Neovim's current directory (`~` expanded, no
--- wildcards or `%`), without a trailing slash.
function M.absolute(path)
  return (vim.fn.fnamemodify(path, ":p"):gsub("(.)/$", "%1"))
end

local function looks_like_path(text)
  return text:find("/", 1, true) ~= nil or text:sub(1, 1) == "~" or text:sub(1, 1) == "."
end

local function inside(path, folder)
  return path == folder or vim.startswith(path, folder .. "/")
end

--- The folder to save into and the name to show, from `:TextGenTrain [name-or-path]`. A path (with a
--- `/`, or starting with `.` or `~`) is taken as written, relative to the current directory; whatever
--- it names, the training job refuses to save over anything but an empty folder or a model folder.
---@param buf integer
---@param given string|nil  a model name or a folder path; nil for the project's name
---@return {path: string, name: string}|nil, string|nil  the place, or why it cannot be used
function M.resolve(buf, given)
  local path, name
  if given == nil or given == "" then
    name = M.project_name(buf)
    path = M.models_dir() .. "/" .. name
  elseif looks_like_path(given) then
    path = M.absolute(given)
    name = vim.fs.basename(path)
  else
    if M.sanitise(given) ~= given then
      return nil,
        ("'%s' is not a model name (letters, digits, _ . + - only); give a folder path to save elsewhere"):format(
          given
        )
    end
    name = given
    path = M.models_dir() .. "/" .. name
  end
  local root = vim.fn.fnamemodify(M.PLUGIN_ROOT, ":p"):gsub("/$", "")
  if inside(path, root) then
    return nil, ("not saving inside the plugin's own folder (%s); a plugin update would delete it"):format(root)
  end
  return { path = path, name = name, given = given }
end

--- Why a model cannot be saved at `path` (its folder, or the nearest existing folder above it, is not
--- writable, or a file stands where a folder above it would be), or nil. Checked before training, so a
--- read-only place costs no training time.
---@return string|nil
function M.unwritable(path)
  local dir = vim.fs.dirname(path)
  while vim.fn.isdirectory(dir) == 0 and vim.fs.dirname(dir) ~= dir do
    if vim.uv.fs_stat(dir) then
      return ("cannot save '%s': %s is a file, not a folder; give another place, :TextGenTrain {folder}"):format(
        vim.fs.basename(path),
        dir
      )
    end
    dir = vim.fs.dirname(dir)
  end
  if vim.fn.filewritable(dir) ~= 2 then
    return ("cannot save '%s': its folder is read-only (%s); give another place, :TextGenTrain {folder}"):format(
      vim.fs.basename(path),
      dir
    )
  end
  return nil
end

return M
