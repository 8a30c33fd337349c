"""Writing results atomically: an interrupted run leaves nothing half-written.

Every folder of results is written through :func:`atomic_output_dir`: the files are
staged in a hidden folder ``.NAME.<tag>.<random>.partial`` beside the destination ``NAME``
(on the same file system) and moved into place only once all of them are written.

* The destination is checked before anything is computed (:func:`check_output_dir`): an
  empty name, an existing file or device, a parent that is a file, a read-only parent, a
  name too long for the file system are refused with one :class:`OutputError` naming it.
* ``clean=True`` (the folder belongs to the run): files that an earlier carkinetics run
  wrote there (listed in the folder's manifest :data:`MANIFEST`, or among ``known`` names
  when the folder has no manifest) are removed when the new results are moved in, so no
  file of an earlier run is left beside the new ones; files carkinetics did not write make
  the run refuse before it computes anything, naming them.
* SIGTERM, SIGHUP and SIGINT raise an exception in the main thread while a folder is
  staged (:mod:`carkinetics.io.signals`), so the staging folder is removed; a staging folder left by a killed process
  (SIGKILL, power cut) carries the process id and start time in its ``<tag>`` and is
  removed by the next run writing to the same destination.
* A destination that is a mount point (a Docker volume) is staged inside itself; where a
  move between file systems fails anyway (``EXDEV``), the files are copied to temporary
  names in their destination folder and renamed there.
* ``OSError`` raised while writing (no space, permissions, a name too long) becomes an
  :class:`OutputError` ``<path>: cannot write ...``; when the results are complete but
  cannot be moved into place, they are kept in a visible folder named in the message.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

from carkinetics.errors import CarKineticsError
from carkinetics.io.signals import cleanup_on_signals, signals_deferred

#: The manifest of an output folder: the files carkinetics wrote there (JSON, hidden).
MANIFEST = ".carkinetics.json"
#: Files an operating system or file browser drops into folders: neither ours nor the user's data.
IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".directory"})
#: A staging folder (or temporary copy) whose process cannot be checked (another host or
#: container) is removed once nothing in it changed for this many seconds.
FOREIGN_STAGING_AGE = 3600.0


class OutputError(CarKineticsError):
    """An output folder or file cannot be written: ``<path>: <reason>``."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


def _process_start(pid: int):
    """The start time of a living process (clock ticks since boot, from ``/proc``), ``""`` where
    ``/proc`` is missing, or None when the process does not exist or is a zombie."""
    if not _HAVE_PROC:
        return ""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    if fields[0] in (b"Z", b"X"):  # killed, not yet reaped: dead
        return None
    return fields[19].decode()


def _host_id() -> str:
    """Host name and PID namespace: where process ids of staging folders can be checked."""
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = ""
    return hashlib.sha1(f"{socket.gethostname()}\0{ns}".encode()).hexdigest()[:8]


_HAVE_PROC = os.path.exists("/proc/self/stat")
_tags = {}


def _own_tag() -> str:
    """``<host>-<pid>-<start>`` of this process, in the names of its staging folders."""
    pid = os.getpid()
    if pid not in _tags:  # by pid: a forked child has its own
        _tags[pid] = f"{_host_id()}-{pid}-{_process_start(pid) or 0}"
    return _tags[pid]


_STAGING_RE = re.compile(r"^\.(?P<name>.*)\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<start>\d+)\.[a-z0-9_]{8}\.partial$")
_LEGACY_RE = re.compile(r"^\.(?P<name>.*)\.[a-z0-9_]{8}\.partial$")  # before process tags


def _name_max(folder) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _short_name(name: str, folder) -> str:
    """``name`` cut so that a staging name made of it fits the file system (about 50 bytes more)."""
    raw = os.fsencode(name)
    limit = max(8, _name_max(folder) - 50)
    return os.fsdecode(raw[:limit]) if len(raw) > limit else name


def _staging_alive(entry: Path, match) -> bool:
    """Whether the process that made a staging entry may still be using it."""
    if match.re is _STAGING_RE and match["host"] == _host_id():
        pid = int(match["pid"])
        if pid == os.getpid():
            return match["start"] == str(_process_start(pid) or 0)
        start = _process_start(pid)
        if start is None:
            return False
        if start == "":  # no /proc: ask the kernel
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except OSError:
                pass
            return True
        return start == match["start"]
    return time.time() - _newest_mtime(entry) < FOREIGN_STAGING_AGE


def _newest_mtime(entry: Path) -> float:
    newest = 0.0
    try:
        newest = entry.lstat().st_mtime
        if entry.is_dir() and not entry.is_symlink():
            for root, dirs, files in os.walk(entry):
                for f in dirs + files:
                    with contextlib.suppress(OSError):
                        newest = max(newest, os.lstat(os.path.join(root, f)).st_mtime)
    except OSError:
        pass
    return newest


def _remove(entry: Path) -> None:
    for _ in range(3):  # a dying helper may still add a file
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)


def remove_orphaned_partials(path) -> list[Path]:
    """Remove the staging folders (``.NAME.*.partial``) beside and inside the output folder
    ``path`` that were left by processes no longer running.

    Parameters
    ----------
    path : str or pathlib.Path
        The output folder (it need not exist).

    Returns
    -------
    list of pathlib.Path
        The staging folders and temporary files removed.
    """
    target = _absolute(path)
    short = _short_name(target.name or "output", target.parent if target.parent.is_dir() else "/")
    removed = []
    for folder, same_name in ((target.parent, True), (target, False)):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            m = _STAGING_RE.match(e.name) or _LEGACY_RE.match(e.name)
            if m is None or (same_name and m["name"] != short):
                continue
            p = Path(e.path)
            if not _staging_alive(p, m):
                _remove(p)
                removed.append(p)
    return removed


def _absolute(path) -> Path:
    """The absolute destination (a symbolic link to a folder: the folder); an empty name is refused."""
    if isinstance(path, (str, bytes)) and not path.strip():
        raise OutputError(repr(path), "the output folder name is empty; give a folder for the results")
    target = Path(os.path.abspath(os.fsdecode(os.fspath(path))))
    if os.path.islink(target) and os.path.isdir(target):
        target = Path(os.path.realpath(target))
    return target


def _reason(err: OSError) -> str:
    if err.errno == errno.ENAMETOOLONG:
        return "the path or a name in it is too long for the file system"
    return err.strerror or str(err)


def _shown(path) -> str:
    """A path for a message: very long ones (refused for their length) cut in the middle."""
    text = os.fsdecode(os.fspath(path))
    return text if len(text) <= 160 else f"{text[:80]}...{text[-60:]}"


def _staging_prefix(target: Path, folder) -> str:
    return f".{_short_name(target.name or 'output', folder)}.{_own_tag()}."


def _probe(folder: Path, target: Path) -> None:
    """Create and remove a staging folder for ``target`` in ``folder``: OSError if impossible."""
    os.rmdir(tempfile.mkdtemp(prefix=_staging_prefix(target, folder), suffix=".partial", dir=folder))


def _stages_inside(target: Path) -> bool:
    """Whether ``target`` (an existing folder) is staged inside itself: it is a mount point (a
    move from its parent would cross file systems) or its parent is not writable."""
    if os.path.ismount(target):
        return True
    try:
        _probe(target.parent, target)
    except OSError:
        return True
    return False


def check_output_dir(path, *, clean: bool = False, known=()) -> Path:
    """Refuse a destination that cannot receive a folder of results, before anything is computed.

    Checks, leaving nothing behind: the name is not empty; ``path`` is a folder or does not
    exist (not a file, a device such as ``/dev/null``, a broken link); the nearest existing
    folder above it is a folder, not a file; no name is too long for the file system; a staging
    folder can be created and removed where the results will be staged, and inside ``path``
    when it exists (a read-only file system, a folder without write permission). Removes the
    staging folders of processes no longer running (:func:`remove_orphaned_partials`). With
    ``clean=True``, also refuses a folder holding files carkinetics did not write, naming them
    (see :func:`atomic_output_dir`; ``known``: names of files the command writes, recognised
    as its own in a folder without manifest).

    Parameters
    ----------
    path : str or pathlib.Path
        The output folder.
    clean : bool, optional
        The folder belongs to the run: refuse it when it holds files carkinetics did not write.
    known : iterable of str, optional
        Names of the files the command writes, recognised as its own without a manifest.

    Returns
    -------
    pathlib.Path
        The absolute path of the output folder.

    Raises
    ------
    OutputError
        ``<path>: <reason>`` when the folder cannot receive the results.
    """
    target = _absolute(path)
    shown = _shown(path)
    try:
        st = os.stat(target)
    except OSError as err:
        if err.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise OutputError(shown, f"cannot use it as the output folder: {_reason(err)}") from None
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        kind = "a file" if stat.S_ISREG(st.st_mode) else "not a folder (a device, pipe or socket)"
        raise OutputError(shown, f"exists and is {kind}; give a folder for the results")
    if st is None and os.path.lexists(target):
        raise OutputError(shown, "is a broken symbolic link; give a folder for the results")
    # the part of the path that exists, and the names to be created below it
    ancestor, missing = target, []
    while True:
        try:
            ast = os.stat(ancestor)
            break
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise OutputError(shown, f"cannot use it as the output folder: {_reason(err)}") from None
        missing.append(ancestor.name)
        ancestor = ancestor.parent
    if not stat.S_ISDIR(ast.st_mode):
        raise OutputError(shown, f"{ancestor} is a file, not a folder: the output folder cannot be created in it")
    name_max = _name_max(ancestor)
    if any(len(os.fsencode(n)) > name_max for n in missing + [target.name]):
        raise OutputError(shown, f"the name is too long for the file system (at most {name_max} bytes per name)")
    try:
        path_max = int(os.pathconf(ancestor, "PC_PATH_MAX"))
    except (OSError, ValueError, AttributeError):
        path_max = 4096
    if len(os.fsencode(str(target))) + 64 > path_max:
        raise OutputError(shown, f"the path is too long for the file system (at most {path_max} bytes)")
    remove_orphaned_partials(target)
    try:
        if st is None:
            _probe(ancestor, target)
        else:
            _stages_inside(target)  # probes the parent; staged inside when it fails
            _probe(target, target)
    except OSError as err:
        where = "create the output folder" if st is None else "write into the output folder"
        raise OutputError(shown, f"cannot {where}: {_reason(err)}") from None
    if clean and st is not None:
        foreign, _ = _classify(target, _owned(target, known))
        if foreign:
            raise OutputError(shown, _foreign_message(foreign))
    return target


def _foreign_message(foreign) -> str:
    listed = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
    return (f"holds files that carkinetics did not write: {listed}. A run replaces the files of the earlier "
            f"run in its output folder and nothing may be left beside them: move these files away or choose "
            f"another output folder")


def read_manifest(folder):
    """The relative paths (``/``-separated) of the files carkinetics wrote in ``folder``, from its
    manifest :data:`MANIFEST`.

    Parameters
    ----------
    folder : str or pathlib.Path
        An output folder.

    Returns
    -------
    set of str or None
        The listed files; None when there is no manifest, an empty set when it is unreadable.
    """
    p = Path(folder) / MANIFEST
    try:
        files = json.loads(p.read_text(encoding="utf-8"))["files"]
        return {f for f in files if isinstance(f, str) and _safe_relative(f)}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return set()  # unreadable: nothing is known to be ours


def _safe_relative(rel: str) -> bool:
    return bool(rel) and not rel.startswith("/") and all(p not in ("", ".", "..") for p in rel.split("/"))


def _write_manifest(folder: Path, files) -> None:
    manifest = {"files": sorted(files), "written_by": "carkinetics"}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def register_outputs(folder, names) -> None:
    """Record files written into the output folder ``folder`` without :func:`atomic_output_dir`
    (e.g. a progress record rewritten during a run; ``names`` relative to ``folder``) in its
    manifest, so that later runs recognise them as carkinetics' own.

    Parameters
    ----------
    folder : str or pathlib.Path
        The output folder.
    names : iterable of str or pathlib.Path
        The files written, relative to ``folder``.
    """
    folder = Path(folder)
    old = read_manifest(folder) or set()
    _write_manifest(folder, old | {Path(n).as_posix() for n in names})


def _owned(target: Path, known) -> set:
    """The files of ``target`` an earlier carkinetics run wrote: its manifest, or without one the
    ``known`` names present."""
    listed = read_manifest(target)
    return {k for k in known if os.path.lexists(target / k)} if listed is None else listed


def _classify(target: Path, owned: set):
    """``(foreign, carkinetics_folders)`` below ``target``: the relative paths of the entries that
    are neither in ``owned`` nor carkinetics' own (a manifest, a subfolder with a manifest of its
    own, a staging folder; :data:`IGNORED_NAMES`; empty folders), and the subfolders with a
    manifest. Staging entries of processes no longer running are removed on the way."""
    foreign, folders = [], []

    def walk(folder: Path, rel: str) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            foreign.append(rel or ".")
            return
        for e in entries:
            r = rel + e.name
            if e.name == MANIFEST or e.name in IGNORED_NAMES or r in owned:
                continue
            m = _STAGING_RE.match(e.name) or _LEGACY_RE.match(e.name)
            if m is not None:
                if not _staging_alive(Path(e.path), m):
                    _remove(Path(e.path))
            elif e.is_dir(follow_symlinks=False):
                if os.path.isfile(os.path.join(e.path, MANIFEST)):
                    folders.append(r)
                else:
                    walk(Path(e.path), r + "/")
            else:
                foreign.append(r)

    walk(target, "")
    return foreign, folders


def foreign_entries(path, known=()) -> list[str]:
    """Relative paths of the entries of the output folder ``path`` that carkinetics did not write
    (what :func:`check_output_dir` with ``clean=True`` refuses).

    Parameters
    ----------
    path : str or pathlib.Path
        The output folder.
    known : iterable of str, optional
        Names recognised as carkinetics' own in a folder without manifest.

    Returns
    -------
    list of str
        The relative paths, ``/``-separated, sorted within each folder.
    """
    target = _absolute(path)
    return _classify(target, _owned(target, known))[0]


def _mapped_error(err, staging: Path, target: Path):
    """An OSError (or OutputError) raised while writing into ``staging`` as an OutputError naming
    the file in ``target``; ``err`` itself when it is not about the output (an input file, say)."""
    if isinstance(err, OutputError):
        name, reason = err.path, err.reason
    else:
        name, reason = err.filename, f"cannot write: {_reason(err)}"
    if name is not None:
        try:
            rel = Path(os.path.abspath(os.fsdecode(name))).relative_to(staging)
        except ValueError:
            return err
        return OutputError(target / rel, reason)
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO):
        return OutputError(target, f"cannot write the results: {_reason(err)}")
    return err


def _keep_unsaved(staging: Path, target: Path):
    """Rename a staging folder whose files could not all be moved into ``target`` to a visible
    ``NAME.unsaved-<time>`` folder beside it (or inside it); return where the files are, or
    None when none are left."""
    if not any(staging.rglob("*")):
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for where in (target.parent, staging.parent):
        kept = where / f"{_short_name(target.name or 'output', where)}.unsaved-{stamp}"
        try:
            os.rename(staging, kept)
            return kept
        except OSError:
            continue
    return staging


def _copy_across(src: Path, dest: Path, temps: list) -> Path:
    """Copy ``src`` to a temporary name beside ``dest`` (on ``dest``'s file system)."""
    fd, tmp = tempfile.mkstemp(prefix=_staging_prefix(dest, dest.parent), suffix=".partial", dir=dest.parent)
    os.close(fd)
    temps.append(Path(tmp))
    shutil.copyfile(src, tmp)
    shutil.copymode(src, tmp)
    return Path(tmp)


def _commit(staging: Path, target: Path, clean: bool, owned: set) -> list[str]:
    """Move the staged files into ``target``; with ``clean``, then remove the files of the earlier
    run (``owned``, and subfolders with a manifest of their own) not written again. Returns the
    relative paths written.

    The manifest lists the files of both runs while they are moved, then those left: a run killed
    at any moment leaves no file of its own unlisted."""
    target.mkdir(parents=True, exist_ok=True)
    owned = owned | (read_manifest(target) or set())  # and what was recorded meanwhile
    items = sorted(staging.rglob("*"))
    files = [p for p in items if not p.is_dir() or p.is_symlink()]
    rels = [p.relative_to(staging).as_posix() for p in files]
    if clean:
        taken = [r for r in rels if r not in owned and os.path.lexists(target / r)]
        if taken:  # put there while the run was computing: never overwritten
            raise OutputError(target, _foreign_message(taken))
    for p in items:
        if p.is_dir() and not p.is_symlink():
            (target / p.relative_to(staging)).mkdir(parents=True, exist_ok=True)
    sources = dict(zip(rels, files))
    temps = []
    try:
        with signals_deferred():
            _write_manifest(target, owned | set(rels))
            try:
                if files:
                    os.replace(files[0], target / rels[0])
                    del sources[rels[0]]
            except OSError as err:
                if err.errno != errno.EXDEV:
                    raise
                cross = True
            else:
                cross = False
        if cross:
            # the destination is on another file system (a mount point, a bind mount): copy every
            # file to a temporary name beside its destination first (interruptible), then rename
            for r, src in sources.items():
                sources[r] = _copy_across(src, target / r, temps)
        with signals_deferred():
            for r, src in sources.items():
                os.replace(src, target / r)
            temps.clear()
            kept = owned | set(rels)
            if clean:
                written = set(rels)
                for r in sorted(owned - written, reverse=True):
                    if os.path.lexists(target / r):
                        _remove(target / r)
                    _remove_empty_parents((target / r).parent, target)
                for r in _classify(target, written)[1]:
                    if not any(w.startswith(r + "/") for w in written):
                        _remove(target / r)
                        _remove_empty_parents((target / r).parent, target)
                kept = written
            _write_manifest(target, {r for r in kept if os.path.lexists(target / r)})
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return rels


def _remove_empty_parents(folder: Path, top: Path) -> None:
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


@contextlib.contextmanager
def atomic_output_dir(path, *, clean: bool = False, known=()):
    """Stage files in a temporary folder; move them into ``path`` only on success.

    Yields the staging folder, ``.NAME.<host>-<pid>-<start>.<random>.partial`` beside
    ``path`` (inside it when ``path`` is a mount point or its parent is read-only). Each
    staged file replaces its namesake in ``path`` with :func:`os.replace` (atomic on one
    file system; across file systems, ``EXDEV``, the files are copied beside their
    destinations first); the files written are listed in the folder's manifest
    (:data:`MANIFEST`). If the block raises, or SIGTERM, SIGHUP or SIGINT arrive (see
    :func:`carkinetics.io.signals.cleanup_on_signals`), nothing in ``path`` changes and the staging folder is
    removed.

    The destination is checked first (:func:`check_output_dir`); an ``OSError`` raised
    while writing a file into the staging folder becomes an :class:`OutputError` naming the
    file in ``path``. If the results cannot be moved into place, they are kept in a
    visible ``NAME.unsaved-<time>`` folder named by the error.

    ``clean=True``: the folder belongs to this run. A folder holding files carkinetics did
    not write is refused before the block runs (:class:`OutputError` naming them); once the
    new files are in place, the files of the earlier run not written again are removed
    (those listed in the manifest; in a folder without one, the names in ``known``) and
    subfolders with a manifest of their own. Without ``clean``, other files are left alone
    (a sweep adding points to its folder).

    Parameters
    ----------
    path : str or pathlib.Path
        The output folder.
    clean : bool, optional
        The folder belongs to this run (see above).
    known : iterable of str, optional
        Names of the files the command writes, recognised as its own without a manifest.

    Yields
    ------
    pathlib.Path
        The staging folder to write the files into.

    Raises
    ------
    OutputError
        When the folder cannot receive the results, or a file cannot be written or moved.
    """
    target = check_output_dir(path, clean=clean, known=known)
    owned = _owned(target, known) if target.is_dir() else set()
    where = target if target.is_dir() and _stages_inside(target) else target.parent
    with cleanup_on_signals():
        staging = None
        try:
            with signals_deferred():
                try:
                    where.mkdir(parents=True, exist_ok=True)
                    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target, where), suffix=".partial",
                                                    dir=where))
                except OSError as err:
                    raise OutputError(path, f"cannot create the output folder: {_reason(err)}") from None
            try:
                yield staging
            except (OSError, OutputError) as err:
                mapped = _mapped_error(err, staging, target)
                if mapped is err:
                    raise
                raise mapped from None
            try:
                _commit(staging, target, clean, owned)
            except (OSError, OutputError) as err:
                kept = _keep_unsaved(staging, target)
                if isinstance(err, OutputError):
                    where_err, reason = err.path, err.reason
                else:  # os.replace(src, dst) names both: the destination is the one to show
                    where_err = err.filename2 or err.filename or target
                    mapped = _mapped_error(OSError(err.errno, err.strerror, where_err), staging, target)
                    where_err = mapped.path if isinstance(mapped, OutputError) else where_err
                    reason = f"cannot write: {_reason(err)}"
                if kept is not None:
                    reason += f"; the new results are kept in {kept}"
                raise OutputError(where_err, reason) from None
        finally:
            if staging is not None:
                with signals_deferred():
                    shutil.rmtree(staging, ignore_errors=True)


def _file_mode() -> int:
    """Permissions of a new file under the process umask (what ``open`` would give)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()  # read once, at import: os.umask is process-wide


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    Parameters
    ----------
    path : str or pathlib.Path
        The file (its folder is created if needed); it gets the permissions ``open`` would give.
    text : str
        The content, written as UTF-8.

    Raises
    ------
    OutputError
        Naming ``path`` when it cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_staging_prefix(path, path.parent), suffix=".partial")
    except OSError as err:
        raise OutputError(path, f"cannot write: {_reason(err)}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, _FILE_MODE)  # mkstemp creates files readable by their owner only
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise OutputError(path, f"cannot write: {_reason(err)}") from None
        raise
