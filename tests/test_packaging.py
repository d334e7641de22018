"""A non-editable install ships lua/, templates/ and static/ and finds them from anywhere."""

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        check=True,
    )  # fmt: skip
    (built,) = out.glob("redis_dashboard-*.whl")
    return built


def test_wheel_carries_data_folders(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    lua = {Path(n).name for n in names if n.startswith("dashboard/lua/")}
    assert {p.name for p in (ROOT / "lua").glob("*.lua")} <= lua
    assert any(n.startswith("dashboard/templates/") for n in names)
    assert any(n.startswith("dashboard/static/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "redis-dashboard = dashboard.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_installed_wheel_loads_scripts_and_limits_from_another_folder(wheel, tmp_path, redis_url):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    program = textwrap.dedent(
        f"""
        import dashboard, redis
        from dashboard.resources import resource_dir
        from dashboard.patterns import scripts
        from dashboard.patterns.ratelimit import RateLimiter
        assert dashboard.__file__.startswith({str(target)!r}), dashboard.__file__
        assert str(resource_dir("lua")).startswith({str(target)!r})
        assert "compare_and_delete" in scripts.available()
        client = redis.Redis.from_url({redis_url!r})
        limiter = RateLimiter(client, "pkgtest", limit=2, window=60, algorithm="sliding")
        print([limiter.hit("u1").allowed for _ in range(3)])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=elsewhere,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True, False]"
