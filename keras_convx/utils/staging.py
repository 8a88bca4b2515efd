"""Publishing an output through a private staging folder beside it, for both directions.

The export's `.onnx` (with its data file) and the import's `.keras` are written and proven
in a folder beside the target (`files.staging_dir`: the same file system, so publishing is
one `os.replace` per file), moved in only once proven, and kept as `<stem>.failed<ext>`
with the report as `<stem>.failed.json` when not. What is written there and how it is
checked stays with each direction: nothing here knows a file format.
"""

import os
import shutil

from keras_convx.utils.files import staging_dir, umask_mode, write_atomic


def keep_failed(path, folder, report, ext, *, whole_folder=False, stem=None):
    """Keeps what `folder` staged for `path` beside `path`, for inspection, with
    `report.to_json()` as `<stem>.failed.json`; returns the path of what was kept.

    Args:
        path: the output the staged file was meant for.
        folder: the staging folder; the staged file is `folder/<basename of path>`.
        report: what failed; anything with a `to_json()`.
        ext: the kept file's extension: `<stem>.failed<ext>`.
        whole_folder: keep the folder itself as `<stem>.failed/` instead (a model whose
            data file is found by a relative name must stay next to it).
        stem: `path` less its extension unless given.
    """
    stem = os.path.splitext(path)[0] if stem is None else stem
    if whole_folder:
        kept = stem + ".failed"
        shutil.rmtree(kept, ignore_errors=True)
        os.replace(folder, kept)
    else:
        kept = stem + ".failed" + ext
        tmp = os.path.join(folder, os.path.basename(path))
        umask_mode(tmp)
        os.replace(tmp, kept)
    write_atomic(stem + ".failed.json", report.to_json())
    return kept


class Stage:
    """A private staging folder beside `path`, named after this process (the next run
    removes it if this one is killed). Write `tmp`, then `publish` or `keep_failed`;
    `remove` (in a `finally`, or on leaving a `with` block) clears whatever is left.

    Args:
        path: the output.
        ext: the extension of the file `keep_failed` keeps (`<stem>.failed<ext>`).
        stem: the name the `.failed` files start with; default `path` less its extension.
    """

    def __init__(self, path, ext, stem=None):
        self.path = os.fspath(path)
        self.ext = ext
        self.stem = stem
        self.folder = staging_dir(os.path.dirname(os.path.abspath(self.path)))
        self.tmp = os.path.join(self.folder, os.path.basename(self.path))

    def keep_failed(self, report, whole_folder=False):
        """Keeps the staged file (or, with `whole_folder`, the folder) and the report as
        the `.failed` files; returns the kept path."""
        return keep_failed(self.path, self.folder, report, self.ext,
                           whole_folder=whole_folder, stem=self.stem)

    def publish(self, first=()):
        """Moves the staged files named `first`, then the output itself, to their places
        beside `path`: the output last, so that it never appears without its data."""
        target = os.path.dirname(os.path.abspath(self.path))
        for name in list(first) + [os.path.basename(self.path)]:
            umask_mode(os.path.join(self.folder, name))
            os.replace(os.path.join(self.folder, name), os.path.join(target, name))

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()
        return False
