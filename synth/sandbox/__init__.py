"""Running untrusted generated code, isolated and bounded.

``Sandbox(config).run(program)`` executes a :class:`Program` (files + argv) in a fresh box and
returns an :class:`ExecResult` whose status is one of :class:`ExecStatus`. See ``runner`` for the
isolation, ``_init`` for what happens inside a box (and the zygote that forks boxes), and
``languages`` for solutions with tests in every language (``test_program``, ``runtime``).
"""

from __future__ import annotations

from synth.sandbox.runner import (
    ExecResult,
    ExecStatus,
    Program,
    Sandbox,
    TestVerdict,
    classify,
    detect_isolation,
    python_program,
)

__all__ = ["ExecResult", "ExecStatus", "Program", "Sandbox", "TestVerdict", "classify",
           "detect_isolation", "python_program"]
