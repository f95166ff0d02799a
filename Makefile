# nginx mod_wsgi: ngx_http_wsgi_module built out of tree against Debian's
# nginx (nginx-dev ships its configure and headers in /usr/share/nginx/src).
#
#   make                 build build/ngx_http_wsgi_module.so (gcc)
#   make run [APP=...]   serve examples/hello.wsgi (or APP) on 127.0.0.1:8080
#   make test            deps, gcc and clang builds, style check, pytest,
#                        test-py3x, sanitize, fuzz-short
#   make sanitize        a part of the tests on an ASan and UBSan build
#   make test-py3x       a smoke subset of the tests on Python 3.12 and 3.13
#                        (pyenv's builds), when the machine has them
#   make fuzz            the converters under libFuzzer for FUZZ_TIME s
#                        (fuzz-short: 20 s); docs/testing.md
#   make bench           benchmarks (bench/README.md), not part of the tests

PYTHON =        /usr/bin/python3
NGX_SRC =       /usr/share/nginx/src
CC =            gcc
BUILD =         build
APP =           $(CURDIR)/examples/hello.wsgi
PORT =          8080

WSGI_CFLAGS =   -g -O2 -fstack-protector-strong -Wformat \
                -Werror=format-security -fPIC -Wdate-time \
                -D_FORTIFY_SOURCE=2 \
                -W -Wall -Wextra -Wpointer-arith -Wno-unused-parameter \
                -Wmissing-prototypes -Werror
WSGI_LDFLAGS =  -Wl,-z,relro -Wl,-z,now -fPIC

SOURCES =       config $(wildcard src/*.c src/*.h)

.PHONY: all deps run test test-python test-py3x clang sanitize fuzz \
        fuzz-short style bench clean

all: deps $(BUILD)/ngx_http_wsgi_module.so

deps:
	@tools/deps.sh

# $(1): build directory, $(2): compiler, $(3): more compiler flags,
# $(4): the python3.X-config of another Python than config's default
define ngx_wsgi_build
$(1)/nginx/objs/Makefile: config Makefile $(4)
	rm -rf $(1)/nginx
	mkdir -p $(1)
	cp -r $(NGX_SRC) $(1)/nginx
	. $(NGX_SRC)/conf_flags; cd $(1)/nginx && \
	    $(if $(4),NGX_WSGI_PYTHON_CONFIG=$(4)) ./configure \
	    "$$$${NGX_CONF_FLAGS[@]}" --with-cc=$(2) \
	    --with-cc-opt='$(WSGI_CFLAGS) $(3)' --with-ld-opt='$(WSGI_LDFLAGS)' \
	    --add-dynamic-module=$(CURDIR) > ../configure.log 2>&1 \
	    || { cat ../configure.log; exit 1; }

$(1)/ngx_http_wsgi_module.so: $(1)/nginx/objs/Makefile $(SOURCES)
	$$(MAKE) -C $(1)/nginx -f objs/Makefile modules
	cp $(1)/nginx/objs/ngx_http_wsgi_module.so $$@.tmp && mv $$@.tmp $$@
endef

SHELL = /bin/bash

# the release build leaves CPython's asserts out, as Python's own extension
# modules do; the clang build keeps them, and the inline half of the tests
# runs on it

$(eval $(call ngx_wsgi_build,$(BUILD),$(CC),-DNDEBUG))
$(eval $(call ngx_wsgi_build,$(BUILD)-clang,clang,))

# the sanitizer build: AddressSanitizer and UndefinedBehaviorSanitizer in
# the module only; Debian's nginx loads clang's runtime with LD_PRELOAD.
# ASan registers the module's globals through private aliases: the dynamic
# linker binds the name ngx_modules to nginx's own array, which ASan would
# then take for the module's 16 bytes (a false overflow on every reload)

SAN_CFLAGS =    -fsanitize=address,undefined -fno-omit-frame-pointer \
                -mllvm -asan-use-private-alias=1

$(eval $(call ngx_wsgi_build,$(BUILD)-asan,clang,$(SAN_CFLAGS)))

clang: deps $(BUILD)-clang/ngx_http_wsgi_module.so

# pyflakes over the Python files: names a merge left undefined fail here,
# not halfway through the suite (import_module_app.py is a template)

style:
	$(PYTHON) tools/stylecheck.py
	$(PYTHON) -m pyflakes $$(find tests tools bench examples \
	    -name '*.py' ! -name import_module_app.py | sort)
	git diff --check HEAD -- . 2>/dev/null || git diff --check

run: all
	tools/run.sh $(CURDIR)/$(BUILD)/ngx_http_wsgi_module.so "$(APP)" $(PORT)

test: all clang style test-python test-py3x sanitize fuzz-short

# the suite runs three times: on the thread pool (the default) with the
# release build, inline with the clang build and its CPython asserts, and
# with every application in a sub-interpreter.  The first two spread the
# tests over PYTEST_JOBS processes, then run those marked "serial" (they
# load every CPU, or measure the scheduler) alone.  Exit
# status 5 is pytest's "no tests selected", for a PYTEST_ARGS that picks a
# few tests.

PYTEST =        $(PYTHON) -m pytest -q -p no:cacheprovider
PYTEST_JOBS =   4
INLINE =        TEST_NGINX_GLOBALS_HTTP="wsgi_thread_pool off;" \
                NGX_WSGI_MODULE=$(CURDIR)/$(BUILD)-clang/ngx_http_wsgi_module.so
SUBINTERP =     TEST_NGINX_GLOBALS_HTTP="wsgi_enable_subinterpreters on;"

test-python:
	$(PYTEST) -n $(PYTEST_JOBS) -m "not serial" tests $(PYTEST_ARGS) \
	    || [ $$? = 5 ]
	$(PYTEST) -m serial tests $(PYTEST_ARGS) || [ $$? = 5 ]
	$(INLINE) $(PYTEST) -n $(PYTEST_JOBS) -m "not serial" tests \
	    $(PYTEST_ARGS) || [ $$? = 5 ]
	$(INLINE) $(PYTEST) -m serial tests $(PYTEST_ARGS) || [ $$? = 5 ]
	$(SUBINTERP) $(PYTEST) -n $(PYTEST_JOBS) -m "not serial" tests \
	    $(PYTEST_ARGS) || [ $$? = 5 ]

# Python 3.12 and 3.13: the module built against pyenv's builds of them
# (with a shared libpython), in $(BUILD)-py312 and $(BUILD)-py313, and a
# smoke subset of the suite on each, in both modes; a Python the machine
# does not have is skipped, saying so.  The applications run in that
# Python, which has none of Debian's packages: the subset needs only the
# standard library.  docs/testing.md

PY3X =          3.12 3.13
PY3X_ROOT =     /root/.pyenv/versions
PY3X_TESTS =    tests/test_build.py tests/test_environ.py \
                tests/test_response.py tests/test_errors.py \
                tests/test_threads.py tests/test_python_executable.py \
                tests/test_interpreters.py tests/test_reloading.py \
                $(addprefix --deselect ,$(PY3X_SKIP))

# PY3X_SKIP: left out, as they measure socket buffering rather than Python,
# and are sensitive to the machine's load
PY3X_SKIP =     $(addprefix tests/test_threads.py::test_, \
                    wsgi_buffer_size_bounds_what_is_produced_ahead)

# the newest $(PY3X_ROOT)/3.X.*/bin/python3.X-config, or nothing
py3x_config =   $(lastword $(sort $(wildcard \
                    $(PY3X_ROOT)/$(1).*/bin/python$(1)-config)))
py3x_build =    $(BUILD)-py$(subst .,,$(1))
py3x_pytest =   NGX_WSGI_PYTHON_CONFIG=$(2) \
                NGX_WSGI_MODULE=$(CURDIR)/$(1)/ngx_http_wsgi_module.so \
                $(PYTEST) -n $(PYTEST_JOBS) -m "not serial" $(PY3X_TESTS) \
                $(PYTEST_ARGS) || [ $$? = 5 ]

# $(1): the version, $(2): its python3.X-config, empty when there is none
define ngx_wsgi_py3x
.PHONY: test-py$(1)
test-py3x: test-py$(1)
ifeq ($(2),)
test-py$(1):
	@echo "test-py$(1): skipped: no Python $(1) build" \
	    "(looked for $(PY3X_ROOT)/$(1).*/bin/python$(1)-config)"
else
$(call ngx_wsgi_build,$(call py3x_build,$(1)),$(CC),-DNDEBUG,$(2))
test-py$(1): deps $(call py3x_build,$(1))/ngx_http_wsgi_module.so
	$$(call py3x_pytest,$(call py3x_build,$(1)),$(2))
	TEST_NGINX_GLOBALS_HTTP="wsgi_thread_pool off;" \
	    $$(call py3x_pytest,$(call py3x_build,$(1)),$(2))
endif
endef

$(foreach v,$(PY3X),$(eval $(call ngx_wsgi_py3x,$(v),$(call py3x_config,$(v)))))

# the files that run the most of the module's C, on the thread pool (the
# test_threads.py tests named here run inline too), on the sanitizer build:
# Debian's nginx preloads clang's ASan runtime (NGX_WSGI_PRELOAD), and the
# harness fails a test on any report; docs/testing.md.  SAN_SLOW: tests
# left out, as they mostly wait

SAN_TESTS =     tests/test_environ.py tests/test_response.py \
                tests/test_input.py tests/test_errors.py \
                $(addprefix tests/test_threads.py::test_, \
                    mutating_a_chunk_after_handing_it_over \
                    client_gone_stops_a_streaming_generator \
                    client_connected_turns_false_when_client_leaves) \
                tests/test_lifecycle.py::test_reload_with_slow_request_in_flight \
                tests/test_interpreters.py tests/test_reloading.py
SAN_SLOW =      tests/test_response.py::test_slow_reader_backpressure \
                tests/test_reloading.py::test_rewrites_under_load
SAN_RUNTIME =   $(shell clang -print-file-name=libclang_rt.asan-x86_64.so)

sanitize: deps $(BUILD)-asan/ngx_http_wsgi_module.so
	NGX_WSGI_PRELOAD=$(SAN_RUNTIME) \
	NGX_WSGI_MODULE=$(CURDIR)/$(BUILD)-asan/ngx_http_wsgi_module.so \
	    $(PYTEST) -n $(PYTEST_JOBS) $(SAN_TESTS) \
	    $(addprefix --deselect ,$(SAN_SLOW)) $(PYTEST_ARGS)

# libFuzzer on the byte-level converters of snapshot.c and header.c,
# compiled without nginx's runtime and Python (NGX_HTTP_WSGI_FUZZ), with
# the headers of the sanitizer build's configured nginx.  New inputs go to
# $(BUILD)-fuzz/corpus, a crash to $(BUILD)-fuzz/crash-*; fuzz/corpus
# holds the seeds and past findings.  make test runs it for 20 s (its
# output in $(BUILD)-fuzz/fuzz.log), make fuzz for FUZZ_TIME

FUZZ =          $(BUILD)-fuzz/fuzz_environ
FUZZ_TIME =     600
FUZZ_CFLAGS =   -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
                -W -Wall -Wextra -Wno-unused-parameter -Wno-unused-function \
                -Werror -DNGX_HTTP_WSGI_FUZZ=1
FUZZ_INCS =     $(addprefix -I $(BUILD)-asan/nginx/, objs src/core src/event \
                    src/event/modules src/os/unix src/http src/http/modules \
                    src/http/v2) \
                $$(/usr/bin/python3.11-config --includes)
FUZZ_RUN =      $(FUZZ) -artifact_prefix=$(BUILD)-fuzz/ $(BUILD)-fuzz/corpus \
                fuzz/corpus

$(FUZZ): fuzz/fuzz_environ.c src/ngx_http_wsgi_snapshot.c \
         src/ngx_http_wsgi_header.c src/ngx_http_wsgi_module.h \
         $(BUILD)-asan/nginx/objs/Makefile
	mkdir -p $(BUILD)-fuzz/corpus
	clang $(FUZZ_CFLAGS) $(FUZZ_INCS) -o $@ fuzz/fuzz_environ.c

fuzz-short: deps $(FUZZ)
	$(FUZZ_RUN) -max_total_time=20 > $(BUILD)-fuzz/fuzz.log 2>&1 \
	    || { tail -40 $(BUILD)-fuzz/fuzz.log; exit 1; }
	tail -1 $(BUILD)-fuzz/fuzz.log

fuzz: deps $(FUZZ)
	$(FUZZ_RUN) -max_total_time=$(FUZZ_TIME)

bench: all
	@tools/deps.sh bench
	$(PYTHON) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) $(BUILD)-clang $(BUILD)-asan $(BUILD)-fuzz \
	    $(foreach v,$(PY3X),$(call py3x_build,$(v)))
