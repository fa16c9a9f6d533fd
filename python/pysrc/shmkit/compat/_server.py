"""The compat manager's object server: objects that live in the process that started a
manager — catkit's server process — and that every other process reaches through proxies.

catkit hosts two kinds of object on its manager server: the devices of a shared
``SharedSingletonDeviceCache`` (opened there by the linked functions, used from every
process through proxies) and whatever a user ``register()``s. Here the process that called
``start()`` hosts them. Each hosted object gets a command ring in the manager's segment and a
thread serving it, so a slow call on one device never delays another; calls on one object run
one at a time, as they would under its lock.

Locks: a hosted object's lock is a segment mutex that the *calling* process takes (with the
object's timeout, raising catkit's ``TimeoutError``) before it sends a request, so a process
holding a device (``with Member:``) keeps every other process out for as long as it holds it,
and the server never blocks on a lock. Inside the server the object's own ``Mutex`` wraps a
:class:`_HostedLock`: a no-op on the serving threads (their caller holds the lock) and the
segment mutex on any other thread of the hosting process.

Wire format: requests and replies are pickles (cloudpickle for what plain pickle refuses, as
``Process`` targets travel). Both ends are this user's processes sharing a mode-0600
segment — the trust the compat layer's shared dicts already rest on. Replies are the value,
a reference to another hosted object (devices a cache returns, and anything that does not
pickle), or the exception the call raised, re-raised in the caller.

Hosted objects live until the manager shuts down (catkit frees one when its last proxy goes;
counting proxies across processes is not worth it for the few, long-lived objects a testbed
hosts). Requests are at most 1 MiB and replies 16 MiB (``ValueError`` beyond).
"""

from __future__ import annotations

import itertools
import logging
import pickle
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .._shmkit import Segment

#: Per-ring slots and size limits, bytes (rings are sparse: pages cost memory once written).
SLOTS = 4
MAX_REQUEST = 1 << 20
MAX_REPLY = 16 << 20
DIRECTORY = "catkit/server"
#: How often a serving thread looks at its stop flag, seconds.
POLL = 0.1

log = logging.getLogger(__name__)

_serving = threading.local()


def _in_server_thread() -> bool:
    return bool(getattr(_serving, "active", False))


def dumps(obj: Any) -> bytes:
    """Pickles ``obj``; by value (cloudpickle) where plain pickle refuses (local classes and
    functions, lambdas)."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - anything plain pickle refuses goes by value
        import cloudpickle  # type: ignore[import-untyped]

        data: bytes = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        return data


class _HostedLock:
    """A hosted object's lock as the object itself sees it (see the module documentation)."""

    def __init__(self, mutex: Any) -> None:
        self.segment_mutex = mutex

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if _in_server_thread():
            return True
        return bool(self.segment_mutex.acquire(blocking, timeout))

    def release(self) -> None:
        if not _in_server_thread():
            self.segment_mutex.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: Any) -> None:
        self.release()


class Ref:
    """What a proxy is built from: where the object is served and how it is locked."""

    def __init__(
        self,
        segment: str,
        oid: int,
        type_name: str,
        timeout: float | None,
        per_call_lock: bool,
        by_reference: frozenset[str],
    ) -> None:
        self.segment = segment
        self.oid = oid
        self.type_name = type_name
        self.timeout = timeout
        self.per_call_lock = per_call_lock
        #: Methods whose results stay on the server (a cache's devices), proxied.
        self.by_reference = by_reference

    @property
    def ring(self) -> str:
        return f"catkit/object/{self.oid}"

    @property
    def lock(self) -> str:
        return f"catkit/object/{self.oid}/mutex"


#: A device cache's methods that answer with a device: proxied, as catkit's cache proxy does.
_CACHE_LOOKUPS = frozenset({"__getitem__", "get", "pop"})


class _Method:
    """A reply meaning "that attribute is a method": the proxy returns a caller for it."""


class ObjectServer:
    """The objects one manager hosts, each served on its own ring by its own thread."""

    def __init__(self, segment: Segment, segment_name: str) -> None:
        self.segment = segment
        self.segment_name = segment_name
        self.objects: dict[int, Any] = {}
        self.refs: dict[int, Ref] = {}
        self._by_identity: dict[int, int] = {}
        self._singletons: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._guard = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._serve(DIRECTORY, self._directory)

    # --- life cycle

    def _serve(self, ring_name: str, handler: Callable[[bytes], bytes]) -> None:
        ring = self.segment.command_ring(ring_name, SLOTS, MAX_REQUEST, MAX_REPLY)
        server = ring.server()

        def loop() -> None:
            _serving.active = True
            while not self._stop.is_set():
                try:
                    # Back here (to look at the stop flag) when a wait passes POLL idle.
                    server.serve_many(handler, 1 << 62, timeout=POLL)
                except Exception:  # noqa: BLE001 - a caller that died mid-call: go on serving
                    if not self._stop.is_set():
                        log.exception("compat object server: %s", ring_name)

        thread = threading.Thread(target=loop, name=f"shmkit.compat server {ring_name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stops serving and closes what the hosted device caches hold (as catkit's server
        does when it goes down)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        from .testbed.caching import DeviceCache

        for oid in self._singletons.values():
            obj: Any = self.objects.get(oid)
            # Gone with the server, as catkit's are: the class makes a new one next time.
            type(obj).instance = None
            if isinstance(obj, DeviceCache):
                try:
                    obj.clear()
                except Exception:  # noqa: BLE001 - a device that fails to close: the rest still close
                    log.exception("compat object server: closing %r", obj)

    # --- hosting

    def host(self, obj: Any) -> Ref:
        """The reference to ``obj``, hosting it first if it is not yet."""
        from .multiprocessing import Mutex

        with self._guard:
            oid = self._by_identity.get(id(obj))
            if oid is not None:
                return self.refs[oid]
            oid = next(self._ids)
            ref_name = f"catkit/object/{oid}"
            segment_mutex = self.segment.mutex(f"{ref_name}/mutex")
            # An object with catkit's own lock (a `MutexedNamespace`: an `Instrument`, a cache)
            # is locked per call, with its timeout; any other gets a lock for `acquire()`.
            own = _own_mutex(obj)
            if own is not None:
                own.clobber(_HostedLock(segment_mutex))
                timeout: float | None = own.timeout
            else:
                timeout = getattr(obj, "timeout", None)
                timeout = Mutex(timeout=timeout).timeout
            from .testbed.caching import DeviceCache

            by_reference = _CACHE_LOOKUPS if isinstance(obj, DeviceCache) else frozenset()
            ref = Ref(self.segment_name, oid, type(obj).__qualname__, timeout, own is not None, by_reference)
            self.objects[oid] = obj
            self.refs[oid] = ref
            self._by_identity[id(obj)] = oid
            self._serve(ref_name, lambda request: self._object(oid, request))
            from .testbed.caching import DeviceCache

            if isinstance(obj, DeviceCache):
                # Devices already cached: hosted now, before any other process can hold one.
                for device in list(obj.data.values()):
                    self.host(device)
            return ref

    def singleton(self, cls: type) -> Ref:
        """The reference to the hosted instance of singleton class ``cls``."""
        with self._guard:
            oid = self._singletons.get(cls.__qualname__)
            if oid is not None:
                return self.refs[oid]
            ref = self.host(local_instance(cls))
            self._singletons[cls.__qualname__] = ref.oid
            return ref

    # --- requests

    def _directory(self, request: bytes) -> bytes:
        try:
            op, *payload = pickle.loads(request)
            if op == "create":
                factory, args, kwargs = payload
                return _reply(("ref", self.host(factory(*args, **kwargs))))
            if op == "singleton":
                (cls,) = payload
                return _reply(("ref", self.singleton(server_class(cls))))
            raise ValueError(f"unknown request {op!r}")
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the caller
            return _failure(error)

    def _object(self, oid: int, request: bytes) -> bytes:
        try:
            op, *payload = pickle.loads(request)
            obj = self.objects[oid]
            if op == "getattr":
                (name,) = payload
                value = getattr(obj, name)
                if callable(value) and not isinstance(value, type):
                    return _reply(("value", _Method()))
                return self._value(value)
            if op == "setattr":
                name, value = payload
                setattr(obj, name, value)
                return _reply(("value", None))
            if op == "delattr":
                (name,) = payload
                delattr(obj, name)
                return _reply(("value", None))
            if op == "call":
                name, args, kwargs, by_reference = payload
                result = getattr(obj, name)(*args, **kwargs)
                if by_reference and result is not None:
                    return _reply(("ref", self.host(result)))
                return self._value(result)
            if op == "truth":
                return _reply(("value", bool(obj)))
            if op == "link":
                # A caller's linked functions for a device this process never linked.
                cls = type(obj)
                for key, func, root_key, aliases in payload[0]:
                    cls.callbacks.setdefault(key, cls.Callback(func=func, root_key=root_key, aliases=aliases))
                return _reply(("value", None))
            raise ValueError(f"unknown request {op!r}")
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the caller
            return _failure(error)

    def _value(self, value: Any) -> bytes:
        """A result by value — by reference when it is hosted already (a device entering
        itself) or does not pickle (an open connection)."""
        if id(value) in self._by_identity:
            return _reply(("ref", self.refs[self._by_identity[id(value)]]))
        try:
            return _reply(("value", value))
        except Exception:  # noqa: BLE001 - unpicklable: hosted, and proxied
            return _reply(("ref", self.host(value)))


def _own_mutex(obj: Any) -> Any:
    from .multiprocessing import Mutex

    try:
        mutex = object.__getattribute__(obj, "_catkit_mutex")
    except AttributeError:
        return None
    return mutex if isinstance(mutex, Mutex) else None


def _reply(reply: tuple[str, Any]) -> bytes:
    return dumps(reply)


def _failure(error: BaseException) -> bytes:
    try:
        return dumps(("raise", error))
    except Exception:  # noqa: BLE001 - an exception that does not pickle: its text
        return dumps(("raise", RuntimeError(f"{type(error).__name__}: {error}")))


# --------------------------------------------------------------- singleton classes

#: Singleton classes made by ``factory(address=…)`` in this process, by segment and name: the
#: server's own class is used when it has one (its linked functions are the ones it ran).
_classes: dict[tuple[str, str], type] = {}
#: The servers this process runs, by segment name.
servers: dict[str, ObjectServer] = {}


def hosting(obj: Any) -> ObjectServer | None:
    """The server of this process that hosts ``obj``, if one does."""
    for server in servers.values():
        if id(obj) in server._by_identity:
            return server
    return None


def reference(obj: Any) -> tuple[Any, tuple[Ref]] | None:
    """How a hosted object pickles (a proxy wherever it is unpickled); None if not hosted."""
    server = hosting(obj)
    if server is None:
        return None
    return (proxy, (server.refs[server._by_identity[id(obj)]],))


def remember_class(segment_name: str, cls: type) -> None:
    _classes[(segment_name, cls.__qualname__)] = cls


def server_class(cls: type) -> type:
    """This process's own class of that name for the manager (else the caller's)."""
    segment_name = getattr(cls, "_catkit_segment", None)
    if segment_name is None:
        return cls
    return _classes.get((segment_name, cls.__qualname__), cls)


def local_instance(cls: Any) -> Any:
    """The class's real instance in this process (made on first use)."""
    if cls.instance is None:
        from collections import UserDict

        from .multiprocessing import MutexedNamespace

        obj = MutexedNamespace.__new__(cls, timeout=getattr(cls, "timeout", None))
        UserDict.__init__(obj)
        cls.instance = obj
    return cls.instance


# --------------------------------------------------------------- the client side

def _segment(name: str) -> Segment:
    from .multiprocessing import _open

    return _open(name)


def request(segment_name: str, ring_name: str, message: tuple[Any, ...]) -> Any:
    """Sends ``message`` to a ring of the server and answers with its reply."""
    ring = _segment(segment_name).command_ring(ring_name)
    return _answer(ring.call(dumps(message)))


def singleton_proxy(segment_name: str, cls: Any) -> CacheProxy:
    """A proxy of the hosted instance of device cache class ``cls``."""
    ring = _segment(segment_name).command_ring(DIRECTORY)
    return CacheProxy(_reply_value(ring.call(dumps(("singleton", cls)))), cls)


def _reply_value(reply: bytes) -> Any:
    """A reply's value, a `Ref` left as it is; the server's exception raised here."""
    kind, value = pickle.loads(reply)
    if kind == "raise":
        raise value
    return value


def _answer(reply: bytes) -> Any:
    value = _reply_value(reply)
    return proxy(value) if isinstance(value, Ref) else value


def proxy(ref: Ref) -> Any:
    """The object ``ref`` names: itself in the process hosting it, else a proxy."""
    server = servers.get(ref.segment)
    if server is not None and ref.oid in server.objects:
        return server.objects[ref.oid]
    if ref.by_reference:
        return CacheProxy(ref, None)
    return ObjectProxy(ref)


class ObjectProxy:
    """An object hosted by a manager's server, used from another process: attributes are
    read and written there, methods run there, ``acquire()``/``release()`` hold its lock."""

    def __init__(self, ref: Ref) -> None:
        from .multiprocessing import Mutex

        seg = _segment(ref.segment)
        state = object.__getattribute__(self, "__dict__")
        state["_ref"] = ref
        state["_ring"] = seg.command_ring(ref.ring)
        state["_mutex"] = Mutex(lock=seg.mutex(ref.lock), timeout=ref.timeout)

    def _request(self, *message: Any) -> Any:
        state = object.__getattribute__(self, "__dict__")
        ref: Ref = state["_ref"]
        if ref.per_call_lock:
            with state["_mutex"]:
                reply = state["_ring"].call(dumps(message))
        else:
            reply = state["_ring"].call(dumps(message))
        return _answer(reply)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        ref: Ref = object.__getattribute__(self, "__dict__")["_ref"]
        return self._request("call", name, args, kwargs, name in ref.by_reference)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value = self._request("getattr", name)
        if isinstance(value, _Method):
            call = self._call

            def method(*args: Any, **kwargs: Any) -> Any:
                return call(name, *args, **kwargs)

            method.__name__ = name
            return method
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        self._request("setattr", name, value)

    def __delattr__(self, name: str) -> None:
        self._request("delattr", name)

    # --- the object's lock, held by this process

    def acquire(self, timeout: float | None = None, raise_on_fail: bool = True) -> bool:
        mutex = object.__getattribute__(self, "__dict__")["_mutex"]
        return bool(mutex.acquire(timeout=timeout, raise_on_fail=raise_on_fail))

    def release(self) -> None:
        object.__getattribute__(self, "__dict__")["_mutex"].release()

    def get_mutex(self) -> Any:
        return object.__getattribute__(self, "__dict__")["_mutex"]

    # --- the protocols Python looks up on the type

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("__call__", *args, **kwargs)

    def __enter__(self) -> Any:
        result = self._call("__enter__")
        # An object entering itself (a device opening) answers with a proxy: this one.
        return self if isinstance(result, ObjectProxy) else result

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> Any:
        # Tracebacks do not pickle (catkit passes None too).
        return self._call("__exit__", exc_type, exc_val, None)

    def __getitem__(self, key: Any) -> Any:
        return self._call("__getitem__", key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._call("__setitem__", key, value)

    def __delitem__(self, key: Any) -> None:
        self._call("__delitem__", key)

    def __contains__(self, key: object) -> bool:
        return bool(self._call("__contains__", key))

    def __len__(self) -> int:
        return int(self._call("__len__"))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._call("keys"))

    def __bool__(self) -> bool:
        return bool(self._request("truth"))

    def __repr__(self) -> str:
        ref: Ref = object.__getattribute__(self, "__dict__")["_ref"]
        return f"<proxy of {ref.type_name} #{ref.oid} served by manager {ref.segment!r}>"

    def __reduce__(self) -> Any:
        return (proxy, (object.__getattribute__(self, "__dict__")["_ref"],))


class CacheProxy(ObjectProxy):
    """A shared ``SharedSingletonDeviceCache`` from a process other than its server's: a
    device the server never linked is linked there with this process's function first."""

    def __init__(self, ref: Ref, cls: Any) -> None:
        super().__init__(ref)
        object.__getattribute__(self, "__dict__")["_cls"] = cls

    # Keys go as names, never as enum members (which carry their cache), as catkit's do.

    def __getitem__(self, key: Any) -> Any:
        key = _key(key)
        try:
            return self._call("__getitem__", key)
        except KeyError:
            if not self._link(key):
                raise
        return self._call("__getitem__", key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._call("__setitem__", _key(key), value)

    def __delitem__(self, key: Any) -> None:
        self._call("__delitem__", _key(key))

    def __contains__(self, key: object) -> bool:
        return bool(self._call("__contains__", _key(key)))

    def get(self, key: Any, *default: Any) -> Any:
        return self._call("get", _key(key), *default)

    def pop(self, key: Any, *default: Any) -> Any:
        return self._call("pop", _key(key), *default)

    def values(self) -> list[Any]:
        """Proxies of the cached devices (a list, as catkit's proxy returns)."""
        return [self[key] for key in self]

    def items(self) -> list[tuple[Any, Any]]:
        return [(key, self[key]) for key in self]

    def _link(self, key: Any) -> bool:
        cls = object.__getattribute__(self, "__dict__")["_cls"]
        if cls is None:  # unpickled from another process: no class of its own to link from
            return False
        callbacks = cls.callbacks
        callback = callbacks.get(key)
        if callback is None:
            return False
        linked = [(k, c.func, c.root_key, c.aliases) for k, c in callbacks.items() if c.root_key == callback.root_key]
        self._request("link", linked)
        return True


def _key(key: Any) -> Any:
    from .testbed.caching import _key as key_of

    return key_of(key)
