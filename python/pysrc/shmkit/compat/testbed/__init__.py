"""catkit's ``catkit.testbed`` on shmkit: ``devices``, the device enums, ``Experiment``,
``SafetyException`` and ``Testbed`` (``from shmkit.compat.testbed import …`` where catkit
code wrote ``from catkit.testbed import …``)."""

from .caching import DeviceCacheEnum, ImmutableDeviceCacheEnum, devices
from .experiment import Experiment, SafetyException, Testbed

__all__ = ["DeviceCacheEnum", "Experiment", "ImmutableDeviceCacheEnum", "SafetyException", "Testbed", "devices"]
