"""Compiling a rule kernel in a child process, so that numba does not hold this one's GIL.

numba compiles mostly in Python code that holds the GIL. A definition near the language's
limits takes tens of seconds of it on a cold cache, and while a thread of a server
compiles, its event loop waits for the GIL between every step (bench/
bench_rule_compile_stall.py measures it). So `load_signal_isolated` compiles a kernel
this process has not loaded yet in a fresh interpreter (`child_command`, which runs `main`),
which fills numba's on-disk cache, and then loads it here from that cache (`load_signal`:
the same generated file `cache_dir()/rule_<digest>.py`, so the same cache index), which
takes a fraction of a second. Concurrent first uses of one definition share one child.
A kernel that a process has already loaded from the disk cache (a marker file beside it
says so) is loaded directly, without a child.

The child gets the generated source, not the user's text: the definition has already been
checked here (RuleErrors are raised before any child starts). What can still fail is the
build itself, and each way becomes a `CompileError` with a plain message: numba refusing
the code (the child reports the exception), the child crashing (its exit status or
signal), or running longer than `timeout` seconds (it is killed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numba

from stratopt.rules.codegen_numba import cache_dir, load_signal, loaded
from stratopt.rules.errors import CompileError

log = logging.getLogger(__name__)

TIMEOUT_S = 300.0
"""How long a child may compile one kernel (the largest definitions take ~40 s cold)."""

MAX_CHILDREN = max(1, (os.cpu_count() or 2) // 2)
"""Children compiling at once; the other cores stay with the process' own work."""

_slots = threading.BoundedSemaphore(MAX_CHILDREN)
_lock = threading.Lock()
_flights: dict[str, Future[Callable[..., Any]]] = {}


def load_signal_isolated(
    digest: str, source: str, *, timeout: float | None = None
) -> Callable[..., Any]:
    """`load_signal(digest, source)`, compiled in a child process first unless this process
    has loaded it already or it is known to be in numba's disk cache (`_in_disk_cache`).

    Raises CompileError if the child fails or runs longer than `timeout` (default
    `TIMEOUT_S`); callers waiting on the same digest meanwhile get the same outcome.
    """
    fn = loaded(digest)
    if fn is not None:
        return fn
    with _lock:
        flight = _flights.get(digest)
        owner = flight is None
        if flight is None:
            flight = _flights[digest] = Future()
    if not owner:
        return flight.result()
    try:
        if not _in_disk_cache(digest, source):
            build_in_child(digest, source, timeout=TIMEOUT_S if timeout is None else timeout)
        fn = load_signal(digest, source)
        _note_disk_cache(digest, source, fn)
    except BaseException as e:
        flight.set_exception(e)
        raise
    finally:
        with _lock:
            del _flights[digest]
    flight.set_result(fn)
    return fn


def _in_disk_cache(digest: str, source: str) -> bool:
    """Whether a process like this one has loaded this kernel from numba's disk cache.

    Saves starting a child (about a second) for a kernel compiled earlier on this machine.
    The marker records what numba's cache of the kernel depends on besides the cache files
    themselves; when it no longer holds (new generated code, numba or Python version, cache
    directory), a child compiles again. If the cache files were removed behind its back,
    the kernel compiles here (correct, slow, logged by `_note_disk_cache`).
    """
    try:
        return _marker(digest).read_text() == _cache_key(source)
    except OSError:
        return False


def _note_disk_cache(digest: str, source: str, fn: Callable[..., Any]) -> None:
    stats = getattr(fn, "stats", None)
    if stats is None:  # not a numba dispatcher (NUMBA_DISABLE_JIT)
        return
    if sum(stats.cache_misses.values()) or not sum(stats.cache_hits.values()):
        log.warning(
            "rule kernel %s was compiled in this process: numba's disk cache at %s was not used",
            digest,
            stats.cache_path,
        )
        return
    marker = _marker(digest)
    tmp = marker.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(_cache_key(source))
        os.replace(tmp, marker)
    except OSError:
        pass  # only costs a child on the next process' first use


def _marker(digest: str) -> Path:
    return cache_dir() / f"rule_{digest}.cached"


def _cache_key(source: str) -> str:
    key = [source, numba.__version__, sys.version, os.environ.get("NUMBA_CACHE_DIR", "")]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def child_command() -> list[str]:
    """The child's command line (tests replace it to simulate a crash or a hang)."""
    # Not `-m stratopt.rules.build`: the package imports this module first, and runpy warns.
    return [
        sys.executable,
        "-c",
        "import sys; from stratopt.rules.build import main; sys.exit(main())",
    ]


def build_in_child(digest: str, source: str, *, timeout: float) -> None:
    """Compiles `source` into numba's disk cache in a fresh interpreter; CompileError if not."""
    request = json.dumps({"digest": digest, "source": source})
    # The child must write where this process will read: a private fallback directory
    # (codegen_numba.cache_dir) exists only in this process unless it is passed on.
    env = {**os.environ, "STRATOPT_RULES_CACHE": str(cache_dir())}
    with _slots:
        try:
            done = subprocess.run(
                child_command(),
                input=request,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CompileError(
                f"compiling the strategy's kernel took longer than {timeout:.0f} s and was "
                "stopped; try again later",
                transient=True,
            ) from None
        except OSError as e:
            raise CompileError(
                f"could not start a process to compile the kernel: {e}", transient=True
            ) from e
    if done.returncode == 0:
        return
    reply = _reply(done.stdout)
    if reply is not None:
        log.warning("compiling rule kernel %s failed: %s", digest, reply)
        raise CompileError(f"compiling the strategy's kernel failed: {reply}")
    status = done.returncode
    how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
    log.warning("child compiling rule kernel %s %s; stderr: %s", digest, how, done.stderr[-2000:])
    raise CompileError(f"the process compiling the strategy's kernel {how}", transient=True)


def _reply(stdout: str) -> str | None:
    """The child's error report (its last stdout line, JSON), if it wrote one."""
    for line in reversed(stdout.splitlines()):
        try:
            reply = json.loads(line)
        except ValueError:
            continue
        if isinstance(reply, dict) and isinstance(reply.get("error"), str):
            return reply["error"]
    return None


def main() -> int:
    """Child: reads {"digest", "source"} as JSON on stdin, compiles into the disk cache.

    Exit status 0 when done; 1 with {"error": "..."} on stdout if numba refuses the code.
    """
    request = json.loads(sys.stdin.read())
    try:
        load_signal(request["digest"], request["source"])
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        print(json.dumps({"error": f"{type(e).__name__}: {first}"[:500]}), flush=True)
        return 1
    return 0
