"""What memento eviction did in a vLLM server: Prometheus counters on vLLM's ``/metrics`` and figures per response.

The scheduler (in vLLM's engine-core process) updates the figures; the API server (another process)
serves ``/metrics``. They meet through prometheus_client's multiprocess mode, which vLLM's ``/metrics``
already reads when ``PROMETHEUS_MULTIPROC_DIR`` is set (`metrics_environment`, set by `memento serve`):
each process writes its samples to files in that folder and the API process adds them up.

Per response, the figures of a finished request leave the engine core with its output
(`EngineCoreOutput.kv_transfer_params`, unused since the plugin refuses KV connectors) under
`RESPONSE_KEY`; `memento.vllm.responses` moves them into the response's ``usage``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESPONSE_KEY = "memento"
"""Key of the per-response figures: in `kv_transfer_params` inside vLLM, in ``usage`` in the HTTP response."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PREFIX = "memento-metrics-"


@dataclass
class RequestFigures:
    """One request's eviction figures (tokens and blocks are KV cache entries, counted over every layer alike).

    evictions: spans (blocks, with their delimiters as configured) removed from the KV cache;
    kv_blocks_freed: KV blocks given back to vLLM's pool;
    peak_kv_tokens: the most tokens the request held in the KV cache at the start of a step;
    peak_unmasked_kv_tokens: what it would have held at that step without eviction (its logical length).
    """

    evictions: int = 0
    kv_blocks_freed: int = 0
    peak_kv_tokens: int = 0
    peak_unmasked_kv_tokens: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class Metrics:
    """The ``memento_*`` Prometheus series, registered once per process in prometheus_client's default registry."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge

        self.evictions = Counter("memento_evictions", "Spans (memento blocks) evicted from the KV cache")
        self.evicted_tokens = Counter("memento_evicted_kv_tokens", "KV tokens removed by eviction")
        self.blocks_freed = Counter("memento_kv_blocks_freed", "KV blocks given back to vLLM's pool by eviction")
        self.requests = Counter("memento_requests_finished", "Finished requests that were masked")
        self.held = Gauge(
            "memento_kv_tokens_held",
            "KV tokens the running masked requests hold (last step)",
            multiprocess_mode="livesum",
        )
        self.unmasked = Gauge(
            "memento_kv_tokens_unmasked",
            "KV tokens the same requests would hold without eviction (last step)",
            multiprocess_mode="livesum",
        )


_metrics: Metrics | None = None


def metrics() -> Metrics:
    """This process's series (created on first use)."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


class Telemetry:
    """The scheduler's side: per-request figures and the process's counters."""

    def __init__(self) -> None:
        self.requests: dict[str, RequestFigures] = {}
        self.metrics = metrics()

    def step(self, request_id: str, held: int, unmasked: int, released: int, evicted: Iterable[Any]) -> None:
        """A masked request at the start of a step: `held` live KV tokens of `unmasked`, `released` blocks
        given back and `evicted` spans (with ``start``/``stop``) removed since its last step."""
        figures = self.requests.setdefault(request_id, RequestFigures())
        spans = list(evicted)
        figures.evictions += len(spans)
        figures.kv_blocks_freed += released
        figures.peak_kv_tokens = max(figures.peak_kv_tokens, held)
        figures.peak_unmasked_kv_tokens = max(figures.peak_unmasked_kv_tokens, unmasked)
        if spans:
            self.metrics.evictions.inc(len(spans))
            self.metrics.evicted_tokens.inc(sum(span.stop - span.start for span in spans))
        if released:
            self.metrics.blocks_freed.inc(released)

    def totals(self, held: int, unmasked: int) -> None:
        """The step's KV tokens held by all running masked requests, and their unmasked equivalent."""
        self.metrics.held.set(held)
        self.metrics.unmasked.set(unmasked)

    def finish(self, request_id: str) -> dict[str, Any] | None:
        """The figures of a finished request (None: it was not masked); forgets it."""
        figures = self.requests.pop(request_id, None)
        if figures is None:
            return None
        self.metrics.requests.inc()
        return {RESPONSE_KEY: figures.to_json()}

    def forget(self, request_ids: Iterable[str]) -> None:
        for request_id in list(request_ids):
            self.requests.pop(request_id, None)


def metrics_environment(environment: MutableMapping[str, str]) -> None:
    """Point every vLLM process at one fresh prometheus multiprocess folder (kept if the user set one).

    The folder is named after this process's id, which the server keeps (`memento serve` execs vLLM);
    folders of servers no longer running are removed here, since a replaced process cannot clean up.
    """
    if MULTIPROC_ENV in environment:
        return
    root = Path(tempfile.gettempdir())
    for stale in root.glob(f"{METRICS_PREFIX}*"):
        pid = stale.name.removeprefix(METRICS_PREFIX)
        if pid.isdigit() and not _alive(int(pid)):
            _remove(stale)
    folder = root / f"{METRICS_PREFIX}{os.getpid()}"
    _remove(folder)
    folder.mkdir()
    environment[MULTIPROC_ENV] = str(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
