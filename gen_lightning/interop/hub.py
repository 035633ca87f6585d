"""Where a Hugging Face model lives on this machine: a folder given by its path, or a name in the local cache.

Nothing is downloaded: a name is looked up with ``huggingface_hub``'s offline lookup (``local_files_only``), so a
run never waits on the network and never reads anything it was not given. A name that is not cached is refused
with the command that fetches it.
"""

from __future__ import annotations

from pathlib import Path


class HubError(ValueError):
    """A Hugging Face model folder or name that cannot be used; the message says what to do."""


def looks_like_path(source: str) -> bool:
    """A project checkpoint or a path the user meant (``runs/x/last.ckpt``, ``./folder``), not a hub name."""
    return source.endswith(".ckpt") or source.startswith((".", "/", "~")) or Path(source).exists()


def resolve(source: str, what: str = "init_from") -> Path:
    """The folder of ``source``: itself when it is a folder, else the cached snapshot of the hub model it names."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise HubError(f"{what}={source} is a file: give a Hugging Face model folder (config.json + weights)")
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(repo_id=source, local_files_only=True))
    except Exception as err:  # not cached (LocalEntryNotFoundError), or not a valid repository name
        raise HubError(
            f"{what}={source}: no such folder, and no Hugging Face model of that name in the local cache "
            f"({constants.HF_HUB_CACHE}). Fetch it once where the internet is reachable: `hf download {source}` "
            f"(older huggingface_hub: `huggingface-cli download {source}`), then run again (offline runs read the "
            "cache; HF_HUB_OFFLINE=1 keeps every library off the network), or give the model's folder"
        ) from err
