"""Writing outputs atomically: a file appears complete at its path, or not at all.

One helper for every writer (the CLI's reports and YAML, `.keras` files of imported models):
the content goes to a hidden temporary file in the same folder (so the rename stays on one
file system), gets the user's usual permissions (mkstemp's 0600 is for secrets), and is
renamed over the path only once complete. The exporter stages whole folders the same way.
"""

import contextlib
import os
import tempfile


def umask_mode(path):
    """Gives `path` the permissions a plain `open` would (0666 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path beside `path`; renames it over `path` when the block ends
    without an exception, and removes it otherwise."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".keras_convx-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        umask_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_atomic(path, data):
    """Writes `data` (str or bytes) to `path` atomically."""
    with atomic_path(path, ".tmp") as tmp:
        with open(tmp, "wb" if isinstance(data, bytes) else "w",
                  **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as f:
            f.write(data)


def save_keras_atomic(model, path):
    """`model.save(path)` atomically (Keras writes `.keras` files in several steps)."""
    with atomic_path(path, ".keras") as tmp:
        model.save(tmp)
