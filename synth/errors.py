"""Errors synth raises on purpose, each with a message a user can act on.

Only ``synth.cli`` turns these into a red line and exit code 1; library code raises them and
never prints. Anything that is not a ``SynthError`` is a bug and keeps its traceback.

The tree::

    SynthError
    ├── ConfigError            bad option value, bad synth.toml, unknown task or template
    ├── InputError             a path that does not exist, an unreadable or malformed input file
    ├── TemplateError          a prompt template that does not load or render
    ├── LLMError               the endpoint could not be used at all
    │   ├── EndpointUnreachable  connection refused / DNS / timeout on the first contact
    │   ├── AuthenticationFailed 401 / 403 from the endpoint
    │   ├── ModelNotFound        the endpoint does not serve the requested model
    │   └── ServerStartError     the embedded llama.cpp server did not come up
    ├── StoreError             the run directory cannot be used (locked, corrupt, wrong run)
    ├── SandboxError           generated code cannot be executed safely
    │   └── IsolationUnavailable  no namespaces on this machine and --unsafe-exec not given
    └── HubError               the dataset could not be uploaded to the Hugging Face Hub
"""

from __future__ import annotations


class SynthError(Exception):
    """Base of every error synth raises for a user to act on."""


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


class StoreError(SynthError):
    """The run directory or its SQLite store cannot be used."""


class SandboxError(SynthError):
    """The sandbox for generated code could not be set up."""


class IsolationUnavailable(SandboxError):
    """No isolation is available and the user did not allow running without it."""


class HubError(SynthError):
    """The dataset could not be uploaded to the Hugging Face Hub."""
