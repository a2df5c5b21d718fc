import os
from pathlib import Path

from django.conf import settings

from tests.helpers import ROOT, run_python


def test_the_suite_runs_the_stripe_emulator_in_process():
    assert settings.STRIPE_EMULATOR_IN_PROCESS is True
    assert settings.CELERY_TASK_ALWAYS_EAGER is True


# --- Each test run has its own var directory (tests/settings.py) ---------------------


def import_test_settings(**environ: str) -> tuple[Path, bool]:
    """Import tests.settings in a new process: its VAR_DIR, and whether that
    directory still exists once the process has exited."""
    env = {k: v for k, v in os.environ.items() if k != "APIMON_VAR_DIR"}
    env.update(environ)
    result = run_python("-c", "import tests.settings as s; print(s.VAR_DIR)", env=env)
    assert result.returncode == 0, result.stderr
    var_dir = Path(result.stdout.strip())
    return var_dir, var_dir.exists()


def test_each_run_gets_its_own_temporary_var_dir_removed_at_exit():
    first, first_left = import_test_settings()
    second, second_left = import_test_settings()
    assert first != second
    assert not first.is_relative_to(ROOT) and not second.is_relative_to(ROOT)
    assert not first_left and not second_left


def test_an_explicit_var_dir_is_used_and_kept(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    var_dir, left = import_test_settings(APIMON_VAR_DIR=str(mine))
    assert var_dir == mine
    assert left and (mine / "keep.txt").read_text() == "mine"


def test_this_process_uses_its_own_var_dir_for_the_database_and_cache():
    var_dir = Path(settings.VAR_DIR)
    assert var_dir.is_dir()
    if "APIMON_VAR_DIR" not in os.environ:  # not inherited by xdist workers
        assert not var_dir.is_relative_to(ROOT)
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # pytest-xdist workers use test-db.sqlite3_gw<n> next to it.
        assert Path(settings.DATABASES["default"]["NAME"]).parent == var_dir
    if "FileBasedCache" in settings.CACHES["default"]["BACKEND"]:
        assert Path(settings.CACHES["default"]["LOCATION"]).is_relative_to(var_dir)


def test_xdist_workers_sharing_an_explicit_var_dir_keep_their_own_caches(tmp_path):
    code = "import tests.settings as s; print(s.CACHES['default']['LOCATION'])"
    locations = set()
    for worker in ("gw0", "gw1"):
        env = dict(os.environ, APIMON_VAR_DIR=str(tmp_path), PYTEST_XDIST_WORKER=worker)
        env.pop("REDIS_URL", None)
        result = run_python("-c", code, env=env)
        assert result.returncode == 0, result.stderr
        locations.add(result.stdout.strip())
    assert locations == {
        str(tmp_path / "cache" / "gw0"),
        str(tmp_path / "cache" / "gw1"),
    }
