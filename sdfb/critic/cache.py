"""A content-addressed cache of critic replies, one small JSON file per key, written atomically.

The key covers everything that decides a greedy critic's reply: the problem's content, the attempt's
sampled token ids, the critic model and revision, the prompt (version and file content) and the decoding
settings. Only replies are cached, never failures, so a rerun asks again exactly what did not come back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sdfb.atomic import write_text


def attempt_hash(token_ids) -> str:
    return hashlib.sha256(json.dumps([int(t) for t in token_ids]).encode()).hexdigest()


def cache_key(problem: dict[str, str], attempt_token_hash: str, identity: dict[str, Any]) -> str:
    payload = {"problem": problem, "attempt": attempt_token_hash, "critic": identity}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class CritiqueCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        path = self._path(key)
        try:
            return json.loads(path.read_text())["reply"]
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError, TypeError):
            return None  # a damaged entry is a miss: the critic is asked again and the entry rewritten

    def put(self, key: str, reply: str, meta: dict[str, Any]) -> None:
        write_text(self._path(key), json.dumps({**meta, "reply": reply}))

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.exists() else 0
