"""``python -m synth`` runs the command line."""

from synth.cli import app

app(prog_name="synth")
