/* hps._hps.Request: one push, pull or pushpull in flight. It holds the
 * caller's buffers (Py_buffer views) until the request completes, so the
 * garbage collector cannot free memory hps still reads or writes; dropping
 * an unfinished request waits for it first. */
#include "hpsmod.h"

#include <string.h>

hpspy_request *hpspy_request_new(hpspy_worker *w, const char *op)
{
	hpspy_request *r = PyObject_New(hpspy_request, &hpspy_request_type);
	if (!r)
		return NULL;
	Py_INCREF(w);
	r->worker = w;
	r->ts = -1;
	r->status = 0;
	r->done = 0;
	r->op = op;
	memset(r->held, 0, sizeof r->held);
	r->result = NULL;
	r->prev = r->next = NULL;
	return r;
}

static void release_buffers(hpspy_request *r)
{
	for (int i = 0; i < 5; i++)
		if (r->held[i]) {
			r->held[i] = 0;
			PyBuffer_Release(&r->bufs[i]);
		}
}

/* The buffer formats the struct module and numpy write for each kind. */
static int format_ok(const Py_buffer *v, int kind)
{
	const char *f = v->format ? v->format : "B";
	if (*f == '@' || *f == '=' || *f == '<')
		f++;
	if (f[0] == 0 || f[1] != 0)
		return 0;
	switch (kind) {
	case 'k': return (*f == 'Q' || *f == 'L') && v->itemsize == 8;
	case 'v': return (*f == 'f' && v->itemsize == 4) || (*f == 'd' && v->itemsize == 8);
	case 'l': return (*f == 'I' || *f == 'L') && v->itemsize == 4;
	}
	return 0;
}

int hpspy_request_take(hpspy_request *r, int slot, PyObject *obj, const char *name, int kind, int writable)
{
	Py_buffer *v = &r->bufs[slot];
	if (PyObject_GetBuffer(obj, v, PyBUF_STRIDES | PyBUF_FORMAT) < 0) {
		PyErr_Format(PyExc_TypeError, "%s must support the buffer protocol (a numpy array, array.array, ...), not %.100s",
			     name, Py_TYPE(obj)->tp_name);
		return -1;
	}
	const char *want = kind == 'k' ? "uint64" : kind == 'v' ? "float32 or float64" : "uint32";
	if (!format_ok(v, kind)) {
		PyErr_Format(PyExc_TypeError, "%s must hold %s values, not format '%s' (itemsize %zd)", name, want,
			     v->format ? v->format : "B", v->itemsize);
		PyBuffer_Release(v);
		return -1;
	}
	if (!PyBuffer_IsContiguous(v, 'C')) {
		PyErr_Format(PyExc_ValueError,
			     "%s must be C-contiguous (hps reads it in place; pass numpy.ascontiguousarray(%s))", name, name);
		PyBuffer_Release(v);
		return -1;
	}
	if (writable && v->readonly) {
		PyErr_Format(PyExc_ValueError, "%s must be writable", name);
		PyBuffer_Release(v);
		return -1;
	}
	r->held[slot] = 1;
	return 0;
}

void hpspy_request_link(hpspy_request *r)
{
	hpspy_worker *w = r->worker;
	r->prev = NULL;
	r->next = w->pending;
	if (w->pending)
		w->pending->prev = r;
	w->pending = r;
}

static void unlink_request(hpspy_request *r)
{
	hpspy_worker *w = r->worker;
	if (r->prev)
		r->prev->next = r->next;
	else if (w->pending == r)
		w->pending = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

struct wait_call {
	hps_worker *w;
	int64_t ts;
};

static int wait_nogil(void *p)
{
	struct wait_call *c = p;
	return hps_wait(c->w, c->ts);
}

int hpspy_request_complete(hpspy_request *r)
{
	if (r->done)
		return r->status;
	hpspy_worker *w = r->worker;
	struct wait_call c = {w->w, r->ts};
	w->users++;
	int rc = hpspy_nogil(wait_nogil, &c);
	w->users--;
	if (!r->done) { /* another thread may have completed it meanwhile */
		r->status = rc;
		r->done = 1;
		unlink_request(r);
		release_buffers(r);
	}
	return r->status;
}

static void request_dealloc(hpspy_request *r)
{
	if (!r->done && r->ts >= 0) {
		PyObject *et, *ev, *tb;
		PyErr_Fetch(&et, &ev, &tb);
		hpspy_request_complete(r);
		PyErr_Restore(et, ev, tb);
	}
	release_buffers(r);
	Py_XDECREF(r->result);
	Py_DECREF(r->worker);
	PyObject_Free(r);
}

static PyObject *request_wait(hpspy_request *r, PyObject *unused)
{
	(void)unused;
	int rc = hpspy_request_complete(r);
	if (rc < 0)
		return hpspy_raise(rc, r->op);
	PyObject *res = r->result ? r->result : Py_None;
	Py_INCREF(res);
	return res;
}

static PyObject *request_get_done(hpspy_request *r, void *unused)
{
	(void)unused;
	return PyBool_FromLong(r->done);
}

static PyObject *request_get_ts(hpspy_request *r, void *unused)
{
	(void)unused;
	return PyLong_FromLongLong(r->ts);
}

static PyObject *request_get_op(hpspy_request *r, void *unused)
{
	(void)unused;
	return PyUnicode_FromString(r->op);
}

static PyObject *request_repr(hpspy_request *r)
{
	return PyUnicode_FromFormat("<hps.Request %s ts=%lld %s>", r->op, (long long)r->ts,
				    r->done ? (r->status ? hps_strerror(r->status) : "done") : "pending");
}

static PyGetSetDef request_getset[] = {
	{"done", (getter)request_get_done, NULL, "True once wait() (or close) saw it complete.", NULL},
	{"ts", (getter)request_get_ts, NULL, "The request's timestamp (hps_push's return).", NULL},
	{"op", (getter)request_get_op, NULL, "push, pull or pushpull.", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef request_methods[] = {
	{"wait", (PyCFunction)request_wait, METH_NOARGS,
	 "wait() -> out or None: waits (without the GIL) for completion; raises hps.Error on failure.\n"
	 "A second wait() returns (or raises) the same again."},
	{NULL, NULL, 0, NULL},
};

static PyObject *request_new(PyTypeObject *t, PyObject *a, PyObject *k)
{
	(void)t, (void)a, (void)k;
	PyErr_SetString(PyExc_TypeError, "requests come from Worker.push, pull and pushpull");
	return NULL;
}

PyTypeObject hpspy_request_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "hps.Request",
	.tp_basicsize = sizeof(hpspy_request),
	.tp_dealloc = (destructor)request_dealloc,
	.tp_repr = (reprfunc)request_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A request in flight; wait() for its result. Holds its buffers until it completes.",
	.tp_methods = request_methods,
	.tp_getset = request_getset,
	.tp_new = request_new,
};
