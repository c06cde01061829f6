"""Atomic file writes: write a temporary sibling, fsync, then rename over the target.

A process killed at any moment leaves either the old file or the new one, never half of one;
what it leaves of its temporary work (`.NAME.*.tmp` beside the target) `clean_leftovers` removes
on the next start. Temporary files and directories are created with the modes any tool gets
(0666 / 0777 less the umask), not mkstemp's private 0600 / 0700: a model pretune writes is
readable by whoever may read the directory. A write that fails (permission, full disk) is one
PretuneError naming the file; the target keeps its old content. JSON is written strict: a NaN
or infinity becomes null, since `json.dumps` would write a bare `NaN` that JavaScript, jq and
other strict parsers refuse.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pretune.errors import PretuneError

TMP_SUFFIX, OLD_SUFFIX = ".tmp", ".old"


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is renamed onto `target`.

    A target that is not a regular file (a symbolic link, a device such as /dev/null, a pipe, a
    socket, a directory) is refused: renaming over it would replace it for every other program,
    and writing through a link would leave the directory chosen."""
    target = Path(target)
    tmp = None
    _refuse_special(target, stat.S_ISREG)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(target)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        yield tmp
        _honour_umask(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        _refuse_special(target, stat.S_ISREG)  # made meanwhile: still never replaced
        os.replace(tmp, target)
    except OSError as e:
        raise _write_error(target, e) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_safe(value):
    """`value` with every NaN or infinity as None (JSON's null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def read_json(path: str | Path) -> Any:
    """A JSON file pretune wrote, or one PretuneError naming it (missing, truncated, not UTF-8)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PretuneError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PretuneError(f"{path} is not valid JSON (truncated?)") from None


def read_jsonl(path: str | Path) -> list:
    """The records of a JSON-lines file, or one PretuneError naming the file and line."""
    path = Path(path)
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise PretuneError(f"{path}, line {number}: not valid JSON (truncated?)") from None
    return records


def write_json(target: str | Path, obj: Any) -> None:
    write_text(target, json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_jsonl(target: str | Path, records: list[dict]) -> None:
    write_text(target, "".join(json.dumps(json_safe(r), allow_nan=False) + "\n" for r in records))


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; on success it replaces `target` whole."""
    target = Path(target)
    tmp = None
    _refuse_special(target, stat.S_ISDIR)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(target)
        tmp.mkdir(0o777)
        yield tmp
        _honour_umask(tmp)
        if target.exists() or target.is_symlink():
            # Move the old copy aside first so that there is never a moment with neither
            # (clean_leftovers moves it back if the process dies between the two renames).
            old = target.with_name(f".{target.name}{OLD_SUFFIX}")
            _remove(old)
            os.replace(target, old)
            os.replace(tmp, target)
            _remove(old)
        else:
            os.replace(tmp, target)
    except OSError as e:
        raise _write_error(target, e) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def refuse_links(root: str | Path) -> None:
    """Refuse an output directory holding a symbolic link: pretune never writes through one
    (`run/plots -> elsewhere` would put files outside the directory the user chose)."""
    root = Path(root)
    if not root.is_dir():
        return
    for where, dirs, files in os.walk(root):  # os.walk does not follow links: they stay in the lists
        for name in (*dirs, *files):
            path = Path(where) / name
            if path.is_symlink():
                raise PretuneError(
                    f"{path} is a symbolic link (to {os.readlink(path)}); pretune does not write "
                    f"through links inside an output directory: remove it")


def clean_leftovers(root: str | Path) -> None:
    """Remove what killed atomic writes left under `root`, and put back a directory a killed
    `atomic_dir` had moved aside (`.NAME.old` without `NAME`)."""
    root = Path(root)
    if not root.is_dir():
        return
    for where, dirs, files in os.walk(root, topdown=False):
        for name in (*dirs, *files):
            path = Path(where) / name
            if not name.startswith(".") or path.is_symlink():
                continue
            try:
                if name.endswith(TMP_SUFFIX):
                    _remove(path)
                elif name.endswith(OLD_SUFFIX):
                    original = path.with_name(name[1:-len(OLD_SUFFIX)])
                    if original.exists():
                        _remove(path)
                    else:
                        os.replace(path, original)
            except OSError:
                pass  # a leftover that cannot go (a read-only directory) harms nothing; the next write says why


def _honour_umask(path: Path) -> None:
    """Give what a writer made under `path` the modes the umask allows: some writers (safetensors)
    create their files 0600 whatever the umask says."""
    mask = _umask()
    for where, _dirs, files in os.walk(path) if path.is_dir() else [(path.parent, [], [path.name])]:
        if path.is_dir():
            os.chmod(where, 0o777 & ~mask)
        for name in files:
            file = Path(where) / name
            if not file.is_symlink():
                os.chmod(file, 0o666 & ~mask)


def _umask() -> int:
    try:  # Linux says it without changing it (os.umask would, for a moment, in every thread)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_file_target(target: str | Path) -> None:
    """Before slow work whose result goes to `target`: refuse now what the write would refuse."""
    _refuse_special(Path(target), stat.S_ISREG)


def _refuse_special(target: Path, kind) -> None:
    """Refuse a target that exists as something other than `kind` (a regular file, a directory):
    a device, a pipe, a socket, or a symbolic link (/dev/stdout is one: replacing the link would
    take it from every other program; writing through it would leave the directory chosen)."""
    try:
        mode = os.lstat(target).st_mode
    except OSError:  # absent (or unreadable: the write says why)
        return
    if kind(mode):
        return
    what = ("a symbolic link" if stat.S_ISLNK(mode) else "a directory" if stat.S_ISDIR(mode)
            else "a regular file" if stat.S_ISREG(mode) else "a device, pipe or socket")
    wanted = "file" if kind is stat.S_ISREG else "directory"
    raise PretuneError(f"cannot write {target}: it is {what}, not a {wanted} pretune may replace")


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _write_error(target: Path, e: OSError) -> PretuneError:
    return PretuneError(f"cannot write {target}: {e.strerror or e}")
