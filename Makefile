# make demo: set up, then run the demo (builds JPEGs from real photos, runs every backend, writes demo_out/)
# make test: set up, then run the whole test suite (CI runs this one)
# make test-fast: set up, then the inner loop: every test not marked slow (each library module still runs)
# make bench: set up, then run the benchmarks
.PHONY: demo test test-fast bench setup

setup:
	bash scripts/setup.sh dev,ffcv,dali

demo: setup
	.venv/bin/python -m ccrop_loaders.demo

test: setup
	.venv/bin/python -m pytest -q

test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow"

bench: setup
	.venv/bin/python -m benchmarks.run_all
