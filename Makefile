# pgchat -- make · make run · make test · make soak · make fuzz · make bench
#           make bench-history · make migrate · make fmt · make docs
#
# `make run` and `make test` install the Debian packages they need when run
# as root (otherwise they print the apt-get line and stop), so both work on
# a fresh machine.

CC      ?= cc
PKGS     = libpq json-c liburiparser
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wvla
SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all \
           -fno-omit-frame-pointer
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_DEFAULT_SOURCE $(WARN) $(CFLAGS) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

SRC      = $(wildcard fcgi/*.c)
HDR      = $(wildcard fcgi/*.h)
UNIT_SRC = $(wildcard t/unit/*.c)
UNIT_BIN = $(patsubst t/unit/%.c,build/unit/%,$(UNIT_SRC))
# Each unit test links only the files it tests (and what they need).
UNIT_hostile = query store pg stats token valid views msg util
UNIT_limit   = limit util
UNIT_query   = query util
UNIT_recent  = recent msg util
UNIT_valid   = valid
UNIT_views   = views stream request server outq wire ev query store pg stats \
               msg util
UNIT_wire    = wire util
unit_src = $(patsubst %,fcgi/%.c,$(UNIT_$(1)))

# Debian packages, each with the file that proves it is there (bin/deps
# installs the missing ones). Building and running need the first list;
# the tests, the fuzzer and the browser also the second.
# passwd (useradd) and util-linux (setpriv, runuser) make and become the
# unprivileged user pgchat when started as root.
DEBS     = build-essential pkg-config libjson-c-dev \
           liburiparser-dev libpq-dev libfcgi-dev postgresql nginx perl \
           passwd util-linux
DEB_CHECK = /usr/bin/cc /usr/bin/pkg-config \
           /usr/include/json-c/json.h /usr/include/uriparser/Uri.h \
           /usr/include/postgresql/libpq-fe.h /usr/include/fastcgi.h \
           /usr/share/doc/postgresql \
           /usr/sbin/nginx /usr/bin/prove /usr/sbin/useradd /usr/bin/setpriv
TEST_DEBS = clang-format chromium nodejs npm fonts-dejavu-core clang \
           libclang-rt-dev spawn-fcgi iproute2 pgbouncer prometheus \
           libtap-parser-sourcehandler-pgtap-perl \
           patroni etcd-server
TEST_DEB_CHECK = /usr/bin/clang-format /usr/bin/chromium /usr/bin/node \
           /usr/bin/npm /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
           /usr/bin/clang \
           /usr/share/doc/libclang-rt-dev \
           /usr/bin/spawn-fcgi /bin/ip /usr/sbin/pgbouncer /usr/bin/promtool \
           /usr/bin/pg_prove \
           /usr/bin/patroni /usr/bin/etcd
# The benchmark's anchors and plot: nchan (nginx's pub/sub module), Node
# for the original node_chat, gnuplot for bench/out/latency.svg.
BENCH_DEBS = libnginx-mod-nchan nodejs gnuplot-nox
BENCH_DEB_CHECK = /usr/lib/nginx/modules/ngx_nchan_module.so /usr/bin/node \
           /usr/bin/gnuplot

.PHONY: all deps test-deps run test unit migrate fmt fmt-check clean soak \
        fuzz bench bench-deps bench-history docs

all: fcgi/pgchat

deps:
	@sh bin/deps $(DEB_CHECK) -- $(DEBS)

# pgTAP's package is named after the server's major version, known only
# once deps has installed the server: bin/pg-bin finds it.
test-deps: | deps
	@major=$$(bin/pg-bin --major) && \
	sh bin/deps $(TEST_DEB_CHECK) \
	    /usr/share/postgresql/$$major/extension/pgtap.control -- \
	    $(TEST_DEBS) postgresql-$$major-pgtap

bench-deps: | deps
	@sh bin/deps $(BENCH_DEB_CHECK) -- $(BENCH_DEBS)

fcgi/pgchat: $(SRC) $(HDR) | deps
	$(CC) $(ALL_CFLAGS) -o $@ $(SRC) $(LIBS)

# The build the tests run: AddressSanitizer and UBSan.
fcgi/pgchat-asan: $(SRC) $(HDR) | deps
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -o $@ $(SRC) $(LIBS)

.SECONDEXPANSION:
build/unit/%: t/unit/%.c t/unit/tap.h t/unit/testlib.h \
              $$(call unit_src,$$*) $(HDR) | deps
	@mkdir -p build/unit
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -Ifcgi -o $@ $< $(call unit_src,$*) $(LIBS)

unit: $(UNIT_BIN)

t/browser/node_modules: t/browser/package.json | test-deps
	cd t/browser && npm install --no-audit --no-fund --loglevel=error
	@touch $@

run: fcgi/pgchat
	@bash bin/run

migrate: | deps
	@sh bin/migrate

# Everything, from scratch. The fuzzer gets a short run first (longer ones
# with `make fuzz`), so that prove's summary is the last word.
test: test-deps fcgi/pgchat fcgi/pgchat-asan unit t/browser/node_modules \
      fmt-check
	@sh t/fuzz/run 15
	@sh t/lib/run-tests

# The long versions of the delivery and fault tests, then the history
# checker on new seeds for SOAK_S seconds (figures in README).
SOAK_SCALE ?= 3
SOAK_S ?= 300
soak: test-deps fcgi/pgchat-asan unit
	@PGCHAT_SOAK_SCALE=$(SOAK_SCALE) sh t/lib/run-tests t/21-delivery.t t/80-faults.t
	@PGCHAT_SOAK_S=$(SOAK_S) PROVE_FLAGS=-v sh t/lib/run-tests t/95-history.t

FUZZ_SECONDS ?= 60
fuzz: | test-deps
	@sh t/fuzz/run $(FUZZ_SECONDS)

bench: fcgi/pgchat bench-deps
	@bash bench/run $(BENCH_FLAGS)
	@sh bench/history

# Scrollback at any depth of a room of 1M messages (part of make bench).
bench-history: fcgi/pgchat | deps
	@sh bench/history

# The README's screenshots, from a run of the browser test.
docs: test-deps fcgi/pgchat-asan t/browser/node_modules
	@PGCHAT_DOCS=$(CURDIR)/docs/screenshot.png sh t/lib/run-tests t/60-browser.t

fmt:
	clang-format -i $(SRC) $(HDR) $(UNIT_SRC) t/unit/tap.h t/unit/testlib.h

fmt-check: | test-deps
	@clang-format --dry-run --Werror $(SRC) $(HDR) $(UNIT_SRC) t/unit/tap.h \
	    t/unit/testlib.h

clean:
	rm -rf build fcgi/pgchat fcgi/pgchat-asan
