"""Installed as a tool: the wheel, installed without -e into a new venv, answers from a folder
outside the repository; prompts come from the package (or a folder of the user's own).

The new venv reuses this venv's third-party packages through a ``.pth`` line (so the test takes
seconds, not a fresh llama-cpp build): its own site-packages, which holds only the wheel, comes
first on ``sys.path``, and the repository is on no path at all.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, cli_env, run_cli

QUESTION = "Adam 优化器默认的学习率是多少？"


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"  # a copy: building must not write build/ or *.egg-info into the checkout
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                                              ".data", "eval-out*"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    p = _run(cmd[:4] + ["--no-build-isolation"] + cmd[4:])  # this venv's setuptools: no download
    if p.returncode != 0:  # (an older setuptools here) let pip fetch the one pyproject.toml asks for
        p = _run(cmd)
    assert p.returncode == 0, p.stderr[-3000:]
    wheels = list(out.glob("notes_assistant-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_ships_the_prompts(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for f in (REPO / "prompts").glob("*.txt"):
        assert f"assistant/prompts/{f.name}" in names, f.name
    assert not any(n.startswith("prompts/") for n in names), "prompts must live inside the package"


@pytest.fixture(scope="module")
def tool_venv(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("tool") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    p = _run([base, "-m", "venv", str(venv)])
    assert p.returncode == 0, p.stderr
    py = venv / "bin" / "python"
    p = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])  # not -e
    assert p.returncode == 0, p.stderr[-3000:]
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "zz_reuse_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return venv


def test_installed_package_is_the_wheel(tool_venv, tmp_path):
    p = _run([str(tool_venv / "bin" / "python"), "-c",
              "import assistant, ingest, assistant.prompts as p; print(assistant.__file__); print(p.__file__)"],
             cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    for line in p.stdout.split():
        assert Path(line).is_relative_to(tool_venv), line  # the wheel's copy, not the checkout's
    shown = _run([str(tool_venv / "bin" / "python"), "-m", "pip", "show", "-f", "notes-assistant"]).stdout
    assert "assistant/prompts/answer.zh.txt" in shown and "__editable__" not in shown  # a plain install


@pytest.mark.llm
def test_installed_tool_answers_from_outside_the_repo(tool_venv, tmp_path, examples_notes):
    outside = tmp_path / "home"
    shutil.copytree(examples_notes, outside / "notes")
    env = cli_env(tmp_path / "data", NOTES_ASSISTANT_LLM="embedded")
    exe = str(tool_venv / "bin" / "assistant")
    p = _run([exe, "ingest", "notes", "--json"], cwd=str(outside), env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout)["files"] >= 4
    p = _run([exe, "ask", "-", "--json"], input=QUESTION + "\n", cwd=str(outside), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    out = json.loads(p.stdout)  # the whole of stdout is one object
    assert out["question"] == QUESTION and not out["refused"] and out["llm"], out
    assert any(c["file"] == "optim/adam.md" for c in out["citations"]), out
    # (which words of the note make the answer is the answer path's business, graded by the suites)
    # a refused question reads the refusal prompt from the package too, and exits 4
    p = _run([exe, "ask", "红烧肉怎么做才好吃？"], cwd=str(outside), env=env)
    assert p.returncode == 4, p.stderr[-2000:]
    assert "笔记中没有相关内容" in p.stdout


def test_own_prompts_dir_overrides_one_file(cli_examples, tmp_path):
    data, _ = cli_examples
    own = tmp_path / "my-prompts"
    own.mkdir()
    (own / "refuse.zh.txt").write_text("我的笔记里没有这个。", encoding="utf-8")
    p = run_cli(["ask", "红烧肉怎么做才好吃？"], data, NOTES_ASSISTANT_PROMPTS_DIR=str(own))
    assert p.returncode == 4, p.stderr
    assert p.stdout.startswith("我的笔记里没有这个。"), p.stdout
    p = run_cli(["ask", "How do I bake sourdough bread at home?"], data, NOTES_ASSISTANT_PROMPTS_DIR=str(own))
    assert p.returncode == 4 and p.stdout.startswith("The notes do not cover"), p.stdout  # packaged fallback


def test_missing_prompts_dir_is_one_line(cli_examples, tmp_path):
    data, _ = cli_examples
    p = run_cli(["ask", "红烧肉怎么做才好吃？", "--json"], data, NOTES_ASSISTANT_PROMPTS_DIR=str(tmp_path / "nope"))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "prompts_dir" in lines[0], p.stderr
    assert p.stdout == ""


def test_ask_reads_stdin_and_json_is_one_object(cli_examples):
    data, _ = cli_examples
    from conftest import ASSISTANT

    p = subprocess.run([str(ASSISTANT), "ask", "-", "--json"], input="红烧肉怎么做才好吃？\n", capture_output=True,
                       text=True, timeout=240, env=cli_env(data), cwd=str(REPO))
    assert p.returncode == 4, p.stderr  # refused: its own exit code
    assert p.stdout.count("\n") == 1 and p.stdout.endswith("\n")
    out = json.loads(p.stdout)
    assert out["refused"] is True and out["question"] == "红烧肉怎么做才好吃？"
    p = subprocess.run([str(ASSISTANT), "ask", "-"], input="  \n", capture_output=True, text=True, timeout=60,
                       env=cli_env(data), cwd=str(REPO))
    assert p.returncode == 2 and "empty" in p.stderr and "Traceback" not in p.stderr
