"""Hub-stall watchdog: how long greenlets run on the gevent hub's thread without yielding.

Every request, actor and agent connection of a Kahuna shares one thread, scheduled
cooperatively: while one greenlet computes without yielding, nothing else runs, not
even ``/healthz`` or the agents' pings. A *stretch* is the time between two greenlet
switches, charged to the greenlet that ran during it; a *stall* is a stretch longer
than the threshold (``global.watchdog.thresholdMs``, 10 ms by default).

Stretches are measured in **CPU time of the hub's thread** (``time.thread_time``)
by a ``greenlet.settrace`` hook called at every switch. A stretch is therefore the work
done without yielding, whatever the machine is doing: time the process spends
descheduled on a busy host, or waiting for the GIL while the thread pool runs
(bcrypt, cloud-init ISOs: see :func:`off_hub`), is not counted. A wall-clock
watchdog (gevent's monitor thread) would report those as stalls.

Garbage collections of the older generations on the hub's thread are timed as well
(``gc.callbacks``): a full collection of a large heap takes tens of ms and lands in
whichever greenlet happened to allocate, so a stall tells how much of it was
collecting garbage.

Cost: a read of the wall clock (vDSO) and a few bytecodes per switch, about 0.3 us
(a simple request switches about 14 times: ~0.5% of its CPU). The thread's CPU clock
is a system call, read only when a stretch lasted 1 ms of wall time or 0.5 ms passed
since it was last read; a stretch is thus measured over by less than 0.5 ms, never
under. Stretches shorter than 1 ms are not recorded at all; longer ones go to a histogram,
and stalls are counted, remembered (the last :data:`RECENT`) and logged by a
reporter greenlet once a second with where the greenlet stood when it finally yielded.

Metrics (``/metrics``): ``kahuna_hub_stalls_total``, ``kahuna_hub_stretch_seconds``
(histogram of stretches of 1 ms or more), ``kahuna_hub_stretch_max_seconds``,
``kahuna_hub_stall_threshold_seconds``.
"""

from __future__ import annotations

import bisect
import collections
import gc
import logging
import sys
import time
import typing
import weakref
from dataclasses import dataclass
from pathlib import Path

import gevent
import gevent.monkey
import greenlet
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

log = logging.getLogger("kahuna.watchdog")

#: Upper bounds (seconds) of the stretch histogram; shorter stretches than the first are not recorded.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RECORDED_FROM = BUCKETS[0]
#: Wall time after which the CPU clock is read again at a switch: the precision of a stretch (see _Tracer).
ANCHOR_EVERY = 0.0005
#: How many stalls a watchdog remembers (:attr:`HubWatchdog.recent`).
RECENT = 100
#: Seconds between two reports of stalls in the log, and most stalls logged per report.
REPORT_INTERVAL = 1.0
REPORTED_PER_INTERVAL = 10

_ROOT = str(Path(__file__).resolve().parent.parent) + "/"


def off_hub(function: typing.Callable[..., typing.Any], *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
    """``function(*args, **kwargs)`` run on the hub's thread pool: the calling greenlet waits, the hub goes
    on serving the others. For CPU-heavy work that releases the GIL (bcrypt) or that is pure Python (the
    hub then gets the GIL back at least every switch interval, 5 ms). The work should not wait on gevent
    objects (it runs outside the hub's thread)."""
    return gevent.get_hub().threadpool.apply(function, args, kwargs)


@dataclass(frozen=True)
class Stall:
    """A stretch over the threshold: *seconds* of CPU in *greenlet*, which yielded at *where*."""

    seconds: float
    greenlet: str
    where: str
    at: float  # time.time() when it ended
    origin: typing.Any = None  # a weak reference to the greenlet, or None
    gc_seconds: float = 0.0  # how much of it was garbage collection (triggered by, not done by, the greenlet)

    def __str__(self) -> str:
        collected = f" ({self.gc_seconds * 1000:.1f} ms of it collecting garbage)" if self.gc_seconds >= 0.0005 else ""
        return (f"{self.seconds * 1000:.1f} ms of CPU without yielding{collected} in {self.greenlet}, "
                f"which yielded at {self.where}")


class _Tracer:
    """The ``greenlet.settrace`` hook of one hub's thread, shared by the watchdogs of that thread.

    Garbage collections on that thread are timed too (``gc.callbacks``): a full collection of a big heap
    (tens of ms) is charged to whichever greenlet allocated at the wrong time, so each stall says how much of
    it was collecting garbage (:attr:`Stall.gc_seconds`).
    """

    def __init__(self) -> None:
        self.watchdogs: list[HubWatchdog] = []
        self.trace: typing.Callable[[str, tuple], None] | None = None
        self.on_gc: typing.Callable[[str, dict], None] | None = None
        self.previous: typing.Any = None

    def add(self, watchdog: HubWatchdog) -> None:
        if not self.watchdogs:
            self._install()
        self.watchdogs.append(watchdog)

    def remove(self, watchdog: HubWatchdog) -> None:
        if watchdog in self.watchdogs:
            self.watchdogs.remove(watchdog)
        if self.watchdogs or self.trace is None:
            return
        if self.on_gc in gc.callbacks:
            gc.callbacks.remove(self.on_gc)
        self.on_gc = None
        if greenlet.gettrace() is self.trace:
            greenlet.settrace(self.previous)
            self.trace, self.previous = None, None
        # Else someone installed a hook over ours and calls ours: it stays, recording for nobody.

    def _install(self) -> None:
        if self.trace is not None:
            return
        watchdogs = self.watchdogs
        cpu_clock, wall_clock = time.thread_time, time.perf_counter
        # The CPU clock is a system call (~0.5 us), the wall clock is not (~0.05 us): the CPU clock is read
        # only at the end of a stretch that lasted RECORDED_FROM of wall time (it cannot have used more CPU
        # than that otherwise), and at least every ANCHOR_EVERY of wall time to have a recent start. A stretch
        # is measured from the last reading, at most ANCHOR_EVERY of wall time before it began: it is over by
        # less than ANCHOR_EVERY, never under.
        wall_at_switch = wall_anchor = wall_clock()
        cpu_anchor = cpu_clock()
        # CPU seconds of garbage collection on this thread: in all, when the running one began, at the last switch.
        collecting = collecting_since = collected_at_switch = 0.0
        get_ident = gevent.monkey.get_original("_thread", "get_ident")
        thread = get_ident()

        def on_gc(phase: str, info: dict) -> None:
            nonlocal collecting, collecting_since
            # The youngest generation's collections are short and frequent: not timed. A collection on a
            # pool's thread does not hold the hub.
            if info["generation"] and get_ident() == thread:
                if phase == "start":
                    collecting_since = cpu_clock()
                else:
                    collecting += cpu_clock() - collecting_since

        def trace(event: str, args: tuple, previous: typing.Any = None) -> None:
            nonlocal wall_at_switch, wall_anchor, cpu_anchor, collected_at_switch
            now = wall_clock()
            if now - wall_at_switch >= RECORDED_FROM:
                cpu = cpu_clock()
                stretch = cpu - cpu_anchor
                if stretch >= RECORDED_FROM:
                    for watchdog in watchdogs:
                        watchdog.observe(stretch, args[0], collecting - collected_at_switch)
                cpu_anchor, wall_anchor = cpu, now
            elif now - wall_anchor >= ANCHOR_EVERY:
                cpu_anchor, wall_anchor = cpu_clock(), now
            wall_at_switch = now
            collected_at_switch = collecting
            if previous is not None:
                previous(event, args)

        self.previous = greenlet.gettrace()
        if self.previous is not None:
            previous = self.previous
            self.trace = lambda event, args: trace(event, args, previous)
        else:
            self.trace = trace
        self.on_gc = on_gc
        gc.callbacks.append(on_gc)
        greenlet.settrace(self.trace)


#: One tracer per hub (a hub per thread); greenlet.settrace is per thread too.
_tracers: weakref.WeakKeyDictionary[typing.Any, _Tracer] = weakref.WeakKeyDictionary()


class HubWatchdog:
    """Records the stretches of the calling thread's hub while started; see the module's documentation."""

    def __init__(self, threshold_seconds: float = 0.010, report: bool = True):
        """*report*: log the stalls (once a second); else only count and remember them."""
        if threshold_seconds <= 0:
            raise ValueError("the stall threshold must be more than 0")
        self.threshold = threshold_seconds
        self.report = report
        self.stalls_total = 0
        self.max_seconds = 0.0
        self.recent: collections.deque[Stall] = collections.deque(maxlen=RECENT)
        self._buckets = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0
        self._unreported: collections.deque[Stall] = collections.deque(maxlen=RECENT)
        self._tracer: _Tracer | None = None
        self._reporter: gevent.Greenlet | None = None

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> HubWatchdog:
        """Watch the hub of the calling thread (call it in the thread that serves)."""
        if self._tracer is None:
            hub = gevent.get_hub()
            self._tracer = _tracers.get(hub)
            if self._tracer is None:
                self._tracer = _tracers[hub] = _Tracer()
            self._tracer.add(self)
            if self.report:
                self._reporter = gevent.spawn(self._report_forever)
        return self

    def stop(self) -> None:
        if self._tracer is not None:
            self._tracer.remove(self)
            self._tracer = None
        if self._reporter is not None:
            self._reporter.kill(block=False)
            self._reporter = None
            self._report()

    def __enter__(self) -> HubWatchdog:
        return self.start()

    def __exit__(self, *exc_info: typing.Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._tracer is not None

    # -- recording (in the trace hook: no switch, no lock, no I/O) -------------------

    def observe(self, seconds: float, origin: typing.Any, gc_seconds: float = 0.0) -> None:
        self._buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sum += seconds
        if seconds > self.max_seconds:
            self.max_seconds = seconds
        if seconds >= self.threshold:
            self.stalls_total += 1
            try:
                reference = weakref.ref(origin)
            except TypeError:
                reference = None
            stall = Stall(seconds, describe_greenlet(origin), where(origin), time.time(), reference, gc_seconds)
            self.recent.append(stall)
            if self.report:
                self._unreported.append(stall)

    # -- reading ----------------------------------------------------------------------

    def stalls(self, since: float = 0.0, exclude: typing.Iterable[typing.Any] = ()) -> list[Stall]:
        """The remembered stalls that ended after *since* (a ``time.time()``), except those of the greenlets
        *exclude* (e.g. a test's own greenlet, which is not part of the server)."""
        excluded = [weakref.ref(g) for g in exclude]
        return [stall for stall in list(self.recent)
                if stall.at > since and not (stall.origin is not None and stall.origin in excluded)]

    def collect(self) -> typing.Iterator[typing.Any]:
        """Prometheus metric families (the watchdog is a collector of a registry)."""
        stalls = CounterMetricFamily("kahuna_hub_stalls",
                                     "Stretches of CPU work on the gevent hub's thread without yielding that "
                                     "exceeded the threshold.")
        stalls.add_metric([], self.stalls_total)
        yield stalls
        cumulative, buckets = 0, []
        for bound, count in zip((*(str(b) for b in BUCKETS), "+Inf"), list(self._buckets), strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        histogram = HistogramMetricFamily("kahuna_hub_stretch_seconds",
                                          "CPU time greenlets ran on the hub's thread between two switches "
                                          f"(stretches shorter than {RECORDED_FROM * 1000:g} ms are not recorded).")
        histogram.add_metric([], buckets, sum_value=self._sum)
        yield histogram
        yield GaugeMetricFamily("kahuna_hub_stretch_max_seconds", "Longest stretch of CPU work without yielding.",
                                value=self.max_seconds)
        yield GaugeMetricFamily("kahuna_hub_stall_threshold_seconds", "Stretches longer than this are stalls.",
                                value=self.threshold)

    def describe(self) -> list:
        return []

    # -- reporting ---------------------------------------------------------------------

    def _report_forever(self) -> None:
        while True:
            gevent.sleep(REPORT_INTERVAL)
            self._report()

    def _report(self) -> None:
        logged = 0
        while self._unreported:
            stall = self._unreported.popleft()
            if logged < REPORTED_PER_INTERVAL:
                log.warning("hub stall: %s", stall)
                logged += 1
            else:
                skipped = 1 + len(self._unreported)
                self._unreported.clear()
                log.warning("hub stall: %d more stall(s) in the last %g s not logged", skipped, REPORT_INTERVAL)


def describe_greenlet(origin: typing.Any) -> str:
    """A short name for a greenlet: the hub, a gevent greenlet's name and function, or its type."""
    if isinstance(origin, gevent.hub.Hub):
        return "the hub"
    if isinstance(origin, gevent.Greenlet):
        name, run = origin.name, getattr(origin, "_run", None)
        if getattr(run, "__self__", None) is origin:  # a subclass's run(), or a greenlet that ended
            return f"{name} ({type(origin).__name__})"
        function = getattr(run, "__qualname__", None) or type(run).__name__
        return f"{name} ({function})"
    if getattr(origin, "parent", 0) is None:
        return "the main greenlet"
    return type(origin).__name__


def where(origin: typing.Any, depth: int = 3) -> str:
    """Where *origin* stands: the innermost frames of Kahuna's own code (not libraries), innermost first, or
    else the innermost frame outside gevent."""
    frame = getattr(origin, "gr_frame", None)
    if frame is None and origin is greenlet.getcurrent():
        frame = sys._getframe(1)
    found: list[str] = []
    fallback = ""
    while frame is not None and len(found) < depth:
        filename = frame.f_code.co_filename
        place = f"{frame.f_lineno} ({frame.f_code.co_name})"
        if filename.startswith(_ROOT) and "/site-packages/" not in filename:
            found.append(f"{filename[len(_ROOT):]}:{place}")
        elif not fallback and "/gevent/" not in filename:
            fallback = f"{filename}:{place}"
        frame = frame.f_back
    return " < ".join(found) or fallback or "an unknown place (the greenlet ended)"
