//! `Mutex.acquire`, `release`, `__enter__` and `__exit__` as plain C methods.
//!
//! An uncontended acquire + release is two compare-and-swaps, a few nanoseconds; a PyO3
//! method call around each (trampoline, attach bookkeeping, argument extraction, result
//! conversion) costs several times that, which put a shmkit mutex behind
//! `multiprocessing.RLock` (a C method around a semaphore). So these four methods are
//! installed on the class as C functions that handle only the common case — `acquire()` of
//! a free mutex, `release()` of a mutex held once with nobody waiting — and hand everything
//! else (arguments, waiting, errors, reentrancy, owner death) unchanged to the PyO3 methods
//! they replace, kept on the class as `_acquire_full`, `_release_full`, `_enter_full` and
//! `_exit_full`. The fast paths take no Python object apart from `self` and return a
//! singleton, so they need none of PyO3's machinery.

use crate::mutex::PyMutex;
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::{c_int, CStr};
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

/// The full (PyO3) method each fast one falls back to, by the name it was installed under.
struct Fallbacks {
    acquire: Py<PyAny>,
    release: Py<PyAny>,
    enter: Py<PyAny>,
    exit: Py<PyAny>,
}

static FALLBACKS: OnceLock<Fallbacks> = OnceLock::new();

/// The `PyMutex` inside `slf`.
///
/// # Safety
/// `slf` is a live `shmkit.Mutex` (a method descriptor checks its receiver's type before
/// calling) and the thread is attached to the interpreter (it is running a method call).
unsafe fn mutex_of<'a>(slf: *mut ffi::PyObject) -> &'a PyMutex {
    // SAFETY: attached, as the caller guarantees; the token does not escape this function
    // except through the returned reference, which the caller uses within its call.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: `slf` is a valid borrowed pointer to a `Mutex` instance, as guaranteed.
    let any = unsafe { Bound::ref_from_ptr(py, &slf) };
    // SAFETY: its type is `PyMutex`'s (checked by the descriptor); frozen, so `get` needs
    // no borrow flag, and the object outlives the call that borrowed it.
    let bound = unsafe { any.cast_unchecked::<PyMutex>() };
    let inner: *const PyMutex = bound.get();
    // SAFETY: the object stays alive for the duration of the method call.
    unsafe { &*inner }
}

/// A new reference to `True` / `False` / `None` / `slf`.
///
/// # Safety
/// Attached to the interpreter; `obj` a valid object.
unsafe fn new_ref(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as the caller guarantees.
    unsafe { ffi::Py_IncRef(obj) };
    obj
}

/// Calls the full method `full` on `slf` with the call's own (vectorcall) arguments:
/// `nargs` positional ones in `args`, then one per name in `kwnames`.
///
/// # Safety
/// Attached; `slf` a `Mutex`; `args` holds `nargs` + `len(kwnames)` valid objects (or is
/// unused when both are 0); `kwnames` a tuple of str or null.
unsafe fn fall_back(
    full: impl FnOnce(&Fallbacks) -> &Py<PyAny>,
    slf: *mut ffi::PyObject,
    Args {
        args,
        nargs,
        kwnames,
    }: Args,
) -> *mut ffi::PyObject {
    let Some(fallbacks) = FALLBACKS.get() else {
        // Never: installed before the class is reachable. Fail as a Python error.
        // SAFETY: attached.
        unsafe {
            ffi::PyErr_SetString(
                ffi::PyExc_RuntimeError,
                c"shmkit.Mutex fast methods used before installation".as_ptr(),
            )
        };
        return std::ptr::null_mut();
    };
    let method = full(fallbacks).as_ptr();
    // SAFETY: attached; every pointer is valid as guaranteed; the tuple and dict made here
    // are released below whatever the call returns (`PyTuple_SetItem` steals the references
    // it is given, each taken just before).
    unsafe {
        let positional = ffi::PyTuple_New(nargs + 1);
        if positional.is_null() {
            return std::ptr::null_mut();
        }
        ffi::Py_IncRef(slf);
        ffi::PyTuple_SetItem(positional, 0, slf);
        for i in 0..nargs {
            let item = *args.offset(i);
            ffi::Py_IncRef(item);
            ffi::PyTuple_SetItem(positional, i + 1, item);
        }
        let mut kwargs = std::ptr::null_mut();
        if !kwnames.is_null() {
            kwargs = ffi::PyDict_New();
            if kwargs.is_null() {
                ffi::Py_DecRef(positional);
                return std::ptr::null_mut();
            }
            for k in 0..ffi::PyTuple_Size(kwnames) {
                let name = ffi::PyTuple_GetItem(kwnames, k);
                if ffi::PyDict_SetItem(kwargs, name, *args.offset(nargs + k)) != 0 {
                    ffi::Py_DecRef(kwargs);
                    ffi::Py_DecRef(positional);
                    return std::ptr::null_mut();
                }
            }
        }
        let result = ffi::PyObject_Call(method, positional, kwargs);
        ffi::Py_DecRef(positional);
        if !kwargs.is_null() {
            ffi::Py_DecRef(kwargs);
        }
        result
    }
}

/// A call's (vectorcall) arguments: `nargs` positional ones in `args`, then one per name in
/// `kwnames`.
#[derive(Clone, Copy)]
struct Args {
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
}

/// No arguments (a METH_NOARGS call).
const NO_ARGS: Args = Args {
    args: std::ptr::null(),
    nargs: 0,
    kwnames: std::ptr::null_mut(),
};

/// The common shape of the four methods: when the call is the plain one (`plain_nargs`
/// positional arguments, no keywords) and the fast path `fast` succeeds on `slf`'s mutex,
/// answer with a new reference to `answer`; otherwise — other arguments, the full path
/// needed, or a panic — call the full method.
///
/// # Safety
/// Called from one of the methods below with the interpreter's arguments: attached, `slf` a
/// `Mutex`, `answer` a valid object, `args` as `fall_back` requires.
#[inline(always)]
unsafe fn fast_or_full(
    slf: *mut ffi::PyObject,
    plain_nargs: ffi::Py_ssize_t,
    fast: impl Fn(&shmkit::Mutex) -> bool,
    answer: *mut ffi::PyObject,
    full: fn(&Fallbacks) -> &Py<PyAny>,
    args: Args,
) -> *mut ffi::PyObject {
    // SAFETY: as the caller guarantees.
    unsafe {
        if args.nargs == plain_nargs && args.kwnames.is_null() {
            let done = std::panic::catch_unwind(AssertUnwindSafe(|| fast(&mutex_of(slf).inner)));
            if matches!(done, Ok(true)) {
                return new_ref(answer);
            }
        }
        fall_back(full, slf, args)
    }
}

/// `acquire(blocking=True, timeout=None)`: the plain calls are `acquire()` and
/// `acquire(False)` (a try, which catkit-style wrappers make before a timed wait); a try that
/// finds the mutex taken goes to the full method, which answers reentry and owner death.
unsafe extern "C" fn acquire(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let args = Args {
        args,
        nargs,
        kwnames,
    };
    // SAFETY: called by the interpreter as a METH_FASTCALL | METH_KEYWORDS method of
    // `Mutex`: attached, `slf` a `Mutex`, the arguments as `fall_back` requires.
    unsafe {
        let answer = ffi::Py_True();
        let plain_nargs = if nargs == 1 && kwnames.is_null() && *args.args == ffi::Py_False() {
            1
        } else {
            0
        };
        fast_or_full(
            slf,
            plain_nargs,
            shmkit::Mutex::try_acquire_free,
            answer,
            |f| &f.acquire,
            args,
        )
    }
}

/// `release()`.
unsafe extern "C" fn release(
    slf: *mut ffi::PyObject,
    _unused: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by the interpreter as a METH_NOARGS method of `Mutex`.
    unsafe {
        let answer = ffi::Py_None();
        fast_or_full(
            slf,
            0,
            shmkit::Mutex::try_release_fast,
            answer,
            |f| &f.release,
            NO_ARGS,
        )
    }
}

/// `__enter__()`: acquire with the handle's default timeout; returns the mutex.
unsafe extern "C" fn enter(
    slf: *mut ffi::PyObject,
    _unused: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by the interpreter as a METH_NOARGS method of `Mutex`.
    unsafe {
        fast_or_full(
            slf,
            0,
            shmkit::Mutex::try_acquire_free,
            slf,
            |f| &f.enter,
            NO_ARGS,
        )
    }
}

/// `__exit__(exc_type, exc, tb)`: release; never swallows the exception.
unsafe extern "C" fn exit(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let args = Args {
        args,
        nargs,
        kwnames,
    };
    // SAFETY: called by the interpreter as a METH_FASTCALL | METH_KEYWORDS method of `Mutex`.
    unsafe {
        let answer = ffi::Py_False();
        fast_or_full(
            slf,
            3,
            shmkit::Mutex::try_release_fast,
            answer,
            |f| &f.exit,
            args,
        )
    }
}

/// A method definition that lives as long as the process (the descriptor points at it).
fn leaked(
    name: &'static CStr,
    meth: ffi::PyMethodDefPointer,
    flags: c_int,
    doc: &'static CStr,
) -> *mut ffi::PyMethodDef {
    Box::into_raw(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: meth,
        ml_flags: flags,
        ml_doc: doc.as_ptr(),
    }))
}

/// Installs the fast methods on `shmkit.Mutex`, keeping the PyO3 ones as fallbacks.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    let class = py.get_type::<PyMutex>();
    let original = |name: &str| -> PyResult<Py<PyAny>> {
        let dict = class.getattr("__dict__")?;
        Ok(dict.get_item(name)?.unbind())
    };
    let fallbacks = Fallbacks {
        acquire: original("acquire")?,
        release: original("release")?,
        enter: original("__enter__")?,
        exit: original("__exit__")?,
    };
    class.setattr("_acquire_full", fallbacks.acquire.bind(py))?;
    class.setattr("_release_full", fallbacks.release.bind(py))?;
    class.setattr("_enter_full", fallbacks.enter.bind(py))?;
    class.setattr("_exit_full", fallbacks.exit.bind(py))?;
    if FALLBACKS.set(fallbacks).is_err() {
        return Ok(()); // a second module initialisation: already installed
    }
    let fastcall = ffi::METH_FASTCALL | ffi::METH_KEYWORDS;
    let defs = [
        (
            "acquire",
            leaked(
                c"acquire",
                ffi::PyMethodDefPointer {
                    PyCFunctionFastWithKeywords: acquire,
                },
                fastcall,
                c"acquire($self, /, blocking=True, timeout=None)\n--\n\nAcquires the mutex, as \
                  `threading.RLock.acquire`: True once held, False if `timeout` passed (or, \
                  with `blocking=False`, if another thread holds it). `timeout=None` is this \
                  handle's default (60 s), `-1` waits forever. A previous holder's death \
                  raises `OwnerDiedError` with the mutex held by the caller.",
            ),
        ),
        (
            "release",
            leaked(
                c"release",
                ffi::PyMethodDefPointer {
                    PyCFunction: release,
                },
                ffi::METH_NOARGS,
                c"release($self, /)\n--\n\nReleases one level; `NotOwnerError` (a \
                  `RuntimeError`) if this thread does not hold it.",
            ),
        ),
        (
            "__enter__",
            leaked(
                c"__enter__",
                ffi::PyMethodDefPointer { PyCFunction: enter },
                ffi::METH_NOARGS,
                c"__enter__($self, /)\n--\n\nAcquires with the handle's default timeout \
                  (`LockTimeout` when it passes).",
            ),
        ),
        (
            "__exit__",
            leaked(
                c"__exit__",
                ffi::PyMethodDefPointer {
                    PyCFunctionFastWithKeywords: exit,
                },
                fastcall,
                c"__exit__($self, exc_type, exc, tb, /)\n--\n\nReleases one level.",
            ),
        ),
    ];
    for (name, def) in defs {
        // SAFETY: attached (`py`); the type object is `Mutex`'s; `def` lives forever.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(class.as_type_ptr(), def))?
        };
        class.setattr(name, descr)?;
    }
    Ok(())
}
