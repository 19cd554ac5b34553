"""The local stack's intake key: `python -m services.intake.keys KEY_FILE HASHES_FILE`.

Creates a random key allowed for every source on first start (kept in KEY_FILE, readable by
its owner only) and writes the hash list intake reads (DOSSIER_INTAKE_API_KEYS_FILE).
"""

import json
import os
import secrets
import sys
from pathlib import Path

from shared.auth import key_hash


def local_secret(path: Path, nbytes: int) -> str:
    """The secret kept in `path` (readable by its owner only), made at random the first time."""
    if not path.exists() or not path.read_text().strip():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(nbytes) + "\n")
    return path.read_text().strip()


def ensure_local_key(key_file: Path, hashes_file: Path) -> str:
    key = local_secret(key_file, 32)
    hashes_file.write_text(json.dumps([{"name": "local", "key_sha256": key_hash(key), "sources": ["*"]}]))
    return key


if __name__ == "__main__":
    ensure_local_key(Path(sys.argv[1]), Path(sys.argv[2]))
