"""``python -m course_lib.exercises build|publish``: repository tools (run them in a clone of the course).

``build [--check] [--src notebooks] [--dest notebooks/student]`` writes the student notebooks;
``publish [--repo URL] [--branch B] [--check]`` sets the repository every notebook installs from and links to.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .builder import build, out_of_sync
from .publish import Setting, publish, read_setting


def _publish(args) -> int:
    if args.repo:
        setting = Setting(args.repo, args.branch or "main")
    else:
        setting = read_setting(Path("."))
        if args.branch:
            setting = Setting(setting.repository, args.branch)
    changed = publish(Path("."), setting, check=args.check)  # --check compares, never writes
    for path in changed:
        print(f"{'disagrees with the setting' if args.check else 'rewrote'}: {path}")
    if args.check and changed:
        print(f"run: make publish REPO={setting.repository}")
    elif not args.check:
        print(f"notebooks and README link to {setting.repository} (branch {setting.branch})")
    return 1 if args.check and changed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.exercises",
                                     description="Repository tools: student notebooks and the repository setting.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write notebooks/student/*.ipynb from notebooks/*.ipynb")
    b.add_argument("--src", default="notebooks")
    b.add_argument("--dest", default=None)
    b.add_argument("--check", action="store_true", help="only report notebooks that are out of sync")
    p = sub.add_parser("publish", help="set the course repository in pyproject.toml, every notebook and the README")
    p.add_argument("--repo", default=None, help="https://github.com/USER/NAME (default: pyproject's [tool.course])")
    p.add_argument("--branch", default=None, help="branch the notebooks install from and link to (default: main)")
    p.add_argument("--check", action="store_true", help="only list the files that disagree with the setting")
    args = parser.parse_args(argv)
    try:
        if args.command == "publish":
            return _publish(args)
        if not Path(args.src).is_dir():
            print(f"error: no notebook folder {args.src!r} here: building student notebooks is a repository tool, "
                  "run it in a clone of the course (or pass --src)", file=sys.stderr)
            return 2
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
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
