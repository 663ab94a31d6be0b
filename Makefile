# sinktrace: every entry point.
#   make          build every program into bin/
#   make test     check the include rule (make includes), build and run every cmocka test (tests/test_*.c)
#   make includes every #include of the rooms points down docs/DESIGN.md's layers (tests/check_includes.sh)
#   make run      deps + data + train the default config (+ probes and report)
#   make data     fetch and prepare the default corpus (CORPUS=moby|sotu)
#   make deps     install what is missing from Debian (as root), or print the command
#   make bench    training speed against the machine's measured peak
#   make bench-torch  the PyTorch twin (python/) against bin/train: same model, batch and threads
#   make sanitize every test and a 20-step run under ASan + UBSan (build-san/)
#   make fuzz     each file parser under libFuzzer for FUZZ_SECONDS (build-fuzz/; needs clang)
#   make figures  make run, then copy the default run's figures that the README shows into docs/figures/
#   make experiments  the experiment suite runs/experiments/suite.sweep with bin/sweep (resumable)
#   MPI=1         (with any of the above) build with mpicc for `mpirun -np N bin/train` (train/dist.h)
#   PYTHON=1      (with make deps) also install PyTorch for /usr/bin/python3: the twin, its parity
#                 check in make test (skipped without it), make bench-torch
#   BROWSER=1     (with make deps) also install chromium for the browser test of report.html
#                 (tests/test_viewer.c; skipped without it)
#
# Layout convention: a program `bin/NAME` has its main() in `<room>/main_NAME.c`; every other .c file
# of common/ model/ data/ train/ probes/ probes/report/ goes into build/libsinktrace.a; each tests/test_NAME.c is a
# cmocka program bin/test_NAME linked with the other tests/*.c helpers.

CC = gcc
# -march=native: lets gcc use AVX2/FMA on the build machine (the binaries are not portable to older CPUs)
ARCH ?= -march=native
CFLAGS ?= -O2
# -Wno-psabi: without AVX (ARCH=), gcc warns that 32-byte vector arguments change the ABI; the
# vector helpers are static inline within one build, so no ABI boundary is crossed
CFLAGS += -std=c11 -Wall -Wextra -Werror -Wno-psabi -fopenmp $(ARCH) -D_GNU_SOURCE -MMD -MP \
          $(shell pkg-config --cflags stb libcjson zlib 2>/dev/null)
LDLIBS = $(shell pkg-config --libs stb libcjson zlib 2>/dev/null) -lm
TEST_LDLIBS = $(shell pkg-config --libs cmocka 2>/dev/null)
ifeq ($(MPI),1)
CC = mpicc
CFLAGS += -DST_MPI
endif
# build/kind names the kind of build that made the objects (rewritten only when it changes), so
# switching MPI=1 on or off rebuilds everything
BUILD_KIND := $(if $(filter 1,$(MPI)),mpi,serial)
$(shell mkdir -p build; [ "$$(cat build/kind 2>/dev/null)" = $(BUILD_KIND) ] || echo $(BUILD_KIND) > build/kind)

ROOMS = common model data train probes probes/report
MAIN_SRC = $(foreach r,$(ROOMS),$(wildcard $(r)/main_*.c))
LIB_SRC = $(filter-out $(MAIN_SRC),$(foreach r,$(ROOMS),$(wildcard $(r)/*.c)))
LIB_OBJ = $(patsubst %.c,build/%.o,$(LIB_SRC))
PROGS = $(patsubst main_%,bin/%,$(basename $(notdir $(MAIN_SRC))))
TEST_SRC = $(wildcard tests/test_*.c)
TEST_HELP_SRC = $(filter-out $(TEST_SRC),$(wildcard tests/*.c))
TEST_HELP_OBJ = $(patsubst %.c,build/%.o,$(TEST_HELP_SRC))
TESTS = $(patsubst tests/%.c,bin/%,$(TEST_SRC))

# the interpreter of python/ and tests/torch_parity.py: Debian's, where python3-torch installs torch
# (a python3 earlier on PATH, such as pyenv's, does not see it)
TORCH_PYTHON = /usr/bin/python3

CORPUS ?= moby
CONFIG ?= runs/default.conf

.PHONY: all test includes deps data run figures bench bench-torch sanitize fuzz clean experiments
all: $(PROGS)

$(LIB_OBJ) $(TEST_HELP_OBJ) $(patsubst %.c,build/%.o,$(TEST_SRC)) $(patsubst %,build/%.o,$(basename $(notdir $(MAIN_SRC)))): build/kind

build/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# the viewer's script and style are built into viewer.o (an .incbin of each, probes/report/viewer.h)
build/probes/report/viewer.o: probes/report/viewer.js probes/report/viewer.css

build/libsinktrace.a: $(LIB_OBJ)
	@mkdir -p build
	rm -f $@
	ar rcs $@ $^

vpath main_%.c $(ROOMS)
bin/%: build/main_%.o build/libsinktrace.a
	@mkdir -p bin
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

build/main_%.o: main_%.c
	@mkdir -p build
	$(CC) $(CFLAGS) -c $< -o $@

bin/test_%: build/tests/test_%.o $(TEST_HELP_OBJ) build/libsinktrace.a
	@mkdir -p bin
	$(CC) $(CFLAGS) $^ -o $@ $(TEST_LDLIBS) $(LDLIBS)

# the rooms import one way (docs/DESIGN.md, "Data flows one way"): an include pointing up fails here
includes:
	@bash tests/check_includes.sh

# SKIP_TESTS: test programs built but not run (make sanitize skips the lab's training runs)
test: includes $(PROGS) $(TESTS)
	@bash tests/run.sh $(filter-out $(SKIP_TESTS),$(TESTS))

deps:
	@MPI=$(MPI) PYTHON=$(PYTHON) BROWSER=$(BROWSER) bash .ci/deps.sh

data: $(PROGS)
	@bash data/fetch.sh $(CORPUS)

# a second `make run` resumes (or, when finished, just re-reports) instead of refusing the directory
RUN_DIR = runs/$(shell sed -n 's/^run_name *= *\([^ #]*\).*/\1/p' $(CONFIG))
run: deps data $(PROGS)
	@if [ -d $(RUN_DIR) ]; then echo "bin/train --resume $(RUN_DIR)"; bin/train --resume $(RUN_DIR); \
	else echo "bin/train --config $(CONFIG)"; bin/train --config $(CONFIG); fi

# the README's figures: the default run's own, so they are regenerated, never drawn by hand
DOC_FIGURES = attention_maps loss norm_profile sink_by_layer story trace_norm trace_sink
figures: run
	cp $(foreach f,$(DOC_FIGURES),$(RUN_DIR)/$(f).png) docs/figures/

# MPI=1 adds the data-parallel scaling: 2 ranks x 1 thread against 1 rank x 2 threads
bench: $(PROGS)
	bin/bench
ifeq ($(MPI),1)
	mpirun $(if $(filter 0,$(shell id -u)),--allow-run-as-root) --oversubscribe --bind-to none -np 2 \
	    bin/bench --data-parallel
endif

# BENCH_STEPS steps of runs/default.conf's model and batch each, on THREADS threads (python/bench_torch.py)
BENCH_STEPS ?= 10
THREADS ?= 2
bench-torch: $(PROGS)
	$(TORCH_PYTHON) python/bench_torch.py --config $(CONFIG) --steps $(BENCH_STEPS) --threads $(THREADS)

sanitize:
	@bash tests/sanitize.sh

FUZZ_SECONDS ?= 30
fuzz:
	@FUZZ=1 bash .ci/deps.sh
	@bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_ONLY)

# every condition of the suite, JOBS runs at a time; a second call skips finished runs and resumes
# interrupted ones; ends with runs/experiments/suite/compare.md and the claim-by-claim
# runs/experiments/report.md (+ suite_*.png), written even when a run failed (it is reported missing)
JOBS ?= 2
experiments: deps data $(PROGS)
	bin/sweep runs/experiments/suite.sweep --jobs $(JOBS); status=$$?; \
	bin/report --suite runs/experiments/suite && exit $$status

clean:
	rm -rf build bin build-san build-fuzz

.SECONDARY:
-include $(shell find build -name '*.d' 2>/dev/null)
