--- textgen's options: one dictionary `g:textgen` (Vimscript or Lua), merged over these defaults.
---
--- `get()` is called on every keystroke path, so it is cheap and never throws: a bad value is
--- reported once, in one sentence, and its default is used instead.
local M = {}

---@class textgen.Keys
---@field accept string|false
---@field accept_word string|false
---@field accept_line string|false
---@field next string|false
---@field prev string|false
---@field dismiss string|false
---@field complete string|false

---@class textgen.Project
---@field enabled boolean           read the project's files (the open buffers are read either way)
---@field max_mb integer            the most text read from the project, in MB
---@field exclude string[]          globs of files never read, on top of the secrets excluded by default

---@class textgen.Config
---@field auto_trigger boolean       suggest while typing in insert mode
---@field enabled boolean|function|string  may textgen suggest in a buffer: a boolean, or a function(buf) asked before each request
---@field debounce_ms integer        quiet time after a keystroke before asking the model
---@field linger_ms integer          how long an outdated suggestion may stay while its successor is computed
---@field max_chars integer          longest suggestion, in characters
---@field multiline boolean          let a suggestion run past the end of the line
---@field learn boolean              the model learns what you type, as you type (until Neovim quits)
---@field lookahead integer          next keys whose suggestion's first words are found ahead, while idle
---@field alternatives integer       how many suggestions :TextGenComplete! and next/prev offer
---@field model string               a model name (see :TextGenModel) or a model folder
---@field backend string             "numpy" (default) or "tensorflow"
---@field temperature number         0: greedy (deterministic); higher: more adventurous
---@field seed integer|nil           sampling seed (nil: fixed default, still deterministic)
---@field filetypes table<string, boolean>  per filetype on/off; "*" for the rest
---@field kinds table<string, string>  filetype → the kind of text whose mixing weights serve it (:help textgen-kinds)
---@field mid_line string            "never" | "closing" | "always": with text after the cursor
---@field keys textgen.Keys          insert-mode keys; false disables one
---@field menu_visible function|nil  tells whether another plugin's completion menu is open
---@field python string|nil        the Python of textgen's host and training (nil: the plugin's .venv)
---@field train_minutes number       :TextGenTrain's time budget
---@field train_files string[]       files or globs :TextGenTrain adds to the buffer's text
---@field train_args string[]        extra arguments for `textgen train` (e.g. "--epochs", "3")
---@field project textgen.Project    project memory (:help textgen-project-memory)

---@type textgen.Config
M.defaults = {
  auto_trigger = true,
  enabled = true,
  debounce_ms = 0,
  linger_ms = 120,
  max_chars = 80,
  multiline = false,
  learn = true,
  lookahead = 3,
  alternatives = 3,
  model = "default",
  backend = "numpy",
  temperature = 0,
  seed = nil,
  filetypes = {
    ["*"] = true,
    help = false,
    qf = false,
    netrw = false,
    gitrebase = false,
    TelescopePrompt = false,
    ["neo-tree"] = false,
    NvimTree = false,
    oil = false,
    lazy = false,
    mason = false,
  },
  kinds = {},
  mid_line = "closing",
  keys = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-Down>",
    next = "<M-]>",
    prev = "<M-[>",
    dismiss = "<C-]>",
    complete = false,
  },
  menu_visible = nil,
  python = nil,
  train_minutes = 2,
  train_files = {},
  train_args = {},
  project = {
    enabled = true,
    max_mb = 32,
    exclude = {},
  },
}

M.MID_LINE = { never = true, closing = true, always = true }
--- The kinds of text a model's mixing weights are fitted for: textgen_core/model/text_kinds.py's KINDS.
M.KINDS = { "python", "lua", "help", "vimscript", "c", "rust", "go", "shell", "javascript", "docs", "prose" }
M.BACKENDS = { numpy = true, tensorflow = true }

local is_null = require("textgen.util").is_null

--- Vimscript says 0/1 or v:false/v:true; Lua says false/true.
local function as_bool(v)
  if type(v) == "number" then
    return v ~= 0
  end
  if type(v) == "boolean" then
    return v
  end
  return nil
end

local function as_int(min, max)
  return function(v)
    if type(v) == "number" and v == math.floor(v) and v >= min and (not max or v <= max) then
      return v
    end
    return nil
  end
end

local function as_string_in(set)
  return function(v)
    if type(v) == "string" and set[v] then
      return v
    end
    return nil
  end
end

--- A list of strings; a single string is a list of one.
local function as_string_list(v)
  if type(v) == "string" then
    return { v }
  end
  if type(v) ~= "table" or (next(v) ~= nil and not vim.islist(v)) then
    return nil
  end
  for _, item in ipairs(v) do
    if type(item) ~= "string" then
      return nil
    end
  end
  return v
end

local key_problems = {} ---@type table<string, string|false>  a key's problem (false: none), as found once

--- What is wrong with `lhs` as a key to map, or nil: a key's name without its <> (`Tab` would map
--- the letters T, a and b, taking them while a suggestion shows) or a <name> that is no key.
local function key_problem(lhs)
  if key_problems[lhs] == nil then
    local function is_key(name)
      return vim.api.nvim_replace_termcodes(name, true, true, true) ~= name
    end
    local problem = false
    if #lhs > 1 and not lhs:find("<", 1, true) and is_key("<" .. lhs .. ">") then
      problem = ("would map the letters %s: write \"<%s>\""):format(table.concat(vim.split(lhs, ""), ", "), lhs)
    else
      for name in lhs:gmatch("<[^<>]+>") do
        if not is_key(name) then
          problem = ("%s is not a key's name (:help key-notation)"):format(name)
          break
        end
      end
    end
    key_problems[lhs] = problem
  end
  return key_problems[lhs] or nil
end

local function is_callable(v)
  return type(v) == "function" or type(v) == "userdata" or (type(v) == "string" and v ~= "")
end

--- How each option is checked: a converter that returns nil for a bad value, and what it expects.
local checks = {
  auto_trigger = { as_bool, "true or false" },
  -- A Lua function reads back from g:textgen as a function; Vimscript names one by its name.
  enabled = {
    function(v)
      if type(v) == "function" or (type(v) == "string" and v ~= "") then
        return v
      end
      return as_bool(v)
    end,
    "true, false, or a function(buf) that returns whether textgen may suggest in buffer buf",
  },
  debounce_ms = { as_int(0, 5000), "a whole number of milliseconds from 0 to 5000" },
  linger_ms = { as_int(0, 5000), "a whole number of milliseconds from 0 to 5000" },
  -- 1024: the most a suggestion can hold (textgen_core/decode/__init__.py MAX_CHARS; every byte costs a step)
  max_chars = { as_int(1, 1024), "a whole number from 1 to 1024" },
  multiline = { as_bool, "true or false" },
  learn = { as_bool, "true or false" },
  lookahead = { as_int(0, 10), "a whole number from 0 to 10" },
  alternatives = { as_int(1, 10), "a whole number from 1 to 10" },
  model = {
    function(v)
      return type(v) == "string" and v ~= "" and v or nil
    end,
    "a model name or a model folder path",
  },
  backend = { as_string_in(M.BACKENDS), "'numpy' or 'tensorflow'" },
  python = {
    function(v)
      return type(v) == "string" and v ~= "" and v or nil
    end,
    "the path of a Python with textgen's packages, or nil for the plugin's .venv",
  },
  temperature = {
    function(v)
      return type(v) == "number" and v >= 0 and v <= 5 and v or nil
    end,
    "a number from 0 to 5",
  },
  seed = { as_int(0), "a whole number ≥ 0, or nil" },
  mid_line = {
    function(v)
      if v == true or v == 1 then
        return "always"
      elseif v == false or v == 0 then
        return "never"
      end
      return as_string_in(M.MID_LINE)(v)
    end,
    "'never', 'closing' or 'always'",
  },
  train_minutes = {
    function(v)
      return type(v) == "number" and v > 0 and v <= 24 * 60 and v or nil
    end,
    "a number of minutes above 0",
  },
  train_files = { as_string_list, "a list of file names or globs" },
  train_args = { as_string_list, "a list of strings, e.g. { '--epochs', '3' }" },
  menu_visible = {
    function(v)
      return is_callable(v) and v or nil
    end,
    "a function that returns true while a completion menu is open",
  },
}

--- g:textgen.project's keys, checked one by one: a user giving only `exclude` keeps the other defaults.
local project_checks = {
  enabled = { as_bool, "true or false" },
  max_mb = { as_int(1, 512), "a whole number of MB from 1 to 512" },
  exclude = { as_string_list, "a list of globs such as { '*.csv', 'data/**' }" },
}

--- Merge g:textgen.project into `config.project`, adding a problem for each bad key.
local function validate_project(value, config, problems)
  if type(value) ~= "table" or (next(value) ~= nil and vim.islist(value)) then
    problems[#problems + 1] = "g:textgen.project must be a table such as { enabled = true, max_mb = 32, exclude = {} }"
    return
  end
  for name, v in pairs(value) do
    local check = project_checks[name]
    if not check then
      problems[#problems + 1] = ("g:textgen.project.%s is not an option (it has %s)"):format(
        tostring(name),
        "enabled, max_mb, exclude"
      )
    elseif not is_null(v) then
      local converted = check[1](v)
      if converted == nil then
        problems[#problems + 1] = ("g:textgen.project.%s must be %s (got %s); using %s"):format(
          name,
          check[2],
          vim.inspect(v),
          vim.inspect(M.defaults.project[name])
        )
      else
        config.project[name] = converted
      end
    end
  end
end

local message = require("textgen.message")

--- g:textgen.kinds: a table of filetype = kind, each kind one of M.KINDS.
local function validate_kinds(value, config, problems)
  if type(value) ~= "table" then
    problems[#problems + 1] = "g:textgen.kinds must be a table of filetype = kind, such as { svelte = 'javascript' }"
    return
  end
  for ft, kind in pairs(value) do
    if type(ft) ~= "string" or not vim.tbl_contains(M.KINDS, kind) then
      problems[#problems + 1] = ("g:textgen.kinds[%s] must be one of %s (got %s)"):format(
        vim.inspect(ft),
        table.concat(M.KINDS, ", "),
        vim.inspect(kind)
      )
    else
      config.kinds[ft] = kind
    end
  end
end

--- Check `raw` against the defaults; returns the usable config and the problems found.
---@param raw table
---@return textgen.Config, string[]
function M.validate(raw)
  local problems = {}
  local config = vim.deepcopy(M.defaults)
  for key, value in pairs(raw) do
    if key == "filetypes" then
      if type(value) ~= "table" then
        problems[#problems + 1] = "g:textgen.filetypes must be a table of filetype = true/false"
      else
        for ft, on in pairs(value) do
          local b = as_bool(on)
          if type(ft) == "number" and type(on) == "string" then -- { 'python' }: a list, not a table of them
            problems[#problems + 1] = ("g:textgen.filetypes is a table of filetype = true/false: write { %s = true }, not a list"):format(on)
          elseif type(ft) ~= "string" or b == nil then
            problems[#problems + 1] = ("g:textgen.filetypes[%s] must be true or false"):format(vim.inspect(ft))
          else
            config.filetypes[ft] = b
          end
        end
      end
    elseif key == "keys" then
      if type(value) ~= "table" then
        problems[#problems + 1] = "g:textgen.keys must be a table such as { accept = '<Tab>' }"
      else
        for name, lhs in pairs(value) do
          if M.defaults.keys[name] == nil then
            problems[#problems + 1] = ("g:textgen.keys.%s is not a key textgen maps (it maps %s)"):format(
              tostring(name),
              table.concat(vim.tbl_keys(M.defaults.keys), ", ")
            )
          elseif lhs == false or lhs == 0 or lhs == "" or lhs == vim.NIL then
            config.keys[name] = false
          elseif type(lhs) == "string" and key_problem(lhs) then
            problems[#problems + 1] = ("g:textgen.keys.%s = %q %s"):format(name, lhs, key_problem(lhs))
          elseif type(lhs) == "string" then
            config.keys[name] = lhs
          else
            problems[#problems + 1] = ("g:textgen.keys.%s must be a key such as '<Tab>', or false"):format(name)
          end
        end
      end
    elseif key == "kinds" then
      validate_kinds(value, config, problems)
    elseif key == "project" then
      validate_project(value, config, problems)
    elseif checks[key] then
      if not is_null(value) then
        local converted = checks[key][1](value)
        if converted == nil then
          problems[#problems + 1] = ("g:textgen.%s must be %s (got %s); using %s"):format(
            key,
            checks[key][2],
            vim.inspect(value),
            vim.inspect(M.defaults[key])
          )
        else
          config[key] = converted
        end
      elseif key == "seed" or key == "menu_visible" or key == "python" then
        config[key] = nil
      end
    else
      problems[#problems + 1] = ("g:textgen.%s is not an option (see :help textgen-options)"):format(tostring(key))
    end
  end
  return config, problems
end

--- The options in force: defaults, overridden by `g:textgen`. Problems are reported once each.
---@return textgen.Config
function M.get()
  local raw = vim.g.textgen
  if type(raw) ~= "table" then
    if raw ~= nil then
      message.say_once("g:textgen must be a dictionary; using the defaults")
    end
    raw = {}
  end
  local config, problems = M.validate(raw)
  M.report(problems)
  return config
end

--- Say the option problems in one line (each message would replace the one before on the command
--- line, leaving only the last in sight); :TextGenStatus lists them all.
function M.report(problems)
  if #problems == 1 then
    message.say_once(problems[1])
  elseif #problems > 1 then
    table.sort(problems)
    message.say_once(("%d option problems (:TextGenStatus lists them): %s"):format(#problems, table.concat(problems, "; ")))
  end
end

--- Merge `opts` into `g:textgen` (deep, later wins) and report problems at once.
---@param opts table|nil
---@return textgen.Config
function M.merge(opts)
  if opts ~= nil and type(opts) ~= "table" then
    message.say_once(("setup() takes a table of options, such as { model = 'notes' } (got %s)"):format(vim.inspect(opts)))
    opts = nil
  end
  local current = type(vim.g.textgen) == "table" and vim.g.textgen or {}
  local merged = vim.tbl_deep_extend("force", current, opts or {})
  local _, problems = M.validate(merged)
  M.report(problems)
  vim.g.textgen = merged
  return M.get()
end

--- Set one option for this session (used by :TextGenToggle and :TextGenModel).
function M.set(key, value)
  local current = type(vim.g.textgen) == "table" and vim.g.textgen or {}
  current[key] = value
  vim.g.textgen = current
end

return M
