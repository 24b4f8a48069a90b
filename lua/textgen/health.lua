--- :checkhealth textgen — everything textgen needs, each problem with how to fix it.
local M = {}

-- Neovim 0.10 names these start/ok/...; older ones (where textgen refuses to start, and this check
-- says why) report_start/report_ok/..., 0.7 in require("health").
local health = vim.health or require("health")
if not health.start then
  health = {
    start = health.report_start,
    ok = health.report_ok,
    info = health.report_info,
    warn = health.report_warn,
    error = health.report_error,
  }
end
local ROOT = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h:h")
local VENV = ROOT .. "/.venv"
-- How the plugin's .venv is made again (and its Python packages installed): every advice that needs it.
local REBUILD = ("Run `make install` in %s (it makes %s), or with lazy.nvim `:Lazy build textgen.nvim`."):format(
  ROOT,
  VENV
)

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
for module, dist in (("pynvim", "pynvim"), ("numpy", "numpy"), ("tensorflow", "tensorflow"), ("keras", "keras")):
    found[module] = version(dist) or ("present" if importlib.util.find_spec(module) else None)
found["venv"] = sys.prefix != sys.base_prefix
try:
    import textgen_core
    found["textgen_core"] = textgen_core.__file__
    from textgen_core.memory import table_blocks
    found["compiled_lookup"] = table_blocks.compiled is not None
    from textgen_core.model import numpy_gru
    found["compiled_step"] = numpy_gru.compiled is not None
    found["half_steps"] = numpy_gru.half_matrices_here()
except Exception as exc:
    found["textgen_core_error"] = f"{exc.__class__.__name__}: {exc}"
print(json.dumps(found))
]]

local LOAD = [[
import json, sys
import textgen_core
try:
    m = textgen_core.load_model(sys.argv[1], backend=sys.argv[2], corpus_cache=False)   # the cache: below
except (textgen_core.ModelNotFoundError, textgen_core.ModelFileError, ValueError, ImportError) as exc:
    print(json.dumps({"error": str(exc)}))
else:
    from textgen_core.memory import corpus_ngram as corpus
    found = {"name": m.name, "path": str(m.path), "val_bpc": m.info.val_bpc, "layers": m.config.layers,
             "hidden": m.config.hidden, "ngram_contexts": m.ngram.contexts if m.ngram else None,
             "ngram_expected": bool(m.info.ngram), "ngram_countable": False}
    if m.ngram is None and corpus.wants_corpus_ngram(m.info):
        key = corpus.model_key(m.path)
        found.update(ngram_countable=True, ngram_counting=corpus.is_counting(sys.argv[3], key),
                     ngram_failure=(corpus.recorded_failure(sys.argv[3], key) or {}).get("reason"))
        try:
            cached = corpus.load_cached(sys.argv[3], key)
        except corpus.CorpusNgramError as exc:
            cached, found["ngram_damaged"] = None, str(exc)
        if cached is not None:
            found.update(ngram_cache=str(cached.folder), ngram_contexts=cached.ngram.contexts)
    print(json.dumps(found))
]]

--- Whether this Neovim can run textgen; on an older one says which version is needed.
local function check_neovim()
  local v = vim.version()
  local version = ("%d.%d.%d"):format(v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. version .. " (0.10 or later: inline ghost text)")
    return true
  end
  health.error(("Neovim 0.10 or later is needed (inline virtual text); this is %s"):format(version), {
    "Upgrade Neovim (https://github.com/neovim/neovim/releases); textgen stays off until then.",
  })
  return false
end

--- Checks the Python of textgen's own host; returns it when it can be run.
local function check_python()
  local host = require("textgen.host")
  local prog = host.python()
  local cfg = type(vim.g.textgen) == "table" and vim.g.textgen or {}
  local chosen = type(cfg.python) == "string" and cfg.python ~= ""
  local venv_made = vim.fn.isdirectory(VENV) == 1
  local problem = host.python_problem(prog)
  if chosen then
    if problem then
      health.error(problem .. " (g:textgen.python)", {
        "Set g:textgen.python to a Python with pynvim and numpy, or unset it to use the plugin's .venv.",
      })
    else
      health.ok(("Python of textgen's own host: %s (g:textgen.python)"):format(prog))
    end
  elseif not venv_made then
    health.error(("the plugin's .venv does not exist: %s, so textgen's host has no Python"):format(VENV), {
      REBUILD,
      "Or set g:textgen.python to a Python with pynvim and numpy.",
    })
  elseif problem then
    health.error(problem .. " (the plugin's .venv is incomplete)", { REBUILD })
  else
    health.ok(("Python of textgen's own host: %s (the plugin's .venv; g:textgen.python is not set)"):format(prog))
    health.info(
      ("the plugin's .venv is %s; to rebuild it: `make install` in %s, or `:Lazy build textgen.nvim`"):format(
        VENV,
        ROOT
      )
    )
  end
  -- The user's python3 provider is theirs: say so, with its setting, so nobody changes it for textgen.
  local user_prog = vim.g.python3_host_prog
  health.info(
    ("g:python3_host_prog (%s) is not used by textgen and is left alone: textgen's host is a job of its own"):format(
      type(user_prog) == "string" and user_prog ~= "" and user_prog or "not set"
    )
  )
  return not problem and prog or nil
end

-- The optional C helpers `make install` builds, as the probe reports them.
local COMPILED_HELPERS = {
  {
    key = "compiled_lookup",
    what = "n-gram lookups",
    module = "textgen_core/memory/_table_lookup",
    fallback = "Python",
    cost = "a little slower",
  },
  {
    key = "compiled_step",
    what = "GRU steps",
    module = "textgen_core/model/_gru_step",
    fallback = "numpy",
    cost = "a whole one about a quarter slower",
    -- what the helper keeps its matrices in (the CPU's F16C, TEXTGEN_FLOAT32_STEPS)
    detail = function(found)
      return found.half_steps and "float16 matrices" or "float32 matrices"
    end,
  },
}

local function check_packages(python)
  local found, err = python_json(python, PROBE)
  if not found then
    health.error("cannot run the Python host: " .. tostring(err), { REBUILD })
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
    for _, helper in ipairs(COMPILED_HELPERS) do
      if found[helper.key] then
        local detail = helper.detail and (", " .. helper.detail(found)) or ""
        health.ok(("%s: the compiled helper (%s)%s"):format(helper.what, helper.module, detail))
      else
        health.info(("%s in %s: the compiled helper is not built (it needs gcc and the Python headers; "):format(
          helper.what,
          helper.fallback
        ) .. "`make install` builds it) or TEXTGEN_PURE_PYTHON is set; suggestions work either way, " .. helper.cost)
      end
    end
  else
    usable = false
    health.error("textgen_core does not import: " .. tostring(found.textgen_core_error), {
      "Install the plugin's Python package: " .. python .. " -m pip install -e " .. ROOT,
    })
  end
  return usable, found
end

--- Whether the host's Python can train (:TextGenTrain, `textgen train`): TensorFlow and Keras, the
--- `train` extra that the base install leaves out.
local function check_training(python, found)
  if not found then
    health.info("whether training is available is known once the host's Python runs (above)")
    return
  end
  local function present(name)
    return found[name] ~= vim.NIL and found[name] or nil
  end
  local deps = require("textgen.train_deps")
  if present("tensorflow") and present("keras") then
    health.ok(("training is available: TensorFlow %s, Keras %s"):format(present("tensorflow"), present("keras")))
    return
  end
  local missing = present("tensorflow") and "Keras" or (present("keras") and "TensorFlow" or "TensorFlow and Keras")
  local advice = { ("Add it (%s download, %s on disk): %s"):format(deps.DOWNLOAD, deps.DISK, deps.add_command(python)) }
  if found.venv then
    advice[2] = ":TextGenTrain offers to install it for you."
  end
  health.warn(("training is unavailable: %s lacks %s (suggestions work without it)"):format(python, missing), advice)
end

local function check_host()
  local host = require("textgen.host")
  if host.running() then
    health.ok(("the host is running (pid %s)"):format(tostring(host.pid())))
  elseif host.held_back() then
    health.error(host.held_back_reason(), { "How the last one stopped is below; :TextGenStatus has its last lines." })
  else
    health.info("the host is not running; it starts with the first suggestion")
  end
  local exit = host.last_exit
  if exit and exit.at then
    local last = exit.stderr[#exit.stderr]
    health.warn(
      ("the last host stopped %.0f s ago: %s%s"):format(
        vim.uv.hrtime() / 1e9 - exit.at,
        require("textgen.message").exit_reason(exit.code),
        last and ("; its last line: " .. last) or ""
      ),
      {
        "Its last lines are in :TextGenStatus; "
          .. (host.held_back() and "a new host starts as said above." or "a new host starts with the next suggestion."),
      }
    )
  end
end

--- Where the model's corpus n-gram is (:help textgen-ngram): its folder, the cache, being counted,
--- failed, or missing.
local function check_corpus_ngram(result)
  local function given(value)
    return value ~= vim.NIL and value or nil
  end
  local contexts, cache = given(result.ngram_contexts), given(result.ngram_cache)
  if contexts and cache then
    health.ok(("its corpus n-gram was counted on this machine: %.1f M contexts, in %s"):format(contexts / 1e6, cache))
  elseif contexts then
    health.ok(("its corpus n-gram is in the model's folder: %.1f M contexts"):format(contexts / 1e6))
  elseif given(result.ngram_counting) then
    health.info(
      "its corpus n-gram is being counted in the background (about 12 s); suggestions come without it meanwhile"
    )
  elseif given(result.ngram_failure) then
    health.warn("its corpus n-gram could not be counted: " .. result.ngram_failure, {
      ":TextGenStatus names the command that counts it again (:help textgen-ngram).",
    })
  elseif result.ngram_countable then
    health.info(
      "its corpus n-gram is not counted yet: the host counts it in the background the first time it loads the model"
        .. (given(result.ngram_damaged) and (" (the cached one is damaged: " .. result.ngram_damaged .. ")") or "")
    )
  elseif result.ngram_expected then
    health.warn("its corpus n-gram is not in the model's folder: suggestions are weaker without it", {
      "Count it again with `textgen ngram` (:help textgen-ngram).",
    })
  end
end

local function check_model(python, cfg)
  local result, err = python_json(python, LOAD, { cfg.model, cfg.backend, vim.fn.stdpath("cache") .. "/textgen" })
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
    check_corpus_ngram(result)
  end
end

local function check_config()
  local raw = type(vim.g.textgen) == "table" and vim.g.textgen or {}
  local cfg, problems = require("textgen.config").validate(raw)
  if #problems == 0 then
    health.ok("g:textgen is valid")
  end
  for _, problem in ipairs(problems) do
    -- no period after the tag: checkhealth would take it into the link
    health.warn(problem, { "See :help textgen-options" })
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

--- Attributes that set text apart without a colour of its own.
local MARKS = { "bold", "italic", "underline", "undercurl", "underdouble", "underdotted", "underdashed",
  "strikethrough", "reverse", "standout" }

--- How text in highlight group `name` is drawn with the current 'termguicolors': links followed, the
--- GUI colours with it on, the terminal colours (cterm) with it off.
local function drawn(name)
  local hl = vim.api.nvim_get_hl(0, { name = name, link = false })
  if vim.o.termguicolors then
    return { fg = hl.fg, bg = hl.bg, attrs = hl }
  end
  return { fg = hl.ctermfg, bg = hl.ctermbg, attrs = hl.cterm or {} }
end

local function check_highlight()
  local ghost, normal = drawn("TextGenSuggestion"), drawn("Normal")
  local fg, bg = ghost.fg or normal.fg, ghost.bg or normal.bg -- unset: Normal's
  local marked = vim.tbl_contains(MARKS, function(attr)
    return ghost.attrs[attr] and not normal.attrs[attr]
  end, { predicate = true })
  if fg ~= normal.fg or bg ~= normal.bg or marked then
    health.ok("the ghost text (TextGenSuggestion) is drawn unlike typed text")
    return
  end
  local link = vim.api.nvim_get_hl(0, { name = "TextGenSuggestion" }).link
  local problem = "the ghost text would look like typed text: TextGenSuggestion%s has the colours of Normal"
    .. " with 'termguicolors' %s"
  health.warn(problem:format(link and (" (linked to " .. link .. ")") or "", vim.o.termguicolors and "on" or "off"), {
    "Give it a colour of its own, e.g. `:highlight TextGenSuggestion ctermfg=244 guifg=#808080`"
      .. " (after your colour scheme is loaded, or in a ColorScheme autocommand).",
  })
end

--- Files and bytes under `dir` (0, 0 when it does not exist), counting at most `limit` entries.
local function disk_usage(dir, limit)
  local files, bytes, seen = 0, 0, 0
  if vim.fn.isdirectory(dir) == 0 then
    return 0, 0, false
  end
  for name, kind in vim.fs.dir(dir, { depth = 8 }) do
    seen = seen + 1
    if seen > limit then
      return files, bytes, true
    end
    if kind == "file" then
      local stat = vim.uv.fs_stat(dir .. "/" .. name)
      files, bytes = files + 1, bytes + (stat and stat.size or 0)
    end
  end
  return files, bytes, false
end

--- At most this many entries of the cache folder are looked at (a cache is a few files a project).
local CACHE_ENTRIES_LOOKED_AT = 10000

local function check_project_memory(cfg)
  local memory = require("textgen.memory")
  if cfg.project.enabled then
    health.ok(("project memory is on: the project's text files, at most %d MB (g:textgen.project)"):format(
      cfg.project.max_mb
    ))
  else
    health.info("project memory is off (g:textgen.project.enabled): suggestions draw on the open buffers only")
  end
  local cache = memory.cache_dir() .. "/projects"
  local files, bytes, more = disk_usage(cache, CACHE_ENTRIES_LOOKED_AT)
  if files == 0 then
    health.info(("its cache (%s) is empty"):format(cache))
  else
    health.info(("its cache: %s, %s%s, %s; `:TextGenProject clear` deletes it"):format(
      cache,
      more and "at least " or "",
      memory.files(files),
      memory.size(bytes)
    ))
  end
  local host = require("textgen.host")
  if not host.running() then
    health.info("the project's state is known once the host runs (" .. (host.held_back() and "see above" or "it starts with the first suggestion") .. ")")
    return
  end
  local h, why = host.status()
  if not h then
    health.warn("the host did not say what memory holds: it is " .. tostring(why))
    return
  end
  local lines = memory.status_lines(h.memory, cfg)
  if #lines == 0 then
    health.warn("this Python host keeps no project memory")
  end
  local project = type(h.memory) == "table" and h.memory.project or nil
  for _, line in ipairs(lines) do
    if type(project) == "table" and project.state == "failed" and line:find("^memory: project") then
      health.warn(line, { "`:TextGenProject rebuild` reads the project again; :TextGenStatus says more." })
    else
      health.info(line)
    end
  end
end

function M.check()
  health.start("textgen: Neovim and the Python host")
  if not check_neovim() then
    return -- the plugin did not start; the checks below use Neovim 0.10's API
  end
  local python = check_python()
  check_host()
  local usable, found = false, nil
  if python then
    usable, found = check_packages(python)
  end
  health.start("textgen: options and model")
  local cfg = check_config()
  if usable then
    check_model(python, cfg)
  end
  health.start("textgen: training")
  check_training(python, found)
  health.start("textgen: project memory")
  check_project_memory(cfg)
  health.start("textgen: ghost text")
  check_highlight()
end

return M
