import json
import os
import subprocess
import sys

import pytest
import torch

from snapsr import runtime


def test_wants_hugepages_only_where_it_helps():
    assert runtime.wants_hugepages({}, "linux", "madvise")
    assert not runtime.wants_hugepages({}, "linux", "always")  # already huge pages
    assert not runtime.wants_hugepages({}, "linux", "never")
    assert not runtime.wants_hugepages({}, "linux", None)
    assert not runtime.wants_hugepages({}, "darwin", "madvise")
    assert not runtime.wants_hugepages({"SNAPSR_NO_HUGEPAGES": "1"}, "linux", "madvise")
    assert not runtime.wants_hugepages({runtime.VARIABLE: "0"}, "linux", "madvise")  # the user's choice stands


PROBE = """
import os, sys
from snapsr import runtime
import snapsr.cli  # every command module: none may import torch before entry() asks for huge pages
assert "torch" not in sys.modules, "importing the CLI imported torch"
print(runtime.enable_hugepages())
import torch
x = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB: PyTorch's allocator asks for huge pages above 2 MiB
huge = sum(int(line.split()[1]) for line in open("/proc/self/smaps") if line.startswith("AnonHugePages:"))
print(huge)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_cli_asks_pytorch_for_huge_pages_before_importing_it():
    env = {k: v for k, v in os.environ.items() if k not in ("SNAPSR_NO_HUGEPAGES", runtime.VARIABLE)}
    runs = {}
    for name, extra in (("on", {}), ("off", {"SNAPSR_NO_HUGEPAGES": "1"})):
        out = subprocess.run([sys.executable, "-c", PROBE], env={**env, **extra}, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        runs[name] = out.stdout.split()
    wanted = runtime.wants_hugepages({}, sys.platform, runtime.thp_mode())
    assert runs["on"][0] == str(wanted) and runs["off"][0] == "False"
    if wanted:  # the kernel gave the 64 MiB block huge pages only when asked
        assert int(runs["on"][1]) >= 32 << 10 and int(runs["off"][1]) < int(runs["on"][1])
    assert runtime.enable_hugepages() is False  # torch is imported in this process: too late to ask
    ok = subprocess.run([sys.executable, "-m", "snapsr", "models", "--json"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and '"default"' in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "snapsr", "no-such-command"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "No such command" in bad.stderr


def test_upscale_asks_for_huge_pages_only_for_large_images(tmp_path, monkeypatch):
    """Below ``HUGEPAGES_FROM`` pixels the 2 MiB faults cost more than they save (runtime's docstring)."""
    from PIL import Image

    from snapsr.cli.upscale import largest_input

    Image.new("RGB", (40, 30)).save(tmp_path / "small.png")
    Image.new("RGB", (1200, 900)).save(tmp_path / "big.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    assert largest_input([str(tmp_path / "small.png")], False) == 1200
    assert largest_input([str(tmp_path)], False) == 1200 * 900  # a folder: its images' headers
    assert largest_input([str(tmp_path / "*.png"), str(tmp_path / "missing.png")], False) == 1200
    assert largest_input([str(tmp_path / "big.jpg")], False, probe=1) == 1200 * 900
    assert largest_input([str(tmp_path / "big.jpg")], False, probe=0) is None  # more files than probed: unknown
    env = {k: v for k, v in os.environ.items() if k not in ("SNAPSR_NO_HUGEPAGES", runtime.VARIABLE)}
    monkeypatch.setattr(os, "environ", env)
    monkeypatch.setattr(runtime, "wants_hugepages", lambda *a: True)
    monkeypatch.delitem(sys.modules, "torch")  # as if torch were not imported yet
    monkeypatch.setattr(runtime, "keep_freed_blocks", lambda: True)
    assert runtime.tune_memory(runtime.HUGEPAGES_FROM - 1) == "heap"
    assert runtime.VARIABLE not in env
    assert runtime.tune_memory(runtime.HUGEPAGES_FROM) == "hugepages" and env[runtime.VARIABLE] == "1"
    # upscale's choice: huge pages from HUGEPAGES_FROM pixels or an unknown size, freed blocks kept below
    calls = []
    monkeypatch.setattr(runtime, "enable_hugepages", lambda: calls.append("hugepages") or True)
    monkeypatch.setattr(runtime, "keep_freed_blocks", lambda: calls.append("heap") or True)
    sizes = (runtime.HUGEPAGES_FROM - 1, runtime.HUGEPAGES_FROM, None)
    assert [runtime.tune_memory(n) for n in sizes] == ["heap", "hugepages", "hugepages"] and calls == [
        "heap",
        "hugepages",
        "hugepages",
    ]


KEEP = """
import ctypes, sys
from snapsr import runtime
print(runtime.keep_freed_blocks())
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def faults():
    return int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[7])  # minflt
p = libc.malloc(64 << 20); ctypes.memset(p, 1, 64 << 20); libc.free(p)
before = faults()
p = libc.malloc(64 << 20); ctypes.memset(p, 1, 64 << 20); libc.free(p)
print(faults() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_keep_freed_blocks_reuses_memory_already_faulted_in():
    """A freed 64 MiB block comes back without 16k new page faults once glibc keeps it in the heap."""
    import platform

    runs = {}
    for name, extra in (("on", {}), ("off", {"SNAPSR_NO_HEAP_REUSE": "1"})):
        out = subprocess.run([sys.executable, "-c", KEEP], env={**os.environ, **extra}, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        runs[name] = out.stdout.split()
    glibc = platform.libc_ver()[0] == "glibc"
    assert runs["on"][0] == str(glibc) and runs["off"][0] == "False"
    if glibc:
        assert int(runs["on"][1]) < 1000  # 64 MiB is 16,384 pages of 4 KiB
        if runtime.thp_mode() != "always":  # (where the kernel maps 2 MiB pages anyway, 32 faults)
            assert int(runs["off"][1]) > 1000


def test_upscale_exits_without_teardown_and_loses_nothing(tmp_path):
    """``snapsr upscale`` ends with ``os._exit`` (runtime.exit_quickly): its JSON summary, its error
    lines and its status must still arrive whole, and its outputs be on disk."""
    from PIL import Image

    Image.new("RGB", (24, 16), (200, 90, 40)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a png")
    cmd = [sys.executable, "-m", "snapsr", "upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    out = subprocess.run(
        [*cmd, "-o", str(tmp_path / "out"), "--json", "--realism", "0"], capture_output=True, text=True
    )
    assert out.returncode == 1, out.stderr  # one input failed
    summary = json.loads(out.stdout)
    assert [f["status"] for f in summary["files"]] == ["written", "failed"]
    assert (tmp_path / "out" / "a_x4.png").is_file() and "b.png" in out.stderr
    ok = subprocess.run([*cmd[:-1], "-o", str(tmp_path / "out2"), "--quiet"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout == "" and (tmp_path / "out2" / "a_x4.png").is_file(), ok.stderr


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
