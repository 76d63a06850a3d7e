"""Errors synth raises on purpose, each with a message a user can act on.

Only ``synth.cli`` turns these into a red line and an exit code (``exit_code``: 1, or 3 for an
:class:`Incomplete` run that a rerun resumes); library code raises them and never prints.
Anything that is not a ``SynthError`` is a bug and keeps its traceback.

The tree::

    SynthError
    ├── ConfigError            bad option value, bad synth.toml, unknown task or template
    ├── InputError             a path that does not exist, an unreadable or malformed input file
    ├── TemplateError          a prompt template that does not load or render
    ├── LLMError               the endpoint could not be used at all
    │   ├── EndpointUnreachable  connection refused / DNS / timeout on the first contact
    │   ├── AuthenticationFailed 401 / 403 from the endpoint
    │   ├── ModelNotFound        the endpoint does not serve the requested model
    │   ├── ServerStartError     the embedded llama.cpp server did not come up
    │   └── EndpointDown         the endpoint went away mid-run for longer than --max-outage
    │                            (also an Incomplete)
    ├── StoreError             the run directory cannot be used (locked, corrupt, wrong run)
    │   └── StoreWriteFailed     a write failed mid-run (disk full, read-only): also Incomplete
    ├── Incomplete             the run stopped with records left; a rerun resumes (exit code 3)
    │   ├── BudgetExhausted      --budget-usd / --budget-tokens reached
    │   └── BatchPending         requests wait on Batch API jobs (collect, then rerun)
    ├── ExecutorUnavailable    --executor ray: Ray is missing, or cannot start / be reached
    ├── SandboxError           generated code cannot be executed safely
    │   └── IsolationUnavailable  no namespaces on this machine and --unsafe-exec not given
    └── HubError               the dataset could not be uploaded to the Hugging Face Hub
"""

from __future__ import annotations


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, systemd, Kubernetes, Slurm): a run stops as on Ctrl-C, outputs written;
    the command line exits 143 instead of 130."""


class SynthError(Exception):
    """Base of every error synth raises for a user to act on."""

    #: The process exit code the command line maps this error to.
    exit_code: int = 1


class Incomplete(SynthError):
    """The run stopped before every record was done; what finished is written, a rerun
    of the same command resumes without paying for any cached request again."""

    exit_code = 3


class ConfigError(SynthError):
    """An option, config file value or name that synth cannot use."""


class InputError(SynthError):
    """An input path or file that is missing, unreadable or malformed."""


class TemplateError(SynthError):
    """A prompt template that cannot be found, parsed or rendered."""


class LLMError(SynthError):
    """The LLM endpoint cannot be used for this run."""


class EndpointUnreachable(LLMError):
    """No answer from the endpoint's address."""


class AuthenticationFailed(LLMError):
    """The endpoint refused our credentials."""


class ModelNotFound(LLMError):
    """The endpoint answered but does not serve the requested model."""


class ServerStartError(LLMError):
    """The embedded local server could not be started."""


class EndpointDown(LLMError, Incomplete):
    """The endpoint stopped answering mid-run and did not come back within the outage limit."""

    exit_code = 3


class StoreError(SynthError):
    """The run directory or its SQLite store cannot be used."""


class StoreWriteFailed(StoreError, Incomplete):
    """A write to the run directory failed mid-run (disk full, read-only, I/O error)."""

    exit_code = 3


class BudgetExhausted(Incomplete):
    """The next request could exceed ``--budget-usd`` or ``--budget-tokens``."""


class BatchPending(Incomplete):
    """Requests were handed to the Batch API; collect them, then rerun."""


class SandboxError(SynthError):
    """The sandbox for generated code could not be set up."""


class IsolationUnavailable(SandboxError):
    """No isolation is available and the user did not allow running without it."""


class ExecutorUnavailable(SynthError):
    """The executor asked for cannot run here: Ray not installed, not started, not reachable."""


class HubError(SynthError):
    """The dataset could not be uploaded to the Hugging Face Hub."""
