--- :checkhealth textgen — everything textgen needs, each problem with how to fix it.
local M = {}

local health = vim.health
local ROOT = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h:h")

--- Run a short Python program in the host's Python; returns its decoded JSON output or an error.
local function python_json(python, code, args)
  local cmd = vim.list_extend({ python, "-c", code }, args or {})
  local env = { PYTHONPATH = ROOT .. (vim.env.PYTHONPATH and (":" .. vim.env.PYTHONPATH) or "") }
  local ok, result = pcall(function()
    return vim.system(cmd, { text = true, env = env, cwd = ROOT }):wait(60000)
  end)
  if not ok then
    return nil, tostring(result)
  end
  if result.code ~= 0 then
    local err = (result.stderr or ""):gsub("%s+$", "")
    return nil, err:match("[^\n]*$") ~= "" and err:match("[^\n]*$") or ("exit code " .. result.code)
  end
  local decoded_ok, decoded = pcall(vim.json.decode, result.stdout)
  if not decoded_ok then
    return nil, "unexpected output: " .. result.stdout
  end
  return decoded
end

local PROBE = [[
import importlib.metadata as md, importlib.util, json, sys
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
found = {"python": sys.version.split()[0]}
for module, dist in (("pynvim", "pynvim"), ("numpy", "numpy"), ("tensorflow", "tensorflow")):
    found[module] = version(dist) or ("present" if importlib.util.find_spec(module) else None)
try:
    import textgen_core
    found["textgen_core"] = textgen_core.__file__
except Exception as exc:
    found["textgen_core_error"] = f"{exc.__class__.__name__}: {exc}"
print(json.dumps(found))
]]

local LOAD = [[
import json, sys
import textgen_core
try:
    m = textgen_core.load_model(sys.argv[1], backend=sys.argv[2])
except (textgen_core.ModelNotFoundError, textgen_core.ModelFileError, ValueError, ImportError) as exc:
    print(json.dumps({"error": str(exc)}))
else:
    print(json.dumps({"name": m.name, "path": str(m.path), "val_bpc": m.info.val_bpc,
                      "layers": m.config.layers, "hidden": m.config.hidden,
                      "ngram_contexts": m.ngram.contexts if m.ngram else None, "ngram_expected": bool(m.info.ngram)}))
]]

local function check_neovim()
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. tostring(vim.version()) .. " (0.10 or later: inline ghost text)")
  else
    health.error("Neovim 0.10 or later is needed (inline virtual text)", { "Upgrade Neovim." })
  end
end

--- Checks the Python host; returns its program when it is usable.
local function check_python()
  local prog = vim.g.python3_host_prog
  if type(prog) ~= "string" or prog == "" then
    local ok, detected = pcall(vim.fn["provider#python3#Prog"])
    prog = ok and detected or ""
    if prog == "" then
      health.error("no Python 3 host found", {
        "Set g:python3_host_prog to a Python with pynvim and numpy, e.g. this plugin's .venv/bin/python.",
      })
      return nil
    end
    health.warn("g:python3_host_prog is not set; Neovim found " .. prog, {
      "Set g:python3_host_prog to the Python that has textgen's packages (make run does it for you).",
    })
  elseif vim.fn.executable(prog) == 0 then
    health.error("g:python3_host_prog is not executable: " .. prog, { "Point it at an existing Python 3." })
    return nil
  else
    health.ok("Python host: " .. prog)
  end
  return prog
end

local function check_packages(python)
  local found, err = python_json(python, PROBE)
  if not found then
    health.error("cannot run the Python host: " .. tostring(err), { "Check g:python3_host_prog." })
    return false
  end
  health.ok("Python " .. found.python)
  local usable = true
  for _, name in ipairs({ "pynvim", "numpy" }) do
    if found[name] ~= vim.NIL and found[name] then
      health.ok(name .. " " .. found[name])
    else
      usable = false
      health.error(name .. " is missing in the Python host", { python .. " -m pip install " .. name })
    end
  end
  if found.textgen_core then
    health.ok("textgen_core: " .. found.textgen_core)
  else
    usable = false
    health.error("textgen_core does not import: " .. tostring(found.textgen_core_error), {
      "Install the plugin's Python package: " .. python .. " -m pip install -e " .. ROOT,
    })
  end
  if found.tensorflow ~= vim.NIL and found.tensorflow then
    health.ok("TensorFlow " .. found.tensorflow .. " (for training)")
  else
    health.warn("TensorFlow is not installed: suggestions work, training a model does not", {
      python .. " -m pip install tensorflow",
    })
  end
  return usable
end

local function check_remote_plugin()
  local host = require("textgen.host")
  if host.registered() then
    health.ok("remote plugin registered (manifest: " .. tostring(vim.g.loaded_remote_plugins) .. ")")
  else
    health.error("the remote plugin is not registered in the manifest", {
      "Run :UpdateRemotePlugins and restart Neovim (lazy.nvim: build = ':UpdateRemotePlugins').",
    })
  end
  if host.broken then
    health.error(host.broken)
  end
end

local function check_model(python, cfg)
  local result, err = python_json(python, LOAD, { cfg.model, cfg.backend })
  if not result then
    health.error("could not try the model: " .. tostring(err))
  elseif result.error then
    health.error("model '" .. cfg.model .. "' does not load: " .. result.error, {
      "Set g:textgen.model to a model name or folder, or train one with `textgen train FILE --out DIR`.",
    })
  else
    local bpc = result.val_bpc ~= vim.NIL and ("val bpc %.3f"):format(result.val_bpc) or "val bpc unknown"
    health.ok(("model '%s' loads: %s, %d×%d GRU, %s, %s backend"):format(
      cfg.model,
      result.path,
      result.layers,
      result.hidden,
      bpc,
      cfg.backend
    ))
    if result.ngram_contexts ~= vim.NIL then
      health.ok(("its corpus n-gram is built: %.1f M contexts"):format(result.ngram_contexts / 1e6))
    elseif result.ngram_expected then
      health.warn("its corpus n-gram is not built: suggestions are weaker until it is", {
        "Run `make install` in the plugin's folder (the default model's), or `textgen ngram` again (:help textgen-ngram).",
      })
    end
  end
end

local function check_config()
  local raw = type(vim.g.textgen) == "table" and vim.g.textgen or {}
  local cfg, problems = require("textgen.config").validate(raw)
  if #problems == 0 then
    health.ok("g:textgen is valid")
  end
  for _, problem in ipairs(problems) do
    health.warn(problem, { "See :help textgen-options." })
  end
  for name, lhs in pairs(cfg.keys) do
    if lhs then
      local map = vim.fn.maparg(lhs, "i", false, true)
      if type(map) == "table" and map.desc and not tostring(map.desc):find("^textgen:") then
        health.warn(("%s (%s) is mapped by something else in this buffer"):format(lhs, name), {
          "Call require('textgen')." .. name .. "() from that mapping, or pick another key in g:textgen.keys.",
        })
      end
    end
  end
  return cfg
end

function M.check()
  health.start("textgen: Neovim and the Python host")
  check_neovim()
  check_remote_plugin()
  local python = check_python()
  local usable = python and check_packages(python)
  health.start("textgen: options and model")
  local cfg = check_config()
  if usable then
    check_model(python, cfg)
  end
end

return M
