"""``python -m bench [rest] [agents] [failover] [hostile] [--agents N [N ...]] [--failover-agents N]``.

Runs the benchmarks and prints their tables."""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import typing  # noqa: E402

from bench import agents, hostile, production  # noqa: E402


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}\n{'-' * len(title)}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}", flush=True)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine weighs on every figure."""
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "unknown"


def measured(title: str, run: typing.Callable[[], list[tuple[str, str]]]) -> None:
    before = load_average()
    rows = run()
    print_table(title, [*rows, ("load average (1/5/15 min) before", before),
                        ("load average (1/5/15 min) after", load_average())])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    # No argparse choices: with nargs="*" Python 3.11 refuses the empty list that means "all".
    parser.add_argument("which", nargs="*", metavar="{rest,agents,failover,hostile}",
                        help="the benchmarks to run (all of them when none is named)")
    parser.add_argument("--agents", type=int, nargs="+", default=[1000, 10000],
                        help="simulated agents to connect (one run per count)")
    parser.add_argument("--failover-agents", type=int, default=10000, help="agents connected during the failover")
    args = parser.parse_args()
    benchmarks = ["rest", "agents", "failover", "hostile"]
    unknown = [name for name in args.which if name not in benchmarks]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(benchmarks)}")
    args.which = args.which or benchmarks
    print(f"machine: {os.cpu_count()} cores, {cpu_model()} ({platform.machine()}), "
          f"{platform.python_implementation()} {platform.python_version()}, load average {load_average()}",
          flush=True)
    if "rest" in args.which:
        measured("REST API (one Kahuna process, the load generator in another, loopback)", production.rest)
    if "agents" in args.which:
        for count in args.agents:
            measured(f"Agents at scale ({count} simulated Kaktus agents, loopback)", lambda n=count: agents.run(n))
    if "failover" in args.which:
        measured("Failover of the HA pair behind Caddy", lambda: production.failover(args.failover_agents))
    if "hostile" in args.which:
        measured("One hostile agent flooding vs the REST API (loopback, three processes)", hostile.run)


if __name__ == "__main__":
    main()
