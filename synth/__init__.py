"""synth: turn real source code into instruction-tuning datasets for code LLMs."""

from __future__ import annotations

__version__ = "0.1.0"
