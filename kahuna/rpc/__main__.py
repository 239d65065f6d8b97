"""``python -m kahuna.rpc``: the agents' RPC catalog as a Markdown table (README.md's "Agents" section).

``python -m kahuna.rpc --write README.md`` replaces the table between the README's markers.
"""

import argparse
import pathlib
import sys

from kahuna import rpc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kahuna.rpc", description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="README", type=pathlib.Path,
                        help="replace the table between the rpc-catalog markers of this file instead of printing it")
    args = parser.parse_args(argv)
    if args.write is None:
        sys.stdout.write(rpc.catalog_table())
        return 0
    readme = args.write.read_text(encoding="utf-8")
    updated = rpc.with_catalog_table(readme)
    if updated != readme:
        args.write.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
