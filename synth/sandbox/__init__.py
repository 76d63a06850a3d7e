"""Running untrusted generated code, isolated and bounded.

``Sandbox(config).run(program)`` executes a :class:`Program` (files + argv) in a fresh box and
returns an :class:`ExecResult` whose status is one of :class:`ExecStatus`. See ``runner`` for the
isolation and ``_init`` for what happens inside a box.
"""

from __future__ import annotations

from synth.sandbox.runner import (
    ExecResult,
    ExecStatus,
    Program,
    Sandbox,
    classify,
    detect_isolation,
    python_program,
)

__all__ = ["ExecResult", "ExecStatus", "Program", "Sandbox", "classify", "detect_isolation",
           "python_program"]
