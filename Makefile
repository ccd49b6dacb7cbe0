# Deep learning for imaging -- course commands. Each target sets up what it needs.
#   make lab     set up, then open JupyterLab on notebooks/
#   make test    set up, then unit tests + every notebook under nbval (COURSE_PROFILE=ci)
#   make course  execute every notebook in the lecture profile, HTML into build/
#   make bench   run the benchmarks (benchmarks/results/)
#   make student rebuild notebooks/student/ from the instructor notebooks
#   make publish REPO=https://github.com/USER/NAME [BRANCH=main]
#                set the repository the notebooks install from and link to (pyproject [tool.course])
#   make site    the course website: executed notebooks (lecture profile) + index, in build/site/
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
# Extra pip flags for torch, e.g. TORCH_PIP="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP ?=
STAMP   = $(VENV)/.course-lib-installed
# JupyterLab refuses to run as root unless told to.
ROOT_FLAG = $(shell [ "$$(id -u)" = "0" ] && echo --allow-root)
NOTEBOOKS = $(sort $(wildcard notebooks/[0-9]*.ipynb))

.PHONY: setup lab test unit notebooks course bench student publish site clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 9), "Python >= 3.9 is needed, this is " + sys.version' 
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -c 'import torch, torchvision' 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_PIP) "torch>=2.2" "torchvision>=0.17"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --user --name course-lib --display-name "Python (course-lib)" >/dev/null
	@touch $(STAMP)
	@echo "course_lib installed in $(VENV); Jupyter kernel 'course-lib' registered"

lab: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --notebook-dir=notebooks

unit: setup
	COURSE_PROFILE=ci $(PY) -m pytest tests -q

# Per-cell limits turn a hang into a failure that names the notebook and cell (nbval), and
# notebooks/conftest.py fails any notebook over its budget; `timeout` is the last guard.
notebooks: setup
	COURSE_PROFILE=ci timeout --signal=INT --kill-after=60 1500 $(PY) -m pytest --nbval-lax --nbval-current-env \
	    --nbval-cell-timeout=240 --nbval-kernel-startup-timeout=120 notebooks/ -p no:cacheprovider

test: unit notebooks

# Each notebook in a fresh kernel; a cell over 10 min or a notebook over 30 min is reported as a
# failure naming the notebook and cell (notebooks/execute.py), and the others still run.
course: setup
	$(PY) notebooks/execute.py --profile lecture --cell-timeout 600 --notebook-timeout 1800 \
	    --html build $(NOTEBOOKS)
	@echo "HTML in build/"

bench: setup
	$(PY) -m benchmarks all

student: setup
	$(PY) -m course_lib.exercises build

BRANCH ?=
publish: setup
	@test -n "$(REPO)" || { echo "usage: make publish REPO=https://github.com/USER/NAME [BRANCH=main]"; exit 2; }
	$(PY) -m course_lib.exercises publish --repo "$(REPO)" $(if $(BRANCH),--branch "$(BRANCH)")

# Static HTML that works from the file system and on GitHub Pages (build/site/index.html).
# SITE_DATA=offline (default): only images that may be published; SITE_DATA=local: this machine's data too.
SITE_DATA ?= offline
site: setup
	$(PY) notebooks/site.py --profile lecture --data $(SITE_DATA) --out build/site $(NOTEBOOKS)

clean:
	rm -rf build .pytest_cache
