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


def ensure_local_key(key_file: Path, hashes_file: Path) -> str:
    if not key_file.exists() or not key_file.read_text().strip():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    key = key_file.read_text().strip()
    hashes_file.write_text(json.dumps([{"name": "local", "key_sha256": key_hash(key), "sources": ["*"]}]))
    return key


if __name__ == "__main__":
    ensure_local_key(Path(sys.argv[1]), Path(sys.argv[2]))
