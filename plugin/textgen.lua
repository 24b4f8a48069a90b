-- textgen.nvim: commands, <Plug> maps, default keys and autocommands. Options: :help textgen-options.
if vim.g.loaded_textgen then
  return
end
vim.g.loaded_textgen = true

-- Older Neovims (Debian 12 ships 0.7.2): one line, kept in :messages, and nothing else runs. Echoed,
-- not an error: an error while sourcing would add "Error detected while processing ..." and a
-- "Press ENTER" prompt at every start.
if vim.fn.has("nvim-0.10") == 0 then
  local v = vim.version()
  vim.api.nvim_echo({
    {
      ("textgen: needs Neovim 0.10 or later (inline virtual text); this is %d.%d.%d"):format(v.major, v.minor, v.patch),
      "ErrorMsg",
    },
  }, true, {})
  return
end

local textgen = require("textgen")
textgen.define_highlight()

local command = vim.api.nvim_create_user_command

command("TextGenComplete", function(opts)
  local n = opts.count > 0 and opts.count or (opts.bang and require("textgen.config").get().alternatives or 1)
  textgen.complete(n)
end, { bang = true, count = 0, desc = "textgen: suggest at the cursor now (! or a count: alternatives)" })

command("TextGenStatus", function()
  textgen.show_status()
end, { desc = "textgen: model, engine and latency" })

command("TextGenToggle", function()
  textgen.toggle()
end, { desc = "textgen: suggestions while typing on/off" })

command("TextGenModel", function(opts)
  textgen.set_model(opts.args)
end, {
  nargs = 1,
  complete = function(arglead)
    if arglead:find("[/~.]") == 1 or arglead:find("/", 1, true) then
      return vim.fn.getcompletion(arglead, "dir")
    end
    return vim.tbl_filter(function(name)
      return vim.startswith(name, arglead)
    end, require("textgen.host").model_names())
  end,
  desc = "textgen: switch to a model (a name or a folder)",
})

command("TextGenTrain", function(opts)
  textgen.train({
    args = opts.fargs,
    first = opts.range > 0 and opts.line1 or nil,
    last = opts.range > 0 and opts.line2 or nil,
  })
end, {
  nargs = "*",
  range = true,
  complete = "file",
  desc = "textgen: train on this buffer (a range: those lines) and files; [name-or-path] to save as",
})

command("TextGenTrainStop", function()
  textgen.train_stop()
end, { desc = "textgen: cancel training (nothing saved)" })

command("TextGenProject", function(opts)
  textgen.project(opts.args)
end, {
  nargs = "?",
  complete = function(arglead)
    return vim.tbl_filter(function(word)
      return vim.startswith(word, arglead)
    end, { "rebuild", "clear" })
  end,
  desc = "textgen: project memory: what it holds; rebuild: read the project again; clear: delete the cache",
})

vim.api.nvim_create_autocmd("VimLeavePre", {
  group = vim.api.nvim_create_augroup("textgen_train", { clear = true }),
  desc = "textgen: stop the host and any training before Neovim exits",
  callback = function()
    require("textgen.host").on_vim_leave()
    local train = package.loaded["textgen.train"]
    if train then
      train.on_exit()
    end
  end,
})

local keys = require("textgen.keys")
keys.define_plug_maps()
keys.apply(require("textgen.config").get().keys)
local trigger = require("textgen.trigger")
trigger.attach()
require("textgen.memory").attach()
-- nvim-cmp's "textgen" source, registered once nvim-cmp is loaded (blink.cmp loads textgen.blink itself).
require("textgen.cmp").register_when_loaded()

if vim.v.vim_did_enter == 1 then
  vim.schedule(trigger.warm_up)
else
  vim.api.nvim_create_autocmd("VimEnter", {
    once = true,
    desc = "textgen: start the host and load the model",
    callback = function()
      vim.schedule(trigger.warm_up)
    end,
  })
end
