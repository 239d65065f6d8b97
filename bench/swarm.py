"""A swarm of simulated agents in its own process (the agents' side of bench.agents).

Reads ``<agent id> <api key>`` lines from --agents, connects them all to --url
(at most --concurrency handshakes at once), prints ``connected <n> <seconds>``,
then serves requests until its standard input closes. With --reconnect, each agent
redials with jittered backoff when its socket drops (as the Go agents do), e.g.
through a failover, moving to the next --url if several are given; --ca checks a
wss:// server's certificate.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402

from tests.simulator import Backoff, SimulatedAgent  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, action="append",
                        help="Kahuna's URL; given again, a fallback each agent dials in turn when a dial fails")
    parser.add_argument("--agents", required=True)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--reconnect", action="store_true")
    parser.add_argument("--ca", default=None)
    args = parser.parse_args()
    credentials = [line.split() for line in open(args.agents) if line.strip()]
    agents = [SimulatedAgent(args.url[0], "Kaktus", agent_id, key, ca_file=args.ca, fallback_urls=args.url[1:])
              for agent_id, key in credentials]
    pool = gevent.pool.Pool(args.concurrency)
    failures = []

    def connect(agent):
        if args.reconnect:
            agent.run(Backoff(initial=0.5, cap=5.0))
            return
        for _ in range(3):
            try:
                agent.connect(timeout=30)
                return
            except Exception as exc:  # report, retry a little
                failures.append(repr(exc))
                gevent.sleep(0.5)

    started = time.monotonic()
    pool.map(connect, agents)
    print(f"connected {sum(a.connected for a in agents)} {time.monotonic() - started:.3f} "
          f"failures {len(failures)}", flush=True)
    gevent.get_hub().threadpool.apply(sys.stdin.read)  # until the parent closes our stdin
    for agent in agents:
        agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
