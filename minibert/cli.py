"""The `minibert` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_autograd(args) -> int:
    from .autograd_demo import run

    run()
    return 0


def _cmd_exercises(args) -> int:
    from . import exercises as ex

    root = ex.project_root()
    if args.action == "list":
        for e in ex.find_exercises(root):
            print(f"{e.id:>5}  {e.path}:{e.begin + 1}\n       {e.hint}")
        return 0
    if args.action == "build":
        if not args.target:
            raise SystemExit("minibert exercises build: give the folder to write, e.g. DIR")
        made = ex.build(Path(args.target), root)
        print(f"Wrote a learner copy to {args.target} with {len(made)} exercises stubbed out.")
        print(f"Start with: cd {args.target} && python -m pytest --exercise {made[0].id}"
              if made else "")
        return 0
    if args.action == "check":
        if not args.target:
            raise SystemExit("minibert exercises check: give an exercise id, e.g. 6.2")
        return ex.check(args.target, root)
    ex.verify(root)  # "verify"
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minibert", description="BERT from scratch in NumPy: train, fine-tune, predict."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("autograd", help="walk through autograd on a tiny graph")
    p.set_defaults(func=_cmd_autograd)
    p = sub.add_parser("exercises", help="learner exercises: list, build DIR, check ID, verify")
    p.add_argument("action", choices=["list", "build", "check", "verify"])
    p.add_argument("target", nargs="?", help="folder for build, exercise id for check")
    p.set_defaults(func=_cmd_exercises)
    p = sub.add_parser("demo", help="the main demo")
    p.set_defaults(func=_cmd_autograd)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
