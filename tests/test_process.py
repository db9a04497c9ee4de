"""The ``rfmml`` command's process settings (:mod:`rfmml._process`), in child processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

linux_status = pytest.mark.skipif(
    not Path("/proc/self/status").exists()
    or "THP_enabled" not in Path("/proc/self/status").read_text(),
    reason="needs Linux's /proc/<pid>/status THP_enabled field (kernel 5.0 or later)",
)

# the command's callback runs before the subcommand rejects the missing file
_SCRIPT = """
import re
from click.testing import CliRunner
from rfmml.cli import main
result = CliRunner().invoke(main, ["features", "no-such-file.csv"])
assert result.exit_code != 0, result.output
print(re.search(r"THP_enabled:\\s*(\\d)", open("/proc/self/status").read()).group(1))
"""


def _mine() -> str:
    return Path("/proc/self/status").read_text().split("THP_enabled:")[1].split()[0]


def _thp_after_command(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip().splitlines()[-1]


@linux_status
def test_disable_transparent_huge_pages_in_a_child_process() -> None:
    script = (
        "import re\n"
        "from rfmml._process import disable_transparent_huge_pages\n"
        "print(disable_transparent_huge_pages())\n"
        "print(re.search(r'THP_enabled:\\s*(\\d)', open('/proc/self/status').read()).group(1))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["True", "0"]


@linux_status
def test_the_command_turns_huge_pages_off_unless_asked_to_keep_them() -> None:
    assert _thp_after_command(RFMML_HUGE_PAGES="") == "0"
    # with keep, the child keeps the value it inherited from this process
    assert _thp_after_command(RFMML_HUGE_PAGES="keep") == _mine()


@linux_status
def test_importing_rfmml_changes_no_process_setting() -> None:
    script = (
        "import re, rfmml, rfmml.campaign, rfmml.cli\n"
        "print(re.search(r'THP_enabled:\\s*(\\d)', open('/proc/self/status').read()).group(1))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    # a child inherits the flag: compare with this process's own value
    assert done.stdout.strip() == _mine()


def _child(script: str, env: dict[str, str] | None = None) -> list[str]:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=300, env=env)  # fmt: skip
    return done.stdout.split()


#: A child's lines that run `rfmml fit` on 3,000 rows of CDNOW in its own process.
_FIT = (
    "from click.testing import CliRunner\n"
    "from rfmml.cli import main\n"
    "from rfmml.data import load_cdnow\n"
    "import tempfile, os\n"
    "folder = tempfile.mkdtemp()\n"
    "path = os.path.join(folder, 'log.csv')\n"
    "load_cdnow().head(3000).to_csv(path, index=False)\n"
    "result = CliRunner().invoke(main, ['fit', path, '--models-dir', folder + '/m'])\n"
    "assert result.exit_code == 0, result.output\n"
)


def test_a_batch_command_freezes_what_its_imports_loaded_once() -> None:
    """`rfmml fit` leaves its imports' objects out of later collections; importing does not."""
    imported = "import gc\nimport rfmml.cli\nprint(gc.get_freeze_count())\n"
    after_fit = (
        "first = gc.get_freeze_count()\n"
        "print(first)\n"
        "junk = [[i] for i in range(50_000)]\n"
        "from rfmml._process import freeze_loaded_objects\n"
        "print(freeze_loaded_objects() == first)\n"
    )
    script = imported + _FIT + after_fit
    before, after, once = _child(script)
    assert int(before) == 0 and int(after) > 50_000 and once == "True"


_BLAS = (
    "from threadpoolctl import threadpool_info\n"
    "def blas():\n"
    "    return ','.join(str(i['num_threads']) for i in threadpool_info()\n"
    "                    if i['user_api'] == 'blas') or 'none'\n"
)


def test_a_batch_command_runs_blas_on_one_thread_and_importing_leaves_it() -> None:
    """`rfmml fit` sets every loaded BLAS to one thread; importing rfmml changes nothing.

    The children start without the thread-count variables (``make test`` sets
    ``OPENBLAS_NUM_THREADS=1``): BLAS then starts with a thread per core.
    """
    limits = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RFMML_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in limits}
    plain = _child(_BLAS + "import numpy, scipy.linalg\nprint(blas())\n", env)
    imports = "import numpy, scipy.linalg\nimport rfmml, rfmml.cli, rfmml.campaign.streaming\n"
    script = _BLAS + imports + "print(blas())\n" + _FIT + "print(blas())\n"
    imported, after = _child(script, env)
    assert imported == plain[0]
    if (os.cpu_count() or 1) > 1:  # else one thread is where BLAS starts anyway
        assert set(plain[0].split(",")) != {"1"}
    assert after.split(",") == ["1"] * len(plain[0].split(",")) and plain[0] != "none"


_REUSE = """
import resource, sys
import numpy as np
from rfmml._process import disable_transparent_huge_pages, keep_freed_memory
disable_transparent_huge_pages()  # as the command: 4 KiB pages, each touch counted
if sys.argv[1] == "keep":
    print(keep_freed_memory())
else:
    print(False)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):  # blocks of 48 MiB, filled and freed as a chunked job does
    block = np.ones(6 * 2**20)
    del block
before = faults()
block = np.ones(6 * 2**20)
print(faults() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc (Linux)")
def test_kept_freed_memory_is_reused_without_page_faults() -> None:
    """With keep_freed_memory a freed 48 MiB block comes back without touching fresh pages.

    glibc's own threshold grows to at most 32 MiB: a larger block is mapped
    afresh (and every page of it faults) each time by default.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def run(mode: str) -> tuple[str, int]:
        done = subprocess.run([sys.executable, "-c", _REUSE, mode], env=env,
                              capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
        made, faults = done.stdout.split()
        return made, int(faults)

    made, kept = run("keep")
    if made != "True":
        pytest.skip("not glibc's malloc")
    _, fresh = run("default")
    pages = 48 * 2**20 // 4096
    assert fresh > pages // 2  # glibc's default maps a fresh block: every page faults
    assert kept < pages // 20
