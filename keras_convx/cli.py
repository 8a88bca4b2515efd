"""`keras-convx` command line; a thin layer over library functions."""

import argparse
import sys


def _demo(args):
    from keras_convx.demo import run

    return run()


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-convx",
        description="Convolution layers for Keras 3 on TensorFlow, JAX and PyTorch.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build a small model from keras_convx layers and check it")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, TypeError, OSError) as exc:
        print(f"keras-convx: error: {exc}", file=sys.stderr)
        return 2
