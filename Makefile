# Two commands set everything up on a fresh machine:
#   make demo   - the main job end to end on the embedded demo dataset
#   make test   - the test suite
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

.PHONY: demo test setup ffmpeg bench clean

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

demo: setup
	$(PY) -m ascnet.demo --out runs/demo

clean:
	rm -rf $(VENV) build *.egg-info
