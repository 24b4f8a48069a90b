--- Python jobs of Neovim that end with it: training and pip. What they share is how they are started
--- (a launcher that asks Linux to end the job when Neovim ends, at the lowest CPU priority) and how
--- their output is read (whole lines).
local M = {}

-- Runs `python -m MODULE ARGS...` in this process (exec keeps the pid), after asking Linux to end it
-- when Neovim ends, and at the lowest CPU priority (nice 19), so the editor and its host come first.
-- Never a module of the working directory (Neovim's, often a project just cloned): `-c` and `-m` put
-- it first on sys.path, so it is dropped before anything is imported, in the launcher and in the
-- module it runs (textgen_core/serve/child_python.py says the same for the host's children).
local LAUNCH = [==[
import os, sys
sys.path[:] = [p for p in sys.path if p != ""]
try:
    import ctypes, signal
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except Exception:
    pass
if str(os.getppid()) != os.environ.get("TEXTGEN_PARENT_PID", str(os.getppid())):
    sys.exit(143)  # Neovim is already gone
try:
    os.nice(19)
except OSError:
    pass
os.execv(sys.executable, [sys.executable, "-c", "import sys; sys.path[:] = [p for p in sys.path if p != '']; "
         "import runpy; runpy._run_module_as_main(sys.argv.pop(1))", *sys.argv[1:]])  # what -m calls
]==]

--- The command that runs `python -m module args...` as a child of this Neovim (with `M.env()`).
---@param python string
---@param module string
---@param args string[]
---@return string[]
function M.command(python, module, args)
  return vim.list_extend({ python, "-c", LAUNCH, module }, args)
end

--- What the launcher needs in the job's environment, merged with `env`.
function M.env(env)
  return vim.tbl_extend("force", { TEXTGEN_PARENT_PID = tostring(vim.fn.getpid()), PYTHONUNBUFFERED = "1" }, env or {})
end

--- PYTHONPATH for a job that imports textgen_core from the plugin's folder (before the user's own).
function M.pythonpath()
  local root = require("textgen.save_place").PLUGIN_ROOT
  return root .. ((vim.env.PYTHONPATH or "") ~= "" and (":" .. vim.env.PYTHONPATH) or "")
end

--- A reader of a job's output stream that calls `on_line` for each whole line.
function M.line_reader(on_line)
  local partial = ""
  return function(_, data)
    data[1] = partial .. data[1]
    partial = data[#data]
    for i = 1, #data - 1 do
      on_line(data[i])
    end
  end
end

return M
