"""A run's final weights in the store: written atomically, read with ``weights_only=True``
(a checkpoint that holds anything but tensors is refused, never executed). torch is imported
here, when weights are read or written: listing and reading runs never needs it."""
from __future__ import annotations

import io
import os
import pickle
import warnings
from pathlib import Path

from .storebase import StoreError, validate_run_id

__all__ = ["Checkpoints"]


class Checkpoints:
    """Weights files; mixed into :class:`beta_core.store.Store` (``self.dir``, ``self.get_run``)."""

    def checkpoint_path(self, run_id: str) -> Path:
        return self.dir / validate_run_id(run_id) / "final.pt"

    def save_checkpoint(self, run_id: str, state_dict: dict) -> Path:
        """Write atomically (temp file, then rename): a full disk leaves no half checkpoint.

        Serialised in memory first, so a full disk surfaces as the OS's own "No space left on
        device" rather than a message from torch's zip writer."""
        import torch  # here, not at the top: listing and reading runs never needs torch
        path = self.checkpoint_path(run_id)
        tmp = path.with_suffix(".tmp")
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buf)
        try:
            tmp.write_bytes(buf.getbuffer())
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"Cannot write the checkpoint of run {run_id} to {str(path)!r}: {e.strerror or e} "
                             "(expected free space and a writable runs folder)") from None
        return path

    def load_checkpoint(self, run_id: str) -> dict:
        """The run's final weights. Loaded with ``weights_only=True`` always: a checkpoint that
        holds anything but tensors is refused, never executed."""
        import torch  # here, not at the top: listing and reading runs never needs torch
        path = self.checkpoint_path(run_id)
        if not path.exists():
            run = self.get_run(run_id)
            if run["status"] == "done" and run["kind"] in ("train", "surgery"):
                raise StoreError(f"Checkpoint of run {run_id} is missing: {str(path)!r} was deleted or moved "
                                 "(expected the final weights the run wrote when it finished)")
            raise StoreError(f"Run {run_id} has no checkpoint (it is {run['status']}; only training and surgery "
                             "runs that finished have one)")
        why = None
        try:
            with warnings.catch_warnings():  # torch warns about foreign pickle protocols; we say it once
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            why = "it holds objects other than tensors (refused: only weights are loaded)"
        except Exception as e:  # noqa: BLE001 - empty, truncated, random bytes: torch raises many types
            why = f"not a torch weights file ({type(e).__name__})"
        else:
            if not (isinstance(state, dict) and state and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                             for k, v in state.items())):
                why = "it does not hold a state_dict (a mapping of parameter names to tensors)"
        if why:
            raise StoreError(f"Checkpoint of run {run_id} is unreadable: {why} ({str(path)!r})")
        return state
