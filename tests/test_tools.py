"""The tools beside the package: Colab links and installer, the runner's helpers, the GPU bench report."""

import ast
import json
from pathlib import Path

import torch
from course_utils.models import count_parameters, smollm2_135m_config
from transformers import LlamaForCausalLM

from tools.bench_gpu import LEVERS, format_gpu_report
from tools.colab_install import install, run_time_pins
from tools.notebook_links import NOTEBOOK_DIR, expected_changes, is_colab_cell, repository_url
from tools.plain_exec import code_cells, parameter_cell
from tools.runner import collapse_carriage_returns

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_every_badge_and_colab_cell_agree_with_the_one_url():
    url = repository_url()
    assert url.startswith("https://github.com/")
    for path in NOTEBOOKS:
        _, problems = expected_changes(path, url)
        assert not problems, f"{path.name}: {problems}; run `make links`"


def test_the_package_imports_no_tool():
    for path in (ROOT / "course_utils").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] == "tools" for n in names), f"{path.name} imports a tool"


def test_notebooks_import_the_package_not_the_tools():
    for path in NOTEBOOKS:  # the Colab cell alone calls tools/colab_install.py, before the package is installed
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code" and not is_colab_cell(c)]
        code = "".join("".join(c["source"]) for c in cells)
        assert "from tools" not in code and "import tools" not in code, path.name


def test_colab_installs_run_time_packages_only(capsys):
    install(dry_run=True)
    assert "pip install -q transformers==" in capsys.readouterr().out
    names = {pin.split("==")[0] for pin in run_time_pins()}
    assert {"transformers", "trl", "peft", "datasets"} <= names
    assert not names & {"torch", "numpy", "jupyterlab", "papermill", "ipykernel", "ruff", "pytest", "nbclient"}


def test_carriage_returns_collapse_to_the_final_state():
    bar = "training:   0%|  | 0/10\rtraining:  50%|# | 5/10\rtraining: 100%|##| 10/10\ndone\n"
    assert collapse_carriage_returns(bar) == "training: 100%|##| 10/10\ndone\n"


def test_plain_exec_puts_parameters_after_the_parameters_cell():
    cells = code_cells(NOTEBOOKS[0], {"PROFILE": "tiny", "SEED": "3"})
    injected = parameter_cell({"PROFILE": "tiny", "SEED": "3"})
    assert injected == "PROFILE = 'tiny'\nSEED = 3"
    assert cells.index(injected) == 1 + next(i for i, c in enumerate(cells) if "PRECISION = " in c)


def test_smollm2_shape_has_135m_parameters():
    with torch.device("meta"):
        model = LlamaForCausalLM(smollm2_135m_config())
    assert 134e6 < count_parameters(model) < 136e6


def test_gpu_report_marks_the_best_lever_and_failures():
    results = {
        "gpu": "NVIDIA H100",
        "weights": "random",
        "peak_flops_measured": 800e12,
        "peak_flops_datasheet": 989e12,
        "levers": [
            {"name": LEVERS[0].name, "tokens_per_s": 50_000.0, "flops_per_token": 1e9, "peak_gpu_bytes": 2**33,
             "warmup_s": 2.0},
            {"name": LEVERS[1].name, "tokens_per_s": 150_000.0, "flops_per_token": 1e9, "peak_gpu_bytes": 2**34,
             "warmup_s": 2.0},
            {"name": LEVERS[5].name, "error": "ModuleNotFoundError: liger_kernel"},
        ],
    }  # fmt: skip
    report = format_gpu_report(results)
    assert "800 TFLOP/s (datasheet 989)" in report
    assert f"{LEVERS[1].name} **(best)** | 150,000 | 18.8%" in report
    assert "failed: ModuleNotFoundError" in report


def test_runner_executes_a_notebook_into_a_relative_folder(tmp_path, monkeypatch):
    import nbformat

    from tools.runner import execute_notebook

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('PROFILE = ""\nSEED = 0\nOUTPUT_DIR = "out"')
    params.metadata["tags"] = ["parameters"]
    body = "import json, pathlib\npathlib.Path(OUTPUT_DIR, 'metrics.json').write_text(json.dumps({'seed': SEED}))"
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "00_demo.ipynb")
    monkeypatch.chdir(tmp_path)  # `make course` passes a relative --out
    run = execute_notebook(tmp_path / "nb" / "00_demo.ipynb", Path("build/runs"), seed=3)
    assert run.status == "ok", Path(run.log).read_text()[-2000:]
    assert run.metrics == {"seed": 3}
