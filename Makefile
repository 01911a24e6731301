# PACS Bridge: `make run` starts the server, `make test` runs every test. Both install what is
# missing (Debian packages) first.
.PHONY: deps deps-test ui build debug clang lint run test bench soak fuzz clean package

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test

# The web UI (ui/): npm ci from the committed lock file when it changed, then a Vite build when
# a source changed; the server embeds ui/dist when it is built.
UI_SOURCES := $(shell find ui/src ui/public -type f 2>/dev/null) ui/index.html ui/vite.config.ts ui/tsconfig.json
ui/node_modules/.package-lock.json: ui/package-lock.json ui/package.json | deps
	cd ui && npm ci --no-audit --no-fund
ui/dist/index.html: ui/node_modules/.package-lock.json $(UI_SOURCES)
	cd ui && npm run build
ui: ui/dist/index.html

build: deps ui
	cmake --preset release >/dev/null
	cmake --build --preset release --target pacsbridge
	@ln -sf release/pacsbridge build/pacsbridge

debug: deps-test ui
	cmake --preset debug >/dev/null
	cmake --build --preset debug

# The code must build warning-free with clang 14 too (it finds what g++ does not).
clang: deps ui
	cmake --preset clang >/dev/null
	cmake --build --preset clang

# The Debian package of the release build (docs/operations.md): build/release/pacsbridge_*.deb.
package: build deps-test
	cmake --build --preset release --target manpage changelog
	cd build/release && cpack -G DEB

run: build
	build/pacsbridge serve $(if $(CONFIG),--config $(CONFIG))

# The tests run three at a time on two cores: the end-to-end suites spend much of their time
# waiting on peers (143 % CPU at -j3; 680 s against 845 s at -j2). The fuzz targets are CPU-bound.
test: debug build clang
	scripts/lint.sh
	cd build/debug && ctest --output-on-failure --timeout 600 -j3
	cd build/clang && ctest --output-on-failure -L fuzz -j2
	scripts/package-test.sh
	@if [ -x ../shared/contract-smoke.sh ]; then ../shared/contract-smoke.sh; fi

# The project's format (.clang-format) and static checks (.clang-tidy, on the clang build).
lint: deps-test clang
	scripts/lint.sh

# Every fuzz target for FUZZ_SECONDS (default 600) each, one after the other, keeping their
# corpora in build/clang/fuzz-work/.
FUZZ_SECONDS ?= 600
fuzz: clang
	@for b in build/clang/*_fuzz; do FUZZ_SEED=0 fuzz/run.sh $$b $$(basename $$b _fuzz) $(FUZZ_SECONDS) || exit 1; done

bench: build deps-test
	bench/ingest.sh
	bench/retrieve.sh
	bench/send.sh
	bench/dicomweb.sh
	bench/throttle.sh
	bench/serve.sh
	bench/find_scale.sh
	bench/scale.sh
	bench/load.sh

# An hour of the load benchmark's flood (50 associations), memory and descriptors sampled: not in CI.
soak: build deps-test
	LOAD_FLOOD_SECONDS=$${LOAD_FLOOD_SECONDS:-3600} bench/load.sh

clean:
	rm -rf build
