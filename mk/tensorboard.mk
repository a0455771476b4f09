# tensorboard.mk — an optional Python environment with TensorBoard, so that
# tests/runlog also checks rxc's event files with TensorBoard's own reader
# (Debian 12 has no TensorBoard package; this uses PyPI through pip).
.PHONY: tensorboard-reader
tensorboard-reader:
	$(PYTHON) -m venv --system-site-packages build/tensorboard-venv
	build/tensorboard-venv/bin/pip install -q tensorboard
