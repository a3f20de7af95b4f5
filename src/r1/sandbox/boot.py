"""The bootstrap every sandboxed program runs under: ``python -I -S -B -c BOOT <cfg_fd> <status_fd> <run_id>``.

It reads its settings (``marshal``: no import cost, unlike ``json``) from ``cfg_fd`` and closes it, then, in this
order: drops to an unprivileged uid when it starts as root, sets the resource limits, arms a parent-death signal,
restricts reads to the interpreter's files and writes to the working directory with Landlock (``rlimits`` level,
where the kernel has it), installs the seccomp filter (last, because it forbids ``execve``), reports "ready" and
runs ``main.py`` as ``__main__``. With ``tests`` it then runs each test item in the program's namespace:

- a *probe* (a tuple) computes a value and reports it, encoded by :mod:`r1.sandbox.values` (whose source this
  bootstrap embeds): ``("call", name, args, kwargs)`` calls the program's ``name`` (the arguments are plain
  values, passed in the marshalled settings);
  ``("eval", expression, {alias: name})`` evaluates an expression with ``alias`` bound to the program's ``name``.
  Nothing is judged here: the grader compares the value with the expected one in its own process, so what the
  program does to this process (patching builtins, ``__eq__`` overrides, forged lines) decides nothing;
- a *snippet* (a string such as ``assert f(1) == 2``) is run and its outcome (pass / fail / error) reported. That
  verdict is made inside the program's process: the program can fake it (see docs/sandbox.md), so graders use
  probes. ``exec``/``compile``/``eval`` are the references taken before the program ran, and ``__r1_plain__``
  (the value, round-tripped through the encoding: plain values only) is bound in the namespace for snippets that
  want a plain copy of a result.

Status lines go to ``status_fd`` as ``<nonce> <kind> <payload>``; the parent ignores lines without the nonce, which
the program never receives (it was in the closed ``cfg_fd``), so a program that merely exits early
(``sys.exit(0)``, ``os._exit(0)``) before its tests is a failure, not a pass. Kinds: ``R <seccomp> <landlock>``
ready (written once, before the program runs: a later ``R`` or ``X`` is ignored), ``X`` setup failed (sandbox
error), ``E <type>`` uncaught exception, ``T <i> pass|fail|error <type>`` one test, ``V <i> <encoded value>`` one
probe's value, ``D`` everything ran. Only the first process writes status lines; a forked child that falls
through to the end writes nothing.

The nonce is no secret from a program that looks for it (``sys._getframe``, ``gc``, the fd table): it stops
accidental exits, not a hostile program. Verdicts that must not be forgeable (the code tasks' tests) therefore
come from probe values judged outside; the sandbox, not the nonce, contains hostile code.
"""

from pathlib import Path

_BOOT = r"""
import os, sys
#R1_VALUES#
def _r1_boot(_exec=exec, _compile=compile, _eval=eval, _type=type, _dict=dict, _Exception=Exception):
    cfg_fd, st_fd = int(sys.argv[1]), int(sys.argv[2])
    chunks = []
    while True:
        b = os.read(cfg_fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(cfg_fd)
    import marshal
    cfg = marshal.loads(b"".join(chunks))
    tag = cfg["nonce"].encode() + b" "
    me = os.getpid()

    def say(line):
        if os.getpid() == me:
            try:
                os.write(st_fd, tag + line.encode("utf-8", "replace") + b"\n")
            except OSError:
                pass

    try:
        import ctypes, resource
        from struct import pack as struct_pack
        libc = ctypes.CDLL(None, use_errno=True)
        ul = ctypes.c_ulong

        def prctl(option, arg2, arg3=None):
            if libc.prctl(ctypes.c_int(option), arg2, ul(0) if arg3 is None else arg3, ul(0), ul(0)) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "prctl(%d): %s" % (option, os.strerror(e)))

        uid, gid = cfg["uid"], cfg["gid"]
        if uid is not None and os.geteuid() == 0:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if os.geteuid() == 0 or os.getuid() == 0:
                raise OSError("could not drop root")
        nproc = cfg["nproc"]
        if nproc is not None:
            if cfg["nproc_relative"]:
                me_uid = os.getuid()
                for p in os.listdir("/proc"):
                    if p.isdigit():
                        try:
                            with open("/proc/%s/status" % p) as f:
                                st = dict(l.split(":", 1) for l in f if ":" in l)
                            if int(st["Uid"].split()[0]) == me_uid:
                                nproc += int(st["Threads"])
                        except (OSError, KeyError, ValueError):
                            pass
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        for name, soft, hard in cfg["rlimits"]:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        if cfg["pdeathsig"]:
            prctl(1, ul(9))  # PR_SET_PDEATHSIG = SIGKILL (after the uid change, which clears it)
            if os.getppid() != cfg["ppid"] and cfg["ppid"]:
                raise OSError("parent exited before the sandbox started")
        landlock = 0
        if cfg["landlock"]:
            # Landlock (Linux >= 5.13): read only what the interpreter needs, write only below the working directory
            sysc = libc.syscall
            sysc.restype = ctypes.c_long
            abi = sysc(ctypes.c_long(444), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
            if abi >= 1:
                handled = (1 << 13) - 1 | ((1 << 13) if abi >= 2 else 0) | ((1 << 14) if abi >= 3 else 0)
                attr = ctypes.c_uint64(handled)
                rs = sysc(ctypes.c_long(444), ctypes.byref(attr), ctypes.c_size_t(8), ctypes.c_uint32(0))
                if rs < 0:
                    raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
                rd = (1 << 0) | (1 << 2) | (1 << 3)
                fw = (1 << 1) | (1 << 2) | ((1 << 14) if abi >= 3 else 0)
                rules = [(p, rd) for p in cfg["landlock_read"]] + [(cfg["landlock"], handled), ("/dev/null", fw)]
                for path, access in rules:
                    try:
                        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                    except OSError:  # missing, or unreadable by this uid anyway
                        continue
                    if not os.path.isdir(path):
                        access &= (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14)  # file rights only
                    attr = ctypes.create_string_buffer(struct_pack("<Qi", access & handled, fd), 12)
                    if sysc(ctypes.c_long(445), ctypes.c_int(rs), ctypes.c_int(1), attr, ctypes.c_uint32(0)) != 0:
                        raise OSError(ctypes.get_errno(), "landlock_add_rule " + path)
                    os.close(fd)
                prctl(38, ul(1))  # PR_SET_NO_NEW_PRIVS (landlock_restrict_self needs it)
                if sysc(ctypes.c_long(446), ctypes.c_int(rs), ctypes.c_uint32(0)) != 0:
                    raise OSError(ctypes.get_errno(), "landlock_restrict_self")
                os.close(rs)
                landlock = 1
            elif cfg["landlock_required"]:
                raise OSError("Landlock is unavailable")
        seccomp = 0
        if cfg["seccomp"]:
            prog = bytes.fromhex(cfg["seccomp"])
            buf = ctypes.create_string_buffer(prog, len(prog))

            class SockFprog(ctypes.Structure):
                _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

            fprog = SockFprog(len(prog) // 8, ctypes.addressof(buf))
            prctl(38, ul(1))  # PR_SET_NO_NEW_PRIVS
            prctl(22, ul(2), ctypes.byref(fprog))  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
            seccomp = 1
    except BaseException as e:
        say("X %s: %s" % (type(e).__name__, str(e).replace("\n", " ")))
        os._exit(97)

    import builtins, types
    main = cfg["main"]
    mod = types.ModuleType("__main__")
    mod.__file__ = main
    mod.__builtins__ = builtins
    if not hasattr(builtins, "exit"):  # normally added by `site`, which -S skips; programs do call exit()
        builtins.exit = builtins.quit = sys.exit
    sys.modules["__main__"] = mod
    sys.argv = [main]
    say("R %d %d" % (seccomp, landlock))
    ns = mod.__dict__
    try:
        with open(main, "rb") as f:
            src = f.read()
        _exec(_compile(src, main, "exec"), ns)
    except SystemExit:
        raise
    except BaseException as e:
        say("E " + _type(e).__name__)
        import traceback
        traceback.print_exception(_type(e), e, e.__traceback__.tb_next)
        sys.exit(1)
    tests = cfg["tests"]
    plain = lambda v: decode(encode(v))
    for i, t in enumerate(tests or ()):
        try:
            if _type(t) is str:
                ns["__r1_plain__"] = plain
                _exec(_compile(t, "<test %d>" % i, "exec"), ns)
                value = None
            elif t[0] == "call":
                if t[1] not in ns:
                    raise NameError("name %r is not defined" % t[1])
                value = encode(ns[t[1]](*t[2], **t[3]))
            else:
                g = ns
                if t[2]:
                    g = _dict(ns)
                    for alias, name in t[2].items():
                        if name not in ns:
                            raise NameError("name %r is not defined" % name)
                        g[alias] = ns[name]
                value = encode(_eval(_compile(t[1], "<probe %d>" % i, "eval"), g))
        except AssertionError:
            say("T %d fail AssertionError" % i)
        except _Exception as e:
            say("T %d error %s" % (i, _type(e).__name__))
            import traceback
            traceback.print_exception(_type(e), e, e.__traceback__.tb_next)
        else:
            say("T %d pass" % i if value is None else "V %d %s" % (i, value))
    say("D")
_r1_boot()
"""

#: The bootstrap's source, with :mod:`r1.sandbox.values` (the probes' encoding) embedded.
BOOT = _BOOT.replace("#R1_VALUES#\n", (Path(__file__).parent / "values.py").read_text(encoding="utf-8"))

__all__ = ["BOOT"]
