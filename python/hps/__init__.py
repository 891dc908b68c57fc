"""hps from Python: a zero-copy numpy binding of the hps parameter server.

A program joins a job that ``hps launch`` started::

    import numpy as np, hps
    with hps.init() as ctx, ctx.worker(width=1) as w:
        keys = np.array([1, 3, 5], dtype=np.uint64)       # sorted, unique
        w.push(keys, np.ones(3, np.float32)).wait()
        params = w.pull(keys).wait()                      # a new float32 array

Keys are uint64, values float32 or float64 (matching the key range's
HPS_DTYPE), ``width`` values per key. Every buffer is taken through the
buffer protocol without a copy and must be C-contiguous (pass
``numpy.ascontiguousarray(x)`` otherwise): hps reads and writes it in place
until the request completes, and the Request keeps it alive until then.
Dropping a Request that has not completed waits for it. Errors are
exceptions: :class:`Error` with ``.code`` (an HPS_E* number) and subclasses.
"""
import atexit
import operator as _operator
import os
import sys
import weakref

import numpy as _np

# libhps uses jemalloc, whose thread-local state needs static TLS; a module
# loaded after start-up only gets glibc's small optional reserve (512 bytes)
# unless GLIBC_TUNABLES raises it. Without it, the import fails once and
# the interpreter re-executes itself (same pid, same arguments) with it set.
_TLS_TUNABLE = "glibc.rtld.optional_static_tls=16384"
try:
    from . import _hps
except ImportError as _e:
    if "static TLS" not in str(_e) or os.environ.get("_HPS_TLS_REEXEC") == "1":
        raise
    _env = dict(os.environ, _HPS_TLS_REEXEC="1")
    _env["GLIBC_TUNABLES"] = ":".join(filter(None, [_env.get("GLIBC_TUNABLES"), _TLS_TUNABLE]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, _env)
from ._errors import (Error, InvalidArgument, KeyOrder, NoKey, TooBig, OutOfMemory, Exists, NoSpace,
                      NoJob, PeerDead, Timeout, Closed, ConfigError, ProtocolError, SystemError_,
                      HandlerError, ValueLength, Untracked)

__all__ = ["init", "serve", "Context", "Worker", "Request", "Error", "InvalidArgument", "KeyOrder", "NoKey",
           "TooBig", "OutOfMemory", "Exists", "NoSpace", "NoJob", "PeerDead", "Timeout", "Closed",
           "ConfigError", "ProtocolError", "SystemError_", "HandlerError", "ValueLength", "Untracked", "strerror",
           "version", "ROLE_WORKER", "ROLE_SERVER", "PUSH", "PULL", "PUSHPULL"]

version = _hps.version
strerror = _hps.strerror
Request = _hps.Request
ROLE_WORKER, ROLE_SERVER = _hps.ROLE_WORKER, _hps.ROLE_SERVER
PUSH, PULL, PUSHPULL = _hps.REQ_PUSH, _hps.REQ_PULL, _hps.REQ_PUSHPULL

_DTYPES = {_hps.F32: _np.float32, _hps.F64: _np.float64}


class Worker(_hps.Worker):
    """Sends requests to the servers (hps_worker_open); one per process,
    safe to share between threads. Make it with ``ctx.worker(width)``.

    push(keys, vals, *, width=0, lens=None) -> Request
    pull(keys, out=None, *, width=0, dtype=float32, out_lens=None) -> Request
    pushpull(keys, vals, out=None, *, width=0, lens=None) -> Request
    Request.wait() returns ``out`` (pull, pushpull) or None (push).
    ``width`` 0 means the worker's; ``lens`` (uint32, one per key) sends
    variable-length values; a pull with ``out_lens`` receives them.
    """

    def pull(self, keys, out=None, *, width=0, dtype=_np.float32, out_lens=None):
        """Pulls keys' values into out (a new array of len(keys) x width
        values of dtype when out is None); wait() returns out."""
        if out is None:
            if out_lens is not None:
                raise ValueError("a variable-length pull needs out (room for every value)")
            out = _np.empty((len(keys), width or self.width), dtype=dtype)
            if out.shape[1] == 1:
                out = out.reshape(len(keys))
        return super().pull(keys, out, width=width, out_lens=out_lens)

    def pushpull(self, keys, vals, out=None, *, width=0, lens=None):
        """Pushes vals, then pulls the keys' new values into out (a new
        array shaped like vals when out is None); wait() returns out."""
        if out is None:
            out = _np.empty_like(_np.asarray(vals))
        return super().pushpull(keys, vals, out, width=width, lens=lens)

    def alloc(self, n, dtype=_np.float32):
        """A numpy array of n values in this worker's shared heap: requests
        read and write it in place (no copy into the heap). The heap block
        is freed when the array is collected; the worker cannot close
        while such arrays live (delete them first)."""
        dtype = _np.dtype(dtype)
        if n <= 0:
            raise ValueError("alloc needs n > 0")
        return _np.frombuffer(self._alloc(int(n) * dtype.itemsize), dtype=dtype)

    def __repr__(self):
        return "<hps.Worker width=%d%s>" % (self.width, " closed" if self.closed else "")


class Context(_hps.Context):
    """This process's membership of a job (hps_init); make it with
    :func:`init`. ``rank``, ``role``, ``num_workers``, ``num_servers``,
    ``resume_clock`` (a worker restarted by ``hps launch --restart-workers``,
    or the start clock of one that joined), ``membership_epoch``;
    ``barrier()``; ``save(dir)`` / ``load(dir)`` checkpoints; ``close()``
    (also on leaving a ``with`` block) closes the worker and finalizes."""

    def worker(self, width=1):
        """Opens this process's worker with ``width`` values per key."""
        return Worker(self, width)

    def direct_range(self, key):
        """(first, array): the HOGWILD direct range holding key as a
        writable float32 array of shape (count, width) in the shared
        segment; row i is key first + i. No locks: see hps_direct_map."""
        block, first, count, width = self._direct(_operator.index(key))
        return first, _np.frombuffer(block, dtype=_np.float32).reshape(count, width)

    def direct(self, key):
        """The writable float32 array (count, width) of the direct range
        holding key (see direct_range for its first key)."""
        return self.direct_range(key)[1]

    def serve(self, handler=None):
        """Runs this server until every worker is done. handler(req) gets a
        :class:`ServerRequest` and returns None for a push, or the pulled
        values (an array-like of req.width values per key; with req.lens
        mode a pair (values, lens)). Raise hps.Error(code) to fail the
        request with that code. None: the built-in summing store."""
        if handler is None:
            return self._serve(None)
        return self._serve(_Trampoline(handler))

    def __repr__(self):
        if self.closed:
            return "<hps.Context closed>"
        return "<hps.Context %s %d of %d workers, %d servers>" % (
            "worker" if self.role == ROLE_WORKER else "server", self.rank, self.num_workers, self.num_servers)


class ServerRequest:
    """One request as a Python server handler sees it: type (PUSH, PULL,
    PUSHPULL), sender, timestamp, width (0 with lens), dtype, keys (uint64
    array), vals (pushed values or None), lens (uint32 array or None),
    out_cap (values the answer may hold). The arrays are copies: keeping
    them after the handler returns is safe."""
    __slots__ = ("type", "sender", "timestamp", "width", "dtype", "keys", "vals", "lens", "out_cap")

    def __repr__(self):
        return "<hps.ServerRequest type=%d sender=%d nkeys=%d>" % (self.type, self.sender, len(self.keys))


class _Trampoline:
    """Turns the C server loop's call into a ServerRequest and the answer
    into contiguous arrays of the request's dtype."""

    def __init__(self, handler):
        self.handler = handler

    def __call__(self, type_, sender, ts, width, dtype, keys, vals, lens, out_cap):
        r = ServerRequest()
        vt = _DTYPES[dtype]
        r.type, r.sender, r.timestamp, r.width, r.dtype, r.out_cap = type_, sender, ts, width, vt, out_cap
        r.keys = _np.frombuffer(keys, dtype=_np.uint64)
        r.vals = None if vals is None else _np.frombuffer(vals, dtype=vt)
        r.lens = None if lens is None else _np.frombuffer(lens, dtype=_np.uint32)
        ans = self.handler(r)
        if type_ == PUSH:
            return None
        if ans is None:
            raise ValueError("a pull's handler must return the values")
        if isinstance(ans, tuple):
            v, l = ans
            return (_np.ascontiguousarray(v, dtype=vt), _np.ascontiguousarray(l, dtype=_np.uint32))
        return (_np.ascontiguousarray(ans, dtype=vt), None)


_live = weakref.WeakSet()


def init(argv=None):
    """Joins the job described by the environment ``hps launch`` set
    (hps_init). argv (a list such as sys.argv) loses the --hps-name=value
    arguments, which override HPS_NAME. Returns a :class:`Context`."""
    ctx = _hps.init(argv, cls=Context)
    _live.add(ctx)
    return ctx


def serve(handler=None, ctx=None):
    """Runs this process as a server with a Python handler (see
    Context.serve); the program must run under ``hps launch --self-serve``.
    Joins the job first when ctx is None, and leaves it after."""
    if ctx is not None:
        return ctx.serve(handler)
    with init() as c:
        return c.serve(handler)


@atexit.register
def _close_all():
    # Leave the job cleanly at exit: the servers then count this worker as
    # closed, not dead. Contexts with live arrays stay (and die with us).
    for ctx in list(_live):
        try:
            ctx.close()
        except Error:
            pass
