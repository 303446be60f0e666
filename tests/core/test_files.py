"""Table files under faults: full filesystems, non-regular paths, killed savers and creators, ``ccrop clean``."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ccrop_loaders import BoxTable
from ccrop_loaders.tools.cli import main as ccrop
from ccrop_loaders.core.files import temp_name
from ccrop_loaders.core.orphans import orphaned_tables

BOX = [0.1, 0.2, 0.3, 0.4]


def run_python(code: str, *, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def measured_load(path, env: dict | None = None) -> tuple[str, float, int]:
    """``BoxTable.load(path)`` in a fresh process: (its error message, seconds, peak resident KiB). The peak is
    VmHWM, which exec resets, unlike ru_maxrss (inherited from pytest's own high-water mark)."""
    done = run_python(f"""
        import time
        from ccrop_loaders import BoxTable
        start = time.monotonic()
        try:
            BoxTable.load({str(path)!r})
        except (OSError, ValueError) as err:
            print(err)
        peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]
        print(time.monotonic() - start, peak)
        """, env=env)
    assert done.returncode == 0, done.stderr
    message, figures = done.stdout.strip().rsplit("\n", 1)
    seconds, peak_kb = figures.split()
    return message, float(seconds), int(peak_kb)


@pytest.fixture
def own_shm(tmp_path, monkeypatch) -> Path:
    """A private table folder, so tests see only their own tables."""
    folder = tmp_path / "shm"
    folder.mkdir()
    monkeypatch.setenv("CCROP_SHM_DIR", str(folder))
    return folder


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs (Docker's /dev/shm, scaled down): root and mount needed."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


# ----------------------------------------------------------------- a full filesystem


@pytest.mark.parametrize("how", ["create", "load"])
def test_no_room_is_an_oserror_that_says_what_to_do_and_leaves_nothing(tiny_tmpfs, tmp_path, how):
    saved = tmp_path / "big.ccrop"
    if how == "load":
        with BoxTable.create(20_000) as big:
            big.save(saved)
    call = "BoxTable.create(20_000)" if how == "create" else f"BoxTable.load({str(saved)!r})"
    done = run_python(f"""
        from ccrop_loaders import BoxTable
        try:
            {call}
        except OSError as err:
            print("OSError:", err)
        """, env={"CCROP_SHM_DIR": str(tiny_tmpfs)})
    assert done.returncode == 0, f"died with {done.returncode} (SIGBUS is -7): {done.stderr}"
    message = done.stdout
    assert "OSError:" in message and "160,064 bytes" in message and str(tiny_tmpfs) in message
    assert "CCROP_SHM_DIR" in message and "--shm-size" in message
    assert os.listdir(tiny_tmpfs) == []


def test_a_table_that_fits_a_small_filesystem_works(tiny_tmpfs, monkeypatch):
    monkeypatch.setenv("CCROP_SHM_DIR", str(tiny_tmpfs))
    with BoxTable.create(1000) as table:
        table.write([999], [BOX])
        assert BoxTable.attach(table.name).read([999]) == pytest.approx(np.array([BOX]), abs=1e-4)
    assert os.listdir(tiny_tmpfs) == []


# ----------------------------------------------------------------- save: what may be replaced


def test_save_writes_through_a_symlink_and_keeps_it(tmp_path):
    real = tmp_path / "real.ccrop"
    link = tmp_path / "link.ccrop"
    link.symlink_to(real)  # dangling at first
    with BoxTable.create(4) as table:
        table.save(link)
        table.write([2], [BOX])
        table.save(link)
        assert link.is_symlink() and os.readlink(link) == str(real)
        with BoxTable.load(real) as loaded:
            np.testing.assert_array_equal(loaded.read(), table.read())
    assert sorted(os.listdir(tmp_path)) == ["link.ccrop", "real.ccrop"]


def _special_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    found = [(fifo, "a FIFO"), (folder, "a directory")]
    try:
        device = tmp_path / "null"
        os.mknod(device, 0o600 | 0o020000, os.makedev(1, 3))  # a /dev/null clone (root only)
        found.append((device, "a character device"))
    except (PermissionError, OSError):
        pass
    return found


def test_save_refuses_fifos_devices_and_folders_and_leaves_them(tmp_path):
    with BoxTable.create(4) as table:
        for path, kind in _special_files(tmp_path):
            before = os.lstat(path)
            with pytest.raises(ValueError, match=f"{path.name}.*{kind}, not a regular file"):
                table.save(path)
            after = os.lstat(path)
            assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
            link = tmp_path / f"link-to-{path.name}"
            link.symlink_to(path)
            with pytest.raises(ValueError, match=kind):
                table.save(link)
            assert link.is_symlink()
    assert not [e for e in os.listdir(tmp_path) if e.endswith(".tmp")]


def test_load_refuses_what_is_not_a_regular_file_quickly(tmp_path):
    for path, kind in [*_special_files(tmp_path), (Path("/dev/zero"), "a character device")]:
        start = time.monotonic()
        with pytest.raises(ValueError, match=f"{kind}, not a regular file"):
            BoxTable.load(path)
        assert time.monotonic() - start < 5  # a FIFO without a writer must not block


def test_load_reads_only_what_a_valid_header_declares(tmp_path):
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:  # 2 GB of zeros, sparse: a file that is not a table
        f.truncate(2 << 30)
    message, seconds, max_rss_kb = measured_load(huge)
    assert "not a box table" in message
    assert seconds < 2 and max_rss_kb < 600_000


@pytest.mark.parametrize("word, value, words", [
    (2, 10**9, "header says 1000000000 samples"),  # declared count larger than the file
    (2, 0, "declares 0 samples"),
    (3, 2**63, "epoch must be in"),
    (5, 2, "use_boxes must be 0 or 1"),
])
def test_load_refuses_forged_headers_naming_the_file(tmp_path, word, value, words):
    path = tmp_path / "boxes.ccrop"
    with BoxTable.create(4) as table:
        table.save(path)
    import struct
    import zlib

    data = bytearray(path.read_bytes()[:-4])
    struct.pack_into("<Q", data, 8 * word, value)
    path.write_bytes(bytes(data) + struct.pack("<I", zlib.crc32(data)))
    with pytest.raises(ValueError) as info:
        BoxTable.load(path)
    assert words in str(info.value) and str(path) in str(info.value)


# ----------------------------------------------------------------- killed savers


def test_sigkill_during_save_leaves_the_old_or_the_new_file_and_no_litter(tmp_path):
    path = tmp_path / "boxes.ccrop"
    with BoxTable.create(200_000) as table:  # 1.6 MB: saves take long enough to be killed midway
        table.save(path)
    expected = {0.0, 1.0}  # the saver alternates row 0's y1 between two values
    saver = textwrap.dedent(f"""
        from ccrop_loaders import BoxTable
        import sys
        table = BoxTable.create(200_000)
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        flip = False
        while True:
            table.write([0], [[0, 0, 1.0 if flip else 0.0, 1]])
            table.save({str(path)!r})
            flip = not flip
        """)
    rng = np.random.default_rng(0)
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", saver], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.kill()
        proc.wait(timeout=30)
        with BoxTable.load(path) as loaded:
            assert float(loaded.read([0])[0, 2]) in expected
    litter = [e for e in os.listdir(tmp_path) if e.endswith(".tmp")]
    with BoxTable.create(4) as table:
        table.save(path)  # cleans temp files whose writer is gone
    assert os.listdir(tmp_path) == ["boxes.ccrop"], litter


def test_save_keeps_temp_files_of_a_live_writer(tmp_path):
    path = tmp_path / "boxes.ccrop"
    live = tmp_path / temp_name("boxes.ccrop")  # this process's own name: alive
    live.write_bytes(b"in progress")
    dead = tmp_path / f".boxes.ccrop.{temp_name('x').split('.')[2]}.999999999.abcd1234.tmp"
    dead.write_bytes(b"left by a killed save")
    with BoxTable.create(4) as table:
        table.save(path)
    assert live.exists() and not dead.exists()


# ----------------------------------------------------------------- killed creators and ccrop clean

HOLDER = """
    import sys, threading, time
    from ccrop_loaders import BoxTable
    from ccrop_loaders.core import files
    tables = []
    maker = threading.Thread(target=lambda: tables.append(BoxTable.create(16)))  # not the main thread
    maker.start()
    maker.join()
    print(tables[0].name, files._tracker.pid, flush=True)
    sum(range(10**12)) if "busy" in sys.argv else time.sleep(120)  # stuck in C code, or sleeping
"""


def _start_holder(own_shm, *args):
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), *args], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "CCROP_SHM_DIR": str(own_shm)})
    name, tracker = proc.stdout.readline().split()
    return proc, name, int(tracker)


def _wait_until_gone(path, seconds=30):
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not path.exists()


@pytest.mark.parametrize("signum, state", [(signal.SIGTERM, "sleeping"), (signal.SIGTERM, "busy"),
                                           (signal.SIGKILL, "busy")])
def test_the_creators_table_goes_when_it_is_killed_and_the_signal_keeps_its_meaning(own_shm, signum, state):
    proc, name, _ = _start_holder(own_shm, state)
    assert (own_shm / name).exists()
    proc.send_signal(signum)
    assert proc.wait(timeout=10) == -signum  # dies at once, even inside C code
    assert _wait_until_gone(own_shm / name)
    assert os.listdir(own_shm) == []


def test_ccrop_clean_removes_tables_of_killed_creators_never_live_ones(own_shm, capsys):
    live, live_name, _ = _start_holder(own_shm)
    dead, dead_name, dead_tracker = _start_holder(own_shm)
    try:
        os.kill(dead_tracker, signal.SIGKILL)  # both the creator and its tracker die (e.g. the OOM killer)
        dead.kill()
        dead.wait(timeout=30)
        time.sleep(0.2)
        assert sorted(os.listdir(own_shm)) == sorted([live_name, dead_name])
        assert orphaned_tables(own_shm) == [own_shm / dead_name]
        assert ccrop(["clean", "--dry-run"]) == 0
        assert f"would remove {own_shm / dead_name}" in capsys.readouterr().out
        assert sorted(os.listdir(own_shm)) == sorted([live_name, dead_name])
        assert ccrop(["clean"]) == 0
        assert os.listdir(own_shm) == [live_name]
        with BoxTable.create(4) as mine:  # this process's table is live too
            assert orphaned_tables(own_shm) == []
            assert BoxTable.attach(live_name).read([0]).shape == (1, 4)
            assert mine.name in os.listdir(own_shm)
    finally:
        live.kill()
        live.wait(timeout=30)


def test_sigkill_of_an_attached_writer_leaves_whole_rows(own_shm):
    a, b = [0.1, 0.2, 0.3, 0.4], [0.6, 0.7, 0.8, 0.9]
    with BoxTable.create(4096) as table:
        table.write(np.arange(4096), np.tile(a, (4096, 1)))
        writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import numpy as np
            from ccrop_loaders import BoxTable
            table = BoxTable.attach({table.name!r})
            rows, flip = np.arange(4096), False
            while True:
                table.write(rows, np.tile({b} if flip else {a}, (4096, 1)))
                if table.writes == 3:
                    print("ready", flush=True)
                flip = not flip
            """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "CCROP_SHM_DIR": str(own_shm)})
        assert writer.stdout.readline() == "ready\n"
        time.sleep(0.3)
        writer.kill()
        writer.wait(timeout=30)
        boxes = table.read()
        whole = np.isclose(boxes, a, atol=1e-4).all(axis=1) | np.isclose(boxes, b, atol=1e-4).all(axis=1)
        assert whole.all()
        assert table.writes > 3
    assert os.listdir(own_shm) == []


def test_concurrent_writers_count_every_write(own_shm):
    with BoxTable.create(8) as table:
        script = textwrap.dedent(f"""
            from ccrop_loaders import BoxTable
            table = BoxTable.attach({table.name!r})
            for _ in range(3000):
                table.write([0], [[0, 0, 1, 1]])
            """)
        procs = [subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "CCROP_SHM_DIR": str(own_shm)})
                 for _ in range(3)]
        assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
        assert table.writes == 9000


def test_attach_refuses_what_is_not_a_table_file(own_shm):
    with BoxTable.create(4) as table:
        (own_shm / "link").symlink_to(own_shm / table.name)
        with pytest.raises(ValueError, match="symlink"):
            BoxTable.attach("link")
    os.mkfifo(own_shm / "fifo")
    with pytest.raises(ValueError, match="a FIFO, not a regular file"):
        BoxTable.attach("fifo")
    (own_shm / "forged").write_bytes(b"CCROPTBL" + (1).to_bytes(8, "little") + (10**12).to_bytes(8, "little")
                                     + bytes(40))
    with pytest.raises(ValueError, match="corrupt"):
        BoxTable.attach("forged")


def test_load_of_a_sparse_forged_file_is_refused_before_reading(tmp_path, tiny_tmpfs):
    import struct

    path = tmp_path / "forged.ccrop"
    count = 2**33  # 64 GiB of rows declared, a few bytes on disk
    with open(path, "wb") as f:
        f.write(b"CCROPBOX" + struct.pack("<7Q", 1, count, 0, 0, 1, 0, 0))
        f.truncate(64 + 8 * count + 4)
    message, seconds, max_rss_kb = measured_load(path, env={"CCROP_SHM_DIR": str(tiny_tmpfs)})
    assert "no room for the box table in box table file" in message and "68,719,476,800 bytes" in message
    assert seconds < 2 and max_rss_kb < 600_000
    assert os.listdir(tiny_tmpfs) == []


def test_save_keeps_the_replaced_files_mode_and_says_when_there_is_no_room(tmp_path, tiny_tmpfs):
    path = tmp_path / "boxes.ccrop"
    with BoxTable.create(8) as table:
        table.save(path)
        os.chmod(path, 0o644)
        table.save(path)
        assert os.stat(path).st_mode & 0o777 == 0o644
        with BoxTable.create(20_000) as big:
            with pytest.raises(OSError, match=r"No space left on device: cannot write .*full.ccrop.*160,068 bytes "
                                              r"needed in .*the old file is unchanged"):
                big.save(tiny_tmpfs / "full.ccrop")
    assert os.listdir(tiny_tmpfs) == []


def test_names_that_would_collide_with_temp_files_are_refused():
    for name in (".hidden", "a" * 201, "nul\0l"):
        with pytest.raises(ValueError, match="table name"):
            BoxTable.create(2, name=name)


def test_a_table_in_a_relative_shm_dir_is_cleaned_up_after_a_chdir(tmp_path, monkeypatch):
    from ccrop_loaders.core.files import shm_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rel").mkdir()
    monkeypatch.setenv("CCROP_SHM_DIR", "rel")
    with BoxTable.create(4) as table:
        assert shm_dir() == tmp_path / "rel" and BoxTable.attach(table.name).read([0]).shape == (1, 4)
        monkeypatch.chdir("/")
    assert os.listdir(tmp_path / "rel") == []


def test_names_with_control_characters_are_refused_so_the_tracker_keeps_working(own_shm):
    with pytest.raises(ValueError, match="printable"):
        BoxTable.create(2, name="x\ny")
    proc, name, _ = _start_holder(own_shm, "sleeping")  # the tracker still unlinks on SIGKILL
    proc.kill()
    proc.wait(timeout=10)
    assert _wait_until_gone(own_shm / name)


def test_clean_leaves_a_table_that_took_the_name_of_an_orphan(own_shm):
    from ccrop_loaders.core.orphans import remove_orphaned

    proc, name, tracker = _start_holder(own_shm)
    os.kill(tracker, signal.SIGKILL)
    proc.kill()
    proc.wait(timeout=10)
    time.sleep(0.2)
    orphans = orphaned_tables(own_shm)
    assert orphans == [own_shm / name]
    os.unlink(own_shm / name)  # between listing and removing, a live table takes the name
    with BoxTable.create(4, name=name) as live:
        assert not remove_orphaned(orphans[0])
        assert live.read([0]).shape == (1, 4) and (own_shm / name).exists()
