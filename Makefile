# make demo: set up, then run the demo (builds JPEGs from real photos, runs every backend, writes demo_out/)
# make test: set up, then run the whole test suite
# make bench: set up, then run the benchmarks
.PHONY: demo test bench setup

setup:
	bash scripts/setup.sh dev,ffcv,dali

demo: setup
	.venv/bin/python -m ccrop_loaders.demo

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python -m benchmarks.run_all
