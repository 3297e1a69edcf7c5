/* peninsula.supervisor._fastpath: the supervisor's hot path, compiled.
 *
 * Engine.serve(listener_fd) receives requests and answers each here when
 * it is one of the common writes of a confined process (open of a regular
 * file, create, mkdir, unlink, rename, link, and chmod, chown or utimensat
 * of a file, directory or symlink) and the policy allows it under plain
 * writable roots and plain protections. Every other request, every refusal
 * included, is handed back to the Python supervisor as the raw
 * notification ("deferred") before anything is done for it, so
 * peninsula/supervisor/handlers/ stay the one place that refuses, logs and handles
 * the rare cases (/proc and /dev paths, symlinks to magic links, FIFOs,
 * devices, O_TMPFILE, openat2, globs, deep paths, errors).
 *
 * What is done here follows the handlers and kernel/resolve.py step for step: the
 * path is read once, resolved by the supervisor with RESOLVE_NO_MAGICLINKS
 * from the target's cwd or dirfd, the object or its parent is pinned, the
 * decision is made on where the pinned object really is, ID_VALID is
 * checked after the last read of the target's state, and the call is made
 * on the pinned object with the target's umask (and, for a root
 * supervisor, its fsuid, fsgid, groups and effective capabilities, read
 * for every request). Opens are answered with ADDFD,
 * never CONTINUE.
 *
 * The files, as psutil splits its C: this one is the module (the handler
 * table, the dispatch, the Python face); common.h what they share;
 * request.c what every handler stands on; one file per handler family,
 * named as the Python family it mirrors (open.c: handlers/opens.py,
 * names.c, metadata.c, lineage.c). Which syscall number each handler
 * answers is not written here: supervisor/table.py hands it over when the
 * Engine is made (handlers=((number, name), ...)).
 */
#include "common.h"

/* The compiled handlers by name: supervisor/table.py's `compiled` column
 * names them, and _fastpath.HANDLERS lists them for its test. */
static const struct {
    const char *name;
    handler_fn fn;
    int before_judging; /* answers whoever calls: the caller is not judged first */
} handlers[] = {
    {"open", h_open},
    {"openat", h_openat},
    {"creat", h_creat},
    {"mkdir", h_mkdir},
    {"mkdirat", h_mkdirat},
    {"unlink", h_unlink},
    {"rmdir", h_rmdir},
    {"unlinkat", h_unlinkat},
    {"rename", h_rename},
    {"renameat", h_renameat},
    {"renameat2", h_renameat2},
    {"link", h_link},
    {"linkat", h_linkat},
    {"fchmod", h_fchmod},
    {"fchown", h_fchown},
    {"chmod", h_chmod},
    {"fchmodat", h_fchmodat},
    {"fchmodat2", h_fchmodat2},
    {"chown", h_chown},
    {"lchown", h_lchown},
    {"fchownat", h_fchownat},
    {"utimensat", h_utimensat},
    {"kill", h_kill},
    {"tgkill", h_tgkill},
    {"rt_tgsigqueueinfo", h_rt_tgsigqueueinfo},
    {"exit_group", h_exit_group, 1},
};
#define NHANDLERS (sizeof handlers / sizeof handlers[0])

static int dispatch(Req *r) {
    unsigned nr = (unsigned)r->n.nr;
    handler_fn handler = nr < MAX_NR ? r->engine->by_nr[nr] : NULL;
    if (handler == NULL)
        return DEFER;
    if (r->engine->before_judging[nr])
        return handler(r);
    int chosen = choose_policy(r);
    if (chosen == UNCONFINED)
        return continue_(r); /* no restriction bears on an unconfined process */
    if (chosen != 0)
        return DEFER;
    return handler(r);
}

/* -- the Python face -------------------------------------------------------- */

static int rules_from(PyObject *seq, Rule **out, int *count, int with_position) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence");
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    *out = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Rule));
    *count = 0;
    if (!*out) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        PyObject *text = item;
        int position = 0, negated = 0;
        if (with_position && !PyArg_ParseTuple(item, "Oip", &text, &position, &negated)) {
            Py_DECREF(fast);
            return -1;
        }
        char *data;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(text, &data, &len) != 0) {
            Py_DECREF(fast);
            return -1;
        }
        Rule *rule = &(*out)[i];
        rule->text = PyMem_Malloc((size_t)len + 1);
        if (!rule->text) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(rule->text, data, (size_t)len + 1);
        rule->len = (size_t)len;
        rule->position = position;
        rule->negated = negated;
        (*count)++;
    }
    Py_DECREF(fast);
    return 0;
}

static void free_rules(Rule *rules, int count) {
    if (!rules)
        return;
    for (int i = 0; i < count; i++)
        PyMem_Free(rules[i].text);
    PyMem_Free(rules);
}

static int open_dirs(Engine *self) {
    if (self->fd_dir >= 0)
        close(self->fd_dir);
    forget_status(self); /* after a fork: the child's copies, closed as fd_dir is */
    if (self->proc_dir < 0)
        self->proc_dir = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    self->fd_dir = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
    self->owner = getpid();
    return self->proc_dir >= 0 && self->fd_dir >= 0 ? 0 : -1;
}

static void free_pol(Pol *p) {
    free_rules(p->roots, p->nroots);
    free_rules(p->protect, p->nprotect);
    free_rules(p->globs, p->nglobs);
    free_rules(p->devices, p->ndevices);
    memset(p, 0, sizeof *p);
}

/* Drop every policy and everything judged: the caller's policies changed. */
static void reset(Engine *self) {
    for (int i = 0; i < self->npols; i++)
        free_pol(&self->pols[i]);
    PyMem_Free(self->pols);
    self->pols = NULL;
    self->npols = 0;
    for (int i = 0; i < JUDGED_SLOTS; i++)
        forget_judged(&self->judged[i]);
}

static void Engine_dealloc(Engine *self) {
    if (self->proc_dir >= 0)
        close(self->proc_dir);
    if (self->fd_dir >= 0)
        close(self->fd_dir);
    forget_status(self);
    reset(self);
    Py_XDECREF(self->judge);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    Engine *self = (Engine *)PyType_GenericNew(type, args, kwargs);
    if (self)
        self->proc_dir = self->fd_dir = -1;
    return (PyObject *)self;
}

static char *policy_names[] = {"roots", "protect", "globs", "devices", "hardlinked_writes", NULL};

/* Append a policy; its slot, or -1 with an exception. */
static int add_policy(Engine *self, PyObject *args, PyObject *kwargs) {
    PyObject *roots, *protect, *globs, *devices;
    int hardlinked = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOp", policy_names, &roots, &protect, &globs, &devices,
                                     &hardlinked))
        return -1;
    Pol *grown = PyMem_Realloc(self->pols, sizeof(Pol) * (size_t)(self->npols + 1));
    if (!grown) {
        PyErr_NoMemory();
        return -1;
    }
    self->pols = grown;
    Pol *p = &self->pols[self->npols];
    memset(p, 0, sizeof *p);
    if (rules_from(roots, &p->roots, &p->nroots, 0) || rules_from(protect, &p->protect, &p->nprotect, 1) ||
        rules_from(globs, &p->globs, &p->nglobs, 1) || rules_from(devices, &p->devices, &p->ndevices, 0)) {
        free_pol(p);
        return -1;
    }
    p->hardlinked_writes = hardlinked;
    return self->npols++;
}

/* handlers: ((syscall number, handler name), ...), what this engine may
 * answer. Any other request is deferred to Python. */
static int set_handlers(Engine *self, PyObject *given) {
    PyObject *fast = PySequence_Fast(given, "handlers: expected a sequence of (syscall number, handler name)");
    if (!fast)
        return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        int nr;
        const char *name;
        size_t k;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "is", &nr, &name)) {
            Py_DECREF(fast);
            return -1;
        }
        for (k = 0; k < NHANDLERS && strcmp(handlers[k].name, name) != 0; k++)
            ;
        if (nr < 0 || nr >= MAX_NR || k == NHANDLERS) {
            PyErr_Format(PyExc_ValueError, "no compiled handler %s for syscall %d", name, nr);
            Py_DECREF(fast);
            return -1;
        }
        self->by_nr[nr] = handlers[k].fn;
        self->before_judging[nr] = (unsigned char)handlers[k].before_judging;
    }
    Py_DECREF(fast);
    return 0;
}

static int Engine_init(Engine *self, PyObject *args, PyObject *kwargs) {
    if (self->owner)
        return 0; /* initialised once */
    PyObject *given = kwargs ? PyDict_GetItemString(kwargs, "handlers") : NULL;
    PyObject *rest = kwargs ? PyDict_Copy(kwargs) : PyDict_New();
    if (!rest || (given && PyDict_DelItemString(rest, "handlers") != 0)) {
        Py_XDECREF(rest);
        return -1;
    }
    PyObject *judge = PyDict_GetItemString(rest, "judge");
    int failed = 0;
    if (judge != NULL && judge != Py_None) {
        if (PyTuple_GET_SIZE(args) || PyDict_Size(rest) != 1) {
            PyErr_SetString(PyExc_TypeError, "Engine(judge=...) takes no policy: add them with add_policy()");
            failed = 1;
        } else {
            Py_INCREF(judge);
            self->judge = judge;
        }
    } else {
        failed = add_policy(self, args, rest) < 0;
    }
    Py_DECREF(rest);
    if (failed || (given && set_handlers(self, given) != 0))
        return -1;
    self->uid = geteuid();
    self->gid = getegid();
    self->root = self->uid == 0;
    int n = getgroups(MAX_GROUPS, self->groups);
    if (n < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->ngroups = n;
    qsort(self->groups, (size_t)n, sizeof(gid_t), cmp_gid);
    if (get_caps(self->caps) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    struct stat st;
    if (stat("/proc", &st) != 0) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, "/proc");
        return -1;
    }
    self->proc_dev = st.st_dev;
    if (open_dirs(self) != 0) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, "/proc/self/fd");
        return -1;
    }
    return 0;
}

static PyObject *Engine_add_policy(Engine *self, PyObject *args, PyObject *kwargs) {
    int slot = add_policy(self, args, kwargs);
    return slot < 0 ? NULL : PyLong_FromLong(slot);
}

static PyObject *Engine_reset(Engine *self, PyObject *unused) {
    (void)unused;
    reset(self);
    Py_RETURN_NONE;
}

static PyObject *Engine_forget(Engine *self, PyObject *arg) {
    long tgid = PyLong_AsLong(arg);
    if (tgid == -1 && PyErr_Occurred())
        return NULL;
    for (int i = 0; i < JUDGED_SLOTS; i++)
        if (self->judged[i].tid && self->judged[i].tgid == (pid_t)tgid)
            forget_judged(&self->judged[i]);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(serve_doc,
             "serve(listener_fd, block=True) -> None | bytes\n\n"
             "Answer requests as they come, until one needs the Python supervisor: return that\n"
             "raw notification (nothing was done for it). None when the listener hung up (no\n"
             "process is left), a signal is to be handled, a request vanished, or (block=False)\n"
             "no request is waiting.");

static PyObject *Engine_serve(Engine *self, PyObject *args) {
    int listener, block = 1;
    if (!PyArg_ParseTuple(args, "i|p", &listener, &block))
        return NULL;
    if (self->owner != getpid() && open_dirs(self) != 0)  /* used after a fork */
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "/proc/self/fd");
    Req *r = PyMem_Malloc(sizeof(Req));
    if (!r)
        return PyErr_NoMemory();
    int rc = DONE, err = 0;
    unsigned long long handled = 0;
    PyThreadState *tstate = PyEval_SaveThread();
    for (int first = 1;; first = 0) {
        struct pollfd ready = {listener, POLLIN, 0};
        /* The caller polled for the first request; after it, wait for more
         * only when this listener is all the caller serves. */
        int n = poll(&ready, 1, first ? 0 : (block ? -1 : 0));
        if (n < 0) {
            err = errno == EINTR ? 0 : errno;
            break;
        }
        if (n == 0 || !(ready.revents & POLLIN))
            break; /* nothing now, or POLLHUP: the caller's poll sees it too */
        memset(r, 0, sizeof *r);
        r->engine = self;
        r->listener = listener;
        r->tstate = &tstate;
        if (ioctl(r->listener, IOCTL_RECV, &r->n) != 0) {
            if (errno != ENOENT && errno != EAGAIN)
                err = errno == EINTR ? 0 : errno;
            break;
        }
        rc = dispatch(r);
        become_self(r);
        release(r);
        if (rc == DEFER)
            break;
        handled++;
    }
    PyEval_RestoreThread(tstate);
    self->handled += handled;
    PyObject *out;
    if (err) {
        errno = err;
        out = PyErr_SetFromErrno(PyExc_OSError);
    } else if (rc == DEFER) {
        self->deferred++;
        out = PyBytes_FromStringAndSize((const char *)&r->n, sizeof r->n);
    } else {
        out = Py_None;
        Py_INCREF(out);
    }
    PyMem_Free(r);
    return out;
}

static PyObject *Engine_allowed(Engine *self, PyObject *args) {
    char *path;
    Py_ssize_t len;
    int slot = 0;
    if (!PyArg_ParseTuple(args, "y#|i", &path, &len, &slot))
        return NULL;
    if (slot < 0 || slot >= self->npols) {
        PyErr_SetString(PyExc_IndexError, "no such policy slot");
        return NULL;
    }
    return PyBool_FromLong(allowed(&self->pols[slot], path, (size_t)len));
}

static PyObject *Engine_counts(Engine *self, PyObject *unused) {
    (void)unused;
    return Py_BuildValue("KK", self->handled, self->deferred);
}

static PyMethodDef Engine_methods[] = {
    {"serve", (PyCFunction)Engine_serve, METH_VARARGS, serve_doc},
    {"allowed", (PyCFunction)Engine_allowed, METH_VARARGS,
     "allowed(location, slot=0) -> bool: True when this engine answers a write there itself"},
    {"add_policy", (PyCFunction)(void (*)(void))Engine_add_policy, METH_VARARGS | METH_KEYWORDS,
     "add_policy(roots, protect, globs, devices, hardlinked_writes) -> slot"},
    {"reset", (PyCFunction)Engine_reset, METH_NOARGS, "reset(): drop every policy and everything judged"},
    {"forget", (PyCFunction)Engine_forget, METH_O, "forget(tgid): judge that process again at its next request"},
    {"counts", (PyCFunction)Engine_counts, METH_NOARGS, "counts() -> (handled, deferred)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "peninsula._fastpath.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Engine(roots, protect, globs, devices, hardlinked_writes, handlers=()): the compiled hot path for\n"
               "one policy; Engine(judge=f, handlers=()): for several, added with add_policy(); f(tid) -> (slot,\n"
               "tgid), slot -1 for an unconfined process, -2 for one Python must handle. handlers: ((syscall\n"
               "number, name in HANDLERS), ...), what it answers; every other request goes to Python.",
    .tp_new = Engine_new,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "peninsula.supervisor._fastpath",
    .m_doc = "The supervisor's compiled hot path (see peninsula/supervisor/fastpath.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&EngineType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    PyObject *names = PyTuple_New(NHANDLERS);
    for (size_t k = 0; names && k < NHANDLERS; k++) {
        PyObject *name = PyUnicode_FromString(handlers[k].name);
        if (!name) {
            Py_CLEAR(names);
            break;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)k, name);
    }
    if (!names || PyModule_AddObject(m, "HANDLERS", names) < 0) {
        Py_XDECREF(names);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
