# tensorboard.mk — the Python environment with TensorBoard that tests/runlog
# checks rxc's event files with (TensorBoard's own reader, besides the suite's
# independent one). Debian 12 has no TensorBoard package: scripts/setup.sh
# installs it from PyPI into build/tensorboard-venv; `make setup` (and so
# `make test`) runs that step too.
.PHONY: tensorboard-reader
tensorboard-reader:
	@PYTHON=$(PYTHON) bash scripts/setup.sh tensorboard
