# ptocr developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CACHE  := .cache
OUT    := build/demo
STAMP  := $(VENV)/.ptocr-installed

.PHONY: install weights demo test test-fast bench fuzz zoo clean

install: $(STAMP)

# torch==2.13.0 is pinned so pip takes the CPU build; paddlepaddle is needed only to verify.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0 paddlepaddle==3.3.1
	$(BIN)/python -m pip install -q -e '.[ocr,test]'
	touch $(STAMP)

weights: install
	$(BIN)/python scripts/fetch_weights.py --cache $(CACHE)

demo: weights
	mkdir -p $(OUT)
	$(BIN)/ptocr convert --arch PP-OCRv4_mobile_det --paddle-dir $(CACHE)/models/PP-OCRv4_mobile_det --out $(OUT)/PP-OCRv4_mobile_det.pth --overwrite
	@echo "demo: converted and verified PP-OCRv4_mobile_det -> $(OUT)/PP-OCRv4_mobile_det.pth"

test: weights
	$(BIN)/python -m pytest -q -p no:randomly tests

bench: weights
	$(BIN)/python scripts/bench_convert.py
	$(BIN)/python scripts/bench_verify.py

clean:
	rm -rf build
