# Developer targets. `make models` rebuilds the shipped default classifiers from the real lists
# and corpora in ../shared/data (fixed seeds: the same inputs give the same models and cards).
PYTHON ?= .venv/bin/python
SHARED ?= ../shared/data

.PHONY: models bench

models:
	$(PYTHON) -m vpt_tracker.classify.recipes --shared $(SHARED) --out classifiers --seed 0 --folds 5

bench:  # every benchmark, one at a time; writes bench/results/summary.json
	$(PYTHON) bench/run_all.py
