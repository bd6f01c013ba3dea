"""schemas/deferred_imports.py: deferred modules run on first use; GE starts without scipy.stats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from schemas.deferred_imports import deferred


def test_a_deferred_module_runs_on_first_attribute_read(tmp_path: Path, monkeypatch):
    (tmp_path / "am_probe_pkg").mkdir()
    (tmp_path / "am_probe_pkg" / "__init__.py").write_text("")
    (tmp_path / "am_probe_pkg" / "heavy.py").write_text(
        "import builtins\nbuiltins.am_probe_runs = getattr(builtins, 'am_probe_runs', 0) + 1\n"
        "VALUE = 42\n"
    )
    (tmp_path / "am_probe_plain.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins

    before = len(sys.meta_path)
    with deferred("am_probe_pkg.heavy"):
        import am_probe_plain  # not named: imported as usual
        from am_probe_pkg import heavy
    assert len(sys.meta_path) == before
    assert getattr(builtins, "am_probe_runs", 0) == 0
    assert heavy.VALUE == 42
    assert builtins.am_probe_runs == 1
    assert am_probe_plain.VALUE == 7
    for name in ("am_probe_pkg.heavy", "am_probe_pkg", "am_probe_plain"):
        sys.modules.pop(name)
    del builtins.am_probe_runs


def test_great_expectations_loads_without_scipy_stats_and_altair_until_used():
    code = (
        "import sys\n"
        "import schemas.expectations\n"
        "assert 'scipy.stats._stats_py' not in sys.modules\n"
        "assert 'altair.vegalite' not in sys.modules\n"
        "import scipy.stats\n"
        "assert abs(scipy.stats.entropy([0.5, 0.5], [0.9, 0.1]) - 0.5108256237659906) < 1e-12\n"
        "assert 'scipy.stats._stats_py' in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=120)
