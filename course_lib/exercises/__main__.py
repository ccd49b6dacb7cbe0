"""``python -m course_lib.exercises build [--check] [--src notebooks] [--dest notebooks/student]``"""
from __future__ import annotations

import argparse
import sys

from .builder import build, out_of_sync


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.exercises",
                                     description="Build student notebooks (solutions replaced by stubs).")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write notebooks/student/*.ipynb from notebooks/*.ipynb")
    b.add_argument("--src", default="notebooks")
    b.add_argument("--dest", default=None)
    b.add_argument("--check", action="store_true", help="only report notebooks that are out of sync")
    args = parser.parse_args(argv)
    if args.check:
        problems = out_of_sync(args.src, args.dest)
        for p in problems:
            print(p)
        if problems:
            print("run: python -m course_lib.exercises build")
        return 1 if problems else 0
    for path in build(args.src, args.dest):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
