"""Time plain Keras, tensorflow-privacy and our fast DP-SGD epochs side by side.

A thin wrapper of ``python -m dpmia_utils bench`` (see dpmia_utils/bench.py), e.g.
``python benchmarks/bench_dp.py --samples 1504 --variants 28220 --repeats 3``.
"""

from dpmia_utils.bench import main, parse_args

if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
