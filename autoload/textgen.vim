" textgen.nvim for Vimscript statuslines: set statusline+=%{textgen#status()}
" A short text ("training 42% ETA 0:31" while training, else the model's name); never waits.
function! textgen#status() abort
  return luaeval("require('textgen').status().text")
endfunction
