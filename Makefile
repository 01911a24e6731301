# PACS Bridge: `make run` starts the server, `make test` runs every test. Both install what is
# missing (Debian packages) first.
.PHONY: deps deps-test build debug clang run test bench clean

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

# The code must build warning-free with clang 14 too (it finds what g++ does not).
clang: deps
	cmake --preset clang >/dev/null
	cmake --build --preset clang

run: build
	build/pacsbridge serve $(if $(CONFIG),--config $(CONFIG))

test: debug build clang
	cd build/debug && ctest --output-on-failure --timeout 600 -j2
	@if [ -x ../shared/contract-smoke.sh ]; then ../shared/contract-smoke.sh; fi

bench: build deps-test
	bench/ingest.sh
	bench/retrieve.sh
	bench/send.sh
	bench/dicomweb.sh
	bench/throttle.sh

clean:
	rm -rf build
