"""`deeplimits scaling analyze` on networks trained elsewhere (issue 15 item 7): .npz,
.safetensors and PyTorch state dicts, layers named by --pattern, clear errors for bad
patterns, missing layers and ragged shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from deeplimits.cli import app
from deeplimits.scaling import (
    analyze_weights,
    checkpoint_stack,
    load_checkpoints,
    read_checkpoint,
    synthetic_weights,
)

runner = CliRunner()
PATTERN = "model.layers.{k}.mlp.fc1.weight"
DEPTHS = [10, 20, 40, 80, 160, 320]


def _state_dicts(n_seeds=4):
    """One state dict per (depth, seed): i.i.d. L^-1/2 layers under PATTERN plus decoys
    (another module, a bias, an unrelated scalar) that the pattern must skip."""
    w = synthetic_weights(11, DEPTHS, "iid", beta=0.5, n_seeds=n_seeds, shape=(3, 2))
    out = {}
    for L, v in w.items():
        for s, stack in enumerate(v):
            sd = {PATTERN.format(k=k): stack[k].astype(np.float32) for k in range(L)}
            sd |= {f"model.layers.{k}.mlp.fc2.weight": np.ones((2, 3), np.float32)
                   for k in range(L)}
            sd |= {f"model.layers.{k}.mlp.fc1.weight.bias": np.zeros(3, np.float32)
                   for k in range(2)}
            sd["lm_head.weight"] = np.ones((5, 3), np.float32)
            out[(L, s)] = sd
    return w, out


def _write(tmp_path, fmt):
    w, sds = _state_dicts()
    folder = tmp_path / fmt
    folder.mkdir()
    for (L, s), sd in sds.items():
        path = folder / f"net_L{L}_s{s}.{fmt}"
        if fmt == "npz":
            np.savez(path, **sd)
        elif fmt == "safetensors":
            from safetensors.numpy import save_file
            save_file(sd, str(path))
        else:
            import torch
            torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in sd.items()}},
                       str(path))
    return w, folder


def _formats():
    out = ["npz"]
    for fmt, module in (("safetensors", "safetensors"), ("pt", "torch")):
        try:
            __import__(module)
            out.append(fmt)
        except ImportError:
            out.append(pytest.param(fmt, marks=pytest.mark.skip(f"{module} not installed")))
    return out


@pytest.mark.parametrize("fmt", _formats())
def test_checkpoints_give_the_same_stacks_and_verdict(tmp_path, fmt):
    w, folder = _write(tmp_path, fmt)
    got = load_checkpoints([folder], PATTERN)
    assert sorted(got) == DEPTHS
    for L in DEPTHS:  # float32 on disk: equal to rounding; seeds pooled in file order
        np.testing.assert_allclose(got[L], w[L].astype(np.float32), rtol=0, atol=0)
    r = runner.invoke(app, ["scaling", "analyze", str(folder), "--pattern", PATTERN,
                            "--n-boot", "100", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    expected = analyze_weights(got, n_boot=100).regime.regime
    assert out["regime"] == expected == "diffusive-sde"


def test_bad_patterns_missing_layers_and_ragged_shapes(tmp_path):
    tensors = {f"blocks.{k}.w": np.ones((2, 2)) for k in range(5)}
    for bad in ("blocks.w", "blocks.{k}.{k}.w", "blocks.{j}.w", "blocks.{k}.w{"):
        with pytest.raises(ValueError, match="pattern"):
            checkpoint_stack(tensors, bad)
    with pytest.raises(ValueError, match="no tensor matches.*blocks.0.w"):
        checkpoint_stack(tensors, "layers.{k}.w")
    gap = {k: v for k, v in tensors.items() if k != "blocks.2.w"}
    with pytest.raises(ValueError, match=r"layers \[2\] of 0..4 are missing"):
        checkpoint_stack(gap, "blocks.{k}.w")
    ragged = tensors | {"blocks.3.w": np.ones((2, 3))}
    with pytest.raises(ValueError, match="ragged shapes"):
        checkpoint_stack(ragged, "blocks.{k}.w")
    assert checkpoint_stack(tensors, "blocks.{k}.w").shape == (5, 2, 2)
    # the CLI: exit status 2 and the message, no traceback, nothing read for a bad pattern
    np.savez(tmp_path / "a.npz", **gap)
    for args, msg in ((["--pattern", "blocks.w"], "exactly once"),
                      (["--pattern", "blocks.{k}.w"], "missing")):
        r = runner.invoke(app, ["scaling", "analyze", str(tmp_path / "a.npz"), *args])
        assert r.exit_code == 2 and msg in r.output, r.output
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="must end in one of"):
        read_checkpoint(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.npz")


def test_missing_optional_package_names_the_extra(tmp_path, monkeypatch):
    import importlib

    real = importlib.import_module

    def refuse(name, *a, **k):
        if name.split(".")[0] in ("torch", "safetensors"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", refuse)
    for suffix in (".pt", ".safetensors"):
        path = tmp_path / f"x{suffix}"
        path.write_bytes(b"\0")
        with pytest.raises(ValueError, match=r"deeplimits\[checkpoints\]"):
            read_checkpoint(path)
