/* The _hps extension module: shared declarations of its types. The Python
 * package hps (python/hps/) wraps these in a friendlier layer. */
#ifndef HPS_PY_HPSMOD_H
#define HPS_PY_HPSMOD_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <hps/hps.h>

/* Requests whose values exceed this many bytes are submitted with the GIL
 * released: copying them into the shared heap takes long enough for other
 * Python threads to run meanwhile. Smaller ones keep it (cheaper). */
#define HPSPY_NOGIL_BYTES (64 * 1024)

typedef struct hpspy_worker hpspy_worker;
typedef struct hpspy_request hpspy_request;

typedef struct {
	PyObject_HEAD
	hps_ctx *ctx;
	int closed;
	int users;               /* calls running with the GIL released */
	Py_ssize_t views;        /* live direct-range blocks */
	hpspy_worker *worker;    /* the open worker (borrowed), or NULL */
	PyObject *weaklist;
} hpspy_ctx;

struct hpspy_worker {
	PyObject_HEAD
	hpspy_ctx *ctx;          /* strong */
	hps_worker *w;
	uint32_t width;
	int closed;
	int users;               /* calls running with the GIL released */
	Py_ssize_t blocks;       /* live heap blocks from alloc() */
	hpspy_request *pending;  /* requests not yet completed (list) */
	PyObject *weaklist;
};

struct hpspy_request {
	PyObject_HEAD
	hpspy_worker *worker;    /* strong while pending */
	int64_t ts;
	int status;
	int done;
	const char *op;          /* "push", "pull", "pushpull" */
	Py_buffer bufs[5];       /* keys, vals, out, lens, out_lens */
	int held[5];
	PyObject *result;        /* what wait() returns */
	hpspy_request *prev, *next;
};

/* A block of memory exported through the buffer protocol: a worker's
 * shared-heap allocation or a direct range. It keeps its owner alive. */
typedef struct {
	PyObject_HEAD
	void *ptr;
	Py_ssize_t nbytes;
	int kind;                /* HPSPY_HEAP or HPSPY_DIRECT */
	PyObject *owner;         /* hpspy_worker or hpspy_ctx, strong */
	Py_ssize_t exports;
} hpspy_block;

enum { HPSPY_HEAP = 1, HPSPY_DIRECT = 2 };

extern PyTypeObject hpspy_ctx_type, hpspy_worker_type, hpspy_request_type, hpspy_block_type;

/* Raises the exception registered for code (hps.Error or a subclass) with
 * "what: <hps_strerror text>"; returns NULL. */
PyObject *hpspy_raise(int code, const char *what);
/* Runs fn(arg) with the GIL released; returns its result. */
int hpspy_nogil(int (*fn)(void *), void *arg);
/* Waits until *users drops to 0, dropping the GIL between looks. */
void hpspy_wait_users(int *users);

/* request.c */
hpspy_request *hpspy_request_new(hpspy_worker *w, const char *op);
/* Gets a C-contiguous buffer of obj into r->bufs[slot], checking its type:
 * kind 'k' uint64 keys, 'v' float32/float64 values, 'l' uint32 lens.
 * Raises TypeError/ValueError naming `name`. Returns 0 or -1. */
int hpspy_request_take(hpspy_request *r, int slot, PyObject *obj, const char *name, int kind, int writable);
/* Waits for r (GIL released), records its status, drops its buffers. */
int hpspy_request_complete(hpspy_request *r);
void hpspy_request_link(hpspy_request *r);

enum { HPSPY_KEYS = 0, HPSPY_VALS, HPSPY_OUT, HPSPY_LENS, HPSPY_OUT_LENS };

/* block.c */
PyObject *hpspy_block_new(void *ptr, Py_ssize_t nbytes, int kind, PyObject *owner);

/* module.c: the status a Python exception (pending) maps to; clears it,
 * printing tracebacks of anything but hps.Error. */
int hpspy_exception_status(void);

/* serve.c */
PyObject *hpspy_serve(hpspy_ctx *self, PyObject *args);

/* worker.c */
int hpspy_worker_close(hpspy_worker *w);

#endif
