"""Upload a dataset directory to the Hugging Face Hub.

The token comes from ``HF_TOKEN`` in the environment only and goes straight to the hub client:
it is never written into the dataset, the card, config.json, a log or any other file. The repo
is private unless the user asks for a public one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from synth.errors import ConfigError, HubError


def push_to_hub(dataset_dir: Path, repo_id: str, private: bool = True,
                token: str | None = None) -> str:
    """Create ``repo_id`` (a dataset repo) if needed and upload ``dataset_dir`` to it.

    Returns the URL of the commit. ``token`` defaults to ``$HF_TOKEN``.
    """
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(f"--push-to-hub takes a repo id like user/name, got {repo_id!r}")
    token = token or os.environ.get("HF_TOKEN")
    if not token:
        raise ConfigError("--push-to-hub needs a Hugging Face token in HF_TOKEN (a write token "
                          "from https://huggingface.co/settings/tokens)")
    if not (dataset_dir / "README.md").is_file():
        raise HubError(f"{dataset_dir} has no README.md card; run `synth report` first")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info: Any = api.upload_folder(
            repo_id=repo_id, repo_type="dataset", folder_path=str(dataset_dir),
            commit_message="Upload dataset written by synth",
            # A dataset dir being rewritten leaves these next to it, never inside; skip
            # editor and OS droppings all the same.
            ignore_patterns=["*.tmp", ".DS_Store"])
    except HfHubHTTPError as exc:
        raise HubError(f"upload to {repo_id} failed: {exc}") from exc
    except OSError as exc:
        raise HubError(f"upload to {repo_id} failed: {exc}") from exc
    return str(getattr(info, "commit_url", info))
