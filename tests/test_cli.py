"""The command line: outputs, JSON summary, and errors raised before any work."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from deeplimits.cli import app
from deeplimits.experiments.store import load_dataset

runner = CliRunner()


def test_simulate_writes_dataset_figure_and_json(tmp_path):
    out = tmp_path / "sim.nc"
    r = runner.invoke(app, ["simulate", "--form", "A", "--activation", "relu", "--width", "4",
                            "--depth", "200", "--samples", "2000", "--inputs", "2",
                            "--sampler", "exact", "--seed", "3", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["reference"].startswith("SDE")
    assert summary["ks_pvalue"] > 1e-3  # the network at L = 200 is close to its limit
    ds = load_dataset(out)
    assert ds.x.shape == (2000, 2, 4)
    assert json.loads(ds.attrs["config"])["depth"] == 200
    assert ds.attrs["seed"] == 3 and "version_jax" in ds.attrs
    assert (tmp_path / "sim.png").read_bytes()[:4] == b"\x89PNG"


def test_simulate_closed_form_and_inputs_file(tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.ones((1, 3)))
    out = tmp_path / "id.nc"
    r = runner.invoke(app, ["simulate", "--activation", "identity", "--width", "3",
                            "--depth", "300", "--samples", "3000", "--x", str(x),
                            "--trajectory", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["reference"] == "closed-form log-normal norm"
    assert load_dataset(out).x.shape == (3000, 301, 1, 3)


@pytest.mark.parametrize("args,message", [
    (["--width", "0"], "width must be a positive integer"),
    (["--depth", "-3"], "depth must be a positive integer"),
    (["--activation", "nope"], "unknown activation"),
    (["--form", "B", "--activation", "relu"], "form B needs"),
    (["--sampler", "exact", "--law", "rademacher"], "exact only for Gaussian"),
    (["--sampler", "sde", "--scaling", "iid"], "no diffusion limit"),
    (["--samples", "0"], "samples must be a positive integer"),
    (["--out", "x.txt"], "must end in .nc"),
])
def test_simulate_rejects_bad_input_before_writing(tmp_path, args, message):
    r = runner.invoke(app, ["simulate", "--samples", "10", "--depth", "10",
                            "--out", str(tmp_path / "s.nc"), *args])
    assert r.exit_code == 2
    assert message in " ".join(r.output.split())
    assert list(tmp_path.iterdir()) == []


def test_simulate_rejects_nan_and_misshapen_inputs(tmp_path):
    for arr, message in ((np.array([[1.0, np.nan, 0, 0]]), "NaN"),
                         (np.ones((2, 3)), "inputs must have shape")):
        np.save(tmp_path / "x.npy", arr)
        r = runner.invoke(app, ["simulate", "--width", "4", "--x", str(tmp_path / "x.npy"),
                                "--out", str(tmp_path / "o" / "s.nc")])
        assert r.exit_code == 2 and message in r.output
        assert not (tmp_path / "o").exists()


def test_reproduce_one_claim_writes_report_resumes_and_redraws(tmp_path):
    r = runner.invoke(app, ["reproduce", "--only", "K2", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "report.html").read_text()
    assert "<table id=\"verdicts\">" in html and "K2" in html
    assert "data:image/png;base64," in html and "class='pass'" in html
    (data,) = (tmp_path / "data").glob("claim-K2-s0-*.nc")
    ds = load_dataset(data)
    assert ds.attrs["passed"] == 1 and ds.attrs["scale"] == "quick"
    figure = tmp_path / "figures" / "K2.png"
    assert figure.exists()
    # a second run finds the claim checked and does not rerun it
    stamp = data.stat().st_mtime_ns
    r = runner.invoke(app, ["reproduce", "--only", "K2", "--out", str(tmp_path)])
    assert r.exit_code == 0 and data.stat().st_mtime_ns == stamp
    # figures come back from the data alone
    figure.unlink()
    r = runner.invoke(app, ["plot", str(tmp_path)])
    assert r.exit_code == 0 and figure.read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(app, ["plot", str(data), "--out", str(tmp_path / "one.png")])
    assert r.exit_code == 0 and (tmp_path / "one.png").exists()
    r = runner.invoke(app, ["plot", str(tmp_path / "missing.nc")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_sweep_command_runs_collects_and_refuses_bad_files(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('study = "kernel"\nseeds = [0]\n[grid]\nactivation = ["relu", "erf"]\n'
                    '[config]\nangles = 5\n')
    r = runner.invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "o"), "--executor",
                            "inprocess"])
    assert r.exit_code == 0, r.output
    ds = load_dataset(tmp_path / "o" / "collected.nc")
    assert dict(ds.sizes) == {"activation": 2, "seed": 1, "angle": 5}
    # the collected numbers are the library's kernels
    import math

    import deeplimits as dl

    net = dl.ResNet(width=2, depth=1, activation="erf", input_layer=dl.InputLayer(2))
    x = np.sqrt(2.0) * np.array([[1.0, 0.0]])
    want = dl.kernel(net, x, x, math.inf).nngp[0, 0]
    assert ds.nngp.sel(activation="erf", seed=0).isel(angle=0) == pytest.approx(want, rel=1e-12)
    r = runner.invoke(app, ["plot", str(tmp_path / "o" / "collected.nc")])
    assert r.exit_code == 0 and (tmp_path / "o" / "collected.png").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text('study = "kernel"\n[grid]\nwidth = [2]\n')
    r = runner.invoke(app, ["sweep", str(bad), "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "not a parameter of study" in r.output
    assert not (tmp_path / "b").exists()
    r = runner.invoke(app, ["sweep", str(tmp_path / "none.toml")])
    assert r.exit_code == 2 and "does not exist" in " ".join(r.output.split())


def test_reproduce_lists_and_rejects_unknown_claims(tmp_path):
    r = runner.invoke(app, ["reproduce", "--list"])
    assert r.exit_code == 0 and "F2-tanh" in r.output
    r = runner.invoke(app, ["reproduce", "--only", "Z9", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "unknown claim" in r.output
    assert not (tmp_path / "r").exists()


def test_kernel_command_matches_the_library(tmp_path):
    import math

    import deeplimits as dl

    x = np.random.default_rng(0).standard_normal((20, 4))
    np.save(tmp_path / "x.npy", x)
    r = runner.invoke(app, ["kernel", "--x", str(tmp_path / "x.npy"), "--form", "C",
                            "--activation", "relu", "--sigma-b", "0.5", "--no-input-layer",
                            "--depth", "inf", "--out", str(tmp_path / "k.nc")])
    assert r.exit_code == 0, r.output
    ds = load_dataset(tmp_path / "k.nc")
    net = dl.ResNet(width=4, depth=1, form="C", activation="relu", sigma_b=0.5)
    ref = dl.kernel(net, x, depth=math.inf)
    np.testing.assert_allclose(ds.nngp.values, ref.nngp, rtol=1e-12)
    np.testing.assert_allclose(ds.ntk.values, ref.ntk, rtol=1e-12)
    r = runner.invoke(app, ["kernel", "--x", str(tmp_path / "x.npy"), "--which", "ntk",
                            "--depth", "30", "--out", str(tmp_path / "k.npy")])
    assert r.exit_code == 0, r.output
    net = dl.ResNet(width=4, depth=30, activation="relu", input_layer=dl.InputLayer(4))
    np.testing.assert_allclose(np.load(tmp_path / "k.npy"), dl.ntk(net, x), rtol=1e-12)


@pytest.mark.parametrize("args,message", [
    (["--depth", "0"], "depth must be a positive integer or 'inf'"),
    (["--which", "all"], "--which"),
    (["--out", "k.txt"], "must end in .npy"),
    (["--no-input-layer"], "input layer"),
])
def test_kernel_command_rejects_bad_options(tmp_path, args, message):
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    r = runner.invoke(app, ["kernel", "--x", str(tmp_path / "x.npy"),
                            "--out", str(tmp_path / "o" / "k.nc"), *args])
    assert r.exit_code == 2 and message in " ".join(r.output.split())
    assert not (tmp_path / "o").exists()


def test_regress_on_user_data_shows_form_b_is_linear(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", X[:, 0] ** 2 + 0.05 * rng.standard_normal(80))
    r = runner.invoke(app, ["regress", "--x", str(tmp_path / "X.npy"), "--y",
                            str(tmp_path / "y.npy"), "--out", str(tmp_path / "t.nc")])
    assert r.exit_code == 0, r.output
    t = load_dataset(tmp_path / "t.nc")
    score = t.score.sel(dataset="X")
    # a quadratic target: form B is no better than ridge, form C is far better
    assert float(score.sel(model="B-weakly")) > 0.8 * float(score.sel(model="ridge"))
    assert float(score.sel(model="C-weakly")) < 0.6 * float(score.sel(model="ridge"))


@pytest.mark.parametrize("args,message", [
    (["--dataset", "mnist"], "unknown data set"),
    (["--x", "X.npy"], "--x and --y go together"),
    (["--out", "t.csv"], "must end in .nc"),
])
def test_regress_rejects_bad_options(tmp_path, args, message):
    r = runner.invoke(app, ["regress", *args])
    assert r.exit_code == 2 and message in " ".join(r.output.split())


# --------------------------------------------------------------------------------------
# bad files and folders: a clear message and status 2, before any work (issue 19, item 9)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,text,message", [
    ("ragged.csv", "1,2\n3,4\n5\n", "line 3 has 1 values, the first row has 2"),
    ("bad.csv", "1,2\n3,x\n", "line 2: 'x' is not a number"),
    ("empty.csv", "\n", "holds no rows"),
    ("bad.npy", "not an array", "cannot read"),
    ("x.json", "[[1, 2]]", "must be a .npy, .csv or .txt file"),
])
def test_kernel_refuses_unreadable_inputs_with_a_message(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    r = runner.invoke(app, ["kernel", "--x", str(tmp_path / name),
                            "--out", str(tmp_path / "o" / "k.nc")])
    assert r.exit_code == 2 and message in " ".join(r.output.split()), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert not (tmp_path / "o").exists()


def test_inputs_with_a_header_row_are_read(tmp_path):
    from deeplimits.cli._common import load_inputs

    (tmp_path / "h.csv").write_text("age,height\n1,2\n3,4.5\n")
    (tmp_path / "h.txt").write_text("# a comment\nage height\n1 2\n3 4.5\n")
    (tmp_path / "y.csv").write_text("label\nbenign\nmalignant\n")
    for name in ("h.csv", "h.txt"):
        np.testing.assert_array_equal(load_inputs(tmp_path / name), [[1, 2], [3, 4.5]])
    assert load_inputs(tmp_path / "y.csv", numeric=False).ravel().tolist() == [
        "label", "benign", "malignant"]  # names throughout: no row is a header


@pytest.mark.parametrize("command", [
    ["kernel", "--x", "X"], ["simulate", "--samples", "10", "--depth", "10"],
    ["regress", "--dataset", "wine"], ["finite-width", "dead", "--samples", "10"],
    ["conv", "kernel", "--digits", "0"], ["gradients", "simulate", "--samples", "10"],
])
def test_an_output_folder_that_cannot_be_made_is_refused_before_the_work(tmp_path, command):
    np.save(tmp_path / "X.npy", np.ones((3, 2)))
    (tmp_path / "file").write_text("a file, not a folder")
    command = [str(tmp_path / "X.npy") if a == "X" else a for a in command]
    r = runner.invoke(app, [*command, "--out", str(tmp_path / "file" / "sub" / "o.nc")])
    assert r.exit_code == 2, r.output
    assert "is a file, not a folder" in " ".join(r.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy", "file"]


def test_reproduce_refuses_a_results_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    r = runner.invoke(app, ["reproduce", "--only", "B2-exact",
                            "--out", str(tmp_path / "file" / "r")])
    assert r.exit_code == 2 and "is a file, not a folder" in " ".join(r.output.split())


def test_a_string_where_a_number_belongs_names_the_parameter():
    import deeplimits as dl

    for name in ("sigma_w", "sigma_b", "sigma_u", "horizon"):
        with pytest.raises(TypeError, match=f"{name} must be a real number, got '1' \\(str\\)"):
            dl.ResNet(width=2, depth=2, **{name: "1"})
    with pytest.raises(TypeError, match="sigma_A must be a real number"):
        dl.InputLayer(2, sigma_A="1")
    with pytest.raises(TypeError, match="sigma_v must be a real number"):
        dl.Readout(sigma_v="1")
    r = runner.invoke(app, ["simulate", "--sigma-w", "abc"])
    assert r.exit_code == 2 and "--sigma-w" in r.output


# --------------------------------------------------------------------------------------
# help text (issue 19, item 12)
# --------------------------------------------------------------------------------------
def _commands():
    """Every command path, e.g. ("conv", "simulate"), with its click command."""
    import typer.main

    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, (*path, name))

    return list(walk(typer.main.get_command(app), ()))


def test_every_help_page_is_plain_and_spells_out_one_way():
    from deeplimits.cli._common import ACTIVATIONS

    pages = 0
    for path, cmd in _commands():
        r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0, (path, r.output)
        assert "<bool>" not in r.output, path
        assert "--output" not in r.output, path  # one spelling: --out
        for param in getattr(cmd, "params", []):
            # these two take their own families (closed forms; trainable models), listed
            if "--activation" in param.opts and path not in (("finite-width", "law"),
                                                              ("scaling", "train")):
                assert all(name in r.output for name in ACTIVATIONS), path
        pages += 1
    assert pages >= 20


def test_help_lists_every_registered_activation():
    import deeplimits as dl
    from deeplimits.cli._common import ACTIVATIONS
    from deeplimits.spec.activations import _ALIASES  # noqa: PLC2701 - the aliases it lists

    assert sorted(ACTIVATIONS) == sorted(set(dl.activation_names()) - set(_ALIASES))


def test_conv_simulate_does_not_offer_form_c(tmp_path):
    r = runner.invoke(app, ["conv", "simulate", "--help"], env={"COLUMNS": "200"})
    assert "<A|B>" in r.output and "A|B|C" not in r.output
    r = runner.invoke(app, ["conv", "simulate", "--form", "C", "--out", str(tmp_path / "c.nc")])
    assert r.exit_code == 2 and list(tmp_path.iterdir()) == []


def test_scaling_analyze_output_is_a_hidden_alias_of_out(tmp_path):
    r = runner.invoke(app, ["scaling", "analyze", str(tmp_path), "--output", "s.txt"])
    assert r.exit_code == 2 and "deprecated" in r.output and "must end in .nc" in r.output
    r = runner.invoke(app, ["scaling", "analyze", str(tmp_path), "--out", "a.nc",
                            "--output", "b.nc"])
    assert r.exit_code == 2 and "give only --out" in r.output


# --------------------------------------------------------------------------------------
# cost estimates before long work (issue 19, item 10)
# --------------------------------------------------------------------------------------
def test_cost_estimate_scales_with_samples_and_depth():
    import deeplimits as dl
    from deeplimits.experiments.simulate import estimate_seconds, format_seconds

    net = dl.ResNet(width=4, depth=1000)
    base = estimate_seconds(net, 1, 1000)
    assert estimate_seconds(net.replace(depth=10**9), 1, 1000) == pytest.approx(1e6 * base)
    assert estimate_seconds(net, 1, 4000) == pytest.approx(4 * base)
    assert estimate_seconds(net, 1, 1000, "dense") > base  # n^2 + n numbers per layer, not n
    assert estimate_seconds(net, 1, 1000, "sde", steps=10) == pytest.approx(base / 100)
    assert format_seconds(30) == "30 s" and format_seconds(7200) == "2 h"


def test_a_huge_depth_prints_an_estimate_and_warns(tmp_path):
    from deeplimits.cli._common import report_cost

    r = runner.invoke(app, ["simulate", "--depth", str(10**9), "--samples", "100",
                            "--trajectory", "--out", str(tmp_path / "s.nc")])
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and "GiB, more than this machine's" in text, r.output
    assert "estimated to take about 3.2 days" in text  # 1e11 sample-layers
    assert list(tmp_path.iterdir()) == []
    with pytest.MonkeyPatch.context() as mp:  # the notes go to the error console
        from deeplimits.cli import _common

        lines = []
        mp.setattr(_common.err, "print", lambda m: lines.append(m))
        report_cost(5.0)
        report_cost(30.0)
        report_cost(1e5, 3 * 2**30, hint="use less")
    assert lines[0].startswith("estimated time: about 30 s")
    assert "warning" in lines[1] and "1.2 days" in lines[1] and "use less" in lines[1]
    assert "3 GiB" in lines[2]


# --------------------------------------------------------------------------------------
# regress says what it did, takes an activation and a sample cap, classifies (item 2)
# --------------------------------------------------------------------------------------
def test_regress_classifies_named_labels_and_says_what_it_did(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    labels = np.where(X[:, 0] * X[:, 1] > 0, "same", "opposite")  # XOR: not linear
    np.savetxt(tmp_path / "X.csv", X, delimiter=",", header="a,b,c", comments="")
    (tmp_path / "y.csv").write_text("label\n" + "\n".join(labels) + "\n")
    r = runner.invoke(app, ["regress", "--x", str(tmp_path / "X.csv"), "--y",
                            str(tmp_path / "y.csv"), "--models", "C", "--activation", "relu",
                            "--max-samples", "48", "--out", str(tmp_path / "t.nc")])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "subsampled to 48 of 60" in text and "36 train / 12 test" in text
    assert "kernel regression on one-hot labels, argmax, accuracy" in text
    assert "RK4 steps chosen for each kernel to rtol = 1e-09" in text
    assert "best test accuracy" in text
    t = load_dataset(tmp_path / "t.nc")
    assert list(t.model.values) == ["C-weakly", "C-fully", "rbf-gp", "ridge"]
    assert int(t.n_available.sel(dataset="X")) == 60 and t.attrs["activations"] == "C: relu"
    score = t.score.sel(dataset="X")
    # 12 test points: the kernel classifier beats the linear one on XOR by > 2 points
    assert float(score.sel(model="C-weakly")) > float(score.sel(model="ridge")) + 2 / 12


@pytest.mark.parametrize("args,message", [
    (["--activation", "relu"], "kernel model B (leave it out of the models"),
    (["--models", "A,D"], "unknown kernel model 'D'"),
    (["--max-samples", "3"], "--max-samples must be an integer >= 4 or 'all'"),
    (["--task", "regression"], "--task applies to your data"),
])
def test_regress_checks_its_new_options_before_any_fit(tmp_path, args, message):
    r = runner.invoke(app, ["regress", "--dataset", "wine", "--out", str(tmp_path / "t.nc"),
                            *args])
    assert r.exit_code == 2 and message in " ".join(r.output.split()), r.output
    assert list(tmp_path.iterdir()) == []


def test_sweep_refuses_an_output_folder_it_cannot_create_before_any_work(tmp_path):
    (tmp_path / "blocker").write_text("a file where the folder would go")
    spec = tmp_path / "s.toml"
    spec.write_text('study = "forward"\nseeds = [0]\n[grid]\nwidth = [2]\n'
                    '[config]\ndepth = 4\nsamples = 10\n')
    r = runner.invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "blocker" / "r"),
                            "--executor", "inprocess"])
    assert r.exit_code == 2 and "is a file, not a folder" in " ".join(r.output.split())


@pytest.mark.parametrize("args, message", [
    (["--samples", "11"], "--samples must be even"),
    (["--horizons", "1.5", "--steps-per-unit", "3"], "even number of layers"),
])
def test_regime_refuses_samples_or_horizons_it_cannot_pair_before_the_work(tmp_path, args,
                                                                           message):
    r = runner.invoke(app, ["finite-width", "regime", "--widths", "2", *args,
                            "--out", str(tmp_path / "r.nc")])
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split())
    assert list(tmp_path.iterdir()) == []
