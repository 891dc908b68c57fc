"""hps.Error and its subclasses, one per HPS_E* code."""
from . import _hps


class Error(Exception):
    """An hps call failed: ``code`` is the HPS_E* number (negative),
    ``strerror`` hps_strerror's text, ``what`` the call."""

    _code = _hps.EINVAL

    def __init__(self, code=None, what="", strerror=None):
        # A subclass knows its code: hps.NoKey() or hps.NoKey("why") will do.
        if isinstance(code, str):
            code, what = None, code
        self.code = int(code) if code is not None else type(self)._code
        self.what = what
        self.strerror = strerror if strerror is not None else _hps.strerror(self.code)
        super().__init__("%s: %s" % (what, self.strerror) if what else self.strerror)


def _sub(name, code, doc):
    cls = type(name, (Error,), {"__doc__": doc, "__module__": "hps", "_code": code})
    _codes[code] = cls
    return cls


_codes = {}
InvalidArgument = _sub("InvalidArgument", _hps.EINVAL, "HPS_EINVAL: a bad argument.")
KeyOrder = _sub("KeyOrder", _hps.EKEYORDER, "HPS_EKEYORDER: keys not sorted ascending or not unique.")
NoKey = _sub("NoKey", _hps.ENOKEY, "HPS_ENOKEY: a key no server owns.")
TooBig = _sub("TooBig", _hps.ETOOBIG, "HPS_ETOOBIG: larger than the shared heap allows.")
OutOfMemory = _sub("OutOfMemory", _hps.ENOMEM, "HPS_ENOMEM: out of memory.")
Exists = _sub("Exists", _hps.EEXIST, "HPS_EEXIST: already exists (a second worker, a running job).")
NoSpace = _sub("NoSpace", _hps.ENOSPC, "HPS_ENOSPC: /dev/shm lacks room.")
NoJob = _sub("NoJob", _hps.ENOJOB, "HPS_ENOJOB: no job (not started by hps launch?).")
PeerDead = _sub("PeerDead", _hps.EPEERDEAD, "HPS_EPEERDEAD: a peer died before answering.")
Timeout = _sub("Timeout", _hps.ETIMEDOUT, "HPS_ETIMEDOUT: no answer within HPS_TIMEOUT_MS.")
Closed = _sub("Closed", _hps.ECLOSED, "HPS_ECLOSED: the job or the object is closed.")
ConfigError = _sub("ConfigError", _hps.ECONFIG, "HPS_ECONFIG: a wrong setting.")
ProtocolError = _sub("ProtocolError", _hps.EPROTO, "HPS_EPROTO: a malformed message or checkpoint.")
SystemError_ = _sub("SystemError_", _hps.ESYS, "HPS_ESYS: a system call failed.")
HandlerError = _sub("HandlerError", _hps.EHANDLER, "HPS_EHANDLER: the server's handler rejected it.")
ValueLength = _sub("ValueLength", _hps.EVALLEN, "HPS_EVALLEN: value length differs from the stored one.")
Untracked = _sub("Untracked", _hps.EUNTRACKED, "HPS_EUNTRACKED: the request's status is no longer kept.")

_hps._set_errors(Error, _codes)
