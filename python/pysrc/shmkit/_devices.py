"""Devices: hardware (or simulations) each served in its own process, shared by every process.

A device is a class with ``open()``, ``close()`` (its safe state) and methods::

    class Mirror(shmkit.Device):
        def __init__(self, actuators: int = 12) -> None:
            self.actuators = actuators
        def open(self) -> None: ...            # connect to the hardware
        def close(self) -> None: ...           # safe state, release
        def set(self, values): ...             # arguments and result: see "Messages"

and a testbed lists its devices once::

    class Devices(shmkit.DeviceEnum):
        DM = (Mirror, {"actuators": 12})
        CAMERA = (shmkit.SimCamera, {"rate_hz": 1000.0})

    Devices.DM.set(np.zeros(144))   # opened on first use by any process, then reused
    with Devices.DM:                # the device's robust mutex: a wider critical section
        ...

Underneath is the Rust device stack: the first access (in any process) starts the device's
server — a Python interpreter running the core's server loop — exactly once; the server
publishes a status record and a heartbeat, and closes the device on request, on SIGTERM, when
its owner (the testbed, or the process that started it) dies, or when the device asks for its
fail-safe state. A call holds the device's mutex (re-entrantly, so ``with Devices.DM:`` around
several calls is one critical section). A method that raises raises the same exception in the
caller, with the server's traceback as a note.

Frame rings: a device class lists ``frame_rings = {"frames": ((480, 640), "uint16", 8)}``; the
server creates ``dev/NAME/frames``, and the device finds its writers in ``self.frames``
(``self.frames["frames"].write(array)`` or ``claim()``); clients read them with
``Devices.CAMERA.frames("frames")``.

Messages: a call's arguments and its result travel through the segment encoded with shmkit's
safe codec (`shmkit._codec`: containers, scalars, numpy arrays and scalars, datetimes) plus
the classes the device lists in ``message_types``; the server decodes nothing else, so bytes
written into the segment by anyone cannot run code in the server or in a client — a refused
request is a :class:`~shmkit.errors.PayloadError` raised in the caller, and the server keeps
serving. An encoded call or reply is at most 64 KiB: a larger call is refused before it is
sent (:class:`~shmkit.errors.RequestTooLarge`); a larger reply is dropped after the method
ran (:class:`~shmkit.errors.ReplyTooLarge`, so it is not blindly retried). Large arrays go
through the device's frame rings.
"""

from __future__ import annotations

import enum
import importlib
import multiprocessing.spawn
import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar

from . import _codec, _process
from .errors import DeviceClosed, DeviceCrashed, DeviceFailSafe, PayloadError
from ._shmkit import (
    Cause,
    Frame,
    FrameReader,
    FrameWriter,
    Mutex,
    Segment,
    SimCameraClient,
    SimDmClient,
    _DeviceCache,
    _DeviceClient,
    run_child,
)

#: The environment variable that names the testbed's segment for child processes.
SEGMENT_ENV = "SHMKIT_SEGMENT"


class Device:
    """Base class of a Python device (see the module documentation).

    The server builds it as ``cls(**config)``, sets ``self.frames`` (the writers of the frame
    rings the class lists) and ``self.name``, then calls ``open()``. ``poll()``, if it returns
    a number of seconds, is called again after that long (background work such as a camera's
    acquisition); ``request_fail_safe(reason)`` inside a method makes the server close the
    device and refuse further commands.
    """

    #: Frame rings the device writes: ``{suffix: (shape, dtype, slots)}``.
    frame_rings: ClassVar[dict[str, tuple[tuple[int, ...], str, int]]] = {}
    #: Classes (beyond the safe codec's containers, scalars, numpy values and datetimes) that
    #: the device's configuration, calls, results and exceptions may hold.
    message_types: ClassVar[tuple[type, ...]] = ()
    frames: dict[str, FrameWriter]
    name: str
    _fail_safe: str | None = None

    def open(self) -> None:
        """Connects to the hardware."""

    def close(self) -> None:
        """Puts the hardware in its safe state and releases it. Runs on every way out of the
        server but SIGKILL."""

    def poll(self) -> float | None:
        """Background work; returns seconds until the next call, or None to wait for a command."""
        return None

    def request_fail_safe(self, reason: str) -> None:
        """Asks the server to close the device after this command and refuse later ones."""
        self._fail_safe = reason


class SimCamera:
    """The built-in simulated Shack-Hartmann camera (a Rust device), for `DeviceEnum`s:
    ``CAMERA = (shmkit.SimCamera, {"rate_hz": 1000.0, "dm": "DM"})``. Settings:
    ``subapertures``, ``pixels``, ``rate_hz``, ``slots``, ``gain``, ``dm``, ``dm_actuators``,
    ``realtime`` (a SCHED_FIFO priority for its acquisition thread, or None), and ``ao``: None
    for the toy fixed-aberration sensor, True for the physical bench (turbulence, optics,
    photon and read noise; the residual and the simulated time in user words 3 and 4), or a
    dict of its fields over their defaults (``diameter``, ``obstruction``, ``r0``, ``seed``,
    ``photons``, ``layers=[{"fraction", "speed", "direction_deg"}]``, …)."""


class SimDm:
    """The built-in simulated deformable mirror (a Rust device), for `DeviceEnum`s."""


# ----------------------------------------------------------------- server side (in the server)


def _open_device(factory: bytes, name: str, segment: str, frames: dict[str, FrameWriter]) -> Device:
    # The factory is segment bytes: decoded with the safe codec, and the class is looked up
    # by name and must be a Device (see `DeviceCache._client`).
    preparation, module, qualname, config_bytes = _codec.loads(factory)
    # As multiprocessing's spawn does: the parent's sys.path and main module, so a device
    # class defined in a script is found here.
    multiprocessing.spawn.prepare(preparation)
    cls = _device_class(module, qualname)
    config = _codec.loads(config_bytes, allow=cls.message_types)
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise PayloadError(f"a device configuration is a dict of str keys, not {type(config)}")
    device: Device = cls(**config)
    device.frames = frames
    device.name = name
    os.environ[SEGMENT_ENV] = segment
    device.open()
    return device


def _device_class(module: str, qualname: str) -> type[Device]:
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise PayloadError("a device factory names its class by module and qualified name")
    found: object = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, Device)):
        raise PayloadError(f"{module}.{qualname} is not a shmkit.Device subclass")
    return found


def _handle(device: Device, request: bytes) -> tuple[bytes, str | None]:
    allow = type(device).message_types
    try:
        call = _codec.loads(request, allow=allow)
        if not (
            isinstance(call, tuple)
            and len(call) == 3
            and isinstance(call[0], str)
            and isinstance(call[1], tuple)
            and isinstance(call[2], dict)
            and all(isinstance(k, str) for k in call[2])
        ):
            raise PayloadError("a device request is (method, args tuple, kwargs dict)")
        method, args, kwargs = call
        if method.startswith("_") or method in ("open", "close", "poll"):
            raise AttributeError(f"{type(device).__name__}.{method} is not a device command")
        result = getattr(device, method)(*args, **kwargs)
        try:
            reply = _codec.dumps((True, result), allow=allow)
        except TypeError as exc:
            raise TypeError(f"the result of {method}() cannot be sent back: {exc}") from None
    except BaseException as exc:  # noqa: BLE001 - every failure travels to the caller
        reply = _codec.dumps((False, _process._chain(exc, _exception_codec(allow))))
    reason, device._fail_safe = device._fail_safe, None
    return reply, reason


def _exception_codec(allow: tuple[type, ...]) -> _process.ExceptionCodec:
    """How a device's exceptions travel: the safe codec with exceptions allowed."""
    return (
        lambda exc: _codec.dumps(exc, allow=allow, exceptions=True),
        lambda data: _codec.loads(data, allow=allow, exceptions=True),
    )


def _poll(device: Device) -> float | None:
    return device.poll()


def _close(device: Device) -> None:
    device.close()


def _serve() -> None:
    """The device server's main (``python -c "from shmkit._devices import _serve; _serve()"``)."""
    sys.exit(run_child())


# ----------------------------------------------------------------- client side


class DeviceProxy:
    """A client of one device: attribute access is a method call in the device's server."""

    def __init__(
        self,
        name: str,
        client: Any,
        mutex: Mutex,
        lost: Callable[[], None] | None = None,
        message_types: tuple[type, ...] = (),
    ) -> None:
        self._name = name
        self._client = client
        self._mutex = mutex
        self._lost = lost
        self._allow = message_types

    @property
    def name(self) -> str:
        """The device's name."""
        return self._name

    @property
    def mutex(self) -> Mutex:
        """The device's robust mutex (what ``with proxy:`` holds)."""
        return self._mutex

    @property
    def client(self) -> Any:
        """The underlying client: `SimCameraClient`, `SimDmClient`, or the pickled-call client
        of a Python device."""
        return self._client

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        client = self._client
        lost = self._lost
        if not isinstance(client, _DeviceClient):
            bound: Callable[..., Any] = getattr(client, method)

            def rust_call(*args: Any, **kwargs: Any) -> Any:
                try:
                    return bound(*args, **kwargs)
                except (DeviceCrashed, DeviceClosed, DeviceFailSafe):
                    if lost is not None:
                        lost()  # the next access starts it again if the policy says so
                    raise

            rust_call.__name__ = method
            return rust_call

        allow = self._allow

        def call(*args: Any, **kwargs: Any) -> Any:
            request = _codec.dumps((method, args, kwargs), allow=allow)
            try:
                answer = client.call(request)
            except (DeviceCrashed, DeviceClosed, DeviceFailSafe):
                if lost is not None:
                    lost()
                raise
            outcome = _codec.loads(answer, allow=allow)
            if not (isinstance(outcome, tuple) and len(outcome) == 2):
                raise PayloadError(f"device {self._name!r} sent a reply of the wrong shape")
            ok, value = outcome
            if ok:
                return value
            raise _process._rebuild(value, f"device {self._name!r}", _exception_codec(allow))

        call.__name__ = method
        return call

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Calls the device's method ``method`` — also one whose name a proxy or an enum
        member uses itself (``name``, ``value``, ``status``, ``frames``, ``call``…)."""
        if method.startswith("_"):
            raise AttributeError(method)
        return self.__getattr__(method)(*args, **kwargs)

    @property
    def commands(self) -> _Commands:
        """The device's methods as attributes, without the proxy's own names in the way:
        ``proxy.commands.name()`` calls the device's ``name``."""
        return _Commands(self)

    def frames(
        self, suffix: str = "frames", mode: str = "newest", wait: str = "spin_then_block"
    ) -> FrameReader:
        """A reader of the device's frame ring ``suffix`` (``mode`` "newest" or "oldest")."""
        reader: FrameReader = self._client.frames(suffix, mode, wait)
        return reader

    def caused(self, cause: Cause | Frame) -> DeviceProxy:
        """This proxy with every call carrying ``cause``: the frame the commands are computed
        from (a `Frame` — its id, publish time and when it was read — or a `Cause`). The
        device's server then records the loop's stages in shared histograms
        ``dev/NAME/latency/{publish-to-held,held-to-sent,sent-to-applied,publish-to-applied}``
        and the frame id in its trace span::

            frame = camera.next()
            Devices.DM.caused(frame).set(controller(frame.array))

        The frame itself is not kept (its slot is not held longer)."""
        return DeviceProxy(
            self._name, self._client.caused(cause), self._mutex, self._lost, self._allow
        )

    def status(self) -> dict[str, Any]:
        """The device's status: state, pid, starts, heartbeat_age, message."""
        status: dict[str, Any] = self._client.status()
        return status

    def __enter__(self) -> DeviceProxy:
        self._mutex.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._mutex.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"<shmkit.DeviceProxy {self._name!r}>"


def _rings(cls: type) -> list[tuple[str, int, str, list[int]]]:
    import numpy as np

    rings = []
    for suffix, (shape, dtype, slots) in getattr(cls, "frame_rings", {}).items():
        rings.append((suffix, int(slots), np.dtype(dtype).name, [int(n) for n in shape]))
    return rings


class _Commands:
    """A proxy's methods by attribute, every attribute a device call (see
    `DeviceProxy.commands`)."""

    def __init__(self, proxy: DeviceProxy) -> None:
        self._proxy = proxy

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        proxy = self._proxy

        def command(*args: Any, **kwargs: Any) -> Any:
            return proxy.call(method, *args, **kwargs)

        command.__name__ = method
        return command

    def __repr__(self) -> str:
        return f"<commands of {self._proxy!r}>"


class DeviceCache:
    """Starts each device's server once (in any process) and hands out proxies.

    ``restart="on_access"`` starts a crashed device's server again on its next use
    (``"never"``, the default, raises :class:`~shmkit.errors.DeviceCrashed`). A call waits at
    most ``call_timeout`` seconds (for the device's mutex and for the answer each; default 60,
    the Python system's lock timeout) and Ctrl+C ends the wait.
    """

    def __init__(
        self,
        segment: Segment,
        restart: str = "never",
        start_timeout: float = 10.0,
        call_timeout: float = 60.0,
    ) -> None:
        self.segment = segment
        self._cache = _DeviceCache(
            segment,
            sys.executable,
            ["-c", "from shmkit._devices import _serve; _serve()"],
            restart,
            start_timeout,
            call_timeout,
        )
        self._proxies: dict[str, DeviceProxy] = {}

    def own(self) -> None:
        """Makes this process every device's owner: servers close their device when it dies."""
        self._cache.own()

    def get(self, name: str, kind: type, config: dict[str, Any] | None = None) -> DeviceProxy:
        """The proxy of device ``name`` of class ``kind`` (a `Device` subclass, `SimCamera` or
        `SimDm`), starting its server with ``config`` if none runs."""
        proxy = self._proxies.get(name)
        if proxy is not None:
            return proxy
        client = self._client(name, kind, config or {}, False)
        proxy = DeviceProxy(
            name, client, self._mutex(name), lambda: self._forget(name), _message_types(kind)
        )
        self._proxies[name] = proxy
        return proxy

    def _forget(self, name: str) -> None:
        self._proxies.pop(name, None)

    def restart(self, name: str, kind: type, config: dict[str, Any] | None = None) -> DeviceProxy:
        """Starts device ``name`` again after a crash or a close (a running one is reused)."""
        client = self._client(name, kind, config or {}, True)
        proxy = DeviceProxy(
            name, client, self._mutex(name), lambda: self._forget(name), _message_types(kind)
        )
        self._proxies[name] = proxy
        return proxy

    def status(self, name: str) -> dict[str, Any]:
        """The status of device ``name``."""
        status: dict[str, Any] = self._cache.status(name)
        return status

    def close(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        """Closes device ``name`` safely — whoever holds its mutex — and returns its status."""
        self._proxies.pop(name, None)
        status: dict[str, Any] = self._cache.close(name, timeout)
        return status

    def _mutex(self, name: str) -> Mutex:
        return self.segment.mutex(f"dev/{name}/lock")

    def _client(self, name: str, kind: type, config: dict[str, Any], restart: bool) -> Any:
        if kind is SimCamera:
            return self._cache.sim_camera(name, config, restart)
        if kind is SimDm:
            return self._cache.sim_dm(name, config, restart)
        if not (isinstance(kind, type) and issubclass(kind, Device)):
            raise TypeError(f"{kind!r} is not a shmkit.Device subclass, SimCamera or SimDm")
        preparation = multiprocessing.spawn.get_preparation_data(f"device {name}")
        preparation.pop("authkey", None)  # not picklable, and the server needs none
        config_bytes = _codec.dumps(config, allow=kind.message_types)
        factory = _codec.dumps((preparation, kind.__module__, kind.__qualname__, config_bytes))
        return self._cache.python(name, factory, _rings(kind), restart)


def _message_types(kind: type) -> tuple[type, ...]:
    types: tuple[type, ...] = getattr(kind, "message_types", ())
    return types


_caches: dict[str, DeviceCache] = {}


def use_segment(segment: Segment, restart: str = "never") -> DeviceCache:
    """Makes ``segment`` the one `DeviceEnum` members use in this process and the child
    processes it starts (through the ``SHMKIT_SEGMENT`` environment variable)."""
    os.environ[SEGMENT_ENV] = segment.name
    cache = DeviceCache(segment, restart)
    _caches[segment.name] = cache
    return cache


def forget_segment(name: str) -> None:
    """Stops using segment ``name`` in this process (its testbed closed it)."""
    _caches.pop(name, None)
    if os.environ.get(SEGMENT_ENV) == name:
        del os.environ[SEGMENT_ENV]


def current_cache() -> DeviceCache:
    """The device cache of this process's testbed segment (see `use_segment`)."""
    name = os.environ.get(SEGMENT_ENV)
    if not name:
        raise RuntimeError(
            "no testbed segment: call shmkit.use_segment(seg) (a Testbed does) before using devices"
        )
    cache = _caches.get(name)
    if cache is None:
        cache = _caches[name] = DeviceCache(Segment.open(name))
    return cache


class DeviceEnum(enum.Enum):
    """The enum API: each member is ``NAME = (device class, config dict)`` (or just the class,
    for its default configuration); attribute access
    on a member calls the device (``Devices.DM.set(...)``), ``with Devices.DM:`` holds its
    mutex. Members use the process's testbed segment (`use_segment`)."""

    def _proxy(self) -> DeviceProxy:
        value = self.value
        kind, config = (value, {}) if isinstance(value, type) else value
        return current_cache().get(self.name, kind, dict(config))

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self._proxy(), attr)

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Calls the device's method ``method``, whatever its name: ``Devices.DM.name`` is
        the member's name (an enum's), ``Devices.DM.call("name")`` the device's method."""
        return self._proxy().call(method, *args, **kwargs)

    @property
    def commands(self) -> _Commands:
        """The device's methods as attributes: ``Devices.DM.commands.value()`` calls the
        device's ``value`` (``Devices.DM.value`` is the enum member's value)."""
        return self._proxy().commands

    def __enter__(self) -> DeviceProxy:
        return self._proxy().__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._proxy().__exit__(exc_type, exc, tb)
