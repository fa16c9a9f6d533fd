"""`shmkit.Process`: a child process whose exception comes back on `join()`.

Children are started with the *spawn* method (a fresh interpreter, never a `fork` of this
possibly threaded process). If the target raises, the child sends the exception — and its
cause chain, each with its traceback text — to the parent before exiting; `join()` re-raises
it as the child's own exception type when it can be unpickled (with the child's traceback
as a note), or as :class:`ChildError` naming its type otherwise. A child ended by a signal
raises :class:`ChildKilled` naming the signal; one still running at the join timeout raises
:class:`ChildStillRunning`.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
import traceback
from collections.abc import Callable, Iterable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from .errors import ShmkitError

_CTX = mp.get_context("spawn")


class ChildError(ShmkitError):
    """A child's exception that could not be rebuilt here: ``type_name``, its message, and
    the child's traceback."""

    def __init__(self, message: str, type_name: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.remote_traceback = remote_traceback


class ChildKilled(ShmkitError):
    """The child was ended by a signal (``signal_name``, e.g. ``"SIGSEGV"``)."""

    def __init__(self, message: str, signal_number: int, signal_name: str) -> None:
        super().__init__(message)
        self.signal_number = signal_number
        self.signal_name = signal_name


class ChildExited(ShmkitError):
    """The child exited with a non-zero code without raising (e.g. ``sys.exit(3)``)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class ChildStillRunning(ShmkitError, TimeoutError):
    """The child was still running at the join timeout (join again, or kill it)."""


# One link of an exception chain as it travels: the encoded exception (or None), its type
# name, its message, its traceback text, and how it links to the next ("cause" / "context").
_Link = tuple[bytes | None, str, str, str, str]

#: How exceptions are encoded and decoded: full pickle between a parent and its child (a
#: private pipe); the safe codec for device replies (segment bytes).
ExceptionCodec = tuple[Callable[[BaseException], bytes], Callable[[bytes], Any]]

_PICKLE: ExceptionCodec = (pickle.dumps, pickle.loads)


def _chain(exc: BaseException, codec: ExceptionCodec = _PICKLE) -> list[_Link]:
    links: list[_Link] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    how = ""
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        data: bytes | None
        try:
            data = codec[0](cur)
            codec[1](data)
        except Exception:  # noqa: BLE001 - not rebuildable: sent by name
            data = None
        tb = "".join(traceback.format_exception(type(cur), cur, cur.__traceback__, chain=False))
        links.append((data, f"{type(cur).__module__}.{type(cur).__qualname__}", str(cur), tb, how))
        if cur.__cause__ is not None:
            cur, how = cur.__cause__, "cause"
        elif cur.__context__ is not None and not cur.__suppress_context__:
            cur, how = cur.__context__, "context"
        else:
            cur = None
    return links


def _rebuild(
    links: list[_Link], origin: str = "the child process", codec: ExceptionCodec = _PICKLE
) -> BaseException:
    built: list[tuple[BaseException, str]] = []
    if not isinstance(links, list) or not links:
        return ChildError(f"{origin} sent a malformed exception report", "unknown", "")
    for link in links:
        if not (
            isinstance(link, tuple)
            and len(link) == 5
            and (link[0] is None or isinstance(link[0], bytes))
            and all(isinstance(part, str) for part in link[1:])
        ):
            return ChildError(f"{origin} sent a malformed exception report", "unknown", "")
        data, type_name, message, tb, how = link
        exc: BaseException | None = None
        if data is not None:
            try:
                decoded = codec[1](data)
                exc = decoded if isinstance(decoded, BaseException) else None
            except Exception:  # noqa: BLE001
                exc = None
        if exc is None:
            exc = ChildError(f"{type_name}: {message}", type_name, tb)
        exc.add_note(f"Raised in {origin}:\n{tb.rstrip()}")
        built.append((exc, how))
    for (exc, _), (nxt, how) in zip(built, built[1:]):
        if how == "cause":
            exc.__cause__ = nxt
        else:
            exc.__context__ = nxt
    return built[0][0]


def _run_child(
    target: Callable[..., object],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    report: Connection,
) -> None:
    try:
        target(*args, **kwargs)
    except SystemExit:
        report.close()
        raise  # an exit code, not a failure to report
    except BaseException as exc:  # noqa: BLE001 - everything else travels to the parent
        report.send(_chain(exc))
        report.close()
        raise SystemExit(1) from None
    report.close()


class Process:
    """A child running ``target(*args, **kwargs)`` in a fresh interpreter (spawn).

    Arguments must be picklable; shmkit's segment objects pickle by (segment, name), so a
    mutex, event, barrier, dictionary or segment passed here is the same object in the child.
    """

    def __init__(
        self,
        target: Callable[..., object],
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        self._recv, send = _CTX.Pipe(duplex=False)
        self._proc = _CTX.Process(
            target=_run_child,
            args=(target, tuple(args), dict(kwargs or {}), send),
            name=name,
        )
        self._send = send
        self._joined = False

    def start(self) -> None:
        """Starts the child."""
        self._proc.start()
        self._send.close()

    @property
    def pid(self) -> int | None:
        """The child's pid (None before start)."""
        return self._proc.pid

    @property
    def name(self) -> str:
        """The child's name."""
        return self._proc.name

    def is_alive(self) -> bool:
        """Is the child still running?"""
        return self._proc.is_alive()

    def kill(self) -> None:
        """Sends SIGKILL (join still reports how it ended)."""
        self._proc.kill()

    @property
    def exitcode(self) -> int | None:
        """The exit code (negative: killed by that signal), None while it runs."""
        return self._proc.exitcode

    def join(self, timeout: float | None = None) -> None:
        """Waits for the child (at most ``timeout`` seconds) and re-raises how it failed:
        its own exception, :class:`ChildKilled`, :class:`ChildExited` — or
        :class:`ChildStillRunning` if it still runs."""
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise ChildStillRunning(
                f"child {self.name!r} (pid {self.pid}) is still running after {timeout} s"
            )
        links: list[_Link] | None = None
        if self._recv.poll():
            try:
                links = self._recv.recv()
            except EOFError:
                links = None
        code = self._proc.exitcode
        if links:
            raise _rebuild(links)
        if code < 0:
            sig = -code
            try:
                sig_name = signal.Signals(sig).name
            except ValueError:
                sig_name = f"signal {sig}"
            raise ChildKilled(
                f"child {self.name!r} (pid {self.pid}) was killed by {sig_name}", sig, sig_name
            )
        if code != 0:
            raise ChildExited(f"child {self.name!r} (pid {self.pid}) exited with code {code}", code)
