"""Tests for course_lib.core.datasets: downloads against a local HTTP server,
safe extraction, the registry, and the offline sources. No internet needed."""
from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import stat
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from course_lib.core import datasets as ds
from course_lib.core.datasets import (DatasetInfo, DatasetUnavailableError, DownloadError,
                                      download, extract, fetch)


# --------------------------------------------------------------------------- local server
class _State:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate_once: set[str] = set()   # paths whose next answer is cut at half
        self.no_length: set[str] = set()       # paths served without Content-Length
        self.support_range = True
        self.hits: dict[str, int] = {}
        self.range_headers: list[str] = []
        self.lock = threading.Lock()


def _make_handler(state: _State):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            path = self.path.split("?")[0]
            with state.lock:
                state.hits[path] = state.hits.get(path, 0) + 1
                data = state.files.get(path)
                cut = path in state.truncate_once
                state.truncate_once.discard(path)
                header = self.headers.get("Range")
                if header:
                    state.range_headers.append(header)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if header and state.support_range and header.startswith("bytes="):
                start = int(header[len("bytes="):].split("-")[0])
            body = data[start:]
            if start:
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if path not in state.no_length:  # else the body ends when the connection closes
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if cut:  # promise len(body) bytes, send half, hang up
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server():
    state = _State()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- archives
def _payload() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {"pack/a.txt": b"hello course\n",
            "pack/sub/b.bin": rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes()}


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _targz_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def archives(tmp_path):
    """A small zip and tar.gz written to tmp_path, with their bytes."""
    files = _payload()
    out = {}
    for kind, maker, suffix in (("zip", _zip_bytes, ".zip"), ("tar.gz", _targz_bytes, ".tar.gz")):
        data = maker(files)
        path = tmp_path / f"src{suffix}"
        path.write_bytes(data)
        out[kind] = (path, data)
    return files, out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _info(name, url, data=None, **kw) -> DatasetInfo:
    kw.setdefault("filename", name + ".bin")
    if data is not None:
        kw.setdefault("sha256", _sha(data))
    return DatasetInfo(name=name, description="test data", url=url, **kw)


# --------------------------------------------------------------------------- downloads
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_fetch_downloads_verifies_extracts_and_caches(server, archives, tmp_path, monkeypatch,
                                                      kind):
    files, built = archives
    data = built[kind][1]
    suffix = ".zip" if kind == "zip" else ".tar.gz"
    server.files["/pack" + suffix] = data
    info = _info("test-pack", server.base + "/pack" + suffix, data,
                 filename="pack" + suffix, archive=kind, size=len(data), subdir="pack")
    monkeypatch.setitem(ds.REGISTRY, info.name, info)
    cache = tmp_path / "cache"

    folder = fetch("test-pack", cache=cache, progress=False)
    assert folder == cache / "pack" / "pack"
    assert (folder / "a.txt").read_bytes() == files["pack/a.txt"]
    assert (folder / "sub" / "b.bin").read_bytes() == files["pack/sub/b.bin"]
    assert (cache / ("pack" + suffix)).read_bytes() == data
    assert not (cache / ("pack" + suffix + ".part")).exists()
    assert (cache / "pack" / ".complete").is_file()
    hits = server.hits["/pack" + suffix]
    assert hits == 1

    # second call: verified from the cache, no request at all
    assert fetch("test-pack", cache=cache, progress=False) == folder
    assert download(info, cache=cache, progress=False) == cache / ("pack" + suffix)
    assert server.hits["/pack" + suffix] == hits
    # a completed extraction is reused even once the archive is deleted
    (cache / ("pack" + suffix)).unlink()
    assert fetch("test-pack", cache=cache, progress=False) == folder
    assert server.hits["/pack" + suffix] == hits
    leftovers = [p.name for p in cache.iterdir() if p.name.endswith(".extracting")]
    assert leftovers == []


def test_wrong_checksum_raises_and_leaves_no_file(server, tmp_path):
    data = b"x" * 5000
    server.files["/f.bin"] = data
    info = _info("bad-sum", server.base + "/f.bin", sha256="0" * 64)
    with pytest.raises(ValueError) as err:
        download(info, cache=tmp_path, progress=False)
    message = str(err.value)
    assert "bad-sum" in message and "0" * 64 in message and _sha(data) in message
    assert list(tmp_path.iterdir()) == []


def test_md5_used_when_no_sha256(server, tmp_path):
    data = b"md5 only" * 100
    server.files["/m.bin"] = data
    good = _info("md5-good", server.base + "/m.bin", md5=hashlib.md5(data).hexdigest())
    assert download(good, cache=tmp_path, progress=False).read_bytes() == data
    bad = _info("md5-bad", server.base + "/m.bin", md5="f" * 32)
    with pytest.raises(ValueError, match="md5"):
        download(bad, cache=tmp_path, progress=False)
    assert not (tmp_path / "md5-bad.bin").exists()


def test_truncated_transfer_keeps_part_then_resumes_with_range(server, tmp_path):
    data = os.urandom(300_000)
    server.files["/big.bin"] = data
    server.truncate_once.add("/big.bin")
    info = _info("big", server.base + "/big.bin", data)
    part = tmp_path / "big.bin.part"

    with pytest.raises(DownloadError, match="again") as err:
        download(info, cache=tmp_path, progress=False)
    assert isinstance(err.value, OSError)
    assert part.is_file() and part.stat().st_size == len(data) // 2
    assert not (tmp_path / "big.bin").exists()

    path = download(info, cache=tmp_path, progress=False)
    assert path.read_bytes() == data
    assert server.range_headers == [f"bytes={len(data) // 2}-"]
    assert not part.exists()


def test_server_without_range_restarts_from_zero(server, tmp_path):
    data = os.urandom(120_000)
    server.files["/nr.bin"] = data
    server.support_range = False
    server.truncate_once.add("/nr.bin")
    info = _info("norange", server.base + "/nr.bin", data)
    with pytest.raises(DownloadError):
        download(info, cache=tmp_path, progress=False)
    assert (tmp_path / "norange.bin.part").is_file()

    path = download(info, cache=tmp_path, progress=False)
    assert path.read_bytes() == data  # a 200 answer overwrote the partial file
    assert len(server.range_headers) == 1  # it asked, the server ignored it


def test_unknown_checksum_warns_and_prints_sha256(server, tmp_path, capsys):
    data = b"no published checksum"
    server.files["/u.bin"] = data
    info = _info("unknown-sum", server.base + "/u.bin")
    with pytest.warns(UserWarning, match=_sha(data)):
        path = download(info, cache=tmp_path, progress=False)
    assert path.read_bytes() == data
    assert _sha(data) in capsys.readouterr().out


def test_offline_raises_unavailable_with_url_and_path(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data.zip"
    info = _info("offline-test", url, b"whatever", filename="data.zip")
    with pytest.raises(DatasetUnavailableError) as err:
        download(info, cache=tmp_path, progress=False, timeout=2)
    message = str(err.value)
    assert isinstance(err.value, OSError)
    assert url in message
    assert str(tmp_path / "data.zip") in message
    assert "offline-test" in message


def test_http_404_is_unavailable(server, tmp_path):
    info = _info("missing", server.base + "/nothing.bin", b"x")
    with pytest.raises(DatasetUnavailableError, match="404"):
        download(info, cache=tmp_path, progress=False)


def test_corrupted_cached_file_is_replaced(server, tmp_path):
    data = os.urandom(10_000)
    server.files["/c.bin"] = data
    info = _info("corrupt", server.base + "/c.bin", data)
    path = download(info, cache=tmp_path, progress=False)
    path.write_bytes(b"\0" * len(data))  # same size, different bytes and mtime
    os.utime(path, ns=(1, 1))
    with pytest.warns(UserWarning, match="downloading again"):
        assert download(info, cache=tmp_path, progress=False).read_bytes() == data
    assert server.hits["/c.bin"] == 2
    kept = list(tmp_path.glob("corrupt.bin.*.mismatch"))  # renamed, not deleted
    assert len(kept) == 1 and kept[0].read_bytes() == b"\0" * len(data)


def test_wrong_hand_placed_file_is_kept_and_named_when_offline(tmp_path):
    """(d) A mismatching file placed by hand is renamed, not deleted: offline it
    may be all the user has, and both the warning and the error say where it is."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mine = b"my own copy, another version"
    final = tmp_path / "hand.zip"
    final.write_bytes(mine)
    info = _info("hand-wrong", f"http://127.0.0.1:{port}/hand.zip", b"the published file",
                 filename="hand.zip")
    aside = tmp_path / f"hand.zip.sha256-{_sha(mine)[:12]}.mismatch"
    with pytest.warns(UserWarning, match="not deleted") as warned:
        with pytest.raises(DatasetUnavailableError) as err:
            download(info, cache=tmp_path, progress=False, timeout=2)
    assert str(aside) in str(warned[0].message)
    message = str(err.value)
    assert str(aside) in message and str(final) in message and _sha(mine) in message
    assert "\n" not in message
    assert aside.read_bytes() == mine
    assert not final.exists()


def test_registered_size_mismatch_is_a_truncation(server, tmp_path):
    """(c) Without a checksum, a file shorter than the registered size is never
    finalized, even when the server's Content-Length agrees with what arrived."""
    data = os.urandom(50_000)
    server.files["/s.bin"] = data[:20_000]  # a server that serves a cut copy
    info = _info("sized", server.base + "/s.bin", size=len(data))
    with pytest.raises(DownloadError, match=r"short of the registered 50000") as err:
        download(info, cache=tmp_path, progress=False)
    assert str(tmp_path / "sized.bin.part") in str(err.value)
    assert not (tmp_path / "sized.bin").exists()
    assert (tmp_path / "sized.bin.part").stat().st_size == 20_000

    server.files["/s.bin"] = data  # the server is whole again: resume
    with pytest.warns(UserWarning, match="no published checksum"):
        assert download(info, cache=tmp_path, progress=False).read_bytes() == data
    assert server.range_headers == ["bytes=20000-"]

    # a cached file of the wrong size (cut by an older version) is set aside too
    (tmp_path / "sized.bin").write_bytes(data[:100])
    with pytest.warns(UserWarning):
        assert download(info, cache=tmp_path, progress=False).read_bytes() == data
    assert (tmp_path / "sized.bin.100-bytes.mismatch").read_bytes() == data[:100]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_unverifiable_archive_cut_without_length_is_not_kept(server, archives, tmp_path,
                                                              monkeypatch, kind):
    """(c) No checksum, no size, no Content-Length: a connection cut halfway looks
    like the end of the file. The archive is read through before it is finalized,
    so the cut is noticed, the .part kept and the next call resumes."""
    files, built = archives
    data = built[kind][1]
    suffix = ".zip" if kind == "zip" else ".tar.gz"
    url_path = "/nolen" + suffix
    server.files[url_path] = data
    server.no_length.add(url_path)
    server.truncate_once.add(url_path)
    info = _info("nolen", server.base + url_path, filename="nolen" + suffix, archive=kind,
                 subdir="pack")
    monkeypatch.setitem(ds.REGISTRY, info.name, info)
    cache = tmp_path / "cache"
    part = cache / ("nolen" + suffix + ".part")

    with pytest.raises(DownloadError, match="cut short") as err:
        fetch("nolen", cache=cache, progress=False)
    assert str(part) in str(err.value) and "resume" in str(err.value)
    assert part.stat().st_size == len(data) // 2
    assert not (cache / ("nolen" + suffix)).exists()
    assert not (cache / "nolen").exists()

    with pytest.warns(UserWarning, match="no published checksum"):
        folder = fetch("nolen", cache=cache, progress=False)
    assert (folder / "sub" / "b.bin").read_bytes() == files["pack/sub/b.bin"]
    assert (cache / ("nolen" + suffix)).read_bytes() == data
    assert server.range_headers == [f"bytes={len(data) // 2}-"]


def test_unverifiable_archive_damaged_on_the_server_is_set_aside(server, archives, tmp_path):
    """(c) When a resume brings no new byte, the archive is whole but broken: it
    is moved to .damaged instead of being resumed for ever."""
    data = archives[1]["tar.gz"][1][:150_000]  # the server's copy itself is cut
    server.files["/broken.tar.gz"] = data
    server.no_length.add("/broken.tar.gz")
    info = _info("broken", server.base + "/broken.tar.gz", filename="broken.tar.gz",
                 archive="tar.gz")
    with pytest.raises(DownloadError, match="cut short"):
        download(info, cache=tmp_path, progress=False)
    with pytest.raises(ds.ArchiveError, match="damaged") as err:
        download(info, cache=tmp_path, progress=False)
    assert str(tmp_path / "broken.tar.gz.damaged") in str(err.value)
    assert (tmp_path / "broken.tar.gz.damaged").read_bytes() == data
    assert not (tmp_path / "broken.tar.gz.part").exists()
    assert not (tmp_path / "broken.tar.gz").exists()


@pytest.mark.parametrize("checksum", [True, False])
def test_fetch_sets_damaged_cached_archive_aside(server, archives, tmp_path, monkeypatch,
                                                 checksum):
    """(b) A cached archive that fails to extract is moved to .damaged with its
    verified-stamp removed, and the next fetch downloads it again."""
    files, built = archives
    data = built["tar.gz"][1]
    server.files["/d.tar.gz"] = data
    info = _info("dmg", server.base + "/d.tar.gz", data if checksum else None,
                 filename="d.tar.gz", archive="tar.gz", subdir="pack")
    monkeypatch.setitem(ds.REGISTRY, info.name, info)
    cache = tmp_path / "cache"
    final = cache / "d.tar.gz"
    stamp = cache / "d.tar.gz.verified"
    if checksum:  # a verified download whose bytes rotted on disk: the stamp still matches
        download(info, cache=cache, progress=False)
        assert stamp.is_file()
        mtime = final.stat().st_mtime_ns
        final.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
        os.utime(final, ns=(mtime, mtime))
    else:  # a cut download that an older version cached as complete
        cache.mkdir()
        final.write_bytes(data[: len(data) // 2])
    hits = server.hits.get("/d.tar.gz", 0)

    with pytest.raises(ds.ArchiveError) as err:
        fetch("dmg", cache=cache, progress=False)
    message = str(err.value)
    assert isinstance(err.value, ValueError)  # the CLIs print it as "error: ..."
    assert "'dmg'" in message and "damaged or truncated" in message
    assert str(cache / "d.tar.gz.damaged") in message and "downloads it again" in message
    assert "\n" not in message
    assert not final.exists() and not stamp.exists()
    assert (cache / "d.tar.gz.damaged").is_file()
    assert not (cache / "d").exists()
    assert not any(p.name.endswith(".extracting") for p in cache.iterdir())

    folder = fetch("dmg", cache=cache, progress=False) if checksum else None
    if not checksum:
        with pytest.warns(UserWarning, match="no published checksum"):
            folder = fetch("dmg", cache=cache, progress=False)
    assert (folder / "sub" / "b.bin").read_bytes() == files["pack/sub/b.bin"]
    assert server.hits["/d.tar.gz"] == hits + 1


def test_file_placed_by_hand_is_used_without_network(tmp_path):
    data = b"placed by hand"
    (tmp_path / "hand.bin").write_bytes(data)
    info = _info("hand", "http://127.0.0.1:9/never", data, filename="hand.bin")
    assert download(info, cache=tmp_path, progress=False) == tmp_path / "hand.bin"


def test_course_data_env_is_respected(monkeypatch, tmp_path, server):
    target = tmp_path / "course-data"
    monkeypatch.setenv("COURSE_DATA", str(target))
    assert ds.cache_dir() == target
    assert target.is_dir()
    data = b"env cache"
    server.files["/e.bin"] = data
    path = download(_info("envtest", server.base + "/e.bin", data), progress=False)
    assert path == target / "envtest.bin"


def test_argument_validation(tmp_path):
    info = _info("val", "http://127.0.0.1:9/x", b"x")
    with pytest.raises(ValueError, match="timeout"):
        download(info, cache=tmp_path, timeout=0)
    with pytest.raises(TypeError, match="progress"):
        download(info, cache=tmp_path, progress="yes")
    with pytest.raises(TypeError, match="name_or_info"):
        download(42)
    with pytest.raises(ValueError, match="sha256"):
        DatasetInfo(name="x", description="d", url="http://a/b", filename="b", sha256="abc")
    with pytest.raises(ValueError, match="archive"):
        DatasetInfo(name="x", description="d", url="http://a/b", filename="b", archive="rar")
    with pytest.raises(ValueError, match="filename"):
        DatasetInfo(name="x", description="d", url="http://a/b", filename="../b")
    with pytest.raises(ValueError, match="offline source"):
        download("mnist-offline")


# --------------------------------------------------------------------------- extraction
def _tar_with(tmp_path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        if member.isfile():
            member.size = len(data)
            tf.addfile(member, io.BytesIO(data))
        else:
            tf.addfile(member)
    return path


def _zip_with(tmp_path, zinfo: zipfile.ZipInfo, data: bytes = b"evil") -> Path:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fine.txt", b"ok")
        zf.writestr(zinfo, data)
    return path


def _assert_nothing_written(tmp_path, dest):
    assert not dest.exists()
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "abs_evil.txt").exists()
    assert not any(p.name.endswith(".extracting") for p in tmp_path.iterdir())


def test_extract_refuses_dotdot_absolute_and_links_in_tar(tmp_path):
    dest = tmp_path / "out"
    cases = []
    cases.append(("../evil.txt", tarfile.TarInfo("../evil.txt")))
    cases.append((str(tmp_path / "abs_evil.txt"), tarfile.TarInfo(str(tmp_path / "abs_evil.txt"))))
    sym = tarfile.TarInfo("link")
    sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
    cases.append(("link", sym))
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "fine.txt"
    cases.append(("hard", hard))
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    cases.append(("dev", dev))
    for name, member in cases:
        archive = _tar_with(tmp_path, member, b"evil")
        with pytest.raises(ValueError) as err:
            extract(archive, dest)
        assert repr(name) in str(err.value) or name in str(err.value)
        _assert_nothing_written(tmp_path, dest)


def test_extract_refuses_dotdot_absolute_and_symlink_in_zip(tmp_path):
    dest = tmp_path / "out"
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    for zinfo in (zipfile.ZipInfo("../evil.txt"), zipfile.ZipInfo("/abs_evil.txt"), link):
        archive = _zip_with(tmp_path, zinfo)
        with pytest.raises(ValueError) as err:
            extract(archive, dest)
        assert zinfo.filename in str(err.value)
        _assert_nothing_written(tmp_path, dest)


def test_extract_is_idempotent_and_refuses_unmarked_dest(archives, tmp_path):
    files, built = archives
    dest = tmp_path / "x"
    assert extract(built["zip"][0], dest) == dest.absolute()
    (dest / "pack" / "a.txt").write_bytes(b"changed")
    extract(built["zip"][0], dest)  # marker present: nothing re-extracted
    assert (dest / "pack" / "a.txt").read_bytes() == b"changed"

    other = tmp_path / "y"
    other.mkdir()
    (other / "mine.txt").write_text("user file")
    with pytest.raises(ValueError, match=r"\.complete"):
        extract(built["tar.gz"][0], other)
    assert (other / "mine.txt").read_text() == "user file"


# --------------------------------------------------------------------------- damaged archives
def _damaged(kind: str, data: bytes) -> bytes:
    if kind == "bad-crc-zip":  # flip one byte inside b.bin's stored data
        broken = bytearray(data)
        broken[broken.index(_payload()["pack/sub/b.bin"][:64]) + 1000] ^= 0xFF
        return bytes(broken)
    return data[: len(data) // 2]


@pytest.mark.parametrize("kind,source", [("truncated-tar.gz", "tar.gz"),
                                         ("truncated-zip", "zip"), ("bad-crc-zip", "zip")])
def test_extract_damaged_archive_is_one_clear_error(archives, tmp_path, kind, source):
    """(b) EOFError / BadZipFile / ReadError become one ArchiveError (a ValueError,
    so the CLIs print it) naming the archive, and nothing is left behind."""
    archive = tmp_path / f"damaged-{kind}"
    archive.write_bytes(_damaged(kind, archives[1][source][1]))
    dest = tmp_path / "out"
    with pytest.raises(ds.ArchiveError) as err:
        extract(archive, dest)
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert str(archive) in message and ("damaged" in message or "truncated" in message)
    assert "\n" not in message
    assert not dest.exists()
    assert not any(p.name.endswith(".extracting") for p in tmp_path.iterdir())


# --------------------------------------------------------------------------- extraction limits
def _fail_if_written(*args, **kwargs):
    raise AssertionError("a member was written before the limits were checked")


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_extract_size_limit_checked_from_headers_before_writing(archives, tmp_path,
                                                                monkeypatch, kind):
    """(a) The declared total (200,013 bytes) is over max_bytes: refused before any
    byte is written, with the archive, the limit, the size and the overrides."""
    archive = archives[1][kind][0]
    dest = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(ds._Budget, "copy", _fail_if_written)
        with pytest.raises(ds.ExtractLimitError) as err:
            extract(archive, dest, max_bytes=100_000)
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    for part in (str(archive), "max_bytes=100,000", "200,013", "max_bytes=N",
                 "COURSE_MAX_EXTRACT_BYTES"):
        assert part in message, part
    assert "\n" not in message
    assert not dest.exists()
    assert not any(p.name.endswith(".extracting") for p in tmp_path.iterdir())

    monkeypatch.setenv("COURSE_MAX_EXTRACT_BYTES", "100K")  # the same limit for a session
    with pytest.raises(ds.ExtractLimitError, match="max_bytes=102,400"):
        extract(archive, dest)
    assert extract(archive, dest, max_bytes=200_013) == dest.absolute()  # the keyword wins


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_extract_member_count_limit(archives, tmp_path, monkeypatch, kind):
    """(a) More members than max_files (or $COURSE_MAX_EXTRACT_FILES): refused
    before anything is written."""
    archive = archives[1][kind][0]
    dest = tmp_path / "out"
    monkeypatch.setattr(ds._Budget, "copy", _fail_if_written)
    with pytest.raises(ds.ExtractLimitError) as err:
        extract(archive, dest, max_files=1)
    message = str(err.value)
    for part in (str(archive), "max_files=1", "max_files=N", "COURSE_MAX_EXTRACT_FILES"):
        assert part in message, part
    monkeypatch.setenv("COURSE_MAX_EXTRACT_FILES", "1")
    with pytest.raises(ds.ExtractLimitError, match="max_files=1"):
        extract(archive, dest)
    assert not dest.exists()
    monkeypatch.setenv("COURSE_MAX_EXTRACT_FILES", "many")
    with pytest.raises(ValueError, match="COURSE_MAX_EXTRACT_FILES"):
        extract(archive, dest)


def test_extract_counts_bytes_actually_written(archives, tmp_path, monkeypatch):
    """(a) Headers can understate sizes: the bytes really written are counted and
    extraction stops at the limit, deleting what it wrote."""
    monkeypatch.setattr(ds, "_declared_size", lambda member: 0)  # every header lies
    dest = tmp_path / "out"
    with pytest.raises(ds.ExtractLimitError, match="while writing member 'pack/sub/b.bin'"):
        extract(archives[1]["zip"][0], dest, max_bytes=100_000)
    assert not dest.exists()
    assert not any(p.name.endswith(".extracting") for p in tmp_path.iterdir())


def test_zip_header_understating_a_size_is_refused(tmp_path):
    """(a) A crafted zip whose headers give b.bin 10 bytes while 200,000 are
    stored: never more than the declared bytes are written, and the mismatch
    is reported as a damaged archive."""
    data = bytearray(_zip_bytes(_payload()))
    name = b"pack/sub/b.bin"
    # (signature, offset of the uncompressed size, offset of the name): local, central header
    for signature, field, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.index(signature)
        while data[at + name_at: at + name_at + len(name)] != name:
            at = data.index(signature, at + 4)
        data[at + field: at + field + 4] = (10).to_bytes(4, "little")
    archive = tmp_path / "liar.zip"
    archive.write_bytes(bytes(data))
    assert zipfile.ZipFile(archive).getinfo("pack/sub/b.bin").file_size == 10
    dest = tmp_path / "out"
    with pytest.raises(ds.ArchiveError, match="damaged.*CRC"):
        extract(archive, dest, max_bytes=1000)
    assert not dest.exists()
    assert not any(p.name.endswith(".extracting") for p in tmp_path.iterdir())


def test_default_extract_limits_fit_the_registry():
    """(a) The defaults pass every registered archive (DIV2K's 3.5 GB zip, CelebA's
    202,599 images) but stop a bomb that unpacks to tens of gigabytes."""
    sizes = [info.size for info in ds.REGISTRY.values() if info.archive and info.size]
    assert max(sizes) * 2 < ds.MAX_EXTRACT_BYTES <= 64 * 2**30
    assert 202_599 < ds.MAX_EXTRACT_FILES <= 1_000_000


# --------------------------------------------------------------------------- registry
def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        ds.get_info("no-such-dataset")
    message = str(err.value)
    assert "no-such-dataset" in message
    for name in ("div2k-train-hr", "set5", "mnist-train-images", "coco-val2017"):
        assert name in message
    with pytest.raises(ValueError):
        fetch("no-such-dataset")


def test_registry_entries_are_well_formed():
    names = ds.list_datasets()
    assert names == sorted(names)
    required = {"div2k-train-hr", "div2k-valid-hr", "t91", "bsds300", "set5", "set14", "bsd100",
                "mnist-train-images", "fashion-mnist-train-images", "kmnist-train-images",
                "emnist", "celeba-img-align", "eg1800", "oxford-iiit-pet-images",
                "coco-val2017", "natural-images-offline", "mnist-offline"}
    assert required <= set(names)
    for name in names:
        info = ds.get_info(name)
        assert info.url or info.offline
        if info.url and info.checksum is None:
            # an unknown checksum must be said out loud
            assert "no published checksum" in info.notes.lower(), name
    assert ds.get_info("div2k-train-hr").sha256.startswith("9d0b9c46")
    with pytest.raises(ValueError, match="already registered"):
        ds.register(DatasetInfo(name="set5", description="dup", url="http://a/b", filename="b"))


# --------------------------------------------------------------------------- offline sources
def test_offline_natural_images_and_split():
    images = ds.offline_natural_images()
    assert len(images) >= 12
    for name, image in images.items():
        assert image.mode == "RGB", name
        assert min(image.size) >= 256, (name, image.size)
    train, holdout = ds.offline_split()
    assert len(holdout) >= 4
    assert set(train).isdisjoint(holdout)
    assert set(train) | set(holdout) == set(images)
    assert tuple(holdout) == ds.OFFLINE_HOLDOUT
    # the stereo pair is one scene: never split across train and hold-out
    assert ("motorcycle_left" in holdout) == ("motorcycle_right" in holdout)
    # no duplicate pictures (skimage's cat() is chelsea, hence left out)
    digests = {hashlib.sha256(im.tobytes()).hexdigest() for im in images.values()}
    assert len(digests) == len(images)


def test_offline_mnist():
    images, labels = ds.offline_mnist()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,)
    assert set(np.unique(labels).tolist()) == set(range(10))
    assert images.max() == 255 and images.min() == 0


def test_offline_digits_and_faces():
    images, labels = ds.offline_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.max() == 255 and set(np.unique(labels).tolist()) == set(range(10))
    faces, is_face = ds.offline_faces()
    assert faces.shape == (200, 25, 25) and faces.dtype == np.float32
    assert 0.0 <= faces.min() and faces.max() <= 1.0
    assert is_face.sum() == 100 and is_face[:100].all()
