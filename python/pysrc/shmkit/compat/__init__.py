"""catkit on shmkit: code written for catkit's ``catkit.multiprocessing``,
``catkit.testbed.caching`` and ``catkit.testbed.experiment`` (v1.3.0) runs here with only its
imports changed::

    from catkit.multiprocessing import ...          ->  from shmkit.compat.multiprocessing import ...
    from catkit.testbed.caching import ...          ->  from shmkit.compat.testbed.caching import ...
    from catkit.testbed.experiment import ...       ->  from shmkit.compat.testbed.experiment import ...
    import catkit.testbed                           ->  import shmkit.compat.testbed as ...

(every public name is also here, ``from shmkit.compat import Process, MutexedDict, …``).

The same names, signatures, defaults (60 s timeouts), return values, exceptions and messages;
a manager server becomes a segment named after its address, shared objects live in it and
pickle by name (see `shmkit.compat.multiprocessing`); what catkit hosts on its server (registered
classes, an addressed device cache and its devices) the starting process hosts, reached through
proxies from the others (`shmkit.compat._server`). What differs, and why, is listed in
``docs/catkit-port.md``: names that exist only as no-ops (``Mutex.Proxy`` and the other proxy
classes, authkeys) and a ``Lock()`` that is reentrant.
"""

from .multiprocessing import (
    DEFAULT_SHARED_MEMORY_SERVER_ADDRESS,
    DEFAULT_TIMEOUT,
    EXCEPTION_SERVER_ADDRESS,
    Mutex,
    MutexedNamespace,
    MutexedNamespaceSingleton,
    Namespace,
    NamedEvent,
    Process,
    SharedMemoryManager,
    SharedState,
    TimeoutError,
)
from .testbed.caching import (
    ContextCache,
    DeviceCache,
    DeviceCacheEnum,
    ImmutableDeviceCacheEnum,
    MutexedDict,
    RestrictedDeviceCache,
    SharedSingletonDeviceCache,
    UserCache,
    devices,
)
from .testbed.experiment import Experiment, SafetyException, SafetyTest, StopException, Testbed

__all__ = [
    "DEFAULT_SHARED_MEMORY_SERVER_ADDRESS",
    "DEFAULT_TIMEOUT",
    "EXCEPTION_SERVER_ADDRESS",
    "ContextCache",
    "DeviceCache",
    "DeviceCacheEnum",
    "Experiment",
    "ImmutableDeviceCacheEnum",
    "Mutex",
    "MutexedDict",
    "MutexedNamespace",
    "MutexedNamespaceSingleton",
    "NamedEvent",
    "Namespace",
    "Process",
    "RestrictedDeviceCache",
    "SafetyException",
    "SafetyTest",
    "SharedMemoryManager",
    "SharedSingletonDeviceCache",
    "SharedState",
    "StopException",
    "Testbed",
    "TimeoutError",
    "UserCache",
    "devices",
]
