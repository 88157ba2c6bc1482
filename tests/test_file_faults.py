"""The default file under faults: forked workers sharing it, and a disk that fills up.

Each scenario runs in its own interpreter (forking a pytest process with threads is not
what a server does), writes through the real provider otel-lunary builds, and the file is
read back with ``otel-lunary replay``, counting every message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.tmpfs import tmpfs

REPO = Path(__file__).resolve().parent.parent


def run_script(script: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True, timeout=timeout, env=env)


def replayed_contents(path: Path) -> list[str]:
    """The text of every message ``otel-lunary replay`` reads back from ``path`` and its backups."""
    result = run_script("import sys; from otel_lunary.cli import main; sys.exit(main(sys.argv[1:]))", "replay", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    contents = []
    for line in result.stdout.splitlines():
        for item in json.loads(line)["items"]:
            if item["type"] == "message":
                contents.append(item["content"])
    return contents


FORKED_WORKERS = """
    import os, sys
    import otel_lunary as lunary
    from otel_lunary import export
    from otel_lunary.export import ExportOptions, build_tracer_provider

    path, workers, per_worker = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    provider = build_tracer_provider(ExportOptions(exporter="file", file_path=path, file_max_bytes=32768, file_backups=10000))
    lunary.configure(tracer_provider=provider)

    def track(who):
        thread = lunary.open_thread(user_id=who)
        for i in range(per_worker):
            thread.track_message({"role": "user", "content": f"{who} {i}"})
            if i % 50 == 0:
                lunary.flush(30)  # many small batches: many writes and rotations racing

    track("parent-before-fork")
    assert lunary.flush(30)  # the parent's descriptor is open when it forks (gunicorn --preload)
    children = []
    for w in range(workers):
        pid = os.fork()
        if pid == 0:
            track(f"worker{w}")
            os._exit(0 if lunary.flush(60) else 3)
        children.append(pid)
    track("parent")
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    assert codes == [0] * workers, codes
    assert lunary.flush(60)
    print(export.dropped_spans())
"""


class TestForkedWorkers:
    def test_every_message_of_every_worker_is_in_the_file(self, tmp_path: Path) -> None:
        """Workers forked after the file was opened, rotating often, lose nothing (issue 13 item 7)."""
        path = tmp_path / "traces.jsonl"
        workers, per_worker = 4, 600
        result = run_script(FORKED_WORKERS, str(path), str(workers), str(per_worker))
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.split() == ["0"]  # the parent dropped nothing
        assert len(list(tmp_path.iterdir())) > 10  # the set rotated many times
        writers = ["parent-before-fork", "parent"] + [f"worker{w}" for w in range(workers)]
        expected = sorted(f"{who} {i}" for who in writers for i in range(per_worker))
        assert sorted(replayed_contents(path)) == expected


FULL_DISK = """
    import os, sys
    import otel_lunary as lunary
    from otel_lunary import export
    from otel_lunary.export import ExportOptions, build_tracer_provider

    path, filler, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "inject":  # no small filesystem available: the kernel's answer, injected
        import errno
        from otel_lunary.export import file as file_module
        real_write = os.write
        full = {"on": False}

        class FullDiskOs:
            def __getattr__(self, name):
                return getattr(os, name)

            @staticmethod
            def write(fd, data):
                if not full["on"]:
                    return real_write(fd, data)
                if len(data) > 1:  # a short write of what fits, then ENOSPC, as tmpfs does
                    return real_write(fd, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        file_module.os = FullDiskOs()

    provider = build_tracer_provider(ExportOptions(exporter="file", file_path=path))
    lunary.configure(tracer_provider=provider)
    thread = lunary.open_thread(user_id="u")

    def batch(label, count):
        for i in range(count):
            thread.track_message({"role": "user", "content": f"{label} {i} " + "x" * 200})
        return lunary.flush(30)

    print("before", batch("before", 20))
    if mode == "inject":
        full["on"] = True
    else:  # fill the filesystem: the next batch finds at most the slack of the file's last page
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"f" * 4096):
                pass
        except OSError:
            pass
        os.close(fd)
    print("full", batch("full", 40))
    print("dropped", export.drop_counts()["export_failed"])
    if mode == "inject":
        full["on"] = False
    else:
        os.unlink(filler)  # space comes back
    print("after", batch("after", 20))
"""


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real 256 KiB tmpfs when this machine lets the test mount one, else a plain
    directory with ENOSPC injected into the exporter's writes."""
    mount = tmp_path / f"small-{uuid.uuid4().hex[:8]}"
    with tmpfs(mount, "256k") as failure:
        yield mount, "tmpfs" if failure is None else "inject"


class TestFullDisk:
    def test_a_batch_that_does_not_fit_leaves_no_partial_line(self, small_filesystem: tuple[Path, str]) -> None:
        """Disk full mid-line: the partial line is cut, the batch counted as dropped, flush()
        says False, and once space is back the next batches read back whole (issue 13 item 8)."""
        directory, mode = small_filesystem
        path = directory / "traces.jsonl"
        result = run_script(FULL_DISK, str(path), str(directory / "filler"), mode)
        assert result.returncode == 0, result.stderr[-3000:]
        report = dict(line.split(" ", 1) for line in result.stdout.splitlines())
        # 40 questions record 80 spans: each its message and its turn (ended by the next question, the last by flush)
        assert report == {"before": "True", "full": "False", "dropped": "80", "after": "True"}, (mode, report)
        data = path.read_bytes()
        assert data.endswith(b"\n")
        assert all(json.loads(line) for line in data.splitlines())  # no torn or glued line
        contents = replayed_contents(path)
        assert sorted(contents) == sorted([f"before {i} " + "x" * 200 for i in range(20)] + [f"after {i} " + "x" * 200 for i in range(20)])

    def test_a_torn_line_left_by_a_crash_is_ended_before_the_next_write(self, tmp_path: Path) -> None:
        """A line cut off by a writer killed mid-write (no chance to cut it back) costs that
        line only: the next batch starts on a line of its own."""
        path = tmp_path / "traces.jsonl"
        path.write_bytes(b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"trace')
        script = """
            import sys
            import otel_lunary as lunary
            lunary.configure(exporter="file", file_path=sys.argv[1])
            lunary.open_thread().track_message({"role": "user", "content": "after the crash"})
            assert lunary.flush(30)
        """
        result = run_script(script, str(path))
        assert result.returncode == 0, result.stderr
        lines = path.read_bytes().splitlines()
        assert len(lines) == 2 and json.loads(lines[1])
        assert replayed_contents(path) == ["after the crash"]
