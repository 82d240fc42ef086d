"""The README is a front page whose every example runs and whose two commands work.

* Each ``python`` block of README.md runs as written, in a fresh namespace inside a
  temporary folder; a block preceded by ``<!-- slow: why -->`` runs only with ``-m slow``.
* The test command (the bash line after ``<!-- test-command -->``) is run verbatim against
  stand-ins for ``id``, ``sudo``, ``apt-get``, ``pip`` and ``python3`` on a PATH without
  Chromium: as root it installs Chromium without ``sudo``, as another user through
  ``sudo``, and not at all when Chromium is there; then it installs the test extras and
  runs pytest. ``.ci/run`` is checked the same way: it runs that very line, then ruff,
  lint-imports and ``mkdocs build --strict``, and handles pytest's exit status 5.
* Every relative link and image of the README resolves to a file of the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"

BLOCK = re.compile(r"(?:<!--\s*(?P<marker>[a-z-]+)(?::(?P<why>[^>]*?))?\s*-->\s*\n)?"
                   r"```(?P<lang>[a-z]*)\n(?P<code>.*?)\n```", re.S)


def blocks(text: str, lang: str) -> list[tuple[str | None, str]]:
    """``(marker, code)`` of every fenced block in ``lang``; ``marker`` is the name of an
    HTML comment on the line before the fence (``slow``, ``test-command``) or None."""
    return [(m["marker"], m["code"]) for m in BLOCK.finditer(text) if m["lang"] == lang]


def test_block_parser():
    text = ("a\n```python\nx = 1\n```\n<!-- slow: minutes -->\n```python\ny = 2\n```\n"
            "<!-- test-command -->\n```bash\nls\n```\n")
    assert blocks(text, "python") == [(None, "x = 1"), ("slow", "y = 2")]
    assert blocks(text, "bash") == [("test-command", "ls")]


PYTHON = blocks(README.read_text(encoding="utf-8"), "python")


def _params(slow: bool):
    return [pytest.param(code, id=f"block{i}", marks=[pytest.mark.slow] if slow else [])
            for i, (marker, code) in enumerate(PYTHON) if (marker == "slow") == slow]


def _run(code: str, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})


def test_readme_has_an_example_per_area():
    code = "\n".join(c for _, c in PYTHON)
    for area in ("dl.sample(", "dl.kernel(", "ResNetKernelRegressor", "finite_width",
                 "sample_gradients", "deeplimits.conv", "scaling.analyze_weights",
                 "run_sweep"):
        assert area in code, f"README has no python example using {area}"


@pytest.mark.parametrize("code", _params(slow=False))
def test_readme_python_block_runs(code, tmp_path, monkeypatch):
    _run(code, tmp_path, monkeypatch)


@pytest.mark.parametrize("code", _params(slow=True))
def test_readme_slow_python_block_runs(code, tmp_path, monkeypatch):
    _run(code, tmp_path, monkeypatch)


def test_readme_links_resolve():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets, "no links in the README"
    missing = []
    for target in targets:
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        page = ROOT / path
        if not page.is_file():
            missing.append(f"{target}: no file {path}")
        elif anchor and f"{{#{anchor}}}" not in page.read_text(encoding="utf-8"):
            missing.append(f"{target}: no anchor {{#{anchor}}} in {path}")
    assert not missing, "\n".join(missing)


# --- the two commands -------------------------------------------------------------------

def test_command() -> str:
    found = [code for marker, code in blocks(README.read_text(encoding="utf-8"), "bash")
             if marker == "test-command"]
    assert len(found) == 1, "README needs exactly one bash block after <!-- test-command -->"
    lines = [line for line in found[0].splitlines() if line.strip()]
    assert len(lines) == 1, "the test command is one line"
    return lines[0]


test_command.__test__ = False  # a helper, not a test


def test_readme_install_command():
    first = [c for m, c in blocks(README.read_text(encoding="utf-8"), "bash") if m is None][0]
    assert first.split("#")[0].strip() == "pip install . && deeplimits reproduce"


REAL_TOOLS = ["bash", "sh", "awk", "mktemp", "rm", "dirname", "cat", "env"]
FAKE = """#!/bin/sh
echo "{name} $*" >> "$FAKE_LOG"
{body}
"""
FAKES = {
    "id": 'if [ "$1" = -u ]; then echo "$FAKE_UID"; else echo "uid=$FAKE_UID"; fi',
    "sudo": 'exec "$@"',
    "apt-get": "exit 0",
    "pip": "exit 0",
    "lint-imports": "exit 0",
    "python3": 'case "$*" in *pytest*) exit "${FAKE_PYTEST_RC:-0}";; esac; exit 0',
}


@pytest.fixture
def fake_path(tmp_path):
    """A PATH holding stand-ins (logging to ``$FAKE_LOG``) and the few real tools the
    commands need, without Chromium."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in REAL_TOOLS:
        real = shutil.which(tool)
        assert real, f"{tool} is needed for this test"
        (bin_dir / tool).symlink_to(real)
    for name, body in FAKES.items():
        path = bin_dir / name
        path.write_text(FAKE.format(name=name, body=body))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def _shell(cmd: list[str], bin_dir: Path, tmp_path: Path, uid: int, pytest_rc: int = 0,
           cwd: Path = ROOT):
    log = tmp_path / f"log-{uid}-{pytest_rc}"
    env = {"PATH": str(bin_dir), "FAKE_LOG": str(log), "FAKE_UID": str(uid),
           "FAKE_PYTEST_RC": str(pytest_rc), "HOME": str(tmp_path)}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    calls = [c.rstrip() for c in log.read_text().splitlines()] if log.exists() else []
    return done, calls


INSTALL = ["apt-get update -qq", "apt-get install -y -qq chromium"]
TESTS = ['pip install -e .[test]', "python3 -m pytest -n 2"]


@pytest.mark.parametrize("uid, sudo", [(0, []), (1000, ["sudo sh -c"])])
def test_readme_test_command_installs_chromium_then_tests(fake_path, tmp_path, uid, sudo):
    done, calls = _shell(["bash", "-c", test_command()], fake_path, tmp_path, uid)
    assert done.returncode == 0, done.stderr
    calls = [c for c in calls if not c.startswith("id ")]
    assert [c[:len("sudo sh -c")] for c in calls[:len(sudo)]] == sudo
    assert calls[len(sudo):] == INSTALL + TESTS


def test_readme_test_command_skips_apt_when_chromium_is_there(fake_path, tmp_path):
    chromium = fake_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    done, calls = _shell(["bash", "-c", test_command()], fake_path, tmp_path, 1000)
    assert done.returncode == 0, done.stderr
    assert calls == TESTS


def _ci_copy(tmp_path: Path) -> Path:
    """.ci/run and the README in a scratch checkout (the script cds to its parent)."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(CI, repo / ".ci" / "run")
    shutil.copy2(README, repo / "README.md")
    return repo


CHECKS = ["python3 -m ruff check .", "lint-imports"]


def test_ci_runs_the_readme_command_then_the_checks(fake_path, tmp_path):
    repo = _ci_copy(tmp_path)
    done, calls = _shell([str(repo / ".ci" / "run")], fake_path, tmp_path, 0, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = [c for c in calls if not c.startswith("id ")]
    assert calls[:4] == INSTALL + TESTS
    assert calls[4:6] == CHECKS
    assert calls[6].startswith("python3 -m mkdocs build --strict --quiet --site-dir /")
    assert len(calls) == 7


def test_ci_passes_arguments_to_pytest_and_reports_failures(fake_path, tmp_path):
    repo = _ci_copy(tmp_path)
    done, calls = _shell([str(repo / ".ci" / "run"), "-k", "docs x"], fake_path, tmp_path,
                         0, pytest_rc=1, cwd=tmp_path)
    assert "python3 -m pytest -n 2 -k docs x" in calls
    assert done.returncode == 1 and "FAILED: tests (exit 1)" in done.stderr
    assert any(c.startswith("python3 -m mkdocs") for c in calls)  # later steps still ran


@pytest.mark.parametrize("args, rc", [([], 1), (["-k", "nothing"], 0)])
def test_ci_handles_pytest_exit_5(fake_path, tmp_path, args, rc):
    repo = _ci_copy(tmp_path)
    done, _ = _shell([str(repo / ".ci" / "run"), *args], fake_path, tmp_path, 0,
                     pytest_rc=5, cwd=tmp_path)
    assert done.returncode == rc, done.stdout + done.stderr
    assert "collected no tests" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("sudo")
                    or not shutil.which("useradd"),
                    reason="needs root, sudo and useradd to make a scratch sudo user")
@pytest.mark.slow
def test_readme_chromium_step_as_a_real_sudo_user(tmp_path):
    """The Chromium step run as a real non-root user with passwordless sudo (apt-get
    update and an install that finds chromium already there, or installs it)."""
    user = "deeplimits-ci"
    subprocess.run(["useradd", "-m", user], capture_output=True)
    sudoers = Path(f"/etc/sudoers.d/{user}")
    sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    try:
        step = test_command().split("; pip install")[0].replace("command -v chromium", "false")
        done = subprocess.run(["su", user, "-s", "/bin/bash", "-c", step], capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert shutil.which("chromium")
    finally:
        sudoers.unlink()
        subprocess.run(["userdel", "-r", user], capture_output=True)


def test_browser_test_says_exactly_what_to_run():
    """When Chromium is missing, the browser test's message holds the README's own
    install step, verbatim."""
    import ast

    tree = ast.parse((ROOT / "tests" / "test_report_browser.py").read_text(encoding="utf-8"))
    messages = [node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "fail"
                and node.args and isinstance(node.args[0], ast.Constant)]
    step = test_command().split(";")[0].split("|| ", 1)[1]
    assert step.startswith("$( [") and "apt-get install" in step
    assert any(step in m for m in messages), (step, messages)
