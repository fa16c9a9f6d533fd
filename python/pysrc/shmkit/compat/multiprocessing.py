"""catkit's ``catkit.multiprocessing`` on shmkit: the same names, signatures, defaults,
exceptions and messages; a segment where catkit runs a manager server.

A manager at an ``address`` is the segment named after it (``catkit-<uid>-<ip>-<port>``):
``start()`` creates it (fresh, as a new server would be), ``connect()`` opens it (a
``ConnectionRefusedError`` when nobody started it, as catkit's client gets), ``shutdown()``
removes it. Named locks, events and barriers live in it and are found by name from any
process; objects a manager makes (``manager.dict()``, ``manager.Value(...)``,
``manager.MutexedDict()``) live in it too and reach child processes by pickling, as proxies
do. Values are pickled (catkit pickles everything it shares): the segment is mode 0600, so
only this user — who could run code anyway — can write what another process unpickles.

What is not copied, because it is catkit's implementation and not its API: proxy classes
(``Mutex.Proxy`` and friends exist as names for code that refers to them), server pids
(``getpid()`` is the pid of the process that started the manager), authkeys (accepted and
ignored: the segment's file mode is the access control) and sockets. ``register()`` records
the type: ``manager.<typeid>(...)`` builds the shared counterpart of the compat types
(``MutexedDict``, ``MutexedNamespace``, ``Mutex``); any other object lives in the process
that started the manager and is used from every process through a proxy, as on catkit's
server (``shmkit.compat._server``: there, too, the devices of a shared
``SharedSingletonDeviceCache``).
"""

from __future__ import annotations

import builtins
import itertools
import logging
import multiprocessing as _mp
import multiprocessing.context as _mp_context
import os
import pickle
import secrets
import threading
import warnings
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, ClassVar

from . import _server
from .._process import _chain, _rebuild
from .._shmkit import Barrier as _SegmentBarrier
from .._shmkit import Segment
from .._shmkit import Event as _SegmentEvent
from .._shmkit import Mutex as _SegmentMutex
from ..errors import SegmentError

__all__ = [
    "CONTEXT",
    "CONTEXT_METHOD",
    "DEFAULT_SHARED_MEMORY_SERVER_ADDRESS",
    "DEFAULT_TIMEOUT",
    "EXCEPTION_SERVER_ADDRESS",
    "GLOBAL_AUTH_KEY",
    "Mutex",
    "MutexedNamespace",
    "MutexedNamespaceSingleton",
    "Namespace",
    "NamedEvent",
    "Process",
    "SharedMemoryManager",
    "SharedState",
    "TimeoutError",
]

#: catkit's default timeout for locks, barriers and joins of daemonic processes, seconds.
DEFAULT_TIMEOUT = 60
#: Where catkit's default manager listens; here the name of its segment.
DEFAULT_SHARED_MEMORY_SERVER_ADDRESS = ("127.0.0.1", 6000)
#: The exception manager's address (the testbed's segment).
EXCEPTION_SERVER_ADDRESS = ("127.0.0.1", 6001)
#: Accepted for code that passes it; a segment's file mode is its access control.
GLOBAL_AUTH_KEY = b"a super secure password"
CONTEXT_METHOD = "spawn"
CONTEXT = _mp.get_context(CONTEXT_METHOD)

#: Bytes of a segment a manager creates (sparse: pages cost memory once written).
SEGMENT_SIZE = 1 << 30
#: Keys and record bytes of each dictionary the compat layer makes.
DICT_KEYS = 1024
DICT_BYTES = 4 << 20


class TimeoutError(_mp_context.TimeoutError, builtins.TimeoutError):  # noqa: A001
    """catkit raises ``multiprocess``'s ``TimeoutError``; this one is also Python's, so
    code catching either (or ``multiprocessing.TimeoutError``) catches it."""



# ------------------------------------------------------------------------- segments


def _segment_name(address: tuple[Any, ...]) -> str:
    host, port = str(address[0]), int(address[1])
    safe = "".join(c if c.isalnum() else "_" for c in host)
    return f"catkit-{os.getuid()}-{safe}-{port}"


_open_segments: dict[str, Segment] = {}


def _open(name: str) -> Segment:
    seg = _open_segments.get(name)
    if seg is None:
        seg = _open_segments[name] = Segment.open(name)
    return seg


_counter = itertools.count()


def _anonymous(kind: str) -> str:
    """A name no other object has: what catkit's unnamed objects get here."""
    return f"catkit/{kind}/{os.getpid()}-{next(_counter)}-{secrets.token_hex(4)}"


class _Registry:
    """Per-segment records the manager keeps beside its objects (a lock's timeout, a
    barrier's parties): first writer wins, as the first creator does in catkit's caches."""

    def __init__(self, seg: Segment) -> None:
        from .._dict import SharedDict

        self._dict = SharedDict(seg._raw_dict("catkit/registry", DICT_KEYS), pickle=True)

    def setdefault(self, key: str, value: Any) -> Any:
        with self._dict.lock():
            if key in self._dict:
                return self._dict[key]
            self._dict[key] = value
            return value

    def get(self, key: str) -> Any:
        return self._dict.get(key)

    def set(self, key: str, value: Any) -> None:
        self._dict[key] = value


# ------------------------------------------------------------------------- Process


class _Dilled:
    """A target or arguments plain pickle cannot carry (a local function, a lambda, a class
    defined in a function), carried by value as catkit's dill does."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        import cloudpickle  # type: ignore[import-untyped]

        return (_undill, (cloudpickle.dumps(self.obj),))


def _undill(data: bytes) -> Any:
    return pickle.loads(data)


def _portable(obj: Any) -> Any:
    try:
        pickle.dumps(obj)
        return obj
    except Exception:  # noqa: BLE001 - anything plain pickle refuses goes by value
        return _Dilled(obj)


def _unwrap(obj: Any) -> Any:
    return obj.obj if isinstance(obj, _Dilled) else obj


class Process(CONTEXT.Process):  # type: ignore[misc,name-defined]
    """catkit's ``Process``: a spawned child whose exception ``join()`` re-raises.

    Targets and arguments plain pickle refuses (local functions, lambdas) travel by value
    (``cloudpickle``), as catkit's do with dill. The child's exception comes back through a
    private pipe — no exception server needs to be running, unlike catkit.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._catkit_recv, self._catkit_send = CONTEXT.Pipe(duplex=False)

    def start(self) -> None:
        state: dict[str, Any] = self.__dict__
        for field in ("_target", "_args", "_kwargs"):
            state[field] = _portable(state[field])
        super().start()
        self._catkit_send.close()

    def run(self) -> None:
        """Runs the target; an exception is sent to the parent, then raised here too."""
        state: dict[str, Any] = self.__dict__
        for field in ("_target", "_args", "_kwargs"):
            state[field] = _unwrap(state[field])
        try:
            super().run()
        except Exception as error:
            try:
                self._catkit_send.send(_chain(error))
            finally:
                raise error

    def join(self, timeout: float | None = None) -> None:
        """Joins, then raises the child's exception if it failed (catkit's rules and
        messages: ``TimeoutError`` if still running; the child's own exception; else an
        ``Exception`` naming the exit code). A daemonic process gets a default timeout."""
        if self.daemon:
            message = "Joining a daemonic process defeats the point of it being daemonic."
            if timeout:
                warnings.warn(message, stacklevel=2)
            else:
                timeout = DEFAULT_TIMEOUT
                warnings.warn(
                    f"{message} A default timeout of {timeout}s is being enforced.", stacklevel=2
                )
        super().join(timeout)
        exitcode = self.exitcode
        if exitcode == 0:
            return
        if exitcode is None:
            raise TimeoutError(
                f"The process '{self.name}' on PID {self.pid} failed to join after {timeout} seconds"
            )
        links = None
        try:
            if self._catkit_recv.poll():
                links = self._catkit_recv.recv()
        except (EOFError, OSError):
            links = None
        if links:
            raise _rebuild(links, origin=f"process {self.name!r} (pid {self.pid})")
        raise Exception(
            f"Child process ('{self.name}' with pid: '{self.pid}') exited with non-zero "
            f"exitcode: '{exitcode}'"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_catkit_recv", None)
        return state


# ------------------------------------------------------------------------- Mutex


class Mutex:
    """catkit's ``Mutex``: a reentrant lock whose ``acquire()`` waits ``timeout`` (default
    60 s) and raises ``TimeoutError("Failed to acquire lock after …")`` instead of returning
    False (``raise_on_fail=False`` returns False).

    Without ``lock`` it is a new ``threading.RLock`` (as in catkit: local to this process;
    ``manager.Mutex()`` or ``manager.get_lock(name)`` make one every process shares);
    ``lock`` may be a ``threading`` lock, another ``Mutex`` (the same lock, its timeout) or a
    segment mutex.
    """

    Proxy: ClassVar[type]

    def __init__(self, *args: Any, lock: Any = None, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if lock is None:
            self._catkit_mutex: Any = threading.RLock()
            self.timeout: float = DEFAULT_TIMEOUT if timeout is None else timeout
        elif isinstance(lock, Mutex):
            self._catkit_mutex = lock.get_mutex()
            self.timeout = lock.timeout if timeout is None else timeout
        elif isinstance(lock, (_SegmentMutex, type(threading.RLock()), type(threading.Lock()))):
            self._catkit_mutex = lock
            self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        else:
            raise TypeError()
        self._catkit_mutex_id = _mutex_id(self._catkit_mutex)

    def __eq__(self, other: object) -> bool:
        ident = other.get_mutex_id() if isinstance(other, Mutex) else _mutex_id(other)
        return self.get_mutex_id() == ident

    def __hash__(self) -> int:
        return hash(self._catkit_mutex_id)

    def acquire(self, timeout: float | None = None, raise_on_fail: bool = True) -> bool:
        """Acquires within ``timeout`` (None: this mutex's own); True, or ``TimeoutError``
        (False with ``raise_on_fail=False``)."""
        if timeout is None:
            timeout = self.timeout
        locked = bool(self._catkit_mutex.acquire(timeout=timeout))
        if not locked and raise_on_fail:
            raise TimeoutError(
                f"Failed to acquire lock after {timeout}s (exec on (not from) PID: "
                f"{os.getpid()}, ID: {self._catkit_mutex_id:#x})"
            )
        return locked

    def release(self) -> None:
        self._catkit_mutex.release()

    def __enter__(self) -> bool:
        # The uncontended case without the timeout bookkeeping: one non-blocking try.
        if self._catkit_mutex.acquire(False):
            return True
        return self.acquire()

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self._catkit_mutex.release()

    def get_mutex(self) -> Any:
        """The lock underneath."""
        return self._catkit_mutex

    def get_mutex_id(self) -> int:
        """An identity of the lock underneath, the same in every process that holds it."""
        return self._catkit_mutex_id

    def clobber(self, new_mutex: Any) -> None:
        """Swaps the lock underneath (holding the old one while doing so)."""
        with self._catkit_mutex:
            self._catkit_mutex = new_mutex
            self._catkit_mutex_id = _mutex_id(new_mutex)

    def __getstate__(self) -> dict[str, Any]:
        return {"mutex": self._catkit_mutex, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._catkit_mutex = state["mutex"]
        self.timeout = state["timeout"]
        self._catkit_mutex_id = _mutex_id(self._catkit_mutex)

    def __repr__(self) -> str:
        return f"<compat.Mutex timeout={self.timeout} of {self._catkit_mutex!r}>"


def _mutex_id(lock: Any) -> int:
    lock = getattr(lock, "segment_mutex", lock)  # a hosted object's lock: its segment mutex
    if isinstance(lock, _SegmentMutex):
        # The same in every process: the segment and the name the lock has there.
        return hash(lock.__reduce__()[1][:2]) & ((1 << 62) - 1)
    return id(lock)


class _MutexProxy:
    """Name kept for code that refers to ``Mutex.Proxy`` (no proxies here)."""


Mutex.Proxy = _MutexProxy


# ------------------------------------------------------------------------- namespaces


class Namespace:
    """catkit's ``Namespace`` base: a repr of its public attributes."""

    def __repr__(self) -> str:
        items = sorted(f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith("_"))
        return f"{type(self).__name__}({', '.join(items)})"


class MutexedNamespace(Namespace):
    """catkit's ``MutexedNamespace``: every attribute access holds its ``Mutex`` (reentrant,
    with its timeout); ``with ns:``, ``acquire()`` and ``release()`` hold it longer."""

    timeout: ClassVar[float | None]

    def __new__(cls, *args: Any, lock: Any = None, timeout: float | None = None, **kwargs: Any) -> Any:
        obj = super().__new__(cls)
        if timeout is None and hasattr(cls, "timeout"):
            timeout = cls.timeout
        object.__setattr__(obj, "_catkit_mutex", Mutex(lock=lock, timeout=timeout))
        return obj

    def __init__(self, *args: Any, lock: Any = None, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    def copy_from(self, other: Any) -> None:
        self.__dict__.update(other.__dict__.copy())

    def __getattribute__(self, item: str) -> Any:
        with object.__getattribute__(self, "_catkit_mutex"):
            return object.__getattribute__(self, item)

    def __setattr__(self, name: str, value: Any) -> None:
        with object.__getattribute__(self, "_catkit_mutex"):
            super().__setattr__(name, value)

    def __delattr__(self, item: str) -> None:
        with object.__getattribute__(self, "_catkit_mutex"):
            super().__delattr__(item)

    def __enter__(self) -> bool:
        return bool(object.__getattribute__(self, "_catkit_mutex").__enter__())

    def __exit__(self, *args: Any) -> None:
        object.__getattribute__(self, "_catkit_mutex").__exit__(*args)

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        return bool(object.__getattribute__(self, "_catkit_mutex").acquire(*args, **kwargs))

    def release(self, *args: Any, **kwargs: Any) -> None:
        object.__getattribute__(self, "_catkit_mutex").release(*args, **kwargs)

    def get_mutex(self) -> Mutex:
        mutex: Mutex = object.__getattribute__(self, "_catkit_mutex")
        return mutex

    def clobber_mutex(self, *args: Any, **kwargs: Any) -> None:
        object.__getattribute__(self, "_catkit_mutex").clobber(*args, **kwargs)

    def __reduce__(self) -> Any:
        hosted = _server.reference(self)
        if hosted is not None:  # a device the manager hosts goes to other processes as a proxy
            return hosted
        return (_rebuild_namespace, (type(self), object.__getattribute__(self, "_catkit_mutex"),
                                     dict(object.__getattribute__(self, "__dict__"))))

    class Proxy:
        """Name kept for code that refers to ``MutexedNamespace.Proxy`` (no proxies here)."""


def _rebuild_namespace(cls: type, mutex: Mutex, state: dict[str, Any]) -> Any:
    obj: Any = object.__new__(cls)
    object.__setattr__(obj, "_catkit_mutex", mutex)
    obj.__dict__.update(state)
    return obj


class SharedNamespace:
    """A namespace whose attributes live in the segment (``manager.Namespace()``,
    ``manager.MutexedNamespace()``, ``SharedState``): every process that has it (it pickles
    by name) sees every attribute set anywhere. Values are pickled copies, as a manager's
    are. Attribute access holds its ``Mutex`` (with its timeout)."""

    def __init__(self, store: Any, mutex: Mutex) -> None:
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_catkit_mutex", mutex)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        store = object.__getattribute__(self, "_store")
        with object.__getattribute__(self, "_catkit_mutex"):
            try:
                return store[name]
            except KeyError:
                raise AttributeError(
                    f"'{type(self).__name__}' object has no attribute '{name}'"
                ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        with object.__getattribute__(self, "_catkit_mutex"):
            object.__getattribute__(self, "_store")[name] = value

    def __delattr__(self, name: str) -> None:
        with object.__getattribute__(self, "_catkit_mutex"):
            try:
                del object.__getattribute__(self, "_store")[name]
            except KeyError:
                raise AttributeError(name) from None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: Any) -> None:
        self.release()

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        return bool(object.__getattribute__(self, "_catkit_mutex").acquire(*args, **kwargs))

    def release(self) -> None:
        object.__getattribute__(self, "_catkit_mutex").release()

    def get_mutex(self) -> Mutex:
        mutex: Mutex = object.__getattribute__(self, "_catkit_mutex")
        return mutex

    def __repr__(self) -> str:
        store = object.__getattribute__(self, "_store")
        items = sorted(f"{k}={store[k]!r}" for k in store.keys() if not str(k).startswith("_"))
        return f"Namespace({', '.join(items)})"

    def __reduce__(self) -> Any:
        return (SharedNamespace, (object.__getattribute__(self, "_store"),
                                  object.__getattribute__(self, "_catkit_mutex")))


def _shared_namespace(seg: Segment, name: str, timeout: float | None) -> SharedNamespace:
    from .testbed.caching import MutexedDict

    mutex = Mutex(lock=seg.mutex(f"{name}/mutex"), timeout=DEFAULT_TIMEOUT if timeout is None else timeout)
    store = MutexedDict(lock=mutex, _segment=seg, _name=f"{name}/attributes")
    return SharedNamespace(store, mutex)


class MutexedNamespaceSingleton(MutexedNamespace):
    """catkit's singleton namespace: one instance per class. A class with an ``address``
    (``factory(address=…, name=…)``) is shared: every process gets the same attributes,
    kept in that manager's segment (``ConnectionRefusedError`` until the manager started)."""

    instance: ClassVar[Any] = None
    address: ClassVar[tuple[Any, ...] | None]

    def __new__(cls, *args: Any, address: Any = None, disable_shared_memory: bool = False, **kwargs: Any) -> Any:
        if cls.instance is None:
            if address is None:
                address = getattr(cls, "address", None)
            if not disable_shared_memory and address is not None:
                manager = SharedMemoryManager(address=address)
                manager.connect()
                timeout = kwargs.get("timeout", getattr(cls, "timeout", None))
                obj: Any = _shared_namespace(manager.segment, f"catkit/singleton/{cls.__qualname__}", timeout)
            else:
                obj = super().__new__(cls, *args, **kwargs)
                obj.__init__(*args, **kwargs)
            cls.instance = obj
        return cls.instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if object.__getattribute__(self, "__class__").instance is None:
            super().__init__(*args, **kwargs)

    @classmethod
    def factory(
        cls,
        address: Any = None,
        name: str | None = None,
        timeout: float | None = None,
        new_class_dict: dict[str, Any] | None = None,
    ) -> type:
        """A new singleton class (shared at ``address`` if given, which needs ``name``)."""
        if address and not name:
            raise ValueError(
                f"Remote access requires a str name to register with {SharedMemoryManager.__qualname__}."
            )
        return type(name or "NewClass", (cls,), dict(instance=None, address=address, timeout=timeout,
                                                     **(new_class_dict or {})))


class NamedEvent(threading.Event):
    """catkit's debugging event: a ``threading.Event`` with a name (``manager.NamedEvent``
    is the manager's event of that name)."""

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = name


# ------------------------------------------------------------------------- the manager


class _State:
    INITIAL, STARTED, SHUTDOWN = 0, 1, 2


class SharedMemoryManager:
    """catkit's ``SharedMemoryManager`` on a segment (see the module documentation).

    ``get_lock``/``get_mutex``, ``get_event`` and ``get_barrier`` return the object of that
    name, made by the first caller with its parameters (a lock keeps its creator's timeout, a
    barrier its parties and 60 s timeout); the ``SyncManager`` factories (``dict``, ``list``,
    ``Namespace``, ``Value``, ``Lock``, ``RLock``, ``Event``, ``Barrier``) and the compat
    types (``Mutex``, ``MutexedDict``, ``MutexedNamespace``) make new shared objects.
    """

    _registry: ClassVar[dict[str, tuple[Any, Any, bool]]] = {}
    is_a_server_process: ClassVar[bool] = False
    server_address: ClassVar[Any] = None
    server_pid: ClassVar[int | None] = None

    def __init__(
        self,
        *args: Any,
        address: tuple[Any, ...] | None = None,
        authkey: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        own: bool = False,
        **kwargs: Any,
    ) -> None:
        self.own = own
        if address is None:
            address = getattr(self, "ADDRESS", DEFAULT_SHARED_MEMORY_SERVER_ADDRESS)
        if len(address) == 3:
            if authkey is not None:
                raise ValueError("The authkey cannot be passed in by both the address and as a kwarg.")
            address = address[:2]
        self.address = tuple(address)
        self.timeout = timeout
        self.log = logging.getLogger()
        self._segment_name = _segment_name(self.address)
        self._segment: Segment | None = None
        self._state = _State.INITIAL
        self._registry_handle: _Registry | None = None

    # --- life cycle

    def start(self, initializer: Any = None, initargs: Any = None) -> None:
        """Creates the manager's segment (a stale one left by a dead manager is replaced;
        a live one is ``OSError(EADDRINUSE)``, as a second server on the port would be)."""
        if initializer is not None or initargs is not None:
            raise TypeError(
                "Don't pass `initializer` and `initargs` to start(). Instead define "
                "`cls.initializer` and `self.initargs`."
            )
        if self._state == _State.STARTED:
            raise _mp.ProcessError("Already started server")
        try:
            old = Segment.open(self._segment_name)
        except SegmentError:
            old = None
        if old is not None:
            alive = old.creator_alive and old.creator_pid != os.getpid()
            del old
            if alive:
                raise OSError(98, f"Address already in use: {self.address}")
            _open_segments.pop(self._segment_name, None)
            Segment.unlink(self._segment_name)
        self._segment = Segment.create(self._segment_name, SEGMENT_SIZE)
        _open_segments[self._segment_name] = self._segment
        _server.servers[self._segment_name] = _server.ObjectServer(self._segment, self._segment_name)
        self._state = _State.STARTED
        self.log.info(f"Shared memory manager started on PID: '{os.getpid()}'")

    def connect(self) -> None:
        """Opens the manager's segment: ``ConnectionRefusedError`` if no live manager made it."""
        try:
            seg = _open(self._segment_name)
        except SegmentError:
            raise ConnectionRefusedError(111, f"Connection refused: no manager at {self.address}") from None
        if not seg.creator_alive:
            _open_segments.pop(self._segment_name, None)
            raise ConnectionRefusedError(111, f"Connection refused: the manager at {self.address} is gone")
        self._segment = seg

    def shutdown(self) -> None:
        """Removes the segment this manager started (its objects go with it)."""
        if self._state == _State.STARTED:
            self._state = _State.SHUTDOWN
            server = _server.servers.pop(self._segment_name, None)
            if server is not None:
                server.stop()
            _open_segments.pop(self._segment_name, None)
            self._segment = None
            self._registry_handle = None
            try:
                Segment.unlink(self._segment_name)
            except SegmentError:
                pass

    def __enter__(self) -> SharedMemoryManager:
        if self._state == _State.INITIAL:
            self.start()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: TracebackType | None) -> None:
        self.shutdown()

    def __del__(self) -> None:
        if getattr(self, "own", False):
            self.shutdown()

    def __getstate__(self) -> dict[str, Any]:
        # A copy in another process is a client: it neither keeps this process's handles nor
        # removes the segment when it goes.
        state = dict(self.__dict__)
        state.update(_segment=None, _registry_handle=None, _state=_State.INITIAL, own=False)
        return state

    def getpid(self) -> int:
        """The pid of the process that started the manager."""
        return self.segment.creator_pid

    @property
    def segment(self) -> Segment:
        """The manager's segment (connecting if needed)."""
        if self._segment is None:
            self.connect()
        assert self._segment is not None
        return self._segment

    @property
    def _registry_(self) -> _Registry:
        if self._registry_handle is None:
            self._registry_handle = _Registry(self.segment)
        return self._registry_handle

    @classmethod
    def register(
        cls,
        typeid: str,
        callable: Any = None,  # noqa: A002 - multiprocessing's name
        proxytype: Any = None,
        exposed: Any = None,
        method_to_typeid: Any = None,
        create_method: bool = True,
    ) -> None:
        """Records ``typeid``; with ``create_method``, ``manager.<typeid>(...)`` builds the
        shared counterpart of ``callable`` (see the module documentation)."""
        if "_registry" not in cls.__dict__:
            cls._registry = dict(cls._registry)
        cls._registry[typeid] = (callable, proxytype, create_method)

        if create_method:
            def create(self: SharedMemoryManager, *args: Any, **kwds: Any) -> Any:
                return self._create(typeid, *args, **kwds)

            create.__name__ = typeid
            setattr(cls, typeid, create)

    def _create(self, typeid: str, *args: Any, **kwargs: Any) -> Any:
        factory = self._registry.get(typeid, (None, None, False))[0]
        if factory is None:
            raise TypeError(f"{typeid!r} was registered without a callable")
        from .testbed.caching import SharedSingletonDeviceCache

        if isinstance(factory, type) and issubclass(factory, SharedSingletonDeviceCache):
            return factory(address=self.address)
        if isinstance(factory, type) and issubclass(factory, MutexedNamespaceSingleton):
            return _shared_namespace(self.segment, f"catkit/singleton/{factory.__qualname__}",
                                     kwargs.get("timeout", getattr(factory, "timeout", None)))
        from .testbed.caching import MutexedDict

        if isinstance(factory, type) and issubclass(factory, MutexedDict):
            return factory(*args, _segment=self.segment, **kwargs)
        if isinstance(factory, type) and issubclass(factory, MutexedNamespace):
            return _shared_namespace(self.segment, _anonymous("namespace"), kwargs.get("timeout"))
        if factory is Mutex:
            return Mutex(lock=self.segment.mutex(_anonymous("mutex")), timeout=kwargs.get("timeout"))
        # Anything else lives in the manager's process, reached through a proxy.
        server = _server.servers.get(self._segment_name)
        if server is not None:
            # A proxy here too, as catkit's manager gives: it pickles as one to children.
            return _server.ObjectProxy(server.host(factory(*args, **kwargs)))
        return _server.request(self._segment_name, _server.DIRECTORY, ("create", factory, args, kwargs))

    # --- named objects

    def get_lock(self, name: str, timeout: float | None = None) -> Mutex:
        """The lock ``name``, made with ``timeout`` (default: the manager's) by its first
        caller; every later caller gets that timeout."""
        if timeout is None:
            timeout = self.timeout
        kept = self._registry_.setdefault(f"lock:{name}", timeout)
        return Mutex(lock=self.segment.mutex(f"catkit/lock/{name}"), timeout=kept)

    get_mutex = get_lock

    def get_barrier(
        self, name: str, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> _SegmentBarrier:
        """The barrier ``name`` (keyed by name only: a later caller's ``parties`` are
        ignored, as catkit's cache does), with a default timeout of the manager's 60 s."""
        if timeout is None:
            timeout = self.timeout
        kept_parties, kept_timeout = self._registry_.setdefault(f"barrier:{name}", (parties, timeout))
        return self.segment.barrier(f"catkit/barrier/{name}", kept_parties, action, kept_timeout)

    def get_event(self, name: str) -> _SegmentEvent:
        """The event ``name``."""
        return self.segment.event(f"catkit/event/{name}")

    def get_exception(self, pid: int) -> BaseException | None:
        """The exception recorded for ``pid`` (None if none)."""
        got: BaseException | None = self._registry_.get(f"exception:{pid}")
        return got

    def set_exception(self, pid: int, exception: BaseException) -> None:
        """Records ``exception`` for ``pid``."""
        self._registry_.set(f"exception:{pid}", exception)

    # --- SyncManager's factories

    def dict(self, *args: Any, **kwargs: Any) -> Any:
        """A new shared dict (any picklable keys and values)."""
        from .testbed.caching import MutexedDict

        return MutexedDict(*args, _segment=self.segment, **kwargs)

    def list(self, sequence: Any = ()) -> SharedList:
        """A new shared list."""
        return SharedList(self.segment, _anonymous("list"), sequence)

    def Namespace(self, **kwargs: Any) -> SharedNamespace:  # noqa: N802 - SyncManager's name
        """A new shared namespace."""
        ns = _shared_namespace(self.segment, _anonymous("namespace"), None)
        for k, v in kwargs.items():
            setattr(ns, k, v)
        return ns

    def Value(self, typecode: Any, value: Any, lock: bool = True) -> SharedValue:  # noqa: N802
        """A new shared value (``.value``, ``get()``, ``set()``)."""
        return SharedValue(self.segment, _anonymous("value"), typecode, value)

    def Lock(self) -> _SegmentMutex:  # noqa: N802
        """A new shared lock (reentrant here: shmkit's locks are)."""
        return self.segment.mutex(_anonymous("lock"))

    RLock = Lock

    def Event(self) -> _SegmentEvent:  # noqa: N802
        """A new shared event."""
        return self.segment.event(_anonymous("event"))

    def Barrier(  # noqa: N802
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> _SegmentBarrier:
        """A new shared barrier."""
        return self.segment.barrier(_anonymous("barrier"), parties, action, timeout)

    def Mutex(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Mutex:  # noqa: N802
        """A new shared ``Mutex``."""
        return Mutex(lock=self.segment.mutex(_anonymous("mutex")), timeout=timeout)

    def MutexedDict(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        """A new shared ``MutexedDict``."""
        from .testbed.caching import MutexedDict

        return MutexedDict(*args, _segment=self.segment, **kwargs)

    def MutexedNamespace(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> SharedNamespace:  # noqa: N802
        """A new shared ``MutexedNamespace``."""
        return _shared_namespace(self.segment, _anonymous("namespace"), timeout)

    def NamedEvent(self, name: str) -> _SegmentEvent:  # noqa: N802
        """The event ``name``."""
        return self.get_event(name)


class SharedValue:
    """``manager.Value(typecode, value)``: ``.value`` shared by every process holding it."""

    def __init__(self, seg: Segment, name: str, typecode: Any, value: Any) -> None:
        from .testbed.caching import MutexedDict

        self._store = MutexedDict(_segment=seg, _name=name)
        self._typecode = typecode
        self._store["value"] = value

    def get(self) -> Any:
        return self._store["value"]

    def set(self, value: Any) -> None:
        self._store["value"] = value

    value = property(get, set)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._typecode!r}, {self.get()!r})"

    def __reduce__(self) -> Any:
        return (_rebuild_value, (self._store, self._typecode))


def _rebuild_value(store: Any, typecode: Any) -> SharedValue:
    obj = object.__new__(SharedValue)
    obj._store = store
    obj._typecode = typecode
    return obj


class SharedList:
    """``manager.list()``: a list shared by every process holding it (each operation atomic
    under its lock; items are pickled copies, as a manager's are)."""

    def __init__(self, seg: Segment, name: str, sequence: Any = ()) -> None:
        from .testbed.caching import MutexedDict

        self._store = MutexedDict(_segment=seg, _name=name)
        self._store["items"] = list(sequence)

    def _items(self) -> builtins.list[Any]:
        items: builtins.list[Any] = self._store["items"]
        return items

    def _change(self, change: Callable[[builtins.list[Any]], Any]) -> Any:
        with self._store:
            items = self._items()
            result = change(items)
            self._store["items"] = items
            return result

    def __len__(self) -> int:
        return len(self._items())

    def __getitem__(self, index: Any) -> Any:
        return self._items()[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self._change(lambda items: items.__setitem__(index, value))

    def __delitem__(self, index: Any) -> None:
        self._change(lambda items: items.__delitem__(index))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items())

    def __contains__(self, value: object) -> bool:
        return value in self._items()

    def __eq__(self, other: object) -> bool:
        return self._items() == (list(other) if isinstance(other, SharedList) else other)

    def append(self, value: Any) -> None:
        self._change(lambda items: items.append(value))

    def extend(self, values: Any) -> None:
        values = list(values)
        self._change(lambda items: items.extend(values))

    def insert(self, index: int, value: Any) -> None:
        self._change(lambda items: items.insert(index, value))

    def pop(self, index: int = -1) -> Any:
        return self._change(lambda items: items.pop(index))

    def remove(self, value: Any) -> None:
        self._change(lambda items: items.remove(value))

    def clear(self) -> None:
        self._change(lambda items: items.clear())

    def index(self, value: Any, *args: Any) -> int:
        return self._items().index(value, *args)

    def count(self, value: Any) -> int:
        return self._items().count(value)

    def sort(self, **kwargs: Any) -> None:
        self._change(lambda items: items.sort(**kwargs))

    def reverse(self) -> None:
        self._change(lambda items: items.reverse())

    def _getvalue(self) -> builtins.list[Any]:
        return self._items()

    def __repr__(self) -> str:
        return repr(self._items())

    def __reduce__(self) -> Any:
        return (_rebuild_list, (self._store,))


def _rebuild_list(store: Any) -> SharedList:
    obj = object.__new__(SharedList)
    obj._store = store
    return obj


#: catkit's CI type: a shared singleton namespace at its own address, 2 s lock timeout.
SHARED_STATE_ADDRESS = ("127.0.0.1", 7001)
SharedState = MutexedNamespaceSingleton.factory(address=SHARED_STATE_ADDRESS, name="SharedState", timeout=2)
