"""The `minibert` command line."""

from __future__ import annotations

import argparse
import sys


def _cmd_autograd(args) -> int:
    from .autograd_demo import run

    run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minibert", description="BERT from scratch in NumPy: train, fine-tune, predict."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("autograd", help="walk through autograd on a tiny graph")
    p.set_defaults(func=_cmd_autograd)
    p = sub.add_parser("demo", help="the main demo")
    p.set_defaults(func=_cmd_autograd)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
