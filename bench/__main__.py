"""``python -m bench [rest] [agents] [failover] [--agents N]``: run the benchmarks and print their tables."""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402

from bench import agents, production  # noqa: E402


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}\n{'-' * len(title)}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("which", nargs="*", default=["rest", "agents", "failover"],
                        choices=["rest", "agents", "failover"])
    parser.add_argument("--agents", type=int, default=1000, help="simulated agents to connect")
    parser.add_argument("--failover-agents", type=int, default=1000, help="agents connected during the failover")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    if "rest" in args.which:
        print_table("REST API (one Kahuna process, load from another, loopback)", production.rest())
    if "agents" in args.which:
        print_table(f"Agents at scale ({args.agents} simulated Kaktus agents, loopback)", agents.run(args.agents))
    if "failover" in args.which:
        print_table("Failover of the HA pair behind Caddy", production.failover(args.failover_agents))


if __name__ == "__main__":
    main()
