"""catkit's ``catkit.testbed.caching`` on shmkit: ``MutexedDict``, the device caches and the
device enums, with catkit's names, signatures, timeouts and exceptions.

A ``MutexedDict()`` is local to its process, as catkit's is; ``manager.MutexedDict()`` (or
``manager.dict()``) makes one in the manager's segment, shared with every process it is
pickled to. Either way every access holds its ``Mutex`` and raises ``TimeoutError("Failed to
acquire lock …")`` after the dict's timeout when another holder keeps it. Keys may be any
picklable hashable, values any picklable (the shared one stores pickled copies, as a
manager's dict does).

Devices: ``devices`` is catkit's restricted cache (usable only inside a running
experiment: ``with devices:``), filled by ``@devices.link(key, aliases)`` functions; enum
members are written as catkit writes them — ``("description", "config_id"[, cache])`` —
and reach their device through the cache: ``Member()``, ``Member.attribute`` (read and
written on the device), ``Member.method(...)``, ``with Member:`` / ``acquire()`` (the
device's lock), ``Enum.lock_all()``, ``Member.is_open()``. Devices live in the process
that opened them (catkit's default cache is per process too).
"""

from __future__ import annotations

import base64
import pickle
import threading
import warnings
from collections import UserDict, namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from functools import lru_cache
from typing import Any, ClassVar

from ..._dict import SharedDict
from ..._shmkit import Segment
from ...errors import PayloadError
from .. import _server
from ..multiprocessing import (
    DICT_BYTES,
    DICT_KEYS,
    Mutex,
    MutexedNamespace,
    MutexedNamespaceSingleton,
    SharedMemoryManager,
    _anonymous,
    _segment_name,
)

__all__ = [
    "ContextCache",
    "DeviceCache",
    "DeviceCacheEnum",
    "ImmutableDeviceCacheEnum",
    "MutexedDict",
    "RestrictedDeviceCache",
    "SharedSingletonDeviceCache",
    "UserCache",
    "devices",
]


class UserCache(UserDict):  # type: ignore[type-arg]
    """A dict that calls ``load(key)`` on a miss (to be overridden; ``KeyError`` here)."""

    def load(self, key: Any, *args: Any, **kwargs: Any) -> None:
        raise KeyError(key)

    def __getitem__(self, key: Any) -> Any:
        item = self.data.get(key, None)
        if item is None:
            self.load(key)
            return self.data[key]
        return item

    class Proxy:
        """Name kept for code that refers to ``UserCache.Proxy`` (no proxies here)."""


class ContextCache(UserCache):
    """A cache of context-managed items: deleting one exits it."""

    def __delitem__(self, key: Any) -> None:
        if hasattr(self.data[key], "__exit__"):
            try:
                self.data[key].__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - catkit warns and goes on
                warnings.warn(f"{key} failed to exit.", stacklevel=2)
        del self.data[key]

    def __del__(self) -> None:
        self.clear()


# ------------------------------------------------------------------ the shared store


def _encode_key(key: Any) -> str:
    """A segment dictionary's key for ``key``: a str as itself (so other shmkit code reads
    it), anything else pickled (a str that could be mistaken for one, or for the order
    record, is pickled too)."""
    if isinstance(key, str) and not key.startswith(("\x01", "\x02")):
        return key
    return "\x01" + base64.b64encode(pickle.dumps(key)).decode()


def _decode_key(key: str) -> Any:
    if key.startswith("\x01"):
        return pickle.loads(base64.b64decode(key[1:]))
    return key


def _loads(data: bytes) -> Any:
    """A stored value (what ``SharedDict(pickle=True)`` reads, without its codec's frame)."""
    try:
        return pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - a trusted writer's bytes may still be torn
        raise PayloadError(f"undecodable payload ({type(exc).__name__}: {exc})") from None


#: The record of a shared dict's keys in insertion order (a segment dictionary iterates in
#: hash order; a Python dict, and catkit's manager-side one, in insertion order).
_ORDER = "\x02order"


class _SegmentData:
    """The ``data`` of a shared ``MutexedDict``: a ``MutableMapping`` over a segment
    dictionary (pickled values, encoded keys, iterated in insertion order).

    Every change holds the segment dictionary's own (reentrant) lock, so the order record
    and the values change together whichever process writes."""

    def __init__(self, seg: Segment | None, name: str, raw: Any = None) -> None:
        self.raw = raw if raw is not None else seg._raw_dict(name, DICT_KEYS, DICT_BYTES)  # type: ignore[union-attr]
        self.dict = SharedDict(self.raw, pickle=True)
        # The lookup path bound once: a dict get is the compat layer's hottest call.
        self._raw_get = self.raw.get

    def __getitem__(self, key: Any) -> Any:
        data = self._raw_get(key if type(key) is str and key[:1] not in "\x01\x02" else _encode_key(key))
        if data is None:
            raise KeyError(key)
        return _loads(data)

    def get(self, key: Any, default: Any = None) -> Any:
        data = self._raw_get(key if type(key) is str and key[:1] not in "\x01\x02" else _encode_key(key))
        return default if data is None else _loads(data)

    def _order(self) -> list[str]:
        """The encoded keys in insertion order (keys written by other shmkit code, which
        keeps no order, after them)."""
        data = self.raw.get(_ORDER)
        order: list[str] = pickle.loads(data) if data is not None else []
        present = [k for k in self.raw.keys() if k != _ORDER]
        known = set(present)
        ordered = [k for k in order if k in known]
        seen = set(ordered)
        return ordered + [k for k in present if k not in seen]

    def __setitem__(self, key: Any, value: Any) -> None:
        encoded = _encode_key(key)
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        self.raw.acquire()
        try:
            if self.raw.get(encoded) is None:
                order = self._order()
                order.append(encoded)
                self.raw.set(_ORDER, pickle.dumps(order))
            self.raw.set(encoded, data)
        finally:
            self.raw.release()

    def __delitem__(self, key: Any) -> None:
        encoded = _encode_key(key)
        self.raw.acquire()
        try:
            if not self.raw.delete(encoded):
                raise KeyError(key)
            self.raw.set(_ORDER, pickle.dumps([k for k in self._order() if k != encoded]))
        finally:
            self.raw.release()

    def __contains__(self, key: object) -> bool:
        try:
            return self._raw_get(_encode_key(key)) is not None
        except Exception:  # noqa: BLE001 - unpicklable: not a key of this dict
            return False

    def __iter__(self) -> Iterator[Any]:
        return iter([_decode_key(k) for k in self._order()])

    def __len__(self) -> int:
        return len(self._order())

    def keys(self) -> list[Any]:
        return list(self)

    def values(self) -> list[Any]:
        return [v for _, v in self.items()]

    def items(self) -> list[tuple[Any, Any]]:
        self.raw.acquire()
        try:
            pairs = [(k, self.raw.get(k)) for k in self._order()]
        finally:
            self.raw.release()
        return [(_decode_key(k), _loads(data)) for k, data in pairs if data is not None]

    def clear(self) -> None:
        self.raw.acquire()
        try:
            for k in self.raw.keys():
                self.raw.delete(k)
        finally:
            self.raw.release()

    def copy(self) -> dict[Any, Any]:
        return dict(self.items())

    def pop(self, key: Any, *default: Any) -> Any:
        try:
            value = self[key]
        except KeyError:
            if default:
                return default[0]
            raise
        del self[key]
        return value

    def popitem(self) -> tuple[Any, Any]:
        """The last inserted pair, removed (LIFO, as a dict's)."""
        self.raw.acquire()
        try:
            keys = self._order()
            if not keys:
                raise KeyError("popitem(): dictionary is empty")
            key = _decode_key(keys[-1])
            value = self[key]
            del self[key]
            return key, value
        finally:
            self.raw.release()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            self[key] = default
            return default

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def __eq__(self, other: object) -> bool:
        return self.copy() == other

    def __repr__(self) -> str:
        return repr(self.copy())


class MutexedDict(MutexedNamespace, UserCache):
    """catkit's ``MutexedDict``: a dict (with ``load`` on a miss) whose every access holds
    its ``Mutex`` — ``MutexedDict(*args, lock=None, timeout=None, **kwargs)``; ``with d:``
    holds it longer; ``items()``/``keys()``/``values()`` return lists. Made by a manager it
    lives in the manager's segment, and every process it is pickled to shares it."""

    def __new__(cls, *args: Any, lock: Any = None, timeout: float | None = None,
                _segment: Segment | None = None, _name: str | None = None, **kwargs: Any) -> Any:
        name = None
        if _segment is not None:
            name = _name or _anonymous("dict")
            if lock is None:
                lock = _segment.mutex(f"{name}/mutex")
        obj = super().__new__(cls, lock=lock, timeout=timeout)
        # The segment dictionary's name, for `__init__` (which Python calls with the same
        # arguments, so it cannot be told the name `_anonymous` chose here).
        object.__setattr__(obj, "_catkit_dict_name", name)
        return obj

    def __init__(self, *args: Any, lock: Any = None, timeout: float | None = None,
                 _segment: Segment | None = None, _name: str | None = None, **kwargs: Any) -> None:
        if _segment is not None:
            name = object.__getattribute__(self, "_catkit_dict_name")
            object.__setattr__(self, "data", _SegmentData(_segment, name))
            if args or kwargs:
                self.update(*args, **kwargs)
        else:
            UserDict.__init__(self, *args, **kwargs)

    @property
    def shared(self) -> bool:
        """Whether this dict lives in a segment (made by a manager)."""
        return isinstance(self.__dict__["data"], _SegmentData)

    def __reduce__(self) -> Any:
        hosted = _server.reference(self)
        if hosted is not None:  # a cache the manager hosts goes to other processes as a proxy
            return hosted
        data = object.__getattribute__(self, "__dict__")["data"]
        mutex = object.__getattribute__(self, "_catkit_mutex")
        if isinstance(data, _SegmentData):
            return (_rebuild_shared_dict, (type(self), mutex, data.dict))
        return (_rebuild_local_dict, (type(self), mutex, dict(data)))

    # The hot paths reach the mutex and the data with `object.__getattribute__`: the
    # namespace's own `__getattribute__` would take the (reentrant) lock once more per name.

    def __contains__(self, key: object) -> bool:
        with _mutex(self):
            return key in _data(self)

    def __delitem__(self, key: Any) -> None:
        with _mutex(self):
            del _data(self)[key]

    def __getitem__(self, key: Any) -> Any:
        # The hottest call, so `with mutex:` is inlined: a non-blocking try on the lock
        # underneath, the compat mutex's timed acquire only when that fails.
        state = object.__getattribute__(self, "__dict__")
        mutex = state["_catkit_mutex"]
        lock = mutex._catkit_mutex
        if not lock.acquire(False):
            mutex.acquire()
        try:
            data = state["data"]
            item = data.get(key, None)
            if item is None:
                self.load(key)
                return data[key]
            return item
        finally:
            lock.release()

    def __iter__(self) -> Iterator[Any]:
        with self._catkit_mutex:
            return iter(list(self.data))

    def __len__(self) -> int:
        with self._catkit_mutex:
            return len(self.data)

    def __setitem__(self, key: Any, value: Any) -> None:
        with _mutex(self):
            _data(self)[key] = value

    def clear(self) -> None:
        with _mutex(self):
            _data(self).clear()

    def copy(self) -> Any:
        with self._catkit_mutex:
            copy = type(self)(dict(self.data.items()))
            copy.copy_from(self)
            return copy

    def copy_from(self, other: Any) -> None:
        mine = object.__getattribute__(self, "__dict__")
        for k, v in object.__getattribute__(other, "__dict__").items():
            if k != "data":
                mine[k] = v

    def get(self, key: Any, default: Any = None) -> Any:
        with _mutex(self):
            return _data(self).get(key, default)

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        with self._catkit_mutex:
            return list(self.data.items())

    def keys(self) -> list[Any]:  # type: ignore[override]
        with self._catkit_mutex:
            return list(self.data.keys())

    def values(self) -> list[Any]:  # type: ignore[override]
        with self._catkit_mutex:
            return list(self.data.values())

    def pop(self, key: Any, *default: Any) -> Any:
        with self._catkit_mutex:
            return self.data.pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        with self._catkit_mutex:
            return self.data.popitem()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        with self._catkit_mutex:
            return self.data.setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        with self._catkit_mutex:
            for k, v in dict(*args, **kwargs).items():
                self[k] = v

    class Proxy(MutexedNamespace.Proxy, UserCache.Proxy):
        """Name kept for code that refers to ``MutexedDict.Proxy`` (no proxies here)."""

    def _getvalue(self) -> dict[Any, Any]:
        """A plain copy (what a manager proxy's ``_getvalue()`` returns)."""
        with self._catkit_mutex:
            return dict(self.data.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MutexedDict):
            return self._getvalue() == other._getvalue()
        return self._getvalue() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._getvalue()!r})"


def _mutex(obj: Any) -> Mutex:
    mutex: Mutex = object.__getattribute__(obj, "_catkit_mutex")
    return mutex


def _data(obj: Any) -> Any:
    return object.__getattribute__(obj, "__dict__")["data"]


def _rebuild_shared_dict(cls: type, mutex: Mutex, store: SharedDict) -> Any:
    obj: Any = object.__new__(cls)
    object.__setattr__(obj, "_catkit_mutex", mutex)
    object.__setattr__(obj, "data", _SegmentData(None, "", raw=store._raw))
    return obj


def _rebuild_local_dict(cls: type, mutex: Mutex, data: dict[Any, Any]) -> Any:
    obj: Any = object.__new__(cls)
    object.__setattr__(obj, "_catkit_mutex", mutex)
    object.__setattr__(obj, "data", data)
    return obj


# ------------------------------------------------------------------ device caches


def _key(key: Any) -> Any:
    return key.name if isinstance(key, DeviceCacheEnum) else key


def _open_device(device: Any) -> None:
    enter = getattr(device, "__enter__", None)
    if enter is not None:
        enter()


def _close_device(device: Any) -> None:
    close = getattr(device, "_forced_safe_close", None)
    if close is not None:
        close()
    elif hasattr(device, "__exit__"):
        device.__exit__(None, None, None)
    elif hasattr(device, "close"):
        device.close()


class DeviceCache(MutexedDict):
    """catkit's ``DeviceCache``: devices by key, opened when cached and closed when removed,
    loaded on a miss by the function ``link(key, aliases)`` decorated."""

    Callback = namedtuple("Callback", ["func", "root_key", "aliases"])

    aliases: ClassVar[dict[Any, Any]] = {}
    callbacks: ClassVar[dict[Any, Any]] = {}

    def __enter__(self) -> Any:
        self.clear()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.clear()

    def __del__(self) -> None:
        try:
            self.clear()
        except Exception:  # noqa: BLE001 - at interpreter exit the devices may be gone
            pass

    def get(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        return super().get(_key(key), *args, **kwargs)

    def pop(self, key: Any, *args: Any) -> Any:
        key = _key(key)
        with self._catkit_mutex:
            if key in self.data:
                device = self.data[key]
                _close_device(device)
            return super().pop(key, *args)

    def __delitem__(self, key: Any) -> None:
        key = _key(key)
        obj = self[key]
        _close_device(obj)
        super().__delitem__(key)

    def __contains__(self, item: object) -> bool:
        return super().__contains__(_key(item))

    def __getitem__(self, item: Any) -> Any:
        item = _key(item)
        with self._catkit_mutex:
            if item in self.data:
                return self.data[item]
            ret = self.aliases.get(item)
            if ret is None:
                self.load(item)
                return self[item]
            return ret

    def __setitem__(self, key: Any, value: Any) -> None:
        key = _key(key)

        def raise_on_collision(a: Any, b: Any) -> None:
            if a is not b:
                raise KeyError(f"Cache collision: '{key}' key already exists in device cache.")

        with self._catkit_mutex:
            if key in self.data:
                raise_on_collision(self.data[key], value)
            elif key in self.aliases:
                raise_on_collision(self.aliases[key], value)
            else:
                self.data[key] = value
                _open_device(value)
                server = _server.hosting(self)
                if server is not None:
                    server.host(value)  # a shared cache's device: every process reaches it

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def open_all(self) -> Any:
        if not self.callbacks:
            return None
        for callback in self.callbacks.values():
            self[callback.root_key]
        return self

    def load(self, key: Any, *args: Any, **kwargs: Any) -> None:
        callback = self.callbacks.get(key)
        if callback is None:
            raise KeyError(
                f"The cache key '{key}' was either never decorated with link() or adequate "
                "aliases weren't provided."
            )
        key = callback.root_key
        callback = self.callbacks[key]
        self.update({key: callback.func()})
        for alias in callback.aliases or ():
            if alias in self.aliases:
                raise KeyError(f"Cache collision: '{alias}' key already exists in device cache.")
            self.aliases[alias] = self.data[key]

    def link(self, key: Any, aliases: Any = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorates the function that opens device ``key`` (also known by ``aliases``):
        the cache calls it on a miss; calling it returns the cached device if there is one."""
        key = _key(key)

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    if key in self:
                        return self[key]
                except (KeyError, NameError):
                    pass
                return func(*args, **kwargs)

            self.callbacks[key] = self.Callback(func=func, root_key=key, aliases=aliases)
            for alias in aliases or ():
                if alias in self.callbacks:
                    raise KeyError(f"Cache collision: '{alias}' key already exists in device cache.")
                self.callbacks[alias] = self.Callback(func=func, root_key=key, aliases=None)
            return wrapper

        return decorator

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Don't copy!")

    def clear(self) -> None:
        with self._catkit_mutex:
            self.aliases.clear()
            for key in list(self.data):
                try:
                    _close_device(self.data[key])
                finally:
                    del self.data[key]


class SharedSingletonDeviceCache(MutexedNamespaceSingleton, DeviceCache):
    """catkit's singleton device cache: ``Cache()`` is the same cache every time in a
    process; ``Cache.link(key)`` registers at class level. Made by ``factory(address=…)`` it
    is shared: the cache and its devices live in the process that started the manager at
    that address (catkit's server), which opens each device with its linked function, and
    every other process gets proxies — attributes read and written there, methods run there,
    the device's lock held by the caller (``shmkit.compat._server``). Without an address it
    is local to its process."""

    instance: ClassVar[Any] = None

    class Proxy(MutexedDict.Proxy):
        """Name kept for code that refers to the proxy (no proxies here)."""

    def __new__(cls, *args: Any, address: Any = None, disable_shared_memory: bool = False, **kwargs: Any) -> Any:
        if cls.instance is None:
            if address is None:
                address = getattr(cls, "address", None)
            if address is None or disable_shared_memory:
                _server.local_instance(cls)
            else:
                segment_name = _segment_name(address)
                server = _server.servers.get(segment_name)
                if server is not None:
                    # This process started the manager: it hosts the cache and its devices.
                    cls.instance = _server.proxy(server.singleton(cls))
                else:
                    SharedMemoryManager(address=address).connect()
                    cls.instance = _server.singleton_proxy(segment_name, cls)
        return cls.instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @classmethod
    def factory(cls, address: Any = None, name: str | None = None, timeout: float | None = None,
                new_class_dict: dict[str, Any] | None = None) -> type:
        """A new cache class; with ``address`` its one instance and its devices live in the
        process that started the manager there, and every process reaches them."""
        new = type(name or "NewClass", (cls,), dict(instance=None, address=address, timeout=timeout,
                                                    callbacks={}, aliases={}, **(new_class_dict or {})))
        if address is not None:
            new._catkit_segment = _segment_name(address)  # type: ignore[attr-defined]
            _server.remember_class(new._catkit_segment, new)  # type: ignore[attr-defined]
        return new

    @classmethod
    def link(cls, key: Any, aliases: Any = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Registers the function that opens device ``key`` with this class."""
        key = _key(key)

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            cls.callbacks[key] = cls.Callback(func=func, root_key=key, aliases=aliases)
            for alias in aliases or ():
                if alias in cls.callbacks:
                    raise KeyError(f"Cache collision: '{alias}' key already exists in device cache.")
                cls.callbacks[alias] = cls.Callback(func=func, root_key=key, aliases=None)

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if key in cls():
                    return cls()[key]
                return func(*args, **kwargs)

            return wrapper

        return decorator


class DeviceCacheEnum(Enum):
    """catkit's enum API to a device cache: members ``("description", "config_id"[,
    cache])``; ``Member()`` is the device, ``Member.x`` reads (and ``Member.x = v`` writes)
    the device's attribute, ``with Member:`` holds the device's lock."""

    # Annotated, not assigned: attributes of each member, not members.
    description: Any
    config_id: Any

    def __init__(self, description: Any, config_id: Any, cache: Any = None) -> None:
        self.description = description
        self.config_id = config_id
        cache = self.default_cache() if cache is None else cache
        object.__setattr__(self, "cache", cache)
        object.__setattr__(self, "cache_type", cache if isinstance(cache, type) else type(cache))
        self.__object_exists = True

    def link(self, aliases: Any = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorates the function that opens this member's device."""
        cache = object.__getattribute__(self, "cache")
        linker: Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]] = cache.link
        return linker(key=object.__getattribute__(self, "name"), aliases=aliases)

    @classmethod
    def open_all(cls) -> None:
        for device in cls:
            assert device().is_open()

    @staticmethod
    def default_cache() -> Any:
        """The cache of members that name none (catkit's ``devices``); override to change."""
        return devices

    @lru_cache(maxsize=None)  # noqa: B019 - catkit's design: members are few and permanent
    def get_device(self, name: str) -> Any:
        object.__getattribute__(self, "activate_cache")()
        cache = object.__getattribute__(self, "cache")
        device = cache[name]
        if name == object.__getattribute__(self, "_name_"):
            # Kept on the member too, for `__getattribute__`'s fast path (what the lru cache
            # holds, cleared with it by `reset()`).
            object.__getattribute__(self, "__dict__")["_catkit_device"] = device
        return device

    @classmethod
    def _missing_(cls, value: object) -> Any:
        """Looks a member up by its config_id or description (or another enum's member)."""
        if isinstance(value, DeviceCacheEnum):
            value = value.config_id
        for item in cls:
            if value in (item.config_id, item.description):
                return item
        return None

    def __call__(self) -> Any:
        return self.get_device(object.__getattribute__(self, "name"))

    def is_open(self) -> bool:
        cache = object.__getattribute__(self, "cache")
        if cache is None or isinstance(cache, type):
            return False
        name = object.__getattribute__(self, "name")
        if name in cache:
            device = cache[name]
            is_open = getattr(device, "is_open", None)
            return True if is_open is None else is_open() is not None and bool(is_open())
        return False

    def __enter__(self) -> Any:
        return self.__getattr__("acquire")()

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.__getattr__("release")()

    @classmethod
    @contextmanager
    def lock_all(cls, *args: Any, **kwargs: Any) -> Iterator[bool]:
        """Holds every member's device lock (released in any case on exit)."""
        locked_members = []
        try:
            all_locked = True
            for member in cls:
                is_locked = member.acquire(*args, **kwargs)
                locked_members.append(member)
                all_locked &= bool(is_locked)
            yield all_locked
        finally:
            for member in locked_members:
                member.release()

    def activate_cache(self, *args: Any, **kwargs: Any) -> None:
        cache = object.__getattribute__(self, "cache")
        if cache is None or isinstance(cache, type):
            cache_type = object.__getattribute__(self, "cache_type")
            object.__setattr__(self, "cache", cache_type(*args, **kwargs))

    @classmethod
    def reset(cls) -> None:
        cls.get_device.cache_clear()
        for member in cls:
            object.__setattr__(member, "cache", None)
            object.__getattribute__(member, "__dict__").pop("_catkit_device", None)

    def __getattribute__(self, item: str) -> Any:
        # catkit resolves a member's own names first and the device's in `__getattr__`. Once
        # the device is known that order is kept here without the failed lookup (an
        # exception raised and caught per device attribute read, the bulk of its cost).
        if item[0] != "_":
            state = object.__getattribute__(self, "__dict__")
            device = state.get("_catkit_device")
            if device is not None and item not in state and item not in _class_names(type(self)):
                return getattr(device, item)
        return object.__getattribute__(self, item)

    def __getattr__(self, item: str) -> Any:
        if item[0] == "_":
            return object.__getattribute__(self, item)
        device = self.get_device(object.__getattribute__(self, "name"))
        if item in ("acquire", "release") and not hasattr(device, item):
            return getattr(_device_lock(device), item)
        return getattr(device, item)

    def __setattr__(self, name: str, value: Any) -> None:
        if object.__getattribute__(self, "__dict__").get("_DeviceCacheEnum__object_exists") and name[0] != "_":
            device = self.get_device(self.name)
            setattr(device, name, value)
        else:
            object.__setattr__(self, name, value)

    def __hash__(self) -> int:
        return hash(object.__getattribute__(self, "_name_"))

    def __reduce_ex__(self, proto: Any) -> Any:
        return (getattr, (type(self), object.__getattribute__(self, "_name_")))


_names_by_class: dict[type, frozenset[str]] = {}


def _class_names(cls: type) -> frozenset[str]:
    """The names a device enum class (and its bases) defines: they shadow device names."""
    names = _names_by_class.get(cls)
    if names is None:
        names = _names_by_class[cls] = frozenset().union(*(vars(k) for k in cls.__mro__))
    return names


_device_locks: dict[int, Mutex] = {}
_device_locks_guard = threading.Lock()


def _device_lock(device: Any) -> Mutex:
    """The lock of a device that has none of its own (catkit's Instrument has one)."""
    with _device_locks_guard:
        lock = _device_locks.get(id(device))
        if lock is None:
            lock = _device_locks[id(device)] = Mutex(timeout=getattr(device, "timeout", None))
        return lock


class ImmutableDeviceCacheEnum(DeviceCacheEnum):
    """A device enum whose members refuse attribute writes (``AttributeError``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        # Names with a leading underscore are the enum machinery's (Python 3.11 sets
        # `_sort_order_` after `__init__`), as in the mutable enum.
        if "_DeviceCacheEnum__object_exists" in self.__dict__ and name[0] != "_":
            raise AttributeError("Attribute assignment prohibited.")
        object.__setattr__(self, name, value)


class RestrictedDeviceCache(DeviceCache):
    """catkit's ``devices``: only ``link`` (and its bookkeeping) until a running experiment
    unlocks it (``with devices:``); anything else is a ``NameError``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "__lock", False)
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "__lock", True)
        object.__setattr__(self, "__unrestricted", ("aliases", "Callback", "callbacks", "link", "__name__",
                                                    "__class__", "_catkit_mutex"))

    def __getattribute__(self, item: str) -> Any:
        if object.__getattribute__(self, "__lock") and item not in object.__getattribute__(self, "__unrestricted"):
            raise NameError(
                f"Access to '{item}' is restricted The device cache can only be used from a running experiment."
            )
        return super().__getattribute__(item)

    def __setattr__(self, item: str, value: Any) -> None:
        if object.__getattribute__(self, "__lock") and item not in object.__getattribute__(self, "__unrestricted"):
            raise NameError(
                f"Access to '{item}' is restricted! The device cache can only be used from a running experiment."
            )
        super().__setattr__(item, value)

    def __enter__(self) -> Any:
        object.__setattr__(self, "__lock", False)
        return super().__enter__()

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        super().__exit__(exc_type, exc_val, exc_tb)
        object.__setattr__(self, "__lock", True)

    def __del__(self) -> None:
        object.__setattr__(self, "__lock", False)
        try:
            self.clear()
        except Exception:  # noqa: BLE001
            pass


#: catkit's device cache: link at import time; usable inside a running experiment.
devices = RestrictedDeviceCache()
