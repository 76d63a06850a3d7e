"""Generators: one module per task family, all run by :class:`synth.generators.base.TaskStage`."""

from __future__ import annotations

from synth.errors import ConfigError
from synth.generators.base import Task
from synth.generators.codegen import CodegenTask

TASKS: dict[str, type[Task]] = {CodegenTask.name: CodegenTask}


def get_task(name: str) -> Task:
    """The task called ``name``; a ConfigError lists the known ones."""
    try:
        return TASKS[name]()
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}") from None
