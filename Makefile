# Two commands set everything up on a fresh machine:
#   make demo   - the main job end to end on the embedded demo dataset
#   make test   - the test suite
#   make bench-peers M=manifest.parquet - the decode and eval benchmarks in the peers' environment
#                 (.venv-peers: a CUDA build of torch with torchcodec and torchvision, which runs on a
#                 CPU; ~5.4 GB; not part of `make test`). Run it on a quiet machine.
#
# TORCH_SPEC pins the torch build. The default is a CPU-friendly pin; on a GPU
# machine pass e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128".
# DALI_EXTRA picks the DALI build: dali (CUDA 12 drivers, default) or dali-cuda130 (CUDA 13).
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
DALI_EXTRA ?= dali
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed

# The peers' environment: torchcodec links a CUDA build of torch (it also runs on a CPU-only
# machine); torchvision for the peers' transforms.v2 recipe.
PEERS_VENV ?= .venv-peers
PEERS_SPEC ?= torch==2.14.1 torchvision==0.29.1 torchcodec==0.17.0
PEERS_PY   := $(PEERS_VENV)/bin/python
PEERS_STAMP := $(PEERS_VENV)/.installed
M          ?=
BENCH_ARGS ?= --seconds 15 --rounds 3
EVAL_ARGS  ?= --rounds 3 --width 16 --min-videos 36

.PHONY: demo test setup ffmpeg bench clean peers bench-peers

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) setup.py setup.cfg
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test,demo,bench,dist,$(DALI_EXTRA)]"
	touch $(STAMP)

ffmpeg:
	@if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's ffmpeg"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	else echo "ffmpeg/ffprobe not found: install them (e.g. 'sudo apt-get install ffmpeg') and rerun"; exit 1; fi

setup: ffmpeg $(STAMP)

test: setup
	$(PY) -m pytest -q

$(PEERS_STAMP): setup.py setup.cfg
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_PY) -m pip install -q --upgrade pip
	$(PEERS_PY) -m pip install -q $(PEERS_SPEC)
	$(PEERS_PY) -m pip install -q -e ".[bench,$(DALI_EXTRA)]"
	$(PEERS_PY) -c "import torchcodec.decoders, torchvision.transforms.v2; print('peers: torch', __import__('torch').__version__, 'torchcodec', __import__('torchcodec').__version__)"
	touch $(PEERS_STAMP)

peers: ffmpeg $(PEERS_STAMP)

bench-peers: peers
	@if [ -z "$(M)" ]; then echo "give the manifest to benchmark: make bench-peers M=path/to/manifest.parquet"; exit 1; fi
	$(PEERS_VENV)/bin/ascnet-bench decode $(M) --backends pyav,baseline,torchcodec,torchcodec-approx,torchvision,ceiling $(BENCH_ARGS)
	$(PEERS_VENV)/bin/ascnet-bench eval $(M) --split train --backends pyav,baseline,torchcodec $(EVAL_ARGS)

demo: setup
	$(PY) -m ascnet.demo --out runs/demo

clean:
	rm -rf $(VENV) $(PEERS_VENV) build *.egg-info
