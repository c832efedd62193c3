"""What people write about runs: tags, a note and a name, kept in the store (the label stays
the job system's: a sweep member's label is its cell),
searchable (``explorer``: ``tag = lecture``), carried by bundles and shown in reports. Mixed
into :class:`beta_core.store.Store`; every value is checked here, once."""
from __future__ import annotations

import json
import time

from .records import TAG
from .storebase import StoreError, validate_run_id

__all__ = ["Annotations", "MAX_TAGS", "MAX_NOTE", "MAX_NAME", "tags_of"]

MAX_TAGS, MAX_NOTE, MAX_NAME = 32, 10_000, 100


def tags_of(row: dict) -> list[str]:
    """A run row's tags (stored as a JSON list; none on a run written before tags existed)."""
    return json.loads(row.get("tags") or "[]")


class Annotations:
    """Tag, note and name runs; mixed into the store (``self._db()``)."""

    def _annotate(self, run_id: str, column: str, value) -> None:
        with self._db() as db:
            n = db.execute(f"UPDATE runs SET {column} = ?, updated = ? WHERE id = ?",
                           (value, time.time(), validate_run_id(run_id))).rowcount
        if not n:
            raise StoreError(f"Unknown run {run_id!r} (expected an id from `beta-core runs list`)")

    def tag(self, run_id: str, add=(), remove=()) -> list[str]:
        """Add and remove tags (letters, digits, ``_ . : / + -``, up to 40 characters); the tags after."""
        for t in (*add, *remove):
            if not isinstance(t, str) or not TAG.match(t):
                raise ValueError(f"Invalid tag {t!r} (expected 1 to 40 letters, digits or _ . : / + -, no spaces)")
        have = tags_of(self.get_run(run_id))
        tags = [t for t in have if t not in remove] + [t for t in dict.fromkeys(add) if t not in have]
        if len(tags) > MAX_TAGS:
            raise ValueError(f"Invalid tags: {len(tags)} on run {run_id} (expected at most {MAX_TAGS})")
        self._annotate(run_id, "tags", json.dumps(tags))
        return tags

    def note(self, run_id: str, text: str) -> None:
        """The run's note (free text, up to 10,000 characters; empty removes it)."""
        if not isinstance(text, str) or len(text) > MAX_NOTE:
            raise ValueError(f"Invalid note: expected text of at most {MAX_NOTE:,} characters")
        self._annotate(run_id, "note", text.strip() or None)

    def rename(self, run_id: str, name: str) -> None:
        """The run's name (shown in tables and legends; empty removes it)."""
        if not isinstance(name, str) or len(name) > MAX_NAME or "\n" in name:
            raise ValueError(f"Invalid name {str(name)[:40]!r} (expected one line of at most {MAX_NAME} characters)")
        self._annotate(run_id, "name", name.strip() or None)
