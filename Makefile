# The README's two commands: `make reproduce` (install, data, all six stages, report) and `make test`.
# PRESET=large: train.py's large preset (twice the training, fewer unknowns named a digit; its judgement ships too).
PYTHON_SYS ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
INSTALLED  := $(VENV)/.installed
DATA       ?= data
ART        ?= artifacts
DEVICE     ?= auto
PRESET     ?= default
RUN        := $(PY)

.PHONY: reproduce test install data system-data system-browser train calibrate score-test letters score-letters evaluate \
        benchmark-osr benchmark-crosr benchmark-methods benchmark-seeds benchmark-folds benchmark-outlier-exposure judge \
        bench clean

reproduce: install data
	$(MAKE) train calibrate score-test letters score-letters evaluate
	@echo "report: $(ART)/osr/report.md"

test: install system-browser
	$(PY) -m pytest

install: $(INSTALLED)

$(INSTALLED): requirements.txt
	$(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Fashion-MNIST's fallback source is a Debian package; installed only where we are root on Debian/Ubuntu.
system-data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
	  echo "note: could not install dataset-fashion-mnist; Fashion-MNIST will be reported unavailable"; fi

# The page tests drive a real browser: Debian's Chromium, installed only where we are root on Debian/Ubuntu.
system-browser:
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) || \
	  echo "note: could not install chromium; the page tests will be skipped"; fi

data: install system-data
	$(RUN) -m osr_core.data --data-dir $(DATA)

train: install
	$(RUN) train.py --preset $(PRESET) --data-dir $(DATA) --out $(ART)/model.pt --device $(DEVICE)

calibrate: install
	$(RUN) compute_class_reconstruction_errors.py --data-dir $(DATA) --checkpoint $(ART)/model.pt \
	  --out $(ART)/reconstruction_errors.txt --device $(DEVICE)

score-test: install
	$(RUN) test.py --data-dir $(DATA) --checkpoint $(ART)/model.pt --thresholds $(ART)/reconstruction_errors.txt \
	  --out-dir $(ART)/test --device $(DEVICE)

letters: install
	$(RUN) generate_letters.py --out-dir $(ART)/letters

score-letters: install
	$(RUN) test_letters.py --letters-dir $(ART)/letters --checkpoint $(ART)/model.pt \
	  --thresholds $(ART)/reconstruction_errors.txt --out-dir $(ART)/letters_test --device $(DEVICE)

# CROSR beside this model in the report, once make benchmark-crosr has written its metrics (checked when used).
CROSR_METRICS = $(ART)/dhrnet/osr/metrics.json
COMPARE = $(if $(wildcard $(CROSR_METRICS)),--compare "CROSR (dhrnet + OpenMax)=$(CROSR_METRICS)")
JOBS ?= $(shell nproc 2>/dev/null || echo 1)

evaluate: install
	$(RUN) evaluate_osr.py --data-dir $(DATA) --checkpoint $(ART)/model.pt --thresholds $(ART)/reconstruction_errors.txt \
	  --letters-dir $(ART)/letters --out-dir $(ART)/osr --device $(DEVICE) $(COMPARE)

# CROSR's idea on the same data: dhrnet trained like the default model, decided by its OpenMax detector,
# evaluated by the same script; then the main report again, with it side by side.
benchmark-crosr: install data
	$(RUN) train.py --arch dhrnet --data-dir $(DATA) --out $(ART)/dhrnet/model.pt --device $(DEVICE)
	$(RUN) compute_class_reconstruction_errors.py --score openmax --data-dir $(DATA) --checkpoint $(ART)/dhrnet/model.pt \
	  --out $(ART)/dhrnet/reconstruction_errors.txt --device $(DEVICE)
	$(RUN) evaluate_osr.py --data-dir $(DATA) --checkpoint $(ART)/dhrnet/model.pt \
	  --thresholds $(ART)/dhrnet/reconstruction_errors.txt --letters-dir $(ART)/letters --out-dir $(ART)/dhrnet/osr \
	  --no-embeddings --splits-dir $(ART)/dhrnet/no_splits --device $(DEVICE)
	$(MAKE) evaluate

# The unseen-digit protocol: 5 splits of 6 known / 4 unknown digits (JOBS at once), each trained with PRESET, then the
# full report again.
SPLITS_DIR = $(ART)/unseen_digits$(if $(filter-out default,$(PRESET)),-$(PRESET))
benchmark-osr: install data
	$(RUN) evaluate_osr.py --protocol unseen-digits --split-preset $(PRESET) --jobs $(JOBS) --data-dir $(DATA) \
	  --checkpoint $(ART)/model.pt --thresholds $(ART)/reconstruction_errors.txt --letters-dir $(ART)/letters \
	  --out-dir $(ART)/osr --splits-dir $(SPLITS_DIR) --device $(DEVICE) $(COMPARE)

# Which training recipe: each method screened over seeds and compared paired with the default, the table printed
# (METHODS_FLAGS="--only 5": the default and method 5 alone; "--confirm 2": the best two on the full judge too);
# then the main report again with the table, where a trained model is there to report on.
benchmark-methods: install data
	$(RUN) benchmarks/methods.py --data-dir $(DATA) --out-dir $(ART)/methods $(METHODS_FLAGS)
	@if [ -f $(ART)/model.pt ] && [ -f $(ART)/reconstruction_errors.txt ] && [ -d $(ART)/letters ]; then $(MAKE) evaluate; fi

# How much of a headline figure is the seed's: train.py's PRESET trained with SEEDS, each evaluated alike.
SEEDS ?= 0,1,2
SEEDS_DIR = $(ART)/seeds$(if $(filter-out default,$(PRESET)),-$(PRESET))
benchmark-seeds: install data letters
	$(RUN) benchmarks/seeds.py --seeds $(SEEDS) --preset $(PRESET) --data-dir $(DATA) --letters-dir $(ART)/letters \
	  --out-dir $(SEEDS_DIR)

# Why outlier exposure breaks the classifier: short trainings that differ only in their negatives or how they are normalised.
benchmark-outlier-exposure: install data
	$(RUN) benchmarks/outlier_exposure.py --data-dir $(DATA) --out-dir $(ART)/outlier_exposure

# How strong a near-digit judge must be: fold schemes measured on design partitions of the digits (not protocol splits).
benchmark-folds: install data
	$(RUN) benchmarks/folds.py --data-dir $(DATA) --out-dir $(ART)/folds

# The near-digit judgements shipped in osr_core/judgements/: the default recipe's, the large preset's and each protocol
# split's, computed once per recipe (ten and six leave-one-class-out models at the recipe's own budget).
# JUDGE_RECIPES=large,large-split0: those alone; JUDGE_CHECK=1 compares instead.
JUDGE_RECIPES ?= all
judge: install data
	$(RUN) -m osr_core.judgement --recipes $(JUDGE_RECIPES) --data-dir $(DATA) --folds-dir $(ART)/judge \
	  --device $(DEVICE) $(if $(JUDGE_CHECK),--check)

# Where time and memory go: training and scoring throughput against bare loops, and every stage's cost
# (BENCH_FLAGS=--stages-only: the six stages alone).
bench: install data
	$(RUN) benchmarks/bench.py $(BENCH_FLAGS)

clean:
	rm -rf $(ART)/model.pt $(ART)/reconstruction_errors.txt $(ART)/calibration.json $(ART)/test $(ART)/letters \
	  $(ART)/letters_test $(ART)/osr $(ART)/unseen_digits $(ART)/dhrnet $(ART)/methods $(ART)/bench $(ART)/leave_out \
	  $(ART)/folds $(ART)/judge $(ART)/seeds $(ART)/seeds-*
