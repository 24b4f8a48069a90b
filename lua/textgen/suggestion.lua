--- The suggestion of each buffer, as a small state machine (after copilot.lua's suggestion module).
---
--- A request captures where it was asked (changedtick, insertion point); its results are shown only
--- while the buffer is still in that state, or has only moved forward by typing the suggestion
--- itself. Verbs: accept (all, word, line), next/prev alternative, dismiss. Rendering is ghost.lua's.
local config = require("textgen.config")
local context = require("textgen.context")
local ghost = require("textgen.ghost")
local host = require("textgen.host")
local menu = require("textgen.menu")
local util = require("textgen.util")

local api = vim.api
local M = {}

---@class textgen.Ticket  a request on its way to the model
---@field id integer
---@field buf integer
---@field tick integer     b:changedtick when asked
---@field row integer      insertion point when asked (0-based row, byte col)
---@field col integer
---@field after string     the rest of the line after the insertion point
---@field n integer        alternatives asked for
---@field cycle integer|nil  +1/-1 when asked by next/prev: show the next/previous alternative
---@field menu fun(texts: string[])|nil  a completion menu waits for this answer (request_items)
---@field ghost boolean|nil  false: the answer is for the menu only, it never shows as ghost text

---@class textgen.Suggestion  what is (or was just) on screen
---@field items string[]   alternatives, each the full text from where the request was made
---@field index integer
---@field typed string     what has been typed or accepted of items[index] since
---@field row integer      where the rest shows
---@field col integer
---@field tick integer     b:changedtick when last in step with the buffer
---@field after string
---@field ticket integer   the request it came from
---@field stale boolean    outdated: kept on screen only until its successor is ready (linger_ms)
---@field alternatives boolean  asked with n > 1: next/prev cycle through items without asking again

---@type table<integer, textgen.Suggestion>
local suggestions = {}
---@type table<integer, textgen.Ticket>  buffer → the request whose answer is awaited
local tickets = {}
local last_ticket = 0
local linger_timer = nil

--- Counters for :TextGenStatus, the benchmark and tests.
M.stats = { requests = 0, shown = 0, dropped_stale = 0, last_latency_ms = nil }

--- Insert-like modes put the insertion point at the cursor; normal mode puts it after the cursor's
--- character (where `a` would insert), so :TextGenComplete in normal mode completes the text you see.
---@return integer row, integer col
function M.insertion_point()
  local cursor = api.nvim_win_get_cursor(0)
  local row, col = cursor[1] - 1, cursor[2]
  if not util.inserting() then
    local line = api.nvim_get_current_line()
    if #line > 0 then
      -- the whole character the cursor is on, composing marks and emoji modifiers too (`a` goes past them)
      local rest = line:sub(col + 1, col + 64)
      local ok, char = pcall(vim.fn.strcharpart, rest, 0, 1, 1)
      if not ok or char == "" then
        char = rest:match("^" .. util.UTF8_CHAR) or ""
      end
      col = col + #char
    end
  end
  return row, col
end

local function rest_of(s)
  return s.items[s.index]:sub(#s.typed + 1)
end

local function in_step(buf, tick, row, col)
  if api.nvim_get_current_buf() ~= buf or api.nvim_buf_get_changedtick(buf) ~= tick then
    return false
  end
  local r, c = M.insertion_point()
  return r == row and c == col
end

local function stop_linger()
  if linger_timer then
    linger_timer:stop()
  end
end

--- Tell other plugins which suggestion is on screen now (User TextGenSuggestion, :help textgen-events):
--- `text` is what accepting it all would insert at (`row`, `col`).
local function announce(buf, s)
  require("textgen.events").fire("TextGenSuggestion", {
    buf = buf,
    text = rest_of(s),
    index = s.index,
    count = #s.items,
    row = s.row,
    col = s.col,
  })
end

--- Put `s` on screen; `final`: it is the whole answer to its request (partial answers show as they
--- grow, but only the whole one is announced, once).
local function show(buf, s, final)
  suggestions[buf] = s
  stop_linger()
  ghost.render(buf, s.row, s.col, rest_of(s))
  M.stats.shown = M.stats.shown + 1
  if final then
    announce(buf, s)
  end
end

--- The suggestion showing in `buf` now (not an outdated one lingering), or nil.
---@return textgen.Suggestion|nil
function M.get(buf)
  local s = suggestions[buf or api.nvim_get_current_buf()]
  if s and not s.stale then
    return s
  end
  return nil
end

--- Whether a suggestion is on screen at the cursor, ready to accept.
function M.is_visible(buf)
  buf = buf or api.nvim_get_current_buf()
  local s = M.get(buf)
  return s ~= nil and ghost.is_shown(buf) and in_step(buf, s.tick, s.row, s.col)
end

--- Whether a request for `buf` is on its way.
--- Milliseconds until an outdated suggestion goes (nil: none lingers); for tests of `outdate`.
function M.linger_due_in()
  if linger_timer and linger_timer:is_active() then
    return linger_timer:get_due_in()
  end
  return nil
end

function M.is_pending(buf)
  return tickets[buf or api.nvim_get_current_buf()] ~= nil
end

--- Remove the suggestion of `buf` from the screen and forget it; cancel its request.
function M.dismiss(buf)
  buf = buf or api.nvim_get_current_buf()
  stop_linger()
  suggestions[buf] = nil
  ghost.render(buf, nil)
  local ticket = tickets[buf]
  if ticket and ticket.menu then
    ticket.ghost = false -- a completion menu still waits for its answer (a menu opening dismisses)
  elseif ticket then
    tickets[buf] = nil
    host.cancel(buf)
  end
end

--- The buffer changed under the suggestion in a way that does not follow it: keep it on screen
--- for at most `linger_ms` so that its successor replaces it in one redraw instead of a blink.
--- Counted from the first such change: further typing does not keep an outdated suggestion up.
function M.outdate(buf, linger_ms)
  local s = suggestions[buf]
  if not s then
    return
  end
  if s.stale then
    if not (linger_timer and linger_timer:is_active()) then
      M.dismiss(buf)
    end
    return
  end
  if linger_ms <= 0 or not ghost.is_shown(buf) then
    M.dismiss(buf)
    return
  end
  s.stale = true
  linger_timer = linger_timer or vim.uv.new_timer()
  linger_timer:stop()
  linger_timer:start(
    linger_ms,
    0,
    vim.schedule_wrap(function()
      if suggestions[buf] == s and s.stale then
        suggestions[buf] = nil
        ghost.render(buf, nil)
      end
    end)
  )
end

--- Give a menu waiting for `ticket` its answer (once); nothing when no menu waits.
local function answer_menu(ticket, texts)
  local answer = ticket.menu
  if answer then
    ticket.menu = nil
    answer(texts)
  end
end

--- Ask the model for a suggestion at the insertion point of the current buffer. The engine serves
--- one request per buffer (latest wins), so the ghost text and a completion menu (`menu`: see
--- request_items) asking at the same place share one request; one asking elsewhere supersedes it.
---@param opts {n: integer|nil, cycle: integer|nil, explicit: boolean|nil, menu: fun(texts: string[])|nil}|nil
---@return boolean asked, integer|nil ticket
function M.request(opts)
  opts = opts or {}
  local buf = api.nvim_get_current_buf()
  local cfg = config.get()
  if not host.can_serve(cfg, opts.explicit) then
    return false
  end
  local row, col = M.insertion_point()
  local old = tickets[buf]
  local here = old ~= nil and in_step(buf, old.tick, old.row, old.col)
  if here and (old.menu or opts.menu) and not opts.cycle and (opts.n or 1) <= old.n then
    if opts.menu then
      answer_menu(old, {}) -- an older menu request for this place: superseded
      old.menu = opts.menu
    else
      old.ghost = true
    end
    return true, old.id
  end
  if old then
    answer_menu(old, {}) -- superseded: the engine drops its answer
  end
  local ghost_too = not opts.menu or (here and old.ghost ~= false)
  local text, end_offset = context.before(buf, row, col)
  last_ticket = last_ticket + 1
  local ticket = {
    id = last_ticket,
    buf = buf,
    tick = api.nvim_buf_get_changedtick(buf),
    row = row,
    col = col,
    after = context.after(buf, row, col),
    n = opts.n or 1,
    cycle = opts.cycle or (opts.menu and ghost_too and old.cycle) or nil,
    menu = opts.menu,
    ghost = ghost_too,
  }
  tickets[buf] = ticket
  M.stats.requests = M.stats.requests + 1
  local sent = host.request({
    ticket = ticket.id,
    buffer = buf,
    context = text,
    end_offset = end_offset,
    max_chars = cfg.max_chars,
    multiline = cfg.multiline,
    learn = cfg.learn,
    lookahead = cfg.lookahead,
    temperature = cfg.temperature,
    seed = cfg.seed,
    n = ticket.n,
    model = cfg.model,
    backend = cfg.backend,
    filetype = cfg.kinds[vim.bo[buf].filetype] or vim.bo[buf].filetype, -- whose kind's mixing weights serve it
  })
  if not sent then -- no host to ask (host.lua said why): nothing is on its way
    tickets[buf] = nil
  end
  return sent, ticket.id
end

--- Suggestions at the insertion point for a completion menu (textgen.menu_items): `answer(texts)` is
--- called once with the texts to insert there, the current one first; at once from the suggestion
--- on screen, else later, when the model answers, without drawing ghost text. A newer request, or
--- the buffer changing before the answer, makes it `{}`. Returns the ticket to cancel, or nil.
---@param answer fun(texts: string[])
---@return integer|nil
function M.request_items(answer)
  local buf = api.nvim_get_current_buf()
  local s = M.get(buf)
  if s and M.is_visible(buf) then
    local texts = { rest_of(s) }
    for i, item in ipairs(s.items) do
      if i ~= s.index then
        texts[#texts + 1] = item:sub(#s.typed + 1)
      end
    end
    answer(texts)
    return nil
  end
  local sent, id = M.request({ n = config.get().alternatives, menu = answer })
  if not sent then
    answer({})
    return nil
  end
  return id
end

--- The menu no longer wants the answer to ticket `id` (blink.cmp's cancel): the request goes too,
--- unless the ghost text waits for it as well.
function M.cancel_items(id)
  for buf, t in pairs(tickets) do
    if t.id == id then
      t.menu = nil
      if t.ghost == false then
        tickets[buf] = nil
        host.cancel(buf)
      end
      return
    end
  end
end

--- The distinct texts that continue what has been typed since the request, each fitted before `after`
--- (the rest of the line: `context.fit_before`). Whitespace at the end of a suggestion is dropped: it
--- shows as nothing and, accepted, would leave trailing blanks.
local function continuing(texts, typed, after)
  local items = {}
  for _, text in ipairs(texts) do
    text = context.fit_before(text, after or ""):gsub("%s+$", "")
    if #text > #typed and text:sub(1, #typed) == typed and not vim.tbl_contains(items, text) then
      items[#items + 1] = text
    end
  end
  return items
end

--- A (partial or final) answer from the model arrives, through host.lua from the Python host.
function M.on_result(ticket_id, texts, final, elapsed_ms, err)
  local ticket
  for buf, t in pairs(tickets) do
    if t.id == ticket_id then
      ticket = t
      if final then
        tickets[buf] = nil
      end
      break
    end
  end
  if not ticket then
    return -- superseded or dismissed
  end
  local buf = ticket.buf
  if final then
    M.stats.last_latency_ms = elapsed_ms
  end
  if err ~= nil and err ~= vim.NIL then
    answer_menu(ticket, {})
    host.report_error(err)
    return
  end
  if final and ticket.menu then -- a menu gets the whole answer, if it is still for where the cursor is
    local here = util.inserting() and in_step(buf, ticket.tick, ticket.row, ticket.col)
    answer_menu(ticket, here and continuing(texts, "", ticket.after) or {})
  end
  if ticket.ghost == false then
    return
  end
  local s = suggestions[buf]
  local typed = ""
  if not in_step(buf, ticket.tick, ticket.row, ticket.col) then
    -- Still valid only if the user has typed through this very suggestion since.
    if not (s and not s.stale and s.ticket == ticket.id and in_step(buf, s.tick, s.row, s.col)) then
      M.stats.dropped_stale = M.stats.dropped_stale + 1
      answer_menu(ticket, {})
      tickets[buf] = nil
      host.cancel(buf)
      return
    end
    typed = s.typed
  end
  if not final and ticket.cycle then
    -- Alternatives show when all are known. Partials start with a whole word (the host sends the
    -- first once its first word is known), so one replaces a lingering suggestion at once.
    return
  end
  if menu.visible(config.get()) then
    M.dismiss(buf)
    return
  end
  local items = continuing(texts, typed, ticket.after)
  if #items == 0 then
    if final then
      M.dismiss(buf)
    end
    return
  end
  local index = 1
  if ticket.cycle then
    index = ticket.cycle > 0 and math.min(2, #items) or #items
  elseif s and s.ticket == ticket.id and s.items[s.index] then
    index = math.max(1, math.min(s.index, #items))
  end
  local row, col, tick = ticket.row, ticket.col, ticket.tick
  if typed ~= "" then
    row, col, tick = s.row, s.col, s.tick
  end
  show(buf, {
    items = items,
    index = index,
    typed = typed,
    row = row,
    col = col,
    tick = tick,
    after = ticket.after,
    ticket = ticket.id,
    stale = false,
    alternatives = ticket.n > 1,
  }, final)
end

--- After an edit: if the user typed the next characters of the suggestion, shrink it in place.
---@return "in_step"|"typed_through"|"finished"|nil  nil: the edit does not follow the suggestion
function M.follow_typing(buf)
  local s = suggestions[buf]
  if not s or s.stale then
    return nil
  end
  local tick = api.nvim_buf_get_changedtick(buf)
  local row, col = M.insertion_point()
  if tick == s.tick and row == s.row and col == s.col then
    return "in_step"
  end
  if row < s.row or (row == s.row and col <= s.col) then
    return nil
  end
  local ok, typed_lines = pcall(api.nvim_buf_get_text, buf, s.row, s.col, row, col, {})
  if not ok then
    return nil
  end
  local typed = table.concat(typed_lines, "\n")
  local rest = rest_of(s)
  if rest:sub(1, #typed) ~= typed then
    return nil
  end
  if context.after(buf, row, col) ~= s.after then
    return nil
  end
  local current = s.items[s.index]
  s.typed = s.typed .. typed
  s.items = continuing(s.items, s.typed)
  s.index = math.max(1, vim.fn.index(s.items, current) + 1)
  s.row, s.col, s.tick = row, col, tick
  if #s.items == 0 or rest_of(s) == "" then
    M.dismiss(buf)
    return "finished"
  end
  ghost.render(buf, s.row, s.col, rest_of(s))
  return "typed_through"
end

--- The first word of `text` (with the spaces and punctuation before it), by the buffer's 'iskeyword'.
--- A line break with the next line's indentation, or a run of blanks, is a word of its own, as the
--- cursor stops there with |w|: the indentation is the likeliest part of a suggestion, and one key
--- takes it even when the word after it is not the one you want.
local function first_word(text)
  local blanks = text:match("^%s*\n[ \t]*") or text:match("^[ \t][ \t]+")
  if blanks then
    return blanks
  end
  local word = vim.fn.matchstr(text, [[\v^\_s*(\k@!\S)*\k*]])
  return word ~= "" and word or text
end

--- The rest of the current line of `text`; if `text` starts a new line, that newline and the next line.
local function first_line(text)
  local line = text:match("^\r?\n[^\n]*") or text:match("^[^\n]+")
  return line or text
end

--- Insert (part of) the suggestion as real text: one undo step, cursor at its end.
---
--- In insert mode the text is pasted (nvim_paste): Neovim inserts it as it is ('autoindent',
--- 'textwidth', abbreviations and mappings do not touch it) and keeps the paste in the insert that
--- `.` repeats; keys.lua makes it an undo step of its own and puts it into a macro being recorded.
---@param part "all"|"word"|"line"
---@return boolean accepted
function M.accept(part)
  local buf = api.nvim_get_current_buf()
  if not M.is_visible(buf) then
    return false
  end
  local s = suggestions[buf]
  local rest = ghost.visible_part(buf, rest_of(s)) -- lines below the window's bottom were not shown
  local text = part == "word" and first_word(rest) or part == "line" and first_line(rest) or rest
  local lines = vim.split(text, "\n", { plain = true })
  local end_row = s.row + #lines - 1
  local end_col = (#lines == 1 and s.col or 0) + #lines[#lines]
  local mode = api.nvim_get_mode().mode:sub(1, 1)
  local keys = require("textgen.keys")
  if not (mode == "i" and keys.in_block_insert()) then
    vim.go.undolevels = vim.go.undolevels -- closes the undo block: the accepted text undoes on its own
  end
  if mode == "i" then
    -- The extmark moves along with text inserted at it: give it now what is left after the accept, so
    -- that the paste's redraw shows the line as it will be (not the accepted text twice).
    ghost.render(buf, s.row, s.col, rest:sub(#text + 1))
    api.nvim_paste(text, false, -1)
    local cursor = api.nvim_win_get_cursor(0)
    end_row, end_col = cursor[1] - 1, cursor[2]
    keys.after_accept(text)
  else
    api.nvim_buf_set_text(buf, s.row, s.col, s.row, s.col, lines)
    if mode == "R" then
      api.nvim_win_set_cursor(0, { end_row + 1, end_col })
    else
      local before = lines[#lines]
      local last_char = before:match(util.UTF8_CHAR .. "$") or ""
      api.nvim_win_set_cursor(0, { end_row + 1, math.max(0, end_col - #last_char) })
    end
  end
  s.typed = s.typed .. text
  s.items = { s.items[s.index] }
  s.index = 1
  s.row, s.col, s.tick = end_row, end_col, api.nvim_buf_get_changedtick(buf)
  if rest_of(s) == "" then
    M.dismiss(buf)
  else
    ghost.render(buf, s.row, s.col, rest_of(s))
  end
  require("textgen.events").fire("TextGenAccept", { buf = buf, text = text, how = part })
  return true
end

--- Show the next (+1) or previous (-1) alternative; ask for alternatives first if there are none yet.
function M.cycle(delta)
  local buf = api.nvim_get_current_buf()
  local s = M.get(buf)
  local cfg = config.get()
  if s and M.is_visible(buf) and (s.alternatives or #s.items > 1) then
    if #s.items > 1 then -- all items continue what was typed (follow_typing keeps only those)
      s.index = (s.index - 1 + delta) % #s.items + 1
      ghost.render(buf, s.row, s.col, rest_of(s))
      announce(buf, s)
    end
    return
  end
  local reason = context.disabled_reason(buf, cfg) -- g:textgen.enabled is asked before every request
  if reason then
    require("textgen.message").say("no suggestions here: " .. reason)
    return
  end
  M.request({ n = math.max(2, cfg.alternatives), cycle = delta, explicit = true })
end

--- Forget everything about a buffer that is gone.
function M.forget(buf)
  suggestions[buf] = nil
  if tickets[buf] then
    answer_menu(tickets[buf], {})
  end
  tickets[buf] = nil
  ghost.forget(buf)
end

--- The host cannot serve (no model): no answer will come for the requests on their way.
function M.drop_requests()
  local dropped = tickets
  tickets = {}
  for _, ticket in pairs(dropped) do
    answer_menu(ticket, {})
  end
end

return M
