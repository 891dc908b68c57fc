/* Server handlers in Python: hps_server_run with a trampoline that calls
 * the Python layer (hps.serve), which gives the handler numpy arrays. */
#include "hpsmod.h"

#include <string.h>

/* Copies what the Python layer returned, (vals, lens or None), into the
 * request's answer. Returns the values written or a negative status. */
static int fill_answer(hps_request *req, PyObject *ret, size_t esz)
{
	PyObject *vals, *lens;
	if (!PyTuple_Check(ret) || !PyArg_UnpackTuple(ret, "answer", 2, 2, &vals, &lens))
		return HPS_EHANDLER;
	Py_buffer v, l;
	if (PyObject_GetBuffer(vals, &v, PyBUF_C_CONTIGUOUS) < 0)
		return HPS_EHANDLER;
	int rc = HPS_EHANDLER;
	size_t n = (size_t)v.len / esz;
	if ((size_t)v.len % esz == 0 && n <= req->out_cap && n <= INT32_MAX) {
		if (req->out_lens) {
			if (lens != Py_None && PyObject_GetBuffer(lens, &l, PyBUF_C_CONTIGUOUS) == 0) {
				if ((size_t)l.len == req->nkeys * sizeof(uint32_t)) {
					memcpy(req->out_lens, l.buf, (size_t)l.len);
					memcpy(req->out, v.buf, (size_t)v.len);
					rc = (int)n;
				}
				PyBuffer_Release(&l);
			}
		} else if (lens == Py_None) {
			memcpy(req->out, v.buf, (size_t)v.len);
			rc = (int)n;
		}
	}
	PyBuffer_Release(&v);
	return rc;
}

static int trampoline(hps_request *req, void *arg)
{
	PyGILState_STATE g = PyGILState_Ensure();
	size_t esz = req->dtype == HPS_F64 ? 8 : 4;
	int rc = HPS_EHANDLER;
	PyObject *keys = PyBytes_FromStringAndSize((const char *)req->keys, (Py_ssize_t)(req->nkeys * 8));
	PyObject *vals = req->vals ? PyBytes_FromStringAndSize(req->vals, (Py_ssize_t)(req->nvals * esz))
				   : (Py_INCREF(Py_None), Py_None);
	PyObject *lens = req->lens ? PyBytes_FromStringAndSize((const char *)req->lens, (Py_ssize_t)(req->nkeys * 4))
				   : (Py_INCREF(Py_None), Py_None);
	PyObject *ret = NULL;
	if (keys && vals && lens)
		ret = PyObject_CallFunction(arg, "iiLIiOOOn", req->type, req->sender, (long long)req->timestamp,
					    (unsigned)req->width, req->dtype, keys, vals, lens, (Py_ssize_t)req->out_cap);
	if (!ret) {
		rc = hpspy_exception_status();
	} else if (req->type == HPS_REQ_PUSH) {
		rc = 0;
	} else {
		rc = fill_answer(req, ret, esz);
		if (rc < 0 && PyErr_Occurred())
			PyErr_Print();
		if (rc < 0)
			fprintf(stderr, "hps.serve: the handler's answer does not fit the request\n");
	}
	Py_XDECREF(ret);
	Py_XDECREF(keys), Py_XDECREF(vals), Py_XDECREF(lens);
	PyGILState_Release(g);
	return rc;
}

struct run_call {
	hps_ctx *ctx;
	PyObject *call;
};

static int run_nogil(void *p)
{
	struct run_call *c = p;
	return hps_server_run(c->ctx, c->call ? trampoline : NULL, c->call);
}

/* _serve(call or None): call(type, sender, ts, width, dtype, keys, vals,
 * lens, out_cap) -> (vals, lens) for pulls; None selects the built-in store. */
PyObject *hpspy_serve(hpspy_ctx *self, PyObject *args)
{
	PyObject *call;
	if (!PyArg_ParseTuple(args, "O:_serve", &call))
		return NULL;
	if (self->closed)
		return hpspy_raise(HPS_ECLOSED, "serve");
	if (call != Py_None && !PyCallable_Check(call)) {
		PyErr_SetString(PyExc_TypeError, "handler must be callable or None");
		return NULL;
	}
	if (hps_role(self->ctx) != HPS_ROLE_SERVER)
		return hpspy_raise(HPS_EINVAL, "serve: this process is a worker (serve runs under hps launch --self-serve)");
	struct run_call c = {self->ctx, call == Py_None ? NULL : call};
	Py_INCREF(call);
	self->users++;
	int rc = hpspy_nogil(run_nogil, &c);
	self->users--;
	Py_DECREF(call);
	if (rc)
		return hpspy_raise(rc, "serve");
	Py_RETURN_NONE;
}
