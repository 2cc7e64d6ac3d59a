"""Installed as ``sitecustomize.py`` of every Python process the sandbox starts (do not import).

`memento.eval.grading.sandbox` copies this file into the sandbox and puts it on ``PYTHONPATH``, so the
solution's interpreter and any Python it starts run it before their first line. It:

1. sets resource limits from ``MEMENTO_SANDBOX_LIMITS`` (``as,cpu,fsize`` in bytes/seconds;
   no core files); limits are inherited by every child, Python or not;
2. moves the process into a new, empty network namespace (``unshare(CLONE_NEWNET)``, or with a
   user namespace where that is what the kernel allows): no interface is up, not even loopback;
3. where that is refused, replaces the ``socket`` module's constructors with ones that raise,
   which stops ordinary Python code but not a determined escape (``_socket``, ctypes, or a
   non-Python program): the report says which of the two was in force.
"""

import ctypes
import os
import resource

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


def _apply_limits() -> None:
    spec = os.environ.get("MEMENTO_SANDBOX_LIMITS")
    if not spec:
        return
    address_space, cpu, file_size = (int(value) for value in spec.split(","))
    for limit, value in (
        (resource.RLIMIT_AS, address_space),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_FSIZE, file_size),
        (resource.RLIMIT_CORE, 0),
    ):
        if value >= 0:
            hard = resource.getrlimit(limit)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (value, value))


def _isolate_network() -> str:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for flags in (_CLONE_NEWNET, _CLONE_NEWUSER | _CLONE_NEWNET):
            if libc.unshare(flags) == 0:
                return "namespace"
    except (OSError, AttributeError):
        pass
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is disabled in the memento sandbox")

    class _NoSocket(socket.socket):
        def __init__(self, *args: object, **kwargs: object) -> None:
            refuse()

    socket.socket = _NoSocket  # type: ignore[misc]
    socket.create_connection = refuse  # type: ignore[assignment]
    socket.socketpair = refuse  # type: ignore[assignment]
    socket.getaddrinfo = refuse  # type: ignore[assignment]
    return "sockets"


_apply_limits()
if os.environ.get("MEMENTO_SANDBOX_REPORT"):
    # only the top process reports; its children inherit the namespace or patch their own sockets
    _report = os.environ.pop("MEMENTO_SANDBOX_REPORT")
    with open(_report, "w") as _handle:
        _handle.write(_isolate_network())
elif os.environ.get("MEMENTO_SANDBOX_LIMITS"):
    _isolate_network()
