"""Run one task per block on dask: the local threaded/process scheduler, or a dask.distributed cluster."""

from __future__ import annotations

import contextlib

LOCAL = ("threads", "processes", "synchronous", "sync", "single-threaded")


def check_workers(workers) -> None:
    """``workers`` is None or >= 1; blockwise entry points call it before they create any folder."""
    if workers is not None and int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")


@contextlib.contextmanager
def resolve_scheduler(scheduler=None, *, workers: int | None = None):
    """Yield ``("local", name)`` or ``("client", client)`` for ``scheduler``.

    ``None`` means the active ``dask.distributed`` client if there is one, else the local
    threaded scheduler. A string with ``://`` (or ``host:port``) is a cluster address: a client
    is connected for the run and closed afterwards.
    """
    check_workers(workers)
    if scheduler is None:
        try:
            from distributed import get_client

            yield "client", get_client()
            return
        except (ImportError, ValueError):
            scheduler = "threads"
    if isinstance(scheduler, str):
        if scheduler in LOCAL:
            yield "local", ("synchronous" if scheduler in ("sync", "single-threaded") else scheduler)
            return
        if "://" in scheduler or ":" in scheduler:
            try:
                from distributed import Client
            except ImportError:
                raise ImportError("a cluster address needs dask.distributed: pip install 'mire[distributed]'") \
                    from None
            try:
                client = Client(scheduler, set_as_default=False)  # waits distributed.comm.timeouts.connect
            except OSError as exc:
                raise ConnectionError(f"cannot reach the dask scheduler at {scheduler!r}: {exc}") from None
            try:
                yield "client", client
            finally:
                client.close()
            return
        raise ValueError(f"unknown scheduler {scheduler!r}: use one of {', '.join(LOCAL[:3])}, "
                         "a dask.distributed Client, or a scheduler address such as tcp://10.0.0.1:8786")
    if hasattr(scheduler, "submit") and hasattr(scheduler, "map"):
        yield "client", scheduler
        return
    raise TypeError(f"scheduler must be a name, an address or a dask.distributed Client, "
                    f"got {type(scheduler).__name__}")


def run_tasks(fn, items, *, scheduler=None, workers: int | None = None, progress: bool = False,
              description: str = "blocks") -> list:
    """``[fn(item) for item in items]``, one dask task per item, results in order.

    Results are kept, so ``fn`` should return something small (or None after writing its
    output itself): the memory of a run is then bounded by the tasks in flight.
    """
    items = list(items)
    with resolve_scheduler(scheduler, workers=workers) as (kind, sched):
        if kind == "client":
            return _run_on_client(sched, fn, items, progress=progress, description=description)
        import dask

        tasks = [dask.delayed(fn, pure=False)(item) for item in items]
        opts = {"scheduler": sched}
        if workers is not None and sched != "synchronous":
            opts["num_workers"] = int(workers)
        bar = contextlib.nullcontext()
        if progress:
            from dask.diagnostics import ProgressBar

            bar = ProgressBar()
        with bar, _own_thread_pool(sched, workers) as pool:
            if pool is not None:
                opts["pool"] = pool
            return list(dask.compute(*tasks, **opts))


@contextlib.contextmanager
def _own_thread_pool(sched, workers):
    """A thread pool for this run only, shut down (waiting) when the run ends.

    dask's threaded scheduler raises a task's error at once while the other threads of its
    shared pool still run their blocks; a caller that then removes a scratch folder would race
    with blocks still writing into it. Waiting for the in-flight tasks (and cancelling the queued
    ones) makes the error arrive after the last write. The process scheduler already waits.
    """
    if sched != "threads":
        yield None
        return
    import os

    try:  # dask's own pool class (it carries context variables into the tasks, as dask's default pool does)
        from dask.threaded import ContextAwareThreadPoolExecutor as ThreadPoolExecutor
    except ImportError:
        from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=int(workers) if workers is not None else (os.cpu_count() or 1))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_on_client(client, fn, items, *, progress, description):
    from distributed import as_completed

    from mire._progress import progress_bar

    futures = client.map(fn, items, pure=False)
    position = {f.key: i for i, f in enumerate(futures)}
    results = [None] * len(items)
    try:
        with progress_bar(progress, len(items), description) as bar:
            # loop=: the client may not be the default one (an address connected for this run)
            for fut, res in as_completed(futures, with_results=True, loop=client.loop):
                results[position[fut.key]] = res
                fut.release()
                bar.advance()
    except BaseException:
        client.cancel(futures)
        raise
    return results
