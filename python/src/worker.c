/* hps._hps.Worker: hps_worker_open's worker and its requests. The Python
 * subclass hps.Worker adds conveniences (pull without out, alloc as numpy). */
#include "hpsmod.h"

static int worker_ready(hpspy_worker *self, const char *what)
{
	if (self->closed || !self->w) {
		hpspy_raise(HPS_ECLOSED, what);
		return -1;
	}
	return 0;
}

static PyObject *worker_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	static char *names[] = {"ctx", "width", NULL};
	PyObject *ctxo;
	unsigned long long width = 1;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|K:Worker", names, &hpspy_ctx_type, &ctxo, &width))
		return NULL;
	hpspy_ctx *ctx = (hpspy_ctx *)ctxo;
	if (width == 0 || width > UINT32_MAX) {
		PyErr_SetString(PyExc_ValueError, "width must lie in 1 .. 2**32-1");
		return NULL;
	}
	if (ctx->closed)
		return hpspy_raise(HPS_ECLOSED, "worker");
	hpspy_worker *self = (hpspy_worker *)type->tp_alloc(type, 0);
	if (!self)
		return NULL;
	int rc = hps_worker_open(ctx->ctx, (uint32_t)width, &self->w);
	if (rc) {
		self->w = NULL;
		self->closed = 1;
		self->ctx = NULL;
		Py_DECREF(self);
		return hpspy_raise(rc, "worker");
	}
	Py_INCREF(ctx);
	self->ctx = ctx;
	self->width = (uint32_t)width;
	ctx->worker = self;
	return (PyObject *)self;
}

static int close_nogil(void *p) { return hps_worker_close(p); }

static void drain_pending(hpspy_worker *self)
{
	while (self->pending) {
		hpspy_request *r = self->pending;
		Py_INCREF(r);
		hpspy_request_complete(r);
		Py_DECREF(r);
	}
}

int hpspy_worker_close(hpspy_worker *self)
{
	if (self->closed)
		return 0;
	if (self->blocks > 0) {
		PyObject *msg = PyUnicode_FromFormat(
			"close: %zd array(s) from Worker.alloc are still alive; delete them first", self->blocks);
		if (msg) {
			hpspy_raise(HPS_EINVAL, PyUnicode_AsUTF8(msg));
			Py_DECREF(msg);
		}
		return -1;
	}
	self->closed = 1; /* no new requests from here on */
	drain_pending(self);
	hpspy_wait_users(&self->users);
	drain_pending(self); /* submitted by threads that were inside a call */
	int rc = hpspy_nogil(close_nogil, self->w);
	self->w = NULL;
	if (self->ctx && self->ctx->worker == self)
		self->ctx->worker = NULL;
	if (rc) {
		hpspy_raise(rc, "close");
		return -1;
	}
	return 0;
}

static void worker_dealloc(hpspy_worker *self)
{
	if (self->weaklist)
		PyObject_ClearWeakRefs((PyObject *)self);
	/* Requests and blocks hold the worker, so none is left. */
	if (!self->closed && self->w) {
		PyObject *et, *ev, *tb;
		PyErr_Fetch(&et, &ev, &tb);
		if (hpspy_worker_close(self) < 0)
			PyErr_WriteUnraisable((PyObject *)self);
		PyErr_Restore(et, ev, tb);
	}
	Py_XDECREF(self->ctx);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

struct submit {
	int type;
	hps_worker *w;
	const uint64_t *keys;
	size_t n;
	const void *push;
	void *pull;
	hps_opts opts;
	int64_t ts;
};

static int submit_call(void *p)
{
	struct submit *s = p;
	if (s->type == HPS_REQ_PUSH)
		s->ts = hps_push(s->w, s->keys, s->n, s->push, &s->opts);
	else if (s->type == HPS_REQ_PULL)
		s->ts = hps_pull(s->w, s->keys, s->n, s->pull, &s->opts);
	else
		s->ts = hps_pushpull(s->w, s->keys, s->n, s->push, s->pull, &s->opts);
	return 0;
}

/* Counts of the buffers in slot, in items. */
static size_t items(hpspy_request *r, int slot)
{
	return (size_t)(r->bufs[slot].len / r->bufs[slot].itemsize);
}

static PyObject *submit(hpspy_worker *self, int type, PyObject *keys, PyObject *vals, PyObject *out,
			unsigned long long width, PyObject *lens, PyObject *out_lens)
{
	const char *op = type == HPS_REQ_PUSH ? "push" : type == HPS_REQ_PULL ? "pull" : "pushpull";
	if (worker_ready(self, op) < 0)
		return NULL;
	if (width > UINT32_MAX) {
		PyErr_SetString(PyExc_ValueError, "width must lie in 0 .. 2**32-1 (0: the worker's)");
		return NULL;
	}
	hpspy_request *r = hpspy_request_new(self, op);
	if (!r)
		return NULL;
	struct submit s = {.type = type, .w = self->w};
	if (hpspy_request_take(r, HPSPY_KEYS, keys, "keys", 'k', 0) < 0)
		goto fail;
	s.n = items(r, HPSPY_KEYS);
	s.keys = r->bufs[HPSPY_KEYS].buf;
	if (s.n == 0) {
		PyErr_SetString(PyExc_ValueError, "keys is empty");
		goto fail;
	}
	if (vals && hpspy_request_take(r, HPSPY_VALS, vals, "vals", 'v', 0) < 0)
		goto fail;
	if (out && hpspy_request_take(r, HPSPY_OUT, out, "out", 'v', 1) < 0)
		goto fail;
	if (lens && lens != Py_None && hpspy_request_take(r, HPSPY_LENS, lens, "lens", 'l', 0) < 0)
		goto fail;
	if (out_lens && out_lens != Py_None && hpspy_request_take(r, HPSPY_OUT_LENS, out_lens, "out_lens", 'l', 1) < 0)
		goto fail;
	Py_ssize_t isz = (vals ? r->bufs[HPSPY_VALS] : r->bufs[HPSPY_OUT]).itemsize;
	if (vals && out && r->bufs[HPSPY_OUT].itemsize != isz) {
		PyErr_SetString(PyExc_TypeError, "out must have the dtype of vals");
		goto fail;
	}
	s.opts.dtype = isz == 8 ? HPS_F64 : HPS_F32;
	s.opts.width = (uint32_t)width;
	size_t wd = width ? (size_t)width : self->width;
	size_t nvals = vals ? items(r, HPSPY_VALS) : items(r, HPSPY_OUT);
	if (r->held[HPSPY_LENS]) {
		if (items(r, HPSPY_LENS) != s.n) {
			PyErr_Format(PyExc_ValueError, "lens has %zu entries for %zu keys", items(r, HPSPY_LENS), s.n);
			goto fail;
		}
		const uint32_t *l = r->bufs[HPSPY_LENS].buf;
		size_t sum = 0;
		for (size_t i = 0; i < s.n; i++)
			sum += l[i]; /* at most 2**61 keys x 2**32: no overflow */
		if (sum != items(r, HPSPY_VALS) || (out && sum != items(r, HPSPY_OUT))) {
			PyErr_Format(PyExc_ValueError, "lens add up to %zu values but vals%s holds %zu", sum,
				     out ? " (or out)" : "", sum != items(r, HPSPY_VALS) ? items(r, HPSPY_VALS) : items(r, HPSPY_OUT));
			goto fail;
		}
		s.opts.lens = l;
	} else if (r->held[HPSPY_OUT_LENS]) {
		if (items(r, HPSPY_OUT_LENS) != s.n) {
			PyErr_Format(PyExc_ValueError, "out_lens has %zu entries for %zu keys", items(r, HPSPY_OUT_LENS), s.n);
			goto fail;
		}
		s.opts.out_lens = r->bufs[HPSPY_OUT_LENS].buf;
		s.opts.vals_cap = nvals;
	} else {
		if (s.n > SIZE_MAX / wd || (vals && items(r, HPSPY_VALS) != s.n * wd) ||
		    (out && items(r, HPSPY_OUT) != s.n * wd)) {
			PyErr_Format(PyExc_ValueError, "%s holds %zu values but %zu keys x width %zu need %zu",
				     vals && items(r, HPSPY_VALS) != s.n * wd ? "vals" : "out",
				     vals && items(r, HPSPY_VALS) != s.n * wd ? items(r, HPSPY_VALS) : items(r, HPSPY_OUT),
				     s.n, wd, s.n * wd);
			goto fail;
		}
	}
	/* Taking a buffer may run Python code (an exporter's), which could
	 * have closed this worker. */
	if (worker_ready(self, op) < 0)
		goto fail;
	s.w = self->w;
	s.push = vals ? r->bufs[HPSPY_VALS].buf : NULL;
	s.pull = out ? r->bufs[HPSPY_OUT].buf : NULL;
	self->users++;
	if (nvals * (size_t)isz >= HPSPY_NOGIL_BYTES)
		hpspy_nogil(submit_call, &s);
	else
		submit_call(&s);
	self->users--;
	if (s.ts < 0) {
		hpspy_raise((int)s.ts, op);
		goto fail;
	}
	r->ts = s.ts;
	r->result = out ? out : Py_None;
	Py_INCREF(r->result);
	hpspy_request_link(r);
	return (PyObject *)r;
fail:
	Py_DECREF(r); /* ts < 0: releases the buffers without waiting */
	return NULL;
}

static PyObject *worker_push(hpspy_worker *self, PyObject *args, PyObject *kw)
{
	static char *names[] = {"keys", "vals", "width", "lens", NULL};
	PyObject *keys, *vals, *lens = NULL;
	unsigned long long width = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$KO:push", names, &keys, &vals, &width, &lens))
		return NULL;
	return submit(self, HPS_REQ_PUSH, keys, vals, NULL, width, lens, NULL);
}

static PyObject *worker_pull(hpspy_worker *self, PyObject *args, PyObject *kw)
{
	static char *names[] = {"keys", "out", "width", "out_lens", NULL};
	PyObject *keys, *out, *out_lens = NULL;
	unsigned long long width = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$KO:pull", names, &keys, &out, &width, &out_lens))
		return NULL;
	return submit(self, HPS_REQ_PULL, keys, NULL, out, width, NULL, out_lens);
}

static PyObject *worker_pushpull(hpspy_worker *self, PyObject *args, PyObject *kw)
{
	static char *names[] = {"keys", "vals", "out", "width", "lens", NULL};
	PyObject *keys, *vals, *out, *lens = NULL;
	unsigned long long width = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|$KO:pushpull", names, &keys, &vals, &out, &width, &lens))
		return NULL;
	return submit(self, HPS_REQ_PUSHPULL, keys, vals, out, width, lens, NULL);
}

static int clock_nogil(void *p) { return hps_clock(p); }

static PyObject *worker_clock(hpspy_worker *self, PyObject *unused)
{
	(void)unused;
	if (worker_ready(self, "clock") < 0)
		return NULL;
	self->users++;
	int rc = hpspy_nogil(clock_nogil, self->w);
	self->users--;
	if (rc)
		return hpspy_raise(rc, "clock");
	Py_RETURN_NONE;
}

static PyObject *worker_close(hpspy_worker *self, PyObject *unused)
{
	(void)unused;
	if (hpspy_worker_close(self) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *worker_enter(PyObject *self, PyObject *unused)
{
	(void)unused;
	Py_INCREF(self);
	return self;
}

static PyObject *worker_exit(hpspy_worker *self, PyObject *args)
{
	(void)args;
	return worker_close(self, NULL);
}

/* _alloc(nbytes) -> Block in this worker's shared heap */
static PyObject *worker_alloc(hpspy_worker *self, PyObject *arg)
{
	if (worker_ready(self, "alloc") < 0)
		return NULL;
	Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
	if (n == -1 && PyErr_Occurred())
		return NULL;
	if (n <= 0) {
		PyErr_SetString(PyExc_ValueError, "alloc needs a positive number of bytes");
		return NULL;
	}
	void *p = hps_alloc(self->w, (size_t)n);
	if (!p)
		return hpspy_raise(HPS_ENOMEM, "alloc: the worker's shared heap has no room for it (HPS_HEAP_MB)");
	PyObject *b = hpspy_block_new(p, n, HPSPY_HEAP, (PyObject *)self);
	if (!b)
		hps_free(self->w, p);
	return b;
}

static PyObject *worker_get_width(hpspy_worker *self, void *unused)
{
	(void)unused;
	return PyLong_FromUnsignedLong(self->width);
}

static PyObject *worker_get_closed(hpspy_worker *self, void *unused)
{
	(void)unused;
	return PyBool_FromLong(self->closed);
}

static PyObject *worker_get_ctx(hpspy_worker *self, void *unused)
{
	(void)unused;
	PyObject *c = self->ctx ? (PyObject *)self->ctx : Py_None;
	Py_INCREF(c);
	return c;
}

static PyGetSetDef worker_getset[] = {
	{"width", (getter)worker_get_width, NULL, "Values per key of requests that pass no width or lens.", NULL},
	{"closed", (getter)worker_get_closed, NULL, "True once close() ran.", NULL},
	{"ctx", (getter)worker_get_ctx, NULL, "The Context this worker belongs to.", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef worker_methods[] = {
	{"push", (PyCFunction)(void (*)(void))worker_push, METH_VARARGS | METH_KEYWORDS,
	 "push(keys, vals, *, width=0, lens=None) -> Request: adds vals to keys on the servers."},
	{"pull", (PyCFunction)(void (*)(void))worker_pull, METH_VARARGS | METH_KEYWORDS,
	 "pull(keys, out, *, width=0, out_lens=None) -> Request: reads keys' values into out."},
	{"pushpull", (PyCFunction)(void (*)(void))worker_pushpull, METH_VARARGS | METH_KEYWORDS,
	 "pushpull(keys, vals, out, *, width=0, lens=None) -> Request: push, then pull the result into out."},
	{"clock", (PyCFunction)worker_clock, METH_NOARGS, "Ends this worker's iteration (hps_clock)."},
	{"close", (PyCFunction)worker_close, METH_NOARGS,
	 "Waits for every request, then closes the worker. Refused while arrays from alloc() live."},
	{"_alloc", (PyCFunction)worker_alloc, METH_O, "_alloc(nbytes) -> Block in the shared heap."},
	{"__enter__", worker_enter, METH_NOARGS, NULL},
	{"__exit__", (PyCFunction)worker_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

PyTypeObject hpspy_worker_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "hps._hps.Worker",
	.tp_basicsize = sizeof(hpspy_worker),
	.tp_dealloc = (destructor)worker_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = "Worker(ctx, width=1): sends requests to the servers (one per process; thread-safe).",
	.tp_methods = worker_methods,
	.tp_getset = worker_getset,
	.tp_new = worker_new,
	.tp_weaklistoffset = offsetof(hpspy_worker, weaklist),
};
