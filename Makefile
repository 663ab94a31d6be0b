# sinktrace: every entry point.
#   make          build every program into bin/
#   make test     build and run every cmocka test (tests/test_*.c)
#   make run      deps + data + train the default config (+ probes and report)
#   make data     fetch and prepare the default corpus (CORPUS=moby|sotu)
#   make deps     install what is missing from Debian (as root), or print the command
#   make bench    training speed against the machine's measured peak
#   make experiments  the experiment suite runs/experiments/suite.sweep with bin/sweep (resumable)
#
# Layout convention: a program `bin/NAME` has its main() in `<room>/main_NAME.c`; every other .c file
# of common/ model/ data/ train/ probes/ goes into build/libsinktrace.a; each tests/test_NAME.c is a
# cmocka program bin/test_NAME linked with the other tests/*.c helpers.

CC = gcc
# -march=native: lets gcc use AVX2/FMA on the build machine (the binaries are not portable to older CPUs)
ARCH ?= -march=native
CFLAGS ?= -O2
CFLAGS += -std=c11 -Wall -Wextra -Werror -fopenmp $(ARCH) -D_GNU_SOURCE -MMD -MP \
          $(shell pkg-config --cflags stb libcjson 2>/dev/null)
LDLIBS = $(shell pkg-config --libs stb libcjson 2>/dev/null) -lm
TEST_LDLIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

ROOMS = common model data train probes
MAIN_SRC = $(foreach r,$(ROOMS),$(wildcard $(r)/main_*.c))
LIB_SRC = $(filter-out $(MAIN_SRC),$(foreach r,$(ROOMS),$(wildcard $(r)/*.c)))
LIB_OBJ = $(patsubst %.c,build/%.o,$(LIB_SRC))
PROGS = $(patsubst main_%,bin/%,$(basename $(notdir $(MAIN_SRC))))
TEST_SRC = $(wildcard tests/test_*.c)
TEST_HELP_SRC = $(filter-out $(TEST_SRC),$(wildcard tests/*.c))
TEST_HELP_OBJ = $(patsubst %.c,build/%.o,$(TEST_HELP_SRC))
TESTS = $(patsubst tests/%.c,bin/%,$(TEST_SRC))

CORPUS ?= moby
CONFIG ?= runs/default.conf

.PHONY: all test deps data run bench clean experiments
all: $(PROGS)

build/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

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

test: $(PROGS) $(TESTS)
	@bash tests/run.sh $(TESTS)

deps:
	@bash .ci/deps.sh

data: $(PROGS)
	@bash data/fetch.sh $(CORPUS)

# a second `make run` resumes (or, when finished, just re-reports) instead of refusing the directory
RUN_DIR = runs/$(shell sed -n 's/^run_name *= *\([^ #]*\).*/\1/p' $(CONFIG))
run: deps data $(PROGS)
	@if [ -d $(RUN_DIR) ]; then echo "bin/train --resume $(RUN_DIR)"; bin/train --resume $(RUN_DIR); \
	else echo "bin/train --config $(CONFIG)"; bin/train --config $(CONFIG); fi

bench: $(PROGS)
	bin/bench

# every condition of the suite, JOBS runs at a time; a second call skips finished runs and resumes
# interrupted ones; ends with runs/experiments/suite/compare.md
JOBS ?= 2
experiments: deps data $(PROGS)
	bin/sweep runs/experiments/suite.sweep --jobs $(JOBS)

clean:
	rm -rf build bin

.SECONDARY:
-include $(shell find build -name '*.d' 2>/dev/null)
