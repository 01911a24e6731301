# PACS Bridge: `make run` starts the server, `make test` runs every test. Both install what is
# missing (Debian packages) first.
.PHONY: deps deps-test build debug run test bench clean

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test

build: deps
	cmake --preset release >/dev/null
	cmake --build --preset release --target pacsbridge
	@ln -sf release/pacsbridge build/pacsbridge

debug: deps-test
	cmake --preset debug >/dev/null
	cmake --build --preset debug

run: build
	build/pacsbridge serve $(if $(CONFIG),--config $(CONFIG))

test: debug build
	cd build/debug && ctest --output-on-failure --timeout 600 -j2
	@if [ -x ../shared/contract-smoke.sh ]; then ../shared/contract-smoke.sh; fi

bench: build deps-test
	bench/ingest.sh

clean:
	rm -rf build
