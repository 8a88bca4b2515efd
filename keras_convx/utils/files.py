"""Writing outputs atomically: a file appears complete at its path, or not at all.

One helper for every writer of a single file (the CLI's reports and YAML, `.failed.json`):
the content goes to a hidden temporary file in the same folder (so the rename stays on one
file system), gets the user's usual permissions (mkstemp's 0600 is for secrets), and is
renamed over the path only once complete. Outputs proven before they are published (an
export's `.onnx`, an import's `.keras`) are staged in a whole folder the same way
(`staging_dir`, used by `keras_convx.utils.staging`).

Every such name starts with `STAGE_PREFIX` and says which process owns it (`owner_tag`), so
that what a killed run left is recognised and removed by the next run (`clean_stale`),
while a live run's folder is never touched.
"""

import contextlib
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import zlib

STAGE_PREFIX = ".keras_convx-"
# a staged name whose owner can't be checked (another host's, or one from before owners
# were named) is stale once untouched this long; a run writes into its folder as it goes
STALE_SECONDS = 3600
OTHER_HOST_STALE_SECONDS = 24 * 3600
_OWNED = re.compile(re.escape(STAGE_PREFIX) + r"p(\d+)\.([0-9a-f]{8})-")
_CWD_LOCK = threading.Lock()


def _host():
    return f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFFFFFF:08x}"


def owner_tag(pid=None):
    """`p<pid>.<host hash>`: the process that owns a staged name (this one by default)."""
    return f"p{os.getpid() if pid is None else int(pid)}.{_host()}"


def _alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by another user
        return True
    return True


def is_stale(path, now=None):
    """Whether the staged file or folder at `path` was left by a run that is gone: its
    owner, on this host, no longer runs; or, when the owner can't be checked, it has not
    been touched for `STALE_SECONDS` (`OTHER_HOST_STALE_SECONDS` for another host's)."""
    name = os.path.basename(path)
    if not name.startswith(STAGE_PREFIX):
        return False
    try:
        age = (time.time() if now is None else now) - os.lstat(path).st_mtime
    except OSError:
        return False
    owned = _OWNED.match(name)
    if owned is None:
        return age > STALE_SECONDS
    pid, host = int(owned.group(1)), owned.group(2)
    if host != _host():
        return age > OTHER_HOST_STALE_SECONDS
    if pid == os.getpid():
        return False
    # os.kill on Windows terminates instead of asking: there, only the age tells
    return age > STALE_SECONDS if os.name == "nt" else not _alive(pid)


def clean_stale(folder):
    """Removes the staged files and folders in `folder` that killed runs left; returns
    their names. Never follows a link; whatever can't be removed stays."""
    removed = []
    try:
        names = [n for n in os.listdir(folder) if n.startswith(STAGE_PREFIX)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(folder, name)
        if os.path.islink(path) or not is_stale(path):
            continue
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)
        if not os.path.lexists(path):
            removed.append(name)
    return removed


def staging_dir(folder):
    """A private folder beside the outputs in `folder` (so the final renames stay on one
    file system), named after this process; what killed runs left there is removed
    first. The caller removes it (try/finally)."""
    clean_stale(folder)
    return tempfile.mkdtemp(dir=folder, prefix=f"{STAGE_PREFIX}{owner_tag()}-")


@contextlib.contextmanager
def scratch_dir(parent=None, prefix="scratch-"):
    """A private temporary folder (in `parent`, default the system's), removed with all it
    holds when the block ends, also on failure and KeyboardInterrupt."""
    folder = tempfile.mkdtemp(dir=parent, prefix=prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def working_dir(folder):
    """Runs the block with `folder` as the current folder, for third-party code that
    writes files under relative names (onnxruntime's symbolic shape inference saves
    `sym_shape_infer_temp.onnx` and a `<uuid>.data` in the current folder when it fails).
    The current folder belongs to the whole process: the switch is serialised here, and
    code on other threads that opens relative paths meanwhile would look in `folder`."""
    with _CWD_LOCK:
        try:
            before = os.getcwd()
        except FileNotFoundError:  # the caller's folder was removed: nothing to return to
            before = None
        os.chdir(folder)
        try:
            yield folder
        finally:
            if before is not None:
                os.chdir(before)


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
    clean_stale(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{STAGE_PREFIX}{owner_tag()}-",
                               suffix=suffix)
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
