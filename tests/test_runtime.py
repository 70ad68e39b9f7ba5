import json
import os
import subprocess
import sys

import pytest
import torch

from snapsr import runtime


def test_wants_hugepages_only_where_it_helps():
    glibc = (2, 36)
    assert runtime.wants_hugepages({}, "linux", glibc, "madvise")
    assert not runtime.wants_hugepages({}, "linux", glibc, "always")  # already huge pages
    assert not runtime.wants_hugepages({}, "linux", glibc, "never")
    assert not runtime.wants_hugepages({}, "linux", glibc, None)
    assert not runtime.wants_hugepages({}, "linux", (2, 34), "madvise")  # no such tunable before 2.35
    assert not runtime.wants_hugepages({}, "linux", None, "madvise")  # musl
    assert not runtime.wants_hugepages({}, "darwin", glibc, "madvise")
    assert not runtime.wants_hugepages({"SNAPSR_NO_HUGEPAGES": "1"}, "linux", glibc, "madvise")
    # set already (by us, after the re-exec, or by the user): never loops
    assert not runtime.wants_hugepages({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "linux", glibc, "madvise")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_cli_runs_with_the_tunable_where_wanted(tmp_path):
    """``python -m snapsr`` re-executes itself once, keeps its arguments and exit code."""
    probe = tmp_path / "sitecustomize.py"  # runs in every interpreter started with this path
    probe.write_text(
        f"import os\nopen({str(tmp_path / 'log')!r}, 'a').write(os.environ.get('GLIBC_TUNABLES', '-') + '\\n')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    env.pop("SNAPSR_NO_HUGEPAGES", None)
    env.pop("GLIBC_TUNABLES", None)
    out = subprocess.run([sys.executable, "-m", "snapsr", "models", "--json"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert '"default"' in out.stdout
    starts = (tmp_path / "log").read_text().split()
    wanted = runtime.wants_hugepages({}, sys.platform, runtime.glibc_version(), runtime.thp_mode())
    assert starts == (["-", runtime.TUNABLE] if wanted else ["-"])
    bad = subprocess.run([sys.executable, "-m", "snapsr", "no-such-command"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "No such command" in bad.stderr


def test_auto_dtype_is_measured_once_per_machine_and_cached(tmp_path, monkeypatch):
    from snapsr.infer import device
    from snapsr.model.config import FlowConfig
    from snapsr.model.flow import FlowSR

    monkeypatch.setattr(device, "cache_file", lambda: tmp_path / "dtype.json")
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: True)
    calls = []

    def timer(model, dtype):
        calls.append(dtype)
        return 1.0 if dtype == torch.float32 else 2.0  # fp32 faster on this "machine"

    real_timer = device._time_one_step
    monkeypatch.setattr(device, "_time_one_step", timer)
    model = FlowSR(FlowConfig(scale=2, backbone="lrnet_t"))
    cpu = torch.device("cpu")
    assert device.resolve_dtype("auto", cpu, model) == torch.float32 and len(calls) == 2
    assert device.resolve_dtype("auto", cpu, model) == torch.float32 and len(calls) == 2  # from the cache
    record = json.loads((tmp_path / "dtype.json").read_text())
    (entry,) = record.values()
    assert entry == {"dtype": "fp32", "seconds_per_tile": {"fp32": 1.0, "bf16": 2.0}}
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: False)  # no bf16 here: no measuring
    assert device.resolve_dtype("auto", cpu, model) == torch.float32 and len(calls) == 2
    assert device.resolve_dtype("bf16", cpu) == torch.bfloat16
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: True)
    assert real_timer(model, torch.bfloat16, side=8, repeats=1) > 0  # the real timer runs
