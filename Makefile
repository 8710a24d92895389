# The README's two commands: `make demo` (the main job) and `make test` (everything CI runs).
# Both create .venv with Python 3.11 and install the pinned project on first use; later runs reuse it
# until settings.ini, setup.py or constraints.txt change.
PYTHON ?= $(shell command -v python3.11 2>/dev/null)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install demo demo-cli test test-slow check-sync sync protos readme nbs-test pytest lock docs docs-html clean

$(STAMP): settings.ini setup.py constraints.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required: install python3.11 (or run make PYTHON=/path/to/python3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet pip==26.3
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

DEMO_OUT ?= demo_out
NETWORK ?= ssd

## The main job: the SSD pipeline on the built-in sample dataset (convert, train, evaluate, prune, retrain, evaluate,
## INT8 export), each step a notebook run by papermill; re-running skips the steps that finished.
## `make demo NETWORK=yolo_v3` runs the same pipeline with a YOLOv3, in $(DEMO_OUT)/pipeline_yolo_v3.
demo: install
	$(BIN)/tao-nb pipeline run nbs/pipelines/ssd_sample.yaml -p network $(NETWORK) \
	  -r $(DEMO_OUT)/pipeline$(if $(filter-out ssd,$(NETWORK)),_$(NETWORK))

## The same workflow through the command line, step by step, as in the TAO tutorial (60 epochs; NETWORK=yolo_v3 too).
DEMO_SPEC = $(DEMO_OUT)/sample/specs/sample_$(subst _,,$(NETWORK))_train.txt
DEMO_MODEL = $$(ls $(DEMO_OUT)/results/weights/*.keras | tail -n 1)
demo-cli: install
	$(BIN)/tao-nb data make_sample -o $(DEMO_OUT)/sample --overwrite
	$(BIN)/tao-nb spec validate $(DEMO_OUT)/sample/specs/*.txt
	$(BIN)/tao-nb $(NETWORK) dataset_convert -d $(DEMO_OUT)/sample/specs/sample_convert.txt -o $(DEMO_OUT)/sample/tfrecords/sample
	$(BIN)/tao-nb data summary -e $(DEMO_SPEC) --figure $(DEMO_OUT)/data_summary.png
	rm -rf $(DEMO_OUT)/results $(DEMO_OUT)/export
	$(BIN)/tao-nb $(NETWORK) train -e $(DEMO_SPEC) -r $(DEMO_OUT)/results
	$(BIN)/tao-nb $(NETWORK) evaluate -e $(DEMO_SPEC) -m $(DEMO_MODEL)
	$(BIN)/tao-nb $(NETWORK) inference -e $(DEMO_SPEC) -m $(DEMO_MODEL) \
	  -i $(DEMO_OUT)/sample/validation/image_2 -o $(DEMO_OUT)/inference/images -l $(DEMO_OUT)/inference/labels
	$(BIN)/tao-nb $(NETWORK) export -e $(DEMO_SPEC) -m $(DEMO_MODEL) -o $(DEMO_OUT)/export/$(NETWORK).onnx --data_type int8 \
	  --cal_image_dir $(DEMO_OUT)/sample/training/image_2 --cal_cache_file $(DEMO_OUT)/export/cal.bin --cal_data_file $(DEMO_OUT)/export/cal.npy
	$(BIN)/tao-nb $(NETWORK) compare -e $(DEMO_SPEC) -m $(DEMO_MODEL) $(DEMO_OUT)/export/$(NETWORK).onnx $(DEMO_OUT)/export/$(NETWORK).int8.onnx \
	  -n Keras "ONNX FP32" "ONNX INT8" -o $(DEMO_OUT)/export/int8_report.json --figure $(DEMO_OUT)/export/int8_report.png
	@echo "demo: results in $(DEMO_OUT)/ (results/training_log.csv, results/weights/, inference/images/, export/$(NETWORK).onnx, export/$(NETWORK).int8.onnx, export/int8_report.json)"

## Everything CI runs: package, notebooks and README in sync, notebook tests, pytest.
test: install check-sync docs-html nbs-test pytest

## Heavier tests as well (long training runs, fuzzing with many cases).
test-slow: install
	$(BIN)/nbdev_test --n_workers 2 --flags slow
	$(BIN)/pytest -q -m "slow or not slow" tests

nbs-test: install
	$(BIN)/nbdev_test --n_workers 2

pytest: install
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=15 tests

## Regenerate everything generated: the package from nbs/, clean notebooks, protobuf code, README.
sync: install
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	@$(MAKE) --no-print-directory -s protos readme

## Fails when `make sync` would change the tree: commit notebooks and what they generate together.
check-sync: install
	@before="$$(git status --porcelain; git diff | sha1sum)"; \
	$(MAKE) --no-print-directory -s sync; \
	after="$$(git status --porcelain; git diff | sha1sum)"; \
	if [ "$$before" != "$$after" ]; then \
	  echo "check-sync: nbdev_export, nbdev_clean, 'make protos' or 'make readme' changed these files:"; \
	  git status --short; \
	  echo "Commit the regenerated files (edit nbs/ and tao_nb/proto/*.proto, never tao_nb/*.py by hand)."; \
	  exit 1; \
	fi; echo "check-sync: package, notebooks, protobuf code and README are in sync"

## Python code for the spec schemas in tao_nb/proto/*.proto, with the pinned protoc of grpcio-tools.
protos: install
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. tao_nb/proto/*.proto

## README.md is generated from nbs/index.ipynb.
readme: install
	$(BIN)/jupyter nbconvert --log-level ERROR --to markdown --output README --output-dir . nbs/index.ipynb

## Pin every package the project pulls in (run after changing the requirements in settings.ini).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check pip==26.3
	.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	{ echo "# Every package the project installs, pinned. Generated by 'make lock' from settings.ini: do not edit."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable; } > constraints.txt
	rm -rf .venv-lock

## The documentation site needs the Quarto CLI, which is not on PyPI.
## The same site without Quarto (nbconvert): fails when a notebook has no page or is missing from the sidebar.
docs-html: install
	$(BIN)/python tools/render_docs.py --out _docs_html

docs: install
	@command -v quarto >/dev/null || { echo "make docs needs the Quarto CLI (https://quarto.org/docs/get-started/); it is not installable from PyPI"; exit 1; }
	quarto render

clean:
	rm -rf $(VENV) _docs _proc *.egg-info $(DEMO_OUT)
