"""Interrupted and failing runs lose nothing.

- Ctrl-C (SIGINT to the process group, as a terminal sends it) while a real
  ``vagg-bayes estimate`` samples: exit status 130, a message that nothing was written,
  no traceback, and no results folder (nor a hidden partial one) on disk; a folder that
  already held results is left byte for byte as it was.
- An output folder that cannot be written (cannot be created, read-only, full disk) is
  an error before sampling: the sampler is never reached.
- :func:`vagg_bayes.report.io.staged_folder`: a folder appears whole or not at all; an
  existing one has its result files replaced as a set.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vagg_bayes.cli import main
from vagg_bayes.report.io import staged_folder


#: ``python -m vagg_bayes.cli`` with Ctrl-C handled as in a terminal. A suite started as a
#: background job of a non-interactive shell (``make test &``) inherits SIGINT ignored, and
#: Python keeps an ignored SIGINT ignored: the command would never see the test's Ctrl-C.
_INTERRUPTIBLE = [sys.executable, "-c",
                  "import runpy, signal, sys; "
                  "signal.signal(signal.SIGINT, signal.default_int_handler); "
                  "sys.argv[0] = 'vagg-bayes'; "
                  "runpy.run_module('vagg_bayes.cli', run_name='__main__')"]

def _sampler_workers(pid: int) -> list[int]:
    """List the children of ``pid`` running its command line: the forked chain workers.

    A compiler started by PyTensor has another command line.
    """
    try:
        own = Path(f"/proc/{pid}/cmdline").read_bytes()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out = []
    for child in children:
        try:
            if Path(f"/proc/{child}/cmdline").read_bytes() == own:
                out.append(int(child))
        except OSError:
            continue
    return out


def _wait_for_sampling(proc: subprocess.Popen, timeout: float = 300) -> str:
    """Block until the chains are being sampled; return how that was seen."""
    forks = (os.cpu_count() or 1) >= 2 and Path(f"/proc/{proc.pid}").exists()
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"estimate ended before it was interrupted:\n{out}\n{err}")
        if forks and _sampler_workers(proc.pid):
            time.sleep(1.0)  # well inside the chains
            return "workers"
        if not forks and time.monotonic() - start > 60:
            return "time"  # one CPU, no /proc: chains run in the process itself
        time.sleep(0.2)
    pytest.fail("sampling did not start within the time limit")


@pytest.mark.slow
@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "previous-results"])
def test_ctrl_c_during_sampling_leaves_no_partial_results(panel_files, tmp_path, existing):
    spec, data = panel_files
    out = tmp_path / "results"
    before = {}
    if existing:
        out.mkdir()
        for name, text in (("effects.csv", "effect,mean\ntotal,1.0\n"), ("notes.txt", "mine")):
            (out / name).write_text(text)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = subprocess.Popen(
        [*_INTERRUPTIBLE, "estimate", str(spec), "--data", str(data),
         "--out", str(out), "--draws", "200000", "--tune", "500", "--chains", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        _wait_for_sampling(proc)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "nothing was written" in err, err
    # one message from the command, nothing from the chain workers (no traceback)
    assert all(line.startswith("vagg-bayes:") for line in err.splitlines() if line), err
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".results")]
    assert leftovers == []
    if existing:
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    else:
        assert not out.exists()


# --------------------------------------------------------------------------- before sampling


@pytest.fixture
def no_sampling(monkeypatch):
    """Make reaching the sampler a test failure."""
    import vagg_bayes.pipeline

    def estimate(*args, **kwargs):
        raise AssertionError("estimate() was reached: the output folder was not checked first")

    monkeypatch.setattr(vagg_bayes.pipeline, "estimate", estimate)


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_out_that_cannot_be_created_fails_before_sampling(panel_files, tmp_path, capsys,
                                                          no_sampling):
    spec, data = panel_files
    blocker = tmp_path / "plain.txt"
    blocker.write_text("a file, not a folder")
    code, err = _run(["estimate", spec, "--data", data, "--out", blocker / "sub"], capsys)
    assert code == 2 and "Cannot create the results folder" in err and "plain.txt" in err


def test_full_disk_fails_before_sampling(panel_files, tmp_path, capsys, no_sampling,
                                         monkeypatch):
    """A full disk shows when the probe file is synced.

    Simulated: ``os.fsync`` fails with ENOSPC, as it does on a full file system.
    """
    spec, data = panel_files

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "deep" / "results"
    code, err = _run(["estimate", spec, "--data", data, "--out", out], capsys)
    assert code == 2 and "not writable" in err and "No space left" in err
    assert not (tmp_path / "deep").exists()  # the folders made for the probe are gone


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="permissions do not bind root (or a non-POSIX system)")
def test_read_only_out_fails_before_sampling(panel_files, tmp_path, capsys, no_sampling):
    spec, data = panel_files
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        code, err = _run(["estimate", spec, "--data", data, "--out", out], capsys)
    finally:
        out.chmod(0o700)
    assert code == 2 and "not writable" in err


def test_check_leaves_nothing_behind(panel_files, tmp_path, capsys, monkeypatch):
    """The check makes no folder: an estimate that then fails leaves no trace."""
    spec, data = panel_files
    spec.write_text(spec.read_text().replace('treatment = "dose"', 'treatment = "dosage"'))
    out = tmp_path / "a" / "b"
    code, _ = _run(["estimate", spec, "--data", data, "--out", out], capsys)
    assert code == 2 and not (tmp_path / "a").exists()


# --------------------------------------------------------------------------- staged folders


def test_staged_folder_appears_whole(tmp_path):
    out = tmp_path / "res"
    with staged_folder(out) as stage:
        (stage / "a.csv").write_text("1")
        assert not out.exists()  # nothing visible while files are written
        (stage / "b.csv").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["res"]


def test_staged_folder_interrupted_leaves_nothing(tmp_path):
    out = tmp_path / "res"
    with pytest.raises(KeyboardInterrupt), staged_folder(out) as stage:
        (stage / "a.csv").write_text("1")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_staged_folder_replaces_a_previous_set(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    for name in ("effects.csv", "sensitivity.csv", "panel.csv"):
        (out / name).write_text("old")
    with staged_folder(out, replaces=["effects.csv", "sensitivity.csv"]) as stage:
        (stage / "effects.csv").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["effects.csv", "panel.csv"]
    assert (out / "effects.csv").read_text() == "new"
    assert (out / "panel.csv").read_text() == "old"  # not a result file: left alone


def test_ctrl_c_while_files_move_is_held_until_all_moved(tmp_path, monkeypatch):
    out = tmp_path / "res"
    out.mkdir()
    real_replace = os.replace

    def replace_and_interrupt(src, dst):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives after the first move
        real_replace(src, dst)

    with pytest.raises(KeyboardInterrupt) as exc:
        with staged_folder(out) as stage:
            for name in ("a.csv", "b.csv", "c.csv"):
                (stage / name).write_text(name)
            monkeypatch.setattr(os, "replace", replace_and_interrupt)
    monkeypatch.undo()
    assert getattr(exc.value, "published", False)
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv", "c.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["res"]
